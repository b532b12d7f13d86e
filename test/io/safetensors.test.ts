// safetensors: round trips of every dtype, PyTorch reading what we write, and hostile headers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, arange, memoryStats, scalar, tensor, zeros } from '../../src/index.js';
import { inspectSafetensors, loadSafetensors, parseSafetensors, saveSafetensors } from '../../src/io/index.js';
import { PYTHON, ROOT } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'deltatune-st-'));
const bytesOf = (t: Tensor) => Buffer.from(t.toArray().buffer);

function sample(): Record<string, Tensor> {
  return {
    f32: tensor([[1.5, -2], [3, 1e-30]]),
    f64: tensor(new Float64Array([1e-300, -2, Math.PI])),
    f16: tensor([1, -2.5, 65504]).to('float16'),
    bf16: tensor([1, 2.5, -3e38]).to('bfloat16'),
    i64: tensor(new BigInt64Array([-(2n ** 62n), 0n, 9007199254740993n])),
    i32: tensor(new Int32Array([-7, 0, 2147483647])),
    i16: tensor(new Int16Array([-32768, 0, 32767])),
    i8: tensor(new Int8Array([-128, 0, 127])),
    u8: tensor(new Uint8Array([0, 128, 255])),
    bool: tensor([true, false, true]),
    'zero-d': scalar(-4.25),
    empty: zeros([0, 3]),
    'non.contiguous': arange(12, undefined, 1, { dtype: 'float32' }).reshape([3, 4]).transpose(0, 1),
    'sliced': arange(20, undefined, 1, { dtype: 'int32' }).reshape([4, 5]).narrow(1, 1, 3),
  };
}

test('every dtype round-trips with values, shapes, metadata; 0-d, empty and non-contiguous tensors', () => {
  const input = sample();
  const path = join(dir, 'all.safetensors');
  const metadata: Record<string, string> = { format: 'pt', 'unicodé ✓': 'välue' };
  Object.defineProperty(metadata, '__proto__', { value: 'not a prototype', enumerable: true });
  saveSafetensors(path, input, metadata);
  const { tensors, metadata: meta } = loadSafetensors(path);
  assert.deepEqual([...tensors.keys()], Object.keys(input).sort());
  for (const [name, t] of Object.entries(input)) {
    const back = tensors.get(name)!;
    assert.equal(back.dtype, t.dtype, name);
    assert.deepEqual([...back.shape], [...t.shape], name);
    assert.ok(back.isContiguous(), name);
    assert.deepEqual(bytesOf(back), bytesOf(t), name);
  }
  assert.deepEqual(tensors.get('non.contiguous')!.toNumbers(), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
  assert.equal(meta.format, 'pt');
  assert.equal(meta['unicodé ✓'], 'välue');
  assert.equal(Object.getOwnPropertyDescriptor(meta, '__proto__')?.value, 'not a prototype');
  assert.equal(Object.getPrototypeOf(meta), Object.prototype);
  // Data starts 8-aligned after a space-padded header; no temporary file is left behind.
  const file = readFileSync(path);
  const n = Number(file.readBigUInt64LE(0));
  assert.equal(n % 8, 0);
  assert.match(file.subarray(8, 8 + n).toString(), /^\{"__metadata__":.*\} *$/);
  assert.deepEqual(readdirSync(dir), ['all.safetensors']);
  // The header alone, and a filtered load.
  const header = inspectSafetensors(path);
  assert.equal(header.entries.length, Object.keys(input).length);
  assert.equal(header.dataStart, 8 + n);
  const only = loadSafetensors(path, { filter: (k) => k.startsWith('i') });
  assert.deepEqual([...only.tensors.keys()], ['i16', 'i32', 'i64', 'i8']);
});

test('PyTorch reads what saveSafetensors writes (json/struct/torch.frombuffer reader)', () => {
  const input = sample();
  const path = join(dir, 'for-python.safetensors');
  saveSafetensors(path, new Map(Object.entries(input)), { by: 'deltatune' });
  const py = JSON.parse(execFileSync(PYTHON, [join(ROOT, 'test', 'oracle', 'io.py'), 'read', path], { encoding: 'utf8' })) as {
    headerLength: number; trailingSpaces: number; keys: string[]; metadata: Record<string, string>; dataLength: number;
    tensors: Record<string, { dtype: string; shape: number[]; data: string; offsets: [number, number] }>;
  };
  assert.equal(py.headerLength % 8, 0);
  assert.ok(py.trailingSpaces < 8);
  assert.deepEqual(py.keys, Object.keys(input).sort());
  assert.deepEqual(py.metadata, { by: 'deltatune' });
  let end = 0;
  for (const name of py.keys) {
    const t = input[name]!;
    const p = py.tensors[name]!;
    assert.equal(p.dtype, t.dtype, name);
    assert.deepEqual(p.shape, [...t.shape], name);
    assert.deepEqual(Buffer.from(p.data, 'base64'), bytesOf(t), name);
    assert.equal(p.offsets[0], end, `${name} follows the previous tensor without a gap`);
    end = p.offsets[1];
  }
  assert.equal(py.dataLength, end);
});

test('saveSafetensors refuses bad names, non-tensors and non-string metadata', () => {
  const path = join(dir, 'bad.safetensors');
  assert.throws(() => saveSafetensors(path, { __metadata__: zeros([1]) }), /'__metadata__' is reserved/);
  assert.throws(() => saveSafetensors(path, { a: [1, 2] as unknown as Tensor }), /'a' is not a Tensor/);
  const gone = zeros([1]);
  gone.dispose();
  assert.throws(() => saveSafetensors(path, { a: gone }), /'a' was already disposed/);
  assert.throws(() => saveSafetensors(path, { a: zeros([1]) }, { n: 3 as unknown as string }), /metadata 'n' must be a string/);
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('bad')), []);
});

