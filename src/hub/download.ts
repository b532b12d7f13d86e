// Downloads one file into the hub cache, with node's http/https only: once (a cached file is used as
// is), resumable (a dropped connection leaves `<file>.part`, continued with an HTTP Range request),
// verified (sha256), placed atomically (fsync, rename), and locked (`<file>.lock`), so two processes
// fetching the same file do one download and both get a whole file.
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { hostname } from 'node:os';
import { basename, dirname } from 'node:path';
import { commitFile } from '../io/atomic.js';
import { packageVersion } from '../version.js';
import type { HubFile } from './catalog.js';
import { createTransferProgress, type TransferProgress, type TransferProgressMode } from './progress.js';

export interface DownloadOptions {
  /** A bar on a terminal, lines otherwise (auto, the default), or nothing; or a reporter of one's own. */
  progress?: TransferProgressMode | TransferProgress;
  /** What is downloading, for messages (default the file's name). */
  label?: string;
  /** Milliseconds without a byte (or without an answer) after which a connection counts as stalled (default 60 000). */
  stallTimeoutMs?: number;
  /** Further attempts after a dropped or stalled connection or a server error (default 5). */
  retries?: number;
  /** Never connect; a file not in the cache is an error (default: DELTATUNE_OFFLINE). */
  offline?: boolean;
  /** Milliseconds without a heartbeat after which another host's lock counts as abandoned (default 120 000). */
  staleLockMs?: number;
}

export type DownloadFailure = 'offline' | 'unreachable' | 'http' | 'stall' | 'network' | 'hash';

/** A download that failed for good; `reason` says how. The message is one line naming the URL. */
export class DownloadError extends Error {
  constructor(message: string, readonly reason: DownloadFailure, readonly url: string) {
    super(message);
  }
}

/** A failure worth another attempt (a dropped connection, a stall, a 5xx). */
class Retry extends Error {
  /** The sha256 the server announced before failing, kept for the attempt that completes. */
  sha256?: string;
  constructor(message: string, readonly reason: DownloadFailure) {
    super(message);
  }
}

/** DELTATUNE_OFFLINE: 1/true/yes means never connect; unset, empty, 0/false/no means connect. */
export function offlineFromEnvironment(env: NodeJS.ProcessEnv = process.env): boolean {
  const raw = (env.DELTATUNE_OFFLINE ?? '').trim().toLowerCase();
  if (['', '0', 'false', 'no'].includes(raw)) return false;
  if (['1', 'true', 'yes'].includes(raw)) return true;
  throw new Error(`DELTATUNE_OFFLINE must be 1 or 0 (true/false, yes/no), got '${env.DELTATUNE_OFFLINE}'`);
}

/** The one-line answer for a file that must come from the network when there is none. */
export function placeByHand(file: Pick<HubFile, 'url' | 'path'>, label: string, why: string): string {
  return `${why}: ${label} is not in the cache; download ${file.url} and place it at ${file.path}`;
}

export interface DownloadResult {
  path: string;
  /** False when the file was already cached (or another process downloaded it meanwhile). */
  downloaded: boolean;
  bytes: number;
}

/** Makes `file.path` exist with the right content: cached, or downloaded now (see the file comment). */
export async function downloadFile(file: HubFile, options: DownloadOptions = {}): Promise<DownloadResult> {
  const cached = () => ({ path: file.path, downloaded: false, bytes: statSync(file.path).size });
  if (existsSync(file.path)) return cached();
  const label = options.label ?? basename(file.path);
  if (options.offline ?? offlineFromEnvironment()) throw new DownloadError(placeByHand(file, label, 'offline (DELTATUNE_OFFLINE=1)'), 'offline', file.url);
  mkdirSync(dirname(file.path), { recursive: true });
  const progress = typeof options.progress === 'object' ? options.progress : createTransferProgress(options.progress ?? 'auto');
  const release = await acquireLock(`${file.path}.lock`, label, options.staleLockMs ?? 120_000, progress);
  try {
    if (existsSync(file.path)) return cached(); // another process finished it while this one waited
    const part = `${file.path}.part`;
    const etagSha = await fetchToPart(file, part, label, options, progress);
    const expected = file.sha256 ?? (file.sha256FromEtag ? etagSha : undefined);
    if (expected) {
      const got = await sha256File(part);
      if (!got.startsWith(expected.toLowerCase())) {
        unlinkSync(part);
        throw new DownloadError(
          `sha256 mismatch for ${file.url}: expected ${expected}${expected.length < 64 ? '...' : ''}, got ${got}; the download was deleted (${part})`,
          'hash',
          file.url,
        );
      }
    }
    commitFile(part, file.path);
    return { path: file.path, downloaded: true, bytes: statSync(file.path).size };
  } finally {
    progress.stop();
    release();
  }
}

/** Streams the file's sha256 (hex). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Downloads into `part`, continuing what an earlier attempt (or process) left there; retries a
 * bounded number of times. Returns the sha256 the server announced (Hugging Face's X-Linked-Etag), if any.
 */
