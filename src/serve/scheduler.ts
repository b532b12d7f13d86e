// Dynamic batching: images for the same delta wait (at most maxWaitMs) to run together, up to
// maxBatch; one batch runs at a time, since the inference thread already uses every core.
//
// Which delta runs next, among those whose batch is ready (full, or its oldest image has waited
// maxWaitMs): the one served least recently (round robin, so a flooded delta cannot hold back a
// quiet one behind its backlog), ties by the oldest image. The delta already attached keeps the
// engine while that other delta's oldest image has waited less than `switchSlackMs`: switches stay
// rare under mixed traffic, and no delta waits more than the slack plus the batch in progress.
import type { Engine } from './engine.js';
import type { Top } from './engine-worker.js';

export interface SchedulerOptions {
  maxBatch: number;
  maxWaitMs: number;
  /** How much younger the attached delta's oldest image may be and still go first. */
  switchSlackMs: number;
}

export interface BatchEvent {
  delta: string;
  size: number;
  switched: boolean;
  computeMs: number;
}

interface Job {
  delta: string;
  pixels: Uint8Array;
  topK: number;
  enqueuedAt: number;
  resolve: (top: Top[]) => void;
  reject: (err: Error) => void;
}

export class Scheduler {
  readonly #engine: Engine;
  readonly #o: SchedulerOptions;
  readonly #queues = new Map<string, Job[]>();
  readonly #onBatch: (e: BatchEvent) => void;
  #queued = 0;
  #running: Promise<void> | null = null;
  #runningDelta: string | null = null;
  #attached: string | null = null;
  readonly #lastServed = new Map<string, number>();
  #timer: NodeJS.Timeout | null = null;

  constructor(engine: Engine, options: SchedulerOptions, onBatch: (e: BatchEvent) => void = () => {}) {
    this.#engine = engine;
    this.#o = options;
    this.#onBatch = onBatch;
  }

  /** Images waiting for the engine (not counting the batch running). */
  get queued(): number {
    return this.#queued;
  }

  /** Top-k for one prepared image; `signal` drops it while it still waits. */
  submit(delta: string, pixels: Uint8Array, topK: number, signal?: AbortSignal): Promise<Top[]> {
    return new Promise((resolve, reject) => {
      const q = this.#queues.get(delta) ?? [];
      const onAbort = () => {
        const at = q.indexOf(job);
        if (at < 0) return; // already running: its result is simply not used
        q.splice(at, 1);
        this.#queued--;
        reject(signal!.reason instanceof Error ? signal!.reason : new Error('cancelled'));
      };
      // The listener goes when the job settles, so a long-lived signal does not keep the image.
      const settle = <T>(f: (v: T) => void) => (v: T) => {
        signal?.removeEventListener('abort', onAbort);
        f(v);
      };
      const job: Job = { delta, pixels, topK, enqueuedAt: performance.now(), resolve: settle(resolve), reject: settle(reject) };
      this.#queues.set(delta, q);
      q.push(job);
      this.#queued++;
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#pump();
    });
  }

  /** Drops what the scheduler remembers of an unloaded delta. */
  forget(delta: string): void {
    this.#lastServed.delete(delta);
  }

  /** Resolves when nothing waits or runs: of one delta if named (traffic to others goes on), else at all. */
  async drain(delta?: string): Promise<void> {
    const busy = () =>
      delta === undefined ? this.#queued > 0 || this.#running !== null : (this.#queues.get(delta)?.length ?? 0) > 0 || this.#runningDelta === delta;
    while (busy()) await (this.#running ?? new Promise((r) => setTimeout(r, 5)));
  }

  #pump(): void {
    if (this.#running) return;
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const now = performance.now();
    let pick: string | null = null;
    let pickServed = Infinity;
    let pickHead = Infinity;
    let nextReady = Infinity;
    for (const [delta, q] of this.#queues) {
      if (q.length === 0) continue;
      const head = q[0]!.enqueuedAt;
      const readyAt = q.length >= this.#o.maxBatch ? head : head + this.#o.maxWaitMs;
      if (readyAt > now) {
        nextReady = Math.min(nextReady, readyAt);
        continue;
      }
      const served = this.#lastServed.get(delta) ?? -Infinity;
      if (served < pickServed || (served === pickServed && head < pickHead)) {
        pick = delta;
        pickServed = served;
        pickHead = head;
      }
    }
    if (pick === null) {
      if (nextReady < Infinity) this.#timer = setTimeout(() => this.#pump(), Math.max(0, nextReady - now));
      return;
    }
    const attached = this.#attached !== null ? this.#queues.get(this.#attached) : undefined;
    if (attached && attached.length > 0 && pick !== this.#attached && now - pickHead < this.#o.switchSlackMs) {
      const head = attached[0]!.enqueuedAt;
      if (attached.length >= this.#o.maxBatch || head + this.#o.maxWaitMs <= now) pick = this.#attached!;
    }
    this.#lastServed.set(pick, now);
    const q = this.#queues.get(pick)!;
    const batch = q.splice(0, this.#o.maxBatch);
    this.#queued -= batch.length;
    if (q.length === 0) this.#queues.delete(pick);
    this.#runningDelta = pick;
    this.#running = this.#run(pick, batch).finally(() => {
      this.#running = null;
      this.#runningDelta = null;
      this.#pump();
    });
  }

  async #run(delta: string, batch: Job[]): Promise<void> {
    const per = batch[0]!.pixels.byteLength;
    const pixels = new Uint8Array(per * batch.length);
    batch.forEach((j, k) => pixels.set(j.pixels, k * per));
    const topK = Math.max(...batch.map((j) => j.topK));
    try {
      const { results, switched, computeMs } = await this.#engine.run(delta, pixels, batch.length, topK);
      this.#attached = delta;
      this.#onBatch({ delta, size: batch.length, switched, computeMs });
      batch.forEach((j, k) => j.resolve(results[k]!.slice(0, j.topK)));
    } catch (err) {
      for (const j of batch) j.reject(err as Error);
    }
  }
}
