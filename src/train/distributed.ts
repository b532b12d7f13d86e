// Data-parallel training over a c10d process group, DistributedDataParallel's way: rank 0's weights
// are broadcast at the start, every rank trains on its own shard, gradients are averaged in buckets
// before each optimizer step, and rank 0 alone writes. This file holds the collective pieces the
// trainer and tune() use; the group itself comes from src/dist.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, noGrad } from '../engine/index.js';
import { tensor, zeros } from '../ops/index.js';
import { initProcessGroup, type ProcessGroup } from '../dist/index.js';
import { GradientBuckets } from './grad-sync.js';

/** torch.distributed's default collective timeout: 30 minutes. */
export const DEFAULT_DIST_TIMEOUT_MS = 30 * 60 * 1000;

/** The torchrun environment of this process, or null when it was not started as one rank of several. */
export function distributedEnvironment(env: NodeJS.ProcessEnv = process.env): { rank: number; worldSize: number; localRank: number } | null {
  if (env.WORLD_SIZE === undefined && env.RANK === undefined) return null;
  const int = (name: string, fallback?: number) => {
    const raw = env[name];
    if (raw === undefined || raw === '') {
      if (fallback !== undefined) return fallback;
      throw new Error(`${name} is not set, but ${env.WORLD_SIZE !== undefined ? 'WORLD_SIZE' : 'RANK'} is: a rank of a data-parallel run needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT`);
    }
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name}=${raw} is not a non-negative integer`);
    return n;
  };
  const worldSize = int('WORLD_SIZE');
  const rank = int('RANK');
  if (worldSize < 1 || rank >= worldSize) throw new Error(`RANK=${rank} must be below WORLD_SIZE=${worldSize}`);
  return { rank, worldSize, localRank: int('LOCAL_RANK', rank) };
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

/** One process's part in a data-parallel run. */
export class DataParallel {
  readonly rank: number;
  readonly worldSize: number;
  #buckets: GradientBuckets | null = null;

  constructor(readonly group: ProcessGroup) {
    this.rank = group.rank;
    this.worldSize = group.size;
    this.#collective.worldSize = group.size;
  }

  /** Joins the group torchrun's environment describes (env://). */
  static async fromEnvironment(options: { timeoutMs?: number } = {}): Promise<DataParallel> {
    return new DataParallel(await initProcessGroup({ initMethod: 'env://', timeoutMs: options.timeoutMs ?? DEFAULT_DIST_TIMEOUT_MS }));
  }

  /** Rank 0: the one process that writes checkpoints, deltas, metrics and progress. */
  get isMain(): boolean {
    return this.rank === 0;
  }

  /**
   * Refuses to start when the ranks disagree on what they train: every rank hashes `facts` (model,
   * method, options, data fingerprint, world size) and the hashes are compared. The message names
   * the ranks that differ from rank 0 and the first fact that does, when it can tell.
   */
  async checkSameConfig(facts: Record<string, unknown>): Promise<void> {
    const digest = (v: unknown) => createHash('sha256').update(canonicalJson(v)).digest();
    const mine = digest(facts);
    const all = await this.#allgatherBytes(mine);
    const differing = all.map((h, r) => (h.equals(all[0]!) ? -1 : r)).filter((r) => r >= 0);
    if (differing.length === 0) return;
    // Which fact: gather each fact's hash too.
    const keys = Object.keys(facts).sort();
    const perKey = await this.#allgatherBytes(Buffer.concat(keys.map((k) => digest(facts[k]))));
    const differingKeys = keys.filter((_, i) => perKey.some((b) => !b.subarray(i * 32, i * 32 + 32).equals(perKey[0]!.subarray(i * 32, i * 32 + 32))));
    throw new Error(
      `the ranks were started with different configurations: rank${differing.length > 1 ? 's' : ''} ${differing.join(', ')} differ${differing.length > 1 ? '' : 's'} from rank 0` +
        `${differingKeys.length ? ` in ${differingKeys.join(', ')}` : ''}; start every rank with the same command and data`,
    );
  }

  async #allgatherBytes(bytes: Buffer): Promise<Buffer[]> {
    const t = tensor(new Uint8Array(bytes));
    try {
      const parts = await this.group.allgather(t);
      try {
        return parts.map((p) => Buffer.from(p.toArray() as Uint8Array));
      } finally {
        parts.forEach((p) => p.dispose());
      }
    } finally {
      t.dispose();
    }
  }

  /** Rank 0's value of a JSON-serialisable thing, on every rank (others pass anything, e.g. null). */
  async broadcastJson<T>(value: T): Promise<T> {
    const bytes = this.isMain ? Buffer.from(JSON.stringify(value) ?? 'null', 'utf8') : Buffer.alloc(0);
    return JSON.parse((await this.broadcastBytes(bytes)).toString('utf8')) as T;
  }

  /** Rank 0's bytes on every rank (a length, then the bytes). */
  async broadcastBytes(bytes: Buffer): Promise<Buffer> {
    const length = tensor(new BigInt64Array([BigInt(this.isMain ? bytes.length : 0)]));
    let n: number;
    try {
      await this.group.broadcast(length, 0);
      n = Number((length.toArray() as BigInt64Array)[0]);
    } finally {
      length.dispose();
    }
    if (n === 0) return Buffer.alloc(0);
    const data = this.isMain ? tensor(new Uint8Array(bytes)) : zeros([n], { dtype: 'uint8' });
    try {
      await this.group.broadcast(data, 0);
      return Buffer.from(data.toArray() as Uint8Array);
    } finally {
      data.dispose();
    }
  }

  /**
   * A file only rank 0 can read (a resume state on rank 0's machine), on every rank: rank 0's path
   * as is; the others get a private copy, removed by `dispose()`.
   */
  async broadcastFile(path: string): Promise<{ path: string; dispose(): void }> {
    const bytes = await this.broadcastBytes(this.isMain ? readFileSync(path) : Buffer.alloc(0));
    if (this.isMain) return { path, dispose() {} };
    const dir = mkdtempSync(join(tmpdir(), 'deltatune-rank-'));
    const copy = join(dir, 'state.safetensors');
    writeFileSync(copy, bytes);
    return { path: copy, dispose: () => rmSync(dir, { recursive: true, force: true }) };
  }

  /**
   * Copies rank 0's values into these tensors on every rank, in place (DDP's broadcast of the
   * module's parameters and buffers at construction). Tensors that are not contiguous go through a
   * contiguous copy, so any memory format works.
   */
  async broadcastTensors(tensors: readonly Tensor[]): Promise<void> {
    const staged = noGrad(() => tensors.map((t) => (t.isContiguous() ? null : t.contiguous())));
    try {
      const sendable = tensors.map((t, i) => staged[i] ?? t);
      await this.group.broadcast(sendable, 0);
      noGrad(() => staged.forEach((s, i) => s && tensors[i]!.copy_(s)));
    } finally {
      noGrad(() => staged.forEach((s) => s?.dispose()));
    }
  }

  /** Element-wise sums of a few numbers over the ranks (float64). */
  async sum(values: readonly number[]): Promise<number[]> {
    if (values.length === 0) return [];
    const t = tensor(new Float64Array(values));
    try {
      await this.group.allreduce(t);
      return Array.from(t.toArray() as Float64Array);
    } finally {
      t.dispose();
    }
  }

  /**
   * Milliseconds spent in averageGradients so far: the communication the backward did not hide
   * (waiting for the slowest rank included).
   */
  gradientSyncMs = 0;
  /** Start the allreduces during the backward (default true; false: all after it). */
  overlap = true;

  /**
   * Call before a backward whose gradients averageGradients() will average next: each bucket's
   * allreduce then starts inside the backward, as soon as its gradients are final.
   */
  beforeBackward(params: readonly Tensor[]): void {
    this.#buckets ??= new GradientBuckets(params);
    if (this.overlap) this.#buckets.arm(this.#collective);
  }

  readonly #collective = {
    worldSize: 0, // set in the constructor
    allreduceCoalesced: (ts: Tensor[]) => this.group.allreduceCoalesced(ts),
  };

  /** Averages the gradients of `params` over the ranks (buckets fixed at the first call). */
  async averageGradients(params: readonly Tensor[]): Promise<void> {
    const t0 = performance.now();
    this.#buckets ??= new GradientBuckets(params);
    await this.#buckets.average(this.#collective);
    this.gradientSyncMs += performance.now() - t0;
  }

  async barrier(): Promise<void> {
    await this.group.barrier();
  }

  dispose(): void {
    this.#buckets?.dispose();
    this.group.dispose();
  }
}
