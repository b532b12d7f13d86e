// ATen → ONNX: one translation per operator the zoo's forwards (with every delta method) run on
// traced values, like torch.onnx's symbolic_opset*.py. In-place variants (add_, relu_) use their
// functional form's entry. Opset 13 and 17 differ only where noted (LayerNormalization is 17+).
import type { Tensor } from '../engine/tensor.js';
import { ExportError, isVal, type SymArg, type TraceContext } from './trace.js';
import { OnnxType } from './onnx-proto.js';
import { onnxType } from './graph.js';

type Symbolic = (c: TraceContext, a: readonly SymArg[], results: Tensor[]) => string[];

const one = (f: (c: TraceContext, a: readonly SymArg[], results: Tensor[]) => string): Symbolic => (c, a, r) => [f(c, a, r)];
/** Names a value already has: ops that change nothing in eval (contiguous, detach, dropout, ...). */
const identity: Symbolic = (c, a) => [c.in(a[0]!)];
const unary = (opType: string): Symbolic => one((c, a) => c.node(opType, [c.in(a[0]!)]));

const rank = (c: TraceContext, a: SymArg): number => c.shapeOf(a).length;
const axis = (c: TraceContext, a: SymArg, d: SymArg): number => {
  const dim = c.int(d, 'dim');
  return dim < 0 ? dim + rank(c, a) : dim;
};

/** a + alpha·b (alpha from add/sub's third argument). */
function scaled(c: TraceContext, b: SymArg, alpha: SymArg, like: SymArg): string {
  const operand = c.operand(b, like);
  const k = alpha === undefined || alpha === null ? 1 : Number(alpha);
  return k === 1 ? operand : c.node('Mul', [operand, c.scalar(k, like)]);
}

function conv(c: TraceContext, a: readonly SymArg[]): string {
  const [x, w, b, stride, padding, dilation, groups] = a;
  const strides = c.ints(stride!, 'stride');
  const dilations = c.ints(dilation!, 'dilation');
  let pads: number[];
  if (typeof padding === 'string') {
    if (padding === 'valid') pads = [0, 0, 0, 0];
    else {
      // torch's 'same': the odd pixel of padding goes after (bottom/right).
      const [kh, kw] = c.shapeOf(w!).slice(2) as [number, number];
      const th = dilations[0]! * (kh - 1);
      const tw = dilations[1]! * (kw - 1);
      pads = [Math.floor(th / 2), Math.floor(tw / 2), th - Math.floor(th / 2), tw - Math.floor(tw / 2)];
    }
  } else {
    const [ph, pw] = c.ints(padding!, 'padding');
    pads = [ph!, pw!, ph!, pw!];
  }
  const inputs = [c.in(x!), c.in(w!)];
  if (isVal(b ?? null)) inputs.push(c.in(b!));
  return c.node('Conv', inputs, { strides, pads, dilations, group: c.int(groups ?? 1, 'groups') });
}

function filled(c: TraceContext, like: SymArg, size: number, value: number): string {
  return c.graph.constant([size], onnxType(c.dtypeOf(like), 'a norm'), new Array<number>(size).fill(value));
}

function batchNorm(c: TraceContext, a: readonly SymArg[]): string {
  const [x, w, b, mean, variance, training, , eps] = a;
  if (training === true) throw new ExportError(`${c.where}: BatchNorm in training mode (call model.eval() before exporting)`);
  if (!isVal(mean ?? null) || !isVal(variance ?? null)) throw new ExportError(`${c.where}: BatchNorm without running statistics cannot be exported`);
  const channels = c.shapeOf(x!)[1]!;
  const scale = isVal(w ?? null) ? c.in(w!) : filled(c, x!, channels, 1);
  const bias = isVal(b ?? null) ? c.in(b!) : filled(c, x!, channels, 0);
  return c.node('BatchNormalization', [c.in(x!), scale, bias, c.in(mean!), c.in(variance!)], { epsilon: Number(eps) });
}

