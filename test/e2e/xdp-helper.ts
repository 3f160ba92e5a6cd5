// Child process for test/e2e/xdp.test.ts, run as `ip netns exec NS node xdp-helper.js echo …`.
// Prints JSON lines: {"ready":…} once the program is attached and the sockets are bound, then one
// result line when it ends (after SECONDS, or SIGTERM).
//
//   echo IFNAME SECONDS SPEC_JSON   → attaches the XDP program with the sets of SPEC_JSON
//                                      ({owned, locals, nat}: src/io/xdp-prog.ts XdpSetsSpec), and
//                                      sends every UDP/ICMP frame it receives back where it came
//                                      from, addresses and ports swapped, from the same UMEM frame

import { completeL4Checksum } from "../../src/io/packet-common.js";
import { Umem, XdpLink } from "../../src/io/xdp.js";
import { createXskMap, XdpSets, type XdpSetsSpec } from "../../src/io/xdp-prog.js";

function swap(f: Uint8Array, a: number, b: number, n: number): void {
  for (let i = 0; i < n; i++) {
    const t = f[a + i];
    f[a + i] = f[b + i];
    f[b + i] = t;
  }
}

function echo(ifname: string, seconds: number, spec: XdpSetsSpec): void {
  const umem = new Umem(1024, 4096);
  const sets = new XdpSets();
  sets.update(spec);
  const link = XdpLink.open(ifname, { program: (x) => sets.program(x) }, createXskMap, umem);
  const s0 = link.sockets[0];
  console.log(
    JSON.stringify({
      ready: true,
      mode: link.mode,
      queues: link.sockets.length,
      zeroCopy: s0.zeroCopy,
      finishChecksums: s0.finishChecksums,
    }),
  );
  let stop = false;
  process.on("SIGTERM", () => {
    stop = true;
  });
  let echoed = 0;
  let other = 0;
  const dsts: Record<string, number> = {};
  const end = performance.now() + seconds * 1000;
  const tick = (): void => {
    // Up to 50 ms per turn of the event loop, so that SIGTERM is seen.
    const turnEnd = performance.now() + 50;
    while (!stop && performance.now() < end) {
      if (performance.now() > turnEnd) {
        setImmediate(tick);
        return;
      }
      for (const s of link.sockets) {
        const n = s.recvBatch(1);
        for (let i = 0; i < n; i++) {
          const f = s.frame(i);
          const len = s.length(i);
          const d = `${f[30]}.${f[31]}.${f[32]}.${f[33]}`;
          dsts[d] = (dsts[d] ?? 0) + 1;
          if (f[12] !== 0x08 || f[13] !== 0 || (f[23] !== 17 && f[23] !== 1)) {
            other++;
            continue;
          }
          if (s.offload(i) !== 0) completeL4Checksum(f, len);
          swap(f, 0, 6, 6);
          swap(f, 26, 30, 4);
          if (f[23] === 17) swap(f, 34, 36, 2);
          else {
            // echo request → reply: the checksum moves by the type's difference (RFC 1624)
            f[34] = 0;
            const c = ((f[36] << 8) | f[37]) + 0x0800;
            const folded = (c & 0xffff) + (c >>> 16);
            f[36] = folded >>> 8;
            f[37] = folded & 0xff;
          }
          s.forward(i, 0, len);
          echoed++;
        }
        s.flush();
      }
    }
    const s = link.sockets[0];
    const result = {
      echoed,
      other,
      dsts,
      counters: s.counters,
      completions: s.completions,
      kicks: s.txKicks,
      xdp: s.xdpStatistics(),
      freeFrames: umem.freeFrames,
    };
    link.close();
    sets.close();
    umem.free();
    console.log(JSON.stringify(result));
  };
  tick();
}

const [mode, ...args] = process.argv.slice(2);
// Without a mode it is the test runner loading every file of test/: nothing to do.
if (mode === undefined) process.exitCode = 0;
else if (mode === "echo") echo(args[0], Number(args[1]), JSON.parse(args[2]) as XdpSetsSpec);
else {
  console.error(`unknown mode ${mode}`);
  process.exitCode = 2;
}
