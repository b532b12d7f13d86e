// Case generators of the hostile-input suite. A case is named by an id `<reader>:<index>`: the
// first indices of each reader are the fixed, hand-written cases (FIFOs, bombs, schema breaks,
// neutral edits), the rest are drawn from seeded mutation families. A case writes its input files
// into its own folder from the worker's baselines and says what must happen:
//   'reject' — structurally invalid or inconsistent: the reader must throw an Error whose first
//              line names the culprit (accepting it is silent_wrong);
//   'accept' — a neutral edit (whitespace, key order, a symlink to a good file): it must load and
//              give exactly the baseline's result (a rejection is silent_wrong and false_reject);
//   'either' — random fuzz: a rejection must be clear, an acceptance must satisfy invariants.
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import sharp from 'sharp';
import {
  ST_ITEM as ST_ITEM_OF, type PthTensor, type Rng, type StTensor, type ZipIn, Pickler, buildSafetensors, buildZip, contiguousStride, duplicateRange, flipBytes,
  hashSeed, insertOrDelete, jpegInsertSegment, jpegWithSize, pickleStateDict, pickleTensor, pngChunk, pngInsertChunk, pngWithSize,
  pngZeroBomb, rng, splitSafetensors, truncate, webpWithSize, withStHeader, zerosDeflateRaw,
} from './formats.js';

export type Reader = 'weights' | 'images' | 'manifests' | 'csv';
export const READERS: readonly Reader[] = ['weights', 'images', 'manifests', 'csv'];
export type Expect = 'reject' | 'accept' | 'either';
export type ImageRef = 'png' | 'jpeg' | 'webp' | 'gray';
export type ImageFormat = ImageRef | 'gif';

export interface CaseSpec {
  id: string;
  reader: Reader;
  category: string;
  name: string;
  expect: Expect;
  /** Costly to build or to refuse (bombs, million-line files): left out of the quick test sample. */
  heavy?: boolean;
}

/** What the worker builds once and every case mutates. */
export interface Baselines {
  dir: string;
  st: Buffer;
  stTensors: StTensor[];
  pthTensors: PthTensor[];
  pthStorages: Map<string, Buffer>;
  pth: Buffer;
  images: Record<ImageFormat, Buffer>;
  /** A LoRA delta of vit_tiny_p4_32 (delta.json text and delta.safetensors bytes); its base lives in `dir`. */
  delta: { json: string; st: Buffer };
  /** A PEFT LoRA adapter of resnet18. */
  peft: { json: string; st: Buffer };
  /** A run's config.json text. */
  config: { json: string };
}

export interface ExpectedTensor {
  dtype: string;
  shape: number[];
  /** little-endian element bytes; omitted when only the layout is known */
  bytes?: Buffer;
}

/** A file with a known expectation inside an image list or CSV (keyed by absolute path). */
export interface KnownFile {
  expect: Expect;
  /** The baseline image it decodes exactly like (for 'accept'). */
  ref?: ImageRef;
}

export type Target =
  | { kind: 'weights'; path: string; format: 'st' | 'pth' | 'other'; expected?: Map<string, ExpectedTensor> }
  | { kind: 'images'; mode: 'fail' | 'skip'; files: string[]; known: Record<string, KnownFile> }
  | {
      kind: 'csv'; mode: 'fail' | 'skip'; path: string; known: Record<string, KnownFile>;
      /** The list itself: 'reject' when the CSV (not an image in it) is at fault. */
      listExpect: Expect;
      expectedList?: { classes: string[]; rows: { path: string; label: number }[] };
    }
  | {
      kind: 'delta' | 'peft' | 'config'; dir: string;
      /** For an accepted random valid manifest: what differs from the baseline's result (the rest must not). */
      expected?: ManifestExpected;
    };

export interface ManifestExpected {
  classes?: string[];
  preprocess?: Record<string, unknown>;
  options?: Record<string, unknown>;
}

export interface BuiltCase {
  spec: CaseSpec;
  target: Target;
  /** A rejection's first line must contain one of these (paths of the file at fault, or the folder given). */
  culprits: string[];
}

interface Ctx {
  b: Baselines;
  dir: string;
  r: Rng;
  /** Writes a file in the case folder and returns its absolute path. */
  put(name: string, bytes: Buffer | string): string;
}

interface Def {
  name: string;
  category: string;
  expect: Expect;
  heavy?: boolean;
  make(c: Ctx): { target: Target; culprits: string[] } | Promise<{ target: Target; culprits: string[] }>;
}

// ---------------------------------------------------------------------------------------------
// Files that are not regular files

export type Special = 'fifo' | 'devzero' | 'urandom' | 'directory' | 'loop' | 'missing' | 'dangling' | 'procfs';
export const SPECIALS: readonly Special[] = ['fifo', 'devzero', 'urandom', 'directory', 'loop', 'missing', 'dangling', 'procfs'];

/** Puts a non-regular file (or nothing) at `path`; returns the names a clear message may use for it. */
export function makeSpecial(kind: Special, path: string): string[] {
  switch (kind) {
    case 'fifo': execFileSync('mkfifo', [path]); return [path];
    case 'devzero': symlinkSync('/dev/zero', path); return [path, '/dev/zero'];
    case 'urandom': symlinkSync('/dev/urandom', path); return [path, '/dev/urandom'];
    case 'directory': mkdirSync(path); return [path];
    case 'loop': symlinkSync(`${path}.loop`, path); symlinkSync(path, `${path}.loop`); return [path];
    case 'missing': return [path];
    case 'dangling': symlinkSync(`${path}.nowhere`, path); return [path];
    // A regular file whose size says 0 but which has content (procfs): whatever is read is not data.
    case 'procfs': symlinkSync('/proc/self/status', path); return [path, '/proc/self/status'];
  }
}

// ---------------------------------------------------------------------------------------------
// JSON helpers

/** Renders JSON with placeholders replaced by raw text (NaN, deep nesting: things JSON.stringify cannot write). */
function renderJson(value: unknown, raw: Record<string, string> = {}, indent: number | string = 2): string {
  let text = JSON.stringify(value, null, indent) + '\n';
  for (const [k, v] of Object.entries(raw)) text = text.split(JSON.stringify(k)).join(v);
  return text;
}

const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Sets (or with `undefined`, deletes) a dotted path in a parsed JSON value. */
function setPath(obj: Json, path: string, value: unknown): void {
  const keys = path.split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) o = o[k];
  const last = keys[keys.length - 1]!;
  if (value === undefined) delete o[last];
  else o[last] = value;
}

function getPath(obj: Json, path: string): unknown {
  let o = obj;
  for (const k of path.split('.')) o = o?.[k];
  return o;
}

/** Every path to a value inside `obj` (objects by key, arrays by index). */
function allPaths(obj: Json, prefix = ''): string[] {
  if (typeof obj !== 'object' || obj === null) return [];
  const out: string[] = [];
  for (const k of Object.keys(obj)) {
    const p = prefix ? `${prefix}.${k}` : k;
    out.push(p, ...allPaths(obj[k], p));
  }
  return out;
}

function reorderKeys(v: Json, r: Rng | null): Json {
  if (Array.isArray(v)) return v.map((x) => reorderKeys(x, r));
  if (typeof v !== 'object' || v === null) return v;
  const keys = Object.keys(v);
  if (r) for (let i = keys.length - 1; i > 0; i--) { const j = r.int(i + 1); [keys[i], keys[j]] = [keys[j]!, keys[i]!]; }
  else keys.reverse();
  return Object.fromEntries(keys.map((k) => [k, reorderKeys(v[k], r)]));
}

