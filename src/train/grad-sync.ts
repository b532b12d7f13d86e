// Gradient averaging for data-parallel training, as DistributedDataParallel does it: the trainable
// parameters are grouped into buckets of about `bucketBytes` (DDP's bucket_cap_mb, 25 MiB), in
// reverse registration order (the last layers' gradients are ready first in backward), and each
// bucket is summed across ranks in one coalesced allreduce, then divided by the world size.
// Parameters are fixed at construction, so every rank sends buckets of the same shapes in the same
// order; a parameter that got no gradient this step sends zeros (DDP's find_unused_parameters).
//
// With `arm()` before a backward, a bucket's allreduce starts from inside that backward as soon as
// its last gradient is final (a hook on the gradient accumulators), so communication overlaps the
// rest of the backward; `average()` then only waits. Every rank runs the same graph, so buckets
// become ready in the same order on every rank.
import { keep, noGrad, type Tensor } from '../engine/index.js';
import { native, type DistHooksHandle } from '../engine/native.js';
import { zeros } from '../ops/index.js';

/** What gradient averaging needs from a process group (src/dist provides it over Gloo). */
export interface Collective {
  readonly worldSize: number;
  /** Sums each tensor in place across all ranks. The tensors must stay alive until it settles. */
  allreduceCoalesced(tensors: Tensor[]): Promise<void>;
}

export const DEFAULT_BUCKET_BYTES = 25 * 2 ** 20;

interface Launched {
  done: Promise<void>;
  grads: Tensor[];
}

export class GradientBuckets {
  /** Parameter indices per bucket, in the order the buckets are reduced. */
  readonly buckets: number[][];
  readonly #bucketOf: Int32Array;
  #hooks: DistHooksHandle | null = null;
  #armed: Collective | null = null;
  #missing: number[] = [];
  #launched: (Launched | null)[] = [];
  #order: number[] = [];

  constructor(readonly params: readonly Tensor[], options: { bucketBytes?: number } = {}) {
    const cap = options.bucketBytes ?? DEFAULT_BUCKET_BYTES;
    if (!(cap > 0)) throw new RangeError(`GradientBuckets: bucketBytes must be > 0, got ${cap}`);
    const buckets: number[][] = [];
    let current: number[] = [];
    let bytes = 0;
    for (let i = params.length - 1; i >= 0; i--) {
      const p = params[i]!;
      if (!p.requiresGrad) throw new Error(`GradientBuckets: parameter ${i} (shape [${p.shape.join(', ')}]) does not require grad; pass the trainable parameters only`);
      if (current.length && bytes + p.nbytes > cap) {
        buckets.push(current);
        current = [];
        bytes = 0;
      }
      current.push(i);
      bytes += p.nbytes;
    }
    if (current.length) buckets.push(current);
    this.buckets = buckets;
    this.#bucketOf = new Int32Array(params.length);
    buckets.forEach((b, k) => b.forEach((i) => (this.#bucketOf[i] = k)));
  }

  /**
   * Makes the next backward start each bucket's allreduce as soon as its gradients are final;
   * `average()` after that backward waits for them. Call it only before a backward whose
   * gradients are to be averaged (not before the other micro-batches of an accumulation).
   */
  arm(group: Collective): void {
    if (group.worldSize === 1) return;
    this.#hooks ??= native.dist.gradHooks(
      this.params.map((p) => p.handle),
      (i) => this.#ready(i),
    );
    this.#armed = group;
    this.#missing = this.buckets.map((b) => b.length);
    this.#launched = this.buckets.map(() => null);
    this.#order = [];
  }

  #ready(index: number): void {
    if (!this.#armed) return;
    const k = this.#bucketOf[index]!;
    if (--this.#missing[k]! === 0) this.#launch(k, this.#armed);
  }

  #launch(k: number, group: Collective): void {
    // Kept out of any scope: a hook runs inside the caller's tidy(), which must not dispose them.
    const grads = keep(this.buckets[k]!.map((i) => {
      const p = this.params[i]!;
      const g = p.grad;
      if (g) return g;
      const none = noGrad(() => zeros(p.shape, { dtype: p.dtype }));
      p.grad = none;
      return none;
    }));
    const done = group.allreduceCoalesced(grads);
    done.catch(() => {}); // awaited in average(); a failure must not surface as unhandled before then
    this.#launched[k] = { done, grads };
    this.#order.push(k);
  }

  /** Replaces every parameter's gradient by its mean over the ranks. */
  async average(group: Collective): Promise<void> {
    if (group.worldSize === 1) return;
    if (!this.#armed) {
      // Not armed: one bucket after the other, now.
      for (let k = 0; k < this.buckets.length; k++) {
        this.#launch(k, group);
        await this.#settle(k, group);
      }
      this.#launched = [];
      this.#order = [];
      return;
    }
    this.#armed = null;
    // Buckets some of whose parameters got no gradient were not started by the backward: now, in bucket order.
    for (let k = 0; k < this.buckets.length; k++) if (!this.#launched[k]) this.#launch(k, group);
    const order = this.#order;
    this.#order = [];
    let failure: unknown = null;
    for (const k of order) {
      try {
        await this.#settle(k, group);
      } catch (err) {
        failure ??= err;
      }
    }
    this.#launched = [];
    if (failure) throw failure;
  }

  async #settle(k: number, group: Collective): Promise<void> {
    const { done, grads } = this.#launched[k]!;
    try {
      await done;
      noGrad(() => grads.forEach((g) => g.div_(group.worldSize)));
    } finally {
      // p.grad hands out a new wrapper each time; the parameters keep their gradients.
      grads.forEach((g) => g.dispose());
    }
  }

  /** Removes the backward hooks (the buckets still work, without overlap). */
  dispose(): void {
    if (this.#hooks) native.dist.gradHooksRemove(this.#hooks);
    this.#hooks = null;
    this.#armed = null;
  }
}
