// Random-access byte sources shared by the readers: a file read through its descriptor (so a
// checkpoint is never held in memory whole) or a buffer already in memory (the fuzzer, parse*()).
import { closeSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { type DType, itemSize } from '../engine/dtype.js';
import { type Tensor, fromBytes, fromFile } from '../engine/tensor.js';
import { InputFileError, openRegularFile } from './read.js';

/** @internal Exact byte ranges of a file or buffer; `name` prefixes every error. */
export interface ByteSource {
  /** the file path, or '<buffer>' */
  readonly name: string;
  readonly size: number;
  /** Exactly `length` bytes at `offset`; a range past the end is an Error, never an allocation. */
  readAt(offset: number, length: number): Uint8Array;
  /** A tensor from the `dtype`/`shape` bytes at `offset`, copied once (bool bytes validated). */
  readTensor(offset: number, dtype: DType, shape: readonly number[], what: string): Tensor;
  close(): void;
}

/** @internal An Error whose message starts with the source's name. */
export function ioError(name: string, message: string, cause?: unknown): Error {
  return new Error(`${name}: ${message}`, cause === undefined ? undefined : { cause });
}

function checkRange(name: string, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw ioError(name, `truncated: needs bytes ${offset}..${offset + length} but has only ${size}`);
  }
}

/** @internal A source over bytes in memory (views, no copies). */
export function bufferSource(bytes: Uint8Array, name = '<buffer>'): ByteSource {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`${name}: expected a Uint8Array`);
  return {
    name,
    size: bytes.length,
    readAt(offset, length) {
      checkRange(name, bytes.length, offset, length);
      return bytes.subarray(offset, offset + length);
    },
    readTensor(offset, dtype, shape, what) {
      return tensorFromBytes(this.readAt(offset, byteLength(dtype, shape)), dtype, shape, what);
    },
    close() {},
  };
}

// readSync takes at most 2 GiB per call.
const READ_CHUNK = 1 << 30;

/**
 * @internal A source reading a file through one descriptor; `close()` it in a `finally`. Only a
 * regular file is opened (see openRegularFile): a FIFO, /dev/zero or a directory, also behind a
 * symlink, is an InputFileError naming the path and what it is, at once. `what` names the file's
 * role in that message.
 */
export function fileSource(path: string, what = 'weights file'): ByteSource {
  let fd: number;
  let size: number;
  try {
    ({ fd, size } = openRegularFile(path, what));
  } catch (err) {
    // Keep the system's own words for a failed open ('ENOENT: no such file or directory, ...').
    const cause = (err as { cause?: unknown }).cause;
    if (err instanceof InputFileError && cause instanceof Error) throw ioError(path, `cannot open: ${cause.message}`, cause);
    throw err;
  }
  let open = true;
  return {
    name: path,
    size,
    readAt(offset, length) {
      checkRange(path, size, offset, length);
      let out: Buffer;
      try {
        out = Buffer.allocUnsafe(length);
      } catch (err) {
        throw ioError(path, `cannot hold ${length} bytes in one buffer: ${(err as Error).message}`, err);
      }
      let done = 0;
      while (done < length) {
        let n: number;
        try {
          n = readSync(fd, out, done, Math.min(length - done, READ_CHUNK), offset + done);
        } catch (err) {
          throw ioError(path, `read failed at byte ${offset + done}: ${(err as Error).message}`, err);
        }
        if (n === 0) throw ioError(path, `file shrank while reading (ended at byte ${offset + done})`);
        done += n;
      }
      return out;
    },
    readTensor(offset, dtype, shape, what) {
      const length = byteLength(dtype, shape);
      if (dtype === 'bool') return tensorFromBytes(this.readAt(offset, length), dtype, shape, what);
      checkRange(path, size, offset, length);
      try {
        return fromFile(fd, offset, dtype, shape);
      } catch (err) {
        throw ioError(path, `${what}: ${(err as Error).message}`, err);
      }
    },
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}


function byteLength(dtype: DType, shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, itemSize(dtype));
}

/** @internal Both formats store little-endian bytes, which libtorch takes as they are only on a little-endian host. */
export function checkHostEndianness(name: string): void {
  if (endianness() !== 'LE') throw ioError(name, 'deltatune reads and writes tensor files only on little-endian machines');
}

/**
 * @internal One copy of `bytes` into a new libtorch tensor. Bool bytes must be 0 or 1: any other
 * value is undefined behaviour in libtorch kernels, so a hostile file could not be trusted with it.
 */
export function tensorFromBytes(bytes: Uint8Array, dtype: DType, shape: readonly number[], what: string): Tensor {
  if (dtype === 'bool') {
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i]! > 1) throw new Error(`${what}: bool element ${i} has byte value ${bytes[i]} (must be 0 or 1)`);
    }
  }
  return fromBytes(bytes, dtype, shape);
}