/** A safetensors file from a header (object or raw text), data bytes and an optional length override. */
function st(header: unknown, data: Uint8Array = new Uint8Array(0), headerLength?: bigint): Buffer {
  const text = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(headerLength ?? BigInt(text.length));
  return Buffer.concat([prefix, text, data]);
}
const f32 = (shape: unknown, offsets: unknown, dtype: unknown = 'F32') => ({ dtype, shape, data_offsets: offsets });

const hostile: [string, Buffer, RegExp][] = [
  ['empty file', Buffer.alloc(0), /too short for a safetensors file/],
  ['7 bytes', Buffer.alloc(7), /too short/],
  ['header length 2^62', st({}, undefined, 2n ** 62n), /header length 4611686018427387904 is over the 100 MB limit/],
  ['header length 2^64-1', st({}, undefined, 2n ** 64n - 1n), /over the 100 MB limit/],
  ['header length past the file', st({}, undefined, 1000n), /header length 1000 runs past the end of the file/],
  ['invalid UTF-8', st('{"\xff"}').fill(0xff, 9, 10), /not valid UTF-8/],
  ['invalid JSON', st('{"a": '), /not valid JSON/],
  ['JSON array', st('[1,2]'), /not a JSON object/],
  ['JSON null', st('null'), /not a JSON object/],
  ['entry not an object', st({ w: 3 }), /tensor 'w': expected \{dtype, shape, data_offsets\}/],
  ['unknown dtype', st({ w: f32([1], [0, 8], 'C64') }, new Uint8Array(8)), /tensor 'w': dtype 'C64' is not supported/],
  ['dtype not a string', st({ w: f32([1], [0, 4], 4) }, new Uint8Array(4)), /tensor 'w': dtype must be a string/],
  ['negative shape', st({ w: f32([-1], [0, 4]) }, new Uint8Array(4)), /tensor 'w': shape must be an array of at most 64 non-negative integers/],
  ['fractional shape', st({ w: f32([1.5], [0, 6]) }, new Uint8Array(6)), /tensor 'w': shape must be/],
  ['string shape', st({ w: f32(['2'], [0, 8]) }, new Uint8Array(8)), /tensor 'w': shape must be/],
  ['shape not an array', st({ w: f32(2, [0, 8]) }, new Uint8Array(8)), /tensor 'w': shape must be/],
  ['too many dims', st({ w: f32(new Array(65).fill(1), [0, 4]) }, new Uint8Array(4)), /tensor 'w': shape must be/],
  ['unsafe shape entry', st({ w: f32([2 ** 60], [0, 4]) }, new Uint8Array(4)), /tensor 'w': shape must be/],
  ['shape overflowing bytes', st({ w: f32([2 ** 30, 2 ** 30, 2 ** 30], [0, 4]) }, new Uint8Array(4)), /tensor 'w': shape \[.*\] is too large/],
  ['offsets outside the data', st({ w: f32([4], [0, 16]) }, new Uint8Array(8)), /tensor 'w': data_offsets \[0,16\] run past the end of the data \(8 bytes\)/],
  ['offsets far outside', st({ w: f32([2 ** 40], [2 ** 50, 2 ** 50 + 2 ** 42]) }, new Uint8Array(8)), /tensor 'w': data_offsets .* run past the end/],
  ['begin after end', st({ w: f32([0], [8, 4]) }, new Uint8Array(8)), /tensor 'w': data_offsets must be \[begin, end\]/],
  ['negative offset', st({ w: f32([1], [-4, 0]) }, new Uint8Array(8)), /tensor 'w': data_offsets must be/],
  ['three offsets', st({ w: f32([1], [0, 4, 8]) }, new Uint8Array(8)), /tensor 'w': data_offsets must be/],
  ['wrong length', st({ w: f32([2], [0, 4]) }, new Uint8Array(8)), /tensor 'w': data_offsets \[0,4\] hold 4 bytes but shape \[2\] of F32 needs 8/],
  ['overlapping tensors', st({ a: f32([2], [0, 8]), b: f32([2], [4, 12]) }, new Uint8Array(12)), /tensor 'b' \(bytes 4..12\) overlaps tensor 'a' \(bytes 0..8\)/],
  ['duplicated ranges', st({ a: f32([2], [0, 8]), b: f32([2], [0, 8]) }, new Uint8Array(8)), /overlaps/],
  ['metadata not an object', st({ __metadata__: [1] }), /__metadata__ must be an object of strings/],
  ['metadata value not a string', st({ __metadata__: { epoch: 3 } }), /__metadata__ 'epoch' must be a string, got 3/],
  ['bool byte 2', st({ a: f32([1], [0, 4]), b: f32([2], [4, 6], 'BOOL') }, new Uint8Array([0, 0, 0, 0, 1, 2])), /tensor 'b': bool element 1 has byte value 2/],
];

