// Byte-level writers for the hostile-input suite: safetensors, pickles and torch.save zips, PNG and
// JPEG surgery, deflate bombs. Everything here is plain bytes (no libtorch), so cases are made in
// microseconds and nothing binary needs to be committed.
import { crc32, constants as zc, deflateRawSync } from 'node:zlib';

// ---------------------------------------------------------------------------------------------
// Random numbers

/** mulberry32: small, fast, and the same sequence on every run. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return { next, int, pick: <T>(xs: readonly T[]): T => xs[int(xs.length)]!, chance: (p: number) => next() < p };
}
export type Rng = ReturnType<typeof rng>;

/** FNV-1a over a string: seeds per case from (run seed, reader, index). */
export function hashSeed(...parts: (string | number)[]): number {
  let h = 0x811c9dc5;
  for (const ch of parts.join('\u0000')) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

// ---------------------------------------------------------------------------------------------
// Generic byte mutations

export function flipBytes(b: Buffer, r: Rng, lo = 0, hi = b.length): Buffer {
  const out = Buffer.from(b);
  if (hi <= lo) return out;
  for (let i = 1 + r.int(4); i > 0; i--) out[lo + r.int(hi - lo)] = r.int(256);
  return out;
}
export function truncate(b: Buffer, r: Rng): Buffer {
  return b.subarray(0, r.int(b.length));
}
export function insertOrDelete(b: Buffer, r: Rng): Buffer {
  const at = r.int(b.length);
  const len = 1 + r.int(32);
  return r.next() < 0.5
    ? Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)])
    : Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
}
export function duplicateRange(b: Buffer, r: Rng): Buffer {
  const out = Buffer.from(b);
  const to = r.int(b.length);
  const from = r.int(b.length);
  out.set(b.subarray(from, from + Math.min(1 + r.int(64), b.length - to)), to);
  return out;
}

// ---------------------------------------------------------------------------------------------
// safetensors

export const ST_ITEM: Record<string, number> = { F32: 4, F64: 8, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
export const ST_DTYPE: Record<string, string> = {
  F32: 'float32', F64: 'float64', F16: 'float16', BF16: 'bfloat16', I64: 'int64', I32: 'int32', I16: 'int16', I8: 'int8', U8: 'uint8', BOOL: 'bool',
};

export interface StTensor {
  name: string;
  /** safetensors dtype code */
  dtype: string;
  shape: number[];
  data: Buffer;
}

export interface BuildStOptions {
  metadata?: Record<string, string> | null;
  /** Order of the tensors' bytes in the data buffer (names); default: header order. */
  dataOrder?: string[];
  /** Renders the header object (default JSON.stringify); may reorder or reformat. */
  render?: (header: Record<string, unknown>) => string;
  /** Pad the header with spaces to a multiple of 8 (default true). */
  pad?: boolean;
}

/** A safetensors file, byte for byte as the format describes it. */
export function buildSafetensors(tensors: StTensor[], o: BuildStOptions = {}): Buffer {
  const order = o.dataOrder ?? tensors.map((t) => t.name);
  const offsets = new Map<string, [number, number]>();
  let at = 0;
  const chunks: Buffer[] = [];
  for (const name of order) {
    const t = tensors.find((x) => x.name === name)!;
    offsets.set(name, [at, at + t.data.length]);
    chunks.push(t.data);
    at += t.data.length;
  }
  const header: Record<string, unknown> = {};
  if (o.metadata !== null) header.__metadata__ = o.metadata ?? { format: 'pt' };
  // defineProperty: a tensor named '__proto__' stays an ordinary key
  for (const t of tensors) Object.defineProperty(header, t.name, { value: { dtype: t.dtype, shape: t.shape, data_offsets: offsets.get(t.name) }, enumerable: true });
  return withStHeader(Buffer.from((o.render ?? JSON.stringify)(header)), Buffer.concat(chunks), o.pad ?? true);
}

export function withStHeader(json: Buffer, data: Buffer, pad = true): Buffer {
  const len = pad ? Math.ceil(json.length / 8) * 8 : json.length;
  const head = Buffer.alloc(len, 0x20);
  json.copy(head);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(len));
  return Buffer.concat([prefix, head, data]);
}

