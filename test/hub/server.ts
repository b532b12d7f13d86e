// A file server for the hub tests on 127.0.0.1 (port 0), never the internet: routes serve real
// files with Range support, and can misbehave on cue (cut the connection, ignore Range, stall,
// answer slowly, redirect like Hugging Face). Every request is recorded.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface Route {
  body: Buffer;
  /** Destroy the socket after this many body bytes, on the first `cutTimes` requests (default 1). */
  cutAfter?: number;
  cutTimes?: number;
  /** Answer every request 200 with the whole file, ignoring Range. */
  ignoreRange?: boolean;
  /** Send the headers and this many bytes, then nothing (until the client gives up). */
  stallAfter?: number;
  /** Send the body in chunks of this many bytes, one every `delayMs`. */
  chunk?: number;
  delayMs?: number;
  /** Extra response headers (e.g. ETag). */
  headers?: Record<string, string>;
  /** Redirect (302) to this path first, with these headers on the redirect (HF's X-Linked-Etag). */
  redirectTo?: string;
  redirectHeaders?: Record<string, string>;
}

export interface Recorded {
  path: string;
  range: string | undefined;
}

export class TestServer {
  readonly requests: Recorded[] = [];
  readonly routes = new Map<string, Route>();
  #server: Server;
  #sockets = new Set<Socket>();
  #served = new Map<string, number>();
  #timers = new Set<NodeJS.Timeout>();

  private constructor() {
    this.#server = createServer((req, res) => this.#handle(req, res));
    this.#server.on('connection', (s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
  }

  static async start(): Promise<TestServer> {
    const s = new TestServer();
    await new Promise<void>((resolve) => s.#server.listen(0, '127.0.0.1', resolve));
    return s;
  }

  get url(): string {
    const a = this.#server.address();
    if (!a || typeof a === 'string') throw new Error('the test server is not listening');
    return `http://127.0.0.1:${a.port}`;
  }

  hits(path: string): Recorded[] {
    return this.requests.filter((r) => r.path === path);
  }

  async close(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #later(ms: number, f: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      f();
    }, ms);
    this.#timers.add(t);
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    this.requests.push({ path, range: req.headers.range });
    const route = this.routes.get(path);
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    if (route.redirectTo) {
      res.writeHead(302, { location: route.redirectTo, ...(route.redirectHeaders ?? {}) }).end();
      return;
    }
    const n = (this.#served.get(path) ?? 0) + 1;
    this.#served.set(path, n);
    const body = route.body;
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && !route.ignoreRange) {
      start = Number(range[1]);
      if (start >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
        return;
      }
      res.writeHead(206, { 'content-length': String(body.length - start), 'content-range': `bytes ${start}-${body.length - 1}/${body.length}`, ...(route.headers ?? {}) });
    } else {
      res.writeHead(200, { 'content-length': String(body.length), ...(route.headers ?? {}) });
    }
    const rest = body.subarray(start);
    if (route.stallAfter !== undefined) {
      res.write(rest.subarray(0, route.stallAfter)); // then nothing: the client's stall timeout must fire
      return;
    }
    if (route.cutAfter !== undefined && n <= (route.cutTimes ?? 1)) {
      res.write(rest.subarray(0, route.cutAfter), () => res.socket?.destroy());
      return;
    }
    if (route.chunk) {
      let at = 0;
      const step = () => {
        if (res.destroyed) return;
        const piece = rest.subarray(at, at + route.chunk!);
        at += piece.length;
        if (at >= rest.length) res.end(piece);
        else res.write(piece, () => this.#later(route.delayMs ?? 10, step));
      };
      step();
      return;
    }
    res.end(rest);
  }
}
