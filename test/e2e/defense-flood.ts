// Child process for test/e2e/defense.test.ts, run as
// `ip netns exec NS node defense-flood.js IFNAME DST_MAC VIP PORT COUNT MS`: sends COUNT TCP SYNs to
// VIP:PORT from random sources inside 198.18.128.0/17 (never another address) and random ports,
// spread evenly over MS milliseconds (bounded in count and time), through an AF_PACKET socket.
// Frames are built here by hand, independently of src/core/packet. Prints one JSON line.
//
// Run without arguments (e.g. picked up by `node --test dist/test/`), it does nothing.

import { openPacketSocket } from "../../src/io/afpacket.js";

/** 198.18.128.0/17: the sources are this prefix plus 15 random bits. */
const SPOOF_BASE = (198 << 24) | (18 << 16) | (128 << 8);
const SPOOF_MASK = 0x7fff;

function sum16(b: Uint8Array, off: number, len: number, init: number): number {
  let s = init;
  for (let i = 0; i < len; i += 2) s += (b[off + i] << 8) | (i + 1 < len ? b[off + i + 1] : 0);
  return s;
}

function fold(s: number): number {
  let x = s;
  while (x > 0xffff) x = (x & 0xffff) + (x >>> 16);
  return ~x & 0xffff;
}

function put32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = (v >>> 16) & 0xff;
  b[off + 2] = (v >>> 8) & 0xff;
  b[off + 3] = v & 0xff;
}

/** One SYN (Ethernet + IPv4 20 + TCP 20) from src:sport to dst:dport, checksums filled in. */
function syn(f: Uint8Array, src: number, sport: number, dst: number, dport: number, seq: number): void {
  f.set([0x08, 0x00], 12);
  const ip = 14;
  f.fill(0, ip, 54);
  f[ip] = 0x45;
  f[ip + 3] = 40; // total length
  f[ip + 6] = 0x40; // DF
  f[ip + 8] = 64; // TTL
  f[ip + 9] = 6; // TCP
  put32(f, ip + 12, src);
  put32(f, ip + 16, dst);
  const ic = fold(sum16(f, ip, 20, 0));
  f[ip + 10] = ic >>> 8;
  f[ip + 11] = ic & 0xff;
  const t = 34;
  f[t] = sport >>> 8;
  f[t + 1] = sport & 0xff;
  f[t + 2] = dport >>> 8;
  f[t + 3] = dport & 0xff;
  put32(f, t + 4, seq);
  f[t + 12] = 5 << 4; // data offset 5 words
  f[t + 13] = 0x02; // SYN
  f[t + 14] = 0xff; // window 65535
  f[t + 15] = 0xff;
  // Pseudo-header: source, destination, protocol 6, TCP length 20.
  const pseudo = sum16(f, ip + 12, 8, 6 + 20);
  const tc = fold(sum16(f, t, 20, pseudo));
  f[t + 16] = tc >>> 8;
  f[t + 17] = tc & 0xff;
}

function main(argv: string[]): void {
  if (argv.length === 0) return;
  const [ifname, mac, vip, port, count, ms] = argv;
  const n = Math.min(Number(count), 100_000);
  const span = Math.min(Number(ms), 20_000);
  const dst = vip.split(".").reduce((a, p) => ((a << 8) | Number(p)) >>> 0, 0);
  const s = openPacketSocket(ifname);
  const f = new Uint8Array(60);
  f.set(
    mac.split(":").map((x) => Number.parseInt(x, 16)),
    0,
  );
  f.set(s.mac, 6);
  let sent = 0;
  const t0 = Date.now();
  const tick = (): void => {
    // Send what is due by now, in whole rounds; stop at COUNT or when MS is over.
    const due = Math.min(n, Math.ceil(((Date.now() - t0 + 10) / span) * n));
    for (; sent < due; sent++) {
      const src = (SPOOF_BASE | (Math.floor(Math.random() * 0x10000) & SPOOF_MASK)) >>> 0;
      const sport = 1024 + Math.floor(Math.random() * 64512);
      syn(f, src, sport, dst, Number(port), Math.floor(Math.random() * 0x100000000));
      s.send(f, 0, f.length);
    }
    s.flush();
    if (sent < n && Date.now() - t0 < span + 1000) setTimeout(tick, 10);
    else {
      s.close();
      process.stdout.write(`${JSON.stringify({ ok: true, sent, ms: Date.now() - t0 })}\n`);
    }
  };
  tick();
}

main(process.argv.slice(2));
