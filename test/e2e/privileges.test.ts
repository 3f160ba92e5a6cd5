// Least privilege in a namespace (docs/daemon.md "Privileges"): a daemon started as root by
// `ip netns exec` holds CAP_NET_ADMIN and CAP_NET_RAW and nothing else in every thread, with
// no_new_privs, and still does what needs them (its packet sockets, the nft guard through its nft
// child, a NAT service answering curl); `--keep-caps` keeps everything; a token file others may
// read, or a control socket directory others may write, stops it with the reason. The shipped
// systemd unit passes `systemd-analyze verify`. Namespaces tsvs-pv<pid>-*.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { capNames, parseStatusCaps } from "../../src/io/caps.js";
import { addVethPair, delNetns, freshNetns, ip, nsExec, nsExecStatus } from "../../src/io/netns.js";
import { Children, ENTRY, startDaemon, startHttp, tsvsIn } from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";

const skip = e2eSkip("privileges e2e", ["nftables", "curl", "systemd"]);
const P = `tsvs-pv${process.pid}`;
const NS = { c: `${P}-c`, d: `${P}-d`, r: `${P}-r` };
const NET_PAIR = ["cap_net_admin", "cap_net_raw"];

/** Every task's sets of pid (the main thread first). */
function tasks(pid: number): ReturnType<typeof parseStatusCaps>[] {
  return readdirSync(`/proc/${pid}/task`).map((t) =>
    parseStatusCaps(readFileSync(`/proc/${pid}/task/${t}/status`, "utf8")),
  );
}

describe("the daemon keeps only what it needs", { skip, timeout: 120_000 }, () => {
  const children = new Children();
  const dir = mkdtempSync(join(tmpdir(), "tsvs-pv-"));

  before(() => {
    freshNetns(Object.values(NS));
    addVethPair(
      { ns: NS.c, ifname: "eth0", cidr: "198.18.40.1/24" },
      { ns: NS.d, ifname: "c0", cidr: "198.18.40.254/24" },
    );
    addVethPair(
      { ns: NS.d, ifname: "r0", cidr: "198.18.41.254/24" },
      { ns: NS.r, ifname: "eth0", cidr: "198.18.41.11/24" },
    );
    ip("-n", NS.c, "route", "add", "default", "via", "198.18.40.254");
    ip("-n", NS.r, "route", "add", "default", "via", "198.18.41.254");
    nsExec(NS.d, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
  });

  after(async () => {
    await children.stopAll();
    for (const ns of Object.values(NS)) delNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  it("every thread: CAP_NET_ADMIN and CAP_NET_RAW, no_new_privs; its nft child guards, a NAT service answers", async () => {
    const sock = join(dir, "d.sock");
    const d = await startDaemon(NS.d, ["--control", sock, "--http", "off"], children);
    const pid = d.proc.pid ?? 0;
    const all = tasks(pid);
    assert.ok(all.length >= 2, "the worker thread is there too");
    for (const t of all) {
      assert.deepEqual(
        {
          eff: capNames(t.effective),
          prm: capNames(t.permitted),
          bnd: capNames(t.bounding),
          inh: capNames(t.inheritable),
          amb: capNames(t.ambient),
          nnp: t.noNewPrivs,
        },
        { eff: NET_PAIR, prm: NET_PAIR, bnd: NET_PAIR, inh: [], amb: [], nnp: true },
      );
    }
    assert.match(d.stderr(), /"effective":\["cap_net_admin","cap_net_raw"\].*"msg":"privileges"/);
    // The guard was installed by nft, run as the daemon's child with the same two.
    assert.match(nsExec(NS.d, ["nft", "list", "tables"]), /table netdev tsvs/);
    // A real service through it: the packet sockets work.
    const srv = await startHttp(NS.r, "r1", children);
    assert.equal(tsvsIn(NS.d, sock, "ipvsadm", "-A", "-t", "198.18.40.100:80", "-s", "rr").status, 0);
    assert.equal(
      tsvsIn(NS.d, sock, "ipvsadm", "-a", "-t", "198.18.40.100:80", "-r", "198.18.41.11:80", "-m").status,
      0,
    );
    let got = "";
    for (let i = 0; i < 50 && got !== "r1"; i++) {
      const r = nsExecStatus(NS.c, ["curl", "-s", "--max-time", "2", "http://198.18.40.100/"], 5_000);
      got = r.stdout.trim();
      if (got !== "r1") await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(got, "r1", "curl through the NAT service");
    srv.kill("SIGTERM");
    d.proc.kill("SIGTERM");
    assert.equal(await d.exited, 0);
    assert.doesNotMatch(nsExec(NS.d, ["nft", "list", "tables"]), /tsvs/, "the guard went with it");
  });

  it("--keep-caps keeps every capability, and says so", async () => {
    const sock = join(dir, "k.sock");
    const d = await startDaemon(NS.d, ["--control", sock, "--http", "off", "--keep-caps"], children);
    const t = tasks(d.proc.pid ?? 0)[0];
    assert.ok(capNames(t.effective).includes("cap_sys_admin"));
    assert.equal(t.noNewPrivs, false);
    assert.match(d.stderr(), /"msg":"privileges: --keep-caps, every capability kept"/);
    d.proc.kill("SIGTERM");
    await d.exited;
  });

  it("a token file others may read, a socket directory others may write: refused with the reason", async () => {
    const token = join(dir, "token");
    writeFileSync(token, `${"t".repeat(32)}\n`, { mode: 0o644 });
    chmodSync(token, 0o644);
    const r1 = nsExecStatus(
      NS.d,
      [
        process.execPath,
        ENTRY,
        "daemon",
        "--control",
        join(dir, "t.sock"),
        "--http",
        "127.0.0.1:9192",
        "--http-token-file",
        token,
      ],
      20_000,
    );
    assert.notEqual(r1.status, 0);
    assert.match(r1.stderr, new RegExp(`${token} has mode 0644: others may read or change it`));
    const open = join(dir, "open");
    mkdirSync(open);
    chmodSync(open, 0o777);
    const r2 = nsExecStatus(
      NS.d,
      [process.execPath, ENTRY, "daemon", "--control", join(open, "c.sock"), "--http", "off"],
      20_000,
    );
    assert.notEqual(r2.status, 0);
    assert.match(r2.stderr, /refusing the control socket: .* has mode 0777: others may replace the socket/);
  });
});

describe("the systemd unit", { skip }, () => {
  it("passes systemd-analyze verify and bounds the same capabilities", () => {
    const unit = fileURLToPath(new URL("../../../packaging/tsvs.service", import.meta.url));
    const text = readFileSync(unit, "utf8");
    assert.match(text, /^CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW$/m);
    assert.match(text, /^NoNewPrivileges=yes$/m);
    assert.match(text, /^ProtectSystem=strict$/m);
    // verify checks that ExecStart's program exists: point it at this checkout's bin/tsvs.
    const bin = fileURLToPath(new URL("../../../bin/tsvs", import.meta.url));
    const d = mkdtempSync(join(tmpdir(), "tsvs-unit-"));
    try {
      const copy = join(d, "tsvs.service");
      writeFileSync(copy, text.replace(/^ExecStart=\S+/m, `ExecStart=${bin}`));
      const out = execFileSync("systemd-analyze", ["verify", copy], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      });
      assert.equal(out, "");
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
