// Runs a pre-norm residual block (Swin, ViT) with the optional delta slots of nn/slots.ts.
import type { Tensor } from '../engine/index.js';
import type { Module } from '../nn/module.js';
import { release } from '../nn/release.js';
import { SLOTS, type BlockSlot } from '../nn/slots.js';

type Step = (t: Tensor) => Tensor;

function through(block: Module<any, any>, slot: BlockSlot, t: Tensor): Tensor {
  const m = block.getChild<Module<[Tensor], Tensor>>(slot);
  if (!m) return t;
  const out = m.call(t);
  if (out !== t) release(t);
  return out;
}

/** Runs a pre-norm residual block with its optional delta slots. */
export function residualBlock(block: Module<any, any>, x: Tensor, attnBranch: Step, mlpBranch: Step): Tensor {
  const a = through(block, SLOTS.attnAdapter, attnBranch(x));
  // layer_norm saved x (and h below) for backward, so the sums are out of place.
  let h = x.add(a);
  release(a);
  h = through(block, SLOTS.postAttn, h);
  let m = through(block, SLOTS.mlpAdapter, mlpBranch(h));
  const parallel = block.getChild<Module<[Tensor], Tensor>>(SLOTS.mlpParallel);
  if (parallel) {
    const p = parallel.call(h);
    m = m.add_(p);
    release(p);
  }
  const y = h.add(m);
  release(h, m);
  return through(block, SLOTS.postMlp, y);
}
