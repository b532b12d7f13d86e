// Shared test helpers: closeness checks and the PyTorch oracle runner.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tensor, tensor } from '../src/index.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Debian's interpreter: it has python3-torch; a python3 earlier on PATH (pyenv) may not. */
export const PYTHON = '/usr/bin/python3';

/**
 * Runs `body` (ES module code) in a fresh Node process in which `lib` is the library's index
 * module, with extra environment variables; for what only a new process shows (load-time settings,
 * per-process peaks).
 */
export function runWithLibrary(body: string, env: Record<string, string> = {}): SpawnSyncReturns<string> {
  const index = JSON.stringify(join(ROOT, 'dist', 'src', 'index.js'));
  return spawnSync(process.execPath, ['--input-type=module', '-e', `const lib = await import(${index});\n${body}`], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
}

/** Asserts |actual − expected| ≤ atol + rtol·|expected| elementwise, naming the worst element. */
export function assertClose(
  actual: Tensor | ArrayLike<number>,
  expected: Tensor | ArrayLike<number>,
  { rtol = 1e-5, atol = 1e-6, what = 'value' }: { rtol?: number; atol?: number; what?: string } = {},
): void {
  if (actual instanceof Tensor && expected instanceof Tensor) {
    assert.deepEqual([...actual.shape], [...expected.shape], `${what}: shape`);
  }
  const a = actual instanceof Tensor ? actual.toNumbers() : Array.from(actual);
  const e = expected instanceof Tensor ? expected.toNumbers() : Array.from(expected);
  assert.equal(a.length, e.length, `${what}: element count`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < a.length; i++) {
    const ai = a[i]!;
    const ei = e[i]!;
    if (Number.isNaN(ei) && Number.isNaN(ai)) continue;
    if (ai === ei) continue;
    const excess = Math.abs(ai - ei) - (atol + rtol * Math.abs(ei));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    assert.fail(`${what}: element ${worst} is ${a[worst]}, expected ${e[worst]} (rtol ${rtol}, atol ${atol}, ${a.length} elements)`);
  }
}

export interface OracleArray {
  dtype: string;
  shape: number[];
  /** base64 of the little-endian element bytes */
  data: string;
}

/** Rebuilds a tensor saved by test/oracle/common.py. */
export function fromOracle(o: OracleArray): Tensor {
  const bytes = Buffer.from(o.data, 'base64');
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  const buf = copy.buffer;
  switch (o.dtype) {
    case 'float32': return tensor(new Float32Array(buf), { shape: o.shape });
    case 'float64': return tensor(new Float64Array(buf), { shape: o.shape });
    case 'int64': return tensor(new BigInt64Array(buf), { shape: o.shape });
    case 'int32': return tensor(new Int32Array(buf), { shape: o.shape });
    case 'uint8': return tensor(new Uint8Array(buf), { shape: o.shape });
    case 'bool': return tensor(new Uint8Array(buf), { shape: o.shape, dtype: 'bool' });
    default: throw new Error(`fromOracle: unsupported dtype ${o.dtype}`);
  }
}

/**
 * Runs test/oracle/<name>.py with Debian's python3 (PyTorch) and returns its JSON output,
 * cached under .cache/oracle until the script changes.
 */
export function runOracle<T = unknown>(name: string): T {
  const script = join(ROOT, 'test', 'oracle', `${name}.py`);
  const cacheDir = join(ROOT, '.cache', 'oracle');
  const out = join(cacheDir, `${name}.json`);
  const common = join(ROOT, 'test', 'oracle', 'common.py');
  const fresh =
    existsSync(out) &&
    statSync(out).mtimeMs > statSync(script).mtimeMs &&
    (!existsSync(common) || statSync(out).mtimeMs > statSync(common).mtimeMs);
  if (!fresh) {
    mkdirSync(cacheDir, { recursive: true });
    const json = execFileSync(PYTHON, [script], { cwd: ROOT, maxBuffer: 1 << 30, encoding: 'utf8' });
    const tmp = `${out}.${process.pid}.tmp`;
    writeFileSync(tmp, json);
    renameSync(tmp, out);
  }
  return JSON.parse(readFileSync(out, 'utf8')) as T;
}

/**
 * Non-regular files in `dir` named with `ext` (a FIFO, a folder, a symlink to each of the FIFO and
 * /dev/zero) and, for each, the words its refusal must contain; for the bounded-reading tests.
 */
export function nonRegularInputs(dir: string, ext: string): { fifo: string; bad: [string, RegExp][] } {
  const fifo = join(dir, `fifo${ext}`);
  execFileSync('mkfifo', [fifo]);
  const folder = join(dir, `folder${ext}`);
  mkdirSync(folder);
  symlinkSync(fifo, join(dir, `to-fifo${ext}`));
  symlinkSync('/dev/zero', join(dir, `to-zero${ext}`));
  return {
    fifo,
    bad: [
      [fifo, /is a FIFO \(named pipe\), not a regular file/],
      [join(dir, `to-fifo${ext}`), new RegExp(`is a FIFO \\(named pipe\\) \\(it resolves to .*fifo\\${ext}\\), not a regular file`)],
      ['/dev/zero', /is a character device, not a regular file/],
      [join(dir, `to-zero${ext}`), /is a character device \(it resolves to \/dev\/zero\), not a regular file/],
      [folder, /is a directory, not a regular file/],
    ],
  };
}
