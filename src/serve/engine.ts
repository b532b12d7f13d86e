// The HTTP thread's handle on the inference thread (engine-worker.ts): requests by id, replies as
// promises. If the thread dies, everything waiting fails with the reason and later calls too.
import { Worker } from 'node:worker_threads';
import type { DeltaInfo, EngineInit, EngineReply, EngineRequest, EngineStats, Top } from './engine-worker.js';

type Pending = { resolve: (reply: EngineReply & { ok: true }) => void; reject: (err: Error) => void };
type Body<T> = T extends unknown ? Omit<T, 'id'> : never;

export class Engine {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;
  #dead: Error | null = null;
  /** Resolves once the base model is loaded; rejects with the reason it could not be. */
  readonly ready: Promise<void>;

  constructor(init: EngineInit) {
    this.#worker = new Worker(new URL('./engine-worker.js', import.meta.url), { workerData: init });
    let started: (v: void) => void;
    let failed: (e: Error) => void;
    this.ready = new Promise((resolve, reject) => {
      started = resolve;
      failed = reject;
    });
    this.ready.catch(() => {});
    this.#worker.on('message', (reply: EngineReply) => {
      if (reply.id === -1) {
        if (reply.ok) started();
        else failed(new Error(reply.error));
        return;
      }
      const p = this.#pending.get(reply.id);
      this.#pending.delete(reply.id);
      if (!p) return;
      if (reply.ok) p.resolve(reply);
      else p.reject(new Error(reply.error));
    });
    const die = (err: Error): void => {
      this.#dead ??= err;
      failed(err);
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    };
    this.#worker.on('error', (err) => die(new Error(`the inference thread failed: ${err.message}`, { cause: err })));
    this.#worker.on('exit', (code) => die(new Error(`the inference thread exited (code ${code})`)));
  }

  #call(body: Body<EngineRequest>, transfer: ArrayBuffer[] = []): Promise<EngineReply & { ok: true }> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...body, id } as EngineRequest, transfer);
    });
  }

  async load(name: string, path: string, ignoreBaseMismatch = false): Promise<DeltaInfo> {
    return (await this.#call({ type: 'load', name, path, ignoreBaseMismatch })).info!;
  }

  async unload(name: string): Promise<void> {
    await this.#call({ type: 'unload', name });
  }

  /** Top-k for `count` images of one delta, as NHWC bytes (moved to the inference thread). */
  async run(delta: string, pixels: Uint8Array, count: number, topK: number): Promise<{ results: Top[][]; switched: boolean; computeMs: number }> {
    const reply = await this.#call({ type: 'run', delta, pixels, count, topK }, [pixels.buffer as ArrayBuffer]);
    return { results: reply.results!, switched: reply.switched!, computeMs: reply.computeMs! };
  }

  async stats(): Promise<EngineStats> {
    return (await this.#call({ type: 'stats' })).stats!;
  }

  async close(): Promise<void> {
    this.#dead ??= new Error('the server is shut down');
    await this.#worker.terminate();
  }
}
