// Least privilege (src/daemon/privileges.ts, src/io/caps.ts) without root: the capability sets as
// /proc prints them, the set the daemon keeps per backend, and the refusal of a token file or a
// control socket directory others could use.

import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { parseDaemonArgs } from "../../src/daemon/main.js";
import { keptCapabilities, looseFile, looseSocketDir } from "../../src/daemon/privileges.js";
import { CAP, capMask, capNames, parseStatusCaps } from "../../src/io/caps.js";

const STATUS = `Name:\tnode
Uid:\t0\t0\t0\t0
Gid:\t0\t0\t0\t0
CapInh:\t0000000000000000
CapPrm:\t0000000000003000
CapEff:\t0000000000003000
CapBnd:\t0000000000003000
CapAmb:\t0000000000000000
NoNewPrivs:\t1
`;

describe("capability sets", () => {
  it("reads /proc/PID/status's sets, uid and no_new_privs", () => {
    const c = parseStatusCaps(STATUS);
    assert.deepEqual(c, {
      inheritable: 0n,
      permitted: 0x3000n,
      effective: 0x3000n,
      bounding: 0x3000n,
      ambient: 0n,
      noNewPrivs: true,
      uid: 0,
    });
    assert.deepEqual(capNames(c.effective), ["cap_net_admin", "cap_net_raw"]);
    // The full set of this kernel generation, as a root shell's CapEff prints it.
    assert.equal(capNames(0x1ffffffffffn).length, 41);
    assert.equal(capNames(0x1ffffffffffn)[39], "cap_bpf");
  });

  it("keeps CAP_NET_ADMIN and CAP_NET_RAW; --io xdp adds CAP_IPC_LOCK, CAP_PERFMON and CAP_BPF", () => {
    assert.equal(capMask(keptCapabilities({ io: "mmsg" })), 0x3000n);
    assert.deepEqual(keptCapabilities({ io: "ring" }), [CAP.NET_ADMIN, CAP.NET_RAW]);
    assert.deepEqual(capNames(capMask(keptCapabilities({ io: "xdp" as "mmsg" }))), [
      "cap_net_admin",
      "cap_net_raw",
      "cap_ipc_lock",
      "cap_perfmon",
      "cap_bpf",
    ]);
  });

  it("drops them by default; --keep-caps keeps them", () => {
    assert.equal(parseDaemonArgs([]).dropCaps, true);
    assert.equal(parseDaemonArgs(["--keep-caps"]).dropCaps, false);
    assert.throws(() => parseDaemonArgs(["--keep-caps=1"]), /takes no value/);
  });
});

describe("files that grant control over the daemon", () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvs-priv-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("a token file: the daemon's own, mode 0600 or stricter, else refused with the reason", () => {
    const f = join(dir, "token");
    writeFileSync(f, "x".repeat(32), { mode: 0o600 });
    assert.equal(looseFile(f), null);
    chmodSync(f, 0o400);
    assert.equal(looseFile(f), null);
    for (const [mode, text] of [
      [0o644, "0644"],
      [0o620, "0620"],
      [0o602, "0602"],
    ] as const) {
      chmodSync(f, mode);
      assert.equal(looseFile(f), `${f} has mode ${text}: others may read or change it (chmod 600 ${f})`);
    }
    assert.match(looseFile(dir) ?? "", /is not a regular file/);
  });

  it("the control socket's directory: private, or sticky when others may write it", () => {
    const ok = join(dir, "private");
    mkdirSync(ok, { mode: 0o700 });
    assert.equal(looseSocketDir(join(ok, "control.sock")), null);
    const open = join(dir, "open");
    mkdirSync(open);
    chmodSync(open, 0o777);
    assert.equal(
      looseSocketDir(join(open, "control.sock")),
      `${open} (the control socket's directory) has mode 0777: others may replace the socket`,
    );
    chmodSync(open, 0o1777);
    assert.equal(looseSocketDir(join(open, "control.sock")), null, "sticky, as /tmp");
    chmodSync(open, 0o775);
    assert.match(looseSocketDir(join(open, "control.sock")) ?? "", /mode 0775/);
    assert.equal(looseSocketDir(join(dir, "absent", "control.sock")), null, "made private by the daemon");
  });
});