/** Splits a well-formed safetensors file (header length inside the file) into header text and data. */
export function splitSafetensors(b: Buffer): { text: string; data: Buffer } | null {
  if (b.length < 8) return null;
  const n = b.readBigUInt64LE(0);
  if (n > BigInt(b.length - 8)) return null;
  return { text: b.subarray(8, 8 + Number(n)).toString('utf8'), data: b.subarray(8 + Number(n)) };
}

export interface StEntry {
  name: string;
  code: string;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * An independent strict reading of a safetensors header, for checking what a reader accepted:
 * the header must be UTF-8 JSON, every tensor must have a known dtype, a shape of safe
 * non-negative integers, offsets holding exactly its bytes inside the data, and no overlaps.
 */
export function strictStHeader(b: Buffer): { ok: true; entries: StEntry[]; dataStart: number } | { ok: false; why: string } {
  if (b.length < 8) return { ok: false, why: 'shorter than 8 bytes' };
  const n = b.readBigUInt64LE(0);
  if (n > BigInt(b.length - 8)) return { ok: false, why: 'header length past the end' };
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(8, 8 + Number(n))));
  } catch (err) {
    return { ok: false, why: `header not UTF-8 JSON: ${(err as Error).message}` };
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return { ok: false, why: 'header not an object' };
  const dataStart = 8 + Number(n);
  const dataSize = b.length - dataStart;
  const entries: StEntry[] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof info !== 'object' || info === null || Array.isArray(info) || !Object.values(info).every((v) => typeof v === 'string')) {
        return { ok: false, why: '__metadata__ not an object of strings' };
      }
      continue;
    }
    const e = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) return { ok: false, why: `'${name}' not an object` };
    if (typeof e.dtype !== 'string' || !Object.hasOwn(ST_ITEM, e.dtype)) return { ok: false, why: `'${name}' dtype ${JSON.stringify(e.dtype)}` };
    if (!Array.isArray(e.shape) || !e.shape.every((s) => Number.isSafeInteger(s) && s >= 0)) return { ok: false, why: `'${name}' shape ${JSON.stringify(e.shape)}` };
    const o = e.data_offsets;
    if (!Array.isArray(o) || o.length !== 2 || !o.every((x) => Number.isSafeInteger(x) && x >= 0) || o[0] > o[1]) {
      return { ok: false, why: `'${name}' data_offsets ${JSON.stringify(o)}` };
    }
    const numel = (e.shape as number[]).reduce((a, s) => a * s, 1);
    if (numel * ST_ITEM[e.dtype]! !== o[1] - o[0]) return { ok: false, why: `'${name}' offsets hold ${o[1] - o[0]} bytes, shape needs ${numel * ST_ITEM[e.dtype]!}` };
    if (o[1] > dataSize) return { ok: false, why: `'${name}' runs past the data` };
    entries.push({ name, code: e.dtype, shape: e.shape as number[], begin: o[0], end: o[1] });
  }
  const sorted = entries.filter((e) => e.end > e.begin).sort((a, b2) => a.begin - b2.begin);
  for (let i = 1; i < sorted.length; i++) if (sorted[i]!.begin < sorted[i - 1]!.end) return { ok: false, why: `'${sorted[i]!.name}' overlaps '${sorted[i - 1]!.name}'` };
  return { ok: true, entries, dataStart };
}

// ---------------------------------------------------------------------------------------------
// Pickles (protocol 2, as torch.save writes them)

export class Pickler {
  readonly #parts: Buffer[] = [];
  #memo = 0;

