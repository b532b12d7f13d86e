// Gradient averaging for data-parallel training, as DistributedDataParallel does it: the trainable
// parameters are grouped into buckets of about `bucketBytes` (DDP's bucket_cap_mb, 25 MiB), in
// reverse registration order (the last layers' gradients are ready first in backward), and each
// bucket is summed across ranks in one coalesced allreduce, then divided by the world size.
// Parameters are fixed at construction, so every rank sends buckets of the same shapes in the same
// order; a parameter that got no gradient this step sends zeros (DDP's find_unused_parameters).
import { noGrad, type Tensor } from '../engine/index.js';
import { zeros } from '../ops/index.js';

/** What gradient averaging needs from a process group (src/dist provides it over Gloo). */
export interface Collective {
  readonly worldSize: number;
  /** Sums each tensor in place across all ranks. The tensors must stay alive until it settles. */
  allreduceCoalesced(tensors: Tensor[]): Promise<void>;
}

export const DEFAULT_BUCKET_BYTES = 25 * 2 ** 20;

export class GradientBuckets {
  /** Parameter indices per bucket, in the order the buckets are reduced. */
  readonly buckets: number[][];

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
  }

  /** Replaces every parameter's gradient by its mean over the ranks. */
  async average(group: Collective): Promise<void> {
    if (group.worldSize === 1) return;
    for (const bucket of this.buckets) {
      const grads = bucket.map((i) => {
        const p = this.params[i]!;
        const g = p.grad;
        if (g) return g;
        const none = noGrad(() => zeros(p.shape, { dtype: p.dtype }));
        p.grad = none;
        return none;
      });
      try {
        await group.allreduceCoalesced(grads);
        noGrad(() => grads.forEach((g) => g.div_(group.worldSize)));
      } finally {
        // p.grad hands out a new wrapper each time; the parameters keep their gradients.
        grads.forEach((g) => g.dispose());
      }
    }
  }
}
