import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setImmediate as tick } from "node:timers/promises";
import { parseKeepalived } from "../../src/config/keepalived.js";
import { type CheckSpec, type ConfigModel, commandToIpvsadm } from "../../src/config/model.js";
import type { CheckResult, CheckTarget } from "../../src/health/checkers.js";
import { HealthRunner, type HealthTimers } from "../../src/health/runner.js";
import type { HealthEvent } from "../../src/health/state.js";

/** Timers on a virtual clock: advance() fires what is due, in time order. */
class FakeTimers implements HealthTimers {
  now = 0;
  private seq = 0;
  private pending = new Map<number, { at: number; fn: () => void }>();
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.pending.set(id, { at: this.now + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.pending.delete(h as number);
  }
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      await tick();
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.pending)
        if (e[1].at <= end && (next === undefined || e[1].at < next[1].at)) next = e;
      if (next === undefined) break;
      this.pending.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
    }
    this.now = end;
    await tick();
  }
  get size(): number {
    return this.pending.size;
  }
}

const model = (src: string): ConfigModel => parseKeepalived(src, "t.conf").model;
const SRC = `virtual_server 10.0.0.1 80 {
  lb_kind NAT
  delay_loop 10
  real_server 10.0.1.1 80 {
    TCP_CHECK {
      connect_port 8080
      retry 1
      delay_before_retry 2
    }
  }
  real_server 10.0.1.2 80 {
    inhibit_on_failure
    MISC_CHECK {
      misc_path "/bin/check r2"
    }
  }
}
`;

function setup(src = SRC) {
  const timers = new FakeTimers();
  const applied: string[] = [];
  const log: string[] = [];
  const calls: string[] = [];
  const results = new Map<string, boolean[]>();
  const runCheck = async (check: CheckSpec, t: CheckTarget): Promise<CheckResult> => {
    calls.push(`${timers.now} ${check.type} ${t.host}:${t.port}`);
    const key = check.type === "misc" ? check.path : `${t.host}:${t.port}`;
    const ok = results.get(key)?.shift() ?? true;
    return { ok, detail: ok ? "fine" : "broken" };
  };
  const runner = new HealthRunner(model(src), {
    apply: (cmds) => {
      applied.push(...cmds.map(commandToIpvsadm));
    },
    log: (ev: HealthEvent) => log.push(`${timers.now} ${ev.kind}${"rs" in ev ? ` ${ev.rs}` : ""}`),
    timers,
    runCheck,
  });
  return { timers, applied, log, calls, results, runner };
}

describe("health runner", () => {
  it("applies the initial table, then checks each server every delay_loop", async () => {
    const { timers, applied, calls, runner } = setup();
    await runner.start();
    assert.deepEqual(applied, [
      "-A -t 10.0.0.1:80 -s wlc",
      "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1",
      "-a -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 1",
    ]);
    await timers.advance(25_000);
    assert.deepEqual(calls, [
      "0 tcp 10.0.1.1:8080",
      "0 misc 10.0.1.2:80",
      "10000 tcp 10.0.1.1:8080",
      "10000 misc 10.0.1.2:80",
      "20000 tcp 10.0.1.1:8080",
      "20000 misc 10.0.1.2:80",
    ]);
    await runner.stop();
    assert.equal(timers.size, 0);
  });

  it("retries after delay_before_retry and applies the commands in order", async () => {
    const { timers, applied, log, calls, results, runner } = setup();
    results.set("10.0.1.1:8080", [true, false, false, true]);
    results.set("/bin/check r2", [false, false, false, false]);
    await runner.start();
    applied.length = 0;
    await timers.advance(25_000);
    assert.deepEqual(
      calls.filter((c) => c.includes("tcp")),
      [
        "0 tcp 10.0.1.1:8080",
        "10000 tcp 10.0.1.1:8080",
        "12000 tcp 10.0.1.1:8080",
        "22000 tcp 10.0.1.1:8080",
      ],
    );
    assert.deepEqual(log, [
      "0 rs-retry 10.0.1.2:80",
      "1000 rs-down 10.0.1.2:80",
      "10000 rs-retry 10.0.1.1:80",
      "12000 rs-down 10.0.1.1:80",
      "12000 quorum-lost",
      "22000 rs-up 10.0.1.1:80",
      "22000 quorum-gained",
    ]);
    assert.deepEqual(applied, [
      "-e -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 0",
      "-d -t 10.0.0.1:80 -r 10.0.1.1:80",
      "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1",
    ]);
    await runner.stop();
  });

  it("reloads with -E only and restarts checking on the new delay_loop", async () => {
    const { timers, applied, calls, runner } = setup();
    await runner.start();
    await timers.advance(1_000);
    applied.length = 0;
    calls.length = 0;
    await runner.reload(
      model(SRC.replace("delay_loop 10", "delay_loop 5").replace("lb_kind NAT", "lb_kind NAT\n  lb_algo rr")),
    );
    assert.deepEqual(applied, ["-E -t 10.0.0.1:80 -s rr"]);
    await timers.advance(6_000);
    assert.deepEqual(calls, [
      "1000 tcp 10.0.1.1:8080",
      "1000 misc 10.0.1.2:80",
      "6000 tcp 10.0.1.1:8080",
      "6000 misc 10.0.1.2:80",
    ]);
    await runner.stop();
  });

  it("ignores a check that answers after a reload", async () => {
    const timers = new FakeTimers();
    const applied: string[] = [];
    const waiting: ((r: CheckResult) => void)[] = [];
    const runner = new HealthRunner(model(SRC), {
      apply: (cmds) => {
        applied.push(...cmds.map(commandToIpvsadm));
      },
      timers,
      runCheck: () => new Promise((resolve) => waiting.push(resolve)),
    });
    await runner.start();
    await timers.advance(0);
    assert.equal(waiting.length, 2);
    await runner.reload(model(SRC));
    applied.length = 0;
    for (const w of waiting.splice(0)) w({ ok: false, detail: "late" });
    await timers.advance(0);
    await runner.idle();
    assert.deepEqual(applied, []);
    await runner.stop();
  });

  it("reports an apply failure and keeps going", async () => {
    const timers = new FakeTimers();
    const errors: string[] = [];
    const runner = new HealthRunner(model(SRC), {
      apply: () => {
        throw new Error("worker gone");
      },
      onError: (e, cmds) => errors.push(`${(e as Error).message}: ${cmds.length}`),
      timers,
      runCheck: async () => ({ ok: true, detail: "" }),
    });
    await runner.start();
    assert.deepEqual(errors, ["worker gone: 3"]);
    await runner.stop();
  });
});
