// Tracing a forward into an ONNX graph, the way torch.onnx's tracer does: every ATen call the
// forward makes is seen (engine/tensor.ts observeOps) and translated by a symbolic function into
// ONNX nodes (symbolic.ts). Calls whose tensor inputs are all constants (parameters, buffers, and
// what is computed from them alone, like Mona's filter bank or Swin's attention masks) are folded:
// their result becomes an initializer when a traced value first uses it.
//
// The batch stays dynamic: the forward is traced twice, at batch 2 and 3; every integer argument
// or result size that differs between the two is k·batch, and is computed in the graph from the
// input's shape. Everything else (the image size, channel counts) is fixed, as in torch.onnx.
import { Tensor, observeOps, type OpArg } from '../engine/tensor.js';
import type { DType } from '../engine/dtype.js';
import { noGrad, tidy } from '../engine/index.js';
import { ones } from '../ops/index.js';
import type { Module } from '../nn/module.js';
import type { VisionModel } from '../models/base.js';
import { OnnxGraph, onnxType } from './graph.js';
import { OnnxType } from './onnx-proto.js';
import { SYMBOLICS } from './symbolic.js';

/** A value computed by the graph from the image. */
export interface Dyn {
  kind: 'dyn';
  name: string;
  dtype: DType;
  /** Its shape at the traced batch (sizes along batch-dependent dims are the traced ones). */
  shape: readonly number[];
}
/** A value known at export time: a parameter, a buffer, or something computed from them alone. */
export interface Const {
  kind: 'const';
  tensor: Tensor;
  /** Depends on the delta's own tensors (else only on the frozen base). */
  delta: boolean;
  /** The checkpoint name, for parameters and buffers. */
  paramName?: string;
  materialized?: string;
}
export type Val = Dyn | Const;

/** An integer that is k × batch. */
export interface BatchInt {
  kind: 'batch';
  value: number;
  perBatch: number;
}
export type SymArg = Val | BatchInt | number | bigint | boolean | string | null | undefined | readonly SymArg[];

export function isVal(a: SymArg): a is Val {
  return typeof a === 'object' && a !== null && !Array.isArray(a) && ((a as Val).kind === 'dyn' || (a as Val).kind === 'const');
}

export class ExportError extends Error {}

export interface TraceOptions {
  /** [C, H, W] of the image input. */
  inputSize: readonly [number, number, number];
  /** The delta's own tensors (trained parameters, its head): never part of the shared base. */
  deltaTensors: ReadonlySet<Tensor>;
  /** Store float32 initializers as float16 (a Cast back to float32 follows each). */
  float16: boolean;
  opset: number;
}

interface CallRecord {
  op: string;
  nums: number[];
  shapes: number[][];
}

const TRACE_BATCHES = [2, 3] as const;

function flatNumbers(args: readonly OpArg[], out: number[] = []): number[] {
  for (const a of args) {
    if (typeof a === 'number') out.push(a);
    else if (Array.isArray(a)) flatNumbers(a, out);
  }
  return out;
}

function resultTensors(result: unknown): Tensor[] {
  if (result instanceof Tensor) return [result];
  if (Array.isArray(result)) return result.filter((r): r is Tensor => r instanceof Tensor);
  return [];
}

/** Calls the model's modules record the path of the one running (for errors naming the module). */
function withModulePaths<R>(model: VisionModel, fn: (path: () => string) => R): R {
  const stack: string[] = [];
  // A forward set on the instance (a user's override) is wrapped too, and put back afterwards.
  const patched: [Module<any, any>, PropertyDescriptor | undefined][] = [];
  for (const [name, m] of model.namedModules()) {
    const own = Object.getOwnPropertyDescriptor(m, 'forward');
    if (own && !own.configurable) continue;
    const original = m.forward;
    Object.defineProperty(m, 'forward', {
      configurable: true,
      writable: true,
      value: function (this: Module<any, any>, ...args: unknown[]) {
        stack.push(`${name || '(model)'} (${m.constructor.name})`);
        try {
          return (original as (...a: unknown[]) => unknown).apply(this, args);
        } finally {
          stack.pop();
        }
      },
    });
    patched.push([m, own]);
  }
  try {
    return fn(() => stack[stack.length - 1] ?? '(model)');
  } finally {
    for (const [m, own] of patched) {
      delete (m as unknown as Record<string, unknown>).forward;
      if (own) Object.defineProperty(m, 'forward', own);
    }
  }
}