/** Neutral rewrites of a JSON file: the parsed value is unchanged. */
const NEUTRAL_JSON: { name: string; apply(text: string, r: Rng): string }[] = [
  { name: 'compact', apply: (t) => JSON.stringify(JSON.parse(t)) },
  { name: 'indent4', apply: (t) => JSON.stringify(JSON.parse(t), null, 4) + '\n' },
  { name: 'tabs', apply: (t) => JSON.stringify(JSON.parse(t), null, '\t') + '\n' },
  { name: 'key-order', apply: (t) => JSON.stringify(reorderKeys(JSON.parse(t), null), null, 2) + '\n' },
  { name: 'key-shuffle', apply: (t, r) => JSON.stringify(reorderKeys(JSON.parse(t), r), null, 2) + '\n' },
  { name: 'crlf', apply: (t) => t.replace(/\n/g, '\r\n') },
  { name: 'no-newline', apply: (t) => t.trimEnd() },
  { name: 'trailing-space', apply: (t) => `  \n${t}\n\n   \t\n` },
  { name: 'unicode-escapes', apply: (t) => t.replace(/"([a-z])/g, (_m, ch: string) => `"\\u00${ch.charCodeAt(0).toString(16)}`) },
  { name: 'exponent-ints', apply: (t) => t.replace(/(:\s*)(\d+)(\s*[,\n}])/g, (_m, a: string, n: string, z: string) => `${a}${n}.0e0${z}`) },
];

/** Values a random field edit may write (raw text for what JSON.stringify cannot). */
const FUZZ_VALUES: { v: unknown; raw?: string }[] = [
  { v: null }, { v: -1 }, { v: 0 }, { v: 1.5 }, { v: 1e308 }, { v: -1e308 }, { v: 2 ** 53 + 2 }, { v: '' }, { v: 'x' }, { v: [] }, { v: {} },
  { v: true }, { v: 'NaN' }, { v: 1e30 }, { v: '__RAW__', raw: 'NaN' }, { v: '__RAW__', raw: '-Infinity' }, { v: '__RAW__', raw: deep(5000) },
  { v: [null] }, { v: 'a'.repeat(5000) }, { v: { __proto__: 1 } }, { v: '__RAW__', raw: '1e999' },
];

/** A random edit of one field; 'either' (some fields take anything). */
function fuzzJson(text: string, r: Rng): { text: string; what: string } {
  const obj = JSON.parse(text);
  const paths = allPaths(obj);
  const path = r.pick(paths);
  const op = r.int(4);
  if (op === 0) {
    setPath(obj, path, undefined);
    return { text: renderJson(obj), what: `delete ${path}` };
  }
  if (op === 1) {
    // rename the key
    const keys = path.split('.');
    const parent = keys.length > 1 ? getPath(obj, keys.slice(0, -1).join('.')) : obj;
    const last = keys[keys.length - 1]!;
    if (parent && typeof parent === 'object' && !Array.isArray(parent)) {
      const p = parent as Record<string, unknown>;
      p[`${last}_`] = p[last];
      delete p[last];
    }
    return { text: renderJson(obj), what: `rename ${path}` };
  }
  const f = r.pick(FUZZ_VALUES);
  setPath(obj, path, f.v);
  return { text: renderJson(obj, f.raw ? { __RAW__: f.raw } : {}), what: `${path}=${f.raw ?? JSON.stringify(f.v)?.slice(0, 20)}` };
}

// ---------------------------------------------------------------------------------------------
// Weights

function stExpected(tensors: StTensor[], strip = ''): Map<string, ExpectedTensor> {
  return new Map(tensors.map((t) => [t.name.slice(strip.length), { dtype: t.dtype, shape: t.shape, bytes: t.data }]));
}

function stWith(b: Baselines, edit: (header: Record<string, Json>) => void, pad = true): Buffer {
  const s = splitSafetensors(b.st)!;
  const header = JSON.parse(s.text);
  edit(header);
  return withStHeader(Buffer.from(JSON.stringify(header)), s.data, pad);
}

function stWithRaw(b: Baselines, edit: (text: string) => string): Buffer {
  const s = splitSafetensors(b.st)!;
  return withStHeader(Buffer.from(edit(s.text.trimEnd())), s.data);
}

/**
 * The baseline with a longer __metadata__ note, so that the (space-padded) header is exactly
 * `length` bytes: a valid file whose first bytes are 0x80 (the pickle PROTO opcode) or 'PK\x03\x04'.
 */
function stWithHeaderLength(b: Baselines, length: number): Buffer {
  const base = buildSafetensors(b.stTensors, { metadata: { format: 'pt', note: '' }, pad: false });
  const json = base.readBigUInt64LE(0);
  const note = length - Number(json);
  return buildSafetensors(b.stTensors, { metadata: { format: 'pt', note: 'x'.repeat(note) } });
}

function headerLength(b: Buffer, n: bigint): Buffer {
  const out = Buffer.from(b);
  out.writeBigUInt64LE(BigInt.asUintN(64, n));
  return out;
}

const w = (name: string, category: string, expect: Expect, bytes: (c: Ctx) => Buffer, o: { file?: string; format?: 'st' | 'pth' | 'other'; expected?: (c: Ctx) => Map<string, ExpectedTensor>; heavy?: boolean } = {}): Def => ({
  name, category, expect, heavy: o.heavy,
  make: (c) => {
    const path = c.put(o.file ?? 'weights.safetensors', bytes(c));
    return { target: { kind: 'weights', path, format: o.format ?? 'st', expected: expect === 'accept' ? (o.expected ?? ((cc) => stExpected(cc.b.stTensors)))(c) : undefined }, culprits: [path] };
  },
});

const pthExpected = (c: Ctx, strip = '') => new Map([...stExpected(c.b.stTensors)].map(([k, v]) => [k.slice(strip.length), v]));

/** The baseline checkpoint's pieces, to rebuild variants of it. */
function pthEntries(b: Baselines, o: { prefix?: string; pickle?: Buffer; method?: number; byteorder?: string | null; extra?: ZipIn[]; drop?: string[]; storage?: (key: string, data: Buffer) => Partial<ZipIn> } = {}): ZipIn[] {
  const prefix = o.prefix ?? 'archive';
  const entries: ZipIn[] = [{ name: `${prefix}/data.pkl`, data: o.pickle ?? pickleStateDict(b.pthTensors), method: o.method }];
  if (o.byteorder !== null) entries.push({ name: `${prefix}/byteorder`, data: Buffer.from(o.byteorder ?? 'little') });
  for (const [key, data] of b.pthStorages) entries.push({ name: `${prefix}/data/${key}`, data, method: o.method, ...(o.storage?.(key, data) ?? {}) });
  entries.push({ name: `${prefix}/version`, data: Buffer.from('3\n') }, ...(o.extra ?? []));
  return entries.filter((e) => !o.drop?.includes(e.name));
}

function pthWith(b: Baselines, o: Parameters<typeof pthEntries>[1] = {}, z: Parameters<typeof buildZip>[1] = {}): Buffer {
  return buildZip(pthEntries(b, o), z).bytes;
}

/** The baseline tensors with one replaced. */
function tensorsWith(b: Baselines, name: string, patch: Partial<PthTensor>): PthTensor[] {
  return b.pthTensors.map((t) => (t.name === name ? { ...t, ...patch } : t));
}

function pickleBomb(kind: 'list' | 'memo' | 'nesting' | 'laughs' | 'nones'): Buffer {
  const p = new Pickler().proto(2);
  switch (kind) {
    case 'list': { // one list of 5 M Nones: APPENDS after a MARK
      p.op(0x5d).mark().raw(Buffer.alloc(5_000_000, 0x4e)).appends();
      break;
    }
    case 'nones': // 5 M Nones straight onto the stack
      p.raw(Buffer.alloc(5_000_000, 0x4e));
      break;
    case 'memo': { // an empty dict stored under 4.5 M memo keys
      p.op(0x7d);
      const n = 4_500_000;
      const b = Buffer.alloc(5 * n);
      for (let i = 0; i < n; i++) {
        b[5 * i] = 0x72;
        b.writeUInt32LE(i, 5 * i + 1);
      }
      p.raw(b).op(0x30).int(5); // then the dict is dropped: the checkpoint is a number, invalid with or without a memo limit
      break;
    }
    case 'nesting': { // a list nested 1 M deep
      const n = 1_000_000;
      p.raw(Buffer.alloc(n, 0x5d)).raw(Buffer.alloc(n - 1, 0x61));
      break;
    }
    case 'laughs': { // a dict whose value is 2^60 references deep: [[x]*16]*16 ... (memoized)
      p.op(0x7d).mark().str('weight');
      p.op(0x5d).op(0x71, 100).op(0x30); // L0 = [] in memo 100, popped
      for (let level = 1; level < 16; level++) {
        p.mark();
        for (let i = 0; i < 16; i++) p.op(0x68, 99 + level);
        p.op(0x6c).op(0x71, 100 + level);
        if (level < 15) p.op(0x30); // keep only the last level on the stack
      }
      p.setitems();
      break;
    }
  }
  return p.stop().bytes();
}

/**
 * A state dict of `n` entries over storage '0' (conv.weight's 48 floats): n distinct tensors
 * (one _rebuild_tensor_v2 call each, arguments shared through the memo) or n keys naming one tensor.
 */
function manyTensorsPickle(n: number, shared: boolean): Buffer {
  const head = new Pickler().proto(4);
  head.raw(Buffer.from('ctorch._utils\n_rebuild_tensor_v2\n', 'latin1')).op(0x71, 200).op(0x30);
  head.mark().str('storage').raw(Buffer.from('ctorch\nFloatStorage\n', 'latin1')).str('0').str('cpu').int(48).tuple().persid().op(0x71, 201).op(0x30);
  head.mark().op(0x68, 201).int(0).mark().int(48).tuple().mark().int(1).tuple().bool(false);
  head.raw(Buffer.from('ccollections\nOrderedDict\n', 'latin1')).emptyTuple().op(0x52).tuple().op(0x71, 202).op(0x30);
  if (shared) head.op(0x68, 200).op(0x68, 202).op(0x52).op(0x71, 203).op(0x30);
  head.op(0x7d).mark();
  const per = shared ? 2 + 7 + 2 : 2 + 7 + 5;
  const body = Buffer.alloc(n * per);
  for (let i = 0; i < n; i++) {
    let p = i * per;
    const name = `t${String(i).padStart(6, '0')}`;
    body[p++] = 0x8c;
    body[p++] = 7;
    p += body.write(name, p, 'latin1');
    if (shared) {
      body[p++] = 0x68;
      body[p++] = 203;
    } else {
      body[p++] = 0x68;
      body[p++] = 200;
      body[p++] = 0x68;
      body[p++] = 202;
      body[p++] = 0x52;
    }
  }
  return Buffer.concat([head.bytes(), body, Buffer.from([0x75, 0x2e])]);
}

function legacyPickle(b: Baselines): Buffer {
  // torch < 1.6: a magic-number pickle stream, then the dict, then storages (refused by name).
  return Buffer.concat([Buffer.from([0x80, 0x02, 0x8a, 0x0a]), Buffer.from('6c\xfc\x9cF\xf9 j\xa8P\x19.', 'latin1'), pickleStateDict(b.pthTensors)]);
}

const WEIGHT_SPECIALS: Def[] = SPECIALS.map((kind) => ({
  name: `weights-${kind}`, category: 'non-regular file', expect: 'reject' as const,
  make: (c: Ctx) => {
    const path = join(c.dir, 'model.safetensors');
    return { target: { kind: 'weights' as const, path, format: 'other' as const }, culprits: makeSpecial(kind, path) };
  },
}));

const WEIGHTS_FIXED: Def[] = [
  ...WEIGHT_SPECIALS,
  {
    name: 'weights-symlink-to-good', category: 'non-regular file', expect: 'accept',
    make: (c) => {
      const real = c.put('real.safetensors', c.b.st);
      const path = join(c.dir, 'link.safetensors');
      symlinkSync(real, path);
      return { target: { kind: 'weights', path, format: 'st', expected: stExpected(c.b.stTensors) }, culprits: [path, real] };
    },
  },
  w('st-empty-file', 'wrong content', 'reject', () => Buffer.alloc(0)),
  w('st-text-file', 'wrong content', 'reject', () => Buffer.from('This is a README, not weights.\nIt was renamed to .safetensors by mistake.\n')),
  w('st-html-file', 'wrong content', 'reject', () => Buffer.from('<!DOCTYPE html><html><body>404 Not Found</body></html>\n')),
  w('st-json-file', 'wrong content', 'reject', () => Buffer.from('{"weight": [1, 2, 3]}\n')),
  w('st-zeros', 'wrong content', 'reject', () => Buffer.alloc(4096)),
  w('pth-text-file', 'wrong content', 'reject', () => Buffer.from('PK is how this text starts, but it is not a zip\n'), { file: 'model.pth', format: 'pth' }),
  w('st-truncated-8', 'truncation', 'reject', (c) => c.b.st.subarray(0, 8)),
  w('st-truncated-5', 'truncation', 'reject', (c) => c.b.st.subarray(0, 5)),
  w('st-truncated-data-1', 'truncation', 'reject', (c) => c.b.st.subarray(0, c.b.st.length - 1)),
  w('st-truncated-header', 'truncation', 'reject', (c) => c.b.st.subarray(0, 40)),
  w('st-header-len-2^62', 'header sizes', 'reject', (c) => headerLength(c.b.st, 2n ** 62n)),
  w('st-header-len-2^64-1', 'header sizes', 'reject', (c) => headerLength(c.b.st, 2n ** 64n - 1n)),
  w('st-header-len-past-end', 'header sizes', 'reject', (c) => headerLength(c.b.st, BigInt(c.b.st.length - 7))),
  w('st-header-len-99MB', 'header sizes', 'reject', (c) => headerLength(c.b.st, 99_999_999n)),
  w('st-header-len-0', 'header sizes', 'reject', (c) => headerLength(c.b.st, 0n)),
  w('st-dtype-unknown', 'header dtypes', 'reject', (c) => stWith(c.b, (h) => { h['conv.weight'].dtype = 'C64'; })),
  w('st-dtype-number', 'header dtypes', 'reject', (c) => stWith(c.b, (h) => { h['conv.weight'].dtype = 4; })),
  w('st-dtype-missing', 'header dtypes', 'reject', (c) => stWith(c.b, (h) => { delete h['conv.weight'].dtype; })),
  w('st-dtype-size-mismatch', 'header dtypes', 'reject', (c) => stWith(c.b, (h) => { h['conv.weight'].dtype = 'F64'; })),
  w('st-dtype-proto', 'header dtypes', 'reject', (c) => stWith(c.b, (h) => { h['conv.weight'].dtype = '__proto__'; })),
  w('st-shape-mismatch', 'header shapes', 'reject', (c) => stWith(c.b, (h) => { h['conv.weight'].shape = [4, 3, 2, 3]; })),
  w('st-shape-negative', 'header shapes', 'reject', (c) => stWith(c.b, (h) => { h['conv.weight'].shape = [-4, 3, 2, 2]; })),
  w('st-shape-negative-pair', 'header shapes', 'reject', (c) => stWith(c.b, (h) => { h['conv.weight'].shape = [-4, -12]; })),
  w('st-shape-float', 'header shapes', 'reject', (c) => stWith(c.b, (h) => { h['conv.weight'].shape = [4, 3, 2, 2.0000001]; })),
  w('st-shape-string', 'header shapes', 'reject', (c) => stWith(c.b, (h) => { h['conv.weight'].shape = ['4', 3, 2, 2]; })),
  w('st-shape-huge', 'header shapes', 'reject', (c) => stWith(c.b, (h) => { h['conv.weight'].shape = [2 ** 53 - 1, 2 ** 53 - 1]; })),
  w('st-shape-overflow-to-match', 'header shapes', 'reject', (c) => stWith(c.b, (h) => { h['conv.weight'].shape = [2 ** 32, 2 ** 32, 48]; })),
  // 65 dimensions of size 1: consistent, only over the reader's own bound (the format sets none)
  w('st-shape-65-dims', 'header shapes', 'either', (c) => stWith(c.b, (h) => { h['conv.weight'].shape = [48, ...Array(64).fill(1)]; })),
  w('st-shape-null', 'header shapes', 'reject', (c) => stWith(c.b, (h) => { h['conv.weight'].shape = null; })),
  w('st-offsets-past-end', 'header offsets', 'reject', (c) => stWith(c.b, (h) => { const [a, z] = h['mask'].data_offsets; h['mask'].data_offsets = [a + 1000, z + 1000]; })),
  w('st-offsets-reversed', 'header offsets', 'reject', (c) => stWith(c.b, (h) => { const [a, z] = h['conv.weight'].data_offsets; h['conv.weight'].data_offsets = [z, a]; })),
  w('st-offsets-negative', 'header offsets', 'reject', (c) => stWith(c.b, (h) => { h['conv.bias'].data_offsets = [-16, 0]; })),
  w('st-offsets-overlap', 'header offsets', 'reject', (c) => stWith(c.b, (h) => { const [a] = h['conv.weight'].data_offsets; h['conv.bias'].data_offsets = [a, a + 16]; })),
  w('st-offsets-huge', 'header offsets', 'reject', (c) => stWith(c.b, (h) => { h['conv.bias'].data_offsets = [2 ** 53, 2 ** 53 + 16]; })),
  w('st-offsets-three', 'header offsets', 'reject', (c) => stWith(c.b, (h) => { h['conv.bias'].data_offsets = [...h['conv.bias'].data_offsets, 0]; })),
  w('st-offsets-missing', 'header offsets', 'reject', (c) => stWith(c.b, (h) => { delete h['conv.bias'].data_offsets; })),
  w('st-header-array', 'header structure', 'reject', (c) => withStHeader(Buffer.from('[1,2,3]'), splitSafetensors(c.b.st)!.data)),
  w('st-header-null', 'header structure', 'reject', (c) => withStHeader(Buffer.from('null'), splitSafetensors(c.b.st)!.data)),
  w('st-header-string', 'header structure', 'reject', (c) => withStHeader(Buffer.from('"weights"'), splitSafetensors(c.b.st)!.data)),
  w('st-header-invalid-json', 'header structure', 'reject', (c) => stWithRaw(c.b, (t) => t.slice(0, -1))),
  w('st-header-not-utf8', 'header structure', 'reject', (c) => Buffer.from(c.b.st).fill(0xff, 20, 21)),
  w('st-entry-not-object', 'header structure', 'reject', (c) => stWith(c.b, (h) => { h['conv.bias'] = [1, 2]; })),
  w('st-metadata-number', 'header structure', 'reject', (c) => stWith(c.b, (h) => { h.__metadata__ = { format: 1 }; })),
  w('st-metadata-deep', 'header structure', 'reject', (c) => stWithRaw(c.b, (t) => t.replace('{"format":"pt"}', `{"format":${deep(100_000)}}`))),
  w('st-entry-deep-extra', 'header structure', 'either', (c) => stWithRaw(c.b, (t) => t.replace('"dtype":"F32"', `"extra":${deep(100_000)},"dtype":"F32"`))),
  w('st-bool-byte-2', 'tensor data', 'reject', (c) => {
    const s = splitSafetensors(c.b.st)!;
    const h = JSON.parse(s.text);
    const out = Buffer.from(c.b.st);
    out[8 + Buffer.byteLength(s.text) + h['mask'].data_offsets[0] + 1] = 2;
    return out;
  }),
  w('st-600k-tensors', 'counts', 'reject', () => {
    const parts = ['{'];
    for (let i = 0; i < 600_000; i++) parts.push(`"t${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},`);
    parts.push('"last":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}');
    return withStHeader(Buffer.from(parts.join('')), Buffer.alloc(4));
  }, { heavy: true }),
  w('st-accept-header-len-0x80', 'neutral edits', 'accept', (c) => stWithHeaderLength(c.b, 384)),
  w('st-accept-header-len-PK', 'neutral edits', 'accept', (c) => stWithHeaderLength(c.b, 0x04034b50), { heavy: true }),
  w('st-accept-key-order', 'neutral edits', 'accept', (c) => buildSafetensors([...c.b.stTensors].reverse())),
  w('st-accept-pretty-header', 'neutral edits', 'accept', (c) => buildSafetensors(c.b.stTensors, { render: (h) => JSON.stringify(h, null, 2) })),
  w('st-accept-no-padding', 'neutral edits', 'accept', (c) => buildSafetensors(c.b.stTensors, { pad: false })),
  w('st-accept-no-metadata', 'neutral edits', 'accept', (c) => buildSafetensors(c.b.stTensors, { metadata: null })),
  w('st-accept-more-metadata', 'neutral edits', 'accept', (c) => buildSafetensors(c.b.stTensors, { metadata: { format: 'pt', note: 'x'.repeat(1000) } })),
  w('st-accept-data-order', 'neutral edits', 'accept', (c) => buildSafetensors(c.b.stTensors, { dataOrder: c.b.stTensors.map((t) => t.name).reverse() })),
  w('st-accept-extension-bin', 'neutral edits', 'accept', (c) => c.b.st, { file: 'pytorch_model.bin' }),
  w('st-accept-module-prefix', 'neutral edits', 'accept', (c) => buildSafetensors(c.b.stTensors.map((t) => ({ ...t, name: `module.${t.name}` }))), { expected: (c) => stExpected(c.b.stTensors) }),
  // .pth (zip + pickle)
  w('pth-legacy-pickle', 'pth structure', 'reject', (c) => legacyPickle(c.b), { file: 'model.pth', format: 'pth' }),
  w('pth-zip-without-eocd', 'pth structure', 'reject', (c) => c.b.pth.subarray(0, c.b.pth.length - 22), { file: 'model.pth', format: 'pth' }),
  w('pth-zip-truncated-half', 'truncation', 'reject', (c) => c.b.pth.subarray(0, c.b.pth.length >> 1), { file: 'model.pth', format: 'pth' }),
  w('pth-two-pickles', 'pth structure', 'reject', (c) => pthWith(c.b, { extra: [{ name: 'other/data.pkl', data: pickleStateDict(c.b.pthTensors) }] }), { file: 'model.pth', format: 'pth' }),
  w('pth-no-pickle', 'pth structure', 'reject', (c) => pthWith(c.b, { drop: ['archive/data.pkl'] }), { file: 'model.pth', format: 'pth' }),
  w('pth-torchscript', 'pth structure', 'reject', (c) => pthWith(c.b, { extra: [{ name: 'archive/constants.pkl', data: Buffer.from([0x80, 2, 0x29, 0x2e]) }] }), { file: 'model.pth', format: 'pth' }),
  w('pth-byteorder-big', 'pth structure', 'reject', (c) => pthWith(c.b, { byteorder: 'big' }), { file: 'model.pth', format: 'pth' }),
  w('pth-duplicate-entry', 'pth structure', 'reject', (c) => pthWith(c.b, { extra: [{ name: 'archive/data/0', data: Buffer.alloc(8) }] }), { file: 'model.pth', format: 'pth' }),
  w('pth-missing-storage', 'pth structure', 'reject', (c) => pthWith(c.b, { drop: ['archive/data/1'] }), { file: 'model.pth', format: 'pth' }),
  w('pth-encrypted-entry', 'pth structure', 'reject', (c) => pthWith(c.b, { storage: (k) => (k === '0' ? { flags: 1 } : {}) }), { file: 'model.pth', format: 'pth' }),
  w('pth-bzip2-entry', 'pth structure', 'reject', (c) => pthWith(c.b, { storage: (k) => (k === '0' ? { method: 12 } : {}) }), { file: 'model.pth', format: 'pth' }),
  w('pth-stored-size-lie', 'pth structure', 'reject', (c) => pthWith(c.b, { storage: (k, d) => (k === '0' ? { size: d.length + 8 } : {}) }), { file: 'model.pth', format: 'pth' }),
  w('pth-eocd-count-65535', 'pth structure', 'reject', (c) => { const b = Buffer.from(c.b.pth); b.writeUInt16LE(65535, b.length - 12); b.writeUInt16LE(65535, b.length - 14); return b; }, { file: 'model.pth', format: 'pth' }),
  w('pth-cd-offset-outside', 'pth structure', 'reject', (c) => { const b = Buffer.from(c.b.pth); b.writeUInt32LE(0xfffffff0, b.length - 6); return b; }, { file: 'model.pth', format: 'pth' }),
  w('pth-local-offset-outside', 'pth structure', 'reject', (c) => {
    const { bytes, layout } = buildZip(pthEntries(c.b));
    bytes.writeUInt32LE(0x7ffffff0, layout.entries[0]!.cdOffset + 42);
    return bytes;
  }, { file: 'model.pth', format: 'pth' }),
  w('pth-zip64-size-2^62', 'deflate bombs', 'reject', (c) => pthWith(c.b, { storage: (k) => (k === '0' ? { size: 2 ** 52, zip64: true } : {}) }), { file: 'model.pth', format: 'pth' }),
  w('pth-deflate-declares-4GiB', 'deflate bombs', 'reject', (c) => pthWith(c.b, { storage: (k, d) => (k === '0' ? { method: 8, size: 4 * 2 ** 30, zip64: true, stored: deflateOf(d) } : {}) }), { file: 'model.pth', format: 'pth' }),
  w('pth-deflate-size-lie', 'deflate bombs', 'reject', (c) => pthWith(c.b, { storage: (k, d) => (k === '0' ? { method: 8, stored: zerosDeflateRaw(1 << 20).stored, size: d.length } : {}) }), { file: 'model.pth', format: 'pth' }),
  w('pth-deflate-bomb-1GiB-storage', 'deflate bombs', 'reject', (c) => {
    const numel = 2 ** 28; // float32: 1 GiB
    const bomb = zerosDeflateRaw(numel * 4);
    const tensors: PthTensor[] = [{ name: 'big', storageKey: '0', storageType: 'FloatStorage', storageNumel: numel, offset: 0, size: [numel], stride: [1] }];
    return buildZip([
      { name: 'archive/data.pkl', data: pickleStateDict(tensors) },
      { name: 'archive/data/0', data: Buffer.alloc(0), method: 8, stored: bomb.stored, size: numel * 4, crc: bomb.crc },
    ]).bytes;
  }, { file: 'model.pth', format: 'pth', heavy: true }),
  w('pth-deflate-bomb-pickle-250MB', 'deflate bombs', 'reject', (c) => {
    const n = 250_000_000;
    const bomb = zerosDeflateRaw(n);
    return buildZip([{ name: 'archive/data.pkl', data: Buffer.alloc(0), method: 8, stored: bomb.stored, size: n, crc: bomb.crc }, ...pthEntries(c.b).slice(1)]).bytes;
  }, { file: 'model.pth', format: 'pth', heavy: true }),
  w('pth-pickle-5M-list', 'pickle bombs', 'reject', (c) => pthWith(c.b, { pickle: pickleBomb('list'), method: 8 }), { file: 'model.pth', format: 'pth' }),
  w('pth-pickle-5M-stack', 'pickle bombs', 'reject', (c) => pthWith(c.b, { pickle: pickleBomb('nones'), method: 8 }), { file: 'model.pth', format: 'pth' }),
  w('pth-pickle-4.5M-memo', 'pickle bombs', 'reject', (c) => pthWith(c.b, { pickle: pickleBomb('memo'), method: 8 }), { file: 'model.pth', format: 'pth', heavy: true }),
  w('pth-pickle-1M-nesting', 'pickle bombs', 'reject', (c) => pthWith(c.b, { pickle: pickleBomb('nesting'), method: 8 }), { file: 'model.pth', format: 'pth' }),
  w('pth-pickle-billion-laughs', 'pickle bombs', 'reject', (c) => pthWith(c.b, { pickle: pickleBomb('laughs') }), { file: 'model.pth', format: 'pth' }),
  w('pth-600k-tensor-objects', 'counts', 'reject', (c) => pthWith(c.b, { pickle: manyTensorsPickle(600_000, false), method: 8 }), { file: 'model.pth', format: 'pth', heavy: true }),
  w('pth-600k-keys-one-tensor', 'counts', 'either', (c) => pthWith(c.b, { pickle: manyTensorsPickle(600_000, true), method: 8 }), { file: 'model.pth', format: 'pth', heavy: true }),
  w('pth-pickle-long4-2GiB', 'pickle bombs', 'reject', (c) => pthWith(c.b, { pickle: Buffer.from([0x80, 2, 0x8b, 0xff, 0xff, 0xff, 0x7f, 0x2e]) }), { file: 'model.pth', format: 'pth' }),
  w('pth-pickle-binunicode8-huge', 'pickle bombs', 'reject', (c) => pthWith(c.b, { pickle: Buffer.concat([Buffer.from([0x80, 4, 0x8d]), Buffer.from([0, 0, 0, 0, 0, 0, 0, 0x10]), Buffer.from('.')]) }), { file: 'model.pth', format: 'pth' }),
  w('pth-pickle-protocol-9', 'pickle structure', 'reject', (c) => pthWith(c.b, { pickle: pickleStateDict(c.b.pthTensors, { protocol: 9 }) }), { file: 'model.pth', format: 'pth' }),
  w('pth-global-os-system', 'pickle globals', 'reject', (c) => pthWith(c.b, { pickle: new Pickler().proto(2).global('posix', 'system').mark().str('touch /tmp/pwned').tuple().reduce().stop().bytes() }), { file: 'model.pth', format: 'pth' }),
  w('pth-global-eval', 'pickle globals', 'reject', (c) => pthWith(c.b, { pickle: new Pickler().proto(2).global('builtins', 'eval').mark().str('1+1').tuple().reduce().stop().bytes() }), { file: 'model.pth', format: 'pth' }),
  w('pth-global-in-value', 'pickle globals', 'reject', (c) => pthWith(c.b, { pickle: pickleStateDict(c.b.pthTensors, { valueOverride: { name: 'conv.bias', emit: (p) => p.global('subprocess', 'check_output').mark().str('id').tuple().reduce() } }) }), { file: 'model.pth', format: 'pth' }),
  w('pth-storage-type-unknown', 'pickle storages', 'reject', (c) => pthWith(c.b, { pickle: pickleStateDict(tensorsWith(c.b, 'conv.bias', { storageType: 'ComplexFloatStorage' })) }), { file: 'model.pth', format: 'pth' }),
  w('pth-storage-numel-off-by-one', 'pickle storages', 'reject', (c) => pthWith(c.b, { pickle: pickleStateDict(tensorsWith(c.b, 'conv.bias', { storageNumel: 5, size: [5], stride: [1] })) }), { file: 'model.pth', format: 'pth' }),
  w('pth-storage-numel-huge', 'pickle storages', 'reject', (c) => pthWith(c.b, { pickle: pickleStateDict(tensorsWith(c.b, 'conv.bias', { storageNumel: 2 ** 40 })) }), { file: 'model.pth', format: 'pth' }),
  w('pth-storage-type-conflict', 'pickle storages', 'reject', (c) => pthWith(c.b, { pickle: pickleStateDict([...c.b.pthTensors, { name: 'alias', storageKey: '1', storageType: 'LongStorage', storageNumel: 2, offset: 0, size: [2], stride: [1] }]) }), { file: 'model.pth', format: 'pth' }),
  w('pth-view-offset-outside', 'pickle views', 'reject', (c) => pthWith(c.b, { pickle: pickleStateDict(tensorsWith(c.b, 'conv.bias', { offset: 1 })) }), { file: 'model.pth', format: 'pth' }),
  w('pth-view-stride-outside', 'pickle views', 'reject', (c) => pthWith(c.b, { pickle: pickleStateDict(tensorsWith(c.b, 'conv.weight', { stride: [12, 4, 2, 2] })) }), { file: 'model.pth', format: 'pth' }),
  w('pth-view-stride-huge', 'pickle views', 'reject', (c) => pthWith(c.b, { pickle: pickleStateDict(tensorsWith(c.b, 'conv.weight', { stride: [2 ** 50, 4, 2, 1] })) }), { file: 'model.pth', format: 'pth' }),
  w('pth-view-size-negative', 'pickle views', 'reject', (c) => pthWith(c.b, { pickle: pickleStateDict(tensorsWith(c.b, 'conv.bias', { size: [-4], stride: [1] })) }), { file: 'model.pth', format: 'pth' }),
  w('pth-view-size-stride-rank', 'pickle views', 'reject', (c) => pthWith(c.b, { pickle: pickleStateDict(tensorsWith(c.b, 'conv.bias', { size: [2, 2], stride: [1] })) }), { file: 'model.pth', format: 'pth' }),
  w('pth-bool-byte-2', 'tensor data', 'reject', (c) => {
    const mask = c.b.pthTensors.find((t) => t.name === 'mask')!;
    return pthWith(c.b, { storage: (k, d) => (k === mask.storageKey ? { data: Buffer.from(d).fill(2, 1, 2) } : {}) });
  }, { file: 'model.pth', format: 'pth' }),
  w('pth-value-int', 'pickle structure', 'reject', (c) => pthWith(c.b, { pickle: pickleStateDict(c.b.pthTensors, { valueOverride: { name: 'conv.bias', emit: (p) => p.int(7) } }) }), { file: 'model.pth', format: 'pth' }),
  w('pth-key-int', 'pickle structure', 'reject', (c) => {
    const p = new Pickler().proto(2).global('collections', 'OrderedDict').emptyTuple().reduce().mark().int(5);
    pickleTensor(p, c.b.pthTensors[0]!);
    return pthWith(c.b, { pickle: p.setitems().stop().bytes() });
  }, { file: 'model.pth', format: 'pth' }),
  w('pth-top-level-list', 'pickle structure', 'reject', (c) => {
    const p = new Pickler().proto(2).emptyList().mark();
    pickleTensor(p, c.b.pthTensors[0]!);
    return pthWith(c.b, { pickle: p.appends().stop().bytes() });
  }, { file: 'model.pth', format: 'pth' }),
  w('pth-no-stop', 'pickle structure', 'reject', (c) => { const pk = pickleStateDict(c.b.pthTensors); return pthWith(c.b, { pickle: pk.subarray(0, pk.length - 1) }); }, { file: 'model.pth', format: 'pth' }),
  w('pth-accept-baseline', 'neutral edits', 'accept', (c) => c.b.pth, { file: 'model.pth', format: 'pth', expected: pthExpected }),
  w('pth-accept-state_dict-key', 'neutral edits', 'accept', (c) => pthWith(c.b, { pickle: pickleStateDict(c.b.pthTensors, { wrap: 'state_dict' }) }), { file: 'model.pth', format: 'pth', expected: pthExpected }),
  w('pth-accept-model-key', 'neutral edits', 'accept', (c) => pthWith(c.b, { pickle: pickleStateDict(c.b.pthTensors, { wrap: 'model' }) }), { file: 'model.pt', format: 'pth', expected: pthExpected }),
  w('pth-accept-module-prefix', 'neutral edits', 'accept', (c) => pthWith(c.b, { pickle: pickleStateDict(c.b.pthTensors.map((t) => ({ ...t, name: `module.${t.name}` }))) }), { file: 'model.pth', format: 'pth', expected: pthExpected }),
  w('pth-accept-prefix-name', 'neutral edits', 'accept', (c) => pthWith(c.b, { prefix: 'resnet18_checkpoint' }), { file: 'model.pth', format: 'pth', expected: pthExpected }),
  w('pth-accept-no-byteorder', 'neutral edits', 'accept', (c) => pthWith(c.b, { byteorder: null }), { file: 'model.pth', format: 'pth', expected: pthExpected }),
  w('pth-accept-unaligned', 'neutral edits', 'accept', (c) => pthWith(c.b, {}, { align: 0 }), { file: 'model.pth', format: 'pth', expected: pthExpected }),
  w('pth-accept-zip64-end', 'neutral edits', 'accept', (c) => pthWith(c.b, {}, { zip64End: true }), { file: 'model.pth', format: 'pth', expected: pthExpected }),
  w('pth-accept-deflated', 'neutral edits', 'accept', (c) => pthWith(c.b, { method: 8 }), { file: 'model.pth', format: 'pth', expected: pthExpected }),
  w('pth-accept-parameters', 'neutral edits', 'accept', (c) => pthWith(c.b, { pickle: pickleStateDict(c.b.pthTensors.map((t) => ({ ...t, parameter: t.storageType === 'FloatStorage' }))) }), { file: 'model.pth', format: 'pth', expected: pthExpected }),
  w('pth-accept-extra-entries', 'neutral edits', 'accept', (c) => pthWith(c.b, { extra: [{ name: 'archive/.data/serialization_id', data: Buffer.from('1234567890') }, { name: 'archive/.data/version', data: Buffer.from('3\n') }] }), { file: 'model.pth', format: 'pth', expected: pthExpected }),
];

