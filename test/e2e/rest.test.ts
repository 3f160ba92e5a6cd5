// The daemon's REST API end to end: a daemon in its namespace, curl from inside it against
// http://127.0.0.1:9715/api/v1 with the token the daemon created beside its control socket. A
// service and two real servers added over REST are what `tsvs ipvsadm -Ln` lists; a drain (weight
// 0) and a delete show there too; a write without the token is refused and changes nothing.
//
//   ns c (client)                 ns d (director: tsvs daemon)
//   rac 198.18.0.1/24  ⇄  rad 198.18.0.254/24   raD 198.18.1.254/24 ⇄ (ns r) rar 198.18.1.11/24
//
// Needs root, iproute2, nft and curl: skipped with the reason otherwise, failed when CI=true.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { addVethPair, delNetns, freshNetns, nsExec, nsExecStatus } from "../../src/io/netns.js";
import { Children, type Daemon, startDaemon, tsvsIn } from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";

const skip = e2eSkip("REST e2e", ["nftables", "curl"]);

const P = process.pid;
const NS = { c: `tsvs-ra${P}-c`, d: `tsvs-ra${P}-d`, r: `tsvs-ra${P}-r` };
const tag = P.toString(36);
const IF = { c0: `rac${tag}`, d0: `rad${tag}`, d1: `raD${tag}`, r0: `rar${tag}` };
const VIP = "198.18.0.100";
const RS = ["198.18.1.11", "198.18.1.12"];
const API = "http://127.0.0.1:9715/api/v1";

const children = new Children();

interface Reply {
  status: number;
  body: unknown;
}

/** curl inside the director's namespace; the status code on the last line. */
function curl(method: string, path: string, o: { token?: string; body?: unknown } = {}): Reply {
  const argv = ["curl", "-sS", "--max-time", "5", "-X", method, "-w", "\n%{http_code}"];
  if (o.token !== undefined) argv.push("-H", `Authorization: Bearer ${o.token}`);
  if (o.body !== undefined)
    argv.push("-H", "content-type: application/json", "--data", JSON.stringify(o.body));
  const r = nsExecStatus(NS.d, [...argv, `${API}${path}`], 10_000);
  assert.equal(r.status, 0, `curl ${method} ${path}: ${r.stderr}`);
  const cut = r.stdout.lastIndexOf("\n");
  const text = r.stdout.slice(0, cut);
  return { status: Number(r.stdout.slice(cut + 1)), body: text === "" ? null : JSON.parse(text) };
}

/** Real servers by address: `ipvsadm -Ln` and the snapshot may list them in different orders. */
const byAddr = (a: string[], b: string[]): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

/** `-Ln` as [service line, [RIP:PORT, forward, weight]...]. */
function ipvsadmL(sock: string): Array<[string, string[][]]> {
  const r = tsvsIn(NS.d, sock, "ipvsadm", "-Ln");
  assert.equal(r.status, 0, r.stderr);
  const out: Array<[string, string[][]]> = [];
  for (const line of r.stdout.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (/^(TCP|UDP|SCTP|FWM) /.test(line)) out.push([`${f[0]} ${f[1]} ${f[2]}`, []]);
    else if (line.startsWith("  -> ") && /^\d/.test(f[3] ?? "")) out[out.length - 1][1].push(f.slice(1, 4));
  }
  for (const [, dests] of out) dests.sort(byAddr);
  return out;
}

interface RestService {
  protocol: string;
  address: string;
  port: number;
  scheduler: string;
  destinations: Array<{ address: string; port: number; forward: string; weight: number }>;
}

const FWD: Record<string, string> = { masq: "Masq", route: "Route", tunnel: "Tunnel", local: "Local" };

/** GET /services in -Ln's shape. */
function restL(token?: string): Array<[string, string[][]]> {
  const r = curl("GET", "/services", { token });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body as { services: RestService[] }).services.map((s) => [
    `${s.protocol.toUpperCase()} ${s.address}:${s.port} ${s.scheduler}`,
    s.destinations
      .map((d) => [`${d.address}:${d.port}`, FWD[d.forward] ?? d.forward, String(d.weight)])
      .sort(byAddr),
  ]);
}