/** The graph of `model.forward` on an image batch (model in eval mode, no autograd). */
export function traceModel(model: VisionModel, options: TraceOptions): { graph: OnnxGraph; outputShape: number[] } {
  const paramNames = new Map<Tensor, string>();
  for (const [name, p] of model.namedParameters()) paramNames.set(p, name);
  for (const [name, b] of model.namedBuffers()) paramNames.set(b, name);
  const [c, h, w] = options.inputSize;

  // A first forward fills any caches modules keep (weights relaid for the input's layout), so the
  // two traced passes run the same calls.
  noGrad(() => tidy(() => model.forward(ones([TRACE_BATCHES[0], c, h, w]))));
  const probe: CallRecord[] = [];
  noGrad(() =>
    tidy(() => {
      const x = ones([TRACE_BATCHES[1], c, h, w]);
      observeOps(
        (op, args, result) => {
          probe.push({ op, nums: flatNumbers(args), shapes: resultTensors(result).map((t) => [...t.shape]) });
        },
        () => model.forward(x),
      );
    }),
  );

  // Pass 2 (batch 2): the graph.
  const graph = new OnnxGraph();
  let outputShape: number[] = [];
  withModulePaths(model, (modulePath) =>
    noGrad(() =>
      tidy(() => {
        const x = ones([TRACE_BATCHES[0], c, h, w]);
        const ctx = new TraceContext(graph, options, paramNames);
        ctx.vals.set(x, { kind: 'dyn', name: 'image', dtype: 'float32', shape: x.shape });
        let index = 0;
        const out = observeOps(
          (op, args, result) => {
            const other = probe[index++];
            const nums = flatNumbers(args);
            const shapes = resultTensors(result).map((t) => [...t.shape]);
            if (!other || other.op !== op || other.nums.length !== nums.length || other.shapes.length !== shapes.length) {
              throw new ExportError(`${modulePath()}: the forward runs different operations at batch 2 and batch 3 (${op}); the batch cannot be made dynamic`);
            }
            ctx.record(op, args, result, nums, other, shapes, modulePath);
          },
          () => model.forward(x),
        );
        const val = ctx.vals.get(out);
        if (!val || val.kind !== 'dyn') throw new ExportError('the model\'s output does not depend on its input');
        graph.node('Identity', [val.name], {}, ['logits']);
        outputShape = [...out.shape];
      }),
    ),
  );
  return { graph, outputShape };
}

/** What a symbolic function works with while one call is translated. */
export class TraceContext {
  readonly vals = new Map<Tensor, Val>();
  #batch: string | null = null;
  /** Result shapes of the current call, batch-dependent sizes as BatchInt. */
  resultDims: (number | BatchInt)[][] = [];
  /** The module running the current call, for messages. */
  where = '';

  constructor(
    readonly graph: OnnxGraph,
    readonly options: TraceOptions,
    readonly paramNames: ReadonlyMap<Tensor, string>,
  ) {}

  get opset(): number {
    return this.options.opset;
  }