  op(...bytes: number[]): this {
    this.#parts.push(Buffer.from(bytes));
    return this;
  }
  raw(b: Buffer): this {
    this.#parts.push(b);
    return this;
  }
  proto(n = 2): this {
    return this.op(0x80, n);
  }
  global(module: string, name: string): this {
    return this.raw(Buffer.from(`c${module}\n${name}\n`, 'latin1')).put();
  }
  /** BINPUT of the next memo slot (torch.save memoizes as it goes; the reader only stores). */
  put(): this {
    const i = this.#memo++;
    if (i < 256) return this.op(0x71, i);
    const b = Buffer.alloc(5);
    b[0] = 0x72;
    b.writeUInt32LE(i, 1);
    return this.raw(b);
  }
  mark(): this {
    return this.op(0x28);
  }
  tuple(): this {
    return this.op(0x74);
  }
  emptyTuple(): this {
    return this.op(0x29);
  }
  emptyDict(): this {
    return this.op(0x7d).put();
  }
  emptyList(): this {
    return this.op(0x5d).put();
  }
  reduce(): this {
    return this.op(0x52).put();
  }
  setitems(): this {
    return this.op(0x75);
  }
  appends(): this {
    return this.op(0x65);
  }
  persid(): this {
    return this.op(0x51);
  }
  none(): this {
    return this.op(0x4e);
  }
  bool(v: boolean): this {
    return this.op(v ? 0x88 : 0x89);
  }
  int(n: number): this {
    if (n >= 0 && n < 256) return this.op(0x4b, n);
    if (n >= -(2 ** 31) && n < 2 ** 31) {
      const b = Buffer.alloc(5);
      b[0] = 0x4a;
      b.writeInt32LE(n, 1);
      return this.raw(b);
    }
    // LONG1 with 8 bytes, two's complement
    const b = Buffer.alloc(10);
    b[0] = 0x8a;
    b[1] = 8;
    b.writeBigInt64LE(BigInt(n), 2);
    return this.raw(b);
  }
  str(s: string): this {
    const body = Buffer.from(s, 'utf8');
    const head = Buffer.alloc(5);
    head[0] = 0x58;
    head.writeUInt32LE(body.length, 1);
    return this.raw(Buffer.concat([head, body])).put();
  }
  stop(): this {
    return this.op(0x2e);
  }
  bytes(): Buffer {
    return Buffer.concat(this.#parts);
  }
}

/** One tensor as torch.save pickles it: a view of a storage. */
export interface PthTensor {
  name: string;
  storageKey: string;
  /** 'FloatStorage', 'LongStorage', 'BoolStorage', ... */
  storageType: string;
  storageNumel: number;
  offset: number;
  size: number[];
  stride: number[];
  /** wrap in torch._utils._rebuild_parameter */
  parameter?: boolean;
}

export function contiguousStride(size: number[]): number[] {
  const out = new Array<number>(size.length);
  let s = 1;
  for (let i = size.length - 1; i >= 0; i--) {
    out[i] = s;
    s *= Math.max(size[i]!, 1);
  }
  return out;
}

/** Emits one rebuilt tensor (the value, on the stack). */
export function pickleTensor(p: Pickler, t: PthTensor): void {
  if (t.parameter) p.global('torch._utils', '_rebuild_parameter').mark();
  p.global('torch._utils', '_rebuild_tensor_v2');
  p.mark();
  p.mark().str('storage').global('torch', t.storageType).str(t.storageKey).str('cpu').int(t.storageNumel).tuple().put().persid().put();
  p.int(t.offset);
  p.mark();
  for (const s of t.size) p.int(s);
  p.tuple().put();
  p.mark();
  for (const s of t.stride) p.int(s);
  p.tuple().put();
  p.bool(false);
  p.global('collections', 'OrderedDict').emptyTuple().reduce();
  p.tuple().put().reduce();
  if (t.parameter) p.bool(false).tuple().put().reduce();
}

export interface PickleDictOptions {
  /** Nest the state dict under this key of a plain dict, with an 'epoch' beside it. */
  wrap?: string;
  /** Replaces one tensor's value with raw opcodes (for hostile values). */
  valueOverride?: { name: string; emit: (p: Pickler) => void };
  protocol?: number;
}

/** The pickle of an OrderedDict of tensors, as torch.save(model.state_dict()) writes it. */
export function pickleStateDict(tensors: PthTensor[], o: PickleDictOptions = {}): Buffer {
  const p = new Pickler().proto(o.protocol ?? 2);
  if (o.wrap) p.emptyDict().mark().str(o.wrap);
  p.global('collections', 'OrderedDict').emptyTuple().reduce();
  p.mark();
  for (const t of tensors) {
    p.str(t.name);
    if (o.valueOverride?.name === t.name) o.valueOverride.emit(p);
    else pickleTensor(p, t);
  }
  p.setitems();
  if (o.wrap) p.str('epoch').int(3).setitems();
  return p.stop().bytes();
}

// ---------------------------------------------------------------------------------------------
// Zip (torch.save's container)

export interface ZipIn {
  name: string;
  data: Buffer;
  /** 0 stored (default), 8 deflate */
  method?: number;
  /** The bytes stored in the archive (default: data, or its deflate for method 8). */
  stored?: Buffer;
  /** Declared uncompressed size (default data.length). */
  size?: number;
  /** Declared compressed size (default stored.length). */
  compressedSize?: number;
  flags?: number;
  crc?: number;
  /** Write size/compressed size as ZIP64 extra fields (forced when a value needs it). */
  zip64?: boolean;
}

export interface ZipLayout {
  entries: { name: string; localOffset: number; dataOffset: number; storedLength: number; cdOffset: number }[];
  cdOffset: number;
  cdSize: number;
  eocdOffset: number;
}

export interface BuildZipOptions {
  /** Align each entry's data to this many bytes through a padding extra field, as torch.save (64); 0 = none. */
  align?: number;
  /** Add a ZIP64 end-of-central-directory record and locator. */
  zip64End?: boolean;
}

const U32 = 0xffffffff;

export function buildZip(entries: ZipIn[], o: BuildZipOptions = {}): { bytes: Buffer; layout: ZipLayout } {
  const align = o.align ?? 64;
  const parts: Buffer[] = [];
  let pos = 0;
  const push = (b: Buffer) => {
    parts.push(b);
    pos += b.length;
  };
  const layout: ZipLayout = { entries: [], cdOffset: 0, cdSize: 0, eocdOffset: 0 };
  const central: Buffer[] = [];
  for (const e of entries) {
    const method = e.method ?? 0;
    const stored = e.stored ?? (method === 8 ? deflateRawSync(e.data) : e.data);
    const size = e.size ?? e.data.length;
    const csize = e.compressedSize ?? stored.length;
    const crc = e.crc ?? crc32(e.data);
    const big = e.zip64 || size >= U32 || csize >= U32;
    const name = Buffer.from(e.name, 'utf8');
    const localOffset = pos;
    // Local header (sizes in the local header are informational for this reader: it trusts the central directory).
    let zip64Local = Buffer.alloc(0);
    if (big) {
      zip64Local = Buffer.alloc(20);
      zip64Local.writeUInt16LE(1, 0);
      zip64Local.writeUInt16LE(16, 2);
      zip64Local.writeBigUInt64LE(BigInt(size), 4);
      zip64Local.writeBigUInt64LE(BigInt(csize), 12);
    }
    let padLen = 0;
    if (align > 0) {
      const start = localOffset + 30 + name.length + zip64Local.length;
      padLen = (align - ((start + 4) % align)) % align;
    }
    const pad = align > 0 ? Buffer.alloc(4 + padLen) : Buffer.alloc(0);
    if (align > 0) {
      pad.writeUInt16LE(0x4246, 0); // 'FB', torch's padding record
      pad.writeUInt16LE(padLen, 2);
    }
    const extra = Buffer.concat([zip64Local, pad]);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(big ? 45 : 20, 4);
    lh.writeUInt16LE(e.flags ?? 0, 6);
    lh.writeUInt16LE(method, 8);
    lh.writeUInt16LE(0, 10);
    lh.writeUInt16LE(0x21, 12);
    lh.writeUInt32LE(crc >>> 0, 14);
    lh.writeUInt32LE(big ? U32 : csize, 18);
    lh.writeUInt32LE(big ? U32 : size, 22);
    lh.writeUInt16LE(name.length, 26);
    lh.writeUInt16LE(extra.length, 28);
    push(lh);
    push(name);
    push(extra);
    const dataOffset = pos;
    push(stored);
    // Central directory record
    let cdExtra = Buffer.alloc(0);
    if (big) {
      cdExtra = Buffer.alloc(20);
      cdExtra.writeUInt16LE(1, 0);
      cdExtra.writeUInt16LE(16, 2);
      cdExtra.writeBigUInt64LE(BigInt(size), 4);
      cdExtra.writeBigUInt64LE(BigInt(csize), 12);
    }
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(0x031e, 4);
    ch.writeUInt16LE(big ? 45 : 20, 6);
    ch.writeUInt16LE(e.flags ?? 0, 8);
    ch.writeUInt16LE(method, 10);
    ch.writeUInt16LE(0, 12);
    ch.writeUInt16LE(0x21, 14);
    ch.writeUInt32LE(crc >>> 0, 16);
    ch.writeUInt32LE(big ? U32 : csize, 20);
    ch.writeUInt32LE(big ? U32 : size, 24);
    ch.writeUInt16LE(name.length, 28);
    ch.writeUInt16LE(cdExtra.length, 30);
    ch.writeUInt32LE(localOffset, 42);
    central.push(Buffer.concat([ch, name, cdExtra]));
    layout.entries.push({ name: e.name, localOffset, dataOffset, storedLength: stored.length, cdOffset: 0 });
  }
  layout.cdOffset = pos;
  central.forEach((c, i) => {
    layout.entries[i]!.cdOffset = pos;
    push(c);
  });
  layout.cdSize = pos - layout.cdOffset;
  if (o.zip64End) {
    const recAt = pos;
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeUInt16LE(45, 12);
    rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(entries.length), 24);
    rec.writeBigUInt64LE(BigInt(entries.length), 32);
    rec.writeBigUInt64LE(BigInt(layout.cdSize), 40);
    rec.writeBigUInt64LE(BigInt(layout.cdOffset), 48);
    push(rec);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(recAt), 8);
    loc.writeUInt32LE(1, 16);
    push(loc);
  }
  layout.eocdOffset = pos;
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(entries.length, 8);
  eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(layout.cdSize, 12);
  eocd.writeUInt32LE(layout.cdOffset, 16);
  push(eocd);
  return { bytes: Buffer.concat(parts), layout };
}

