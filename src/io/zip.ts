// A minimal zip reader for torch.save archives: the central directory (with ZIP64, which torch
// always writes), stored and deflated entries. Sizes and offsets are checked against the file
// before anything is allocated, so a hostile archive cannot ask for more memory than it holds
// (times deflate's maximum ratio for compressed entries).
import { inflateRawSync } from 'node:zlib';
import { type ByteSource, ioError, tensorFromBytes } from './source.js';
import type { DType } from '../engine/dtype.js';
import type { Tensor } from '../engine/tensor.js';

/** @internal One file inside the archive. */
export interface ZipEntry {
  name: string;
  flags: number;
  method: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
/** A central directory is ~100 bytes per entry; 64 MB is far beyond any checkpoint's. */
const MAX_CENTRAL_DIRECTORY = 64 << 20;
/** Deflate cannot expand data by more than this factor (RFC 1951 blocks). */
const MAX_DEFLATE_RATIO = 1032;

/** @internal Reads the directory of a zip archive and the contents of its entries. */
export class ZipReader {
  readonly entries = new Map<string, ZipEntry>();
  readonly #src: ByteSource;

  constructor(src: ByteSource) {
    this.#src = src;
    const { count, cdOffset, cdSize } = this.#endOfCentralDirectory();
    const cd = Buffer.from(src.readAt(cdOffset, cdSize));
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) throw this.#fail(`central directory entry ${i} is malformed`);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      if (p + 46 + nameLen + extraLen + commentLen > cd.length) throw this.#fail(`central directory entry ${i} runs past the directory`);
      const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
      const entry: ZipEntry = {
        name,
        flags: cd.readUInt16LE(p + 8),
        method: cd.readUInt16LE(p + 10),
        compressedSize: cd.readUInt32LE(p + 20),
        size: cd.readUInt32LE(p + 24),
        localOffset: cd.readUInt32LE(p + 42),
      };
      this.#applyZip64Extra(entry, cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen));
      if (this.entries.has(name)) throw this.#fail(`entry '${name}' appears twice`);
      this.entries.set(name, entry);
      p += 46 + nameLen + extraLen + commentLen;
    }
  }

  #fail(msg: string): Error {
    return ioError(this.#src.name, `zip archive: ${msg}`);
  }

  #endOfCentralDirectory(): { count: number; cdOffset: number; cdSize: number } {
    const src = this.#src;
    const tailLen = Math.min(src.size, 22 + 0xffff);
    const tail = Buffer.from(src.readAt(src.size - tailLen, tailLen));
    let pos = -1;
    for (let i = tail.length - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === SIG_EOCD && i + 22 + tail.readUInt16LE(i + 20) <= tail.length) {
        pos = i;
        break;
      }
    }
    if (pos < 0) throw this.#fail('no end-of-central-directory record (truncated or not a zip file)');
    let count = tail.readUInt16LE(pos + 10);
    let cdSize = tail.readUInt32LE(pos + 12);
    let cdOffset = tail.readUInt32LE(pos + 16);
    const eocdOffset = src.size - tailLen + pos;
    // ZIP64: a locator just before the record points at the 64-bit version of these fields.
    if (eocdOffset >= 20) {
      const loc = Buffer.from(src.readAt(eocdOffset - 20, 20));
      if (loc.readUInt32LE(0) === SIG_ZIP64_LOCATOR) {
        const at = safe(loc.readBigUInt64LE(8));
        if (at === null || at + 56 > eocdOffset) throw this.#fail('ZIP64 locator points outside the file');
        const rec = Buffer.from(src.readAt(at, 56));
        if (rec.readUInt32LE(0) !== SIG_ZIP64_EOCD) throw this.#fail('ZIP64 end-of-central-directory record is missing');
        const c = safe(rec.readBigUInt64LE(32));
        const s = safe(rec.readBigUInt64LE(40));
        const o = safe(rec.readBigUInt64LE(48));
        if (c === null || s === null || o === null) throw this.#fail('ZIP64 sizes are out of range');
        [count, cdSize, cdOffset] = [c, s, o];
      }
    }
    if (cdSize > MAX_CENTRAL_DIRECTORY) throw this.#fail(`central directory of ${cdSize} bytes is over the ${MAX_CENTRAL_DIRECTORY >> 20} MB limit`);
    if (cdOffset + cdSize > eocdOffset) throw this.#fail('central directory lies outside the file');
    if (count * 46 > cdSize) throw this.#fail(`${count} entries cannot fit in a ${cdSize}-byte central directory`);
    return { count, cdOffset, cdSize };
  }

  // Fields saturated at 0xFFFFFFFF are stored, in this order, in the ZIP64 extra field (id 1).
  #applyZip64Extra(entry: ZipEntry, extra: Buffer): void {
    const wanted = (['size', 'compressedSize', 'localOffset'] as const).filter((k) => entry[k] === 0xffffffff);
    if (!wanted.length) return;
    for (let p = 0; p + 4 <= extra.length; ) {
      const id = extra.readUInt16LE(p);
      const len = extra.readUInt16LE(p + 2);
      if (id === 1) {
        if (len < wanted.length * 8 || p + 4 + len > extra.length) break;
        wanted.forEach((k, i) => {
          const v = safe(extra.readBigUInt64LE(p + 4 + 8 * i));
          if (v === null) throw this.#fail(`entry '${entry.name}': ZIP64 ${k} is out of range`);
          entry[k] = v;
        });
        return;
      }
      p += 4 + len;
    }
    throw this.#fail(`entry '${entry.name}': ZIP64 sizes are missing`);
  }

  /** Where an entry's (possibly compressed) bytes start in the file. */
  #dataOffset(e: ZipEntry): number {
    const local = Buffer.from(this.#src.readAt(e.localOffset, 30));
    if (local.readUInt32LE(0) !== SIG_LOCAL) throw this.#fail(`entry '${e.name}': no local header at byte ${e.localOffset}`);
    const start = e.localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
    if (start + e.compressedSize > this.#src.size) throw this.#fail(`entry '${e.name}' runs past the end of the file`);
    return start;
  }

  /**
   * An entry's contents as a tensor: a stored entry (torch.save's usual) is read straight into
   * libtorch memory; a deflated one is inflated first.
   */
  readTensor(e: ZipEntry, dtype: DType, shape: readonly number[], what: string): Tensor {
    if (e.method === 0 && !(e.flags & 1) && e.compressedSize === e.size) {
      return this.#src.readTensor(this.#dataOffset(e), dtype, shape, what);
    }
    return tensorFromBytes(this.read(e), dtype, shape, what);
  }

  /** The uncompressed contents of an entry. */
  read(e: ZipEntry): Uint8Array {
    if (e.flags & 1) throw this.#fail(`entry '${e.name}' is encrypted`);
    const start = this.#dataOffset(e);
    if (e.method === 0) {
      if (e.compressedSize !== e.size) throw this.#fail(`stored entry '${e.name}' has compressed size ${e.compressedSize} != size ${e.size}`);
      return this.#src.readAt(start, e.size);
    }
    if (e.method !== 8) throw this.#fail(`entry '${e.name}' uses compression method ${e.method}; only stored and deflate are supported`);
    if (e.size > e.compressedSize * MAX_DEFLATE_RATIO + 64) throw this.#fail(`entry '${e.name}' claims an impossible compression ratio`);
    let out: Buffer;
    try {
      out = inflateRawSync(this.#src.readAt(start, e.compressedSize), { maxOutputLength: Math.max(e.size, 1) });
    } catch (err) {
      throw this.#fail(`entry '${e.name}' does not inflate: ${(err as Error).message}`);
    }
    if (out.length !== e.size) throw this.#fail(`entry '${e.name}' inflates to ${out.length} bytes, not ${e.size}`);
    return out;
  }
}

function safe(v: bigint): number | null {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : null;
}
