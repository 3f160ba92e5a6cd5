// `tsvs realserver` for an IPv6 VIP (issue 14), in two namespaces of this machine's kernel:
//
//   L (the LAN: poor man's director, client, packet probe)   R (the real server)
//   eth0 fd00:6:1::1/64, 198.18.61.1/24  ⇄  eth0 fd00:6:1::11/64, 198.18.61.11/24
//   lo   fd00:6:c::50 (a client off the link)               default routes via L
//
// DR: setup puts the VIP on lo as /128 nodad; a neighbour solicitation for it from L, multicast to
// its solicited-node group or unicast to the VIP with R's MAC, gets no answer (the one for the RIP
// does); curl from L's client address through `ip -6 route add VIP via RIP` (what a DR director
// does: the VIP's packets to the RIP's MAC) gets the page from the VIP. TUN: IPv6 inside IPv6 and
// inside IPv4 built by hand (test/support/packet6.ts) and sent from L with an AF_PACKET socket
// reach a UDP socket on [VIP]:5353, whose answer leaves from the VIP, with no ICMPv6 error; an
// IPv4 VIP set up beside it takes IPv4 inside IPv6. doctor passes, and names disable_ipv6=1 on
// eth0. undo removes everything. Needs root, iproute2 and curl.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { addNetns, delNetns, ip, linkMac, nsExec, nsExecStatus } from "../../src/io/netns.js";
import { fileHas, jsPath, type ProcRef, spawnInNs, stopProc, waitFor } from "../../src/lab/proc.js";
import { e2eSkip } from "../support/e2e-env.js";
import {
  ETH_P_IP,
  ethFrame,
  ip as ip4,
  ipv4Datagram,
  mac,
  PROTO_UDP,
  udpDatagram,
} from "../support/packet-builder.js";
import {
  a6,
  a6Str,
  ETH_P_IPV6,
  icmp6Message,
  ipv6Packet,
  NH_ICMPV6,
  NH_IPV6,
  NH_UDP,
  udp6Datagram,
} from "../support/packet6.js";

const skip = e2eSkip("realserver IPv6 e2e", ["curl"]);

const CLI = fileURLToPath(new URL("../../src/cli/realserver.js", import.meta.url));
const AFPACKET = new URL("../../src/io/afpacket.js", import.meta.url).href;
const R = `tsvs6r-${process.pid}-r`;
const L = `tsvs6r-${process.pid}-l`;
const VIP = "fd00:6:100::100";
/** The same VIP as a user may write it (inet_pton takes it; tsvs prints the form above). */
const VIP_SPELLED = "FD00:6:100:0:0:0:0:100";
const RIP = "fd00:6:1::11";
const DIP = "fd00:6:1::1";
const CIP = "fd00:6:c::50";
const RIP4 = "198.18.61.11";
const DIP4 = "198.18.61.1";
const VIP4 = "198.18.60.100";
const CIP4 = "198.18.62.50";
const IPPROTO_IPIP = 4;
const ND_NS = 135;
const ND_NA = 136;

function rs(...args: string[]): { status: number; stdout: string; stderr: string } {
  return nsExecStatus(R, [process.execPath, CLI, ...args], 20_000);
}

function loAddrs(): { local: string; prefixlen: number; nodad?: boolean }[] {
  const info = JSON.parse(nsExec(R, ["ip", "-j", "addr", "show", "dev", "lo"])) as {
    addr_info: { local: string; prefixlen: number; nodad?: boolean }[];
  }[];
  return info[0].addr_info;
}

/** R's per-interface ICMPv6 counter (from /proc/net/dev_snmp6/IF). */
function icmp6Counter(ifname: string, name: string): number {
  const text = nsExec(R, ["cat", `/proc/net/dev_snmp6/${ifname}`]);
  const m = new RegExp(`^${name}\\s+(\\d+)`, "m").exec(text);
  return m === null ? -1 : Number(m[1]);
}

/**
 * From L's eth0 with an AF_PACKET socket: sends the frames, then keeps every frame that comes in
 * from R's MAC for `ms`; returns them (in L's namespace, so the probe is a host of the LAN).
 */
