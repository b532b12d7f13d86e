// The output policy every command that writes follows: never replace an existing file or run
// without `force`, never write over a file the command read (its delta, its base, its data), never
// write into a pseudo-filesystem, and undo what a failed start created.
import { existsSync, lstatSync, mkdirSync, readdirSync, realpathSync, rmSync, rmdirSync, statSync, statfsSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { describeFileType } from './read.js';

/** An output the policy refuses; the CLI prints it as one line (exit 1). */
export class OutputRefusedError extends Error {}

// statfs(2) magic numbers of kernel pseudo-filesystems: writes there reach the kernel, not a disk.
const PSEUDO_FILESYSTEMS = new Map<number, string>([
  [0x9fa0, 'proc'], [0x62656572, 'sysfs'], [0x1cd1, 'devpts'], [0x27e0eb, 'cgroup'], [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'], [0x74726163, 'tracefs'], [0x73636673, 'securityfs'], [0xcafe4a11, 'bpf'],
  [0x62656570, 'configfs'], [0x6165676c, 'pstore'], [0xde5e81e4, 'efivarfs'], [0x42494e4d, 'binfmt_misc'],
]);

/**
 * `path` made absolute with its existing part's symlinks resolved: `existing` is the deepest
 * ancestor that exists (itself if it exists), `full` that plus the parts not created yet.
 */
function resolveExisting(path: string): { existing: string; full: string } {
  let p = resolve(path);
  const rest: string[] = [];
  while (!existsSync(p) && dirname(p) !== p) {
    rest.unshift(basename(p));
    p = dirname(p);
  }
  const existing = realpathSync(p);
  return { existing, full: rest.length ? join(existing, ...rest) : existing };
}

/** Refuses outputs under /proc, /sys, /dev (but /dev/shm) and other kernel filesystems. */
export function checkNotPseudoFilesystem(path: string, what: string): void {
  const real = resolveExisting(path).existing;
  const underDev = (real === '/dev' || real.startsWith(`/dev${sep}`)) && !(real === '/dev/shm' || real.startsWith('/dev/shm/'));
  let kind: string | undefined = underDev ? 'devtmpfs' : undefined;
  if (!kind) {
    try {
      kind = PSEUDO_FILESYSTEMS.get(Number(statfsSync(real).type));
    } catch {
      // statfs unavailable: the path checks below still apply
    }
  }
  if (!kind && /^\/(proc|sys)(\/|$)/.test(real)) kind = real.split('/')[1];
  if (kind) throw new OutputRefusedError(`${what} ${path} is on a kernel pseudo-filesystem (${kind}), not a place for files`);
}

/** Identity of a file for "is this the same file" checks: device and inode, through symlinks. */
function identity(path: string): string | null {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

/** Every regular file under `path` (itself if a file), for "would this delete something we read" checks. */
function filesUnder(path: string, out: string[] = [], depth = 0): string[] {
  let st;
  try {
    // The path as given is followed (a symlink to the base is the base); links inside are not.
    st = depth === 0 ? statSync(path) : lstatSync(path);
  } catch {
    return out;
  }
  if (st.isDirectory() && depth < 16) for (const name of readdirSync(path)) filesUnder(join(path, name), out, depth + 1);
  else if (st.isFile()) out.push(path);
  return out;
}

export interface OutputFileOptions {
  /** Replace an existing file. */
  force?: boolean;
  /** Files (or folders) the command reads; the output may never be one of them, even with force. */
  reads?: readonly (string | null | undefined)[];
  /** How to name the output in messages, e.g. '--out'. */
  what?: string;
}

/** Checks that `path` may be written as a file under the policy; throws OutputRefusedError if not. */
export function checkOutputFile(path: string, options: OutputFileOptions = {}): void {
  const what = options.what ?? 'output';
  checkNotPseudoFilesystem(path, what);
  const target = resolve(path);
  const parent = dirname(target);
  if (!existsSync(parent)) throw new OutputRefusedError(`${what} ${path}: the folder ${parent} does not exist`);
  if (!statSync(parent).isDirectory()) throw new OutputRefusedError(`${what} ${path}: ${parent} is not a folder`);
  let st;
  try {
    st = statSync(target);
  } catch {
    st = null;
  }
  if (st && !st.isFile()) throw new OutputRefusedError(`${what} ${path} is ${describeFileType(st)}; give a file path`);
  const id = st ? identity(target) : null;
  for (const read of options.reads ?? []) {
    if (!read) continue;
    const files = filesUnder(resolve(read));
    const hit = id !== null && files.some((f) => identity(f) === id);
    if (hit || resolve(read) === target) {
      const whole = resolve(read) === target || (files.length === 1 && files[0] === resolve(read));
      throw new OutputRefusedError(`${what} ${path} is ${whole ? `${read}, a file` : `inside ${read}, which`} this command reads; write somewhere else (--force does not apply)`);
    }
  }
  if (st && !options.force) throw new OutputRefusedError(`${what} ${path} already exists; pass --force to replace it`);
}

/**
 * A folder a command is about to fill. `prepare()` creates it (and missing parents) and remembers
 * what it created; `rollback()` removes exactly that after a failed start; `commit()` keeps it.
 */
export class OutputFolder {
  readonly path: string;
  #created: string | null = null;
  #preExisting: Set<string> | null = null;
  #committed = false;

  constructor(path: string) {
    this.path = resolve(path);
  }

  prepare(): this {
    if (existsSync(this.path)) {
      this.#preExisting = new Set(readdirSync(this.path));
    } else {
      // mkdirSync returns the first folder it created: the one to remove on rollback.
      this.#created = mkdirSync(this.path, { recursive: true }) ?? this.path;
    }
    return this;
  }

  commit(): void {
    this.#committed = true;
  }

  /** Removes what this start created: the folder it made, or the entries it added to an existing one. */
  rollback(): void {
    if (this.#committed) return;
    if (this.#created) {
      // Only this folder goes whole; a parent it created goes only if still empty (another run may use it by now).
      rmSync(this.path, { recursive: true, force: true });
      for (let p = dirname(this.path); p.length >= this.#created.length && p !== dirname(p); p = dirname(p)) {
        try {
          rmdirSync(p);
        } catch {
          break;
        }
      }
    } else if (this.#preExisting && existsSync(this.path)) {
      for (const name of readdirSync(this.path)) if (!this.#preExisting.has(name)) rmSync(join(this.path, name), { recursive: true, force: true });
    }
    this.#committed = true;
  }
}

/** Whether `inner` is `outer` or lies inside it (paths resolved, symlinks of existing parts too). */
export function isInside(inner: string, outer: string): boolean {
  const a = resolveExisting(inner).full;
  const b = resolveExisting(outer).full;
  return a === b || a.startsWith(b.endsWith(sep) ? b : b + sep);
}
