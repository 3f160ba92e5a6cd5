// Applications for the simulated hosts: a minimal HTTP/1.1 server and client over the sim TCP,
// and a UDP echo. Everything is callback driven (the simulation advances only when the clock
// runs), so the client takes a callback instead of returning a Promise.
//
// Server routes: GET / → "<name>\n"; GET /bytes/N → N deterministic bytes (byte i = i*7 & 255),
// anything else → 404. HTTP/1.1 keeps the connection open unless "Connection: close"; HTTP/1.0
// closes unless "Connection: keep-alive".

import type { Host, IpLike } from "./host.js";
import type { TcpListener, TcpSocket } from "./tcp.js";
import { type SimError, simError, type UdpSocket } from "./udp.js";

const enc = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** The body of GET /bytes/N. */
export function patternBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7) & 255;
  return b;
}

/** Growable byte buffer for reassembling streams. */
class Bytes {
  buf = new Uint8Array(256);
  len = 0;
  push(c: Uint8Array): void {
    if (this.len + c.length > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < this.len + c.length) cap *= 2;
      const nb = new Uint8Array(cap);
      nb.set(this.buf.subarray(0, this.len));
      this.buf = nb;
    }
    this.buf.set(c, this.len);
    this.len += c.length;
  }
  /** Index just past the first CRLFCRLF, or -1. */
  headerEnd(): number {
    const b = this.buf;
    for (let i = 3; i < this.len; i++)
      if (b[i] === 10 && b[i - 1] === 13 && b[i - 2] === 10 && b[i - 3] === 13) return i + 1;
    return -1;
  }
  shift(n: number): void {
    this.buf.copyWithin(0, n, this.len);
    this.len -= n;
  }
}

interface Head {
  first: string;
  headers: Map<string, string>;
}

function parseHead(text: string): Head {
  const lines = text.split("\r\n");
  const headers = new Map<string, string>();
  for (const l of lines.slice(1)) {
    const k = l.indexOf(":");
    if (k > 0) headers.set(l.slice(0, k).trim().toLowerCase(), l.slice(k + 1).trim());
  }
  return { first: lines[0], headers };
}

export interface HttpServer {
  readonly host: Host;
  readonly port: number;
  readonly name: string;
  /** Requests answered so far. */
  requests: number;
  /** Connections accepted so far. */
  connections: number;
  readonly listening: boolean;
  /** Stops listening (new SYNs get RST); open connections continue. */
  stop(): void;
  start(): void;
}

export function httpServer(host: Host, port: number, name: string): HttpServer {
  let listener: TcpListener | null = null;
  const srv = {
    host,
    port,
    name,
    requests: 0,
    connections: 0,
    get listening(): boolean {
      return listener !== null;
    },
    stop(): void {
      listener?.close();
      listener = null;
    },
    start(): void {
      if (listener === null) listener = host.tcp.listen(port, onConn);
    },
  };
  const onConn = (s: TcpSocket): void => {
    srv.connections++;
    const inBuf = new Bytes();
    let closing = false;
    s.onData = (chunk) => {
      if (closing) return;
      inBuf.push(chunk);
      for (;;) {
        const he = inBuf.headerEnd();
        if (he < 0) return;
        const h = parseHead(latin1.decode(inBuf.buf.subarray(0, he - 4)));
        inBuf.shift(he);
        srv.requests++;
        const [method, path, version] = h.first.split(" ");
        const conn = (h.headers.get("connection") ?? "").toLowerCase();
        const keep = version === "HTTP/1.0" ? conn === "keep-alive" : conn !== "close";
        let status = "200 OK";
        let body: Uint8Array;
        const m = /^\/bytes\/(\d+)$/.exec(path ?? "");
        if (method !== "GET") {
          status = "405 Method Not Allowed";
          body = enc.encode("method not allowed\n");
        } else if (path === "/") body = enc.encode(`${name}\n`);
        else if (m !== null && Number(m[1]) <= 1 << 30) body = patternBytes(Number(m[1]));
        else {
          status = "404 Not Found";
          body = enc.encode("not found\n");
        }
        s.write(
          `HTTP/1.1 ${status}\r\nServer: ${name}\r\nContent-Length: ${body.length}\r\n` +
            `Connection: ${keep ? "keep-alive" : "close"}\r\n\r\n`,
        );
        s.write(body);
        if (!keep) {
          closing = true;
          s.end();
          return;
        }
      }
    };
    s.onEnd = () => s.end();
  };
  srv.start();
  return srv;
}

export interface HttpResponse {
  status: number;
  headers: Map<string, string>;
  body: Uint8Array;
  /** The connection, still open when keep-alive was granted (pass it as opts.socket to reuse). */
  socket: TcpSocket;
  /** Whether the server keeps the connection open. */
  keepalive: boolean;
}