function layerNorm(c: TraceContext, a: readonly SymArg[]): string {
  const [x, normalized, w, b, eps] = a;
  const dims = c.ints(normalized!, 'normalized_shape').length;
  const width = c.ints(normalized!, 'normalized_shape').reduce((p, q) => p * q, 1);
  const scale = isVal(w ?? null) ? c.in(w!) : filled(c, x!, width, 1);
  if (c.opset >= 17) {
    const inputs = [c.in(x!), scale];
    if (isVal(b ?? null)) inputs.push(c.in(b!));
    return c.node('LayerNormalization', inputs, { axis: -dims, epsilon: Number(eps) });
  }
  // Opset 13 has no LayerNormalization: (x − mean) / sqrt(var + eps) · w + b over the last dims.
  const axes = Array.from({ length: dims }, (_, i) => i - dims);
  const mean = c.node('ReduceMean', [c.in(x!)], { axes, keepdims: 1 });
  const centred = c.node('Sub', [c.in(x!), mean]);
  const variance = c.node('ReduceMean', [c.node('Mul', [centred, centred])], { axes, keepdims: 1 });
  const normed = c.node('Div', [centred, c.node('Sqrt', [c.node('Add', [variance, c.scalar(Number(eps), x!)])])]);
  const out = c.node('Mul', [normed, scale]);
  return isVal(b ?? null) ? c.node('Add', [out, c.in(b!)]) : out;
}

function gelu(c: TraceContext, a: readonly SymArg[]): string {
  const [x, approximate] = a;
  const xs = c.in(x!);
  let inner: string;
  if (approximate === 'tanh') {
    // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    const cube = c.node('Mul', [c.node('Mul', [xs, xs]), xs]);
    const arg = c.node('Mul', [c.node('Add', [xs, c.node('Mul', [cube, c.scalar(0.044715, x!)])]), c.scalar(Math.sqrt(2 / Math.PI), x!)]);
    inner = c.node('Tanh', [arg]);
  } else {
    // 0.5·x·(1 + erf(x / √2)): Gelu is an ONNX op only from opset 20.
    inner = c.node('Erf', [c.node('Div', [xs, c.scalar(Math.SQRT2, x!)])]);
  }
  return c.node('Mul', [c.node('Mul', [xs, c.node('Add', [inner, c.scalar(1, x!)])]), c.scalar(0.5, x!)]);
}

function hardswish(c: TraceContext, a: readonly SymArg[]): string {
  const xs = c.in(a[0]!);
  if (c.opset >= 14) return c.node('HardSwish', [xs]);
  return c.node('Mul', [xs, c.node('HardSigmoid', [xs], { alpha: 1 / 6, beta: 0.5 })]);
}

function clip(c: TraceContext, x: SymArg, lo: number, hi: number): string {
  return c.node('Clip', [c.in(x), c.scalar(lo, x), c.scalar(hi, x)]);
}

function linear(c: TraceContext, a: readonly SymArg[]): string {
  const [x, w, b] = a;
  if (rank(c, x!) === 2 && isVal(b ?? null)) return c.node('Gemm', [c.in(x!), c.in(w!), c.in(b!)], { transB: 1 });
  const product = c.node('MatMul', [c.in(x!), c.node('Transpose', [c.in(w!)], { perm: [1, 0] })]);
  return isVal(b ?? null) ? c.node('Add', [product, c.in(b!)]) : product;
}

/** Reshape to the call's result shape (view, reshape, flatten, unsqueeze, squeeze, unflatten). */
const reshapeToResult: Symbolic = one((c, a) => c.node('Reshape', [c.in(a[0]!), c.resultShape()]));

function reduce(opType: string, c: TraceContext, x: SymArg, dims: SymArg, keepdim: SymArg): string {
  const axes = (Array.isArray(dims) ? c.ints(dims, 'dim') : dims === null || dims === undefined ? [] : [c.int(dims, 'dim')]).map((d) => (d < 0 ? d + rank(c, x) : d));
  const keepdims = keepdim === true ? 1 : 0;
  if (axes.length === 0) return c.node(opType, [c.in(x)], { keepdims });
  // ReduceSum takes its axes as an input from opset 13; ReduceMean and ReduceMax only from 18.
  if (opType === 'ReduceSum') return c.node(opType, [c.in(x), c.graph.i64(axes)], { keepdims });
  return c.node(opType, [c.in(x)], { axes, keepdims });
}

