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

type Scalar = number | boolean | bigint;

/** `[1][0]`: where the element at row-major position `flat` sits in data of `shape` ('' for a scalar). */
function indexPath(flat: number, shape: readonly number[]): string {
  const idx: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d]!;
    idx.unshift(n > 0 ? flat % n : 0);
    flat = n > 0 ? Math.floor(flat / n) : 0;
  }
  return idx.map((i) => `[${i}]`).join('');
}

/** 'element [1][0]', or 'the value' for scalar data. */
function where(flat: number, shape: readonly number[]): string {
  return shape.length ? `element ${indexPath(flat, shape)}` : 'the value';
}

/** A short description of something that is not a number, boolean or bigint. */
function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'string') return `a string ('${v.length > 24 ? `${v.slice(0, 24)}…` : v}')`;
  if (typeof v === 'symbol') return `a symbol (${v.toString()})`;
  if (typeof v === 'function') return 'a function';
  const name = (v as object).constructor?.name;
  return name && name !== 'Object' ? `an object (${name})` : 'an object';
}

// Walks nested data in row-major order; out.length is then the flat position of the next leaf,
// which names its index path in errors without tracking one per element.
function flatten(data: Nested, shape: readonly number[], out: Scalar[], depth: number): void {
  if (Array.isArray(data)) {
    if (depth >= shape.length || shape[depth] !== data.length) {
      throw new RangeError(`tensor(): ragged nested array (an array of length ${data.length} at depth ${depth} where the first elements give shape [${shape.join(',')}])`);
    }
    for (const d of data) flatten(d, shape, out, depth + 1);
  } else {
    if (depth !== shape.length) throw new RangeError(`tensor(): ragged nested array (a value at depth ${depth} where the first elements give shape [${shape.join(',')}])`);
    const kind = typeof data;
    if (kind !== 'number' && kind !== 'boolean' && kind !== 'bigint') {
      throw new TypeError(`tensor(): ${where(out.length, shape)} is ${describe(data)}, expected a number, boolean or bigint`);
    }
    out.push(data as Scalar);
  }
}

type IntDType = 'int64' | 'int32' | 'int16' | 'int8' | 'uint8';

/**
 * The integer dtypes' ranges as bigints, and as the lowest and highest doubles inside them (int64's
 * top, 2^63 − 1, is no double: the highest below it is 2^63 − 1024).
 */
const INT_RANGES: Record<IntDType, { lo: number; hi: number; loN: bigint; hiN: bigint }> = {
  uint8: { lo: 0, hi: 255, loN: 0n, hiN: 255n },
  int8: { lo: -128, hi: 127, loN: -128n, hiN: 127n },
  int16: { lo: -32768, hi: 32767, loN: -32768n, hiN: 32767n },
  int32: { lo: -2147483648, hi: 2147483647, loN: -2147483648n, hiN: 2147483647n },
  int64: { lo: -(2 ** 63), hi: 2 ** 63 - 1024, loN: -(2n ** 63n), hiN: 2n ** 63n - 1n },
};

function intRange(dtype: DType): (typeof INT_RANGES)[IntDType] | undefined {
  return Object.prototype.hasOwnProperty.call(INT_RANGES, dtype) ? INT_RANGES[dtype as IntDType] : undefined;
}

function rangeText(dtype: IntDType): string {
  const r = INT_RANGES[dtype];
  return `[${r.loN}, ${r.hiN}]`;
}

// As PyTorch converts a float into an integer dtype: NaN, ±Infinity and values outside the range
// ("value cannot be converted to type uint8 without overflow") are refused, the range being checked
// before the fraction is dropped (127.5 is refused for int8, -0.5 taken as 0), and what passes is
// truncated toward zero. Unlike PyTorch, -1 into uint8 is refused rather than wrapped to 255 (torch
// wraps Python ints there, and refuses the float -1.0; JS numbers do not tell the two apart).
function numberError(v: number, dtype: IntDType, at: string): RangeError {
  if (!Number.isFinite(v)) return new RangeError(`tensor(): ${at} is ${v}, which ${dtype} cannot hold (expected a finite number)`);
  return new RangeError(`tensor(): ${at} is ${exact(v)}, outside ${dtype}'s range ${rangeText(dtype)}`);
}

/** A finite number in full digits up to 1e21 (2^63 as 9223372036854775808, not 9223372036854776000). */
function exact(v: number): string {
  return Number.isInteger(v) && Math.abs(v) >= 2 ** 53 && Math.abs(v) < 1e21 ? BigInt(v).toString() : String(v);
}

