// Loss functions.
import { Tensor, callTensorOp as T } from '../engine/tensor.js';

export type Reduction = 'none' | 'mean' | 'sum';

function reductionCode(reduction: Reduction | undefined, what: string): number {
  switch (reduction ?? 'mean') {
    case 'none': return 0;
    case 'mean': return 1;
    case 'sum': return 2;
    default: throw new TypeError(`${what}: reduction must be 'none', 'mean' or 'sum', got '${String(reduction)}'`);
  }
}

export interface CrossEntropyOptions {
  weight?: Tensor | null;
  reduction?: Reduction;
  /** Targets equal to this class index are left out of the loss. */
  ignoreIndex?: number;
  /** Mixes the one-hot target with a uniform distribution (0 = none). */
  labelSmoothing?: number;
}

/** Cross entropy of logits [N,C,...] against class indices [N,...] (int64) or class probabilities. */
export function crossEntropy(logits: Tensor, target: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const smoothing = options.labelSmoothing ?? 0;
  if (!(smoothing >= 0 && smoothing <= 1)) throw new RangeError(`crossEntropy: labelSmoothing must be in [0, 1], got ${smoothing}`);
  return T('aten::cross_entropy_loss', [
    logits, target, options.weight ?? null, reductionCode(options.reduction, 'crossEntropy'), options.ignoreIndex ?? -100, smoothing,
  ]);
}

/** Negative log-likelihood of log-probabilities [N,C,...] against class indices. */
export function nllLoss(logProbs: Tensor, target: Tensor, options: Omit<CrossEntropyOptions, 'labelSmoothing'> = {}): Tensor {
  return T('aten::nll_loss_nd', [logProbs, target, options.weight ?? null, reductionCode(options.reduction, 'nllLoss'), options.ignoreIndex ?? -100]);
}

export function mseLoss(input: Tensor, target: Tensor, options: { reduction?: Reduction } = {}): Tensor {
  return T('aten::mse_loss', [input, target, reductionCode(options.reduction, 'mseLoss')]);
}
