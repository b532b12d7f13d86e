// Frozen-backbone execution: while a delta is attached, the frozen BatchNorms of the base run as
// explicit stand-in modules swapped into the tree (as PEFT replaces target layers), and swapped
// back on detach:
//   - a frozen conv → BatchNorm pair becomes FoldedConv2d + FoldedBatchNorm2d: the BatchNorm's
//     affine map is folded into the convolution, so the pair runs as one conv and backward keeps
//     no BatchNorm input (exact math, to float rounding). The folded weight follows the input's
//     memory format and, when asked, runs in bfloat16 (Delta.setFrozenPrecision);
//   - any other BatchNorm becomes FrozenBatchNorm2d (torchvision.ops' name): it normalises with
//     its running statistics whether the model trains or not, so they never change.
// Stand-ins keep the originals' parameters, buffers, children and hooks under the same names.
import { Tensor, keep, noGrad } from '../../engine/index.js';
import { BatchNorm2d, Conv2d, type Conv2dLayerOptions } from '../../nn/layers.js';
import { conv2d } from '../../ops/conv.js';
import { batchNorm, batchNormAffine } from '../../ops/norm.js';
import type { Module } from '../../nn/module.js';
import type { VisionModel } from '../../models/base.js';
import { StandIn, replaceAt } from './builder.js';

/** The precision of a delta's frozen convolutions (Delta.setFrozenPrecision). */
export type FrozenPrecision = 'float32' | 'bfloat16';
export const FROZEN_PRECISIONS: readonly FrozenPrecision[] = ['float32', 'bfloat16'];

// cin·cout/(cin+cout): a 1×1 convolution's multiply-adds per element it reads or writes, which is
// what the casts to and from bfloat16 cost; below this they cost more than the faster arithmetic
// saves (docs/performance.md#frozen-convolutions-in-bfloat16).
const BF16_MIN_INTENSITY = 100;

/** A BatchNorm that always normalises with its running statistics (eval mode, whatever `training` says). */
export class FrozenBatchNorm2d extends StandIn<BatchNorm2d> {
  forward(x: Tensor): Tensor {
    const bn = this.original;
    return batchNorm(x, bn.running_mean, bn.running_var, { weight: bn.weight, bias: bn.bias, training: false, momentum: 0, eps: bn.eps });
  }
}

/** The BatchNorm of a folded pair: its map is inside the convolution before it, so it passes x through. */
export class FoldedBatchNorm2d extends StandIn<BatchNorm2d> {
  forward(x: Tensor): Tensor {
    return x;
  }
}

/** A convolution with the BatchNorm after it folded in: conv(x, W·s, b·s + t). */
export class FoldedConv2d extends StandIn<Conv2d> {
  declare weightFolded: Tensor;
  declare biasFolded: Tensor;
  /** The folded weight and bias in bfloat16, made on first use. */
  declare low: { weight: Tensor; bias: Tensor } | null;
  readonly bf16Eligible: boolean;

  constructor(conv: Conv2d, bn: BatchNorm2d, readonly precision: () => FrozenPrecision) {
    super(conv);
    const folded = noGrad(() => {
      const { scale, shift } = batchNormAffine(bn.running_mean!, bn.running_var!, bn.weight, bn.bias, bn.eps);
      const scaleMap = scale.view([-1, 1, 1, 1]);
      const weight = keep(conv.weight.mul(scaleMap));
      const bias = keep(conv.bias ? conv.bias.mul(scale).add_(shift) : shift.clone());
      for (const t of [scale, shift, scaleMap]) t.dispose();
      return { weight, bias };
    });
    // Plain (non-enumerable) fields: derived tensors, not the module's state.
    for (const [k, v] of Object.entries({ weightFolded: folded.weight, biasFolded: folded.bias, low: null })) {
      Object.defineProperty(this, k, { value: v, writable: true, enumerable: false });
    }
    const [cout, cin] = conv.weight.shape as [number, number];
    this.bf16Eligible = (conv.options.groups ?? 1) === 1 && (cin * cout) / (cin + cout) >= BF16_MIN_INTENSITY;
  }