describe("tsvs daemon --http: the REST API", { skip, timeout: 90_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvs-ra-"));
  const sock = join(dir, "run", "control.sock");
  const ifaces = ["--iface", IF.d0, "--iface", IF.d1, "--control", sock];

  before(() => {
    freshNetns(Object.values(NS));
    addVethPair(
      { ns: NS.c, ifname: IF.c0, cidr: "198.18.0.1/24" },
      { ns: NS.d, ifname: IF.d0, cidr: "198.18.0.254/24" },
    );
    addVethPair(
      { ns: NS.d, ifname: IF.d1, cidr: "198.18.1.254/24" },
      { ns: NS.r, ifname: IF.r0, cidr: "198.18.1.11/24" },
    );
    nsExec(NS.d, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
  });

  after(async () => {
    await children.stopAll();
    for (const ns of Object.values(NS)) delNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  async function stop(d: Daemon): Promise<void> {
    d.proc.kill("SIGTERM");
    assert.equal(await d.exited, 0, d.stderr());
  }

  it("add, list (= ipvsadm -Ln), drain, delete with the token; a write without it refused", async () => {
    const d = await startDaemon(NS.d, ifaces, children);
    const tokenFile = join(dir, "run", "http.token");
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600, "the token file is 0600");
    const token = readFileSync(tokenFile, "utf8").trim();
    assert.match(token, /^[0-9a-f]{64}$/);

    const svc = curl("POST", "/services", {
      token,
      body: { protocol: "tcp", address: VIP, port: 80, scheduler: "wrr" },
    });
    assert.equal(svc.status, 201, JSON.stringify(svc.body));
    for (const [i, rs] of RS.entries()) {
      const r = curl("POST", `/services/tcp/${VIP}/80/destinations`, {
        token,
        body: { address: rs, forward: "masq", weight: i + 2 },
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    const listed = ipvsadmL(sock);
    assert.deepEqual(listed, [
      [
        `TCP ${VIP}:80 wrr`,
        [
          [`${RS[0]}:80`, "Masq", "2"],
          [`${RS[1]}:80`, "Masq", "3"],
        ],
      ],
    ]);
    assert.deepEqual(restL(), listed, "GET /services on loopback, no token: what ipvsadm -Ln lists");

    // GET /explain (a read: no token on loopback): wrr's first pick, the highest weight; the
    // answers' schemas are checked in test/unit/rest.test.ts, predictions in test/e2e/explain.test.ts.
    const ex = curl("GET", `/explain?proto=tcp&vip=${VIP}&port=80&client=198.18.0.1&cport=40000`);
    assert.equal(ex.status, 200, JSON.stringify(ex.body));
    const e = ex.body as {
      verdict: string;
      schedule: { scheduler: string; destination: string };
      forward: { ipvsadm: string; dst: string };
      worker: { index: number; of: number };
    };
    assert.equal(e.verdict, "scheduled");
    assert.equal(e.schedule.scheduler, "wrr");
    assert.equal(e.schedule.destination, `${RS[1]}:80`);
    assert.deepEqual([e.forward.ipvsadm, e.forward.dst], ["Masq", `${RS[1]}:80`]);
    assert.deepEqual(e.worker, { index: 0, of: 1 });
    const exBad = curl("GET", `/explain?vip=${VIP}&port=80&client=198.18.0&cport=1`);
    assert.equal(exBad.status, 400);
    assert.equal((exBad.body as { error: { code: string } }).error.code, "TSVS_ERR_INVALID");

    // A write without the token, and with a bad one: refused, nothing changed.
    const no = curl("PUT", `/services/tcp/${VIP}/80/destinations/${RS[0]}/80`, { body: { weight: 0 } });
    assert.equal(no.status, 401);
    assert.equal((no.body as { error: { code: string } }).error.code, "TSVS_ERR_UNAUTHORIZED");
    const bad = curl("DELETE", `/services/tcp/${VIP}/80`, { token: "0".repeat(64) });
    assert.equal(bad.status, 401);
    assert.deepEqual(ipvsadmL(sock), listed);

    // Drain RS[0]: weight 0.
    const drain = curl("PUT", `/services/tcp/${VIP}/80/destinations/${RS[0]}/80`, {
      token,
      body: { weight: 0 },
    });
    assert.equal(drain.status, 200, JSON.stringify(drain.body));
    assert.deepEqual(ipvsadmL(sock)[0][1], [
      [`${RS[0]}:80`, "Masq", "0"],
      [`${RS[1]}:80`, "Masq", "3"],
    ]);
    assert.deepEqual(restL(), ipvsadmL(sock));

    // Errors as JSON with codes.
    const dup = curl("POST", `/services/tcp/${VIP}/80/destinations`, { token, body: { address: RS[1] } });
    assert.equal(dup.status, 409);
    assert.equal((dup.body as { error: { code: string } }).error.code, "TSVS_ERR_DEST_EXISTS");
    const status = curl("GET", "/status");
    assert.equal(status.status, 200);
    assert.equal((status.body as { services: number }).services, 1);

    assert.equal(curl("DELETE", `/services/tcp/${VIP}/80/destinations/${RS[0]}/80`, { token }).status, 204);
    assert.deepEqual(ipvsadmL(sock)[0][1], [[`${RS[1]}:80`, "Masq", "3"]]);
    assert.equal(curl("DELETE", `/services/tcp/${VIP}/80`, { token }).status, 204);
    assert.deepEqual(ipvsadmL(sock), []);
    assert.equal(curl("GET", `/services/tcp/${VIP}/80`).status, 404);
    await stop(d);
    assert.throws(() => statSync(tokenFile), /ENOENT/, "the generated token goes with the daemon");
  });

  it("--http-token-file, off loopback: reads need the token too", async () => {
    const file = join(dir, "token");
    writeFileSync(file, "a-token-given-by-the-operator\n", { mode: 0o600 });
    const base = "http://198.18.0.254:9716/api/v1";
    const d = await startDaemon(
      NS.d,
      [...ifaces, "--http", "198.18.0.254:9716", "--http-token-file", file],
      children,
    );
    const get = (auth: string[]): string => {
      const r = nsExecStatus(
        NS.c,
        [
          "curl",
          "-sS",
          "--max-time",
          "5",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          ...auth,
          `${base}/services`,
        ],
        10_000,
      );
      assert.equal(r.status, 0, r.stderr);
      return r.stdout;
    };
    assert.equal(get([]), "401", "from the client's namespace, no token");
    assert.equal(get(["-H", "Authorization: Bearer a-token-given-by-the-operator"]), "200");
    await stop(d);
    assert.equal(
      readFileSync(file, "utf8"),
      "a-token-given-by-the-operator\n",
      "a given token file is left alone",
    );
  });
});
