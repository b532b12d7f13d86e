// Basic layers with torch.nn's parameter names, shapes, defaults and initialisation.
import { isGradEnabled, noGrad, type Tensor } from '../engine/index.js';
import {
  adaptiveAvgPool2d, avgPool2d, batchNorm, cat, full, conv2d, dropout, flatten, gelu, groupNorm, hardswish, layerNorm, linear,
  maxPool2d, relu, relu_, relu6, relu6_, sigmoid, silu, tanh, zeros, ones, bernoulli, type Conv2dOptions,
} from '../ops/index.js';
import { Module } from './module.js';
import { Parameter } from './parameter.js';
import { constantParameter, defaultBias, defaultWeight } from './init.js';

type Pair = number | readonly [number, number];
const pairOf = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

function positiveInt(value: number, what: string): number {
  if (!Number.isInteger(value) || value <= 0) throw new RangeError(`${what} must be a positive integer, got ${value}`);
  return value;
}

export interface Conv2dLayerOptions extends Conv2dOptions {
  bias?: boolean;
}

export class Conv2d extends Module {
  declare weight: Parameter;
  declare bias: Parameter | null;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly options: Conv2dOptions;

  constructor(inChannels: number, outChannels: number, kernelSize: Pair, options: Conv2dLayerOptions = {}) {
    super();
    const groups = options.groups ?? 1;
    positiveInt(inChannels, 'Conv2d: inChannels');
    positiveInt(outChannels, 'Conv2d: outChannels');
    if (inChannels % groups || outChannels % groups) {
      throw new RangeError(`Conv2d: inChannels (${inChannels}) and outChannels (${outChannels}) must be divisible by groups (${groups})`);
    }
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = pairOf(kernelSize);
    const { bias, ...convOptions } = options;
    this.options = convOptions;
    const shape = [outChannels, inChannels / groups, ...this.kernelSize];
    this.weight = defaultWeight(shape);
    this.registerParameter('bias', bias === false ? null : defaultBias(outChannels, shape));
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, this.options);
  }

  override extraRepr(): string {
    const o = this.options;
    return `${this.inChannels}, ${this.outChannels}, kernel=${this.kernelSize.join('x')}` +
      (o.stride && o.stride !== 1 ? `, stride=${String(o.stride)}` : '') +
      (o.padding ? `, padding=${String(o.padding)}` : '') +
      (o.groups && o.groups !== 1 ? `, groups=${o.groups}` : '') +
      (this.bias ? '' : ', bias=false');
  }
}

export class Linear extends Module {
  declare weight: Parameter;
  declare bias: Parameter | null;
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(inFeatures: number, outFeatures: number, options: { bias?: boolean } = {}) {
    super();
    this.inFeatures = positiveInt(inFeatures, 'Linear: inFeatures');
    this.outFeatures = positiveInt(outFeatures, 'Linear: outFeatures');
    this.weight = defaultWeight([outFeatures, inFeatures]);
    this.registerParameter('bias', options.bias === false ? null : defaultBias(outFeatures, [outFeatures, inFeatures]));
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }

  override extraRepr(): string {
    return `${this.inFeatures}, ${this.outFeatures}${this.bias ? '' : ', bias=false'}`;
  }
}

export interface BatchNorm2dOptions {
  eps?: number;
  /** Running-average factor; null uses a cumulative average, as PyTorch. */
  momentum?: number | null;
  affine?: boolean;
  trackRunningStats?: boolean;
}

/** nn.BatchNorm2d: buffers running_mean, running_var, num_batches_tracked. */
export class BatchNorm2d extends Module {
  declare weight: Parameter | null;
  declare bias: Parameter | null;
  declare running_mean: Tensor | null;
  declare running_var: Tensor | null;
  declare num_batches_tracked: Tensor | null;
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;

  constructor(numFeatures: number, options: BatchNorm2dOptions = {}) {
    super();
    this.numFeatures = positiveInt(numFeatures, 'BatchNorm2d: numFeatures');
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum === undefined ? 0.1 : options.momentum;
    const affine = options.affine ?? true;
    this.registerParameter('weight', affine ? constantParameter([numFeatures], 1) : null);
    this.registerParameter('bias', affine ? constantParameter([numFeatures], 0) : null);
    const track = options.trackRunningStats ?? true;
    this.registerBuffer('running_mean', track ? zeros([numFeatures]) : null);
    this.registerBuffer('running_var', track ? ones([numFeatures]) : null);
    this.registerBuffer('num_batches_tracked', track ? zeros([], { dtype: 'int64' }) : null);
  }

