// Normalisation layers' functional forms.
import { Tensor, callTensorOp as T } from '../engine/tensor.js';

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
  return T('aten::batch_norm', [
    input, options.weight ?? null, options.bias ?? null, runningMean, runningVar, training,
    options.momentum ?? 0.1, options.eps ?? 1e-5, true,
  ]);
}

/** Layer normalisation over the trailing `normalizedShape` dimensions. */
export function layerNorm(input: Tensor, normalizedShape: readonly number[], weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  return T('aten::layer_norm', [input, normalizedShape, weight, bias, eps, true]);
}

export function groupNorm(input: Tensor, numGroups: number, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  return T('aten::group_norm', [input, numGroups, weight, bias, eps, true]);
}
