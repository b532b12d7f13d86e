// ONNX export of a tuned model (base + delta), and a check of exported files. libtorch's C++ has no
// ONNX exporter, so the forward is traced here (trace.ts) into opset 13 or 17 graphs that
// onnxruntime runs in Node and, through its wasm build, in browsers.
//
// Split export: the base's parameters go to a shared external-data file named by the hash of its
// bytes (every delta over the same base points at the same file), and the .onnx keeps the graph and
// only what the delta adds or changes. Mona sits after every block of the backbone, so the delta is
// not a separate subgraph: one graph whose base tensors live in a file the browser downloads once
// is simpler and faster than a pipeline of sessions.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Tensor } from '../engine/tensor.js';
import { keep } from '../engine/scope.js';
import { noGrad } from '../engine/autograd.js';
import { writeFileAtomic } from '../io/atomic.js';
import { Module } from '../nn/module.js';
import type { VisionModel } from '../models/base.js';
import { attachedDelta, methodFacts, type DeltaManifest } from '../delta/index.js';
import { FoldedBatchNorm2d, FoldedConv2d, FrozenBatchNorm2d } from '../delta/core/frozen.js';
import { replaceAt } from '../delta/core/builder.js';
import { MonaBase } from '../delta/mona-module.js';
import { loadTuned } from '../train/tuned.js';
import { packageVersion } from '../version.js';
import { ExportError, traceModel } from './trace.js';
import { decodeModel, encodeModel, OnnxType, type ModelProto, type TensorProto } from './onnx-proto.js';
import type { Initializer, OnnxGraph } from './graph.js';

export { ExportError };

export interface OnnxPreprocess {
  size: number;
  cropPct: number;
  mean: [number, number, number];
  std: [number, number, number];
}

/** What the exported file says about itself (metadata_props 'deltatune.meta', JSON). */
export interface OnnxMeta {
  model: string;
  /** The delta method, 'none' for a plain model. */
  method: string;
  /** True when the delta was folded into the base weights (one plain graph). */
  merged: boolean;
  delta: string;
  classes: string[];
  preprocess: OnnxPreprocess;
  baseSha256: string | null;
  opset: number;
  float16: boolean;
  /** The split base file the graph reads its base tensors from, or null. */
  baseWeightsFile: string | null;
  library: string;
}

export interface ExportOnnxOptions {
  /** The .onnx file to write (atomically). */
  out: string;
  /** 17 (default) or 13. */
  opset?: number;
  /** Store float32 weights as float16 (half the size; a Cast to float32 inside the graph). */
  float16?: boolean;
  /** Put the base's tensors in a shared external-data file beside `out` (see the file comment). */
  split?: boolean;
  /** The delta's name in the metadata. */
  name?: string;
  /**
   * Fold a mergeable delta (LoRA, BitFit, SSF, ...) into the base weights first, for one plain graph.
   * Default: true unless `split`. This spends the delta, as Delta.merge() does.
   */
  merge?: boolean;
}

export interface ExportedOnnx {
  file: string;
  baseWeightsFile: string | null;
  /** Bytes of the .onnx file (with the delta's own tensors when split). */
  graphBytes: number;
  /** Bytes of the split base file (0 when not split). */
  baseBytes: number;
  /** Bytes the model takes as one self-contained .onnx file. */
  fullBytes: number;
  meta: OnnxMeta;
  inputName: 'image';
  outputName: 'logits';
}

/** A model to export: a model (with a delta attached, or plain) and what predictions need. */
export interface ExportSource {
  model: VisionModel;
  classes?: readonly string[];
  preprocess?: Partial<OnnxPreprocess> & Record<string, unknown>;
  manifest?: DeltaManifest;
}

export const OPSETS: readonly number[] = [13, 17];
const ALIGN = 64;