function slice(c: TraceContext, x: string, dim: number, start: number, end: number, step = 1): string {
  return c.node('Slice', [x, c.graph.i64([start]), c.graph.i64([end]), c.graph.i64([dim]), c.graph.i64([step])]);
}

function roll(c: TraceContext, a: readonly SymArg[]): string {
  const [x, shiftsArg, dimsArg] = a;
  const shifts = c.ints(shiftsArg!, 'shifts');
  const dims = c.ints(dimsArg!, 'dims');
  if (dims.length !== shifts.length || dims.length === 0) throw new ExportError(`${c.where}: roll without dims (a flattened roll) cannot be exported`);
  let out = c.in(x!);
  const shape = c.shapeOf(x!);
  dims.forEach((d0, i) => {
    const d = d0 < 0 ? d0 + shape.length : d0;
    if (d === 0) throw new ExportError(`${c.where}: roll along the batch dimension cannot be exported`);
    const n = shape[d]!;
    const s = ((shifts[i]! % n) + n) % n;
    if (s === 0) return;
    out = c.node('Concat', [slice(c, out, d, n - s, n), slice(c, out, d, 0, n - s)], { axis: d });
  });
  return out;
}

function pad(c: TraceContext, x: SymArg, padList: SymArg, mode: SymArg, value: SymArg): string {
  const p = c.ints(padList, 'pad');
  const r = rank(c, x);
  const pads = new Array<number>(2 * r).fill(0);
  // torch lists (before, after) pairs from the last dimension backwards; ONNX all befores, then all afters.
  for (let i = 0; i < p.length / 2; i++) {
    pads[r - 1 - i] = p[2 * i]!;
    pads[2 * r - 1 - i] = p[2 * i + 1]!;
  }
  const modes: Record<string, string> = { constant: 'constant', reflect: 'reflect', replicate: 'edge' };
  const onnxMode = modes[typeof mode === 'string' ? mode : 'constant'];
  if (!onnxMode) throw new ExportError(`${c.where}: pad mode '${String(mode)}' has no ONNX equivalent at opset ${c.opset}`);
  const inputs = [c.in(x), c.graph.i64(pads)];
  if (onnxMode === 'constant') inputs.push(c.scalar(value === null || value === undefined ? 0 : Number(value), x));
  return c.node('Pad', inputs, { mode: onnxMode });
}

/** deltatune::mona_folded_project: z = ρ·(Y1 − μ·r) + Y2 + c with [Y1; Y2] = conv1×1(x, wcat), ρ = (var + eps)^−½. */
function monaFoldedProject(c: TraceContext, a: readonly SymArg[]): string {
  const [x, wcat, r, cc, mean, variance, eps] = a;
  const d = c.shapeOf(wcat!)[0]! / 2;
  const y = c.node('Conv', [c.in(x!), c.in(wcat!)], { strides: [1, 1], pads: [0, 0, 0, 0] });
  const y1 = slice(c, y, 1, 0, d);
  const y2 = slice(c, y, 1, d, 2 * d);
  const column = c.graph.i64([1, -1, 1, 1]);
  const rho = c.node('Reciprocal', [c.node('Sqrt', [c.node('Add', [c.in(variance!), c.scalar(Number(eps), x!)])])]);
  const centred = c.node('Sub', [y1, c.node('Mul', [c.in(mean!), c.node('Reshape', [c.in(r!), column])])]);
  return c.node('Add', [c.node('Add', [c.node('Mul', [rho, centred]), y2]), c.node('Reshape', [c.in(cc!), column])]);
}

function cast(c: TraceContext, a: readonly SymArg[], results: Tensor[]): string {
  const from = c.dtypeOf(a[0]!);
  const to = results[0]!.dtype;
  return from === to ? c.in(a[0]!) : c.node('Cast', [c.in(a[0]!)], { to: onnxType(to, 'a cast') });
}

function constantOfShape(c: TraceContext, value: number, results: Tensor[]): string {
  const t = results[0]!;
  const dataType = onnxType(t.dtype, 'a filled tensor');
  const bytes = t.dtype === 'float32' ? new Uint8Array(Float32Array.of(value).buffer) : t.dtype === 'int64' ? new Uint8Array(BigInt64Array.of(BigInt(value)).buffer) : null;
  if (!bytes) throw new ExportError(`${c.where}: a ${t.dtype} tensor filled with ${value} whose shape follows the batch cannot be exported`);
  return c.node('ConstantOfShape', [c.resultShape()], { value: { tensor: { name: 'value', dims: [1], dataType, rawData: bytes } } });
}

