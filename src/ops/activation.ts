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
  // aten::dropout draws its mask with bernoulli_, which this build runs serially at ~6 ns per
  // element (10 ms for a [8,64,56,56] map); uniform_ then a comparison gives the same Bernoulli(1−p)
  // keep mask 2.5× faster. out = a·keep·1/(1−p), as aten::native_dropout computes it; autograd keeps
  // the boolean mask (1 byte per element), as native_dropout does.
  const keepMask = noGrad(() => {
    const u = T('aten::empty_like', [a, null, null, null, null, null]);
    T('aten::uniform_', [u, 0, 1, null]);
    const k = T('aten::ge.Scalar', [u, p]);
    u.dispose();
    return k;
  });
  const out = a.mul(keepMask).mul_(1 / (1 - p));
  keepMask.dispose();
  return out;
}