/**
 * A raw deflate stream of `total` zero bytes, built from independently compressed chunks
 * (sync-flushed, so they concatenate into one valid stream) without ever holding `total` bytes.
 * Returns the stream and the CRC-32 of the zeros.
 */
export function zerosDeflateRaw(total: number, chunk = 16 << 20): { stored: Buffer; crc: number } {
  const full = Math.floor(total / chunk);
  const rest = total - full * chunk;
  const zeros = Buffer.alloc(Math.min(chunk, Math.max(total, 1)));
  const block = full > 0 ? deflateRawSync(zeros.subarray(0, chunk), { level: 9, finishFlush: zc.Z_SYNC_FLUSH }) : Buffer.alloc(0);
  let crc = 0;
  for (let i = 0; i < full; i++) crc = crc32(zeros.subarray(0, chunk), crc);
  if (rest) crc = crc32(zeros.subarray(0, rest), crc);
  const tail = deflateRawSync(zeros.subarray(0, rest), { level: 9 });
  return { stored: Buffer.concat([...Array.from({ length: full }, () => block), tail]), crc };
}

// ---------------------------------------------------------------------------------------------
// PNG and JPEG surgery

export function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export function pngChunks(png: Buffer): { type: string; start: number; end: number; data: Buffer }[] {
  const out = [];
  for (let p = 8; p + 12 <= png.length; ) {
    const len = png.readUInt32BE(p);
    const type = png.toString('latin1', p + 4, p + 8);
    out.push({ type, start: p, end: p + 12 + len, data: png.subarray(p + 8, p + 8 + len) });
    p += 12 + len;
  }
  return out;
}

