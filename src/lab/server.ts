// The lab's real-server application when nginx is not installed (and its UDP responder when it is):
//
//   node dist/src/lab/server.js --name r1 --http 80,8080 --udp 53
//
// HTTP: `GET /bytes/N` answers N pattern bytes (byte i = i mod 256, so a receiver can check every
// byte without a copy of the body; `?rate=BPS` paces them at BPS bytes a second), `GET /port` the local port the request came to (port mapping
// tests), `POST /sink` reads the body and answers "r1 N\n" (N bytes received), anything else
// answers the server's name and a newline ("r1\n").
// UDP: every datagram is answered with the name and a newline, from the address it was sent to
// (one socket per local address, see startLabServer).
// A port may be written ADDR:PORT to bind one address (nginx proxies /bytes/ to 127.0.0.1:PORT).

import { createSocket, type Socket } from "node:dgram";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { networkInterfaces } from "node:os";
import { pathToFileURL } from "node:url";
import { TsvsError } from "../core/errors.js";

/** The largest body /bytes/N serves (1 GiB): bigger N is refused with 400. */
export const MAX_BYTES = 1 << 30;
const CHUNK = 64 * 1024;

/** The pattern of /bytes/N from byte `start` on: byte i = i mod 256. */
export function patternChunk(start: number, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) b[i] = (start + i) & 0xff;
  return b;
}

/** A 64 KiB pattern chunk whose start is a multiple of 256, shared by every response. */
const SHARED_CHUNK = patternChunk(0, CHUNK);

export interface ListenSpec {
  host: string | undefined;
  port: number;
}

/** "80,8080,127.0.0.1:8099" → specs; throws on a malformed entry. */
export function parsePorts(s: string): ListenSpec[] {
  return s
    .split(",")
    .filter((p) => p.trim() !== "")
    .map((p) => {
      const i = p.lastIndexOf(":");
      const host = i >= 0 ? p.slice(0, i) : undefined;
      const port = Number(i >= 0 ? p.slice(i + 1) : p);
      if (!Number.isInteger(port) || port < 1 || port > 65535)
        throw new TsvsError("TSVS_ERR_USAGE", `bad port '${p}'`);
      return { host, port };
    });
}

function text(res: ServerResponse, body: string): void {
  res.writeHead(200, { "content-type": "text/plain", "content-length": String(Buffer.byteLength(body)) });
  res.end(body);
}

