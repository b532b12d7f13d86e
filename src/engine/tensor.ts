// The Tensor class and the generic operator call every typed op is built on.
import { native, type Handle } from './native.js';
import { type DType, type MemoryFormat, type TypedArray, dtypeCode, dtypeFromCode, itemSize, memoryFormatCode, typedArrayFor } from './dtype.js';
import { type Scope, type Trackable, trackInCurrentScope } from './scope.js';

type Meta = [dtype: number, shape: number[], requiresGrad: boolean, device: string];

/** Arguments accepted by `callOp`: tensors, numbers, booleans, strings, arrays of those, null. */
export type OpArg = Tensor | number | bigint | boolean | string | null | undefined | readonly OpArg[];

export class Tensor implements Trackable {
  #handle: Handle | null;
  #meta: Meta | null = null;
  /** @internal */
  _scope: Scope | null = null;

  /** @internal Use the creation ops (`tensor`, `zeros`, ...) instead. */
  constructor(handle: Handle) {
    this.#handle = handle;
    trackInCurrentScope(this);
  }

  /** @internal left to the garbage collector: report its native bytes so GC pressure is honest */
  _unscoped(): void {
    if (this.#handle !== null) native.reportExternal(this.#handle);
  }

  /** @internal the native handle; throws once the tensor is disposed */
  get handle(): Handle {
    if (this.#handle === null) throw new Error('tensor was already disposed');
    return this.#handle;
  }

  /**
   * @internal Moves the native handle out of this object (which becomes disposed without
   * freeing anything): how a Parameter takes over a freshly made tensor.
   */
  _takeHandle(): Handle {
    const h = this.handle;
    this.#handle = null;
    this.#meta = null;
    if (this._scope) this._scope._release(this);
    return h;
  }

  /**
   * Replaces this tensor's data (and so its dtype, device and shape) with `source`'s, keeping the
   * object, its autograd identity and requiresGrad (PyTorch's `param.data = source`).
   */
  setData(source: Tensor): void {
    native.setData(this.handle, source.handle);
    this.#meta = null;
  }

  /** @internal in-place ops may change shape, dtype or requiresGrad */
  _invalidate(): void {
    this.#meta = null;
  }

  #info(): Meta {
    return (this.#meta ??= native.meta(this.handle));
  }

  get shape(): readonly number[] {
    return this.#info()[1];
  }
  get dtype(): DType {
    return dtypeFromCode(this.#info()[0]);
  }
  get device(): string {
    return this.#info()[3];
  }
  get ndim(): number {
    return this.shape.length;
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  /** Bytes its elements take (as stored contiguously). */
  get nbytes(): number {
    return this.numel * itemSize(this.dtype);
  }
  /** Size of one dimension; negative dims count from the end. */
  size(dim: number): number {
    const shape = this.shape;
    const d = dim < 0 ? dim + shape.length : dim;
    if (!Number.isInteger(d) || d < 0 || d >= shape.length) {
      throw new RangeError(`size(${dim}): dimension out of range for a tensor of shape [${shape.join(',')}]`);
    }
    return shape[d]!;
  }
  get strides(): number[] {
    return native.strides(this.handle);
  }
  isContiguous(memoryFormat: MemoryFormat = 'contiguous'): boolean {
    return native.isContiguous(this.handle, memoryFormatCode(memoryFormat));
  }

  get requiresGrad(): boolean {
    return this.#info()[2];
  }
  set requiresGrad(flag: boolean) {
    native.setRequiresGrad(this.handle, flag);
    this.#meta = null;
  }
  /** Sets requiresGrad and returns this tensor, for chaining. */
  requiresGrad_(flag = true): this {
    this.requiresGrad = flag;
    return this;
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.handle);
  }
  /** The accumulated gradient, or null. A new Tensor object over the same memory on each read. */
  get grad(): Tensor | null {
    const g = native.grad(this.handle);
    return g === null ? null : new Tensor(g);
  }
  set grad(g: Tensor | null) {
    native.setGrad(this.handle, g === null ? null : g.handle);
  }
  /** Drops the gradient (PyTorch's `zero_grad(set_to_none=True)`). */
  zeroGrad(): void {
    native.setGrad(this.handle, null);
  }

  /**
   * Back-propagates from this tensor. A non-scalar tensor needs `gradient` (same shape).
   * `retainGraph` keeps the graph so backward can run through it again.
   */
  backward(gradient?: Tensor | null, options: { retainGraph?: boolean } = {}): void {
    native.backward([this.handle], [gradient ? gradient.handle : null], options.retainGraph ?? false);
  }

  get isDisposed(): boolean {
    return this.#handle === null;
  }
  /** Frees the native memory now (views keep their base's memory alive). Safe to call twice. */
  dispose(): void {
    if (this.#handle === null) return;
    native.dispose(this.#handle);
    this.#handle = null;
    this.#meta = null;
    if (this._scope) this._scope._release(this);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** A contiguous copy of the elements in a typed array (float16/bfloat16 as raw uint16 bits). */
  toArray(): TypedArray {
    return typedArrayFor(this.dtype, native.toBytes(this.handle));
  }
  /** Elements as plain JS numbers (int64 values beyond 2^53 lose precision). */
  toNumbers(): number[] {
    const dtype = this.dtype;
    if (dtype === 'float16' || dtype === 'bfloat16') {
      const f = callOp('aten::to.dtype', [this, dtypeCode('float32')]) as Tensor;
      try {
        return Array.from(f.toArray() as Float32Array);
      } finally {
        f.dispose();
      }
    }
    return Array.from(this.toArray() as ArrayLike<number | bigint>, Number);
  }
  /** The value of a one-element tensor. */
  item(): number {
    if (this.numel !== 1) {
      throw new RangeError(`item(): only a one-element tensor has an item; this one has shape [${this.shape.join(',')}]`);
    }
    const v = callOp('aten::item', [this]);
    return typeof v === 'boolean' ? Number(v) : (v as number);
  }

  /** A tensor sharing memory but cut off from the autograd graph. */
  detach(): Tensor {
    return callOp('aten::detach', [this]) as Tensor;
  }
  clone(memoryFormat?: MemoryFormat): Tensor {
    return callOp('aten::clone', [this, memoryFormat ? memoryFormatCode(memoryFormat) : undefined]) as Tensor;
  }
  /** Converts dtype (`'float64'`) or device (`'cpu'`, `'cuda'`); returns this tensor when nothing changes. */
  to(target: DType | string, options: { copy?: boolean } = {}): Tensor {
    if (isDType(target)) return callOp('aten::to.dtype', [this, dtypeCode(target), false, options.copy ?? false]) as Tensor;
    return callOp('aten::to.device', [this, checkDevice(target), this.#info()[0], false, options.copy ?? false]) as Tensor;
  }
  cpu(): Tensor {
    return this.to('cpu');
  }
  cuda(): Tensor {
    return this.to('cuda');
  }
  /** Same values, laid out as `memoryFormat` ('channelsLast' for NHWC convolutions). */
  contiguous(memoryFormat: MemoryFormat = 'contiguous'): Tensor {
    return callOp('aten::contiguous', [this, memoryFormatCode(memoryFormat)]) as Tensor;
  }
  /** True when both tensors view the same native memory. */
  sharesMemoryWith(other: Tensor): boolean {
    return native.sameStorage(this.handle, other.handle);
  }

  toString(): string {
    if (this.#handle === null) return 'Tensor(disposed)';
    const flags = this.requiresGrad ? ', requiresGrad' : '';
    const dev = this.device === 'cpu' ? '' : `, ${this.device}`;
    return `Tensor(${this.dtype}[${this.shape.join(',')}]${dev}${flags})`;
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

const DTYPE_SET = new Set<string>(['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool']);
function isDType(s: string): s is DType {
  return DTYPE_SET.has(s);
}

/** Validates a device string before libtorch sees it, so a CPU-only build says so plainly. */
export function checkDevice(device: string): string {
  if (!/^(cpu|cuda)(:\d+)?$/.test(device)) {
    throw new TypeError(`unknown device '${device}'; expected 'cpu', 'cuda' or 'cuda:N'`);
  }
  if (device.startsWith('cuda') && !native.buildInfo().cuda) {
    throw new Error(
      `device '${device}': this libtorch was built without CUDA (Debian's libtorch is CPU-only). ` +
        'Point LIBTORCH at a CUDA build of libtorch and run `npm run setup` to use a GPU.',
    );
  }
  return device;
}

// ---------------------------------------------------------------------------------------------
// Generic operator call

const opIds = new Map<string, number>();

/** 'aten::add.Tensor' → ['aten::add', 'Tensor']; no overload → ''. */
function splitQualified(qualified: string): [name: string, overload: string] {
  const dot = qualified.indexOf('.', qualified.indexOf('::') + 2);
  return dot < 0 ? [qualified, ''] : [qualified.slice(0, dot), qualified.slice(dot + 1)];
}

function resolve(qualified: string): number {
  let id = opIds.get(qualified);
  if (id === undefined) {
    id = native.resolveOp(...splitQualified(qualified)).id;
    opIds.set(qualified, id);
  }
  return id;
}

/** The schema of an ATen operator, e.g. `opSchema('aten::conv2d')`. */
export function opSchema(qualified: string): string {
  return native.resolveOp(...splitQualified(qualified)).schema;
}

function toNativeArg(arg: OpArg, inputs: Tensor[]): unknown {
  if (arg instanceof Tensor) {
    inputs.push(arg);
    return arg.handle;
  }
  if (Array.isArray(arg)) return arg.map((a) => toNativeArg(a, inputs));
  return arg;
}

function fromNativeResult(value: unknown, inputs: Tensor[]): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => fromNativeResult(v, inputs));
  for (const t of inputs) {
    // In-place ops hand back the input's own handle: return the same Tensor object.
    if (t.handle === value) {
      t._invalidate();
      return t;
    }
  }
  return new Tensor(value as Handle);
}

/**
 * Calls any ATen operator by its qualified name (`'aten::conv2d'`, `'aten::add.Tensor'`) with
 * positional arguments in schema order; `undefined` takes the schema's default. Returns a
 * Tensor, an array for several results, or a number/boolean. Autograd records the call.
 */
export function callOp(qualified: string, args: readonly OpArg[]): unknown {
  const inputs: Tensor[] = [];
  const nativeArgs = args.map((a) => toNativeArg(a, inputs));
  const result = fromNativeResult(native.call(resolve(qualified), nativeArgs), inputs);
  if (opObserver !== null) {
    // The observer's own calls (reading a constant's values) are not part of the trace.
    const observer = opObserver;
    opObserver = null;
    try {
      observer(qualified, args, result);
    } finally {
      opObserver = observer;
    }
  }
  return result;
}

/** Sees every op call with its arguments and result: how the ONNX exporter traces a forward. */
export type OpObserver = (qualified: string, args: readonly OpArg[], result: unknown) => void;
let opObserver: OpObserver | null = null;

/** @internal Runs `fn` with `observer` watching every op call (one tracer at a time). */
export function observeOps<R>(observer: OpObserver, fn: () => R): R {
  if (opObserver !== null) throw new Error('observeOps: a trace is already running');
  opObserver = observer;
  try {
    return fn();
  } finally {
    opObserver = null;
  }
}

/** Like callOp for ops with exactly one tensor result. */
export function callTensorOp(qualified: string, args: readonly OpArg[]): Tensor {
  return callOp(qualified, args) as Tensor;
}

/** @internal */
export function fromBytes(data: ArrayBufferView, dtype: DType, shape: readonly number[]): Tensor {
  return new Tensor(native.fromBytes(data, dtypeCode(dtype), shape));
}

/** @internal Reads a tensor's raw little-endian bytes from an open file at `offset` (one copy, no JS buffer). */
export function fromFile(fd: number, offset: number, dtype: DType, shape: readonly number[]): Tensor {
  return new Tensor(native.readFile(fd, offset, dtypeCode(dtype), shape));
}