function probe(frames: Uint8Array[], rMac: string, ms: number): Uint8Array[] {
  const src = `
const { openPacketSocket } = await import(${JSON.stringify(AFPACKET)});
const s = openPacketSocket("eth0", { batch: 32 });
const from = ${JSON.stringify(rMac)}.split(":").map((x) => Number.parseInt(x, 16));
for (const h of ${JSON.stringify(frames.map((f) => Buffer.from(f).toString("hex")))}) {
  const f = Buffer.from(h, "hex");
  s.send(f, 0, f.length);
}
s.flush();
const kept = [];
const end = Date.now() + ${ms};
while (Date.now() < end) {
  const n = s.recvBatch(50);
  for (let i = 0; i < n; i++) {
    const f = s.frame(i);
    if (from.every((b, k) => f[6 + k] === b)) kept.push(Buffer.from(f.subarray(0, s.length(i))).toString("hex"));
  }
}
s.close();
console.log(JSON.stringify(kept));
`;
  const r = nsExecStatus(L, [process.execPath, "--input-type=module", "-e", src], ms + 10_000);
  assert.equal(r.status, 0, r.stderr);
  const last = r.stdout.trim().split("\n").pop() ?? "[]";
  return (JSON.parse(last) as string[]).map((h) => Uint8Array.from(Buffer.from(h, "hex")));
}

/** A neighbour solicitation from L for `target`, to `dstIp` (the solicited-node group or the target) at `dstMac`. */
function solicit(lMac: string, target: string, dstIp: string, dstMac: string): Uint8Array {
  const data = new Uint8Array(24);
  data.set(a6(target), 0);
  data.set([1, 1], 16); // source link-layer address option
  data.set(mac(lMac), 18);
  const msg = icmp6Message(DIP, dstIp, { type: ND_NS, data });
  return ethFrame(
    mac(dstMac),
    mac(lMac),
    ETH_P_IPV6,
    ipv6Packet({ src: DIP, dst: dstIp, hl: 255 }, NH_ICMPV6, msg),
  );
}

/** Is the 16-byte address at b[off] the address written s? */
function addrIs(b: Uint8Array, off: number, s: string): boolean {
  return a6Str(b, off) === a6Str(a6(s));
}

/** Neighbour advertisements among frames: their targets (uncompressed groups). */
function advertised(frames: Uint8Array[]): string[] {
  return frames
    .filter((f) => ((f[12] << 8) | f[13]) === ETH_P_IPV6 && f[20] === NH_ICMPV6 && f[54] === ND_NA)
    .map((f) => a6Str(f, 62));
}

/** ICMPv6 errors (types 1-4) among frames. */
function icmp6Errors(frames: Uint8Array[]): number {
  return frames.filter(
    (f) => ((f[12] << 8) | f[13]) === ETH_P_IPV6 && f[20] === NH_ICMPV6 && f[54] >= 1 && f[54] <= 4,
  ).length;
}

/** The payload of an IPv6 UDP datagram among frames from `src` port `sport` to `dst` port `dport`. */
function udp6Answer(
  frames: Uint8Array[],
  src: string,
  sport: number,
  dst: string,
  dport: number,
): string | null {
  for (const f of frames) {
    if (((f[12] << 8) | f[13]) !== ETH_P_IPV6 || f[20] !== NH_UDP) continue;
    if (!addrIs(f, 22, src) || !addrIs(f, 38, dst)) continue;
    if (((f[54] << 8) | f[55]) !== sport || ((f[56] << 8) | f[57]) !== dport) continue;
    return Buffer.from(f.subarray(62, 54 + ((f[58] << 8) | f[59]))).toString();
  }
  return null;
}

function udp4Answer(frames: Uint8Array[], src: string, dst: string, dport: number): string | null {
  for (const f of frames) {
    if (((f[12] << 8) | f[13]) !== ETH_P_IP || f[23] !== PROTO_UDP) continue;
    if (f.subarray(26, 30).join(".") !== src || f.subarray(30, 34).join(".") !== dst) continue;
    const l4 = 14 + (f[14] & 15) * 4;
    if (((f[l4 + 2] << 8) | f[l4 + 3]) !== dport) continue;
    return Buffer.from(f.subarray(l4 + 8, l4 + ((f[l4 + 4] << 8) | f[l4 + 5]))).toString();
  }
  return null;
}