export const SYMBOLICS = new Map<string, Symbolic>([
  ['aten::conv2d', one((c, a) => conv(c, a))],
  ['aten::conv2d.padding', one((c, a) => conv(c, a))],
  ['deltatune::frozen_conv2d', one((c, a) => conv(c, a))],
  ['deltatune::trainable_conv2d', one((c, a) => conv(c, a))],
  ['deltatune::mona_folded_project', one(monaFoldedProject)],
  ['aten::batch_norm', one(batchNorm)],
  ['aten::layer_norm', one(layerNorm)],
  ['aten::linear', one(linear)],
  ['aten::matmul', one((c, a) => c.node('MatMul', [c.in(a[0]!), c.in(a[1]!)]))],
  ['aten::bmm', one((c, a) => c.node('MatMul', [c.in(a[0]!), c.in(a[1]!)]))],
  ['aten::addmm', one((c, a) => c.node('Gemm', [c.in(a[1]!), c.in(a[2]!), c.in(a[0]!)], { beta: Number(a[3] ?? 1), alpha: Number(a[4] ?? 1) }))],
  ['aten::add.Tensor', one((c, a) => c.node('Add', [c.operand(a[0]!, a[1]!), scaled(c, a[1]!, a[2], a[0]!)]))],
  ['aten::add.Scalar', one((c, a) => c.node('Add', [c.in(a[0]!), scaled(c, a[1]!, a[2], a[0]!)]))],
  ['aten::sub.Tensor', one((c, a) => c.node('Sub', [c.operand(a[0]!, a[1]!), scaled(c, a[1]!, a[2], a[0]!)]))],
  ['aten::sub.Scalar', one((c, a) => c.node('Sub', [c.in(a[0]!), scaled(c, a[1]!, a[2], a[0]!)]))],
  ['aten::rsub.Scalar', one((c, a) => c.node('Sub', [c.scalar(Number(a[1]), a[0]!), scaled(c, a[0]!, a[2], a[0]!)]))],
  ['aten::mul.Tensor', one((c, a) => c.node('Mul', [c.operand(a[0]!, a[1]!), c.operand(a[1]!, a[0]!)]))],
  ['aten::mul.Scalar', one((c, a) => c.node('Mul', [c.in(a[0]!), c.scalar(Number(a[1]), a[0]!)]))],
  ['aten::div.Tensor', one((c, a) => c.node('Div', [c.operand(a[0]!, a[1]!), c.operand(a[1]!, a[0]!)]))],
  ['aten::div.Scalar', one((c, a) => c.node('Div', [c.in(a[0]!), c.scalar(Number(a[1]), a[0]!)]))],
  ['aten::addcmul', one((c, a) => c.node('Add', [c.in(a[0]!), c.node('Mul', [c.node('Mul', [c.in(a[1]!), c.in(a[2]!)]), c.scalar(Number(a[3] ?? 1), a[0]!)])]))],
  ['aten::pow.Tensor_Scalar', one((c, a) => c.node('Pow', [c.in(a[0]!), c.scalar(Number(a[1]), a[0]!)]))],
  ['aten::square', one((c, a) => c.node('Mul', [c.in(a[0]!), c.in(a[0]!)]))],
  ['aten::rsqrt', one((c, a) => c.node('Reciprocal', [c.node('Sqrt', [c.in(a[0]!)])]))],
  ['aten::sqrt', unary('Sqrt')],
  ['aten::exp', unary('Exp')],
  ['aten::neg', unary('Neg')],
  ['aten::abs', unary('Abs')],
  ['aten::reciprocal', unary('Reciprocal')],
  ['aten::relu', unary('Relu')],
  ['aten::sigmoid', unary('Sigmoid')],
  ['aten::tanh', unary('Tanh')],
  ['aten::silu', one((c, a) => c.node('Mul', [c.in(a[0]!), c.node('Sigmoid', [c.in(a[0]!)])]))],
  ['aten::gelu', one(gelu)],
  ['aten::hardswish', one(hardswish)],
  ['aten::hardsigmoid', one((c, a) => c.node('HardSigmoid', [c.in(a[0]!)], { alpha: 1 / 6, beta: 0.5 }))],
  ['aten::hardtanh', one((c, a) => clip(c, a[0]!, Number(a[1] ?? -1), Number(a[2] ?? 1)))],
  ['aten::relu6', one((c, a) => clip(c, a[0]!, 0, 6))],
  ['aten::softmax.int', one((c, a) => c.node('Softmax', [c.in(a[0]!)], { axis: axis(c, a[0]!, a[1]!) }))],
  ['aten::log_softmax.int', one((c, a) => c.node('LogSoftmax', [c.in(a[0]!)], { axis: axis(c, a[0]!, a[1]!) }))],
  ['aten::mean.dim', one((c, a) => reduce('ReduceMean', c, a[0]!, a[1]!, a[2]!))],
  ['aten::sum.dim_IntList', one((c, a) => reduce('ReduceSum', c, a[0]!, a[1]!, a[2]!))],
  ['aten::amax', one((c, a) => reduce('ReduceMax', c, a[0]!, a[1]!, a[2]!))],
  ['aten::max', one((c, a) => reduce('ReduceMax', c, a[0]!, null, false))],
  [
    'aten::adaptive_avg_pool2d',
    one((c, a) => {
      const [oh, ow] = c.ints(a[1]!, 'output_size');
      const [h, w] = c.shapeOf(a[0]!).slice(2) as [number, number];
      if (oh === 1 && ow === 1) return c.node('GlobalAveragePool', [c.in(a[0]!)]);
      if (h % oh! !== 0 || w % ow! !== 0) throw new ExportError(`${c.where}: adaptive average pooling from ${h}×${w} to ${oh}×${ow} has uneven windows, which ONNX cannot express`);
      const kernel = [h / oh!, w / ow!];
      return c.node('AveragePool', [c.in(a[0]!)], { kernel_shape: kernel, strides: kernel });
    }),
  ],
  [
    'aten::max_pool2d',
    one((c, a) => {
      const [x, k, s, p, d, ceil] = a;
      const kernel = c.ints(k!, 'kernel_size');
      const strides = Array.isArray(s) && s.length ? c.ints(s, 'stride') : kernel;
      const [ph, pw] = c.ints(p!, 'padding');
      return c.node('MaxPool', [c.in(x!)], { kernel_shape: kernel, strides, pads: [ph!, pw!, ph!, pw!], dilations: c.ints(d!, 'dilation'), ceil_mode: ceil === true ? 1 : 0 });
    }),
  ],
  [
    'aten::avg_pool2d',
    one((c, a) => {
      const [x, k, s, p, ceil, countPad, divisor] = a;
      if (divisor !== null && divisor !== undefined) throw new ExportError(`${c.where}: avg_pool2d with divisor_override cannot be exported`);
      const kernel = c.ints(k!, 'kernel_size');
      const strides = Array.isArray(s) && s.length ? c.ints(s, 'stride') : kernel;
      const [ph, pw] = c.ints(p!, 'padding');
      return c.node('AveragePool', [c.in(x!)], { kernel_shape: kernel, strides, pads: [ph!, pw!, ph!, pw!], ceil_mode: ceil === true ? 1 : 0, count_include_pad: countPad === false ? 0 : 1 });
    }),
  ],
  ['aten::view', reshapeToResult],
  ['aten::reshape', reshapeToResult],
  ['aten::_unsafe_view', reshapeToResult],
  ['aten::flatten.using_ints', reshapeToResult],
  ['aten::unflatten.int', reshapeToResult],
  ['aten::unsqueeze', reshapeToResult],
  ['aten::squeeze.dim', reshapeToResult],
  ['aten::squeeze', reshapeToResult],
  ['aten::expand', one((c, a) => c.node('Expand', [c.in(a[0]!), c.resultShape()]))],
  ['aten::permute', one((c, a) => c.node('Transpose', [c.in(a[0]!)], { perm: c.ints(a[1]!, 'dims').map((d) => (d < 0 ? d + rank(c, a[0]!) : d)) }))],
  [
    'aten::transpose.int',
    one((c, a) => {
      const perm = Array.from({ length: rank(c, a[0]!) }, (_, i) => i);
      const d0 = axis(c, a[0]!, a[1]!);
      const d1 = axis(c, a[0]!, a[2]!);
      [perm[d0], perm[d1]] = [perm[d1]!, perm[d0]!];
      return c.node('Transpose', [c.in(a[0]!)], { perm });
    }),
  ],
  ['aten::t', one((c, a) => c.node('Transpose', [c.in(a[0]!)], { perm: [1, 0] }))],
  ['aten::contiguous', identity],
  ['aten::clone', identity],
  ['aten::detach', identity],
  ['aten::alias', identity],
  ['aten::dropout', identity],
  ['aten::feature_dropout', identity],
  ['aten::to.dtype', one(cast)],
  ['aten::to.device', one(cast)],
  ['aten::type_as', one(cast)],
  [
    'aten::cat',
    one((c, a) => {
      const list = a[0] as readonly SymArg[];
      return c.node('Concat', list.map((t) => c.in(t)), { axis: axis(c, list[0]!, a[1] ?? 0) });
    }),
  ],
  [
    'aten::stack',
    one((c, a) => {
      const list = a[0] as readonly SymArg[];
      const r = rank(c, list[0]!) + 1;
      const d0 = c.int(a[1] ?? 0, 'dim');
      const d = d0 < 0 ? d0 + r : d0;
      return c.node('Concat', list.map((t) => c.node('Unsqueeze', [c.in(t), c.graph.i64([d])])), { axis: d });
    }),
  ],
  [
    'aten::narrow',
    one((c, a) => {
      const d = axis(c, a[0]!, a[1]!);
      const start = c.int(a[2]!, 'start');
      return slice(c, c.in(a[0]!), d, start, start + c.int(a[3]!, 'length'));
    }),
  ],
  [
    'aten::slice.Tensor',
    one((c, a) => {
      const d = axis(c, a[0]!, a[1] ?? 0);
      const size = c.shapeOf(a[0]!)[d]!;
      if (d === 0 && (a[2] !== undefined || a[3] !== undefined)) {
        const start = a[2] === null || a[2] === undefined ? 0 : c.int(a[2], 'start');
        const end = a[3] === null || a[3] === undefined ? Number.MAX_SAFE_INTEGER : Number(a[3]);
        if (start !== 0 || end < size) throw new ExportError(`${c.where}: slicing the batch dimension cannot be exported`);
        return c.in(a[0]!);
      }
      const start = a[2] === null || a[2] === undefined ? 0 : c.int(a[2], 'start');
      const end = a[3] === null || a[3] === undefined ? size : Math.min(Number(a[3]), size);
      return slice(c, c.in(a[0]!), d, start, end, a[4] === undefined ? 1 : c.int(a[4], 'step'));
    }),
  ],
  ['aten::select.int', one((c, a) => c.node('Gather', [c.in(a[0]!), c.graph.constant([], OnnxType.INT64, [c.int(a[2]!, 'index')])], { axis: axis(c, a[0]!, a[1]!) }))],
  ['aten::index_select', one((c, a) => c.node('Gather', [c.in(a[0]!), c.in(a[2]!)], { axis: axis(c, a[0]!, a[1]!) }))],
  ['aten::roll', one(roll)],
  ['aten::pad', one((c, a) => pad(c, a[0]!, a[1]!, a[2], a[3]))],
  ['aten::constant_pad_nd', one((c, a) => pad(c, a[0]!, a[1]!, 'constant', a[2]))],
  ['aten::zeros', one((c, _a, r) => constantOfShape(c, 0, r))],
  ['aten::ones', one((c, _a, r) => constantOfShape(c, 1, r))],
  ['aten::zeros_like', one((c, _a, r) => constantOfShape(c, 0, r))],
  ['aten::ones_like', one((c, _a, r) => constantOfShape(c, 1, r))],
  [
    'aten::item',
    (c) => {
      throw new ExportError(`${c.where}: a number read from a value computed from the image (aten::item) would be fixed in the graph`);
    },
  ],
]);
