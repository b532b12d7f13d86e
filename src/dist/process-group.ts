// c10d::ProcessGroupGloo: collectives over CPU tensors between processes (torch.distributed, gloo).
import { native, type DistGroupHandle } from '../engine/native.js';
import { isFloating } from '../engine/dtype.js';
import { Tensor } from '../engine/tensor.js';
import { div_ } from '../ops/pointwise.js';
import { DEFAULT_TIMEOUT_MS, Store, checkTimeout } from './store.js';

/** 'avg' is a sum divided by the world size afterwards (Gloo in libtorch 1.13 has no AVG). */
export type ReduceOp = 'sum' | 'avg' | 'product' | 'min' | 'max';

/** A Gloo transport device: the address (or the network interface) this process listens on. */
export type GlooDevice = { hostname: string } | { interface: string };

export interface ProcessGroupOptions {
  rank: number;
  worldSize: number;
  /** Bounds the connection to the peers and every collective (default 30 minutes, as torch). */
  timeoutMs?: number;
  /**
   * Where to listen. Default: GLOO_SOCKET_IFNAME's interfaces (comma-separated) when set, else
   * Gloo's default (this machine's hostname, or loopback when it does not resolve), as torch does.
   */
  devices?: GlooDevice[];
  /** Gloo worker threads (default 2, as torch). */
  threads?: number;
}