export interface HttpGetOptions {
  keepalive?: boolean;
  /** An open keep-alive connection to reuse. */
  socket?: TcpSocket;
  srcPort?: number;
  /** Give up (ETIMEDOUT) after this many ms without a full response (default 30 s). */
  timeoutMs?: number;
}

export type HttpCallback = (err: SimError | null, res: HttpResponse | null) => void;

/**
 * GET http://dstIp:dport/path from host; cb once. With keepalive the socket stays open after
 * the response (reuse it or .end() it); without, the client closes after the response.
 */
export function httpGet(
  host: Host,
  dstIp: IpLike,
  dport: number,
  path: string,
  opts: HttpGetOptions,
  cb: HttpCallback,
): TcpSocket {
  const keep = opts.keepalive ?? false;
  const reuse = opts.socket !== undefined && opts.socket.state === "ESTABLISHED";
  const s = reuse ? (opts.socket as TcpSocket) : host.tcp.connect(dstIp, dport, { srcPort: opts.srcPort });
  const inBuf = new Bytes();
  let head: Head | null = null;
  let bodyStart = 0;
  let need = -1;
  let done = false;
  const timer = host.clock.after(opts.timeoutMs ?? 30_000, () =>
    finish(simError("ETIMEDOUT", `GET ${path}`), null),
  );
  function finish(err: SimError | null, res: HttpResponse | null): void {
    if (done) return;
    done = true;
    host.clock.cancel(timer);
    s.onData = null;
    s.onEnd = null;
    s.onError = null;
    if (err !== null && s.state !== "CLOSED") s.destroy();
    cb(err, res);
  }
  const tryComplete = (eof: boolean): void => {
    if (head === null) {
      const he = inBuf.headerEnd();
      if (he < 0) {
        if (eof) finish(simError("ECONNRESET", "connection closed before the response"), null);
        return;
      }
      head = parseHead(latin1.decode(inBuf.buf.subarray(0, he - 4)));
      bodyStart = he;
      const cl = head.headers.get("content-length");
      need = cl === undefined ? -1 : Number(cl);
    }
    const have = inBuf.len - bodyStart;
    if ((need >= 0 && have >= need) || (need < 0 && eof)) {
      const n = need >= 0 ? need : have;
      const status = Number(head.first.split(" ")[1]);
      const serverKeeps = (head.headers.get("connection") ?? "").toLowerCase() !== "close";
      const body = inBuf.buf.slice(bodyStart, bodyStart + n);
      const keepalive = keep && serverKeeps && !eof;
      if (!keepalive && s.state !== "CLOSED") s.end();
      finish(null, { status, headers: head.headers, body, socket: s, keepalive });
    } else if (eof) finish(simError("ECONNRESET", "connection closed mid-body"), null);
  };
  s.onData = (c) => {
    inBuf.push(c);
    tryComplete(false);
  };
  s.onEnd = () => tryComplete(true);
  s.onError = (e) => finish(e, null);
  s.write(
    `GET ${path} HTTP/1.1\r\nHost: ${String(dstIp)}\r\nConnection: ${keep ? "keep-alive" : "close"}\r\n\r\n`,
  );
  return s;
}

export interface UdpEcho {
  readonly socket: UdpSocket;
  requests: number;
  stop(): void;
}

/** Answers every datagram with `name`, from the address it was sent to (as a DNS server bound per address). */
export function udpEcho(host: Host, port: number, name: string): UdpEcho {
  const e = {
    requests: 0,
    socket: host.udp.bind(port, (_d, from, fport, to, sock) => {
      e.requests++;
      sock.send(from, fport, name, to);
    }),
    stop(): void {
      e.socket.close();
    },
  };
  return e;
}

/** One request/answer over UDP from an ephemeral port; cb once (answer, ICMP error or timeout). */
export function udpRequest(
  host: Host,
  dst: IpLike,
  dport: number,
  data: Uint8Array | string,
  opts: { timeoutMs?: number; srcPort?: number },
  cb: (err: SimError | null, answer: Uint8Array | null, from: number) => void,
): void {
  let done = false;
  const sock = host.udp.bind(opts.srcPort ?? 0, (d, from) => end(null, d, from));
  const timer = host.clock.after(opts.timeoutMs ?? 1000, () =>
    end(simError("ETIMEDOUT", "udp request"), null, 0),
  );
  sock.onError = (err) => end(err, null, 0);
  function end(err: SimError | null, d: Uint8Array | null, from: number): void {
    if (done) return;
    done = true;
    host.clock.cancel(timer);
    sock.close();
    cb(err, d, from);
  }
  sock.send(dst, dport, data);
}
