// Convolutions and pooling on NCHW maps (channels-last inputs work too: libtorch keeps their layout).
import { Tensor, callOp, callTensorOp as T } from '../engine/tensor.js';
import { isGradEnabled } from '../engine/autograd.js';

type Pair = number | readonly [number, number];

export interface Conv2dOptions {
  stride?: Pair;
  /** Zero padding per side, or 'same' (output size = input size; stride 1 only) or 'valid' (none). */
  padding?: Pair | 'same' | 'valid';
  dilation?: Pair;
  /** groups = in channels = out channels gives a depthwise convolution. */
  groups?: number;
}

function pair(value: Pair | undefined, fallback: number, what: string): readonly [number, number] {
  if (value === undefined) return [fallback, fallback];
  const p = typeof value === 'number' ? ([value, value] as const) : value;
  if (!Array.isArray(p) || p.length !== 2 || !p.every((v) => Number.isInteger(v) && v >= 0)) {
    throw new TypeError(`${what} must be a non-negative integer or a pair of them, got ${JSON.stringify(value)}`);
  }
  return p as readonly [number, number];
}

/** 2-D convolution. input [N,C,H,W], weight [O,C/groups,kH,kW]. */
export function conv2d(input: Tensor, weight: Tensor, bias: Tensor | null = null, options: Conv2dOptions = {}): Tensor {
  const stride = pair(options.stride, 1, 'conv2d: stride');
  const dilation = pair(options.dilation, 1, 'conv2d: dilation');
  const groups = options.groups ?? 1;
  if (typeof options.padding === 'string') {
    if (options.padding !== 'same' && options.padding !== 'valid') {
      throw new TypeError(`conv2d: padding must be a number, a pair, 'same' or 'valid', got '${options.padding}'`);
    }
    return T('aten::conv2d.padding', [input, weight, bias, stride, options.padding, dilation, groups]);
  }
  const padding = pair(options.padding, 0, 'conv2d: padding');
  // A frozen weight (and bias) with an input that needs a gradient: the same convolution, but its
  // autograd node keeps only the weight, not the input (which only the weight gradient needs).
  if (input.ndim === 4 && !weight.requiresGrad && !bias?.requiresGrad && input.requiresGrad && isGradEnabled()) {
    return T('deltatune::frozen_conv2d', [input, weight, bias, stride, padding, dilation, groups]);
  }
  // A trainable bias, or a trainable depthwise kernel wider than 3: the same convolution with a
  // faster backward (native/src/fused.cc): oneDNN's bias gradient costs more than a sum, and its
  // weight gradient for a 7-wide depthwise kernel far more than for a 3-wide one
  // (docs/performance.md#trainable-convolutions).
  if (input.ndim === 4 && isGradEnabled() && (bias?.requiresGrad || (weight.requiresGrad && groups > 1 && weight.ndim === 4 && weight.size(3) > 3))) {
    return T('deltatune::trainable_conv2d', [input, weight, bias, stride, padding, dilation, groups]);
  }
  return T('aten::conv2d', [input, weight, bias, stride, padding, dilation, groups]);
}

export interface ConvTranspose2dOptions {
  stride?: Pair;
  padding?: Pair;
  outputPadding?: Pair;
  groups?: number;
  dilation?: Pair;
}

/** Transposed 2-D convolution. weight [C_in, C_out/groups, kH, kW]. */
export function convTranspose2d(input: Tensor, weight: Tensor, bias: Tensor | null = null, options: ConvTranspose2dOptions = {}): Tensor {
  return T('aten::conv_transpose2d.input', [
    input, weight, bias,
    pair(options.stride, 1, 'convTranspose2d: stride'),
    pair(options.padding, 0, 'convTranspose2d: padding'),
    pair(options.outputPadding, 0, 'convTranspose2d: outputPadding'),
    options.groups ?? 1,
    pair(options.dilation, 1, 'convTranspose2d: dilation'),
  ]);
}

export interface Pool2dOptions {
  /** Defaults to the kernel size, as in PyTorch. */
  stride?: Pair;
  padding?: Pair;
  ceilMode?: boolean;
}

export function maxPool2d(input: Tensor, kernelSize: Pair, options: Pool2dOptions & { dilation?: Pair } = {}): Tensor {
  const kernel = pair(kernelSize, 1, 'maxPool2d: kernelSize');
  return T('aten::max_pool2d', [
    input, kernel, options.stride === undefined ? kernel : pair(options.stride, 1, 'maxPool2d: stride'),
    pair(options.padding, 0, 'maxPool2d: padding'), pair(options.dilation, 1, 'maxPool2d: dilation'), options.ceilMode ?? false,
  ]);
}

export function avgPool2d(
  input: Tensor,
  kernelSize: Pair,
  options: Pool2dOptions & { countIncludePad?: boolean; divisorOverride?: number } = {},
): Tensor {
  const kernel = pair(kernelSize, 1, 'avgPool2d: kernelSize');
  return T('aten::avg_pool2d', [
    input, kernel, options.stride === undefined ? kernel : pair(options.stride, 1, 'avgPool2d: stride'),
    pair(options.padding, 0, 'avgPool2d: padding'), options.ceilMode ?? false, options.countIncludePad ?? true,
    options.divisorOverride ?? null,
  ]);
}

/** Average-pools to a fixed output size (1 gives global average pooling). */
export function adaptiveAvgPool2d(input: Tensor, outputSize: Pair): Tensor {
  return T('aten::adaptive_avg_pool2d', [input, pair(outputSize, 1, 'adaptiveAvgPool2d: outputSize')]);
}

export function adaptiveMaxPool2d(input: Tensor, outputSize: Pair): Tensor {
  return (callOp('aten::adaptive_max_pool2d', [input, pair(outputSize, 1, 'adaptiveMaxPool2d: outputSize')]) as Tensor[])[0]!;
}
