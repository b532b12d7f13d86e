// Tensor creation: from JS data, constants, ranges and random draws.
import { Tensor, callTensorOp } from '../engine/tensor.js';
import { fromBytes, checkDevice } from '../engine/tensor.js';
import { type DType, dtypeCode, dtypeOfArray } from '../engine/dtype.js';

export interface CreateOptions {
  /** Element type; float32 unless stated (JS numbers do not say whether they are integers). */
  dtype?: DType;
  device?: string;
  requiresGrad?: boolean;
}

type Nested = number | boolean | bigint | readonly Nested[];

function checkShape(shape: readonly number[], what: string): readonly number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${what}: shape must be an array of integers`);
  for (const s of shape) {
    if (!Number.isInteger(s) || s < 0) throw new RangeError(`${what}: invalid shape [${shape.join(',')}]`);
  }
  return shape;
}

function finish(t: Tensor, options: CreateOptions): Tensor {
  let out = t;
  if (options.device && options.device !== 'cpu') {
    out = t.to(checkDevice(options.device));
    if (out !== t) t.dispose();
  }
  if (options.requiresGrad) out.requiresGrad = true;
  return out;
}

/** Calls an ATen factory op: `leading` arguments, then dtype, layout, device and pin_memory. */
function factory(op: string, leading: readonly (number | boolean | readonly number[])[], options: CreateOptions, fallback: DType = 'float32'): Tensor {
  const device = options.device ? checkDevice(options.device) : undefined;
  const t = callTensorOp(op, [...leading, dtypeCode(options.dtype ?? fallback), undefined, device, undefined]);
  if (options.requiresGrad) t.requiresGrad = true;
  return t;
}

// The shape follows the first element at each depth; every array must then match it exactly,
// so ragged data ([1, [2]], [[1, 2], [3]]) is refused instead of silently reshaped.
function inferShape(data: Nested): number[] {
  const shape: number[] = [];
  let d: Nested = data;
  while (Array.isArray(d)) {
    shape.push(d.length);
    if (d.length === 0) break;
    d = d[0]!;
  }
  return shape;
}

function flatten(data: Nested, shape: readonly number[], out: (number | boolean | bigint)[], depth: number): void {
  if (Array.isArray(data)) {
    if (depth >= shape.length || shape[depth] !== data.length) {
      throw new RangeError(`tensor(): ragged nested array (an array of length ${data.length} at depth ${depth} where the first elements give shape [${shape.join(',')}])`);
    }
    for (const d of data) flatten(d, shape, out, depth + 1);
  } else {
    if (depth !== shape.length) throw new RangeError(`tensor(): ragged nested array (a value at depth ${depth} where the first elements give shape [${shape.join(',')}])`);
    out.push(data as number | boolean | bigint);
  }
}

/**
 * A tensor from JS data: a typed array (one copy, dtype taken from the array unless given),
 * or numbers / booleans / bigints, possibly nested. `shape` reshapes flat data.
 */
export function tensor(data: ArrayBufferView | Nested, options: CreateOptions & { shape?: readonly number[] } = {}): Tensor {
  let t: Tensor;
  if (ArrayBuffer.isView(data)) {
    const natural = dtypeOfArray(data);
    const count = (data as unknown as ArrayLike<unknown>).length;
    const shape = options.shape ? checkShape(options.shape, 'tensor()') : [count];
    t = fromBytes(data, natural, shape);
    const wanted = options.dtype ?? natural;
    if (wanted !== natural) {
      const converted = t.to(wanted);
      t.dispose();
      t = converted;
    }
  } else {
    const values: (number | boolean | bigint)[] = [];
    const inferred = inferShape(data);
    flatten(data, inferred, values, 0);
    const shape = options.shape ? checkShape(options.shape, 'tensor()') : inferred;
    const kind = values.length ? typeof values[0] : 'number';
    if (!values.every((v) => typeof v === kind)) throw new TypeError('tensor(): mixed element types (numbers, booleans, bigints)');
    const dtype = options.dtype ?? (kind === 'boolean' ? 'bool' : kind === 'bigint' ? 'int64' : 'float32');
    if (kind === 'bigint') t = fromBytes(BigInt64Array.from(values as bigint[]), 'int64', shape);
    else if (kind === 'boolean') t = fromBytes(Uint8Array.from(values as boolean[], Number), 'bool', shape);
    else if (dtype === 'float32') t = fromBytes(Float32Array.from(values as number[]), 'float32', shape);
    else t = fromBytes(Float64Array.from(values as number[]), 'float64', shape);
    if (t.dtype !== dtype) {
      const converted = t.to(dtype);
      t.dispose();
      t = converted;
    }
  }
  return finish(t, { ...options, dtype: undefined });
}

/** A zero-dimensional tensor. */
export function scalar(value: number, options: CreateOptions = {}): Tensor {
  return full([], value, options);
}

export function empty(shape: readonly number[], options: CreateOptions = {}): Tensor {
  checkShape(shape, 'empty');
  return factory('aten::empty.memory_format', [shape], options);
}

export function zeros(shape: readonly number[], options: CreateOptions = {}): Tensor {
  checkShape(shape, 'zeros');
  return factory('aten::zeros', [shape], options);
}

export function ones(shape: readonly number[], options: CreateOptions = {}): Tensor {
  checkShape(shape, 'ones');
  return factory('aten::ones', [shape], options);
}

export function full(shape: readonly number[], value: number | boolean, options: CreateOptions = {}): Tensor {
  checkShape(shape, 'full');
  // A boolean fill makes a bool tensor, as torch.full infers; numbers default to float32.
  const fallback = typeof value === 'boolean' ? 'bool' : 'float32';
  return factory('aten::full', [shape, value], options, fallback);
}

/** Values from `start` to `end` (exclusive) by `step`; int64 when all three are integers, as PyTorch. */
export function arange(start: number, end?: number, step = 1, options: CreateOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new RangeError('arange: step must not be zero');
  const integral = [start, end, step].every(Number.isInteger);
  return factory('aten::arange.start_step', [start, end, step], options, integral ? 'int64' : 'float32');
}

export function linspace(start: number, end: number, steps: number, options: CreateOptions = {}): Tensor {
  if (!Number.isInteger(steps) || steps < 0) throw new RangeError(`linspace: steps must be a non-negative integer, got ${steps}`);
  return factory('aten::linspace', [start, end, steps], options);
}

export function eye(n: number, m: number = n, options: CreateOptions = {}): Tensor {
  return factory('aten::eye.m', [n, m], options);
}

/** Uniform samples in [0, 1). */
export function rand(shape: readonly number[], options: CreateOptions = {}): Tensor {
  checkShape(shape, 'rand');
  return factory('aten::rand', [shape], options);
}

/** Standard normal samples. */
export function randn(shape: readonly number[], options: CreateOptions = {}): Tensor {
  checkShape(shape, 'randn');
  return factory('aten::randn', [shape], options);
}

/** Integers uniform in [low, high); int64 unless stated. */
export function randint(low: number, high: number, shape: readonly number[], options: CreateOptions = {}): Tensor {
  checkShape(shape, 'randint');
  if (!(high > low)) throw new RangeError(`randint: high (${high}) must be greater than low (${low})`);
  return factory('aten::randint.low', [low, high, shape], options, 'int64');
}

/** A random permutation of 0..n-1 (int64). */
export function randperm(n: number): Tensor {
  return callTensorOp('aten::randperm', [n, dtypeCode('int64')]);
}

export function zerosLike(t: Tensor, options: CreateOptions = {}): Tensor {
  return zeros(t.shape, { dtype: t.dtype, device: t.device, ...options });
}

export function onesLike(t: Tensor, options: CreateOptions = {}): Tensor {
  return ones(t.shape, { dtype: t.dtype, device: t.device, ...options });
}

export function fullLike(t: Tensor, value: number, options: CreateOptions = {}): Tensor {
  return full(t.shape, value, { dtype: t.dtype, device: t.device, ...options });
}

export function randnLike(t: Tensor, options: CreateOptions = {}): Tensor {
  return randn(t.shape, { dtype: t.dtype, device: t.device, ...options });
}

/** 0/1 samples that are 1 with probability p (float32 unless stated). */
export function bernoulli(shape: readonly number[], p: number, options: CreateOptions = {}): Tensor {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`bernoulli: p must be in [0, 1], got ${p}`);
  const t = empty(shape, { ...options, requiresGrad: false });
  callTensorOp('aten::bernoulli_.float', [t, p]);
  return t;
}
