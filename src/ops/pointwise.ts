// Element-wise arithmetic, comparisons and unary math, with PyTorch's broadcasting and type promotion.
import { Tensor, callTensorOp as T } from '../engine/tensor.js';

export type TensorOrNumber = Tensor | number;

// ATen names a tensor-tensor overload `.Tensor` and a tensor-number one `.Scalar`.
function binary(name: string, a: Tensor, b: TensorOrNumber, ...extra: (number | undefined)[]): Tensor {
  return T(`aten::${name}.${b instanceof Tensor ? 'Tensor' : 'Scalar'}`, [a, b, ...extra]);
}

/** a + alpha·b */
export const add = (a: Tensor, b: TensorOrNumber, alpha?: number): Tensor => binary('add', a, b, alpha);
/** a − alpha·b */
export const sub = (a: Tensor, b: TensorOrNumber, alpha?: number): Tensor => binary('sub', a, b, alpha);
export const mul = (a: Tensor, b: TensorOrNumber): Tensor => binary('mul', a, b);
/** True division; `roundingMode` 'trunc' or 'floor' rounds the quotient. */
export function div(a: Tensor, b: TensorOrNumber, roundingMode?: 'trunc' | 'floor'): Tensor {
  if (roundingMode === undefined) return binary('div', a, b);
  if (roundingMode !== 'trunc' && roundingMode !== 'floor') {
    throw new TypeError(`div: roundingMode must be 'trunc' or 'floor', got '${String(roundingMode)}'`);
  }
  return T(`aten::div.${b instanceof Tensor ? 'Tensor_mode' : 'Scalar_mode'}`, [a, b, roundingMode]);
}
export const remainder = (a: Tensor, b: TensorOrNumber): Tensor => binary('remainder', a, b);
export function pow(a: Tensor | number, exponent: TensorOrNumber): Tensor {
  if (!(a instanceof Tensor)) {
    if (!(exponent instanceof Tensor)) throw new TypeError('pow: at least one argument must be a tensor');
    return T('aten::pow.Scalar', [a, exponent]);
  }
  return T(exponent instanceof Tensor ? 'aten::pow.Tensor_Tensor' : 'aten::pow.Tensor_Scalar', [a, exponent]);
}
/** Element-wise maximum of two tensors (use clamp for a number bound). */
export const maximum = (a: Tensor, b: Tensor): Tensor => T('aten::maximum', [a, b]);
export const minimum = (a: Tensor, b: Tensor): Tensor => T('aten::minimum', [a, b]);
/** a + value·t1·t2 */
export const addcmul = (a: Tensor, t1: Tensor, t2: Tensor, value = 1): Tensor => T('aten::addcmul', [a, t1, t2, value]);
/** a + value·t1/t2 */
export const addcdiv = (a: Tensor, t1: Tensor, t2: Tensor, value = 1): Tensor => T('aten::addcdiv', [a, t1, t2, value]);
/** a + weight·(b − a) */
export const lerp = (a: Tensor, b: Tensor, weight: TensorOrNumber): Tensor =>
  T(`aten::lerp.${weight instanceof Tensor ? 'Tensor' : 'Scalar'}`, [a, b, weight]);

export const eq = (a: Tensor, b: TensorOrNumber): Tensor => binary('eq', a, b);
export const ne = (a: Tensor, b: TensorOrNumber): Tensor => binary('ne', a, b);
export const lt = (a: Tensor, b: TensorOrNumber): Tensor => binary('lt', a, b);
export const le = (a: Tensor, b: TensorOrNumber): Tensor => binary('le', a, b);
export const gt = (a: Tensor, b: TensorOrNumber): Tensor => binary('gt', a, b);
export const ge = (a: Tensor, b: TensorOrNumber): Tensor => binary('ge', a, b);
export const logicalAnd = (a: Tensor, b: Tensor): Tensor => T('aten::logical_and', [a, b]);
export const logicalOr = (a: Tensor, b: Tensor): Tensor => T('aten::logical_or', [a, b]);
export const logicalNot = (a: Tensor): Tensor => T('aten::logical_not', [a]);

