// Shared benchmark plumbing: the PyTorch worker process and statistics.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Lets spinning OpenMP threads of the other process go to sleep. */
export function settle(ms = 100): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Times `n` calls of fn, in milliseconds each. */
export function timeIt(fn: () => void, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    fn();
    out.push(performance.now() - t0);
  }
  return out;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * One side-by-side measurement. `ours`/`torch` are each side's lower-quartile per-call time and
 * `ratio` their quotient: on these shared hosts noise only ever adds time (other tenants, frequency
 * drops), so the fast end of each side's distribution is its own speed, as `timeit` advises; the
 * median and quartiles of the per-round ratios show the spread.
 */
export interface Paired {
  ours: number;
  torch: number;
  ratio: number;
  pairedMedian: number;
  q1: number;
  q3: number;
}

export function quantile(sorted: readonly number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/**
 * `rounds` rounds of one sample per side, back to back, alternating which side goes first; a
 * sample is the mean per-call time of the calls it made. Alternation gives both sides the same
 * conditions on average; see `Paired` for the figures.
 */
export async function pairedRounds(rounds: number, ours: () => number[], theirs: () => Promise<number[]>): Promise<Paired> {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const a: number[] = [];
  const b: number[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 0) a.push(mean(ours()));
    b.push(mean(await theirs()));
    if (r % 2 === 1) a.push(mean(ours()));
  }
  const ratios = a.map((x, i) => x / b[i]!).sort((x, y) => x - y);
  const fastOurs = quantile([...a].sort((x, y) => x - y), 0.25);
  const fastTheirs = quantile([...b].sort((x, y) => x - y), 0.25);
  return { ours: fastOurs, torch: fastTheirs, ratio: fastOurs / fastTheirs, pairedMedian: median(ratios), q1: quantile(ratios, 0.25), q3: quantile(ratios, 0.75) };
}

/** "ours / theirs ms, ratio (quartiles)" for a log line. */
export function fmt(p: Paired): string {
  return `${p.ours.toFixed(0)} / ${p.torch.toFixed(0)} ms, ratio ${p.ratio.toFixed(3)} (per-round ratios: median ${p.pairedMedian.toFixed(3)}, quartiles ${p.q1.toFixed(3)}–${p.q3.toFixed(3)})`;
}

/** A Python worker (Debian's python3 with torch) that answers one JSON line per command line. */
export class TorchWorker {
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #lines: Interface;
  readonly #pending: ((line: string) => void)[] = [];
  #stderr = '';

  constructor(script: string, args: string[]) {
    this.#proc = spawn('/usr/bin/python3', [join(ROOT, 'bench', script), ...args], { cwd: ROOT });
    this.#proc.stderr.on('data', (d: Buffer) => (this.#stderr += d.toString()));
    this.#lines = createInterface({ input: this.#proc.stdout });
    this.#lines.on('line', (line) => this.#pending.shift()?.(line));
    this.#proc.on('exit', (code) => {
      if (code !== 0 && this.#pending.length) {
        console.error(this.#stderr);
        throw new Error(`PyTorch worker ${script} exited with code ${code}`);
      }
    });
  }

  #next<T>(): Promise<T> {
    return new Promise((resolve) => this.#pending.push((line) => resolve(JSON.parse(line) as T)));
  }

  ready<T>(): Promise<T> {
    return this.#next<T>();
  }

  /**
   * Sends a command and waits for its reply, then pauses briefly: OpenMP worker threads spin for a
   * while after their last parallel region, and spinning threads of the idle process would
   * otherwise steal the 2 cores from the side being timed next.
   */
  async ask<T>(command: string): Promise<T> {
    await settle();
    const reply = this.#next<T>();
    this.#proc.stdin.write(command + '\n');
    const value = await reply;
    await settle();
    return value;
  }

  close(): void {
    this.#proc.stdin.write('quit\n');
    this.#proc.stdin.end();
  }
}

/** mulberry32: a small seeded PRNG, so synthetic data and request mixes are the same on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