  /**
   * SyncBatchNorm (torch.nn.SyncBatchNorm): when set, training-mode statistics are those of the
   * global batch of a data-parallel run. It sums a tensor over the ranks, differentiably (set by
   * the trainer under --sync-bn; null: this process's own batch).
   */
  crossReplicaSum: ((t: Tensor) => Tensor) | null = null;

  forward(x: Tensor): Tensor {
    if (x.ndim !== 4) throw new RangeError(`BatchNorm2d: expected a 4-d [N,C,H,W] input, got shape [${x.shape.join(',')}]`);
    let momentum = this.momentum ?? 0;
    if (this.training && this.num_batches_tracked) {
      this.num_batches_tracked.add_(1);
      if (this.momentum === null) momentum = 1 / this.num_batches_tracked.item();
    }
    if (this.training && this.crossReplicaSum) return this.#globalBatchNorm(x, this.crossReplicaSum, momentum);
    // Batch statistics in training mode, or when there are no running statistics to use.
    return batchNorm(x, this.running_mean, this.running_var, {
      weight: this.weight, bias: this.bias, training: this.training || this.running_mean === null, momentum, eps: this.eps,
    });
  }

  /** Batch norm over every rank's batch: two differentiable sums over the ranks (the mean, then the variance). */
  #globalBatchNorm(x: Tensor, sumOverRanks: (t: Tensor) => Tensor, momentum: number): Tensor {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const perChannel = [1, c, 1, 1];
    const sums = sumOverRanks(cat([x.sum([0, 2, 3]), full([1], n * h * w, { dtype: x.dtype })]));
    const count = sums.select(0, c).item();
    const mean = sums.narrow(0, 0, c).div(count);
    const centered = x.sub(mean.view(perChannel));
    const variance = sumOverRanks(centered.mul(centered).sum([0, 2, 3])).div(count);
    let out = centered.mul(variance.add(this.eps).rsqrt().view(perChannel));
    if (this.weight) out = out.mul(this.weight.view(perChannel));
    if (this.bias) out = out.add(this.bias.view(perChannel));
    if (this.running_mean && this.running_var) {
      const rm = this.running_mean;
      const rv = this.running_var;
      noGrad(() => {
        rm.mul_(1 - momentum).add_(mean.detach().mul(momentum));
        rv.mul_(1 - momentum).add_(variance.detach().mul((momentum * count) / Math.max(count - 1, 1)));
      });
    }
    return out;
  }

  override extraRepr(): string {
    return `${this.numFeatures}, eps=${this.eps}`;
  }
}

/** nn.LayerNorm over the trailing dimensions. */
export class LayerNorm extends Module {
  declare weight: Parameter | null;
  declare bias: Parameter | null;
  readonly normalizedShape: number[];
  readonly eps: number;

  constructor(normalizedShape: number | number[], options: { eps?: number; elementwiseAffine?: boolean; bias?: boolean } = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.eps = options.eps ?? 1e-5;
    const affine = options.elementwiseAffine ?? true;
    this.registerParameter('weight', affine ? constantParameter(this.normalizedShape, 1) : null);
    this.registerParameter('bias', affine && options.bias !== false ? constantParameter(this.normalizedShape, 0) : null);
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }

  override extraRepr(): string {
    return `[${this.normalizedShape.join(',')}], eps=${this.eps}`;
  }
}

/**
 * LayerNorm over the channel dimension of an NCHW map, at each pixel (timm's LayerNorm2d, as
 * ConvNeXt uses): same parameter names and shapes as LayerNorm(C).
 */
export class LayerNorm2d extends LayerNorm {
  constructor(channels: number, options: { eps?: number; elementwiseAffine?: boolean } = {}) {
    super(channels, options);
  }

  override forward(x: Tensor): Tensor {
    if (x.ndim !== 4) throw new RangeError(`LayerNorm2d: expected a 4-d [N,C,H,W] input, got shape [${x.shape.join(',')}]`);
    const nhwc = x.permute([0, 2, 3, 1]);
    const normed = layerNorm(nhwc, this.normalizedShape, this.weight, this.bias, this.eps);
    return normed.permute([0, 3, 1, 2]);
  }
}

