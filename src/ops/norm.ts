// Normalisation layers' functional forms.
import { Tensor, callTensorOp as T } from '../engine/tensor.js';
import { isGradEnabled, noGrad } from '../engine/autograd.js';

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  /** Batch statistics (and running-stat updates) when true; running statistics when false. */
  training?: boolean;
  momentum?: number;
  eps?: number;
}

/** Batch normalisation over the channel dimension (1). Updates running stats in place when training. */
export function batchNorm(input: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, options: BatchNormOptions = {}): Tensor {
  const training = options.training ?? false;
  if (!training && (runningMean === null || runningVar === null)) {
    throw new TypeError('batchNorm: evaluation (training=false) needs runningMean and runningVar');
  }
  // As torch.nn.functional.batch_norm: one value per channel has no variance (its unbiased
  // estimate, stored in runningVar, would be NaN and poison every later evaluation).
  if (training && input.ndim >= 2 && input.shape.reduce((n, d, i) => (i === 1 ? n : n * d), 1) === 1) {
    throw new RangeError(`batchNorm: expected more than 1 value per channel when training, got input size [${input.shape.join(', ')}]`);
  }
  const weight = options.weight ?? null;
  const bias = options.bias ?? null;
  if (!training && !weight?.requiresGrad && !bias?.requiresGrad && input.requiresGrad && input.ndim >= 2 && isGradEnabled()) {
    return frozenBatchNorm(input, runningMean!, runningVar!, weight, bias, options.eps ?? 1e-5);
  }
  return T('aten::batch_norm', [
    input, weight, bias, runningMean, runningVar, training,
    options.momentum ?? 0.1, options.eps ?? 1e-5, true,
  ]);
}

/**
 * The per-channel affine map [C] of an evaluation-mode batch norm: out = input·scale + shift with
 * scale = weight/√(var+eps) and shift = bias − mean·scale, the terms and order of libtorch's own
 * evaluation kernel. Computed without recording autograd history.
 */
export function batchNormAffine(mean: Tensor, variance: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number): { scale: Tensor; shift: Tensor } {
  return noGrad(() => {
    const std = variance.add(eps).sqrt_();
    const scale = std.reciprocal();
    std.dispose();
    if (weight) scale.mul_(weight);
    const shift = mean.mul(scale).mul_(-1);
    if (bias) shift.add_(bias);
    return { scale, shift };
  });
}

/**
 * Evaluation-mode batch norm with frozen affine parameters, for an input that needs a gradient.
 * aten::batch_norm's autograd node keeps the input (only its weight gradient needs it); addcmul
 * with a constant scale keeps only the scale.
 */
function frozenBatchNorm(input: Tensor, mean: Tensor, variance: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number): Tensor {
  const shape = input.shape.map((size, i) => (i === 1 ? size : 1));
  const { scale, shift } = batchNormAffine(mean, variance, weight, bias, eps);
  const scaleMap = scale.reshape(shape);
  const shiftMap = shift.reshape(shape);
  const out = T('aten::addcmul', [shiftMap, input, scaleMap, 1]);
  for (const t of [scale, shift, scaleMap, shiftMap]) t.dispose();
  return out;
}

/** Layer normalisation over the trailing `normalizedShape` dimensions. */
export function layerNorm(input: Tensor, normalizedShape: readonly number[], weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  return T('aten::layer_norm', [input, normalizedShape, weight, bias, eps, true]);
}

export function groupNorm(input: Tensor, numGroups: number, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  return T('aten::group_norm', [input, numGroups, weight, bias, eps, true]);
}
