// A minimal zip reader for torch.save archives: the central directory (with ZIP64, which torch
// always writes), stored and deflated entries. Sizes and offsets are checked against the file
// before anything is allocated, so a hostile archive cannot ask for more memory than it holds,
// and deflated entries, whose uncompressed size only the archive itself declares, are capped by
// the named limits below before they are inflated.
import { inflateRawSync } from 'node:zlib';
import { INPUT_LIMITS, formatCount } from './read.js';
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

// Deflated entries. torch.save writes every entry stored (uncompressed); a deflated .pth comes
// from re-zipping one by hand, so these limits only have to admit that. The declared size is
// the archive's own claim, and 1032× is deflate's real maximum: trusting it let a 1 MB entry
// inflate to 1 GB, a 3.3 MB one to 3.4 GB, and entries sharing one stream multiply that. So:
//  - one entry inflates to at most INPUT_LIMITS.inflatedEntryBytes (1 GiB; a larger tensor
//    must be stored, as torch.save does);
//  - above INPUT_LIMITS.inflateRatioFloorBytes (16 MiB), at most INPUT_LIMITS.inflateRatio
//    (100×) its compressed size. Trained weights are near-random floats that deflate by 1.1-1.5×
//    and even quantised or sparse tensors rarely reach 10×; only constant buffers (zero-initialised
//    LoRA B, BatchNorm running stats) approach 1000×, and those are small, hence the floor;
//  - all deflated entries of one archive together inflate to at most 100× the archive's size
//    (at least 256 MiB, so many small constant buffers pass) and never beyond
//    INPUT_LIMITS.inflatedArchiveBytes (4 GiB). Without a total, thousands of entries that
//    share one compressed stream (entries may point at the same bytes) would each pass alone.
/** The archive-wide inflated total is allowed at least this much, whatever the file's size. */
const INFLATED_ARCHIVE_FLOOR = 256 << 20;

/** @internal A malformed or over-limit archive; its message starts with the file's name. */
export class ZipError extends Error {}

/** @internal Reads the directory of a zip archive and the contents of its entries. */
export class ZipReader {
  readonly entries = new Map<string, ZipEntry>();
  readonly #src: ByteSource;
  /** Entries read so far, and their bytes in the file: entries sharing data are refused. */
  readonly #read = new Set<string>();
  #bytesRead = 0;
  /** Declared sizes of the deflated entries inflated so far. */
  #inflated = 0;

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
    return new ZipError(ioError(this.#src.name, `zip archive: ${msg}`).message);
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
   * Accounts for reading entry `e` once. The entries of a real archive never overlap, so the
   * bytes of all entries read cannot exceed the file; an archive whose entries share their data
   * (the classic way to multiply a zip bomb, or to make one stored region feed any number of
   * tensors) runs past that and is refused.
   */
  #account(e: ZipEntry): void {
    if (this.#read.has(e.name)) return;
    const total = this.#bytesRead + e.compressedSize;
    if (total > this.#src.size) {
      throw this.#fail(`entry '${e.name}' shares its data with other entries (the entries read so far hold ${formatCount(total)} bytes, more than the file's ${formatCount(this.#src.size)})`);
    }
    this.#read.add(e.name);
    this.#bytesRead = total;
  }

  /** The output limit for inflating deflated entry `e`, after checking its declared size against the limits above. */
  #inflateLimit(e: ZipEntry): number {
    const L = INPUT_LIMITS;
    const declared = `entry '${e.name}' declares ${formatCount(e.size)} bytes uncompressed`;
    const advice = '; torch.save stores entries uncompressed: re-save the checkpoint with torch.save (or as safetensors) instead of re-zipping it';
    if (e.size > e.compressedSize * MAX_DEFLATE_RATIO + 64) throw this.#fail(`${declared} from ${formatCount(e.compressedSize)} compressed: an impossible compression ratio`);
    if (e.size > L.inflatedEntryBytes) {
      throw this.#fail(`${declared}, more than the limit of ${formatCount(L.inflatedEntryBytes)} bytes for a deflated entry (INPUT_LIMITS.inflatedEntryBytes)${advice}`);
    }
    if (e.size > L.inflateRatioFloorBytes && e.size > e.compressedSize * L.inflateRatio) {
      throw this.#fail(
        `${declared} from ${formatCount(e.compressedSize)} compressed, more than the limit of ${L.inflateRatio}× its compressed size ` +
          `for entries over ${formatCount(L.inflateRatioFloorBytes)} bytes (INPUT_LIMITS.inflateRatio)${advice}`,
      );
    }
    const archiveLimit = Math.min(L.inflatedArchiveBytes, Math.max(this.#src.size * L.inflateRatio, INFLATED_ARCHIVE_FLOOR));
    if (this.#inflated + e.size > archiveLimit) {
      throw this.#fail(
        `${declared}, which brings the deflated entries of this archive to ${formatCount(this.#inflated + e.size)} bytes, more than the limit of ` +
          `${formatCount(archiveLimit)} (${L.inflateRatio}× the file's size, at least ${formatCount(INFLATED_ARCHIVE_FLOOR)} and at most ` +
          `${formatCount(L.inflatedArchiveBytes)} bytes: INPUT_LIMITS.inflateRatio, INPUT_LIMITS.inflatedArchiveBytes)${advice}`,
      );
    }
    this.#inflated += e.size;
    return e.size;
  }

  /**
   * An entry's contents as a tensor: a stored entry (torch.save's usual) is read straight into
   * libtorch memory; a deflated one is inflated first. The caller has checked that the entry's
   * declared size is what the tensor needs (so a deflated entry's claim is known to be the
   * storage's size before the limits above judge it and inflation starts).
   */
  readTensor(e: ZipEntry, dtype: DType, shape: readonly number[], what: string): Tensor {
    if (e.method === 0 && !(e.flags & 1) && e.compressedSize === e.size) {
      const start = this.#dataOffset(e);
      this.#account(e);
      return this.#src.readTensor(start, dtype, shape, what);
    }
    return tensorFromBytes(this.read(e), dtype, shape, what);
  }

  /** The uncompressed contents of an entry. */
  read(e: ZipEntry): Uint8Array {
    if (e.flags & 1) throw this.#fail(`entry '${e.name}' is encrypted`);
    const start = this.#dataOffset(e);
    if (e.method === 0) {
      if (e.compressedSize !== e.size) throw this.#fail(`stored entry '${e.name}' has compressed size ${e.compressedSize} != size ${e.size}`);
      this.#account(e);
      return this.#src.readAt(start, e.size);
    }
    if (e.method !== 8) throw this.#fail(`entry '${e.name}' uses compression method ${e.method}; only stored and deflate are supported`);
    const limit = this.#inflateLimit(e);
    this.#account(e);
    let out: Buffer;
    try {
      // Inflation stops at the declared size, which the limits above have bounded.
      out = inflateRawSync(this.#src.readAt(start, e.compressedSize), { maxOutputLength: Math.max(limit, 1) });
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