const deflateOf = (d: Buffer): Buffer => deflateRawSync(d);

const ST_NUMBERS = ['-1', '1.5', '0', '1e3', '99999999999999999999', '9007199254740993', '4', '8', '"4"', 'null', '[]', '12', '7', '1e308', '-0'];
const ST_DTYPES = ['F32', 'F64', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'C64', 'F8_E4M3', '', 'f32'];

const ST_CODES = ['F32', 'F64', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'];
const PTH_STORAGE: Record<string, string> = {
  F32: 'FloatStorage', F64: 'DoubleStorage', F16: 'HalfStorage', BF16: 'BFloat16Storage', I64: 'LongStorage', I32: 'IntStorage', I16: 'ShortStorage', I8: 'CharStorage', U8: 'ByteStorage', BOOL: 'BoolStorage',
};
const NAME_PARTS = ['layer1', '0', 'conv1', 'weight', 'bias', 'blocks', 'attn', 'qkv', 'norm', 'running_mean', 'num_batches_tracked', 'é', 'head', 'pos_embed', 'a b', '__proto__', 'constructor', 'x'.repeat(200)];

function randomBytes(r: Rng, n: number, code: string): Buffer {
  return Buffer.from(Array.from({ length: n }, () => (code === 'BOOL' ? r.int(2) : r.int(256))));
}

function randomName(r: Rng, used: Set<string>): string {
  for (;;) {
    const name = Array.from({ length: 1 + r.int(4) }, () => r.pick(NAME_PARTS)).join('.');
    if (!used.has(name) && name !== '__metadata__') {
      used.add(name);
      return name;
    }
  }
}

/** Names as the loader reports them: a wrapper prefix shared by every key is removed. */
function stripWrappers(names: string[]): Map<string, string> {
  let cur = names.map((n) => [n, n] as [string, string]);
  for (;;) {
    const p = ['module.', '_orig_mod.'].find((w) => cur.length > 0 && cur.every(([, k]) => k.startsWith(w)));
    if (!p) return new Map(cur.map(([orig, k]) => [orig, k]));
    cur = cur.map(([orig, k]) => [orig, k.slice(p.length)]);
  }
}

/** A random but valid safetensors file (any dtype, empty and scalar tensors, any data order and header layout). */
function randomValidSt(c: Ctx): { bytes: Buffer; expected: Map<string, ExpectedTensor> } {
  const r = c.r;
  const used = new Set<string>();
  const prefix = r.chance(0.15) ? r.pick(['module.', '_orig_mod.', 'module.module.']) : '';
  const tensors: StTensor[] = Array.from({ length: 1 + r.int(7) }, () => {
    const dtype = r.pick(ST_CODES);
    const shape = Array.from({ length: r.int(4) }, () => r.int(r.chance(0.1) ? 1 : 6));
    const numel = shape.reduce((a, x) => a * x, 1);
    return { name: prefix + randomName(r, used), dtype, shape, data: randomBytes(r, numel * ST_ITEM_OF[dtype]!, dtype) };
  });
  const order = tensors.map((t) => t.name);
  for (let i = order.length - 1; i > 0; i--) { const j = r.int(i + 1); [order[i], order[j]] = [order[j]!, order[i]!]; }
  const metadata = r.chance(0.3) ? null : { format: 'pt', ...(r.chance(0.5) ? { note: 'x'.repeat(r.int(600)), 'é': 'ü' } : {}) };
  const bytes = buildSafetensors(tensors, { dataOrder: order, metadata, pad: r.chance(0.7), render: r.chance(0.3) ? (h) => JSON.stringify(h, null, r.int(5)) : undefined });
  const names = stripWrappers(tensors.map((t) => t.name));
  return { bytes, expected: new Map(tensors.map((t) => [names.get(t.name)!, { dtype: t.dtype, shape: t.shape, bytes: t.data }])) };
}

/** A random but valid torch.save archive: storages of every type, views with offsets and strides (shared, transposed, broadcast). */
function randomValidPth(c: Ctx): { bytes: Buffer; expected: Map<string, ExpectedTensor> } {
  const r = c.r;
  const storages = Array.from({ length: 1 + r.int(4) }, (_, i) => {
    const code = r.pick(ST_CODES);
    const numel = r.int(40);
    return { key: String(i), code, numel, data: randomBytes(r, numel * ST_ITEM_OF[code]!, code) };
  });
  const used = new Set<string>();
  const prefix = r.chance(0.15) ? 'module.' : '';
  const tensors: PthTensor[] = [];
  const expected = new Map<string, ExpectedTensor>();
  for (let n = 1 + r.int(6); n > 0; n--) {
    const st = r.pick(storages);
    const item = ST_ITEM_OF[st.code]!;
    let size = Array.from({ length: r.int(4) }, () => r.int(5));
    let stride = contiguousStride(size);
    if (r.chance(0.3) && size.length >= 2) {
      // a transposed view
      [size[0], size[1]] = [size[1]!, size[0]!];
      [stride[0], stride[1]] = [stride[1]!, stride[0]!];
    }
    if (r.chance(0.15) && size.length >= 1) stride = stride.map((x, i) => (i === 0 ? 0 : x)); // broadcast along dim 0
    const numel = size.reduce((a, x) => a * x, 1);
    const span = numel === 0 ? 0 : 1 + size.reduce((a, x, i) => a + (x - 1) * stride[i]!, 0);
    if (span > st.numel) {
      size = [];
      stride = [];
    }
    const need = size.reduce((a, x) => a * x, 1) === 0 ? 0 : 1 + size.reduce((a, x, i) => a + (x - 1) * stride[i]!, 0);
    if (need > st.numel) continue; // an empty storage cannot hold even a scalar
    const offset = r.int(st.numel - need + 1);
    const name = prefix + randomName(r, used);
    tensors.push({ name, storageKey: st.key, storageType: PTH_STORAGE[st.code]!, storageNumel: st.numel, offset, size, stride, parameter: r.chance(0.3) && ['F32', 'F64', 'F16', 'BF16'].includes(st.code) });
    // the values a contiguous copy of the view holds
    const out: Buffer[] = [];
    const idx = size.map(() => 0);
    const total = size.reduce((a, x) => a * x, 1);
    for (let k = 0; k < total; k++) {
      const at = offset + idx.reduce((a, x, i) => a + x * stride[i]!, 0);
      out.push(st.data.subarray(at * item, (at + 1) * item));
      for (let d = size.length - 1; d >= 0; d--) {
        if (++idx[d]! < size[d]!) break;
        idx[d] = 0;
      }
    }
    expected.set(name, { dtype: st.code, shape: size, bytes: Buffer.concat(out) });
  }
  if (tensors.length === 0) return randomValidPth(c);
  const names = stripWrappers(tensors.map((t) => t.name));
  const prefixName = r.pick(['archive', 'model', 'resnet18_best', 'a-b_c']);
  const method = r.chance(0.2) ? 8 : 0;
  const entries: ZipIn[] = [{ name: `${prefixName}/data.pkl`, data: pickleStateDict(tensors, { wrap: r.chance(0.3) ? r.pick(['state_dict', 'model', 'model_state_dict']) : undefined }), method }];
  if (r.chance(0.7)) entries.push({ name: `${prefixName}/byteorder`, data: Buffer.from('little') });
  for (const st of storages) if (tensors.some((t) => t.storageKey === st.key)) entries.push({ name: `${prefixName}/data/${st.key}`, data: st.data, method });
  if (r.chance(0.5)) entries.push({ name: `${prefixName}/version`, data: Buffer.from('3\n') });
  for (let i = entries.length - 1; i > 1; i--) { const j = 1 + r.int(i); [entries[i], entries[j]] = [entries[j]!, entries[i]!]; }
  const bytes = buildZip(entries, { align: r.pick([0, 64]), zip64End: r.chance(0.3) }).bytes;
  return { bytes, expected: new Map([...expected].map(([k, v]) => [names.get(k)!, v])) };
}

function randomWeights(r: Rng): Def {
  if (r.chance(0.2)) {
    const pthValid = r.chance(0.5);
    return {
      name: pthValid ? 'pth-random-valid' : 'st-random-valid', category: 'random valid files', expect: 'accept',
      make: (c) => {
        const { bytes, expected } = pthValid ? randomValidPth(c) : randomValidSt(c);
        const path = c.put(pthValid ? 'model.pth' : 'model.safetensors', bytes);
        return { target: { kind: 'weights', path, format: pthValid ? 'pth' : 'st', expected }, culprits: [path] };
      },
    };
  }
  const pth = r.chance(0.45);
  if (!pth) {
    const kind = r.pick(['flip', 'flip-header', 'truncate', 'insdel', 'dup', 'header-number', 'header-dtype', 'header-len', 'json-edit', 'stack'] as const);
    const expect: Expect = kind === 'truncate' ? 'reject' : 'either';
    return w(`st-${kind}`, kind === 'truncate' ? 'truncation' : kind.startsWith('header') || kind === 'json-edit' ? 'header fuzz' : 'byte fuzz', expect, (c) => {
      const b = c.b.st;
      const s = splitSafetensors(b)!;
      const headerEnd = 8 + Buffer.byteLength(s.text);
      const one = (x: Buffer, k: typeof kind): Buffer => {
        switch (k) {
          case 'flip': return flipBytes(x, c.r);
          case 'flip-header': return flipBytes(x, c.r, 0, Math.min(headerEnd, x.length));
          case 'truncate': return x.subarray(0, c.r.int(x.length));
          case 'insdel': return insertOrDelete(x, c.r);
          case 'dup': return duplicateRange(x, c.r);
          case 'header-len': {
            const n = x.readBigUInt64LE(0);
            return headerLength(x, c.r.pick([0n, 1n, n - 1n, n + 1n, n + 8n, n - 8n, BigInt(c.r.int(2 ** 31)) * BigInt(c.r.int(2 ** 31))]));
          }
          case 'header-number': {
            const sp = splitSafetensors(x);
            if (!sp) return x;
            const runs = [...sp.text.matchAll(/\d+/g)];
            if (!runs.length) return x;
            const m = c.r.pick(runs);
            const v = c.r.chance(0.5) ? c.r.pick(ST_NUMBERS) : String(c.r.int(300));
            return withStHeader(Buffer.from(sp.text.slice(0, m.index) + v + sp.text.slice(m.index! + m[0].length)), sp.data, false);
          }
          case 'header-dtype': {
            const sp = splitSafetensors(x);
            if (!sp) return x;
            return withStHeader(Buffer.from(sp.text.replace(/"dtype":"[^"]*"/g, (d) => (c.r.chance(0.4) ? `"dtype":"${c.r.pick(ST_DTYPES)}"` : d))), sp.data, false);
          }
          case 'json-edit': {
            const sp = splitSafetensors(x);
            if (!sp) return x;
            try {
              return withStHeader(Buffer.from(fuzzJson(sp.text, c.r).text), sp.data);
            } catch {
              return x;
            }
          }
          case 'stack': return one(one(x, c.r.pick(['flip', 'header-number', 'header-dtype', 'insdel', 'dup'] as const)), c.r.pick(['flip', 'header-number', 'header-dtype', 'dup'] as const));
        }
      };
      const out = one(b, kind);
      // A truncation to the full length is no truncation.
      return kind === 'truncate' && out.length === b.length ? out.subarray(0, out.length - 1) : out;
    });
  }
  const kind = r.pick(['flip', 'flip-pickle', 'flip-data', 'flip-directory', 'truncate', 'insdel', 'dup', 'pickle-int', 'pickle-string', 'stack'] as const);
  const expect: Expect = kind === 'truncate' ? 'reject' : 'either';
  return w(`pth-${kind}`, kind === 'truncate' ? 'truncation' : kind.startsWith('pickle') || kind === 'flip-pickle' ? 'pickle fuzz' : 'byte fuzz', expect, (c) => {
    const { bytes, layout } = buildZip(pthEntries(c.b));
    const pk = layout.entries[0]!;
    const one = (x: Buffer, k: typeof kind): Buffer => {
      switch (k) {
        case 'flip': return flipBytes(x, c.r);
        case 'flip-pickle': return flipBytes(x, c.r, pk.dataOffset, pk.dataOffset + pk.storedLength);
        case 'flip-data': {
          const e = c.r.pick(layout.entries.filter((en) => en.name.includes('/data/')));
          return flipBytes(x, c.r, e.dataOffset, e.dataOffset + e.storedLength);
        }
        case 'flip-directory': return flipBytes(x, c.r, layout.cdOffset, x.length);
        case 'truncate': return x.subarray(0, c.r.int(x.length));
        case 'insdel': return insertOrDelete(x, c.r);
        case 'dup': return duplicateRange(x, c.r);
        case 'pickle-int': case 'pickle-string': {
          // Rebuild with one tensor's geometry or key changed to a random value.
          const t = c.r.pick(c.b.pthTensors);
          const patch: Partial<PthTensor> = k === 'pickle-int'
            ? c.r.pick<Partial<PthTensor>>([
                { offset: c.r.pick([1, 2, 47, 2 ** 31 - 1, -1]) }, { storageNumel: c.r.pick([0, 1, t.storageNumel + 1, 2 ** 31 - 1]) },
                { size: t.size.map(() => c.r.pick([0, 1, 2, 3, 4, 100, 2 ** 31 - 1])) }, { stride: t.stride.map(() => c.r.pick([0, 1, 2, 3, 12, 2 ** 30])) },
              ])
            : c.r.pick<Partial<PthTensor>>([{ storageKey: c.r.pick(['9', '', '../0', '0', '1']) }, { storageType: c.r.pick(['FloatStorage', 'LongStorage', 'BoolStorage', 'HalfStorage', 'UntypedStorage', 'Storage']) }, { name: c.r.pick(['', 'module.x', '__proto__', 'conv.weight']) }]);
          return buildZip(pthEntries(c.b, { pickle: pickleStateDict(tensorsWith(c.b, t.name, patch)) })).bytes;
        }
        case 'stack': return one(one(x, c.r.pick(['flip-pickle', 'flip-data', 'dup'] as const)), c.r.pick(['flip', 'flip-directory', 'insdel'] as const));
      }
    };
    const out = one(bytes, kind);
    return kind === 'truncate' && out.length === bytes.length ? out.subarray(0, out.length - 1) : out;
  }, { file: 'model.pth', format: 'pth' });
}

// ---------------------------------------------------------------------------------------------
// Images (the predict path: ImageFiles + DataLoader)

const img = (name: string, category: string, expect: Expect, file: string, bytes: (c: Ctx) => Buffer, o: { ref?: ImageRef; heavy?: boolean } = {}): Def[] =>
  (['fail', 'skip'] as const).map((mode) => ({
    name: `${name}/${mode}`, category, expect, heavy: o.heavy,
    make: (c: Ctx) => {
      const path = c.put(file, bytes(c));
      const good = c.put('good.png', c.b.images.png);
      return {
        target: { kind: 'images', mode, files: [good, path], known: { [path]: { expect, ref: o.ref }, [good]: { expect: 'accept', ref: 'png' } } },
        culprits: [path],
      };
    },
  }));

const imgSpecial = (kind: Special): Def[] =>
  (['fail', 'skip'] as const).map((mode) => ({
    name: `image-${kind}/${mode}`, category: 'non-regular file', expect: 'reject' as const,
    make: (c: Ctx) => {
      const path = join(c.dir, 'photo.jpg');
      const culprits = makeSpecial(kind, path);
      const good = c.put('good.png', c.b.images.png);
      return { target: { kind: 'images' as const, mode, files: [good, path], known: { [path]: { expect: 'reject' as const }, [good]: { expect: 'accept' as const, ref: 'png' as const } } }, culprits };
    },
  }));

let pngBombCache: Buffer | null = null;
const pngBomb = () => (pngBombCache ??= pngZeroBomb(12_000, 12_000));

const IMAGES_FIXED: Def[] = [
  ...SPECIALS.flatMap(imgSpecial),
  ...(['fail', 'skip'] as const).map((mode): Def => ({
    name: `image-symlink-to-good/${mode}`, category: 'non-regular file', expect: 'accept',
    make: (c) => {
      const real = c.put('real.jpg', c.b.images.jpeg);
      const path = join(c.dir, 'link.jpg');
      symlinkSync(real, path);
      return { target: { kind: 'images', mode, files: [path], known: { [path]: { expect: 'accept', ref: 'jpeg' } } }, culprits: [path] };
    },
  })),
  ...img('image-empty', 'wrong content', 'reject', 'empty.jpg', () => Buffer.alloc(0)),
  ...img('image-text-as-jpg', 'wrong content', 'reject', 'notes.jpg', () => Buffer.from('just some text\nrenamed to .jpg\n')),
  ...img('image-html-as-png', 'wrong content', 'reject', 'page.png', () => Buffer.from('<!DOCTYPE html><html><body>Access denied</body></html>')),
  ...img('image-random-bytes', 'wrong content', 'reject', 'noise.webp', (c) => Buffer.from(Array.from({ length: 4096 }, (_, i) => (i < 4 ? 0x11 : c.r.int(256))))),
  ...img('image-bmp', 'wrong content', 'either', 'old.bmp', () => bmp2x2()),
  ...img('image-truncated-png-half', 'truncation', 'reject', 'half.png', (c) => c.b.images.png.subarray(0, c.b.images.png.length >> 1)),
  ...img('image-truncated-jpeg-half', 'truncation', 'reject', 'half.jpg', (c) => c.b.images.jpeg.subarray(0, c.b.images.jpeg.length >> 1)),
  ...img('image-truncated-webp-half', 'truncation', 'reject', 'half.webp', (c) => c.b.images.webp.subarray(0, c.b.images.webp.length >> 1)),
  ...img('image-png-header-only', 'truncation', 'reject', 'header.png', (c) => c.b.images.png.subarray(0, 33)),
  ...img('image-png-100000x100000', 'huge dimensions', 'reject', 'huge.png', (c) => pngWithSize(c.b.images.png, 100_000, 100_000)),
  ...img('image-png-2^31-wide', 'huge dimensions', 'reject', 'wide.png', (c) => pngWithSize(c.b.images.png, 2 ** 31 - 1, 1)),
  ...img('image-png-0x0', 'huge dimensions', 'reject', 'zero.png', (c) => pngWithSize(c.b.images.png, 0, 0)),
  ...img('image-png-huge-bad-crc', 'huge dimensions', 'reject', 'crc.png', (c) => pngWithSize(c.b.images.png, 60_000, 60_000, false)),
  ...img('image-jpeg-65500x65500', 'huge dimensions', 'reject', 'huge.jpg', (c) => jpegWithSize(c.b.images.jpeg, 65_500, 65_500)),
  ...img('image-jpeg-0-height', 'huge dimensions', 'reject', 'flat.jpg', (c) => jpegWithSize(c.b.images.jpeg, 40, 0)),
  ...img('image-webp-16383x16383', 'huge dimensions', 'reject', 'huge.webp', (c) => webpWithSize(c.b.images.webp, 16_383, 16_383)),
  ...img('image-png-bomb-12000x12000', 'decompression bombs', 'reject', 'bomb.png', () => pngBomb(), { heavy: true }),
  ...img('image-png-at-pixel-limit-10000x10000', 'decompression bombs', 'either', 'limit.png', () => pngZeroBomb(10_000, 10_000), { heavy: true }),
  ...img('image-png-ztxt-bomb', 'decompression bombs', 'either', 'ztxt.png', (c) => pngInsertChunk(c.b.images.png, pngChunk('zTXt', Buffer.concat([Buffer.from('Comment\u0000\u0000', 'latin1'), zlibZeros(200 << 20)])))),
  ...img('image-gif-65535x65535', 'huge dimensions', 'reject', 'huge.gif', (c) => gifWithSize(c.b.images.gif, 65_535, 65_535)),
  ...(['fail', 'skip'] as const).map((mode): Def => ({
    name: `image-300MB-sparse/${mode}`, category: 'huge files', expect: 'reject',
    make: (c) => {
      const path = c.put('big.png', c.b.images.png);
      truncateSync(path, 300 << 20);
      const good = c.put('good.png', c.b.images.png);
      return { target: { kind: 'images', mode, files: [good, path], known: { [path]: { expect: 'reject' }, [good]: { expect: 'accept', ref: 'png' } } }, culprits: [path] };
    },
  })),
  ...img('image-accept-png-text-chunk', 'neutral edits', 'accept', 'text.png', (c) => pngInsertChunk(c.b.images.png, pngChunk('tEXt', Buffer.from('Comment\u0000made by a camera', 'latin1'))), { ref: 'png' }),
  ...img('image-accept-png-private-chunk', 'neutral edits', 'accept', 'private.png', (c) => pngInsertChunk(c.b.images.png, pngChunk('prVt', Buffer.alloc(300, 7))), { ref: 'png' }),
  ...img('image-accept-jpeg-comment', 'neutral edits', 'accept', 'comment.jpg', (c) => jpegInsertSegment(c.b.images.jpeg, 0xfe, Buffer.from('a comment')), { ref: 'jpeg' }),
  ...img('image-accept-jpeg-app15', 'neutral edits', 'accept', 'app.jpg', (c) => jpegInsertSegment(c.b.images.jpeg, 0xef, Buffer.alloc(1000, 0x41)), { ref: 'jpeg' }),
  ...img('image-accept-png-named-jpg', 'neutral edits', 'accept', 'actually-png.jpg', (c) => c.b.images.png, { ref: 'png' }),
  ...img('image-accept-upper-extension', 'neutral edits', 'accept', 'PHOTO.PNG', (c) => c.b.images.png, { ref: 'png' }),
  ...img('image-accept-spaces-unicode-name', 'neutral edits', 'accept', 'été photo #1 (copy).webp', (c) => c.b.images.webp, { ref: 'webp' }),
  ...img('image-accept-grayscale', 'neutral edits', 'accept', 'gray.png', (c) => c.b.images.gray, { ref: 'gray' }),
];

/** A zlib stream (header, raw deflate, adler-32) of `n` zero bytes. */
function zlibZeros(n: number): Buffer {
  const { stored } = zerosDeflateRaw(n);
  const adler = Buffer.alloc(4);
  adler.writeUInt32BE((((n % 65521) << 16) | 1) >>> 0, 0);
  return Buffer.concat([Buffer.from([0x78, 0xda]), stored, adler]);
}

/** A GIF whose logical screen and first image descriptor declare another size. */
function gifWithSize(gif: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(gif);
  out.writeUInt16LE(width, 6);
  out.writeUInt16LE(height, 8);
  // skip the global colour table, then extensions, to the image descriptor (0x2c)
  let p = 13 + (out[10]! & 0x80 ? 3 * 2 ** ((out[10]! & 7) + 1) : 0);
  while (p < out.length && out[p] === 0x21) {
    p += 2;
    while (p < out.length && out[p] !== 0) p += out[p]! + 1;
    p++;
  }
  if (out[p] === 0x2c) {
    out.writeUInt16LE(width, p + 5);
    out.writeUInt16LE(height, p + 7);
  }
  return out;
}

function bmp2x2(): Buffer {
  const b = Buffer.alloc(70);
  b.write('BM', 0, 'latin1');
  b.writeUInt32LE(70, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(2, 18);
  b.writeInt32LE(2, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(24, 28);
  b.writeUInt32LE(16, 34);
  b.fill(0x80, 54);
  return b;
}

const IMAGE_EXT: Record<ImageRef, string> = { png: 'png', jpeg: 'jpg', webp: 'webp', gray: 'png' };

/** A random but valid image: any format sharp writes, 1–4 channels, 8 or 16 bits, odd sizes and orientations. */
async function randomValidImage(c: Ctx): Promise<{ bytes: Buffer; ext: string }> {
  const r = c.r;
  const tall = r.chance(0.1);
  const width = tall ? 1 + r.int(3) : 1 + r.int(r.pick([8, 64, 400]));
  const height = tall ? 1 + r.int(2000) : 1 + r.int(r.pick([8, 64, 400]));
  const channels = r.pick([1, 2, 3, 4] as const);
  const px = Buffer.from(Array.from({ length: width * height * channels }, () => r.int(256)));
  let img = sharp(px, { raw: { width, height, channels } });
  const format = r.pick(['png', 'png16', 'jpeg', 'jpeg-progressive', 'webp', 'webp-lossless', 'gif', 'tiff'] as const);
  if (format === 'png16') img = img.toColourspace(channels <= 2 ? 'grey16' : 'rgb16');
  if (r.chance(0.2) && format.startsWith('jpeg')) img = img.withMetadata({ orientation: 1 + r.int(8) });
  switch (format) {
    case 'png': case 'png16': return { bytes: await img.png({ compressionLevel: r.int(10) }).toBuffer(), ext: 'png' };
    case 'jpeg': return { bytes: await img.jpeg({ quality: 1 + r.int(100), chromaSubsampling: r.pick(['4:2:0', '4:4:4']) }).toBuffer(), ext: 'jpg' };
    case 'jpeg-progressive': return { bytes: await img.jpeg({ progressive: true }).toBuffer(), ext: 'jpeg' };
    case 'webp': return { bytes: await img.webp({ quality: 1 + r.int(100) }).toBuffer(), ext: 'webp' };
    case 'webp-lossless': return { bytes: await img.webp({ lossless: true }).toBuffer(), ext: 'webp' };
    case 'gif': return { bytes: await img.gif().toBuffer(), ext: 'gif' };
    case 'tiff': return { bytes: await img.tiff({ compression: r.pick(['none', 'lzw', 'deflate'] as const) }).toBuffer(), ext: r.pick(['tif', 'tiff']) };
  }
}

function randomImage(r: Rng): Def {
  if (r.chance(0.2)) {
    const mode = r.pick(['fail', 'skip'] as const);
    return {
      name: `image-random-valid/${mode}`, category: 'random valid files', expect: 'accept',
      make: async (c) => {
        const { bytes, ext } = await randomValidImage(c);
        const path = c.put(`photo.${ext}`, bytes);
        return { target: { kind: 'images', mode, files: [path], known: { [path]: { expect: 'accept' } } }, culprits: [path] };
      },
    };
  }
  const ref = r.pick(['png', 'jpeg', 'webp', 'gray'] as const);
  const kind = r.pick(['flip', 'flip-header', 'truncate', 'insdel', 'dup', 'stack', 'bigger', 'chunk'] as const);
  const mode = r.pick(['fail', 'skip'] as const);
  // A JPEG declaring more pixels than its scan holds decodes with libjpeg's "premature end of data
  // segment" warning, which the loader accepts on purpose (failOn 'truncated': real photo
  // collections are full of benign libjpeg warnings), so only PNG and WebP must refuse it.
  const expect: Expect = kind === 'bigger' ? (ref === 'jpeg' ? 'either' : 'reject') : kind === 'chunk' ? 'accept' : 'either';
  const category = kind === 'bigger' ? 'huge dimensions' : kind === 'chunk' ? 'neutral edits' : kind === 'truncate' ? 'truncation' : 'byte fuzz';
  return {
    name: `image-${ref}-${kind}/${mode}`, category, expect,
    make: (c) => {
      const base = c.b.images[ref];
      const one = (x: Buffer, k: typeof kind): Buffer => {
        switch (k) {
          case 'flip': return flipBytes(x, c.r);
          case 'flip-header': return flipBytes(x, c.r, 0, Math.min(64, x.length));
          case 'truncate': return truncate(x, c.r);
          case 'insdel': return insertOrDelete(x, c.r);
          case 'dup': return duplicateRange(x, c.r);
          case 'stack': return one(one(x, c.r.pick(['flip', 'dup', 'insdel'] as const)), c.r.pick(['flip', 'dup', 'truncate'] as const));
          case 'bigger': {
            // Larger than the data: at least one side grows, the other does not shrink.
            // JPEG and WebP code 8/16-pixel blocks, so a few more pixels may still be covered by
            // the data: grow one side by at least 40 (a PNG row holds exactly its pixels).
            const W = 40 + (ref === 'png' || ref === 'gray' ? 1 : 40) + c.r.int(c.r.pick([100, 10_000, 70_000]));
            const H = 40 + c.r.int(c.r.pick([10, 10_000, 70_000]));
            if (ref === 'jpeg') return jpegWithSize(x, Math.min(W, 65_535), Math.min(H, 65_535));
            if (ref === 'webp') return webpWithSize(x, Math.min(W, 16_383), Math.min(H, 16_383));
            return pngWithSize(x, W, H);
          }
          case 'chunk': {
            if (ref === 'jpeg') return jpegInsertSegment(x, 0xe0 + 3 + c.r.int(12), Buffer.from(Array.from({ length: 1 + c.r.int(2000) }, () => c.r.int(256))));
            if (ref === 'webp') return x; // RIFF: left as is (a neutral no-op)
            const name = String.fromCharCode(97 + c.r.int(26), 97 + c.r.int(26), 65 + c.r.int(26), 97 + c.r.int(26)); // ancillary, private, safe-to-copy
            return pngInsertChunk(x, pngChunk(name, Buffer.from(Array.from({ length: c.r.int(3000) }, () => c.r.int(256)))));
          }
        }
      };
      const path = c.put(`sample.${IMAGE_EXT[ref]}`, one(base, kind));
      const good = c.put('good.png', c.b.images.png);
      return { target: { kind: 'images', mode, files: [path, good], known: { [path]: { expect, ref }, [good]: { expect: 'accept', ref: 'png' } } }, culprits: [path] };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Manifests: delta.json (loadTuned), adapter_config.json (loadPeftLora), config.json (runOptions)

type ManifestKind = 'delta' | 'peft' | 'config';
const MANIFEST_FILE: Record<ManifestKind, string> = { delta: 'delta.json', peft: 'adapter_config.json', config: 'config.json' };
const TENSOR_FILE: Record<ManifestKind, string | null> = { delta: 'delta.safetensors', peft: 'adapter_model.safetensors', config: null };

/** Writes a manifest case's folder: the manifest text (or a special file) and its tensors. */
function manifestCase(c: Ctx, kind: ManifestKind, o: { json?: string; st?: Buffer; special?: Special; stSpecial?: Special } = {}): { target: Target; culprits: string[] } {
  const dir = join(c.dir, kind === 'config' ? 'run' : kind === 'delta' ? 'best' : 'adapter');
  mkdirSync(dir);
  const base = kind === 'delta' ? c.b.delta : kind === 'peft' ? c.b.peft : c.b.config;
  const mpath = join(dir, MANIFEST_FILE[kind]);
  const culprits = [mpath, dir];
  if (o.special) culprits.push(...makeSpecial(o.special, mpath));
  else writeFileSync(mpath, o.json ?? base.json);
  const tfile = TENSOR_FILE[kind];
  if (tfile) {
    const tpath = join(dir, tfile);
    culprits.push(tpath);
    if (o.stSpecial) culprits.push(...makeSpecial(o.stSpecial, tpath));
    else writeFileSync(tpath, o.st ?? (base as unknown as { st: Buffer }).st);
  }
  return { target: { kind, dir }, culprits };
}

const m = (kind: ManifestKind, name: string, category: string, expect: Expect, json: (o: Json, c: Ctx) => string | void, extra: { heavy?: boolean } = {}): Def => ({
  name: `${kind}-${name}`, category: `${kind}: ${category}`, expect, heavy: extra.heavy,
  make: (c) => {
    const base = kind === 'delta' ? c.b.delta.json : kind === 'peft' ? c.b.peft.json : c.b.config.json;
    const obj = JSON.parse(base);
    const text = json(obj, c);
    return manifestCase(c, kind, { json: typeof text === 'string' ? text : renderJson(obj) });
  },
});

/** A field set to a value (undefined deletes it); raw placeholders for NaN and friends. */
const set = (path: string, value: unknown, raw?: string) => (o: Json) => {
  setPath(o, path, raw ? '__RAW__' : value);
  return renderJson(o, raw ? { __RAW__: raw } : {});
};

/** Field edits that make each manifest invalid or inconsistent (each is a 'reject' case). */
const BAD_FIELDS: Record<ManifestKind, [string, unknown, string?][]> = {
  delta: [
    ['format', 'deltatune.delta.v2'], ['format', undefined], ['formatVersion', 99], ['formatVersion', '1'], ['formatVersion', 0], ['formatVersion', null],
    ['method', 'monalisa'], ['method', 5], ['method', undefined], ['method', ''], ['model', 5], ['model', undefined], ['model', 'resnet9000'], ['model', 'resnet18'], ['model', 'vit_b_16'], ['method', 'mona'],
    ['numClasses', 0], ['numClasses', -1], ['numClasses', 1.5], ['numClasses', '3'], ['numClasses', null], ['numClasses', 1e9], ['numClasses', 1e308], ['numClasses', 4], ['numClasses', 2],
    ['numClasses', undefined], ['numClasses', 0, '1e999'],
    ['classes', null], ['classes', 'a,b,c'], ['classes', ['a', null, 'c']], ['classes', ['a', 'a', 'c']], ['classes', ['a', '', 'c']], ['classes', ['a', 'b']], ['classes', ['a', 'b', 'c', 'd']],
    ['classes', undefined], ['classes', [1, 2, 3]], ['classes', { 0: 'a', 1: 'b', 2: 'c' }],
    ['preprocess', undefined], ['preprocess', null], ['preprocess', 'imagenet'], ['preprocess.size', -5], ['preprocess.size', '32'], ['preprocess.size', 1e9], ['preprocess.size', 0, 'NaN'],
    ['preprocess.mean', [0.5]], ['preprocess.mean', ['a', 'b', 'c']], ['preprocess.std', [0, 0, 0]], ['preprocess.std', 0, '[1e999, 1, 1]'],
    ['base', undefined], ['base', null], ['base', 'vit.safetensors'], ['base.sha256', 'xyz'], ['base.sha256', '0'.repeat(64)], ['base.sha256', null], ['base.weightsFile', 5],
    ['base.path', 0, '"/nonexistent/dir/base.safetensors"'],
    ['config', undefined], ['config', null], ['config', [1, 2]], ['config.alpha', 0, 'NaN'], ['config.alpha', 'NaN'], ['config.alpha', 1e30], ['config.alpha', -1], ['config.alpha', null], ['config.alpha', '1'],
    ['config.rank', 0], ['config.rank', -8], ['config.rank', 1e9], ['config.rank', 63], ['config.rank', '64'], ['config.rank', 2.5],
    ['config.dropout', 2], ['config.dropout', -0.5], ['config.targets', 'nothing\\.matches'], ['config.targets', []], ['config.targets', 5], ['config.targets', 0, deep(10_000)],
    ['tensors', 'x'], ['bytes', 'x'], ['createdAt', 5],
  ],
  peft: [
    ['peft_type', 'IA3'], ['peft_type', undefined], ['peft_type', 5], ['r', 0], ['r', -1], ['r', '8'], ['r', null], ['r', 1e9], ['r', 4], ['r', 1.5],
    ['lora_alpha', 0, 'NaN'], ['lora_alpha', 'NaN'], ['lora_alpha', 1e30], ['lora_alpha', -1], ['lora_alpha', null], ['lora_alpha', '8'],
    ['lora_dropout', 2], ['lora_dropout', -0.5], ['lora_dropout', '0.1'], ['target_modules', []], ['target_modules', ['nope']], ['target_modules', 5], ['target_modules', [1, 2]],
    ['target_modules', null], ['target_modules', 0, deep(10_000)], ['bias', 'all'], ['bias', 'lora_only'], ['rank_pattern', { 'layer1.0.conv1': 4 }], ['alpha_pattern', { 'layer1.0.conv1': 2 }],
    ['use_dora', true], ['use_rslora', true],
  ],
  config: [
    ['tune', undefined], ['tune', null], ['tune', []], ['tune', 'resnet18 lora'], ['tune.model', 5], ['tune.model', ''], ['tune.model', null], ['tune.model', undefined],
    ['tune.method', 5], ['tune.method', null], ['tune.method', undefined], ['tune.data', 5], ['tune.data', ''], ['tune.data', undefined], ['tune.out', 7],
    ['tune.epochs', 0], ['tune.epochs', -1], ['tune.epochs', 1.5], ['tune.epochs', '3'], ['tune.epochs', null], ['tune.epochs', 1e308], ['tune.epochs', undefined], ['tune.epochs', 0, 'NaN'],
    ['tune.lr', -1], ['tune.lr', '1e-3'], ['tune.lr', null], ['tune.lr', undefined], ['tune.lr', 0, '1e999'],
    ['tune.batchSize', 0], ['tune.batchSize', -4], ['tune.batchSize', 1.5], ['tune.batchSize', '32'], ['tune.batchSize', 1e9],
    ['tune.imageSize', 3], ['tune.imageSize', '32'], ['tune.imageSize', 1e6], ['tune.imageSize', -32], ['tune.seed', -1], ['tune.seed', 1.5], ['tune.seed', 2 ** 53],
    ['tune.optimizer', 'adam'], ['tune.optimizer', 5], ['tune.augment', 'heavy'], ['tune.onBadImage', 'ignore'], ['tune.valSplit', 1.5], ['tune.valSplit', -0.1],
    ['tune.momentum', 2], ['tune.labelSmoothing', 1], ['tune.labelSmoothing', -0.1], ['tune.workers', 0], ['tune.workers', 1e6], ['tune.warmupEpochs', -1], ['tune.clipGrad', 'x'],
    ['tune.methodOptions', 'rank=8'], ['tune.channelsLast', 'yes'],
    ['method', 'mona'], ['model', 'resnet50'], ['classes', [1, 2, 3]], ['classes', 'abc'],
  ],
};

/** Field edits whose effect is not settled by the format (unknown options, informational fields): 'either'. */
const ODD_FIELDS: Record<ManifestKind, [string, unknown, string?][]> = {
  delta: [['config.bogus', 1], ['library', undefined], ['createdAt', undefined], ['tensors', 999], ['bytes', 0], ['note', 0, deep(50_000)], ['preprocess.cropPct', 2], ['preprocess.std', [-1, -1, -1]]],
  peft: [['r', undefined], ['lora_alpha', undefined], ['fan_in_fan_out', true], ['layers_to_transform', [0]], ['modules_to_save', ['fc2']], ['task_type', 'CAUSAL_LM'], ['target_modules', 'layer1\\.0\\.conv1'], ['extra', 0, deep(50_000)]],
  // runOptions puts the run folder itself in 'out', so a missing 'out' need not be an error
  config: [['tune.out', undefined], ['tune.model', 'resnet9000'], ['tune.method', 'monalisa'], ['tune.futureFlag', true], ['tune.methodOptions', { alpha: 'NaN' }], ['tune.methodOptions', 0, `{"x": ${deep(50_000)}}`], ['fingerprints', null], ['tune.weights', '/nonexistent/weights.safetensors']],
};

function fieldName(path: string, value: unknown, raw?: string): string {
  const v = raw !== undefined ? (raw.length > 12 ? `${raw.slice(0, 6)}…` : raw) : value === undefined ? 'removed' : JSON.stringify(value)?.slice(0, 14);
  return `${path}=${v}`;
}

function manifestCategory(path: string, value: unknown): string {
  if (value === undefined) return 'missing field';
  const top = path.split('.')[0]!;
  if (['numClasses', 'classes', 'r', 'lora_alpha', 'rank', 'alpha'].includes(top) || /alpha|rank|numClasses|classes/.test(path)) return 'inconsistent/invalid values';
  return 'wrong field values';
}

const manifestSpecials = (kind: ManifestKind): Def[] => [
  ...SPECIALS.map((s): Def => ({ name: `${kind}-${MANIFEST_FILE[kind]}-${s}`, category: 'non-regular file', expect: 'reject', make: (c) => manifestCase(c, kind, { special: s }) })),
  ...(TENSOR_FILE[kind] ? (['fifo', 'devzero', 'directory', 'missing'] as const).map((s): Def => ({ name: `${kind}-${TENSOR_FILE[kind]}-${s}`, category: 'non-regular file', expect: 'reject', make: (c) => manifestCase(c, kind, { stSpecial: s }) })) : []),
];

/** The tensor file of a delta or adapter with one tensor changed. */
function tensorEdit(kind: 'delta' | 'peft', name: string, category: string, expect: Expect, edit: (header: Json, data: Buffer) => { header?: Json; data?: Buffer }): Def {
  return {
    name: `${kind}-${name}`, category: `${kind}: ${category}`, expect,
    make: (c) => {
      const s = splitSafetensors((kind === 'delta' ? c.b.delta : c.b.peft).st)!;
      const header = JSON.parse(s.text);
      const data = Buffer.from(s.data);
      const out = edit(header, data);
      return manifestCase(c, kind, { st: withStHeader(Buffer.from(JSON.stringify(out.header ?? header)), out.data ?? data) });
    },
  };
}

/** The first float32 tensor whose name matches. */
const firstF32 = (h: Json, re: RegExp): string => Object.keys(h).find((k) => k !== '__metadata__' && re.test(k) && h[k].dtype === 'F32')!;

const tensorEdits = (kind: 'delta' | 'peft'): Def[] => [
  tensorEdit(kind, 'tensor-nan', 'non-finite tensors', 'reject', (h, d) => { const k = firstF32(h, /lora_B/); d.writeFloatLE(NaN, h[k].data_offsets[0]); return {}; }),
  tensorEdit(kind, 'tensor-inf', 'non-finite tensors', 'reject', (h, d) => { const k = firstF32(h, /lora_A/); d.writeFloatLE(-Infinity, h[k].data_offsets[0] + 4); return {}; }),
  tensorEdit(kind, 'head-nan', 'non-finite tensors', 'reject', (h, d) => { const k = firstF32(h, /head|fc/); d.writeFloatLE(NaN, h[k].data_offsets[1] - 4); return {}; }),
  tensorEdit(kind, 'tensor-flattened', 'tensor layout', 'reject', (h) => { const k = firstF32(h, /lora_A/); h[k].shape = [h[k].shape.reduce((a: number, x: number) => a * x, 1)]; return {}; }),
  tensorEdit(kind, 'tensor-transposed', 'tensor layout', 'reject', (h) => { const k = firstF32(h, /lora_B/); const s = h[k].shape; h[k].shape = [...s].reverse(); if (s.join() === [...s].reverse().join()) h[k].shape = [s[0] * 2, s[1] / 2, ...s.slice(2)]; return {}; }),
  tensorEdit(kind, 'tensor-missing', 'tensor layout', 'reject', (h) => { delete h[firstF32(h, /lora_B/)]; return {}; }),
  tensorEdit(kind, 'tensor-renamed', 'tensor layout', 'reject', (h) => { const k = firstF32(h, /lora_A/); h[k.replace('lora_A', 'lora_Z')] = h[k]; delete h[k]; return {}; }),
  tensorEdit(kind, 'tensor-extra', 'tensor layout', 'reject', (h) => { const k = firstF32(h, /lora_A/); h[`${k}.extra`] = { dtype: 'F32', shape: [0], data_offsets: [0, 0] }; return {}; }),
  tensorEdit(kind, 'head-wrong-rows', 'tensor layout', 'reject', (h) => { const k = Object.keys(h).find((x) => /(head|fc)\.weight$/.test(x))!; const s = h[k].shape; h[k].shape = [s[0] * 2, s[1] / 2]; return {}; }),
  tensorEdit(kind, 'tensor-as-f64', 'tensor dtypes', 'either', (h, d) => {
    // Same values, widened to float64 (exactly representable): a converting loader gives the same result.
    const k = firstF32(h, /lora_A/);
    const [a, z] = h[k].data_offsets as [number, number];
    const wide = Buffer.alloc((z - a) * 2);
    for (let i = 0; i < (z - a) / 4; i++) wide.writeDoubleLE(d.readFloatLE(a + 4 * i), 8 * i);
    const keys = Object.keys(h).filter((x) => x !== '__metadata__');
    const parts: Buffer[] = [];
    let at = 0;
    for (const key of keys) {
      const [b0, b1] = h[key].data_offsets as [number, number];
      const bytes = key === k ? wide : d.subarray(b0, b1);
      h[key] = { ...h[key], dtype: key === k ? 'F64' : h[key].dtype, data_offsets: [at, at + bytes.length] };
      parts.push(bytes);
      at += bytes.length;
    }
    return { data: Buffer.concat(parts) };
  }),
  tensorEdit(kind, 'tensor-as-i64-bits', 'tensor dtypes', 'either', (h) => { const k = firstF32(h, /lora_A/); h[k].dtype = 'I32'; return {}; }),
  tensorEdit(kind, 'tensor-as-bool', 'tensor dtypes', 'reject', (h) => { const k = firstF32(h, /lora_A/); h[k].dtype = 'BOOL'; h[k].shape = [h[k].data_offsets[1] - h[k].data_offsets[0]]; return {}; }),
];

function manifestFixed(kind: ManifestKind): Def[] {
  const defs: Def[] = [...manifestSpecials(kind)];
  for (const [path, value, raw] of BAD_FIELDS[kind]) defs.push(m(kind, fieldName(path, value, raw), manifestCategory(path, value), 'reject', set(path, value, raw)));
  for (const [path, value, raw] of ODD_FIELDS[kind]) defs.push(m(kind, fieldName(path, value, raw), 'unsettled fields', 'either', set(path, value, raw)));
  defs.push(
    m(kind, 'invalid-json', 'invalid JSON', 'reject', (_o, c) => (kind === 'delta' ? c.b.delta : kind === 'peft' ? c.b.peft : c.b.config).json.slice(0, 60)),
    m(kind, 'empty-file', 'invalid JSON', 'reject', () => ''),
    m(kind, 'json-null', 'invalid JSON', 'reject', () => 'null\n'),
    m(kind, 'json-array', 'invalid JSON', 'reject', () => '[]\n'),
    m(kind, 'json-number', 'invalid JSON', 'reject', () => '42\n'),
    m(kind, 'json-bom', 'invalid JSON', 'either', (o) => `\ufeff${renderJson(o)}`),
    m(kind, 'json-deep-100k', 'invalid JSON', 'reject', () => deep(100_000)),
    m(kind, 'json-comment', 'invalid JSON', 'reject', (o) => `// edited by hand\n${renderJson(o)}`),
    m(kind, 'json-trailing-comma', 'invalid JSON', 'reject', (o) => renderJson(o).replace(/\n}\n$/, ',\n}\n')),
    m(kind, 'json-20MB', 'invalid JSON', 'reject', (o) => renderJson(o).replace(/\n}\n$/, `,\n"padding": "${'x'.repeat(20 << 20)}"\n}\n`), { heavy: true }),
    m(kind, 'json-duplicate-key', 'unsettled fields', 'either', (o) => renderJson(o).replace(/^{/, '{\n  "duplicate": 1,\n  "duplicate": 2,')),
  );
  for (const n of NEUTRAL_JSON) {
    defs.push(m(kind, `accept-${n.name}`, 'neutral edits', 'accept', (_o, c) => n.apply((kind === 'delta' ? c.b.delta : kind === 'peft' ? c.b.peft : c.b.config).json, c.r)));
  }
  if (kind === 'delta') {
    defs.push(...tensorEdits('delta'));
    defs.push(
      m('delta', 'accept-extra-top-level-field', 'neutral edits', 'accept', set('note', 'trained on a Tuesday')),
      m('delta', 'numClasses=100000-with-100000-classes', 'inconsistent/invalid values', 'reject', (o) => renderJson({ ...o, numClasses: 100_000, classes: Array.from({ length: 100_000 }, (_, i) => `class${i}`) })),
      {
        name: 'delta-base-path-fifo', category: 'delta: base weights', expect: 'reject',
        make: (c) => {
          const fifo = join(c.dir, 'base.fifo');
          makeSpecial('fifo', fifo);
          const o = JSON.parse(c.b.delta.json);
          o.base.path = fifo;
          const r = manifestCase(c, 'delta', { json: renderJson(o) });
          return { ...r, culprits: [...r.culprits, fifo] };
        },
      },
      ...(['devzero', 'directory', 'loop'] as const).map((s): Def => ({
        name: `delta-base-path-${s}`, category: 'delta: base weights', expect: 'reject',
        make: (c) => {
          const p = join(c.dir, `base-${s}.safetensors`);
          const culprits = makeSpecial(s, p);
          const o = JSON.parse(c.b.delta.json);
          o.base.path = p;
          const r = manifestCase(c, 'delta', { json: renderJson(o) });
          return { ...r, culprits: [...r.culprits, ...culprits] };
        },
      })),
      {
        name: 'delta-base-path-text-file', category: 'delta: base weights', expect: 'reject',
        make: (c) => {
          const p = c.put('base.safetensors', 'not weights\n');
          const o = JSON.parse(c.b.delta.json);
          o.base.path = p;
          const r = manifestCase(c, 'delta', { json: renderJson(o) });
          return { ...r, culprits: [...r.culprits, p] };
        },
      },
      {
        name: 'delta-base-path-truncated-copy', category: 'delta: base weights', expect: 'reject',
        make: (c) => {
          const p = join(c.dir, 'base.safetensors');
          symlinkSync(join(c.b.dir, 'truncated-base.safetensors'), p);
          const o = JSON.parse(c.b.delta.json);
          o.base.path = p;
          const r = manifestCase(c, 'delta', { json: renderJson(o) });
          return { ...r, culprits: [...r.culprits, p, join(c.b.dir, 'truncated-base.safetensors')] };
        },
      },
    );
  }
  if (kind === 'peft') {
    defs.push(...tensorEdits('peft'));
    defs.push(
      m('peft', 'accept-extra-peft-keys', 'neutral edits', 'accept', (o) => renderJson({ ...o, use_dora: false, use_rslora: false, megatron_config: null, layer_replication: null, auto_mapping: null, loftq_config: {} })),
      m('peft', 'accept-targets-as-regex', 'neutral edits', 'accept', (o) => renderJson({ ...o, target_modules: `(${(o.target_modules as string[]).map((t) => t.replace(/\./g, '\\.')).join('|')})` })),
      {
        name: 'peft-accept-default-adapter-keys', category: 'peft: neutral edits', expect: 'accept',
        make: (c) => {
          const s = splitSafetensors(c.b.peft.st)!;
          const text = s.text.trimEnd().replace(/\.(lora_[AB])\.weight"/g, '.$1.default.weight"').replace(/"base_model\.model\.fc\.(weight|bias)"/g, '"base_model.model.fc.modules_to_save.default.$1"');
          return manifestCase(c, 'peft', { st: withStHeader(Buffer.from(text), s.data) });
        },
      },
    );
  }
  if (kind === 'config') {
    defs.push(m('config', 'relative-data-path', 'unsettled fields', 'either', set('tune.data', 'data/list.csv')));
  }
  return defs;
}

const MANIFESTS_FIXED: Def[] = [...manifestFixed('delta'), ...manifestFixed('peft'), ...manifestFixed('config')];

const CLASS_NAMES = ['cat', 'dog', 'Zebra', 'é', '猫', '🐕', 'a b', ' padded ', '0', '1', 'null', 'constructor', '__proto__', 'x'.repeat(300), 'tab\there', 'new\nline', 'quote"d'];

/** A manifest with every optional or free-form field set to other valid values (and reformatted): it must load as such. */
function randomValidManifest(c: Ctx, kind: ManifestKind): { target: Target; culprits: string[] } {
  const r = c.r;
  const base = kind === 'delta' ? c.b.delta : kind === 'peft' ? c.b.peft : c.b.config;
  const o = JSON.parse(base.json);
  const expected: ManifestExpected = {};
  if (kind === 'delta') {
    const names = new Set<string>();
    while (names.size < o.numClasses) names.add(r.pick(CLASS_NAMES) + (r.chance(0.3) ? String(r.int(100)) : ''));
    o.classes = [...names];
    expected.classes = o.classes;
    const pre: Record<string, unknown> = { size: 8 + r.int(1017), cropPct: r.pick([1, 0.875, 0.5, 0.05 + r.next() * 0.95]) };
    if (r.chance(0.5)) pre.mean = [r.next(), r.next(), r.next()];
    if (r.chance(0.5)) pre.std = [0.01 + r.next(), 0.01 + r.next(), 0.01 + r.next()];
    Object.assign(o.preprocess, pre);
    expected.preprocess = pre;
    if (r.chance(0.5)) o.createdAt = r.pick(['', 'yesterday', new Date(r.int(2 ** 40)).toISOString()]);
    if (r.chance(0.5)) o.library = r.pick(['0.0.1', '99.0.0-beta', '']);
  } else if (kind === 'peft') {
    o.lora_dropout = r.chance(0.5) ? 0 : r.next() * 0.9;
    o.inference_mode = r.chance(0.5);
    o.revision = r.pick([null, 'main', 'v1.0']);
    o.base_model_name_or_path = r.pick(['resnet18', 'timm/resnet18.a1_in1k', '/models/resnet18', '']);
    o.init_lora_weights = r.pick([true, false, 'gaussian']);
    if (r.chance(0.3)) o.target_modules = [...o.target_modules].reverse();
  } else {
    const t = o.tune;
    const fields: [string, () => unknown][] = [
      ['batchSize', () => 1 + r.int(65536)], ['imageSize', () => 8 + r.int(4089)], ['epochs', () => 1 + r.int(10000)], ['lr', () => r.pick([0, 1e-6, r.next(), 10])],
      ['seed', () => r.int(2 ** 31)], ['optimizer', () => r.pick(['adamw', 'sgd'])], ['augment', () => r.pick(['default', 'none'])], ['onBadImage', () => r.pick(['skip', 'fail'])],
      ['valSplit', () => r.pick([0, 0.5, r.next() * 0.99])], ['momentum', () => r.pick([0, 1, r.next()])], ['labelSmoothing', () => r.next() * 0.99], ['workers', () => 1 + r.int(256)],
      ['warmupEpochs', () => r.next() * 5], ['clipGrad', () => r.next() * 10], ['channelsLast', () => r.chance(0.5)], ['weightDecay', () => r.next()],
      ['patience', () => r.int(10001)], ['accumulate', () => 1 + r.int(64)], ['mixup', () => r.next()], ['frozenPrecision', () => r.pick(['float32', 'bfloat16'])],
    ];
    for (const [k, v] of fields) if (r.chance(0.4)) t[k] = v();
    expected.options = { ...t };
  }
  const neutral = r.pick(NEUTRAL_JSON);
  const text = neutral.apply(JSON.stringify(o, null, 2) + '\n', r);
  const made = manifestCase(c, kind, { json: text });
  return { ...made, target: { ...(made.target as { kind: ManifestKind; dir: string }), expected } };
}

function randomManifest(r: Rng): Def {
  const kind = r.pick(['delta', 'delta', 'peft', 'config'] as const);
  if (r.chance(0.15)) return { name: `${kind}-random-valid`, category: `${kind}: random valid files`, expect: 'accept', make: (c) => randomValidManifest(c, kind) };
  const fam = r.pick(['flip', 'field-fuzz', 'field-fuzz', 'bad-pair', 'bad-pair', 'neutral', 'truncate', 'tensor-flip'] as const);
  const baseOf = (c: Ctx) => (kind === 'delta' ? c.b.delta : kind === 'peft' ? c.b.peft : c.b.config);
  if (fam === 'bad-pair') {
    // One invalid field plus any other edit (another invalid one, or a neutral rewrite): still invalid.
    const [p1, v1, r1] = r.pick(BAD_FIELDS[kind]);
    const second = r.chance(0.5) ? r.pick(BAD_FIELDS[kind]) : null;
    const neutral = r.pick(NEUTRAL_JSON);
    return {
      name: `${kind}-${fieldName(p1, v1, r1)}+${second ? fieldName(second[0], second[1], second[2]) : neutral.name}`, category: `${kind}: ${manifestCategory(p1, v1)}`, expect: 'reject',
      make: (c) => {
        const o = JSON.parse(baseOf(c).json);
        let text: string;
        if (second && !(second[0].startsWith(`${p1}.`) || p1.startsWith(`${second[0]}.`))) {
          setPath(o, second[0], second[2] ? '__RAW2__' : second[1]);
          setPath(o, p1, r1 ? '__RAW__' : v1);
          text = renderJson(o, { ...(r1 ? { __RAW__: r1 } : {}), ...(second[2] ? { __RAW2__: second[2] } : {}) });
        } else {
          setPath(o, p1, r1 ? '__RAW__' : v1);
          text = renderJson(o, r1 ? { __RAW__: r1 } : {});
          // neutral rewrites re-parse; raw placeholders (NaN, deep nesting) would not survive that
          if (!r1) text = neutral.apply(text, c.r);
        }
        return manifestCase(c, kind, { json: text });
      },
    };
  }
  if (fam === 'neutral') {
    const a = r.pick(NEUTRAL_JSON);
    const b = r.pick(NEUTRAL_JSON);
    return { name: `${kind}-accept-${a.name}+${b.name}`, category: `${kind}: neutral edits`, expect: 'accept', make: (c) => manifestCase(c, kind, { json: b.apply(a.apply(baseOf(c).json, c.r), c.r) }) };
  }
  if (fam === 'truncate') {
    return {
      name: `${kind}-truncated`, category: `${kind}: invalid JSON`, expect: 'reject',
      make: (c) => {
        const t = baseOf(c).json;
        const cut = c.r.int(t.lastIndexOf('}'));
        return manifestCase(c, kind, { json: t.slice(0, cut) });
      },
    };
  }
  if (fam === 'tensor-flip' && kind !== 'config') {
    return {
      name: `${kind}-tensor-file-fuzz`, category: `${kind}: tensor file fuzz`, expect: 'either',
      make: (c) => {
        const st = baseOf(c) as unknown as { st: Buffer };
        const mut = c.r.pick([flipBytes, insertOrDelete, duplicateRange] as const);
        return manifestCase(c, kind, { st: mut(st.st, c.r) });
      },
    };
  }
  if (fam === 'flip') {
    return { name: `${kind}-json-byte-fuzz`, category: `${kind}: byte fuzz`, expect: 'either', make: (c) => manifestCase(c, kind, { json: flipBytes(Buffer.from(baseOf(c).json), c.r).toString('latin1') }) };
  }
  return {
    name: `${kind}-json-field-fuzz`, category: `${kind}: field fuzz`, expect: 'either',
    make: (c) => manifestCase(c, kind, { json: fuzzJson(baseOf(c).json, c.r).text }),
  };
}

// ---------------------------------------------------------------------------------------------
// CSV lists (CsvList + DataLoader over its images)

const CSV_IMAGES: [string, ImageRef][] = [['img0.png', 'png'], ['img1.jpg', 'jpeg'], ['img2.png', 'gray'], ['img3.webp', 'webp']];
const CSV_LABELS = [0, 1, 2, 1];
const CSV_BASE = ['path,label', ...CSV_IMAGES.map(([f], i) => `${f},${CSV_LABELS[i]}`)].join('\n') + '\n';

/** Writes the four images a CSV case lists; returns their known expectations. */
function csvImages(c: Ctx, sub = ''): Record<string, KnownFile> {
  const known: Record<string, KnownFile> = {};
  if (sub) mkdirSync(join(c.dir, sub), { recursive: true });
  for (const [f, ref] of CSV_IMAGES) known[c.put(join(sub, f), c.b.images[ref])] = { expect: 'accept', ref };
  return known;
}

const baselineList = (c: Ctx, sub = '') => ({ classes: ['0', '1', '2'], rows: CSV_IMAGES.map(([f], i) => ({ path: resolve(c.dir, sub, f), label: CSV_LABELS[i]! })) });

const csv = (name: string, category: string, listExpect: Expect, text: (c: Ctx) => string | Buffer, o: { expected?: (c: Ctx) => { classes: string[]; rows: { path: string; label: number }[] }; heavy?: boolean; modes?: ('fail' | 'skip')[] } = {}): Def[] =>
  (o.modes ?? (['fail', 'skip'] as const)).map((mode) => ({
    name: `${name}/${mode}`, category, expect: listExpect, heavy: o.heavy,
    make: (c: Ctx) => {
      const known = csvImages(c);
      const path = c.put('list.csv', text(c));
      return { target: { kind: 'csv', mode, path, known, listExpect, expectedList: listExpect === 'accept' ? (o.expected ?? baselineList)(c) : undefined }, culprits: [path] };
    },
  }));

/** A CSV whose second row points at a bad file (the list is fine; the image is not). */
const csvBadRow = (kind: Special | 'text' | 'nul'): Def[] =>
  (['fail', 'skip'] as const).map((mode) => ({
    name: `csv-row-${kind}/${mode}`, category: 'rows naming bad files', expect: 'reject' as const,
    make: (c: Ctx) => {
      const known = csvImages(c);
      const bad = kind === 'nul' ? join(c.dir, 'img\u0000x.png') : join(c.dir, 'bad.jpg');
      let culprits: string[];
      if (kind === 'text') culprits = [c.put('bad.jpg', 'not an image\n')];
      else if (kind === 'nul') culprits = [bad, join(c.dir, 'img')];
      else culprits = makeSpecial(kind, bad);
      known[bad] = { expect: 'reject' };
      const text = ['path,label', 'img0.png,0', `${kind === 'nul' ? 'img\u0000x.png' : 'bad.jpg'},1`, 'img2.png,2', ''].join('\n');
      const path = c.put('list.csv', text);
      return { target: { kind: 'csv' as const, mode, path, known, listExpect: 'either' as const }, culprits: [...culprits, path] };
    },
  }));

const csvSpecial = (kind: Special): Def => ({
  name: `csv-file-${kind}`, category: 'non-regular file', expect: 'reject',
  make: (c) => {
    const known = csvImages(c);
    const path = join(c.dir, 'list.csv');
    return { target: { kind: 'csv', mode: 'fail', path, known, listExpect: 'reject' }, culprits: makeSpecial(kind, path) };
  },
});

const CSV_FIXED: Def[] = [
  ...SPECIALS.map(csvSpecial),
  ...(['fifo', 'devzero', 'urandom', 'directory', 'loop', 'missing', 'text', 'nul'] as const).flatMap(csvBadRow),
  ...csv('csv-label-20000000', 'huge labels', 'reject', () => `${CSV_BASE}img0.png,20000000\n`),
  ...csv('csv-label-2^53', 'huge labels', 'reject', () => `${CSV_BASE}img0.png,9007199254740993\n`),
  ...csv('csv-label-1e400-digits', 'huge labels', 'reject', () => `${CSV_BASE}img0.png,${'9'.repeat(400)}\n`),
  ...csv('csv-1e6-classes', 'huge lists', 'reject', () => ['path,label', ...Array.from({ length: 1_000_000 }, (_, i) => `img${i % 4}.${i % 4 === 1 ? 'jpg' : i % 4 === 3 ? 'webp' : 'png'},class${i}`)].join('\n') + '\n', { heavy: true, modes: ['fail'] }),
  {
    name: 'csv-11M-rows', category: 'huge lists', expect: 'reject', heavy: true,
    make: (c) => {
      const known = csvImages(c);
      const path = join(c.dir, 'list.csv');
      const chunk = Buffer.alloc(1_000_000 * 11, 'img0.png,0\n');
      for (let i = 0; i < 11; i++) appendFileSync(path, chunk);
      return { target: { kind: 'csv', mode: 'fail', path, known, listExpect: 'reject' }, culprits: [path] };
    },
  },
  {
    name: 'csv-300MB-sparse', category: 'huge lists', expect: 'reject',
    make: (c) => {
      const known = csvImages(c);
      const path = c.put('list.csv', CSV_BASE);
      truncateSync(path, 300 << 20);
      return { target: { kind: 'csv', mode: 'fail', path, known, listExpect: 'reject' }, culprits: [path] };
    },
  },
  ...csv('csv-unterminated-quote', 'malformed quoting', 'reject', () => `${CSV_BASE}"img0.png,0\n`),
  ...csv('csv-text-after-quote', 'malformed quoting', 'reject', () => `${CSV_BASE}"img0.png"x,0\n`),
  // RFC 4180 allows a newline inside quotes; a line-based reader may refuse it (and the file does not exist)
  ...csv('csv-quote-spanning-lines', 'malformed quoting', 'either', () => `${CSV_BASE}"img0\n.png",0\n`),
  ...csv('csv-three-fields', 'malformed rows', 'reject', () => `${CSV_BASE}img0.png,0,extra\n`),
  ...csv('csv-one-field', 'malformed rows', 'reject', () => `${CSV_BASE}img0.png\n`),
  ...csv('csv-empty-label', 'malformed rows', 'reject', () => `${CSV_BASE}img0.png,\n`),
  ...csv('csv-empty-path', 'malformed rows', 'reject', () => `${CSV_BASE},0\n`),
  ...csv('csv-header-only', 'malformed rows', 'reject', () => 'path,label\n'),
  ...csv('csv-empty-file', 'malformed rows', 'reject', () => ''),
  ...csv('csv-binary', 'malformed rows', 'reject', (c) => Buffer.from(Array.from({ length: 2000 }, () => c.r.int(32)))),
  ...csv('csv-huge-line', 'malformed rows', 'reject', () => `${CSV_BASE}${'x'.repeat(50 << 20)}\n`, { heavy: true, modes: ['fail'] }),
  ...csv('csv-negative-label', 'odd labels', 'either', () => `${CSV_BASE}img0.png,-1\n`),
  ...csv('csv-float-label', 'odd labels', 'either', () => `${CSV_BASE}img0.png,1.5\n`),
  ...csv('csv-accept-no-header', 'neutral edits', 'accept', () => CSV_BASE.split('\n').slice(1).join('\n')),
  ...csv('csv-accept-crlf', 'neutral edits', 'accept', () => CSV_BASE.replace(/\n/g, '\r\n')),
  ...csv('csv-accept-bom', 'neutral edits', 'accept', () => `\ufeff${CSV_BASE}`),
  ...csv('csv-accept-blank-lines', 'neutral edits', 'accept', () => `\n${CSV_BASE.replace(/\n/g, '\n\n')}\n\n`),
  ...csv('csv-accept-no-final-newline', 'neutral edits', 'accept', () => CSV_BASE.trimEnd()),
  ...csv('csv-accept-spaces', 'neutral edits', 'accept', () => CSV_BASE.replace(/,/g, ' , ').replace(/\n/g, ' \n')),
  ...csv('csv-accept-quoted', 'neutral edits', 'accept', () => CSV_BASE.split('\n').map((l) => (l ? l.split(',').map((f) => `"${f}"`).join(',') : l)).join('\n')),
  ...csv('csv-accept-header-case', 'neutral edits', 'accept', () => CSV_BASE.replace('path,label', 'Path,Label')),
  ...csv('csv-accept-absolute-paths', 'neutral edits', 'accept', (c) => CSV_BASE.replace(/^img/gm, `${c.dir}/img`)),
  ...csv('csv-accept-dot-slash', 'neutral edits', 'accept', () => CSV_BASE.replace(/^img/gm, './img')),
  ...csv('csv-accept-shuffled', 'neutral edits', 'accept', () => ['path,label', ...[3, 1, 0, 2].map((i) => `${CSV_IMAGES[i]![0]},${CSV_LABELS[i]}`)].join('\n') + '\n', {
    expected: (c) => ({ classes: ['0', '1', '2'], rows: [3, 1, 0, 2].map((i) => ({ path: resolve(c.dir, CSV_IMAGES[i]![0]), label: CSV_LABELS[i]! })) }),
  }),
  ...csv('csv-accept-duplicate-rows', 'neutral edits', 'accept', () => `${CSV_BASE}img0.png,0\n`, {
    expected: (c) => { const b = baselineList(c); return { classes: b.classes, rows: [...b.rows, b.rows[0]!] }; },
  }),
  ...csv('csv-accept-names', 'neutral edits', 'accept', () => CSV_BASE.replace(/,0$/gm, ',cat').replace(/,1$/gm, ',dog').replace(/,2$/gm, ',emu'), {
    expected: (c) => ({ classes: ['cat', 'dog', 'emu'], rows: baselineList(c).rows }),
  }),
  ...csv('csv-accept-label-50000', 'neutral edits', 'accept', () => `${CSV_BASE}img0.png,50000\n`, {
    expected: (c) => { const b = baselineList(c); return { classes: Array.from({ length: 50_001 }, (_, i) => String(i)), rows: [...b.rows, { path: b.rows[0]!.path, label: 50_000 }] }; },
  }),
  ...(['fail', 'skip'] as const).map((mode): Def => ({
    name: `csv-accept-comma-and-quote-names/${mode}`, category: 'neutral edits', expect: 'accept',
    make: (c) => {
      const known = csvImages(c);
      const a = c.put('a,b.png', c.b.images.png);
      const q = c.put('say "hi".jpg', c.b.images.jpeg);
      known[a] = { expect: 'accept', ref: 'png' };
      known[q] = { expect: 'accept', ref: 'jpeg' };
      const path = c.put('list.csv', 'path,label\n"a,b.png",0\n"say ""hi"".jpg",1\n');
      return { target: { kind: 'csv', mode, path, known, listExpect: 'accept', expectedList: { classes: ['0', '1'], rows: [{ path: a, label: 0 }, { path: q, label: 1 }] } }, culprits: [path] };
    },
  })),
  ...(['fail', 'skip'] as const).map((mode): Def => ({
    name: `csv-accept-symlinked-list/${mode}`, category: 'neutral edits', expect: 'accept',
    make: (c) => {
      const known = csvImages(c);
      const real = c.put('real.csv', CSV_BASE);
      const path = join(c.dir, 'list.csv');
      symlinkSync(real, path);
      return { target: { kind: 'csv', mode, path, known, listExpect: 'accept', expectedList: baselineList(c) }, culprits: [path, real] };
    },
  })),
];

const CSV_FILE_NAMES = ['a.png', 'b.jpg', 'sub/c.webp', 'x,y.png', 'say "hi".png', 'sp ace.jpg', 'ünï cödé.png', '#hash.png', "it's.png", 'deep/er/d.png'];
const CSV_NUMERIC = ['0', '1', '2', '3', '7', '12'];
const CSV_NAMES = ['cat', 'dog', 'Zebra', 'ant', 'émeu', 'a b', '1x', 'x1', 'NaN', 'null', 'label', 'PATH'];

/** Quotes a CSV field when it must be (or, at random, when it need not be). */
function csvField(v: string, r: Rng): string {
  const must = /[",]/.test(v) || v !== v.trim();
  if (must || r.chance(0.2)) return `"${v.replace(/"/g, '""')}"`;
  return r.chance(0.2) ? ` ${v} ` : v;
}

/** A random but valid CSV list over real images; returns its text and what CsvList must make of it. */
function randomValidCsv(c: Ctx): { text: string; known: Record<string, KnownFile>; expected: { classes: string[]; rows: { path: string; label: number }[] } } {
  const r = c.r;
  const refs = ['png', 'jpeg', 'webp', 'gray'] as const;
  const files: { rel: string; ref: ImageRef }[] = [];
  const known: Record<string, KnownFile> = {};
  for (const rel of CSV_FILE_NAMES) {
    if (!r.chance(0.5) && files.length > 0) continue;
    const ref = r.pick(refs);
    mkdirSync(join(c.dir, rel, '..'), { recursive: true });
    known[c.put(rel, c.b.images[ref])] = { expect: 'accept', ref };
    files.push({ rel, ref });
  }
  const numeric = r.chance(0.5);
  const rows = Array.from({ length: 1 + r.int(10) }, () => ({ file: r.pick(files), label: numeric ? r.pick(CSV_NUMERIC) : r.pick(CSV_NAMES) }));
  const classes = numeric
    ? Array.from({ length: Math.max(...rows.map((x) => Number(x.label))) + 1 }, (_, i) => String(i))
    : [...new Set(rows.map((x) => x.label))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const nl = r.chance(0.3) ? '\r\n' : '\n';
  const lines = rows.map((x) => `${csvField(r.chance(0.2) ? join(c.dir, x.file.rel) : x.file.rel, r)},${csvField(x.label, r)}`);
  // a header only where the first row cannot be mistaken for one (names 'label'/'PATH' are data)
  if (r.chance(0.5)) lines.unshift(r.pick(['path,label', 'Path,Label', 'PATH , LABEL']));
  else if (rows[0]!.file.rel.toLowerCase() === 'path' && rows[0]!.label.toLowerCase() === 'label') lines.unshift('path,label');
  if (r.chance(0.2)) lines.splice(r.int(lines.length + 1), 0, '', '  ');
  const text = (r.chance(0.1) ? '\ufeff' : '') + lines.join(nl) + (r.chance(0.7) ? nl : '');
  return { text, known, expected: { classes, rows: rows.map((x) => ({ path: resolve(c.dir, x.file.rel), label: classes.indexOf(x.label) })) } };
}

function randomCsv(r: Rng): Def {
  if (r.chance(0.25)) {
    const mode = r.pick(['fail', 'skip'] as const);
    return {
      name: `csv-random-valid/${mode}`, category: 'random valid files', expect: 'accept',
      make: (c) => {
        const { text, known, expected } = randomValidCsv(c);
        const path = c.put('list.csv', text);
        return { target: { kind: 'csv', mode, path, known, listExpect: 'accept', expectedList: expected }, culprits: [path] };
      },
    };
  }
  const kind = r.pick(['flip', 'insdel', 'dup', 'line-dup', 'line-drop', 'label', 'quote', 'truncate', 'crlf', 'shuffle'] as const);
  const mode = r.pick(['fail', 'skip'] as const);
  const neutral = kind === 'crlf' || kind === 'shuffle';
  return {
    name: `csv-${kind}/${mode}`, category: neutral ? 'neutral edits' : kind === 'label' ? 'odd labels' : kind === 'quote' ? 'malformed quoting' : 'byte fuzz', expect: neutral ? 'accept' : 'either',
    make: (c) => {
      const known = csvImages(c);
      const lines = CSV_BASE.trimEnd().split('\n');
      let text: string | Buffer;
      let expectedList: { classes: string[]; rows: { path: string; label: number }[] } | undefined;
      switch (kind) {
        case 'flip': text = flipBytes(Buffer.from(CSV_BASE), c.r); break;
        case 'insdel': text = insertOrDelete(Buffer.from(CSV_BASE), c.r); break;
        case 'dup': text = duplicateRange(Buffer.from(CSV_BASE), c.r); break;
        case 'truncate': text = truncate(Buffer.from(CSV_BASE), c.r); break;
        case 'line-dup': { const i = 1 + c.r.int(lines.length - 1); lines.splice(1 + c.r.int(lines.length - 1), 0, lines[i]!); text = lines.join('\n'); break; }
        case 'line-drop': lines.splice(1 + c.r.int(lines.length - 1), 1); text = lines.join('\n'); break;
        case 'label': {
          const i = 1 + c.r.int(lines.length - 1);
          lines[i] = `${lines[i]!.split(',')[0]},${c.r.pick(['-1', '1.5', ' 2 ', '02', '0x1', '+1', 'NaN', '1e2', 'cat', '３', '99999', '0 0'])}`;
          text = lines.join('\n');
          break;
        }
        case 'quote': {
          const i = 1 + c.r.int(lines.length - 1);
          const at = c.r.int(lines[i]!.length + 1);
          lines[i] = lines[i]!.slice(0, at) + c.r.pick(['"', '""', '"x"', ',', '\r', '\t']) + lines[i]!.slice(at);
          text = lines.join('\n');
          break;
        }
        case 'crlf': text = CSV_BASE.replace(/\n/g, '\r\n'); expectedList = baselineList(c); break;
        case 'shuffle': {
          const order = [0, 1, 2, 3];
          for (let i = 3; i > 0; i--) { const j = c.r.int(i + 1); [order[i], order[j]] = [order[j]!, order[i]!]; }
          text = ['path,label', ...order.map((i) => `${CSV_IMAGES[i]![0]},${CSV_LABELS[i]}`)].join('\n') + '\n';
          expectedList = { classes: ['0', '1', '2'], rows: order.map((i) => ({ path: resolve(c.dir, CSV_IMAGES[i]![0]), label: CSV_LABELS[i]! })) };
          break;
        }
      }
      const path = c.put('list.csv', text);
      return { target: { kind: 'csv', mode, path, known, listExpect: neutral ? 'accept' : 'either', expectedList }, culprits: [path] };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The catalog

const FIXED: Record<Reader, Def[]> = { weights: WEIGHTS_FIXED, images: IMAGES_FIXED, manifests: MANIFESTS_FIXED, csv: CSV_FIXED };
const RANDOM: Record<Reader, (r: Rng) => Def> = { weights: randomWeights, images: randomImage, manifests: randomManifest, csv: randomCsv };

export function fixedCount(reader: Reader): number {
  return FIXED[reader].length;
}

function def(reader: Reader, index: number, seed: number): Def {
  const fixed = FIXED[reader];
  if (index < fixed.length) return fixed[index]!;
  return RANDOM[reader](rng(hashSeed('def', seed, reader, index)));
}

export function parseId(id: string): { reader: Reader; index: number } {
  const [reader, index] = id.split(':') as [Reader, string];
  if (!READERS.includes(reader) || !/^\d+$/.test(index)) throw new Error(`bad case id '${id}'`);
  return { reader, index: Number(index) };
}

/** A case's name, category and expectation, without building it. */
export function describeCase(id: string, seed: number): CaseSpec {
  const { reader, index } = parseId(id);
  const d = def(reader, index, seed);
  const isFixed = index < FIXED[reader].length;
  return { id, reader, category: d.category, name: isFixed ? d.name : `${d.name}#${index}`, expect: d.expect, heavy: d.heavy };
}

/** Builds a case's files under `dir` (which must exist and be empty). */
export async function buildCase(id: string, seed: number, b: Baselines, dir: string): Promise<BuiltCase> {
  const spec = describeCase(id, seed);
  const { reader, index } = parseId(id);
  const d = def(reader, index, seed);
  const c: Ctx = {
    b, dir, r: rng(hashSeed('make', seed, reader, index)),
    put(name, bytes) {
      const path = join(dir, name);
      writeFileSync(path, bytes);
      return path;
    },
  };
  const { target, culprits } = await d.make(c);
  return { spec, target, culprits };
}

/** Case ids of a bench run: `perReader` cases of each reader, interleaved so workers share the load. */
export function benchIds(perReader: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < perReader; i++) for (const r of READERS) out.push(`${r}:${i}`);
  return out;
}

/**
 * The quick sample: per reader, fixed cases round-robin over categories (so each category shows
 * up) skipping heavy ones, topped up with random ones, `perReader` in all.
 */
export function sampleIds(perReader: number, seed: number): string[] {
  const out: string[] = [];
  for (const reader of READERS) {
    const byCategory = new Map<string, number[]>();
    FIXED[reader].forEach((d, i) => {
      if (d.heavy) return;
      const list = byCategory.get(d.category) ?? [];
      list.push(i);
      byCategory.set(d.category, list);
    });
    const picked: number[] = [];
    const lists = [...byCategory.values()];
    const target = Math.max(1, Math.floor(perReader * 0.8));
    for (let round = 0; picked.length < target && lists.some((l) => l.length > round); round++) {
      for (const l of lists) {
        if (picked.length >= target) break;
        // spread picks across each category's list
        const k = round < l.length ? l[(round * 7) % l.length]! : undefined;
        if (k !== undefined && !picked.includes(k)) picked.push(k);
      }
    }
    const r = rng(hashSeed('sample', seed, reader));
    for (let i = FIXED[reader].length; picked.length < perReader; i += 1 + r.int(5)) picked.push(i);
    out.push(...picked.map((i) => `${reader}:${i}`));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Baseline weights (plain bytes: a small state dict with float32, int64, bool and an empty tensor)

const STORAGE_OF: Record<string, string> = { F32: 'FloatStorage', I64: 'LongStorage', BOOL: 'BoolStorage', I32: 'IntStorage' };

export function weightBaselines(): Pick<Baselines, 'st' | 'stTensors' | 'pthTensors' | 'pthStorages' | 'pth'> {
  const f32 = (xs: number[]) => Buffer.from(new Float32Array(xs).buffer);
  const weight = f32(Array.from({ length: 48 }, (_, i) => i * 0.25 - 3));
  const bias = f32([0.5, -1, 2.25, 1e-3]);
  const steps = Buffer.alloc(8);
  steps.writeBigInt64LE(7n);
  // In the order torch would list them (the safetensors header sorts them by name).
  const stTensors: StTensor[] = [
    { name: 'conv.weight', dtype: 'F32', shape: [4, 3, 2, 2], data: weight },
    { name: 'conv.bias', dtype: 'F32', shape: [4], data: bias },
    { name: 'bn.num_batches_tracked', dtype: 'I64', shape: [], data: steps },
    { name: 'mask', dtype: 'BOOL', shape: [6], data: Buffer.from([1, 0, 1, 1, 0, 1]) },
    { name: 'empty', dtype: 'I32', shape: [0], data: Buffer.alloc(0) },
  ];
  const sorted = [...stTensors].sort((a, b) => (a.name < b.name ? -1 : 1));
  const st = buildSafetensors(sorted);
  const pthTensors: PthTensor[] = stTensors.map((t, i) => ({
    name: t.name, storageKey: String(i), storageType: STORAGE_OF[t.dtype]!, storageNumel: t.shape.reduce((a, s) => a * s, 1),
    offset: 0, size: t.shape, stride: contiguousStride(t.shape),
  }));
  const pthStorages = new Map(stTensors.map((t, i) => [String(i), t.data]));
  const partial: Pick<Baselines, 'st' | 'stTensors' | 'pthTensors' | 'pthStorages' | 'pth'> = { st, stTensors, pthTensors, pthStorages, pth: Buffer.alloc(0) };
  partial.pth = pthWith(partial as unknown as Baselines);
  return partial;
}
