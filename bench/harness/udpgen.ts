// The bench's own small-packet generator, used when trafgen (netsniff-ng) is not installed: builds
// one Ethernet/IPv4/UDP frame (IPv6 when --src and --dst are IPv6) and sends it through an AF_PACKET socket (src/io/afpacket.ts,
// sendmmsg batches of 64), cycling the source port so that the director spreads the flows.
// Bounded by a frame count and a time limit; prints {"sent":N,"seconds":S} on stdout.
//
//   node dist/bench/harness/udpgen.js --iface eth0 --dst-mac MAC --src IP --dst IP --dport 53
//        [--sports 256] [--payload 64] [--seconds 10] [--count N]

import { parseIPv4, parseIPv6 } from "../../src/core/addr.js";
import { csumAdd, csumFinish } from "../../src/core/packet/csum.js";
import { ETH_HLEN, parseMac, writeEthHeader } from "../../src/core/packet/eth.js";
import { IPV4_HLEN, writeIpv4Header } from "../../src/core/packet/ipv4.js";
import { writeIpv6Header } from "../../src/core/packet/ipv6.js";
import { UDP_HLEN } from "../../src/core/packet/udp.js";
import { openPacketSocket } from "../../src/io/afpacket.js";

function arg(argv: readonly string[], name: string, def?: string): string {
  const i = argv.indexOf(name);
  if (i >= 0 && i + 1 < argv.length) return argv[i + 1];
  if (def === undefined) throw new Error(`udpgen: ${name} is required`);
  return def;
}

const IPV6_HLEN = 40;

function main(argv: readonly string[]): number {
  const iface = arg(argv, "--iface");
  const dstMac = parseMac(arg(argv, "--dst-mac"));
  const srcText = arg(argv, "--src");
  const dstText = arg(argv, "--dst");
  const dport = Number(arg(argv, "--dport"));
  const sports = Math.max(1, Number(arg(argv, "--sports", "256")));
  const payload = Number(arg(argv, "--payload", "64"));
  const seconds = Number(arg(argv, "--seconds", "10"));
  const count = Number(arg(argv, "--count", "100000000"));
  if (dstMac === null) throw new Error("udpgen: bad --dst-mac");
  const src6 = srcText.includes(":") ? parseIPv6(srcText) : null;
  const dst6 = dstText.includes(":") ? parseIPv6(dstText) : null;
  const ipv6 = src6 !== null && dst6 !== null;
  const sock = openPacketSocket(iface, { batch: 64, auxdata: false });
  const l3len = ipv6 ? IPV6_HLEN : IPV4_HLEN;
  const len = ETH_HLEN + l3len + UDP_HLEN + payload;
  const tmpl = new Uint8Array(len);
  const u = ETH_HLEN + l3len;
  if (src6 !== null && dst6 !== null) {
    writeEthHeader(tmpl, 0, dstMac, sock.mac, 0x86dd);
    writeIpv6Header(tmpl, ETH_HLEN, 0, 0, UDP_HLEN + payload, 17, 64, src6, 0, dst6, 0);
  } else {
    const src = parseIPv4(srcText);
    const dst = parseIPv4(dstText);
    if (src === null || dst === null) throw new Error("udpgen: bad address");
    writeEthHeader(tmpl, 0, dstMac, sock.mac, 0x0800);
    writeIpv4Header(tmpl, ETH_HLEN, 0, IPV4_HLEN + UDP_HLEN + payload, 0, 0x4000, 64, 17, src, dst);
  }
  tmpl[u + 2] = dport >>> 8;
  tmpl[u + 3] = dport & 0xff;
  tmpl[u + 4] = (UDP_HLEN + payload) >>> 8;
  tmpl[u + 5] = (UDP_HLEN + payload) & 0xff;
  // IPv4: checksum 0, not computed (RFC 768). IPv6 forbids 0 (RFC 8200 8.1): one checksum per
  // source port, computed before the loop.
  tmpl.fill(0x41, u + UDP_HLEN);
  const csums = new Uint16Array(sports);
  if (ipv6) {
    for (let p = 0; p < sports; p++) {
      const sp = 1024 + p;
      tmpl[u] = sp >>> 8;
      tmpl[u + 1] = sp & 0xff;
      let sum = csumAdd(tmpl, ETH_HLEN + 8, 32);
      sum += 17 + UDP_HLEN + payload;
      sum = csumAdd(tmpl, u, UDP_HLEN + payload, sum);
      const c = csumFinish(sum);
      csums[p] = c === 0 ? 0xffff : c;
    }
  }
  let running = true;
  process.on("SIGINT", () => {
    running = false;
  });
  process.on("SIGTERM", () => {
    running = false;
  });
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  let sent = 0;
  let port = 0;
  while (running && sent < count) {
    for (let k = 0; k < 64 && sent < count; k++) {
      const b = sock.txBuffer();
      b.set(tmpl);
      const sp = 1024 + port;
      b[u] = sp >>> 8;
      b[u + 1] = sp & 0xff;
      b[u + 6] = csums[port] >>> 8;
      b[u + 7] = csums[port] & 0xff;
      port = port + 1 === sports ? 0 : port + 1;
      sock.commit(len);
      sent++;
    }
    sock.flush();
    // Signals are delivered between turns of the event loop only: the time bound is what stops a run.
    if (performance.now() > deadline) break;
  }
  sock.flush();
  const s = (performance.now() - t0) / 1000;
  process.stdout.write(
    `${JSON.stringify({ sent: sock.counters.txFrames, dropped: sock.counters.txDropped, seconds: s })}\n`,
  );
  sock.close();
  return 0;
}

process.exitCode = main(process.argv.slice(2));
