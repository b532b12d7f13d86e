// Where delta methods plug into a pre-norm transformer block (Swin, ViT):
//
//   a = attnBranch(x);   a = attn_adapter?(a)          Houlsby adapter, before the residual add
//   h = x + a;           h = post_attn?(h)              Mona's first module
//   m = mlpBranch(h);    m = mlp_adapter?(m)            Houlsby adapter
//                        m = m + mlp_parallel?(h)       AdaptFormer, beside the MLP
//   y = h + m;           y = post_mlp?(y)               Mona's second module
//
// The slots are ordinary child modules (so their parameters get dotted names such as
// `features.1.0.post_attn.project1.weight`), absent in the base model.
import type { Tensor } from '../engine/index.js';
import type { Module } from '../nn/module.js';
import { release } from '../nn/release.js';

export const TAP_SLOTS = ['attn_adapter', 'post_attn', 'mlp_adapter', 'mlp_parallel', 'post_mlp'] as const;
export type TapSlot = (typeof TAP_SLOTS)[number];

type Step = (t: Tensor) => Tensor;

function tap(block: Module<any, any>, slot: TapSlot): Module<[Tensor], Tensor> | undefined {
  return block._modules.get(slot) ?? undefined;
}

function through(block: Module<any, any>, slot: TapSlot, t: Tensor): Tensor {
  const m = tap(block, slot);
  if (!m) return t;
  const out = m.call(t);
  if (out !== t) release(t);
  return out;
}

/** Runs a pre-norm residual block with its optional delta taps. */
export function residualBlock(block: Module<any, any>, x: Tensor, attnBranch: Step, mlpBranch: Step): Tensor {
  const a = through(block, 'attn_adapter', attnBranch(x));
  // layer_norm saved x (and h below) for backward, so the sums are out of place.
  let h = x.add(a);
  release(a);
  h = through(block, 'post_attn', h);
  let m = through(block, 'mlp_adapter', mlpBranch(h));
  const parallel = tap(block, 'mlp_parallel');
  if (parallel) {
    const p = parallel.call(h);
    m = m.add_(p);
    release(p);
  }
  const y = h.add(m);
  release(h, m);
  return through(block, 'post_mlp', y);
}
