// Loads the compiled N-API addon. Everything native goes through this one object.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Opaque reference to one native at::Tensor. */
export type Handle = object & { readonly __handle: unique symbol };

export interface OpInfo {
  id: number;
  args: string[];
  schema: string;
}

/** The caching CPU allocator's counters (native/src/allocator.cc); bytes are of blocks ≥ 1 MiB. */
export interface CpuMemoryStats {
  /** False when DELTATUNE_CPU_CACHE_MB=0 left libtorch's default allocator in place. */
  enabled: boolean;
  liveBytes: number;
  peakLiveBytes: number;
  cachedBytes: number;
  cachedBlocks: number;
  hits: number;
  misses: number;
}

/** One operator's totals from libtorch's profiler (native/src/profiler.cc). */
export interface OpProfile {
  name: string;
  /** Time inside the operator, excluding operators it called. */
  selfUs: number;
  /** Time inside the operator, including operators it called. */
  totalUs: number;
  count: number;
}

export interface NativeAddon {
  fromBytes(data: ArrayBufferView, dtype: number, shape: readonly number[]): Handle;
  toBytes(h: Handle): ArrayBuffer;
  readFile(fd: number, offset: number, dtype: number, shape: readonly number[]): Handle;
  dispose(h: Handle): void;
  reportExternal(h: Handle): void;
  isDisposed(h: Handle): boolean;
  meta(h: Handle): [dtype: number, shape: number[], requiresGrad: boolean, device: string];
  strides(h: Handle): number[];
  isContiguous(h: Handle, memoryFormat: number): boolean;
  isLeaf(h: Handle): boolean;
  sameStorage(a: Handle, b: Handle): boolean;
  setRequiresGrad(h: Handle, flag: boolean): void;
  setData(h: Handle, source: Handle): void;
  grad(h: Handle): Handle | null;
  setGrad(h: Handle, g: Handle | null): void;
  backward(roots: Handle[], grads: (Handle | null)[], retainGraph: boolean): void;
  setGradEnabled(flag: boolean): boolean;
  isGradEnabled(): boolean;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  manualSeed(seed: number | bigint): void;
  stats(resetPeak?: boolean): { liveHandles: number; peakHandles: number; externalBytes: number };
  cpuMemoryStats(): CpuMemoryStats;
  emptyCpuCache(): void;
  profilerStart(withShapes?: boolean): void;
  profilerStop(): OpProfile[];
  resetPeakCpuMemory(): void;
  buildInfo(): { cuda: boolean; parallel: string; config: string };
  resolveOp(name: string, overload: string): OpInfo;
  call(id: number, args: unknown[]): unknown;
}

function findAddon(): string {
  // Works from src/engine (ts sources) and dist/src/engine (compiled): walk up to the package root.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'native', 'build', 'Release', 'deltatune_native.node');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error(
    'deltatune: the native addon is not built (native/build/Release/deltatune_native.node is missing). ' +
      'Run `npm run setup` in the deltatune folder.',
  );
}

function load(): NativeAddon {
  const path = findAddon();
  try {
    return createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    throw new Error(
      `deltatune: could not load the native addon ${path}: ${(err as Error).message}. ` +
        'If libtorch was upgraded or LIBTORCH changed, rebuild with `npm run setup`.',
    );
  }
}

export const native: NativeAddon = load();