async function fetchToPart(file: HubFile, part: string, label: string, options: DownloadOptions, progress: TransferProgress): Promise<string | undefined> {
  const retries = options.retries ?? 5;
  const timeout = options.stallTimeoutMs ?? 60_000;
  let announced: string | undefined;
  for (let attempt = 0; ; attempt++) {
    const have = existsSync(part) ? statSync(part).size : 0;
    try {
      const sha = await transfer(file, part, have, label, timeout, progress);
      return announced ?? sha;
    } catch (err) {
      if (err instanceof Retry && err.sha256) announced ??= err.sha256;
      if (!(err instanceof Retry)) throw err;
      if (attempt >= retries) {
        const tries = retries ? ` (${attempt + 1} attempts)` : '';
        if (err.reason === 'unreachable') throw new DownloadError(`${err.message}${tries} for ${label}; to work offline, download ${file.url} and place it at ${file.path}`, 'unreachable', file.url);
        throw new DownloadError(`${err.message}${tries}${existsSync(part) ? `; the partial download is kept for the next try (${part})` : ''}`, err.reason, file.url);
      }
      progress.message(`${label}: ${err.message}; retrying (${attempt + 1}/${retries})`);
      await sleep(Math.min(250 * 2 ** attempt, 4000));
    }
  }
}

/** One request (following redirects) and its body appended to `part`. Throws Retry for what another attempt may fix. */
async function transfer(file: HubFile, part: string, have: number, label: string, timeout: number, progress: TransferProgress): Promise<string | undefined> {
  const { res, req, headers } = await get(file.url, have > 0 ? { range: `bytes=${have}-` } : {}, timeout, 10);
  const announced = announcedSha256(headers);
  const status = res.statusCode ?? 0;
  const fail = (e: Retry) => Object.assign(e, { sha256: announced });
  let from = have;
  let total: number | null = null;
  if (status === 416) {
    // Nothing left to send: complete if the part already holds the whole file.
    res.resume();
    const size = /\/(\d+)$/.exec(res.headers['content-range'] ?? '')?.[1];
    if (size !== undefined && Number(size) === have) return announced;
    truncate(part, 0);
    throw fail(new Retry(`${file.url} refused to resume at byte ${have} (HTTP 416); starting over`, 'network'));
  }
  if (status === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers['content-range'] ?? '');
    if (!m || Number(m[1]) !== have) {
      res.destroy();
      truncate(part, 0);
      throw fail(new Retry(`${file.url} answered a resume at byte ${have} with '${res.headers['content-range'] ?? 'no Content-Range'}'; starting over`, 'network'));
    }
    total = m[3] === '*' ? null : Number(m[3]);
  } else if (status === 200) {
    // A server that ignores Range sends the whole file again: start over.
    if (have > 0) progress.message(`${label}: the server does not resume (HTTP 200 to a Range request); starting over`);
    from = 0;
    const length = res.headers['content-length'];
    total = length !== undefined && /^\d+$/.test(length) ? Number(length) : null;
  } else {
    res.resume();
    const what = `HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''} for ${file.url}`;
    if (status >= 500 || status === 429 || status === 408) throw fail(new Retry(what, 'http'));
    throw new DownloadError(`${what}${status === 404 ? ' (no such file on the server; check the name and the mirror)' : ''}`, 'http', file.url);
  }
  const fd = openSync(part, from === 0 ? 'w' : 'a');
  let done = from;
  try {
    progress.start(label, total, from);
    await new Promise<void>((resolve, reject) => {
      let ended = false;
      let failure: Error | null = null;
      req.on('error', (err) => (failure ??= err));
      res.on('data', (chunk: Buffer) => {
        try {
          writeAll(fd, chunk);
        } catch (err) {
          failure = new DownloadError(`cannot write ${part}: ${(err as Error).message}`, 'network', file.url);
          res.destroy();
          return;
        }
        done += chunk.length;
        progress.update(done);
      });
      res.on('end', () => (ended = true));
      res.on('error', (err) => (failure ??= err));
      res.on('close', () => {
        if (failure instanceof DownloadError) return reject(failure);
        if (failure instanceof Retry) return reject(fail(failure));
        if (ended && (total === null || done === total)) return resolve();
        const at = total === null ? `${done} bytes` : `${done} of ${total} bytes`;
        reject(fail(new Retry(`the connection to ${new URL(file.url).host} closed at ${at}${failure ? ` (${failure.message})` : ''}`, 'network')));
      });
    });
  } finally {
    closeSync(fd);
    progress.stop();
  }
  return announced;
}

