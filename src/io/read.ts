// Bounded reading of user-supplied files. Only regular files are read: a FIFO would block the
// open (or the read) forever, a character device like /dev/zero or /dev/urandom never ends, and
// a directory or socket is a mistake. The type is checked on the opened descriptor (fstat), so a
// symlink is judged by what it points at and a swap between check and read cannot slip through.
import { closeSync, constants, fstatSync, openSync, readSync, realpathSync, type Stats } from 'node:fs';
import { open as openAsync } from 'node:fs/promises';

/** Flags that make open() of a FIFO or a terminal return at once instead of waiting for a peer. */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

/** A file that cannot be read as data: not there, not a regular file, or over a size limit. */
export class InputFileError extends Error {
  /** The message without the leading path, for callers that name the file their own way. */
  readonly detail: string;
  constructor(readonly path: string, message: string, options?: { cause?: unknown }) {
    super(`${path}: ${message}`, options);
    this.detail = message;
  }
}

/** What a non-regular file is, for messages ('a FIFO', 'a character device', ...). */
export function describeFileType(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function symlinkNote(path: string): string {
  try {
    const real = realpathSync(path);
    return real === path ? '' : ` (it resolves to ${real})`;
  } catch {
    return '';
  }
}

/** Refuses what is not a regular file, or (given `maxBytes`) a file larger than that. */
function checkReadable(path: string, st: Stats, what: string, maxBytes = Infinity): void {
  if (!st.isFile()) throw new InputFileError(path, `the ${what} is ${describeFileType(st)}${symlinkNote(path)}, not a regular file`);
  if (st.size > maxBytes) {
    throw new InputFileError(path, `the ${what} is ${st.size.toLocaleString('en-US')} bytes, more than the limit of ${maxBytes.toLocaleString('en-US')} bytes`);
  }
}

function openError(path: string, err: unknown, what: string): InputFileError {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
  return new InputFileError(path, `cannot open the ${what}: ${why}`, { cause: err });
}

/**
 * Opens `path` for reading if, after following symlinks, it is a regular file; returns the
 * descriptor (the caller closes it) and the file's size. `what` names the file's role in messages
 * ('image', 'weights file', ...); a file larger than `maxBytes` is refused.
 */
export function openRegularFile(path: string, what = 'file', maxBytes = Infinity): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (err) {
    throw openError(path, err, what);
  }
  try {
    const st = fstatSync(fd);
    checkReadable(path, st, what, maxBytes);
    return { fd, size: st.size };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** The whole of a regular file, refused beyond `maxBytes` before anything is allocated. */
export function readRegularFile(path: string, options: { maxBytes: number; what?: string }): Buffer {
  const what = options.what ?? 'file';
  const { fd, size } = openRegularFile(path, what, options.maxBytes);
  try {
    const out = Buffer.allocUnsafe(size);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, out, done, size - done, done);
      if (n === 0) throw new InputFileError(path, `the ${what} shrank while being read (ended at byte ${done} of ${size})`);
      done += n;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/** A regular file's text (UTF-8), refused beyond `maxBytes`. */
export function readTextFile(path: string, options: { maxBytes: number; what?: string }): string {
  return readRegularFile(path, options).toString('utf8');
}

/** The async form of readRegularFile, for work that must not block the event loop (image decoding). */
export async function readRegularFileAsync(path: string, options: { maxBytes: number; what?: string }): Promise<Buffer> {
  const what = options.what ?? 'file';
  let handle;
  try {
    handle = await openAsync(path, OPEN_FLAGS);
  } catch (err) {
    throw openError(path, err, what);
  }
  try {
    const st = await handle.stat();
    checkReadable(path, st, what, options.maxBytes);
    const out = Buffer.allocUnsafe(st.size);
    let done = 0;
    while (done < st.size) {
      const { bytesRead } = await handle.read(out, done, st.size - done, done);
      if (bytesRead === 0) throw new InputFileError(path, `the ${what} shrank while being read (ended at byte ${done} of ${st.size})`);
      done += bytesRead;
    }
    return out;
  } finally {
    await handle.close();
  }
}

/** Limits on what input may make us allocate; each is named in the message that enforces it. */
export const INPUT_LIMITS = {
  // Keep the keys in step with the messages: they say 'INPUT_LIMITS.<key>'.
  /** JSON manifests and configs a person edits (delta.json, config.json, adapter_config.json, results.json). */
  manifestBytes: 16 << 20,
  /** A CSV list of images. */
  csvBytes: 256 << 20,
  /** One encoded image file. */
  imageBytes: 256 << 20,
  /** Decoded pixels of one image (width × height); sharp's own default is 268 M. */
  imagePixels: 100_000_000,
  /** Classes of a dataset or a delta (ImageNet-21k has 21,843). */
  classes: 100_000,
  /** Samples of a CSV list or an ImageFolder (ImageNet-21k has 14.2 M images). */
  samples: 10_000_000,
  /**
   * Tensors (and, for .pth, storages) in one weights file. The largest state dicts hold ~100k
   * tensors; each costs ~1.3 KB even when empty, and a safetensors header may describe ~2 M.
   */
  tensors: 500_000,
  /** One deflated entry of a .pth zip once inflated (torch.save itself never compresses). */
  inflatedEntryBytes: 1 << 30,
  /** All deflated entries of one .pth zip together, once inflated. */
  inflatedArchiveBytes: 4 * (1 << 30),
  /** Inflated ÷ compressed size of a deflated .pth entry larger than inflateRatioFloorBytes. */
  inflateRatio: 100,
  /** Deflated entries up to this inflated size are exempt from inflateRatio (all-zero buffers compress ~1000×). */
  inflateRatioFloorBytes: 16 << 20,
} as const;

/** `n` with thousands separators, for limit messages. */
export function formatCount(n: number | bigint): string {
  return n.toLocaleString('en-US');
}