/** Checks JS numbers bound for an integer dtype (int64 also needs them exact: |v| < 2^53). */
function checkNumbers(values: readonly number[], dtype: IntDType, shape: readonly number[]): void {
  const { lo, hi } = INT_RANGES[dtype];
  const int64 = dtype === 'int64';
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!(v >= lo && v <= hi)) throw numberError(v, dtype, where(i, shape));
    if (int64 && !(v > -9007199254740992 && v < 9007199254740992)) {
      throw new RangeError(
        `tensor(): ${where(i, shape)} is ${exact(v)}, beyond 2^53 - 1 where JS numbers stop being exact integers; pass bigints for int64 (e.g. ${BigInt(Math.trunc(v))}n)`,
      );
    }
  }
}

/** Checks bigints: they must fit int64 (they travel as a BigInt64Array) and an integer target dtype. */
function checkBigints(values: readonly bigint[], dtype: DType, shape: readonly number[]): void {
  const target = intRange(dtype) ? (dtype as IntDType) : 'int64';
  const { loN, hiN } = INT_RANGES[target];
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < loN || v > hiN) throw new RangeError(`tensor(): ${where(i, shape)} is ${v}n, outside ${target}'s range ${rangeText(target)}`);
  }
}

/**
 * Checks a typed array's elements before converting it to integer dtype `wanted`: one pass, and
 * none at all when every value of the array's own type fits (Int8Array into int32, ...).
 */
function checkTypedArray(data: ArrayBufferView, natural: DType, wanted: DType): void {
  const target = intRange(wanted);
  if (!target) return; // float and bool targets take any value (overflow to ±inf, nonzero to true), as PyTorch
  const source = intRange(natural);
  if (source && source.loN >= target.loN && source.hiN <= target.hiN) return;
  const t = wanted as IntDType;
  if (data instanceof BigInt64Array) {
    const { loN, hiN } = target;
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (v < loN || v > hiN) throw new RangeError(`tensor(): element [${i}] is ${v}n, outside ${t}'s range ${rangeText(t)}`);
    }
    return;
  }
  const a = data as unknown as ArrayLike<number>;
  const { lo, hi } = target;
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    if (!(v >= lo && v <= hi)) throw numberError(v, t, `element [${i}]`);
  }
}

/**
 * A tensor from JS data: a typed array (one copy, dtype taken from the array unless given),
 * or numbers / booleans / bigints, possibly nested. `shape` reshapes flat data.
 *
 * Elements must be numbers, booleans or bigints (a TypeError names the first that is not, by its
 * index path). Into an integer dtype, values must be finite and within its range (fractions truncate
 * toward zero, as PyTorch); JS numbers into int64 must be exact integers (|v| < 2^53; use bigints
 * beyond). Float dtypes take any number (beyond their range: ±Infinity), bool any (nonzero: true).
 */
export function tensor(data: ArrayBufferView | Nested, options: CreateOptions & { shape?: readonly number[] } = {}): Tensor {
  let t: Tensor;
  if (ArrayBuffer.isView(data)) {
    const natural = dtypeOfArray(data);
    const count = (data as unknown as ArrayLike<unknown>).length;
    const shape = options.shape ? checkShape(options.shape, 'tensor()') : [count];
    const wanted = options.dtype ?? natural;
    if (wanted !== natural) {
      dtypeCode(wanted); // an unknown dtype is named before any element is
      checkTypedArray(data, natural, wanted);
    }
    t = fromBytes(data, natural, shape);
    if (wanted !== natural) {
      const converted = t.to(wanted);
      t.dispose();
      t = converted;
    }
  } else {
    const values: Scalar[] = [];
    const inferred = inferShape(data);
    flatten(data, inferred, values, 0);
    const shape = options.shape ? checkShape(options.shape, 'tensor()') : inferred;
    const kind = values.length ? typeof values[0] : 'number';
    for (let i = 1; i < values.length; i++) {
      if (typeof values[i] !== kind) {
        throw new TypeError(`tensor(): ${where(i, inferred)} is a ${typeof values[i]} but ${where(0, inferred)} is a ${kind}; mixed element types (numbers, booleans, bigints) are not supported`);
      }
    }
    const dtype = options.dtype ?? (kind === 'boolean' ? 'bool' : kind === 'bigint' ? 'int64' : 'float32');
    dtypeCode(dtype);
    const range = intRange(dtype);
    if (kind === 'number' && range) checkNumbers(values as number[], dtype as IntDType, inferred);
    if (kind === 'bigint') checkBigints(values as bigint[], dtype, inferred);
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
