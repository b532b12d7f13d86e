// In-place initialisers, with torch.nn.init's semantics. They run without autograd recording,
// so they apply to parameters that require gradients.
import { Tensor, callTensorOp as T } from '../engine/tensor.js';
import { noGrad } from '../engine/autograd.js';

export const zero_ = (t: Tensor): Tensor => noGrad(() => T('aten::zero_', [t]));
export const fill_ = (t: Tensor, value: number): Tensor => noGrad(() => T('aten::fill_.Scalar', [t, value]));
/** Copies `src` (broadcast to t's shape) into t. */
export const copy_ = (t: Tensor, src: Tensor): Tensor => noGrad(() => T('aten::copy_', [t, src]));
export const uniform_ = (t: Tensor, low = 0, high = 1): Tensor => noGrad(() => T('aten::uniform_', [t, low, high]));
export const normal_ = (t: Tensor, mean = 0, std = 1): Tensor => noGrad(() => T('aten::normal_', [t, mean, std]));

/** Normal(mean, std) truncated to [a, b], by inverse-CDF sampling as torch.nn.init.trunc_normal_. */
export function truncNormal_(t: Tensor, mean = 0, std = 1, a = -2, b = 2): Tensor {
  if (!(std > 0) || !(b > a)) throw new RangeError(`truncNormal_: need std > 0 and b > a (std=${std}, a=${a}, b=${b})`);
  const normCdf = (x: number) => (1 + erfScalar(x / Math.SQRT2)) / 2;
  const l = normCdf((a - mean) / std);
  const u = normCdf((b - mean) / std);
  return noGrad(() => {
    T('aten::uniform_', [t, 2 * l - 1, 2 * u - 1]);
    T('aten::erfinv_', [t]);
    T('aten::mul_.Scalar', [t, std * Math.SQRT2]);
    T('aten::add_.Scalar', [t, mean]);
    return T('aten::clamp_', [t, a, b]);
  });
}

/** fan_in and fan_out of a weight [out, in, ...kernel]. */
export function fans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2) throw new RangeError(`fan in/out need a weight with at least 2 dimensions, got shape [${shape.join(',')}]`);
  const receptive = shape.slice(2).reduce((x, y) => x * y, 1);
  return { fanIn: shape[1]! * receptive, fanOut: shape[0]! * receptive };
}

export type Nonlinearity = 'linear' | 'conv2d' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu';

export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear': case 'conv2d': case 'sigmoid': return 1;
    case 'tanh': return 5 / 3;
    case 'relu': return Math.SQRT2;
    case 'leaky_relu': { const slope = param ?? 0.01; return Math.sqrt(2 / (1 + slope * slope)); }
    default: throw new TypeError(`calculateGain: unknown nonlinearity '${String(nonlinearity)}'`);
  }
}

export interface KaimingOptions {
  /** Negative slope of the following leaky ReLU (PyTorch's layers use √5 for their defaults). */
  a?: number;
  mode?: 'fanIn' | 'fanOut';
  nonlinearity?: Nonlinearity;
}

function kaimingStd(t: Tensor, options: KaimingOptions): number {
  const { fanIn, fanOut } = fans(t.shape);
  const fan = (options.mode ?? 'fanIn') === 'fanIn' ? fanIn : fanOut;
  return calculateGain(options.nonlinearity ?? 'leaky_relu', options.a ?? 0) / Math.sqrt(fan);
}

export function kaimingUniform_(t: Tensor, options: KaimingOptions = {}): Tensor {
  const bound = Math.sqrt(3) * kaimingStd(t, options);
  return uniform_(t, -bound, bound);
}

export function kaimingNormal_(t: Tensor, options: KaimingOptions = {}): Tensor {
  return normal_(t, 0, kaimingStd(t, options));
}

export function xavierUniform_(t: Tensor, gain = 1): Tensor {
  const { fanIn, fanOut } = fans(t.shape);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -bound, bound);
}

// Abramowitz–Stegun 7.1.26 is too coarse for the CDF bounds; use a series/continued fraction pair.
function erfScalar(x: number): number {
  const sign = x < 0 ? -1 : 1;
  const z = Math.abs(x);
  if (z < 2.5) {
    // Maclaurin series: converges quickly for small |x|.
    let term = z;
    let sum = z;
    for (let n = 1; n < 60; n++) {
      term *= (-z * z) / n;
      sum += term / (2 * n + 1);
      if (Math.abs(term) < 1e-17) break;
    }
    return sign * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // Continued fraction for erfc at larger |x|.
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (z + f);
  const erfc = Math.exp(-z * z) / Math.sqrt(Math.PI) / (z + f);
  return sign * (1 - erfc);
}

/** @internal exposed for tests */
export const _erfScalar = erfScalar;