function truncate(part: string, size: number): void {
  if (!existsSync(part)) return;
  const fd = openSync(part, 'r+');
  try {
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, chunk: Buffer): void {
  let done = 0;
  while (done < chunk.length) done += writeSync(fd, chunk, done, chunk.length - done);
}

/** Hugging Face names an LFS file's sha256 in X-Linked-Etag (on the redirect) or ETag; a git blob's 40-hex ETag is not one. */
function announcedSha256(chain: http.IncomingHttpHeaders[]): string | undefined {
  for (const h of chain) {
    for (const raw of [h['x-linked-etag'], h.etag]) {
      const v = typeof raw === 'string' ? raw.replace(/^W\//, '').replace(/"/g, '').trim().toLowerCase() : '';
      if (/^[0-9a-f]{64}$/.test(v)) return v;
    }
  }
  return undefined;
}

const UNREACHABLE = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN']);

/** GET with redirects followed; `headers` of every response in the chain, first to last. */
function get(
  url: string,
  extra: Record<string, string>,
  timeout: number,
  redirects: number,
): Promise<{ res: http.IncomingMessage; req: http.ClientRequest; headers: http.IncomingHttpHeaders[] }> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return reject(new DownloadError(`not a URL: '${url}'`, 'http', url));
    }
    const client = u.protocol === 'https:' ? https : u.protocol === 'http:' ? http : null;
    if (!client) return reject(new DownloadError(`${url}: only http and https URLs can be fetched`, 'http', url));
    let answered = false;
    // agent: false: one connection per request, so no pooled socket outlives a download.
    const req = client.get(u, { agent: false, headers: { 'user-agent': `deltatune/${packageVersion()}`, 'accept-encoding': 'identity', ...extra } }, (res) => {
      answered = true;
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if ([301, 302, 303, 307, 308].includes(status) && location) {
        res.resume();
        req.destroy();
        if (redirects === 0) return reject(new DownloadError(`too many redirects from ${url}`, 'http', url));
        const next = new URL(location, u).toString();
        get(next, extra, timeout, redirects - 1).then((r) => resolve({ ...r, headers: [res.headers, ...r.headers] }), reject);
        return;
      }
      resolve({ res, req, headers: [res.headers] });
    });
    req.setTimeout(timeout, () => {
      const stall = new Retry(`no data from ${url} for ${(timeout / 1000).toFixed(timeout < 1000 ? 1 : 0)} s (the server stalls)`, 'stall');
      if (!answered) reject(stall);
      req.destroy(stall);
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (answered) return; // the body's reader reports it
      if (err instanceof Retry) return reject(err);
      const code = err.code ?? '';
      if (UNREACHABLE.has(code)) return reject(new Retry(`cannot reach ${u.host} (${code})`, 'unreachable'));
      reject(new Retry(`the request to ${url} failed (${code || err.message})`, 'network'));
    });
  });
}

/** The lock's content: who holds it. */
interface LockInfo {
  pid: number;
  host: string;
}

/**
 * Takes `lock` by creating it exclusively. A lock held by a live process waits (polling); one left
 * by a dead process on this host, or not refreshed for `staleMs` by another host, is removed.
 * Returns the release; while held, the lock's time is refreshed (a heartbeat for other hosts).
 */
async function acquireLock(lock: string, label: string, staleMs: number, progress: TransferProgress): Promise<() => void> {
  let told = false;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx');
      try {
        writeAll(fd, Buffer.from(JSON.stringify({ pid: process.pid, host: hostname(), started: new Date().toISOString() })));
      } finally {
        closeSync(fd);
      }
      const beat = setInterval(() => {
        try {
          const now = new Date();
          utimesSync(lock, now, now);
        } catch {
          // Removed under us (judged stale elsewhere): the download goes on; its rename is still atomic.
        }
      }, Math.max(1000, staleMs / 4));
      beat.unref();
      return () => {
        clearInterval(beat);
        const holder = readLock(lock);
        if (holder?.pid === process.pid && holder.host === hostname()) {
          try {
            unlinkSync(lock);
          } catch {
            // Already gone.
          }
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot create the download lock ${lock}: ${(err as Error).message}`);
    }
    const holder = readLock(lock);
    let age = 0;
    try {
      age = Date.now() - statSync(lock).mtimeMs;
    } catch {
      continue; // released meanwhile
    }
    const stale = holder && holder.host === hostname() ? !alive(holder.pid) : age > staleMs;
    if (stale) {
      try {
        unlinkSync(lock);
      } catch {
        // Another waiter removed it first.
      }
      progress.message(`${label}: removed a stale download lock ${lock}${holder ? ` (process ${holder.pid} on ${holder.host} is gone)` : ''}`);
      continue;
    }
    if (!told) progress.message(`${label}: waiting for process ${holder?.pid ?? '?'}, which is downloading it (lock ${lock})`);
    told = true;
    await sleep(200);
  }
}

function readLock(lock: string): LockInfo | null {
  try {
    const v = JSON.parse(readFileSync(lock, 'utf8')) as Partial<LockInfo>;
    return typeof v.pid === 'number' && typeof v.host === 'string' ? { pid: v.pid, host: v.host } : null;
  } catch {
    return null; // gone, or being written
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
