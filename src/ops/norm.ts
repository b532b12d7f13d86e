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
 * Evaluation-mode batch norm with frozen affine parameters, for an input that needs a gradient:
 * out = input·α + β with α = weight/√(var+eps) and β = bias − mean·α per channel, the terms and
 * order of libtorch's own evaluation kernel. aten::batch_norm's autograd node keeps the input (only
 * its weight gradient needs it); addcmul with constant α keeps only α.
 */
function frozenBatchNorm(input: Tensor, mean: Tensor, variance: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number): Tensor {
  const shape = input.shape.map((size, i) => (i === 1 ? size : 1));
  const { alpha, beta } = noGrad(() => {
    const std = variance.add(eps).sqrt_();
    const invstd = std.reciprocal();
    const a = weight ? invstd.mul(weight) : invstd.clone();
    const meanAlpha = mean.mul(a);
    const b = bias ? bias.sub(meanAlpha) : meanAlpha.neg();
    const terms = { alpha: a.reshape(shape), beta: b.reshape(shape) };
    for (const t of [std, invstd, a, meanAlpha, b]) t.dispose();
    return terms;
  });
  const out = T('aten::addcmul', [beta, input, alpha, 1]);
  alpha.dispose();
  beta.dispose();
  return out;
}

/** Layer normalisation over the trailing `normalizedShape` dimensions. */
export function layerNorm(input: Tensor, normalizedShape: readonly number[], weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  return T('aten::layer_norm', [input, normalizedShape, weight, bias, eps, true]);
}

export function groupNorm(input: Tensor, numGroups: number, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  return T('aten::group_norm', [input, numGroups, weight, bias, eps, true]);
}
