// An ONNX graph under construction: nodes, initializers (named after the parameters they hold) and
// small constants, deduplicated. The tracer (trace.ts) fills it; onnx.ts serialises it.
import type { DType } from '../engine/dtype.js';
import { AttrType, OnnxType, type AttributeProto, type NodeProto, type TensorProto } from './onnx-proto.js';

export type AttrValue = number | string | number[] | { floats: number[] } | { tensor: TensorProto };

/** An initializer's data, kept as the bytes ONNX stores (little-endian, contiguous). */
export interface Initializer {
  name: string;
  dims: number[];
  dataType: number;
  bytes: Uint8Array;
  /** A frozen base parameter (or buffer) under its checkpoint name: shared by every delta of the base. */
  base: boolean;
}

const ONNX_TYPES: Partial<Record<DType, number>> = {
  float32: OnnxType.FLOAT,
  float16: OnnxType.FLOAT16,
  float64: OnnxType.DOUBLE,
  int64: OnnxType.INT64,
  int32: OnnxType.INT32,
  int8: OnnxType.INT8,
  uint8: OnnxType.UINT8,
  bool: OnnxType.BOOL,
};

export function onnxType(dtype: DType, what: string): number {
  const t = ONNX_TYPES[dtype];
  if (t === undefined) throw new Error(`ONNX export: ${what} is ${dtype}, which the exporter does not write`);
  return t;
}

function attribute(name: string, value: AttrValue): AttributeProto {
  if (typeof value === 'string') return { name, type: AttrType.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: AttrType.INTS, ints: value };
  if (typeof value === 'object') return 'tensor' in value ? { name, type: AttrType.TENSOR, t: value.tensor } : { name, type: AttrType.FLOATS, floats: value.floats };
  // Integral attributes are ints unless they are known float attributes (epsilon, alpha, ...).
  return FLOAT_ATTRS.has(name) ? { name, type: AttrType.FLOAT, f: value } : { name, type: AttrType.INT, i: value };
}
const FLOAT_ATTRS = new Set(['epsilon', 'alpha', 'beta', 'momentum', 'value_float']);

export class OnnxGraph {
  readonly nodes: NodeProto[] = [];
  readonly initializers: Initializer[] = [];
  #names = new Set<string>(['image', 'logits']);
  #constants = new Map<string, string>();
  #counter = 0;

  /** A fresh value name with `hint` in it. */
  fresh(hint: string): string {
    let name: string;
    do name = `${hint}_${this.#counter++}`;
    while (this.#names.has(name));
    this.#names.add(name);
    return name;
  }

  /** Adds a node; returns its output names (fresh unless given). */
  node(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputs: number | string[] = 1): string[] {
    const out = typeof outputs === 'number' ? Array.from({ length: outputs }, () => this.fresh(opType.toLowerCase())) : outputs;
    this.nodes.push({ opType, input: inputs, output: out, attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)) });
    return out;
  }

  /** Adds an initializer; `preferred` names it (a checkpoint name) when that name is still free. */
  initializer(preferred: string, dims: number[], dataType: number, bytes: Uint8Array, base: boolean): string {
    const name = this.#names.has(preferred) ? this.fresh(preferred) : preferred;
    this.#names.add(name);
    this.initializers.push({ name, dims, dataType, bytes, base });
    return name;
  }

  /** A small constant (deduplicated by value): int64 vectors for shapes, axes and indices, scalars. */
  constant(dims: number[], dataType: number, values: readonly number[]): string {
    const key = `${dataType}|${dims.join(',')}|${values.join(',')}`;
    const known = this.#constants.get(key);
    if (known) return known;
    let bytes: Uint8Array;
    if (dataType === OnnxType.INT64) bytes = new Uint8Array(BigInt64Array.from(values, (v) => BigInt(v)).buffer);
    else if (dataType === OnnxType.FLOAT) bytes = new Uint8Array(Float32Array.from(values).buffer);
    else if (dataType === OnnxType.DOUBLE) bytes = new Uint8Array(Float64Array.from(values).buffer);
    else if (dataType === OnnxType.INT32) bytes = new Uint8Array(Int32Array.from(values).buffer);
    else if (dataType === OnnxType.BOOL || dataType === OnnxType.UINT8) bytes = Uint8Array.from(values);
    else if (dataType === OnnxType.INT8) bytes = new Uint8Array(Int8Array.from(values).buffer);
    else throw new Error(`ONNX export: no constant of ONNX type ${dataType}`);
    const name = this.initializer('const', dims, dataType, bytes, false);
    this.#constants.set(key, name);
    return name;
  }

  i64(values: readonly number[]): string {
    return this.constant([values.length], OnnxType.INT64, values);
  }
}
