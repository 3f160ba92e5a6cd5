// Whether an e2e suite can run here: network namespaces (root, iproute2) and the Debian packages it
// uses, installed with apt-get when their command is missing. Elsewhere a missing piece skips the
// suite with the reason; on CI (CI=true) it is an error, never a skip.

import { netnsUnavailableReason } from "../../src/io/netns.js";
import { ensurePackages } from "../../src/lab/packages.js";

/** The suite's `skip` option: false when it can run, else "LABEL: why". Throws when CI=true. */
export function e2eSkip(label: string, packages: readonly string[] = []): false | string {
  let why = netnsUnavailableReason();
  if (why === null && packages.length > 0) {
    // ensurePackages throws by itself on CI when apt-get could not help.
    const missing = ensurePackages(packages);
    if (missing.length > 0) why = `${missing.join(", ")} missing and could not be installed`;
  }
  if (why !== null && process.env.CI === "true") throw new Error(`${label} cannot run on CI: ${why}`);
  return why === null ? false : `${label}: ${why}`;
}

/**
 * A prerequisite found missing while a test runs (a package, a build, a tool): the test is skipped
 * with the reason, except on CI, where the missing piece is a failure.
 */
export function skipOrFail(t: { skip(message?: string): void }, why: string): void {
  if (process.env.CI === "true") throw new Error(`cannot run on CI: ${why}`);
  t.skip(why);
}
