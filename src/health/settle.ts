// The one shape the network checkers share: a check settles exactly once, with the first result
// its events give or with `timedOut` when timeoutMs passes first. Whatever settles it, the timer is
// cleared and the socket released (once) before the promise resolves, so no late event or timer
// can touch a finished check.

import type { CheckResult } from "./checkers.js";

/**
 * Arms the timer, then calls start(finish), which wires the events and starts the I/O. A throw from
 * start rejects the promise; the timer still fires later and releases.
 */
export function settleOnce(
  timeoutMs: number,
  timedOut: CheckResult,
  release: () => void,
  start: (finish: (r: CheckResult) => void) => void,
): Promise<CheckResult> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: CheckResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      release();
      resolve(r);
    };
    const timer = setTimeout(() => finish(timedOut), timeoutMs);
    start(finish);
  });
}