test('hostile files: each a clear Error naming the file and key; nothing leaks or allocates', () => {
  const before = memoryStats().liveHandles;
  for (const [what, bytes, pattern] of hostile) {
    const path = join(dir, 'hostile.safetensors');
    writeFileSync(path, bytes);
    assert.throws(() => loadSafetensors(path), (err: Error) => {
      assert.ok(err instanceof Error, what);
      assert.ok(err.message.startsWith(`${path}: `), `${what}: ${err.message}`);
      assert.match(err.message, pattern, what);
      return true;
    });
    assert.throws(() => parseSafetensors(bytes), (err: Error) => err.message.startsWith('<buffer>: ') && pattern.test(err.message), what);
  }
  // A partly loaded file ('a' was read before 'b' failed) frees what it made.
  assert.equal(memoryStats().liveHandles, before);
});

test('truncated files: every prefix of a valid file is refused cleanly', () => {
  const path = join(dir, 'whole.safetensors');
  saveSafetensors(path, { a: tensor([1, 2, 3]), b: tensor(new Int16Array([4, 5])) }, { k: 'v' });
  const whole = readFileSync(path);
  assert.equal(parseSafetensors(whole).tensors.size, 2);
  for (let n = 0; n < whole.length; n++) {
    assert.throws(() => parseSafetensors(whole.subarray(0, n)), /^Error: <buffer>: /, `prefix of ${n} bytes`);
  }
  // Trailing bytes after the last tensor and gaps between tensors are accepted.
  const gapped = st({ a: f32([1], [4, 8]), b: f32([1], [12, 16]) }, new Uint8Array(20));
  assert.deepEqual([...parseSafetensors(gapped).tensors.keys()], ['a', 'b']);
});

test('missing files and directories are clear errors', () => {
  assert.throws(() => loadSafetensors(join(dir, 'nope.safetensors')), /nope\.safetensors: cannot open: ENOENT/);
  assert.throws(() => loadSafetensors(dir), /not a regular file/);
});