/** A PNG with its IHDR width/height replaced (CRC fixed unless told otherwise). */
export function pngWithSize(png: Buffer, width: number, height: number, fixCrc = true): Buffer {
  const out = Buffer.from(png);
  const ihdr = pngChunks(png).find((c) => c.type === 'IHDR')!;
  out.writeUInt32BE(width >>> 0, ihdr.start + 8);
  out.writeUInt32BE(height >>> 0, ihdr.start + 12);
  if (fixCrc) out.writeUInt32BE(crc32(out.subarray(ihdr.start + 4, ihdr.start + 8 + 13)) >>> 0, ihdr.start + 8 + 13);
  return out;
}

/** A PNG with an extra chunk right after IHDR. */
export function pngInsertChunk(png: Buffer, chunk: Buffer): Buffer {
  const ihdr = pngChunks(png).find((c) => c.type === 'IHDR')!;
  return Buffer.concat([png.subarray(0, ihdr.end), chunk, png.subarray(ihdr.end)]);
}

/** zlib's adler-32 of `n` zero bytes. */
function adlerZeros(n: number): number {
  const b = n % 65521;
  return ((b << 16) | 1) >>> 0;
}

/** A valid all-black RGB PNG of width×height whose IDAT is a small zlib stream (a decompression bomb). */
export function pngZeroBomb(width: number, height: number): Buffer {
  const raw = height * (1 + 3 * width);
  const { stored } = zerosDeflateRaw(raw, (1 + 3 * width) * 512);
  const adler = Buffer.alloc(4);
  adler.writeUInt32BE(adlerZeros(raw), 0);
  const z = Buffer.concat([Buffer.from([0x78, 0xda]), stored, adler]);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', z), pngChunk('IEND', Buffer.alloc(0))]);
}