function preprocessOf(source: ExportSource): OnnxPreprocess {
  const c = source.model.config;
  const p = { ...(source.manifest?.preprocess ?? {}), ...(source.preprocess ?? {}) } as Record<string, unknown>;
  return {
    size: typeof p.size === 'number' ? p.size : c.inputSize[2],
    cropPct: typeof p.cropPct === 'number' ? p.cropPct : (c.cropPct ?? 0.875),
    mean: (Array.isArray(p.mean) ? p.mean : [...c.mean]) as [number, number, number],
    std: (Array.isArray(p.std) ? p.std : [...c.std]) as [number, number, number],
  };
}

/**
 * The base's tensors as the split file holds them: every floating parameter and buffer but the
 * classifier's, in state-dict order. Copies, taken with the delta detached: methods that train base
 * tensors in place (bitfit, ...) put their values back on attach.
 */
function baseTensors(model: VisionModel): [string, Tensor][] {
  const head = `${model.config.classifier}.`;
  const delta = attachedDelta(model);
  delta?.detach();
  try {
    return [...model.stateDict()]
      .filter(([name, t]) => !name.startsWith(head) && (t.dtype === 'float32' || t.dtype === 'float16'))
      .map(([name, t]) => [name, keep(noGrad(() => t.clone()))]);
  } finally {
    delta?.attach();
  }
}

/**
 * Runs `fn` on the model as the graph should compute it: eval mode, the base's own BatchNorm and
 * convolution modules in place of the frozen stand-ins (so base tensors keep their checkpoint names).
 */
function withOriginalModules<R>(model: VisionModel, fn: () => R): R {
  const swapped: [string, Module<any, any>][] = [];
  for (const [name, m] of [...model.namedModules()]) {
    if (m instanceof FoldedConv2d || m instanceof FoldedBatchNorm2d || m instanceof FrozenBatchNorm2d) {
      swapped.push([name, replaceAt(model, name, m.original)]);
    }
  }
  const training = model.modules().map((m) => [m, m.training] as const);
  model.eval();
  // Mona's folded LayerNorm picks its form per call from the data (a training-speed device); the
  // graph takes the form as written.
  const folded = model.modules().filter((m): m is MonaBase<any> => m instanceof MonaBase && m.foldNorm);
  for (const m of folded) m.foldNorm = false;
  try {
    return fn();
  } finally {
    for (const m of folded) m.foldNorm = true;
    for (const [m, t] of training) m.training = t;
    for (const [name, standIn] of swapped.reverse()) replaceAt(model, name, standIn);
  }
}

