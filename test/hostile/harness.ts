// The parent side of the hostile-input suite: forks workers (dist/test/hostile/worker.js), feeds
// them case ids over IPC, and watches each case from outside — VmRSS from /proc every ~20 ms
// (over the cap: kill, 'overmem'), a per-case deadline (kill, 'hang'), death by signal or an
// uncaught error ('crash') — then re-hashes the case's files ('files_changed'), deletes them and
// hands the next case to a fresh or the same worker.
import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CaseSpec, Reader } from './generate.js';

export type Status = 'ok' | 'silent_wrong' | 'unclear' | 'crash' | 'hang' | 'overmem' | 'harness_error';

export interface Verdict {
  status: Status;
  /** An input marked 'accept' (or a good file next to a bad one) was refused. */
  falseReject: boolean;
  /** Whether the reader accepted the input (null when unknown). */
  accepted: boolean | null;
  detail: string;
}

export type ToWorker = { type: 'run'; id: string } | { type: 'quit' };
export type FromWorker =
  | { type: 'ready'; pid: number }
  | { type: 'start'; id: string; spec: CaseSpec; dir: string; before: Record<string, string> }
  | { type: 'result'; id: string; verdict: Verdict; ms: number; leaked: number }
  | { type: 'fatal'; id: string | null; message: string };

export interface CaseOutcome extends Verdict {
  id: string;
  spec: CaseSpec;
  /** Paths (relative to the case folder, or in the shared baseline) that changed. */
  filesChanged: string[];
  ms: number;
  leaked: number;
}

// ---------------------------------------------------------------------------------------------
// File fingerprints (never following symlinks, never opening anything but regular files)

const CHUNK = Buffer.allocUnsafe(4 << 20);

/** sha256 of a regular file, read in 4 MiB chunks (big inputs must not inflate the worker's memory). */
function sha256File(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    for (let pos = 0; ; ) {
      const n = readSync(fd, CHUNK, 0, CHUNK.length, pos);
      if (n === 0) break;
      hash.update(CHUNK.subarray(0, n));
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/** relative path → fingerprint of everything under `dir` (content hash for regular files). */
export function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (abs: string, rel: string) => {
    let st;
    try {
      st = lstatSync(abs);
    } catch {
      return;
    }
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out[rel] = `link:${readlinkSync(abs)}`;
    else if (st.isDirectory()) {
      out[rel] = `dir:${mode}`;
      for (const name of readdirSync(abs).sort()) walk(join(abs, name), rel ? `${rel}/${name}` : name);
    } else if (st.isFile()) out[rel] = `file:${mode}:${st.size}:${sha256File(abs)}`;
    else out[rel] = `${st.isFIFO() ? 'fifo' : st.isSocket() ? 'socket' : 'special'}:${mode}`;
  };
  walk(dir, '');
  return out;
}

function changes(before: Record<string, string>, after: Record<string, string>): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (before[k] !== after[k]) out.push(`${k || '.'}: ${before[k] === undefined ? 'created' : after[k] === undefined ? 'removed' : 'changed'}`);
  }
  return out;
}

/** Cheap per-case fingerprint of the shared baseline (stat only); the full hash runs at the end. */
function statTree(dir: string): string {
  const parts: string[] = [];
  const walk = (abs: string) => {
    let st;
    try {
      st = lstatSync(abs);
    } catch {
      return;
    }
    parts.push(`${abs}:${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.ino}`);
    if (st.isDirectory()) for (const n of readdirSync(abs).sort()) walk(join(abs, n));
  };
  walk(dir);
  return parts.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Workers

const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'worker.js');

export interface HarnessOptions {
  ids: string[];
  seed: number;
  /** Parallel workers (default 2). */
  workers?: number;
  /** Kill a worker whose resident memory exceeds this (default 1 GiB). */
  memLimitBytes?: number;
  /** Per-case limit (default 30 s). */
  timeoutMs?: number;
  /** Called after every case. */
  onCase?: (o: CaseOutcome, done: number, total: number) => void;
  /** Called for worker-level events (restarts, fatal baselines). */
  log?: (line: string) => void;
}

interface Running {
  id: string;
  spec: CaseSpec | null;
  dir: string | null;
  before: Record<string, string>;
  t0: number;
  resolve: (o: CaseOutcome) => void;
}