/** A JPEG with a segment (marker + payload) inserted right after SOI. */
export function jpegInsertSegment(jpeg: Buffer, marker: number, payload: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len[0] = 0xff;
  len[1] = marker;
  len.writeUInt16BE(payload.length + 2, 2);
  return Buffer.concat([jpeg.subarray(0, 2), len, payload, jpeg.subarray(2)]);
}

/** A JPEG whose start-of-frame declares another width/height. */
export function jpegWithSize(jpeg: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(jpeg);
  for (let p = 2; p + 4 < out.length; ) {
    if (out[p] !== 0xff) break;
    const m = out[p + 1]!;
    const len = out.readUInt16BE(p + 2);
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      out.writeUInt16BE(height & 0xffff, p + 5);
      out.writeUInt16BE(width & 0xffff, p + 7);
      return out;
    }
    p += 2 + len;
  }
  return out;
}

/** A lossy WebP whose VP8 frame (and VP8X canvas, if any) declares another width/height (at most 16383). */
export function webpWithSize(webp: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(webp);
  for (let p = 12; p + 8 <= out.length; ) {
    const type = out.toString('latin1', p, p + 4);
    const len = out.readUInt32LE(p + 4);
    const body = p + 8;
    if (type === 'VP8 ') {
      // frame tag (3 bytes), start code 9d 01 2a, then 14-bit width and height with 2-bit scales
      out.writeUInt16LE(width & 0x3fff, body + 6);
      out.writeUInt16LE(height & 0x3fff, body + 8);
    } else if (type === 'VP8X') {
      out.writeUIntLE(width - 1, body + 4, 3);
      out.writeUIntLE(height - 1, body + 7, 3);
    } else if (type === 'VP8L') {
      const bits = ((width - 1) & 0x3fff) | (((height - 1) & 0x3fff) << 14) | (out.readUInt32LE(body + 1) & 0xf0000000);
      out.writeUInt32LE(bits >>> 0, body + 1);
    }
    p = body + len + (len & 1);
  }
  return out;
}
