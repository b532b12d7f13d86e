// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__: {str: str}},
// then the raw little-endian tensor bytes. Files come from strangers, so the header is validated
// completely before a single tensor byte is read or allocated.
import { type DType, itemSize } from '../engine/dtype.js';
import { Tensor } from '../engine/tensor.js';
import { writeFileAtomic } from './atomic.js';
import { INPUT_LIMITS, formatCount } from './read.js';
import { MAX_JSON_DEPTH, jsonDepth } from './json.js';
import { type ByteSource, bufferSource, checkHostEndianness, fileSource, ioError } from './source.js';

const TO_DTYPE: Record<string, DType> = {
  F32: 'float32', F64: 'float64', F16: 'float16', BF16: 'bfloat16', I64: 'int64',
  I32: 'int32', I16: 'int16', I8: 'int8', U8: 'uint8', BOOL: 'bool',
};
const FROM_DTYPE = Object.fromEntries(Object.entries(TO_DTYPE).map(([k, v]) => [v, k])) as Record<DType, string>;

/**
 * The reference implementation's limit: a larger header is corrupt or hostile. (JSON.parse of
 * the largest header allowed may take ~1 GB; the reference accepts such files, so we do too.)
 */
const MAX_HEADER_BYTES = 100_000_000;
/** More dimensions than any real tensor; bounds the work a hostile shape can cause. */
const MAX_DIMS = 64;

/** One tensor as the header describes it. */
export interface SafetensorsEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** byte range inside the data buffer (which starts after the header) */
  begin: number;
  end: number;
}

/** What `inspectSafetensors` reports: the header only, no tensor data. */
export interface SafetensorsHeader {
  /** in file order */
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  /** file offset of the data buffer */
  dataStart: number;
}

