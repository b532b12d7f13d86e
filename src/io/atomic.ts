// Crash-safe file replacement: a checkpoint is either the old file or the complete new one,
// never a half-written mix (a killed training run must not destroy its last good checkpoint).
import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

/**
 * Writes `chunks` to `path` atomically: into a uniquely named temporary file in the same
 * directory (a rename is only atomic within one file system), fsynced, renamed over `path`,
 * then the directory is fsynced so the rename itself survives a power cut.
 *
 * Chunks are written as the iterable yields them, so a caller can stream a large checkpoint
 * without ever concatenating it. On any failure, including an exception thrown by the
 * iterable, the temporary file is removed, an existing `path` is left untouched, and the
 * Error names `path`. An existing file's permission bits are kept.
 */
export function writeFileAtomic(path: string, chunks: Iterable<Uint8Array> | Uint8Array): void {
  const target = resolve(path);
  const dir = dirname(target);
  const tmp = join(dir, `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let mode: number | undefined;
  try {
    mode = statSync(target).mode & 0o7777;
  } catch {
    // No existing file: the new one gets the default mode (0o666 less the umask).
  }
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'wx', 0o666);
    if (mode !== undefined) fchmodSync(fd, mode);
    for (const chunk of chunks instanceof Uint8Array ? [chunks] : chunks) {
      if (!(chunk instanceof Uint8Array)) throw new TypeError(`chunks must be Uint8Arrays, got ${describe(chunk)}`);
      writeAll(fd, chunk);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, target);
  } catch (err) {
    if (fd !== null) {
      try {
        closeSync(fd);
      } catch {
        // Already failing; the original error is the one to report.
      }
    }
    try {
      unlinkSync(tmp);
    } catch {
      // The temporary file may never have been created.
    }
    throw new Error(`cannot write ${path}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
  syncDirectory(dir, path);
}

/**
 * Puts a finished temporary file (in the same directory as `path`) in place: fsyncs it, renames
 * it over `path`, then fsyncs the directory. For files written piecewise over time (a resumable
 * download's `.part`), where writeFileAtomic's one-pass iterable does not fit.
 */
export function commitFile(tmp: string, path: string): void {
  const target = resolve(path);
  try {
    const fd = openSync(tmp, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
  } catch (err) {
    throw new Error(`cannot put ${tmp} in place as ${path}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
  syncDirectory(dirname(target), path);
}

function writeAll(fd: number, chunk: Uint8Array): void {
  let done = 0;
  while (done < chunk.length) done += writeSync(fd, chunk, done, chunk.length - done);
}

// Some file systems (and platforms) cannot fsync a directory; there the rename is as durable as
// they allow, so only real I/O errors are reported.
function syncDirectory(dir: string, path: string): void {
  let fd: number;
  try {
    fd = openSync(dir, 'r');
  } catch {
    return;
  }
  try {
    fsyncSync(fd);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EISDIR' && code !== 'EPERM' && code !== 'EBADF') {
      throw new Error(`wrote ${path} but could not fsync its directory: ${(err as Error).message}`, { cause: err });
    }
  } finally {
    closeSync(fd);
  }
}

function describe(v: unknown): string {
  return v === null ? 'null' : typeof v === 'object' ? (v.constructor?.name ?? 'object') : typeof v;
}
