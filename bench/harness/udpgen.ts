// The bench's own small-packet generator, used when trafgen (netsniff-ng) is not installed: builds
// one Ethernet/IPv4/UDP frame and sends it through an AF_PACKET socket (src/io/afpacket.ts,
// sendmmsg batches of 64), cycling the source port so that the director spreads the flows.
// Bounded by a frame count and a time limit; prints {"sent":N,"seconds":S} on stdout.
//
//   node dist/bench/harness/udpgen.js --iface eth0 --dst-mac MAC --src IP --dst IP --dport 53
//        [--sports 256] [--payload 64] [--seconds 10] [--count N]

import { parseIPv4 } from "../../src/core/addr.js";
import { ETH_HLEN, parseMac, writeEthHeader } from "../../src/core/packet/eth.js";
import { IPV4_HLEN, writeIpv4Header } from "../../src/core/packet/ipv4.js";
import { UDP_HLEN } from "../../src/core/packet/udp.js";
import { openPacketSocket } from "../../src/io/afpacket.js";

function arg(argv: readonly string[], name: string, def?: string): string {
  const i = argv.indexOf(name);
  if (i >= 0 && i + 1 < argv.length) return argv[i + 1];
  if (def === undefined) throw new Error(`udpgen: ${name} is required`);
  return def;
}

function main(argv: readonly string[]): number {
  const iface = arg(argv, "--iface");
  const dstMac = parseMac(arg(argv, "--dst-mac"));
  const src = parseIPv4(arg(argv, "--src"));
  const dst = parseIPv4(arg(argv, "--dst"));
  const dport = Number(arg(argv, "--dport"));
  const sports = Math.max(1, Number(arg(argv, "--sports", "256")));
  const payload = Number(arg(argv, "--payload", "64"));
  const seconds = Number(arg(argv, "--seconds", "10"));
  const count = Number(arg(argv, "--count", "100000000"));
  if (dstMac === null || src === null || dst === null) throw new Error("udpgen: bad address");
  const sock = openPacketSocket(iface, { batch: 64, auxdata: false });
  const len = ETH_HLEN + IPV4_HLEN + UDP_HLEN + payload;
  const tmpl = new Uint8Array(len);
  writeEthHeader(tmpl, 0, dstMac, sock.mac, 0x0800);
  writeIpv4Header(tmpl, ETH_HLEN, 0, IPV4_HLEN + UDP_HLEN + payload, 0, 0x4000, 64, 17, src, dst);
  const u = ETH_HLEN + IPV4_HLEN;
  tmpl[u + 2] = dport >>> 8;
  tmpl[u + 3] = dport & 0xff;
  tmpl[u + 4] = (UDP_HLEN + payload) >>> 8;
  tmpl[u + 5] = (UDP_HLEN + payload) & 0xff;
  // UDP checksum 0: not computed, valid for IPv4 (RFC 768).
  tmpl.fill(0x41, u + UDP_HLEN);
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
