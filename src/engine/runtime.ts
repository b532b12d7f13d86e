// Process-wide engine settings: threads, seeds, grad mode, build facts, live-handle counts.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { native, type CpuMemoryStats, type OpProfile } from './native.js';

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

/**
 * libtorch's own description of its build and parallel settings, plus the BLAS library this
 * process actually loaded (Debian's reference BLAS is an order of magnitude slower than OpenBLAS
 * for matmul: docs/performance.md#blas).
 */
export function engineInfo(): { cuda: boolean; parallel: string; config: string; blas: string } {
  return { ...native.buildInfo(), blas: loadedBlas() };
}

/** Paths of the BLAS libraries mapped into this process, from /proc/self/maps ('unknown' elsewhere). */
export function loadedBlas(): string {
  let maps: string;
  try {
    maps = readFileSync('/proc/self/maps', 'utf8');
  } catch {
    return 'unknown';
  }
  const libs = new Set<string>();
  for (const line of maps.split('\n')) {
    const path = line.slice(line.indexOf('/'));
    if (line.includes('/') && /lib(open)?blas|libmkl/.test(path)) libs.add(path);
  }
  return [...libs].join(', ') || 'none';
}

/**
 * Counts of native tensor handles alive now and at the peak since the last reset (tests use them
 * to prove that a loop frees what it makes), and the external bytes V8 has been told about.
 */
export function memoryStats(options: { resetPeak?: boolean } = {}): { liveHandles: number; peakHandles: number; externalBytes: number } {
  return native.stats(options.resetPeak ?? false);
}

/**
 * Tensor memory of the caching CPU allocator: bytes of large blocks (≥ 1 MiB) in use now and at the
 * peak since the last reset, bytes freed but kept for reuse, and how many requests reused a block.
 * Freed activations are kept so that the next training step gets them back without page faults;
 * the cache is bounded (max(1 GiB, 1.25× peak), or DELTATUNE_CPU_CACHE_MB).
 */
export function cpuMemoryStats(options: { resetPeak?: boolean } = {}): CpuMemoryStats {
  const stats = native.cpuMemoryStats();
  if (options.resetPeak) native.resetPeakCpuMemory();
  return stats;
}

/** Returns every cached (freed) tensor block to the operating system, e.g. after training. */
export function emptyCpuCache(): void {
  native.emptyCpuCache();
}

/**
 * This process's peak resident memory in MiB: VmHWM from /proc/self/status, which starts afresh at
 * exec. (`process.resourceUsage().maxRSS`, the fallback off Linux, carries over the parent's
 * resident size at fork into a child, so a worker spawned by a large process reported the parent's.)
 */
export function peakRssMiB(): number {
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (match) return Number(match[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}

/** The most threads DELTATUNE_THREADS may ask for (src/cli/main.ts checks the same bound before loading this). */
const MAX_THREADS = 1024;

/**
 * Thread count deltatune uses unless DELTATUNE_THREADS says otherwise: every available core.
 * The variable, when set and not empty, must be a plain decimal whole number from 1 to MAX_THREADS
 * written in digits only ('0x10', ' 4', '4.0', '1e2' and '+4' are refused); a RangeError says so.
 */
export function defaultThreadCount(): number {
  const fromEnv = process.env.DELTATUNE_THREADS;
  if (fromEnv !== undefined && fromEnv !== '') {
    const n = /^\d+$/.test(fromEnv) ? Number(fromEnv) : NaN;
    if (!(n >= 1 && n <= MAX_THREADS)) {
      // One line whatever the variable holds: control characters escaped, long values cut.
      const shown = JSON.stringify(fromEnv.length > 40 ? `${fromEnv.slice(0, 40)}…` : fromEnv).slice(1, -1);
      throw new RangeError(`DELTATUNE_THREADS must be a whole number from 1 to ${MAX_THREADS}, got '${shown}'`);
    }
    return n;
  }
  return availableParallelism();
}

setNumThreads(defaultThreadCount());

/**
 * Runs `fn` under libtorch's operator profiler and returns its result with per-operator totals,
 * largest self time first (autograd's backward nodes appear as e.g. "ConvolutionBackward0", native
 * ops by their aten/deltatune names); `shapes` keys them by name and input shapes. A development
 * aid: profiling slows small operators down.
 */
export function profileOps<T>(fn: () => T, options: { shapes?: boolean } = {}): { result: T; ops: OpProfile[] } {
  native.profilerStart(options.shapes ?? false);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    native.profilerStop();
    throw err;
  }
  const ops = native.profilerStop();
  return { result, ops: ops.sort((a, b) => b.selfUs - a.selfUs) };
}

/**
 * Whether the CPU has native bfloat16 arithmetic (AMX-BF16 or AVX512-BF16), read from the flags
 * of /proc/cpuinfo; null where that file does not exist (not Linux). Without it oneDNN emulates
 * bfloat16, which is slower than float32.
 */
export function cpuHasNativeBfloat16(): boolean | null {
  let info: string;
  try {
    info = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return null;
  }
  const flags = /^flags\s*:(.*)$/m.exec(info)?.[1]?.split(/\s+/) ?? [];
  return flags.includes('amx_bf16') || flags.includes('avx512_bf16');
}
