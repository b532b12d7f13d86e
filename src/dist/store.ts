// c10d key-value stores: the rendezvous every process group starts from (torch.distributed.Store).
import { native, type DistStoreHandle } from '../engine/native.js';

/** torch.distributed's default timeout for stores and process groups: 30 minutes. */
export const DEFAULT_TIMEOUT_MS = 30 * 60 * 1000;

export type StoreOptions =
  | {
      /** c10d::TCPStore: rank 0's process serves, every process (the server's too) is a client. */
      type: 'tcp';
      host: string;
      port: number;
      worldSize: number;
      isServer: boolean;
      timeoutMs?: number;
      /** The server's create waits until `worldSize` clients have connected (default true). */
      waitForWorkers?: boolean;
    }
  | {
      /** c10d::FileStore: a file on a file system every process sees; removed by the last one out. */
      type: 'file';
      path: string;
      worldSize: number;
      timeoutMs?: number;
    };

function checkCount(what: string, n: number, min: number): void {
  if (!Number.isInteger(n) || n < min) throw new RangeError(`${what} must be an integer ≥ ${min}, got ${n}`);
}

export function checkTimeout(timeoutMs: number): void {
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError(`timeoutMs must be a positive number, got ${timeoutMs}`);
}

export class Store {
  #handle: DistStoreHandle | null;
  /** What it is, for messages: "TCPStore(127.0.0.1:29500)". */
  readonly description: string;
  readonly timeoutMs: number;

  private constructor(handle: DistStoreHandle, description: string, timeoutMs: number) {
    this.#handle = handle;
    this.description = description;
    this.timeoutMs = timeoutMs;
  }

  /**
   * Opens a store. Resolves once it is usable: a TCP server once it listens (and, with
   * waitForWorkers, once every client connected), a client once it reached the server. Rejects
   * after `timeoutMs` with c10d's message.
   */
  static async create(options: StoreOptions): Promise<Store> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    checkTimeout(timeoutMs);
    checkCount('worldSize', options.worldSize, 1);
    if (options.type === 'tcp') {
      checkCount('port', options.port, 0);
      if (options.port > 65535) throw new RangeError(`port must be ≤ 65535, got ${options.port}`);
      const h = await native.dist.tcpStore(options.host, options.port, options.worldSize, options.isServer, timeoutMs, options.waitForWorkers ?? true);
      return new Store(h, `TCPStore(${options.host}:${options.port})`, timeoutMs);
    }
    if (options.type === 'file') {
      if (!options.path) throw new TypeError('a file store needs a path');
      const h = await native.dist.fileStore(options.path, options.worldSize, timeoutMs);
      return new Store(h, `FileStore(${options.path})`, timeoutMs);
    }
    throw new TypeError(`unknown store type ${(options as { type: unknown }).type}`);
  }

  /** @internal */
  get handle(): DistStoreHandle {
    if (this.#handle === null) throw new Error(`${this.description} was disposed`);
    return this.#handle;
  }

  async set(key: string, value: string | Uint8Array): Promise<void> {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    return native.dist.storeSet(this.handle, key, bytes);
  }
  /** Waits (up to the store's timeout) until the key is set. */
  async get(key: string): Promise<Buffer> {
    return native.dist.storeGet(this.handle, key);
  }
  /** Adds to an integer counter (created at 0) and returns the new value. */
  async add(key: string, delta: number): Promise<number> {
    if (!Number.isSafeInteger(delta)) throw new RangeError(`add: delta must be an integer, got ${delta}`);
    return native.dist.storeAdd(this.handle, key, delta);
  }

  get isDisposed(): boolean {
    return this.#handle === null;
  }
  /** Drops this reference; the store closes once no process group and no pending call uses it. */
  dispose(): void {
    if (this.#handle === null) return;
    native.dist.storeDispose(this.#handle);
    this.#handle = null;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}