function readRss(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

class Slot {
  #proc: ChildProcess | null = null;
  #running: Running | null = null;
  #stderr = '';
  #killedFor: 'hang' | 'overmem' | null = null;
  #fatal: string | null = null;
  #timer: NodeJS.Timeout | null = null;
  #poll: NodeJS.Timeout | null = null;
  #peak = 0;
  restarts = 0;

  constructor(readonly root: string, readonly o: Required<Omit<HarnessOptions, 'onCase' | 'log'>> & Pick<HarnessOptions, 'log'>) {}

  /** Starts a worker and waits until its baselines are ready. */
  async start(): Promise<void> {
    this.#stderr = '';
    this.#killedFor = null;
    this.#fatal = null;
    const proc = fork(WORKER, [], {
      execArgv: ['--expose-gc'],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: {
        ...process.env, HOSTILE_ROOT: this.root, HOSTILE_SEED: String(this.o.seed), DELTATUNE_THREADS: '1', DELTATUNE_CPU_CACHE_MB: '0', UV_THREADPOOL_SIZE: '4',
      },
    });
    this.#proc = proc;
    const keep = (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-4000);
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    this.#poll = setInterval(() => this.#watch(), 20);
    await new Promise<void>((resolve, reject) => {
      const startTimer = setTimeout(() => reject(new Error(`a hostile worker did not get ready within 300 s:\n${this.#stderr}`)), 300_000);
      proc.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          clearTimeout(startTimer);
          resolve();
        } else this.#onMessage(m);
      });
      proc.on('exit', (code, signal) => {
        clearTimeout(startTimer);
        if (this.#proc === proc) this.#onExit(code, signal);
        reject(new Error(`a hostile worker died while starting (code ${code}, signal ${signal}): ${this.#fatal ?? ''}\n${this.#stderr}`));
      });
    });
  }

  #watch(): void {
    const proc = this.#proc;
    if (!proc?.pid) return;
    const rss = readRss(proc.pid);
    if (rss === null) return;
    this.#peak = Math.max(this.#peak, rss);
    if (rss > this.o.memLimitBytes && !this.#killedFor) {
      this.#killedFor = 'overmem';
      proc.kill('SIGKILL');
    }
  }

  #onMessage(m: FromWorker): void {
    const r = this.#running;
    if (m.type === 'fatal') {
      this.#fatal = m.message;
      return;
    }
    if (!r || m.type === 'ready' || m.id !== r.id) return;
    if (m.type === 'start') {
      r.spec = m.spec;
      r.dir = m.dir;
      r.before = m.before;
      return;
    }
    this.#finish({ ...m.verdict, id: r.id, spec: r.spec!, filesChanged: [], ms: m.ms, leaked: m.leaked });
  }

  #onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#poll) clearInterval(this.#poll);
    this.#poll = null;
    this.#proc = null;
    const r = this.#running;
    if (!r) return;
    const status = this.#killedFor ?? 'crash';
    const why = this.#killedFor === 'overmem'
      ? `killed at over ${(this.o.memLimitBytes / 2 ** 20).toFixed(0)} MiB resident`
      : this.#killedFor === 'hang'
        ? `killed after ${(this.o.timeoutMs / 1000).toFixed(0)} s`
        : `worker died (${signal ? `signal ${signal}` : `exit code ${code}`}): ${this.#fatal ?? ''} ${this.#stderr.split('\n').filter(Boolean).slice(-6).join(' | ')}`;
    this.#finish({
      status, falseReject: false, accepted: null, detail: why.slice(0, 1500), id: r.id, spec: r.spec ?? ({ id: r.id } as CaseSpec), filesChanged: [], ms: performance.now() - r.t0, leaked: 0,
    });
  }

  #finish(o: CaseOutcome): void {
    const r = this.#running;
    if (!r) return;
    this.#running = null;
    if (this.#timer) clearTimeout(this.#timer);
    if (r.dir) {
      o.filesChanged = changes(r.before, hashTree(r.dir));
      rmSync(r.dir, { recursive: true, force: true });
    }
    r.resolve(o);
  }

  get alive(): boolean {
    return this.#proc !== null;
  }

  /** The idle worker's resident memory now (0 when none runs). */
  get rss(): number {
    return this.#proc?.pid ? (readRss(this.#proc.pid) ?? 0) : 0;
  }

  /** Runs one case in this slot's worker (which must be alive). */
  run(id: string, describe: (id: string) => CaseSpec): Promise<CaseOutcome> {
    return new Promise((resolve) => {
      this.#running = { id, spec: describe(id), dir: null, before: {}, t0: performance.now(), resolve };
      this.#timer = setTimeout(() => {
        if (this.#running?.id === id && this.#proc) {
          this.#killedFor = 'hang';
          this.#proc.kill('SIGKILL');
        }
      }, this.o.timeoutMs);
      this.#proc!.send({ type: 'run', id } satisfies ToWorker);
    });
  }

  async stop(): Promise<void> {
    const proc = this.#proc;
    if (!proc) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      proc.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      proc.send({ type: 'quit' } satisfies ToWorker);
    });
  }
}

