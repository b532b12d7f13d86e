// Nonlinearities, softmax and dropout.
import { Tensor, callTensorOp as T } from '../engine/tensor.js';
import { noGrad } from '../engine/autograd.js';

export const relu = (a: Tensor): Tensor => T('aten::relu', [a]);
export const relu_ = (a: Tensor): Tensor => T('aten::relu_', [a]);
/** min(max(x, 0), 6), as in MobileNetV2. */
export const relu6 = (a: Tensor): Tensor => T('aten::hardtanh', [a, 0, 6]);
export const relu6_ = (a: Tensor): Tensor => T('aten::hardtanh_', [a, 0, 6]);
export const leakyRelu = (a: Tensor, negativeSlope = 0.01): Tensor => T('aten::leaky_relu', [a, negativeSlope]);
/** GELU: exact (erf) by default, or the tanh approximation. */
export function gelu(a: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  if (approximate !== 'none' && approximate !== 'tanh') throw new TypeError(`gelu: approximate must be 'none' or 'tanh', got '${String(approximate)}'`);
  return T('aten::gelu', [a, approximate]);
}
export const silu = (a: Tensor): Tensor => T('aten::silu', [a]);
export const hardswish = (a: Tensor): Tensor => T('aten::hardswish', [a]);
export const sigmoid = (a: Tensor): Tensor => T('aten::sigmoid', [a]);
export const tanh = (a: Tensor): Tensor => T('aten::tanh', [a]);
export const softmax = (a: Tensor, dim: number): Tensor => T('aten::softmax.int', [a, dim]);
export const logSoftmax = (a: Tensor, dim: number): Tensor => T('aten::log_softmax.int', [a, dim]);

/** Zeroes elements with probability p and scales the rest by 1/(1−p) when training. */
export function dropout(a: Tensor, p = 0.5, training = true): Tensor {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`dropout: p must be in [0, 1], got ${p}`);
  if (!training || p === 0 || p === 1) return T('aten::dropout', [a, p, training]);
  // aten::dropout draws its mask with bernoulli_, serially: milliseconds for one of Mona's maps
  // (docs/performance.md#dropout-masks). deltatune::dropout_mask draws the same Bernoulli(1−p)
  // keep mask, already scaled by 1/(1−p), in parallel chunks (native/src/random.cc); out = a·mask,
  // and autograd keeps the float mask (4 bytes an element; native_dropout keeps 1), for one
  // multiply fewer each way.
  const mask = noGrad(() => T('deltatune::dropout_mask', [a, p]));
  const out = a.mul(mask);
  mask.dispose();
  return out;
}