function defaultDevices(): GlooDevice[] {
  const names = (process.env.GLOO_SOCKET_IFNAME ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return names.map((name) => ({ interface: name }));
}

/**
 * One process's membership in a group of `worldSize` processes. Every collective must be called by
 * every rank in the same order. Each returns a Promise that settles when the collective finished
 * on this rank; it rejects (never aborts) on a timeout or a dead peer, naming the op, the rank and
 * the world size. Collectives work in place on the tensors passed (allgather returns new ones);
 * **do not dispose a tensor before the promise that uses it has settled.**
 */
export class ProcessGroup {
  #handle: DistGroupHandle | null;
  readonly rank: number;
  readonly size: number;
  readonly backend = 'gloo';
  readonly timeoutMs: number;
  /** The store it was made from; disposed with the group when the group owns it. */
  readonly store: Store;
  #ownsStore: boolean;

  private constructor(handle: DistGroupHandle, store: Store, ownsStore: boolean, rank: number, size: number, timeoutMs: number) {
    this.#handle = handle;
    this.store = store;
    this.#ownsStore = ownsStore;
    this.rank = rank;
    this.size = size;
    this.timeoutMs = timeoutMs;
  }

  /**
   * Connects to the other ranks through `store` (ProcessGroupGloo's full-mesh rendezvous). Resolves
   * once every rank has joined; rejects after `timeoutMs` when one does not.
   * `ownsStore`: dispose the store with the group (initProcessGroup does).
   */
  static async create(store: Store, options: ProcessGroupOptions, ownsStore = false): Promise<ProcessGroup> {
    const { rank, worldSize } = options;
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    checkTimeout(timeoutMs);
    if (!Number.isInteger(worldSize) || worldSize < 1) throw new RangeError(`worldSize must be an integer ≥ 1, got ${worldSize}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new RangeError(`rank must be an integer in [0, ${worldSize}), got ${rank}`);
    const threads = options.threads ?? 2;
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be an integer ≥ 1, got ${threads}`);
    const devices = options.devices ?? defaultDevices();
    for (const d of devices) {
      const name = 'hostname' in d ? d.hostname : 'interface' in d ? d.interface : undefined;
      if (typeof name !== 'string' || name === '') throw new TypeError('a Gloo device is { hostname } or { interface } with a non-empty name');
    }
    let h: DistGroupHandle;
    try {
      h = await native.dist.processGroupGloo(store.handle, rank, worldSize, timeoutMs, devices, threads);
    } catch (err) {
      const e = err as Error;
      if (/time/i.test(e.message)) {
        e.message += ` (the ${worldSize} ranks did not all join through ${store.description} within timeoutMs = ${timeoutMs})`;
      }
      throw e;
    }
    return new ProcessGroup(h, store, ownsStore, rank, worldSize, timeoutMs);
  }

  get #group(): DistGroupHandle {
    if (this.#handle === null) throw new Error(`process group (rank ${this.rank} of ${this.size}) was disposed`);
    return this.#handle;
  }

  /**
   * Reduces `tensor` across ranks, in place ('sum' by default; 'avg' needs a floating tensor).
   * One tensor per call, as torch's all_reduce; for several, use allreduceCoalesced.
   */
  async allreduce(tensor: Tensor, options: { op?: ReduceOp } = {}): Promise<void> {
    const op = options.op ?? 'sum';
    if (!['sum', 'avg', 'product', 'min', 'max'].includes(op)) throw new RangeError(`allreduce: op must be sum, avg, product, min or max, got ${op}`);
    if (op === 'avg' && !isFloating(tensor.dtype)) throw new TypeError(`allreduce: op 'avg' needs a floating tensor, got ${tensor.dtype}`);
    await native.dist.allreduce(this.#group, [tensor.handle], op === 'avg' ? 'sum' : op);
    if (op === 'avg') div_(tensor, this.size);
  }

  /** Sums several tensors of one dtype (any shapes) across ranks in one collective, in place. */
  async allreduceCoalesced(tensors: readonly Tensor[], options: { op?: 'sum' | 'avg' } = {}): Promise<void> {
    const op = options.op ?? 'sum';
    if (op !== 'sum' && op !== 'avg') throw new RangeError(`allreduceCoalesced: op must be sum or avg, got ${op}`);
    if (op === 'avg') {
      const bad = tensors.find((t) => !isFloating(t.dtype));
      if (bad) throw new TypeError(`allreduceCoalesced: op 'avg' needs floating tensors, got ${bad.dtype}`);
    }
    await native.dist.allreduceCoalesced(this.#group, tensors.map((t) => t.handle));
    if (op === 'avg') for (const t of tensors) div_(t, this.size);
  }

  /** Copies `root`'s tensor(s) into every other rank's, in place (one broadcast per tensor, in order). */
  async broadcast(tensors: Tensor | readonly Tensor[], root = 0): Promise<void> {
    const list = Array.isArray(tensors) ? (tensors as readonly Tensor[]) : [tensors as Tensor];
    if (!Number.isInteger(root) || root < 0 || root >= this.size) throw new RangeError(`broadcast: root must be in [0, ${this.size}), got ${root}`);
    const group = this.#group;
    const handles = list.map((t) => t.handle); // a disposed tensor throws before anything is enqueued
    // All enqueued now, synchronously and in order; then awaited together.
    await Promise.all(handles.map((h) => native.dist.broadcast(group, [h], root)));
  }

  /** Every rank's `tensor`, in rank order, as new tensors (same shape and dtype on every rank). */
  async allgather(tensor: Tensor): Promise<Tensor[]> {
    const handles = await native.dist.allgather(this.#group, tensor.handle);
    return handles.map((h) => new Tensor(h));
  }

  /**
   * The sum of `tensor` over the ranks as a new tensor that autograd differentiates through: the
   * backward sums the incoming gradient over the ranks as well. Synchronous — it blocks this thread
   * until every rank has called it — because it runs inside a forward (SyncBatchNorm's statistics)
   * and inside the backward that follows; every rank must run the same graph.
   */
  allreduceSumDifferentiable(tensor: Tensor): Tensor {
    return new Tensor(native.dist.allreduceSumAutograd(this.#group, tensor.handle));
  }

  /** torch's name for the size of the group. */
  get worldSize(): number {
    return this.size;
  }

  /** Resolves once every rank has reached it. */
  async barrier(): Promise<void> {
    return native.dist.barrier(this.#group);
  }

  get isDisposed(): boolean {
    return this.#handle === null;
  }
  /**
   * Leaves the group (torch's destroy_process_group): closes the connections once pending
   * collectives have settled. Disposes the store too when the group owns it.
   */
  dispose(): void {
    if (this.#handle === null) return;
    native.dist.groupDispose(this.#handle);
    this.#handle = null;
    if (this.#ownsStore) this.store.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}