function handle(name: string, req: IncomingMessage, res: ServerResponse): void {
  if (req.url === "/port") {
    text(res, `${req.socket.localPort}\n`);
    return;
  }
  if (req.url === "/sink") {
    // An upload's size and the server that took it: lets a test push client → server bytes.
    let n = 0;
    req.on("data", (c: Buffer) => {
      n += c.length;
    });
    req.on("end", () => text(res, `${name} ${n}\n`));
    return;
  }
  // `/bytes/N?rate=BPS`: the same bytes, paced at BPS bytes a second (HA demo: a download that lasts).
  const m = /^\/bytes\/(\d+)(?:\?rate=(\d+))?$/.exec(req.url ?? "");
  if (m === null) {
    res.writeHead(200, { "content-type": "text/plain", "content-length": String(name.length + 1) });
    res.end(`${name}\n`);
    return;
  }
  const n = Number(m[1]);
  if (n > MAX_BYTES) {
    res.writeHead(400, { "content-type": "text/plain" });
    res.end(`at most ${MAX_BYTES} bytes\n`);
    return;
  }
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(n) });
  if (m[2] !== undefined && Number(m[2]) > 0) {
    paced(res, n, Number(m[2]));
    return;
  }
  let sent = 0;
  const pump = (): void => {
    while (sent < n) {
      const len = Math.min(CHUNK, n - sent);
      // Every chunk starts at a multiple of 64 KiB, hence of 256: the shared chunk is the pattern.
      const ok = res.write(len === CHUNK ? SHARED_CHUNK : SHARED_CHUNK.subarray(0, len));
      sent += len;
      if (!ok) {
        res.once("drain", pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

/** Pacing tick of `/bytes/N?rate=BPS`. */
const PACE_MS = 50;

/**
 * n pattern bytes at `rate` bytes a second: every PACE_MS, what the rate allows since the start
 * (so a stall, e.g. a director takeover, is caught up afterwards), while the socket takes it.
 */
function paced(res: ServerResponse, n: number, rate: number): void {
  const t0 = performance.now();
  let sent = 0;
  const timer = setInterval(() => {
    const due = Math.min(n, Math.floor(((performance.now() - t0) / 1000) * rate));
    while (sent < due && res.writableNeedDrain === false) {
      // A slice of the shared chunk that starts at sent's place in the pattern (sent mod 256).
      const off = sent & 0xff;
      const len = Math.min(due - sent, CHUNK - off);
      res.write(SHARED_CHUNK.subarray(off, off + len));
      sent += len;
    }
    if (sent >= n) {
      clearInterval(timer);
      res.end();
    }
  }, PACE_MS);
  res.once("close", () => clearInterval(timer));
}

export interface LabServer {
  close(): Promise<void>;
}

/** Starts the HTTP and UDP listeners; resolves once every one is bound. */
export async function startLabServer(
  name: string,
  http: ListenSpec[],
  udp: ListenSpec[],
): Promise<LabServer> {
  const closers: (() => Promise<void>)[] = [];
  for (const spec of http) {
    const srv = createServer((req, res) => handle(name, req, res));
    srv.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      srv.once("error", reject);
      srv.listen(spec.port, spec.host, () => resolve());
    });
    closers.push(() => new Promise<void>((r) => srv.close(() => r())));
  }
  const reply = Buffer.from(`${name}\n`);
  const bindUdp = (host: string | undefined, port: number): Promise<Socket> => {
    const sock = createSocket({ type: "udp4", reuseAddr: true });
    sock.on("message", (_msg, rinfo) => sock.send(reply, rinfo.port, rinfo.address));
    return new Promise<Socket>((resolve, reject) => {
      sock.once("error", reject);
      sock.bind(port, host, () => {
        sock.removeListener("error", reject);
        sock.on("error", () => {});
        resolve(sock);
      });
    });
  };
  const perAddr = new Map<string, Socket>();
  const wildcard = udp.filter((u) => u.host === undefined);
  // A UDP socket bound to 0.0.0.0 answers from the address the route picks (the RIP), not from the
  // one the request was sent to (the VIP, in DR and TUN): Node has no IP_PKTINFO. So every local
  // IPv4 address also gets its own socket (more specific binds win delivery), rescanned while the
  // server runs because `tsvs realserver setup` may add the VIP after the server started.
  const rescan = async (): Promise<void> => {
    const addrs = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a !== undefined && a.family === "IPv4")
      .map((a) => (a as { address: string }).address);
    for (const u of wildcard) {
      for (const a of addrs) {
        const key = `${a}:${u.port}`;
        if (perAddr.has(key)) continue;
        try {
          perAddr.set(key, await bindUdp(a, u.port));
          process.stdout.write(`udp ${key}\n`);
        } catch {
          // the address went away meanwhile
        }
      }
    }
  };
  for (const spec of udp) {
    const sock = await bindUdp(spec.host, spec.port);
    closers.push(() => new Promise<void>((r) => sock.close(() => r())));
  }
  if (wildcard.length > 0) {
    await rescan();
    const timer = setInterval(() => void rescan(), 500);
    closers.push(async () => {
      clearInterval(timer);
      await Promise.all([...perAddr.values()].map((x) => new Promise<void>((r) => x.close(() => r()))));
    });
  }
  return {
    close: async () => {
      await Promise.all(closers.map((c) => c()));
    },
  };
}

function parseArgs(argv: string[]): { name: string; http: ListenSpec[]; udp: ListenSpec[] } {
  let name = "";
  let http: ListenSpec[] = [];
  let udp: ListenSpec[] = [];
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case "--name":
        name = v ?? "";
        i++;
        break;
      case "--http":
        http = parsePorts(v ?? "");
        i++;
        break;
      case "--udp":
        udp = parsePorts(v ?? "");
        i++;
        break;
      default:
        throw new TsvsError("TSVS_ERR_USAGE", `unknown argument '${argv[i]}'`);
    }
  }
  if (name === "") throw new TsvsError("TSVS_ERR_USAGE", "--name is required");
  return { name, http, udp };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const a = parseArgs(process.argv.slice(2));
    await startLabServer(a.name, a.http, a.udp);
    process.stdout.write(`ready ${a.name}\n`);
  } catch (e) {
    process.stderr.write(`lab server: ${(e as Error).message}\n`);
    process.exit(1);
  }
}
