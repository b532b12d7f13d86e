// Process-wide engine settings: threads, seeds, grad mode, build facts, live-handle counts.
import { availableParallelism } from 'node:os';
import { native } from './native.js';

/** Sets libtorch's intra-op thread count (it defaults to 1 on some machines). */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setNumThreads(${n}): need a whole number of at least 1`);
  native.setNumThreads(n);
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

/** Seeds libtorch's default generators (CPU, and CUDA where present): runs become repeatable. */
export function manualSeed(seed: number | bigint): void {
  if (typeof seed === 'number' && (!Number.isSafeInteger(seed) || seed < 0)) {
    throw new RangeError(`manualSeed(${seed}): the seed must be a non-negative integer`);
  }
  native.manualSeed(seed);
}

/** Whether the linked libtorch can use CUDA. */
export function cudaAvailable(): boolean {
  return native.buildInfo().cuda;
}

/** libtorch's own description of its build and parallel settings (BLAS, OpenMP, threads). */
export function engineInfo(): { cuda: boolean; parallel: string; config: string } {
  return native.buildInfo();
}

/**
 * Counts of native tensor handles alive now and at the peak since the last reset: tests use
 * them to prove that a loop frees what it makes.
 */
export function memoryStats(options: { resetPeak?: boolean } = {}): { liveHandles: number; peakHandles: number } {
  return native.stats(options.resetPeak ?? false);
}

/** Thread count deltatune uses unless DELTATUNE_THREADS says otherwise: every available core. */
export function defaultThreadCount(): number {
  const fromEnv = process.env.DELTATUNE_THREADS;
  if (fromEnv !== undefined && fromEnv !== '') {
    const n = Number(fromEnv);
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(`DELTATUNE_THREADS=${fromEnv}: expected a whole number of at least 1`);
    }
    return n;
  }
  return availableParallelism();
}

setNumThreads(defaultThreadCount());