export interface RunSummary {
  outcomes: CaseOutcome[];
  seconds: number;
  /** Shared baseline files changed during the run. */
  baselineChanged: string[];
  restarts: number;
}

/** Runs the cases in `o.ids` on `o.workers` workers; outcomes come back in id order. */
export async function runHostile(o: HarnessOptions, describe: (id: string) => CaseSpec): Promise<RunSummary> {
  const t0 = performance.now();
  const opts = { workers: 2, memLimitBytes: 2 ** 30, timeoutMs: 30_000, ...o };
  const root = mkdtempSync(join(tmpdir(), 'deltatune-hostile-'));
  const outcomes = new Map<string, CaseOutcome>();
  const queue = [...o.ids];
  let done = 0;
  let restarts = 0;
  let baselineStat = '';
  let baselineHash: Record<string, string> | null = null;
  const baselineChanged: string[] = [];
  try {
    const slots = Array.from({ length: opts.workers }, () => new Slot(root, opts));
    // The first worker builds the shared baseline; the others start once it is there.
    await slots[0]!.start();
    baselineHash = hashTree(join(root, 'baseline'));
    baselineStat = statTree(join(root, 'baseline'));
    await Promise.all(slots.slice(1).map((s) => s.start()));
    await Promise.all(
      slots.map(async (slot) => {
        for (;;) {
          const id = queue.shift();
          if (id === undefined) break;
          if (!slot.alive) {
            restarts++;
            o.log?.(`restarting a worker (after ${done} cases)`);
            await slot.start();
          }
          const out = await slot.run(id, describe);
          // What earlier cases left resident (libtorch's and malloc's free lists) must not count
          // against the next case's cap: a worker past half of it is replaced.
          if (slot.alive && slot.rss > opts.memLimitBytes / 2) await slot.stop();
          const now = statTree(join(root, 'baseline'));
          if (now !== baselineStat) {
            out.filesChanged.push('shared baseline changed (stat)');
            baselineStat = now;
          }
          outcomes.set(id, out);
          done++;
          o.onCase?.(out, done, o.ids.length);
        }
        await slot.stop();
      }),
    );
    const after = hashTree(join(root, 'baseline'));
    baselineChanged.push(...changes(baselineHash, after));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return { outcomes: o.ids.map((id) => outcomes.get(id)!), seconds: (performance.now() - t0) / 1000, baselineChanged, restarts };
}

// ---------------------------------------------------------------------------------------------
// Reporting

export interface Tally {
  cases: number;
  accepted: number;
  rejected: number;
  ok: number;
  silent_wrong: number;
  false_reject: number;
  unclear: number;
  crash: number;
  hang: number;
  overmem: number;
  files_changed: number;
  harness_error: number;
}

const COLUMNS: (keyof Tally)[] = ['cases', 'accepted', 'rejected', 'ok', 'silent_wrong', 'false_reject', 'unclear', 'crash', 'hang', 'overmem', 'files_changed', 'harness_error'];

export function tally(outcomes: CaseOutcome[]): Tally {
  const t = Object.fromEntries(COLUMNS.map((c) => [c, 0])) as unknown as Tally;
  for (const o of outcomes) {
    t.cases++;
    if (o.accepted === true) t.accepted++;
    if (o.accepted === false) t.rejected++;
    t[o.status]++;
    if (o.falseReject) t.false_reject++;
    if (o.filesChanged.length) t.files_changed++;
  }
  return t;
}

/** The per-reader, per-category table (markdown). */
export function table(outcomes: CaseOutcome[]): string {
  const groups = new Map<string, CaseOutcome[]>();
  for (const o of outcomes) {
    const key = `${o.spec.reader}\u0000${o.spec.category}`;
    groups.set(key, [...(groups.get(key) ?? []), o]);
  }
  const head = ['reader', 'category', ...COLUMNS];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`];
  const readers: Reader[] = ['weights', 'images', 'manifests', 'csv'];
  for (const reader of readers) {
    const keys = [...groups.keys()].filter((k) => k.startsWith(`${reader}\u0000`)).sort();
    for (const k of keys) {
      const t = tally(groups.get(k)!);
      lines.push(`| ${reader} | ${k.split('\u0000')[1]} | ${COLUMNS.map((c) => t[c]).join(' | ')} |`);
    }
    const t = tally(outcomes.filter((o) => o.spec.reader === reader));
    if (t.cases) lines.push(`| **${reader}** | **all** | ${COLUMNS.map((c) => `**${t[c]}**`).join(' | ')} |`);
  }
  const t = tally(outcomes);
  lines.push(`| **all** | | ${COLUMNS.map((c) => `**${t[c]}**`).join(' | ')} |`);
  return lines.join('\n');
}

export const isFailure = (o: CaseOutcome) => o.status !== 'ok' || o.filesChanged.length > 0;

/** One line per failing case: status, name, detail. */
export function failureLines(outcomes: CaseOutcome[], max = Infinity): string[] {
  return outcomes.filter(isFailure).slice(0, max).map((o) => {
    const what = o.filesChanged.length && o.status === 'ok' ? 'files_changed' : o.status + (o.falseReject ? '+false_reject' : '') + (o.filesChanged.length ? '+files_changed' : '');
    return `${what.padEnd(14)} ${o.spec.reader}/${o.spec.name} [${o.spec.expect}]: ${o.filesChanged.length ? `files: ${o.filesChanged.join(', ')}; ` : ''}${o.detail}`;
  });
}

/** The failing categories with one example message per kind of failure (for /tmp/hostile-report.txt). */
export function failureReport(outcomes: CaseOutcome[], header: string): string {
  const lines = [header, ''];
  const groups = new Map<string, CaseOutcome[]>();
  for (const o of outcomes.filter(isFailure)) {
    const key = `${o.spec.reader} / ${o.spec.category}`;
    groups.set(key, [...(groups.get(key) ?? []), o]);
  }
  if (groups.size === 0) lines.push('no failing cases', '');
  for (const [key, list] of [...groups].sort((a, b) => b[1].length - a[1].length)) {
    const total = outcomes.filter((o) => `${o.spec.reader} / ${o.spec.category}` === key).length;
    lines.push(`## ${key}: ${list.length} of ${total} cases fail`);
    const byKind = new Map<string, CaseOutcome[]>();
    for (const o of list) {
      const kind = o.status === 'ok' ? 'files_changed' : o.status;
      byKind.set(kind, [...(byKind.get(kind) ?? []), o]);
    }
    for (const [kind, os] of byKind) {
      const ex = os[0]!;
      const names = os.slice(0, 4).map((x) => x.spec.name).join(', ');
      lines.push(`  ${kind} ×${os.length} (e.g. ${names}${os.length > 4 ? ', ...' : ''})`);
      lines.push(`    ${ex.spec.name} [expect ${ex.spec.expect}]: ${ex.filesChanged.length ? `files ${ex.filesChanged.join(', ')}; ` : ''}${ex.detail.slice(0, 400)}`);
    }
    lines.push('');
  }
  lines.push('## slowest cases', ...slowestLines(outcomes).map((l) => `  ${l}`), '');
  const leaks = leakLines(outcomes);
  lines.push(`## cases that left libtorch tensors alive: ${outcomes.filter((o) => o.leaked > 0).length}`, ...leaks.map((l) => `  ${l}`));
  return lines.join('\n');
}

