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

/** Opaque reference to a c10d store or process group (native/src/dist.cc). */
export type DistStoreHandle = object & { readonly __distStore: unique symbol };
export type DistGroupHandle = object & { readonly __distGroup: unique symbol };
export type DistHooksHandle = object & { readonly __distHooks: unique symbol };

/**
 * libtorch's c10d (native/src/dist.cc). Every call that can block returns a Promise and waits on a
 * libuv pool thread; collectives are enqueued synchronously, in call order, and work in place
 * (allgather returns new handles). The tensors must stay undisposed until the promise settles.
 */
export interface NativeDist {
  tcpStore(host: string, port: number, worldSize: number, isServer: boolean, timeoutMs: number, waitWorkers: boolean): Promise<DistStoreHandle>;
  fileStore(path: string, worldSize: number, timeoutMs: number): Promise<DistStoreHandle>;
  storeSet(store: DistStoreHandle, key: string, value: Buffer): Promise<void>;
  storeGet(store: DistStoreHandle, key: string): Promise<Buffer>;
  storeAdd(store: DistStoreHandle, key: string, delta: number): Promise<number>;
  storeDispose(store: DistStoreHandle): void;
  processGroupGloo(
    store: DistStoreHandle,
    rank: number,
    size: number,
    timeoutMs: number,
    devices: ({ hostname: string } | { interface: string })[],
    threads: number,
  ): Promise<DistGroupHandle>;
  groupDispose(group: DistGroupHandle): void;
  allreduce(group: DistGroupHandle, tensors: Handle[], op: 'sum' | 'product' | 'min' | 'max'): Promise<void>;
  allreduceCoalesced(group: DistGroupHandle, tensors: Handle[]): Promise<void>;
  broadcast(group: DistGroupHandle, tensors: Handle[], root: number): Promise<void>;
  allgather(group: DistGroupHandle, tensor: Handle): Promise<Handle[]>;
  barrier(group: DistGroupHandle): Promise<void>;
  /** Synchronous and differentiable (its backward sums the gradient over the ranks too). */
  allreduceSumAutograd(group: DistGroupHandle, tensor: Handle): Handle;
  /**
   * Calls onReady(i) inside every backward, on this thread, once params[i].grad holds the
   * backward's gradient (a post-hook on its gradient accumulator).
   */
  gradHooks(params: Handle[], onReady: (index: number) => void): DistHooksHandle;
  gradHooksRemove(hooks: DistHooksHandle): void;
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
  dist: NativeDist;
}

const ADDON = 'deltatune_native.node';
const APT = 'apt-get install -y --no-install-recommends libtorch-dev libgloo-dev libopenblas0-pthread';

/** The package root: the first folder above this file (src/engine or dist/src/engine) with a package.json. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5 && !existsSync(join(dir, 'package.json')); i++) dir = dirname(dir);
  return dir;
}

/**
 * Where the addon comes from, first match wins: DELTATUNE_ADDON (a path to a .node file);
 * native/build/Release (built by scripts/setup.sh in a clone, or by scripts/install.js in an
 * installed package when the prebuilt one did not load); the prebuilt addon shipped in the package
 * (prebuilds/, linux-x64 with Debian's libtorch 1.13). Every failure is one line naming its fix.
 */
function load(): NativeAddon {
  const root = packageRoot();
  const clone = existsSync(join(root, 'src'));
  const fix = clone ? 'run: npm run setup' : 'run: npx deltatune-build (or: npm rebuild deltatune)';
  const override = process.env.DELTATUNE_ADDON;
  const candidates = override
    ? [override]
    : [join(root, 'native', 'build', 'Release', ADDON), join(root, 'prebuilds', 'linux-x64-libtorch1.13', ADDON)];
  const path = candidates.find((p) => existsSync(p));
  if (!path) {
    throw new Error(
      override
        ? `deltatune: DELTATUNE_ADDON=${override} does not exist`
        : `deltatune: the native addon is not built; ${fix}`,
    );
  }
  try {
    return createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    // dlopen's message starts with the path again
    const reason = (String((err as Error).message).split('\n')[0] ?? '').replace(`${path}: `, '');
    const missingLib = /cannot open shared object file/.test(reason);
    throw new Error(
      `deltatune: could not load the native addon ${path}: ${reason}; ` +
        (missingLib ? `install libtorch as root (${APT}), then ${fix}` : `rebuild it, ${fix}`),
    );
  }
}

export const native: NativeAddon = load();
