// `tsvs explain` against a real daemon: for every scheduler (switched with `tsvs ipvsadm -E`), 50
// random client tuples — a source address among 40 of the client's and a random source port, bound
// explicitly — are explained over the control socket, then the real TCP connection is made and the
// real server that answered must be the one explain predicted. Three NAT real servers with
// weights 3, 1, 2; one daemon for every scheduler, so the table carries the earlier schedulers'
// connections (TIME_WAIT, inactive) and the figures are not all zero. Then through the CLI: a
// persistent service (the template predicts), no service (No such service, exit 1, the connection
// refused), the human lines and the errors; and two workers, where the answer comes from the
// worker the fanout hands the client to. IPv6 (issue 14): the same links carry fd00:6578:706c::/48
// ("exl"), and a NAT66 service [VIP6]:80 over the three real servers is explained for every
// scheduler, 10 random IPv6 client tuples each, each prediction checked against the real server
// that answered a real IPv6 connection from that source address and port.
//
//   ns c 198.18.0.1-41/24 ─ 198.18.0.254 ns d 198.18.1.254 ─ 198.18.1.11 r1 (weight 3)
//                                             198.18.2.254 ─ 198.18.2.12 r2 (weight 1)
//                                             198.18.3.254 ─ 198.18.3.13 r3 (weight 2)
//
// Needs root, iproute2 and nft: skipped with the reason otherwise, failed when CI=true.

import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { SCHEDULER_NAMES } from "../../src/core/sched/index.js";
import { request } from "../../src/daemon/control.js";
import type { ExplainAnswer, ExplainRequest } from "../../src/daemon/protocol.js";
import { addVethPair, delNetns, freshNetns, ip, nsExec } from "../../src/io/netns.js";
import {
  Children,
  type Daemon,
  startDaemon,
  startHttp,
  startListener,
  tsvsIn,
} from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";
import { seeded } from "../support/seeded.js";
import { buildTwoLanNat, twoLanNatNames } from "../support/two-lan-nat.js";

const skip = e2eSkip("explain e2e", ["nftables"]);

const NET = twoLanNatNames("ex");
const NS = { ...NET.ns, r3: `${NET.ns.r1.slice(0, -3)}-r3` };
const T36 = process.pid.toString(36);
const IF3 = { d3: `exF${T36}`, r3: `ext${T36}` };
const VIP = "198.18.0.100";
const RS = [
  { ns: NS.r1, name: "r1", addr: "198.18.1.11", weight: 3 },
  { ns: NS.r2, name: "r2", addr: "198.18.2.12", weight: 1 },
  { ns: NS.r3, name: "r3", addr: "198.18.3.13", weight: 2 },
];
const RIP_OF = new Map(RS.map((r) => [r.name, `${r.addr}:80`]));
const CLIENTS = Array.from({ length: 40 }, (_, i) => `198.18.0.${i + 2}`);
const TUPLES = 50;
// IPv6: a /64 per link of the test's own /48, the client's 40 addresses beside the VIP.
const P6 = "fd00:6578:706c";
const VIP6 = `${P6}::100`;
const RS6 = RS.map((r, i) => ({ ...r, addr6: `${P6}:${i + 1}::${r.addr.split(".")[3]}` }));
const RIP6_OF = new Map(RS6.map((r) => [r.name, `[${r.addr6}]:80`]));
const CLIENTS6 = Array.from({ length: 40 }, (_, i) => `${P6}::${(0x200 + i).toString(16)}`);
const TUPLES6 = 10;

const children = new Children();

/**
 * A TCP client in the client's namespace: one line in, `ADDR PORT VIP VPORT`, one line out when the
 * connection is over, `ok BODY` (an HTTP/1.0 GET answered, the server's name) or `err CODE`.
 */
const CLIENT_SRC = `
const net = require("net");
require("readline").createInterface({ input: process.stdin }).on("line", (l) => {
  const [addr, port, vip, vport] = l.split(" ");
  const s = net.connect({ host: vip, port: +vport, localAddress: addr, localPort: +port });
  let body = "";
  let done = false;
  const fin = (r) => { if (!done) { done = true; console.log(r); } };
  s.setTimeout(5000, () => { s.destroy(); fin("err timeout"); });
  s.on("connect", () => s.write("GET / HTTP/1.0\\r\\nHost: tsvs\\r\\n\\r\\n"));
  s.on("data", (d) => { body += d; });
  s.on("error", (e) => fin("err " + e.code));
  s.on("close", () => fin("ok " + (body.split("\\r\\n\\r\\n")[1] ?? "").trim()));
});
console.log("ready");
`;

