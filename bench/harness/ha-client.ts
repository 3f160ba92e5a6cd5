// The client side of bench/ha.ts, run inside the client namespace (`ip netns exec C node ha-client.js …`).
// One short TCP connection per request: connect, `GET / HTTP/1.0`, read the answer to its end (the
// server closes first, so TIME_WAIT stays on the servers, not on the client's ports).
//
//   probe HOST PORT INTERVAL_MS TIMEOUT_MS MAX_S
//       starts a request every INTERVAL_MS (each bounded by TIMEOUT_MS, so at most
//       TIMEOUT_MS / INTERVAL_MS in flight) and prints `ok T0 T1` (ms since the epoch: start and
//       end) for each success, `fail T0 T1` for each failure; stops after MAX_S or on SIGTERM.
//   load HOST PORT RATE CONCURRENCY SECONDS
//       RATE 0: CONCURRENCY requests in flight, each followed by the next at once (closed loop);
//       RATE > 0: RATE requests per second (open loop), at most CONCURRENCY in flight (a start
//       that would exceed it is skipped and counted). Prints one JSON line at the end:
//       {"ok":N,"fail":N,"skipped":N,"seconds":S}.

import { connect } from "node:net";

const REQUEST = "GET / HTTP/1.0\r\nConnection: close\r\n\r\n";

/** One request; resolves true when an HTTP 200 answer arrived and the server closed. */
function request(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let head = "";
    let done = false;
    const s = connect({ host, port });
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    s.setNoDelay(true);
    s.on("connect", () => s.write(REQUEST));
    s.on("data", (d: Buffer) => {
      if (head.length < 64) head += d.toString("latin1");
    });
    s.on("end", () => finish(head.startsWith("HTTP/1.1 200") || head.startsWith("HTTP/1.0 200")));
    s.on("error", () => finish(false));
  });
}

async function probe(
  host: string,
  port: number,
  intervalMs: number,
  timeoutMs: number,
  maxS: number,
): Promise<void> {
  const end = Date.now() + maxS * 1000;
  let stop = false;
  process.once("SIGTERM", () => {
    stop = true;
  });
  const inflight = new Set<Promise<void>>();
  while (!stop && Date.now() < end) {
    const t0 = Date.now();
    const p = request(host, port, timeoutMs).then((ok) => {
      process.stdout.write(`${ok ? "ok" : "fail"} ${t0} ${Date.now()}\n`);
      inflight.delete(p);
    });
    inflight.add(p);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  await Promise.all(inflight);
}

async function load(host: string, port: number, rate: number, conc: number, seconds: number): Promise<void> {
  const t0 = Date.now();
  const end = t0 + seconds * 1000;
  let ok = 0;
  let fail = 0;
  let skipped = 0;
  const one = async (): Promise<void> => {
    if (await request(host, port, 5000)) ok++;
    else fail++;
  };
  if (rate <= 0) {
    const worker = async (): Promise<void> => {
      while (Date.now() < end) await one();
    };
    await Promise.all(Array.from({ length: conc }, worker));
  } else {
    // Open loop: the n-th request is due at t0 + n / rate; timers fire every ≥ 1 ms, so each tick
    // starts every request that has come due.
    let n = 0;
    let inflight = 0;
    while (Date.now() < end) {
      const due = Math.floor(((Date.now() - t0) * rate) / 1000);
      for (; n < due; n++) {
        if (inflight >= conc) {
          skipped++;
          continue;
        }
        inflight++;
        void one().then(() => {
          inflight--;
        });
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    // Every request is bounded by its 5 s timeout.
    for (let i = 0; i < 300 && inflight > 0; i++) await new Promise((r) => setTimeout(r, 20));
  }
  process.stdout.write(`${JSON.stringify({ ok, fail, skipped, seconds: (Date.now() - t0) / 1000 })}\n`);
}

const [mode, host, portS, a, b, c] = process.argv.slice(2);
const port = Number(portS);
if (mode === "probe") await probe(host, port, Number(a), Number(b), Number(c));
else if (mode === "load") await load(host, port, Number(a), Number(b), Number(c));
else {
  process.stderr.write(
    "usage: ha-client.js probe HOST PORT INTERVAL_MS TIMEOUT_MS MAX_S | load HOST PORT RATE CONCURRENCY SECONDS\n",
  );
  process.exitCode = 2;
}