export interface SafetensorsFile {
  /** in file order */
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

export interface LoadSafetensorsOptions {
  /** Load only the tensors whose name passes (the others are never read). */
  filter?: (name: string) => boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown): string => (JSON.stringify(v) ?? String(v)).slice(0, 80);

function readHeader(src: ByteSource): SafetensorsHeader {
  const fail = (msg: string) => ioError(src.name, msg);
  if (src.size < 8) throw fail(`too short for a safetensors file (${src.size} bytes; the header length alone is 8)`);
  const n = Buffer.from(src.readAt(0, 8)).readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw fail(`header length ${n} is over the 100 MB limit (${formatCount(MAX_HEADER_BYTES)} bytes, the reference implementation's): not a safetensors file, or corrupt`);
  }
  if (n > BigInt(src.size - 8)) throw fail(`header length ${n} runs past the end of the file (${src.size} bytes)`);
  const headerBytes = src.readAt(8, Number(n));
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw fail('header is not valid UTF-8');
  }
  const depth = jsonDepth(text);
  if (depth > MAX_JSON_DEPTH) throw fail(`header nests ${depth} levels deep, more than the limit of ${MAX_JSON_DEPTH}`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    throw fail(`header is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(header)) throw fail('header is not a JSON object');
  // Every tensor costs ~1.3 KB even when empty, and a 100 MB header can describe ~2 M of them.
  const count = Object.keys(header).length - (Object.hasOwn(header, '__metadata__') ? 1 : 0);
  if (count > INPUT_LIMITS.tensors) {
    throw fail(`header describes ${formatCount(count)} tensors, more than the limit of ${formatCount(INPUT_LIMITS.tensors)} for one weights file (INPUT_LIMITS.tensors)`);
  }

  const dataStart = 8 + Number(n);
  const dataSize = src.size - dataStart;
  const entries: SafetensorsEntry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') metadata = checkMetadata(info, src.name);
    else entries.push(checkEntry(name, info, dataSize, src.name));
  }
  // Zero-byte tensors occupy nothing, so only the others can overlap.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let prev: SafetensorsEntry | null = null;
  for (const e of entries) {
    if (e.begin === e.end) continue;
    if (prev && e.begin < prev.end) {
      throw fail(`tensor '${e.name}' (bytes ${e.begin}..${e.end}) overlaps tensor '${prev.name}' (bytes ${prev.begin}..${prev.end})`);
    }
    prev = e;
  }
  return { entries, metadata, dataStart };
}

function checkMetadata(info: unknown, file: string): Record<string, string> {
  if (!isObject(info)) throw ioError(file, `__metadata__ must be an object of strings, got ${show(info)}`);
  for (const [k, v] of Object.entries(info)) {
    if (typeof v !== 'string') throw ioError(file, `__metadata__ '${k}' must be a string, got ${show(v)}`);
  }
  // fromEntries defines own properties, so a '__proto__' key stays a key.
  return Object.fromEntries(Object.entries(info as Record<string, string>));
}

function checkEntry(name: string, info: unknown, dataSize: number, file: string): SafetensorsEntry {
  const fail = (msg: string) => ioError(file, `tensor '${name}': ${msg}`);
  if (!isObject(info)) throw fail(`expected {dtype, shape, data_offsets}, got ${show(info)}`);
  const { dtype: code, shape, data_offsets: offsets } = info;
  if (typeof code !== 'string') throw fail(`dtype must be a string, got ${show(code)}`);
  const dtype = Object.hasOwn(TO_DTYPE, code) ? TO_DTYPE[code]! : undefined;
  if (!dtype) throw fail(`dtype '${code}' is not supported (deltatune reads ${Object.keys(TO_DTYPE).join(', ')})`);
  if (!Array.isArray(shape) || shape.length > MAX_DIMS || !shape.every((s) => Number.isSafeInteger(s) && s >= 0)) {
    throw fail(`shape must be an array of at most ${MAX_DIMS} non-negative integers, got ${show(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]) {
    throw fail(`data_offsets must be [begin, end] with 0 <= begin <= end, got ${show(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  const nbytes = byteSize(shape as number[], itemSize(dtype));
  if (nbytes === null) throw fail(`shape [${shape.join(',')}] is too large`);
  if (end - begin !== nbytes) {
    throw fail(`data_offsets [${begin},${end}] hold ${end - begin} bytes but shape [${shape.join(',')}] of ${code} needs ${nbytes}`);
  }
  if (end > dataSize) throw fail(`data_offsets [${begin},${end}] run past the end of the data (${dataSize} bytes)`);
  return { name, dtype, shape: shape as number[], begin, end };
}

/** numel × bytes per element, or null when it is not a safe integer. */
function byteSize(shape: readonly number[], elementBytes: number): number | null {
  if (shape.includes(0)) return 0;
  let n = elementBytes;
  for (const s of shape) {
    n *= s;
    if (n > Number.MAX_SAFE_INTEGER) return null;
  }
  return n;
}

function readTensors(src: ByteSource, options: LoadSafetensorsOptions): SafetensorsFile {
  checkHostEndianness(src.name);
  const { entries, metadata, dataStart } = readHeader(src);
  const tensors = new Map<string, Tensor>();
  try {
    for (const e of entries) {
      if (options.filter && !options.filter(e.name)) continue;
      // One tensor at a time, straight into libtorch memory (the header check made end − begin = its size).
      tensors.set(e.name, src.readTensor(dataStart + e.begin, e.dtype, e.shape, `${src.name}: tensor '${e.name}'`));
    }
  } catch (err) {
    for (const t of tensors.values()) t.dispose();
    throw err;
  }
  return { tensors, metadata };
}

/**
 * Reads a safetensors file, one tensor's byte range at a time (the file is never in memory
 * whole). Tensors come in file order. A malformed or hostile file is an Error naming the
 * file, the tensor and the problem.
 */
export function loadSafetensors(path: string, options: LoadSafetensorsOptions = {}): SafetensorsFile {
  const src = fileSource(path);
  try {
    return readTensors(src, options);
  } finally {
    src.close();
  }
}

/** `loadSafetensors` for bytes already in memory; errors name '<buffer>'. */
export function parseSafetensors(bytes: Uint8Array, options: LoadSafetensorsOptions = {}): SafetensorsFile {
  return readTensors(bufferSource(bytes), options);
}

/** The validated header of a safetensors file (names, dtypes, shapes, metadata) without reading tensor data. */
export function inspectSafetensors(path: string): SafetensorsHeader {
  const src = fileSource(path);
  try {
    return readHeader(src);
  } finally {
    src.close();
  }
}

/**
 * Writes tensors as a safetensors file, atomically (see `writeFileAtomic`). Keys are sorted;
 * each tensor's bytes are copied out of libtorch, written and dropped one at a time, so memory
 * peaks at the largest tensor, not the file. Non-contiguous tensors are written as their values
 * in contiguous order. The header is padded with spaces to a multiple of 8 bytes, as the
 * reference implementation does, so every tensor's data stays aligned.
 */
export function saveSafetensors(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata: Record<string, string> = {},
  /** Called after each tensor is written with the tensor bytes written so far and their total (for a progress bar). */
  onProgress?: (written: number, total: number) => void,
): void {
  checkHostEndianness(path);
  const items = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))];
  items.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (!isObject(metadata)) throw new TypeError(`saveSafetensors(${path}): metadata must be an object of strings`);
  const meta = Object.entries(metadata);
  for (const [k, v] of meta) {
    if (typeof v !== 'string') throw new TypeError(`saveSafetensors(${path}): metadata '${k}' must be a string, got ${typeof v}`);
  }
  if (meta.length) header.__metadata__ = Object.fromEntries(meta);
  let offset = 0;
  for (const [name, t] of items) {
    if (typeof name !== 'string') throw new TypeError(`saveSafetensors(${path}): tensor names must be strings`);
    if (name === '__metadata__') throw new TypeError(`saveSafetensors(${path}): '__metadata__' is reserved and cannot name a tensor`);
    if (!(t instanceof Tensor)) throw new TypeError(`saveSafetensors(${path}): '${name}' is not a Tensor`);
    if (t.isDisposed) throw new Error(`saveSafetensors(${path}): tensor '${name}' was already disposed`);
    const nbytes = t.nbytes;
    // Object.defineProperty keeps a tensor called '__proto__' an ordinary key.
    Object.defineProperty(header, name, {
      value: { dtype: FROM_DTYPE[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + nbytes] },
      enumerable: true,
    });
    offset += nbytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20);
  padded.set(json);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(padded.length));

  function* chunks(): Generator<Uint8Array> {
    yield prefix;
    yield padded;
    let written = 0;
    for (const [name, t] of items) {
      const a = t.toArray();
      if (a.byteLength !== t.nbytes) throw new Error(`tensor '${name}' gave ${a.byteLength} bytes, expected ${t.nbytes}`);
      yield new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      written += a.byteLength;
      onProgress?.(written, offset);
    }
  }
  writeFileAtomic(path, chunks());
}