export class GroupNorm extends Module {
  declare weight: Parameter | null;
  declare bias: Parameter | null;
  readonly numGroups: number;
  readonly eps: number;

  constructor(numGroups: number, numChannels: number, options: { eps?: number; affine?: boolean } = {}) {
    super();
    if (numChannels % numGroups !== 0) throw new RangeError(`GroupNorm: numChannels (${numChannels}) must be divisible by numGroups (${numGroups})`);
    this.numGroups = numGroups;
    this.eps = options.eps ?? 1e-5;
    const affine = options.affine ?? true;
    this.registerParameter('weight', affine ? constantParameter([numChannels], 1) : null);
    this.registerParameter('bias', affine ? constantParameter([numChannels], 0) : null);
  }

  forward(x: Tensor): Tensor {
    return groupNorm(x, this.numGroups, this.weight, this.bias, this.eps);
  }
}

export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (!(p >= 0 && p <= 1)) throw new RangeError(`Dropout: p must be in [0, 1], got ${p}`);
  }

  forward(x: Tensor): Tensor {
    return this.training && this.p > 0 ? dropout(x, this.p, true) : x;
  }
}

/**
 * Stochastic depth (torchvision's StochasticDepth, mode 'row'): in training, drops each sample's
 * residual branch with probability p and scales survivors by 1/(1−p).
 */
export class DropPath extends Module {
  constructor(readonly p = 0) {
    super();
    if (!(p >= 0 && p < 1)) throw new RangeError(`DropPath: p must be in [0, 1), got ${p}`);
  }

  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    const keepProb = 1 - this.p;
    const mask = bernoulli([x.size(0), ...Array<number>(x.ndim - 1).fill(1)], keepProb, { dtype: x.dtype });
    return x.mul(mask.div_(keepProb));
  }

  override extraRepr(): string {
    return `p=${this.p}`;
  }
}

/** Wraps a function of one tensor as a module without parameters. */
abstract class Activation extends Module {}

/** ReLU; `inplace` overwrites its input, as torch's ReLU(inplace=True). */
export class ReLU extends Activation {
  constructor(readonly inplace = false) {
    super();
  }
  forward(x: Tensor): Tensor {
    return this.inplace ? relu_(x) : relu(x);
  }
}
export class ReLU6 extends Activation {
  constructor(readonly inplace = false) {
    super();
  }
  forward(x: Tensor): Tensor {
    // Recorded by autograd, libtorch 1.13's in-place hardtanh_ first clones its input for backward:
    // a copy more than the out-of-place op (MobileNetV2 training: two per block).
    return this.inplace && !(x.requiresGrad && isGradEnabled()) ? relu6_(x) : relu6(x);
  }
}
export class SiLU extends Activation { forward(x: Tensor): Tensor { return silu(x); } }
export class Hardswish extends Activation { forward(x: Tensor): Tensor { return hardswish(x); } }
export class Sigmoid extends Activation { forward(x: Tensor): Tensor { return sigmoid(x); } }
export class Tanh extends Activation { forward(x: Tensor): Tensor { return tanh(x); } }
export class GELU extends Activation {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
  }
  forward(x: Tensor): Tensor {
    return gelu(x, this.approximate);
  }
}
export class Identity extends Module { forward(x: Tensor): Tensor { return x; } }

export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return flatten(x, this.startDim, this.endDim);
  }
}

export class MaxPool2d extends Module {
  constructor(readonly kernelSize: Pair, readonly options: { stride?: Pair; padding?: Pair; dilation?: Pair; ceilMode?: boolean } = {}) {
    super();
  }
  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.kernelSize, this.options);
  }
}

export class AvgPool2d extends Module {
  constructor(readonly kernelSize: Pair, readonly options: { stride?: Pair; padding?: Pair; ceilMode?: boolean; countIncludePad?: boolean } = {}) {
    super();
  }
  forward(x: Tensor): Tensor {
    return avgPool2d(x, this.kernelSize, this.options);
  }
}

export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: Pair) {
    super();
  }
  forward(x: Tensor): Tensor {
    return adaptiveAvgPool2d(x, this.outputSize);
  }
}

