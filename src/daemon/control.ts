// The control socket: a unix stream socket speaking JSON lines (docs/control-protocol.md).
// Access control is the file system's: the directory is created 0700 and the socket 0600, so
// only root (the daemon's owner) may connect, as only root may talk to the kernel's IPVS.
// Requests are handled one at a time across all connections, in arrival order, so two
// ipvsadm invocations never interleave inside the table.

import { chmodSync, existsSync, mkdirSync, rmdirSync, rmSync, unlinkSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import { TsvsError } from "../core/errors.js";
import { looseSocketDir } from "./privileges.js";
import { MAX_REQUEST_BYTES, parseRequest, type Request, type Response } from "./protocol.js";

export type Handler = (req: Request) => Promise<Response>;

export class ControlServer {
  readonly path: string;
  #server: Server | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #sockets = new Set<Socket>();
  #createdDir = false;

  constructor(path: string) {
    this.path = path;
  }

  /** Listens on the path; refuses when another daemon answers there, removes a stale socket. */
  async listen(handler: Handler): Promise<void> {
    const dir = dirname(this.path);
    const loose = looseSocketDir(this.path);
    if (loose !== null) throw new TsvsError("TSVS_ERR_INVALID", `refusing the control socket: ${loose}`);
    this.#createdDir = !existsSync(dir);
    // Only a directory made here is made private: an existing one (/run, /tmp, a user's) keeps
    // its mode (the socket itself is 0600). Changing /tmp to 0700 broke every other user of it.
    if (this.#createdDir) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700);
    }
    if (existsSync(this.path)) {
      if (await answers(this.path))
        throw new TsvsError("TSVS_ERR_BUSY", `another daemon is listening on ${this.path}`);
      unlinkSync(this.path);
    }
    const server = createServer((sock) => this.#serve(sock, handler));
    this.#server = server;
    // The socket is born 0600 (umask around the synchronous bind in listen()), not made so
    // afterwards: there is no moment when others may connect.
    const umask = process.umask(0o177);
    let listening: Promise<void>;
    try {
      listening = new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(this.path, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } finally {
      process.umask(umask);
    }
    await listening;
    chmodSync(this.path, 0o600);
  }

  #serve(sock: Socket, handler: Handler): void {
    this.#sockets.add(sock);
    sock.on("close", () => this.#sockets.delete(sock));
    sock.on("error", () => sock.destroy());
    let buf = "";
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_REQUEST_BYTES) {
        sock.end(`${JSON.stringify({ error: "request too long" })}\n`);
        buf = "";
        return;
      }
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() !== "") this.#enqueue(sock, line, handler);
        nl = buf.indexOf("\n");
      }
    });
  }

  #enqueue(sock: Socket, line: string, handler: Handler): void {
    this.#queue = this.#queue.then(async () => {
      const req = parseRequest(line);
      let res: Response;
      if ("error" in req) res = req;
      else {
        try {
          res = await handler(req);
        } catch (e) {
          res = { error: e instanceof Error ? e.message : String(e) };
        }
      }
      if (!sock.destroyed) sock.write(`${JSON.stringify(res)}\n`);
    });
  }

  async close(): Promise<void> {
    const s = this.#server;
    this.#server = null;
    for (const sock of this.#sockets) sock.destroy();
    if (s !== null) await new Promise<void>((resolve) => s.close(() => resolve()));
    // Node removes the socket file itself when the server closes; whatever is left goes here.
    rmSync(this.path, { force: true });
    try {
      // The directory too when this daemon made it (per-namespace directories would pile up).
      if (this.#createdDir) rmdirSync(dirname(this.path));
    } catch {
      // not empty: something else lives there now
    }
  }
}

/** Is something accepting connections on this unix socket path? */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** Client side: one request, one response line. Rejects with the socket error (ENOENT, ECONNREFUSED…). */
export function request(path: string, req: Request, timeoutMs = 30_000): Promise<Response> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let buf = "";
    let done = false;
    const finish = (err: Error | null, res?: Response): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      if (err !== null) reject(err);
      else resolve(res as Response);
    };
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    s.setEncoding("utf8");
    s.once("connect", () => s.write(`${JSON.stringify(req)}\n`));
    s.on("data", (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      try {
        finish(null, JSON.parse(buf.slice(0, nl)) as Response);
      } catch {
        finish(new Error("the daemon sent a malformed response"));
      }
    });
    s.once("error", (e) => finish(e));
    s.once("close", () => finish(new Error("the daemon closed the connection without answering")));
  });
}