/** The slowest cases (a limit of 30 s is a hang; these show what comes near it). */
export function slowestLines(outcomes: CaseOutcome[], n = 8): string[] {
  return [...outcomes].filter((o) => o.status !== 'hang').sort((a, b) => b.ms - a.ms).slice(0, n).map((o) => `${(o.ms / 1000).toFixed(1).padStart(5)} s  ${o.spec.reader}/${o.spec.name} [${o.status}]`);
}

/** Cases after which the worker held more libtorch tensors than before (freed nowhere: a leak). */
export function leakLines(outcomes: CaseOutcome[], n = 8): string[] {
  const leaky = outcomes.filter((o) => o.leaked > 0);
  return leaky.slice(0, n).map((o) => `${o.leaked} tensors  ${o.spec.reader}/${o.spec.name}`).concat(leaky.length > n ? [`... ${leaky.length - n} more`] : []);
}

export function writeReport(path: string, text: string): void {
  writeFileSync(path, text.endsWith('\n') ? text : `${text}\n`);
}

export function resultLine(outcomes: CaseOutcome[]): string {
  const t = tally(outcomes);
  return `RESULT hostile_cases=${t.cases} hostile_crashes=${t.crash} hostile_hangs=${t.hang} hostile_overmem=${t.overmem} files_changed=${t.files_changed} silent_wrong=${t.silent_wrong}`;
}