/** A UDP responder on [addr]:port in R answering "r6\n" (started once the VIP is on lo). */
function udpResponder(log: string, addr: string, port: number): ProcRef {
  const src = `
const dgram = await import("node:dgram");
const s = dgram.createSocket(${JSON.stringify(addr.includes(":") ? "udp6" : "udp4")});
s.on("message", (_m, r) => s.send("r6\\n", r.port, r.address));
s.bind(${port}, ${JSON.stringify(addr)}, () => console.log("ready"));
`;
  return spawnInNs(R, [process.execPath, "--input-type=module", "-e", src], log, "udp responder");
}

function decapStats(file: string): { received: number; delivered: number } | null {
  try {
    return JSON.parse(
      readFileSync(`/run/tsvs/realserver/${statSync(`/run/netns/${R}`).ino}/${file}`, "utf8"),
    );
  } catch {
    return null;
  }
}

describe("tsvs realserver for an IPv6 VIP", { skip, timeout: 90_000 }, () => {
  const tmp = mkdtempSync(join(tmpdir(), "tsvs-rs6-"));
  const procs: ProcRef[] = [];
  let rMac = "";
  let lMac = "";

  before(() => {
    // Not freshNetns: it switches IPv6 off.
    for (const ns of [R, L]) {
      delNetns(ns);
      addNetns(ns);
    }
    ip("link", "add", "eth0", "netns", R, "type", "veth", "peer", "name", "eth0", "netns", L);
    for (const [ns, a6addr, a4] of [
      [R, RIP, RIP4],
      [L, DIP, DIP4],
    ]) {
      ip("-n", ns, "-6", "addr", "add", `${a6addr}/64`, "dev", "eth0", "nodad");
      ip("-n", ns, "addr", "add", `${a4}/24`, "dev", "eth0");
      ip("-n", ns, "link", "set", "eth0", "up");
      ip("-n", ns, "link", "set", "lo", "up");
    }
    ip("-n", L, "-6", "addr", "add", `${CIP}/128`, "dev", "lo", "nodad");
    ip("-n", L, "addr", "add", `${CIP4}/32`, "dev", "lo");
    ip("-n", R, "-6", "route", "add", "default", "via", DIP);
    ip("-n", R, "route", "add", "default", "via", DIP4);
    rMac = linkMac(R, "eth0");
    lMac = linkMac(L, "eth0");
  });

  after(async () => {
    for (const p of procs) await stopProc(p);
    rs("undo");
    delNetns(R);
    delNetns(L);
    rmSync(tmp, { recursive: true, force: true });
  });

  it("doctor fails on an unprepared server: the VIP is not on lo", () => {
    const r = rs("doctor", "--vip", VIP_SPELLED, "--method", "dr");
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stdout, /^tsvs realserver doctor: VIP fd00:6:100::100, method DR$/m);
    assert.match(
      r.stdout,
      /FAIL\s+VIP fd00:6:100::100 not on lo\n\s+.*ip -6 addr add fd00:6:100::100\/128 dev lo nodad/,
    );
    assert.match(r.stdout, /ok\s+disable_ipv6 eth0=0/);
    assert.match(r.stdout, /1 problem found/);
  });

  it("DR: setup puts the VIP on lo as /128 nodad; doctor passes", () => {
    const s = rs("setup", "--vip", VIP_SPELLED, "--method", "dr", "--director", DIP);
    assert.equal(s.status, 0, s.stderr);
    assert.match(s.stdout, /director-facing interface eth0: route to the director: fd00:6:1::1 via eth0/);
    assert.match(s.stdout, /added fd00:6:100::100\/128 on lo \(nodad/);
    const vip = loAddrs().find((a) => a.local === VIP);
    assert.deepEqual(vip && { prefixlen: vip.prefixlen, nodad: vip.nodad }, { prefixlen: 128, nodad: true });
    const d = rs("doctor", "--vip", VIP, "--method", "dr");
    assert.equal(d.status, 0, d.stdout);
    assert.match(d.stdout, /ok\s+VIP fd00:6:100::100\/128 on lo\n\s+local for the kernel, never advertised/);
    assert.match(d.stdout, /ok\s+IPv6 default route via fd00:6:1::1 dev eth0/);
    assert.match(d.stdout, /all good/);
  });

  it("DR: a neighbour solicitation for the VIP from the LAN gets no answer, multicast or unicast; one for the RIP does", () => {
    const before = icmp6Counter("eth0", "Icmp6InNeighborSolicits");
    // ff02::1:ff00:100 is the VIP's solicited-node group (its last 24 bits); its MAC 33:33:ff:00:01:00.
    const got = probe(
      [solicit(lMac, VIP, "ff02::1:ff00:100", "33:33:ff:00:01:00"), solicit(lMac, VIP, VIP, rMac)],
      rMac,
      1500,
    );
    assert.deepEqual(advertised(got), [], "no advertisement for the VIP");
    // The unicast one reached ndisc_recv_ns (counted on eth0) and was ignored there; the multicast one
    // was not even taken in: eth0 never joined the VIP's group (lo joins none).
    assert.equal(icmp6Counter("eth0", "Icmp6InNeighborSolicits") - before, 1);
    const rip = probe([solicit(lMac, RIP, "ff02::1:ff00:11", "33:33:ff:00:00:11")], rMac, 1000);
    assert.deepEqual(advertised(rip), [a6Str(a6(RIP))], "the probe works: the RIP is advertised");
  });

  it("DR: curl through `ip -6 route add VIP via RIP` (the director's job) is answered from the VIP", async () => {
    const log = join(tmp, "http.log");
    const p = spawnInNs(
      R,
      [process.execPath, jsPath("src/lab/server.js"), "--name", "rs6", "--http", "80"],
      log,
      "http",
    );
    procs.push(p);
    assert.ok(await waitFor(() => fileHas(log, "ready"), 5000), "HTTP server ready");
    ip("-n", L, "-6", "route", "add", `${VIP}/128`, "via", RIP, "src", CIP);
    // The client's end of the connection as curl saw it: from the address off the link (so R
    // answered by its default route) to [VIP]:80 (so every segment back came from the VIP). Read
    // from curl itself: ss would race the close, which may leave the client no socket to list.
    let ends = "";
    const ok = await waitFor(
      () => {
        const r = nsExecStatus(
          L,
          [
            "curl",
            "-g",
            "-s",
            "--max-time",
            "3",
            "-w",
            "%{local_ip} %{remote_ip}:%{remote_port}",
            `http://[${VIP}]/`,
          ],
          8000,
        );
        ends = r.stdout.slice(4);
        return r.status === 0 && r.stdout.startsWith("rs6\n");
      },
      10_000,
      200,
    );
    assert.ok(ok, "the page from [VIP]:80");
    assert.equal(ends, `${CIP} ${VIP}:80`);
    ip("-n", L, "-6", "route", "del", `${VIP}/128`);
  });

  it("undo removes the VIP and the state; TUN setup starts the IPv6-in-IP decapsulator", () => {
    const u = rs("undo", "--vip", VIP);
    assert.equal(u.status, 0, u.stderr);
    assert.match(u.stdout, /removed fd00:6:100::100\/128 from lo/);
    assert.ok(!loAddrs().some((a) => a.local === VIP));
    const s = rs("setup", "--vip", VIP, "--method", "tun");
    assert.equal(s.status, 0, s.stderr);
    assert.match(
      s.stdout,
      /this kernel lacks the ip6_tunnel and sit modules|the kernel has the ip6_tunnel and sit modules/,
    );
    assert.equal(nsExec(R, ["cat", "/proc/sys/net/ipv6/conf/tsvsip6tnl0/disable_ipv6"]).trim(), "0");
  });

  it("TUN: IPv6 inside IPv6 and inside IPv4, built by hand, reach a UDP socket on [VIP]:5353; the answers leave from the VIP; no ICMPv6 error", async () => {
    const log = join(tmp, "udp6.log");
    procs.push(udpResponder(log, VIP, 5353));
    assert.ok(await waitFor(() => fileHas(log, "ready"), 5000), "responder ready");
    const inner = (sport: number): Uint8Array =>
      ipv6Packet(
        { src: CIP, dst: VIP },
        NH_UDP,
        udp6Datagram(CIP, VIP, { sport, dport: 5353, payload: Buffer.from("who?") }),
      );
    const in6 = ethFrame(
      mac(rMac),
      mac(lMac),
      ETH_P_IPV6,
      ipv6Packet({ src: DIP, dst: RIP }, NH_IPV6, inner(40000)),
    );
    const in4 = ethFrame(
      mac(rMac),
      mac(lMac),
      ETH_P_IP,
      ipv4Datagram({ src: ip4(DIP4), dst: ip4(RIP4), proto: NH_IPV6, payload: inner(40001), df: true }),
    );
    const got = probe([in6, in4], rMac, 2000);
    assert.equal(udp6Answer(got, VIP, 5353, CIP, 40000), "r6\n", "IPv6 in IPv6 answered from [VIP]:5353");
    assert.equal(udp6Answer(got, VIP, 5353, CIP, 40001), "r6\n", "IPv6 in IPv4 answered from [VIP]:5353");
    assert.equal(icmp6Errors(got), 0, "no ICMPv6 parameter problem for next header 41");
    assert.ok(await waitFor(() => (decapStats("decap6-stats.json")?.delivered ?? 0) >= 2, 3000), "counted");
    const d = rs("doctor", "--vip", VIP, "--method", "tun");
    assert.equal(d.status, 0, d.stdout);
    assert.match(
      d.stdout,
      /ok\s+IPv6-in-IP decapsulator pid \d+, tsvsip6tnl0 present\n\s+user-space decapsulation into tsvsip6tnl0; received 2, delivered 2, bad 0, not local 0, write errors 0; accepts every local address; reads IPv6 next header 41, IPv4 protocol 41/,
    );
  });

  it("TUN, dual stack: an IPv4 VIP set up beside it takes IPv4 inside IPv6 (next header 4)", async () => {
    const s = rs("setup", "--vip", VIP4, "--method", "tun");
    assert.equal(s.status, 0, s.stderr);
    const log = join(tmp, "udp4.log");
    procs.push(udpResponder(log, VIP4, 5354));
    assert.ok(await waitFor(() => fileHas(log, "ready"), 5000), "responder ready");
    const inner = ipv4Datagram({
      src: ip4(CIP4),
      dst: ip4(VIP4),
      proto: PROTO_UDP,
      payload: udpDatagram(ip4(CIP4), ip4(VIP4), { sport: 40002, dport: 5354, payload: Buffer.from("who?") }),
    });
    const got = probe(
      [ethFrame(mac(rMac), mac(lMac), ETH_P_IPV6, ipv6Packet({ src: DIP, dst: RIP }, IPPROTO_IPIP, inner))],
      rMac,
      2000,
    );
    assert.equal(udp4Answer(got, VIP4, CIP4, 40002), "r6\n", "answered from VIP4:5354");
    assert.equal(icmp6Errors(got), 0);
    for (const vip of [VIP, VIP4]) {
      const d = rs("doctor", "--vip", vip, "--method", "tun");
      assert.equal(d.status, 0, `${vip}: ${d.stdout}`);
    }
  });

  it("doctor names disable_ipv6=1 on the director-facing interface; undo takes both VIPs and decapsulators away", () => {
    nsExec(R, ["sysctl", "-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=1"]);
    const d = rs("doctor", "--vip", VIP, "--method", "tun", "--iface", "eth0");
    assert.equal(d.status, 1, d.stdout);
    assert.match(
      d.stdout,
      /FAIL\s+disable_ipv6 eth0=1\n\s+IPv6 off on eth0: ipv6_rcv drops every IPv6 packet arriving there/,
    );
    const u = rs("undo");
    assert.equal(u.status, 0, u.stderr);
    assert.match(u.stdout, /stopped the IPIP decapsulator/);
    assert.match(u.stdout, /stopped the IPv6-in-IP decapsulator/);
    assert.equal(nsExec(R, ["cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"]).trim(), "0", "restored");
    const lo = loAddrs().map((a) => a.local);
    assert.ok(!lo.includes(VIP) && !lo.includes(VIP4), lo.join(" "));
    for (const dev of ["tsvsip6tnl0", "tsvsipip0"])
      assert.notEqual(nsExecStatus(R, ["ip", "link", "show", "dev", dev]).status, 0, `${dev} gone`);
  });
});
