// Padding, resampling and one-hot encoding.
import { Tensor, callTensorOp as T } from '../engine/tensor.js';

export type PadMode = 'constant' | 'reflect' | 'replicate' | 'circular';

/** Pads the last dimensions: `pad` = [left, right, top, bottom, ...] as in torch.nn.functional.pad. */
export function pad(input: Tensor, padding: readonly number[], mode: PadMode = 'constant', value = 0): Tensor {
  if (!Array.isArray(padding) || padding.length % 2 !== 0 || padding.length / 2 > input.ndim) {
    throw new RangeError(`pad: padding must list an even number of sizes, at most 2 per dimension of a ${input.ndim}-d tensor; got [${String(padding)}]`);
  }
  if (!['constant', 'reflect', 'replicate', 'circular'].includes(mode)) {
    throw new TypeError(`pad: mode must be constant, reflect, replicate or circular, got '${String(mode)}'`);
  }
  return T('aten::pad', [input, padding, mode, mode === 'constant' ? value : null]);
}

export interface InterpolateOptions {
  /** Output [H, W]; give this or scaleFactor. */
  size?: readonly [number, number] | number;
  scaleFactor?: readonly [number, number] | number;
  mode?: 'nearest' | 'bilinear';
  alignCorners?: boolean;
}

/** Resizes an [N,C,H,W] map, as torch.nn.functional.interpolate. */
export function interpolate(input: Tensor, options: InterpolateOptions): Tensor {
  if (input.ndim !== 4) throw new RangeError(`interpolate: expects an [N,C,H,W] tensor, got shape [${input.shape.join(',')}]`);
  if ((options.size === undefined) === (options.scaleFactor === undefined)) {
    throw new TypeError('interpolate: give exactly one of size and scaleFactor');
  }
  const mode = options.mode ?? 'nearest';
  const size = options.size === undefined ? null : typeof options.size === 'number' ? [options.size, options.size] : options.size;
  const scale = options.scaleFactor === undefined ? null : typeof options.scaleFactor === 'number' ? [options.scaleFactor, options.scaleFactor] : options.scaleFactor;
  if (mode === 'nearest') {
    if (options.alignCorners !== undefined) throw new TypeError("interpolate: alignCorners only applies to mode 'bilinear'");
    return T('aten::upsample_nearest2d.vec', [input, size, scale]);
  }
  if (mode === 'bilinear') return T('aten::upsample_bilinear2d.vec', [input, size, options.alignCorners ?? false, scale]);
  throw new TypeError(`interpolate: mode must be 'nearest' or 'bilinear', got '${String(mode)}'`);
}

/** int64 class indices → one-hot int64 vectors of length numClasses (inferred when -1). */
export const oneHot = (indices: Tensor, numClasses = -1): Tensor => T('aten::one_hot', [indices, numClasses]);
