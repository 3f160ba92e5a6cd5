// The scale-out lab's load (`tsvs lab demo --scale`, test/e2e/scale-out.test.ts): M long HTTP
// downloads through the VIP at once, from several client addresses (each connection its own
// ephemeral port), paced by the server (`/bytes/N?rate=BPS`, src/lab/server.ts) and checked byte by
// byte as they stream in (byte i = i mod 256), so that a connection that broke, lost or mixed bytes
// is told from one that completed intact. Run inside the client namespace:
//
//   node dist/src/lab/scale-load.js --vip V [--port 80] --sources A,B,… --conns M --bytes N
//                                   --rate BPS [--timeout-ms T]
//
// Prints JSON lines: {"established":M,"failed":F} once every connection has its response headers
// (or failed), then {"done":[…]} with one entry per connection (source address and port, bytes,
// the first wrong byte or -1, the error, the time) when all ended or the timeout stopped them.

import { request } from "node:http";
import { pathToFileURL } from "node:url";
import { TsvsError } from "../core/errors.js";

export interface LoadOptions {
  vip: string;
  port: number;
  sources: string[];
  conns: number;
  bytes: number;
  rate: number;
  timeoutMs: number;
}

export interface LoadResult {
  src: string;
  sport: number;
  bytes: number;
  /** Offset of the first byte that is not i mod 256, or -1. */
  firstBad: number;
  /** "" when the response ended normally. */
  error: string;
  ms: number;
}

/** A result is intact when the whole body arrived, every byte right, and nothing failed. */
export function intact(r: LoadResult, bytes: number): boolean {
  return r.error === "" && r.bytes === bytes && r.firstBad < 0;
}

/** Runs the downloads; `onEstablished` is called once every connection has headers or failed. */
export function runLoad(
  o: LoadOptions,
  onEstablished: (established: number, failed: number) => void,
): Promise<LoadResult[]> {
  const results: LoadResult[] = [];
  let established = 0;
  let failedEarly = 0;
  let ended = 0;
  let announced = false;
  const announce = (): void => {
    if (!announced && established + failedEarly === o.conns) {
      announced = true;
      onEstablished(established, failedEarly);
    }
  };
  return new Promise((resolve) => {
    const t0 = Date.now();
    const reqs: ReturnType<typeof request>[] = [];
    const finish = (): void => {
      if (ended === o.conns) {
        clearTimeout(timer);
        resolve(results);
      }
    };
    const timer = setTimeout(() => {
      for (const r of reqs) r.destroy(new Error(`timeout after ${o.timeoutMs} ms`));
    }, o.timeoutMs);
    for (let i = 0; i < o.conns; i++) {
      const res: LoadResult = {
        src: o.sources[i % o.sources.length],
        sport: 0,
        bytes: 0,
        firstBad: -1,
        error: "",
        ms: 0,
      };
      results.push(res);
      let headers = false;
      let done = false;
      const end = (err: string): void => {
        if (done) return;
        done = true;
        res.error = err;
        res.ms = Date.now() - t0;
        if (!headers) {
          failedEarly++;
          announce();
        }
        ended++;
        finish();
      };
      const req = request({
        host: o.vip,
        port: o.port,
        path: `/bytes/${o.bytes}?rate=${o.rate}`,
        localAddress: res.src,
        agent: false,
        headers: { connection: "close" },
      });
      reqs.push(req);
      req.on("socket", (s) => {
        s.once("connect", () => {
          res.sport = s.localPort ?? 0;
        });
      });
      req.on("response", (resp) => {
        headers = true;
        established++;
        announce();
        if (resp.statusCode !== 200) {
          end(`HTTP ${resp.statusCode}`);
          resp.resume();
          return;
        }
        resp.on("data", (c: Buffer) => {
          if (res.firstBad < 0) {
            const base = res.bytes;
            for (let j = 0; j < c.length; j++) {
              if (c[j] !== ((base + j) & 0xff)) {
                res.firstBad = base + j;
                break;
              }
            }
          }
          res.bytes += c.length;
        });
        resp.on("end", () => end(res.bytes === o.bytes ? "" : `short body (${res.bytes} of ${o.bytes})`));
        resp.on("error", (e) => end(e.message));
        resp.on("aborted", () => end("aborted"));
      });
      req.on("error", (e) => end(e.message));
      req.end();
    }
  });
}

function parseArgs(argv: string[]): LoadOptions {
  const o: LoadOptions = { vip: "", port: 80, sources: [], conns: 1, bytes: 1, rate: 0, timeoutMs: 60_000 };
  const num = (v: string | undefined, name: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new TsvsError("TSVS_ERR_USAGE", `${name} needs an integer`);
    return n;
  };
  for (let i = 0; i < argv.length; i += 2) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case "--vip":
        o.vip = v ?? "";
        break;
      case "--port":
        o.port = num(v, "--port");
        break;
      case "--sources":
        o.sources = (v ?? "").split(",").filter((s) => s !== "");
        break;
      case "--conns":
        o.conns = num(v, "--conns");
        break;
      case "--bytes":
        o.bytes = num(v, "--bytes");
        break;
      case "--rate":
        o.rate = num(v, "--rate");
        break;
      case "--timeout-ms":
        o.timeoutMs = num(v, "--timeout-ms");
        break;
      default:
        throw new TsvsError("TSVS_ERR_USAGE", `unknown argument '${argv[i]}'`);
    }
  }
  if (o.vip === "" || o.sources.length === 0 || o.conns < 1)
    throw new TsvsError("TSVS_ERR_USAGE", "--vip, --sources and --conns are required");
  return o;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const o = parseArgs(process.argv.slice(2));
    const results = await runLoad(o, (established, failed) => {
      process.stdout.write(`${JSON.stringify({ established, failed })}\n`);
    });
    process.stdout.write(`${JSON.stringify({ done: results })}\n`);
  } catch (e) {
    process.stderr.write(`scale load: ${(e as Error).message}\n`);
    process.exit(1);
  }
}