  get options(): Conv2dLayerOptions {
    return this.original.options;
  }

  forward(x: Tensor): Tensor {
    const options = this.original.options;
    if (!this.bf16Eligible || this.precision() !== 'bfloat16') {
      this.weightFolded = laidOutFor(this.weightFolded, x);
      return conv2d(x, this.weightFolded, this.biasFolded, options);
    }
    this.low ??= noGrad(() => ({ weight: keep(this.weightFolded.to('bfloat16')), bias: keep(this.biasFolded.to('bfloat16')) }));
    this.low.weight = laidOutFor(this.low.weight, x);
    return conv2d(x.to('bfloat16'), this.low.weight, this.low.bias, options).to(x.dtype);
  }

  /** Frees the bfloat16 copies (back to float32). */
  dropLowPrecision(): void {
    if (!this.low) return;
    this.low.weight.dispose();
    this.low.bias.dispose();
    this.low = null;
  }

  /** Frees the folded tensors; the original convolution is untouched. */
  release(): void {
    this.weightFolded.dispose();
    this.biasFolded.dispose();
    this.dropLowPrecision();
  }
}

/**
 * `w` in the input's memory format, converted once and kept (the old layout is freed): oneDNN
 * otherwise reorders a weight whose layout differs from the input's on every call, forward and
 * backward (docs/performance.md#frozen-weight-layout). The fold is made when the delta is attached,
 * so a model switched to channels-last afterwards would otherwise keep NCHW folded weights.
 */
function laidOutFor(w: Tensor, x: Tensor): Tensor {
  if (x.ndim !== 4 || w.ndim !== 4) return w;
  const format = x.isContiguous('channelsLast') && !x.isContiguous() ? 'channelsLast' : 'contiguous';
  if (w.isContiguous(format)) return w;
  const relaid = keep(noGrad(() => w.contiguous(format)));
  w.dispose();
  return relaid;
}

/** The frozen BatchNorms of a model swapped for stand-ins; `restore` puts the originals back. */
export interface FrozenBackbone {
  /** The folded convolutions, by model-level name. */
  folded: [string, FoldedConv2d][];
  restore(): void;
}

/** A module a method changed (hooks, added children, a trained parameter) is left as it is. */
function touched(m: Module<any, any>): boolean {
  return m.hasHooks() || m.parameters().some((p) => p.requiresGrad) || m.children().length > 0;
}

/**
 * Swaps every frozen BatchNorm of `model` for its stand-in: folded into the convolution before it
 * where neither is touched by the delta, FrozenBatchNorm2d otherwise. Call after the delta's own
 * steps are attached and requiresGrad is set; undo with `restore` before detaching them.
 */
export function freezeBackbone(model: VisionModel, precision: () => FrozenPrecision): FrozenBackbone {
  const swapped: [string, Module<any, any>][] = [];
  const folded: [string, FoldedConv2d][] = [];
  const foldedNorms = new Set<string>();
  for (const [convName, bnName] of model.convBatchNormPairs()) {
    const conv = model.getSubmodule(convName);
    const bn = model.getSubmodule(bnName);
    if (!(conv instanceof Conv2d) || !(bn instanceof BatchNorm2d) || !bn.running_mean || !bn.running_var) continue;
    if (touched(conv) || touched(bn)) continue;
    const standIn = new FoldedConv2d(conv, bn, precision);
    swapped.push([convName, replaceAt(model, convName, standIn)]);
    swapped.push([bnName, replaceAt(model, bnName, new FoldedBatchNorm2d(bn))]);
    folded.push([convName, standIn]);
    foldedNorms.add(bnName);
  }
  for (const [name, m] of [...model.namedModules()]) {
    if (!(m instanceof BatchNorm2d) || foldedNorms.has(name) || !m.running_mean || !m.running_var) continue;
    swapped.push([name, replaceAt(model, name, new FrozenBatchNorm2d(m))]);
  }
  return {
    folded,
    restore() {
      for (const [name, original] of swapped.reverse()) replaceAt(model, name, original);
      for (const [, f] of folded) f.release();
      swapped.length = 0;
      folded.length = 0;
    },
  };
}