function valueInfo(name: string, dims: (number | string)[]) {
  return {
    name,
    type: { tensorType: { elemType: OnnxType.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

function tensorProto(init: Initializer, external: { location: string; offset: number } | null): TensorProto {
  if (!external) return { name: init.name, dims: init.dims, dataType: init.dataType, rawData: init.bytes };
  return {
    name: init.name,
    dims: init.dims,
    dataType: init.dataType,
    dataLocation: 1,
    externalData: [
      { key: 'location', value: external.location },
      { key: 'offset', value: String(external.offset) },
      { key: 'length', value: String(init.bytes.byteLength) },
    ],
  };
}

function modelProto(graph: OnnxGraph, meta: OnnxMeta, inputSize: readonly number[], classes: number, initializers: TensorProto[]): ModelProto {
  return {
    irVersion: 8,
    opsetImport: [{ domain: '', version: meta.opset }],
    producerName: 'deltatune',
    producerVersion: packageVersion(),
    docString: `${meta.model}${meta.method === 'none' ? '' : ` + ${meta.method}${meta.merged ? ' (merged)' : ''}`} '${meta.delta}'`,
    graph: {
      name: meta.delta || meta.model,
      node: graph.nodes,
      initializer: initializers,
      input: [valueInfo('image', ['batch', ...inputSize])],
      output: [valueInfo('logits', ['batch', classes])],
    },
    metadataProps: [{ key: 'deltatune.meta', value: JSON.stringify(meta) }],
  };
}

/**
 * Exports a model (and the delta attached to it) as ONNX: input 'image' float32 [batch, 3, size,
 * size] (the batch is dynamic), output 'logits' [batch, classes]; preprocessing and class names in
 * the metadata. Throws an ExportError naming the module when something has no ONNX form.
 */
export function exportOnnx(source: ExportSource, options: ExportOnnxOptions): ExportedOnnx {
  const opset = options.opset ?? 17;
  if (!OPSETS.includes(opset)) throw new ExportError(`opset ${opset} is not supported; use ${OPSETS.join(' or ')}`);
  const out = resolve(options.out);
  if (!out.endsWith('.onnx')) throw new ExportError(`${options.out}: the output file must end in .onnx`);
  if (existsSync(out) && statSync(out).isDirectory()) throw new ExportError(`${options.out} is a folder; give a .onnx file name`);
  const { model } = source;
  const split = options.split ?? false;
  const float16 = options.float16 ?? false;
  let delta = attachedDelta(model);
  const method = delta?.method ?? 'none';
  let merged = false;
  if (delta && (options.merge ?? !split) && methodFacts(delta.method).mergeable) {
    const wasTraining = model.training;
    delta.merge();
    // merge() puts the base's own modules back, in their default (training) mode.
    if (!wasTraining) model.eval();
    delta = undefined;
    merged = true;
  }
  const preprocess = preprocessOf(source);
  const classes = [...(source.classes ?? source.manifest?.classes ?? model.config.classNames ?? [])];
  const numClasses = model.getSubmodule(model.config.classifier) as unknown as { outFeatures: number };
  if (classes.length === 0) for (let i = 0; i < numClasses.outFeatures; i++) classes.push(String(i));
  if (classes.length !== numClasses.outFeatures) throw new ExportError(`${classes.length} class names for a head of ${numClasses.outFeatures} classes`);

  const deltaTensors = new Set<Tensor>(delta ? delta.stateDict().values() : []);
  const inputSize = [model.config.inputSize[0], preprocess.size, preprocess.size] as const;
  const { graph } = withOriginalModules(model, () => traceModel(model, { inputSize, deltaTensors, float16, opset }));

  const meta: OnnxMeta = {
    model: model.config.name,
    method,
    merged,
    delta: options.name ?? '',
    classes,
    preprocess,
    baseSha256: source.manifest?.base.sha256 ?? null,
    opset,
    float16,
    baseWeightsFile: null,
    library: `deltatune ${packageVersion()}`,
  };
  try {
    mkdirSync(dirname(out), { recursive: true });
  } catch (err) {
    throw new ExportError(`${options.out}: cannot create its folder (${(err as Error).message})`);
  }
  const inline = graph.initializers.map((i) => tensorProto(i, null));
  const fullBytes = encodeModel(modelProto(graph, meta, inputSize, classes.length, inline)).byteLength;
  if (!split) {
    const bytes = encodeModel(modelProto(graph, meta, inputSize, classes.length, inline));
    writeFileAtomic(out, bytes);
    return { file: out, baseWeightsFile: null, graphBytes: bytes.byteLength, baseBytes: 0, fullBytes, meta, inputName: 'image', outputName: 'logits' };
  }

  // The shared base file: every base tensor at an aligned offset, named by the hash of the bytes.
  const canonical = baseTensors(model);
  const layout = new Map<string, { offset: number; bytes: Uint8Array }>();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (const [name, t] of canonical) {
    const stored = float16 && t.dtype === 'float32' && t.numel > 1 ? t.to('float16') : t;
    const data = stored.contiguous().toArray();
    const bytes = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    if (stored !== t) stored.dispose();
    t.dispose();
    const padding = (ALIGN - (size % ALIGN)) % ALIGN;
    if (padding) chunks.push(new Uint8Array(padding));
    size += padding;
    layout.set(name, { offset: size, bytes });
    chunks.push(bytes);
    size += bytes.byteLength;
  }
  const hash = createHash('sha256');
  for (const c of chunks) hash.update(c);
  const location = `${model.config.name}-base-${hash.digest('hex').slice(0, 12)}${float16 ? '-f16' : ''}.bin`;
  const baseFile = join(dirname(out), location);
  if (!existsSync(baseFile) || statSync(baseFile).size !== size) writeFileAtomic(baseFile, chunks);
  const tensors = graph.initializers.map((init) => {
    const slot = init.base ? layout.get(init.name) : undefined;
    // By content: a base tensor the delta changed (bitfit's biases) stays in the delta's file.
    return tensorProto(init, slot && Buffer.compare(slot.bytes, init.bytes) === 0 ? { location, offset: slot.offset } : null);
  });
  meta.baseWeightsFile = location;
  const bytes = encodeModel(modelProto(graph, meta, inputSize, classes.length, tensors));
  writeFileAtomic(out, bytes);
  return { file: out, baseWeightsFile: baseFile, graphBytes: bytes.byteLength, baseBytes: size, fullBytes, meta, inputName: 'image', outputName: 'logits' };
}

/** Exports a saved delta (a delta folder or a run folder) over its base. */
export function exportDeltaOnnx(deltaPath: string, options: ExportOnnxOptions & { weights?: string }): ExportedOnnx {
  const tuned = loadTuned(deltaPath, { weights: options.weights });
  try {
    const name = options.name ?? deltaName(deltaPath);
    return exportOnnx({ model: tuned.model, classes: tuned.classes, preprocess: tuned.preprocess as unknown as Record<string, unknown>, manifest: tuned.manifest }, { ...options, name });
  } finally {
    tuned.dispose();
  }
}

/** A run's best/ or last/ delta is named after the run folder. */
function deltaName(path: string): string {
  const dir = resolve(path);
  const leaf = basename(dir);
  return leaf === 'best' || leaf === 'last' ? basename(dirname(dir)) : leaf;
}

/**
 * Reads an exported file's metadata and checks it is whole: it decodes, has a graph, and every
 * external tensor lies inside its file. Errors name the file and what is wrong.
 */
export function readOnnxMeta(file: string): OnnxMeta {
  let bytes: Buffer;
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    bytes = Buffer.alloc(size);
    if (size > 0) readSync(fd, bytes, 0, size, 0);
  } finally {
    closeSync(fd);
  }
  let model: ModelProto;
  try {
    model = decodeModel(bytes);
  } catch (err) {
    throw new Error(`${file}: not a whole ONNX model (${(err as Error).message}); the file may be truncated — export it again`);
  }
  if (!model.graph || model.graph.node.length === 0) throw new Error(`${file}: not a whole ONNX model (no graph); the file may be truncated — export it again`);
  const entry = model.metadataProps.find((p) => p.key === 'deltatune.meta');
  if (!entry) throw new Error(`${file}: no deltatune metadata (was it exported by deltatune?)`);
  let meta: OnnxMeta;
  try {
    meta = JSON.parse(entry.value) as OnnxMeta;
  } catch {
    throw new Error(`${file}: its deltatune metadata is not valid JSON`);
  }
  for (const t of model.graph.initializer) {
    if (t.dataLocation !== 1) continue;
    const get = (k: string) => t.externalData?.find((e) => e.key === k)?.value;
    const location = join(dirname(file), get('location') ?? '');
    const end = Number(get('offset') ?? 0) + Number(get('length') ?? 0);
    if (!existsSync(location)) throw new Error(`${file}: tensor '${t.name}' is stored in ${get('location')}, which is not beside it`);
    if (statSync(location).size < end) throw new Error(`${file}: tensor '${t.name}' lies beyond the end of ${get('location')} (${statSync(location).size} bytes, needs ${end}); the file may be truncated`);
  }
  return meta;
}