/** Picks from `a` where `condition` is true, else from `b`. */
export function where(condition: Tensor, a: TensorOrNumber, b: TensorOrNumber): Tensor {
  const overload = a instanceof Tensor ? (b instanceof Tensor ? 'self' : 'ScalarOther') : b instanceof Tensor ? 'ScalarSelf' : 'Scalar';
  return T(`aten::where.${overload}`, [condition, a, b]);
}

/** Limits values to [min, max]; either bound may be omitted (null). */
export function clamp(a: Tensor, min: TensorOrNumber | null = null, max: TensorOrNumber | null = null): Tensor {
  if (min === null && max === null) throw new TypeError('clamp: give at least one of min and max');
  if (min instanceof Tensor || max instanceof Tensor) {
    if (typeof min === 'number' || typeof max === 'number') throw new TypeError('clamp: min and max must both be tensors or both numbers');
    return T('aten::clamp.Tensor', [a, min, max]);
  }
  return T('aten::clamp', [a, min, max]);
}

export const neg = (a: Tensor): Tensor => T('aten::neg', [a]);
export const abs = (a: Tensor): Tensor => T('aten::abs', [a]);
export const sign = (a: Tensor): Tensor => T('aten::sign', [a]);
export const exp = (a: Tensor): Tensor => T('aten::exp', [a]);
export const log = (a: Tensor): Tensor => T('aten::log', [a]);
export const log1p = (a: Tensor): Tensor => T('aten::log1p', [a]);
export const sqrt = (a: Tensor): Tensor => T('aten::sqrt', [a]);
export const rsqrt = (a: Tensor): Tensor => T('aten::rsqrt', [a]);
export const square = (a: Tensor): Tensor => T('aten::square', [a]);
export const reciprocal = (a: Tensor): Tensor => T('aten::reciprocal', [a]);
export const erf = (a: Tensor): Tensor => T('aten::erf', [a]);
export const erfinv = (a: Tensor): Tensor => T('aten::erfinv', [a]);
export const sin = (a: Tensor): Tensor => T('aten::sin', [a]);
export const cos = (a: Tensor): Tensor => T('aten::cos', [a]);
export const floor = (a: Tensor): Tensor => T('aten::floor', [a]);
export const ceil = (a: Tensor): Tensor => T('aten::ceil', [a]);
export const round = (a: Tensor): Tensor => T('aten::round', [a]);
export const isfinite = (a: Tensor): Tensor => T('aten::isfinite', [a]);
export const isnan = (a: Tensor): Tensor => T('aten::isnan', [a]);

// In-place forms, for optimizers and initialisers (call them under noGrad on parameters).
export const add_ = (a: Tensor, b: TensorOrNumber, alpha?: number): Tensor => binary('add_', a, b, alpha);
export const sub_ = (a: Tensor, b: TensorOrNumber, alpha?: number): Tensor => binary('sub_', a, b, alpha);
export const mul_ = (a: Tensor, b: TensorOrNumber): Tensor => binary('mul_', a, b);
export const div_ = (a: Tensor, b: TensorOrNumber): Tensor => binary('div_', a, b);
export const addcmul_ = (a: Tensor, t1: Tensor, t2: Tensor, value = 1): Tensor => T('aten::addcmul_', [a, t1, t2, value]);
export const addcdiv_ = (a: Tensor, t1: Tensor, t2: Tensor, value = 1): Tensor => T('aten::addcdiv_', [a, t1, t2, value]);
export const lerp_ = (a: Tensor, b: Tensor, weight: TensorOrNumber): Tensor =>
  T(`aten::lerp_.${weight instanceof Tensor ? 'Tensor' : 'Scalar'}`, [a, b, weight]);
export function clamp_(a: Tensor, min: number | null = null, max: number | null = null): Tensor {
  if (min === null && max === null) throw new TypeError('clamp_: give at least one of min and max');
  return T('aten::clamp_', [a, min, max]);
}
export const sqrt_ = (a: Tensor): Tensor => T('aten::sqrt_', [a]);
export const erfinv_ = (a: Tensor): Tensor => T('aten::erfinv_', [a]);