  record(op: string, args: readonly OpArg[], result: unknown, nums: number[], other: CallRecord, shapes: number[][], modulePath: () => string): void {
    // Integers that differ between the two traces are k × batch.
    let at = 0;
    const [b0, b1] = TRACE_BATCHES;
    const batchInt = (v: number): number | BatchInt => {
      const w = other.nums[at++]!;
      if (v === w) return v;
      if (v % b0 !== 0 || w !== (v / b0) * b1) throw new ExportError(`${modulePath()}: ${op} has an argument that changes with the batch size but is not a multiple of it (${v} at batch ${b0}, ${w} at batch ${b1})`);
      return { kind: 'batch', value: v, perBatch: v / b0 };
    };
    const convert = (a: OpArg): SymArg => {
      if (a instanceof Tensor) return this.val(a);
      if (typeof a === 'number') return batchInt(a);
      if (Array.isArray(a)) return a.map(convert);
      return a as SymArg;
    };
    const symArgs = args.map(convert);
    this.resultDims = shapes.map((s, i) =>
      s.map((v, d) => {
        const w = other.shapes[i]![d];
        if (w === v) return v;
        if (w === undefined || v % b0 !== 0 || w !== (v / b0) * b1) throw new ExportError(`${modulePath()}: ${op} gives a result whose size does not follow the batch (${v} at batch ${b0}, ${w} at batch ${b1})`);
        return { kind: 'batch', value: v, perBatch: v / b0 } as BatchInt;
      }),
    );
    const outs = resultTensors(result);
    const dynamic = symArgs.some(function hasDyn(a: SymArg): boolean {
      if (Array.isArray(a)) return a.some(hasDyn);
      return typeof a === 'object' && a !== null && ((a as Val).kind === 'dyn' || (a as BatchInt).kind === 'batch');
    }) || this.resultDims.some((s) => s.some((d) => typeof d !== 'number'));

    if (!dynamic) {
      this.fold(args, result);
      return;
    }
    const base = op.replace(/_(?=\.|$)/, ''); // in-place variants translate like their functional form
    const symbolic = SYMBOLICS.get(base) ?? SYMBOLICS.get(base.split('.')[0]!);
    this.where = modulePath();
    if (!symbolic) {
      throw new ExportError(`${this.where}: ${op} has no ONNX translation (the module cannot be exported; supported: ${[...SYMBOLICS.keys()].map((k) => k.replace('aten::', '')).sort().join(', ')})`);
    }
    const names = symbolic(this, symArgs, outs);
    if (names.length !== outs.length) throw new Error(`ONNX export: the translation of ${op} gave ${names.length} outputs for ${outs.length} results`);
    outs.forEach((t, i) => this.vals.set(t, { kind: 'dyn', name: names[i]!, dtype: t.dtype, shape: [...t.shape] }));
  }

  /** A call on constants only: its results are constants, from the delta if any input is. */
  fold(args: readonly OpArg[], result: unknown): void {
    const fromDelta = (a: OpArg): boolean => {
      if (a instanceof Tensor) {
        const v = this.val(a);
        if (v.kind === 'dyn') throw new Error(`ONNX export: internal error, a traced value reached a folded call`);
        return v.delta;
      }
      return Array.isArray(a) ? a.some(fromDelta) : false;
    };
    const delta = args.some(fromDelta);
    for (const t of resultTensors(result)) this.vals.set(t, { kind: 'const', tensor: t, delta });
  }

  val(t: Tensor): Val {
    let v = this.vals.get(t);
    if (!v) {
      const paramName = this.paramNames.get(t);
      v = { kind: 'const', tensor: t, delta: this.options.deltaTensors.has(t), paramName };
      this.vals.set(t, v);
    }
    return v;
  }