class Client {
  private readonly waiting: Array<(line: string) => void> = [];
  private constructor(private readonly proc: ChildProcess) {
    const rl = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
    rl.on("line", (l) => this.waiting.shift()?.(l));
  }

  static async start(): Promise<Client> {
    const proc = children.add(
      spawn("ip", ["netns", "exec", NS.c, process.execPath, "-e", CLIENT_SRC], {
        stdio: ["pipe", "pipe", "inherit"],
      }),
    );
    const c = new Client(proc);
    assert.equal(await c.next(), "ready");
    return c;
  }

  private next(): Promise<string> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("the client did not answer in 10 s")), 10_000);
      this.waiting.push((l) => {
        clearTimeout(t);
        resolve(l);
      });
    });
  }

  /** One connection from addr:port to vip:vport: the answering server's name, or `err CODE`. */
  async connect(addr: string, port: number, vip = VIP, vport = 80): Promise<string> {
    const p = this.next();
    this.proc.stdin?.write(`${addr} ${port} ${vip} ${vport}\n`);
    const l = await p;
    return l.startsWith("ok ") ? l.slice(3) : l;
  }
}

describe("tsvs explain: the prediction is where the real connection goes", { skip, timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvs-ex-"));
  const sock = join(dir, "run", "control.sock");
  const args = [...NET.ifaceArgs, "--iface", IF3.d3, "--control", sock, "--http", "off"];
  let d: Daemon;
  let client: Client;
  const used = new Set<string>();

  const ipvsadm = (...argv: string[]): void => {
    const r = tsvsIn(NS.d, sock, "ipvsadm", ...argv);
    assert.equal(r.status, 0, `ipvsadm ${argv.join(" ")}: ${r.stderr}`);
  };
  const explain = async (req: Omit<ExplainRequest, "op">): Promise<ExplainAnswer> => {
    const r = await request(sock, { op: "explain", ...req });
    assert.ok("explain" in r, JSON.stringify(r));
    return r.explain;
  };
  /** A tuple not used before (a reused one would meet its TIME_WAIT entry, which explain also covers). */
  const tuple = (rnd: () => number): [string, number] => {
    for (;;) {
      const a = CLIENTS[Math.floor(rnd() * CLIENTS.length)];
      const p = 20000 + Math.floor(rnd() * 40000);
      if (!used.has(`${a}:${p}`)) {
        used.add(`${a}:${p}`);
        return [a, p];
      }
    }
  };

  before(async () => {
    buildTwoLanNat(NET);
    freshNetns([NS.r3]);
    addVethPair(
      { ns: NS.d, ifname: IF3.d3, cidr: "198.18.3.254/24" },
      { ns: NS.r3, ifname: IF3.r3, cidr: "198.18.3.13/24" },
    );
    ip("-n", NS.r3, "route", "add", "default", "via", "198.18.3.254");
    for (const a of CLIENTS) ip("-n", NS.c, "addr", "add", `${a}/24`, "dev", NET.ifs.c0);
    // IPv6 on the same links (nodad: usable at once), before the daemon reads the host's addresses;
    // the namespaces start with IPv6 off (netns.ts freshNetns).
    for (const ns of Object.values(NS))
      nsExec(ns, [
        "sysctl",
        "-q",
        "-w",
        "net.ipv6.conf.all.disable_ipv6=0",
        "net.ipv6.conf.default.disable_ipv6=0",
        "net.ipv6.conf.all.accept_ra=0",
        "net.ipv6.conf.default.accept_ra=0",
      ]);
    ip("-n", NS.d, "addr", "add", `${P6}::fe/64`, "dev", NET.ifs.d0, "nodad");
    for (const a of CLIENTS6) ip("-n", NS.c, "addr", "add", `${a}/64`, "dev", NET.ifs.c0, "nodad");
    ip("-n", NS.c, "-6", "route", "add", "default", "via", `${P6}::fe`);
    const links = [
      [NET.ifs.d1, NET.ifs.r1],
      [NET.ifs.d2, NET.ifs.r2],
      [IF3.d3, IF3.r3],
    ];
    RS6.forEach((r, i) => {
      ip("-n", NS.d, "addr", "add", `${P6}:${i + 1}::fe/64`, "dev", links[i][0], "nodad");
      ip("-n", r.ns, "addr", "add", `${r.addr6}/64`, "dev", links[i][1], "nodad");
      ip("-n", r.ns, "-6", "route", "add", "default", "via", `${P6}:${i + 1}::fe`);
    });
    await Promise.all(RS.map((r) => startHttp(r.ns, r.name, children)));
    // The same answer over IPv6 (startHttp listens on 0.0.0.0 only).
    await Promise.all(
      RS.map((r) =>
        startListener(
          r.ns,
          `require("http").createServer((q, s) => { s.setHeader("connection", "close"); s.end(${JSON.stringify(`${r.name}\n`)}); }).listen({ port: 80, host: "::", ipv6Only: true }, () => console.log("listening"));`,
          children,
          "http server (IPv6)",
        ),
      ),
    );
    client = await Client.start();
  });

  after(async () => {
    await children.stopAll();
    for (const ns of Object.values(NS)) delNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  it(`every scheduler, ${TUPLES} random client tuples each: explain predicts, the real server answers`, async () => {
    d = await startDaemon(NS.d, args, children);
    ipvsadm("-A", "-t", `${VIP}:80`, "-s", "rr");
    for (const r of RS) ipvsadm("-a", "-t", `${VIP}:80`, "-r", `${r.addr}:80`, "-m", "-w", String(r.weight));
    const t0 = Date.now();
    const rnd = seeded(0xe2e);
    const spread: string[] = [];
    for (const sched of SCHEDULER_NAMES) {
      ipvsadm("-E", "-t", `${VIP}:80`, "-s", sched);
      const count = new Map<string, number>();
      for (let i = 0; i < TUPLES; i++) {
        const [addr, port] = tuple(rnd);
        const a = await explain({ proto: "tcp", vip: VIP, port: 80, client: addr, cport: port });
        assert.equal(a.verdict, "scheduled", `${sched} #${i} ${addr}:${port}: ${a.summary}`);
        assert.equal(a.schedule?.exact, true);
        assert.deepEqual(a.worker, { index: 0, of: 1 });
        const answered = await client.connect(addr, port);
        assert.equal(
          RIP_OF.get(answered),
          a.forward?.dst,
          `${sched} #${i} ${addr}:${port}: explain said ${a.forward?.dst}, ${answered} answered\n${JSON.stringify(a.schedule)}\n${d.stderr().slice(-2000)}`,
        );
        count.set(answered, (count.get(answered) ?? 0) + 1);
      }
      spread.push(`${sched} ${[...count].map(([k, v]) => `${k}=${v}`).join(",")}`);
    }
    console.log(`# explain e2e: ${SCHEDULER_NAMES.length} x ${TUPLES} connections in ${Date.now() - t0} ms`);
    console.log(`# ${spread.join("; ")}`);
  });

  it(`IPv6 (NAT66): every scheduler, ${TUPLES6} random IPv6 client tuples each: explain predicts, the real server answers`, async () => {
    ipvsadm("-A", "-t", `[${VIP6}]:80`, "-s", "rr");
    for (const r of RS6)
      ipvsadm("-a", "-t", `[${VIP6}]:80`, "-r", `[${r.addr6}]:80`, "-m", "-w", String(r.weight));
    const t0 = Date.now();
    const rnd = seeded(0x6e6);
    const spread: string[] = [];
    for (const sched of SCHEDULER_NAMES) {
      ipvsadm("-E", "-t", `[${VIP6}]:80`, "-s", sched);
      const count = new Map<string, number>();
      for (let i = 0; i < TUPLES6; i++) {
        const a6 = CLIENTS6[Math.floor(rnd() * CLIENTS6.length)];
        let port = 20000 + Math.floor(rnd() * 40000);
        while (used.has(`[${a6}]:${port}`)) port++;
        used.add(`[${a6}]:${port}`);
        const a = await explain({ proto: "tcp", vip: VIP6, port: 80, client: a6, cport: port });
        assert.equal(a.verdict, "scheduled", `${sched} #${i} [${a6}]:${port}: ${a.summary}`);
        assert.equal(a.schedule?.exact, true);
        assert.equal(a.packet.client, `[${a6}]:${port}`);
        const answered = await client.connect(a6, port, VIP6, 80);
        assert.equal(
          RIP6_OF.get(answered),
          a.forward?.dst,
          `${sched} #${i} [${a6}]:${port}: explain said ${a.forward?.dst}, ${answered} answered\n${JSON.stringify(a.schedule)}\n${d.stderr().slice(-2000)}`,
        );
        count.set(answered, (count.get(answered) ?? 0) + 1);
      }
      spread.push(`${sched} ${[...count].map(([k, v]) => `${k}=${v}`).join(",")}`);
    }
    console.log(
      `# explain e2e IPv6: ${SCHEDULER_NAMES.length} x ${TUPLES6} connections in ${Date.now() - t0} ms`,
    );
    console.log(`# ${spread.join("; ")}`);
    // The CLI: [ADDR]:PORT in, the answer's lines as ipvsadm prints IPv6.
    ipvsadm("-E", "-t", `[${VIP6}]:80`, "-s", "wlc");
    const cli = tsvsIn(NS.d, sock, "explain", "-t", `[${VIP6}]:80`, "--from", `[${CLIENTS6[0]}]:33100`);
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(
      cli.stdout,
      new RegExp(
        `^TCP \\[${CLIENTS6[0]}\\]:33100 -> \\[${VIP6}\\]:80: new connection: wlc picks \\[${P6}:\\d::1\\d\\]:80 \\(Masq\\)\\n`,
      ),
    );
    assert.match(
      cli.stdout,
      /\n {2}forward {2}Masq: \[fd00:6578:706c::200\]:33100 -> \[fd00:6578:706c:\d::1\d\]:80 via /,
    );
    ipvsadm("-D", "-t", `[${VIP6}]:80`);
  });

  it("a persistent service: the template predicts; no service: No such service and the connection refused (CLI)", async () => {
    ipvsadm("-A", "-t", `${VIP}:81`, "-s", "rr", "-p", "60", "-M", "255.255.255.0");
    for (const r of RS) ipvsadm("-a", "-t", `${VIP}:81`, "-r", `${r.addr}:80`, "-m", "-w", String(r.weight));
    const cli = (...argv: string[]) => tsvsIn(NS.d, sock, "explain", ...argv);
    const first = cli("-t", `${VIP}:81`, "--from", "198.18.0.2:33001", "--json");
    assert.equal(first.status, 0, first.stderr);
    const a = JSON.parse(first.stdout) as ExplainAnswer;
    assert.equal(a.template?.status, "new");
    assert.equal(a.template?.client, "198.18.0.0");
    const got = await client.connect("198.18.0.2", 33001, VIP, 81);
    assert.equal(RIP_OF.get(got), a.forward?.dst);
    // Another client of the /24: the template's real server, told by the human lines too.
    const human = cli("-t", `${VIP}:81`, "--from", "198.18.0.30:33002");
    assert.equal(human.status, 0, human.stderr);
    assert.match(
      human.stdout,
      new RegExp(
        `^TCP 198\\.18\\.0\\.30:33002 -> ${VIP}:81: new connection: persistence template ${a.forward?.dst} \\(Masq\\)\\n`,
      ),
    );
    assert.match(
      human.stdout,
      /\n {2}service {2}TCP {2}198\.18\.0\.100:81 rr persistent 60 mask 255\.255\.255\.0/,
    );
    assert.match(
      human.stdout,
      new RegExp(
        `\\n  template TCP 198\\.18\\.0\\.0 → ${VIP}:81 -> ${a.forward?.dst}, expires (00:5\\d|01:00), controls 1`,
      ),
    );
    assert.match(human.stdout, /\n {2}forward {2}Masq: 198\.18\.0\.30:33002 -> /);
    assert.equal(RIP_OF.get(await client.connect("198.18.0.30", 33002, VIP, 81)), a.forward?.dst);

    // wlc's figures in the human lines: a line per real server, the pick marked.
    ipvsadm("-E", "-t", `${VIP}:80`, "-s", "wlc");
    const w = cli("-t", `${VIP}:80`, "--from", "198.18.0.3:33003");
    assert.equal(w.status, 0, w.stderr);
    assert.match(w.stdout, /\n {2}schedule wlc -> 198\.18\.\d\.1\d:80: weighted least-connection/);
    assert.equal((w.stdout.match(/\n {11}[* ] 198\.18\.\d\.1\d:80 +weight \d/g) ?? []).length, 3, w.stdout);
    assert.equal((w.stdout.match(/\n {11}\* /g) ?? []).length, 1, w.stdout);

    const none = cli("-t", `${VIP}:82`, "--from", "198.18.0.2:33004");
    assert.equal(none.status, 1);
    assert.match(none.stdout, /: No such service: the director answers with a TCP reset/);
    assert.match(
      none.stdout,
      /lookup +TCP {2}198\.18\.0\.100:82: no such service; TCP {2}198\.18\.0\.100:0 \(all ports\): no such service/,
    );
    assert.equal(await client.connect("198.18.0.2", 33004, VIP, 82), "err ECONNREFUSED");

    const bad = cli("-t", "198.18.0:80", "--from", "198.18.0.2:1");
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^tsvs explain: bad service address '198\.18\.0:80'/);
    const noFrom = cli("-t", `${VIP}:80`);
    assert.equal(noFrom.status, 2);
    assert.match(noFrom.stderr, /--from CIP:CPORT is required/);
    const gone = tsvsIn(
      NS.d,
      join(dir, "nothing.sock"),
      "explain",
      "-t",
      `${VIP}:80`,
      "--from",
      "198.18.0.2:1",
    );
    assert.equal(gone.status, 1);
    assert.match(gone.stderr, /^tsvs: cannot reach the daemon at .*nothing\.sock/);
    d.proc.kill("SIGTERM");
    assert.equal(await d.exited, 0, d.stderr());
  });

  it("two workers: the worker the fanout hands the client to answers, and predicts", async () => {
    if (d.proc.exitCode === null) {
      d.proc.kill("SIGTERM");
      await d.exited;
    }
    const d2 = await startDaemon(NS.d, [...args, "--workers", "2"], children);
    ipvsadm("-A", "-t", `${VIP}:80`, "-s", "rr");
    for (const r of RS) ipvsadm("-a", "-t", `${VIP}:80`, "-r", `${r.addr}:80`, "-m", "-w", String(r.weight));
    const rnd = seeded(0x2002);
    const workers = new Set<number>();
    for (const sched of ["rr", "twos"]) {
      ipvsadm("-E", "-t", `${VIP}:80`, "-s", sched);
      for (let i = 0; i < 20; i++) {
        const [addr, port] = tuple(rnd);
        const a = await explain({ proto: "tcp", vip: VIP, port: 80, client: addr, cport: port });
        assert.equal(a.worker.of, 2);
        workers.add(a.worker.index);
        const answered = await client.connect(addr, port);
        assert.equal(
          RIP_OF.get(answered),
          a.forward?.dst,
          `${sched} #${i} ${addr}:${port} (worker ${a.worker.index})`,
        );
      }
    }
    assert.equal(workers.size, 2, "the clients spread over both workers");
    // IPv6: the fanout program spreads IPv6 clients by the fold of their words.
    ipvsadm("-A", "-t", `[${VIP6}]:80`, "-s", "rr");
    for (const r of RS6) ipvsadm("-a", "-t", `[${VIP6}]:80`, "-r", `[${r.addr6}]:80`, "-m");
    const workers6 = new Set<number>();
    for (let i = 0; i < 12; i++) {
      const a6 = CLIENTS6[Math.floor(rnd() * CLIENTS6.length)];
      let port = 20000 + Math.floor(rnd() * 40000);
      while (used.has(`[${a6}]:${port}`)) port++;
      used.add(`[${a6}]:${port}`);
      const a = await explain({ proto: "tcp", vip: VIP6, port: 80, client: a6, cport: port });
      assert.equal(a.worker.of, 2);
      workers6.add(a.worker.index);
      const answered = await client.connect(a6, port, VIP6, 80);
      assert.equal(
        RIP6_OF.get(answered),
        a.forward?.dst,
        `IPv6 #${i} [${a6}]:${port} (worker ${a.worker.index})`,
      );
    }
    assert.equal(workers6.size, 2, "the IPv6 clients spread over both workers");
    d2.proc.kill("SIGTERM");
    assert.equal(await d2.exited, 0, d2.stderr());
  });
});