  /** The graph name of a tensor argument; a constant becomes an initializer on first use. */
  in(a: SymArg): string {
    if (!isVal(a)) throw new ExportError(`${this.where}: expected a tensor argument, got ${String(a)}`);
    if (a.kind === 'dyn') return a.name;
    if (a.materialized) return a.materialized;
    const t = a.tensor;
    const base = a.paramName !== undefined && !a.delta;
    const hint = a.paramName ?? 'const';
    if (this.options.float16 && t.dtype === 'float32' && t.numel > 1) {
      const half = t.to('float16');
      const data = half.contiguous().toArray();
      const stored = this.graph.initializer(hint, [...t.shape], OnnxType.FLOAT16, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), base);
      half.dispose();
      a.materialized = this.graph.node('Cast', [stored], { to: OnnxType.FLOAT })[0]!;
    } else {
      const data = t.contiguous().toArray();
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      a.materialized = this.graph.initializer(hint, [...t.shape], onnxType(t.dtype, `tensor ${hint}`), bytes, base);
    }
    return a.materialized;
  }

  /** The shape of a tensor argument (at the traced batch). */
  shapeOf(a: SymArg): readonly number[] {
    if (!isVal(a)) throw new ExportError(`${this.where}: expected a tensor argument, got ${String(a)}`);
    return a.kind === 'dyn' ? a.shape : a.tensor.shape;
  }

  dtypeOf(a: SymArg): DType {
    if (!isVal(a)) throw new ExportError(`${this.where}: expected a tensor argument, got ${String(a)}`);
    return a.kind === 'dyn' ? a.dtype : a.tensor.dtype;
  }

  /** A fixed integer argument (one that changes with the batch is refused). */
  int(a: SymArg, what: string): number {
    if (typeof a === 'number') return a;
    if (typeof a === 'bigint') return Number(a);
    if (typeof a === 'object' && a !== null && (a as BatchInt).kind === 'batch') {
      throw new ExportError(`${this.where}: ${what} depends on the batch size, which this translation cannot express`);
    }
    throw new ExportError(`${this.where}: ${what} must be an integer, got ${String(a)}`);
  }

  ints(a: SymArg, what: string): number[] {
    if (typeof a === 'number') return [a];
    if (!Array.isArray(a)) throw new ExportError(`${this.where}: ${what} must be a list of integers`);
    return a.map((v, i) => this.int(v, `${what}[${i}]`));
  }

  /** A scalar constant with the dtype of `like` (how torch types a Python scalar in an op). */
  scalar(value: number, like: SymArg): string {
    const dtype = this.dtypeOf(like);
    return this.graph.constant([], onnxType(dtype === 'bool' ? 'float32' : dtype, 'a scalar operand'), [value]);
  }

  /** A tensor or a number as an operand of a pointwise op next to `like`. */
  operand(a: SymArg, like: SymArg): string {
    if (typeof a === 'number' || typeof a === 'boolean') return this.scalar(Number(a), like);
    return this.in(a);
  }

  /** The int64 [1] tensor holding the batch size, from the image's shape. */
  batch(): string {
    if (this.#batch === null) {
      const shape = this.graph.node('Shape', ['image'])[0]!;
      this.#batch = this.graph.node('Gather', [shape, this.graph.i64([0])], { axis: 0 })[0]!;
    }
    return this.#batch;
  }

  /** An int64 vector of sizes, some of them k × batch: a constant, or a Concat computed from the image's shape. */
  sizes(dims: readonly (number | BatchInt)[]): string {
    if (dims.every((d) => typeof d === 'number')) return this.graph.i64(dims as number[]);
    const parts: string[] = [];
    let fixed: number[] = [];
    for (const d of dims) {
      if (typeof d === 'number') {
        fixed.push(d);
        continue;
      }
      if (fixed.length) parts.push(this.graph.i64(fixed));
      fixed = [];
      parts.push(d.perBatch === 1 ? this.batch() : this.graph.node('Mul', [this.batch(), this.graph.i64([d.perBatch])])[0]!);
    }
    if (fixed.length) parts.push(this.graph.i64(fixed));
    return parts.length === 1 ? parts[0]! : this.graph.node('Concat', parts, { axis: 0 })[0]!;
  }

  /** The shape of result `i` of the current call as an int64 tensor. */
  resultShape(i = 0): string {
    return this.sizes(this.resultDims[i]!);
  }

  node(opType: string, inputs: string[], attrs: Record<string, import('./graph.js').AttrValue> = {}): string {
    return this.graph.node(opType, inputs, attrs)[0]!;
  }
}
