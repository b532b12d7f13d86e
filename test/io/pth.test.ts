// PyTorch .pth files: checkpoints made by torch.save load with identical values and shared
// storage; hostile pickles and archives are refused by name, and nothing they name ever runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { Tensor, memoryStats, tensor } from '../../src/index.js';
import { loadPth, loadStateDict, parsePth, saveStateDict } from '../../src/io/index.js';
import { runOracle } from '../helpers.js';

interface Expected { dtype: string; shape: number[]; stride: number[]; offset: number; requiresGrad: boolean; data: string }
interface Oracle {
  expected: Record<string, Expected>;
  moduleExpected: Record<string, Expected>;
  files: Record<string, string>;
  hostile: Record<string, string>;
  marker: string;
}
const oracle = runOracle<Oracle>('io');
const dir = mkdtempSync(join(tmpdir(), 'deltatune-pth-'));
const file = (name: string): string => {
  const path = join(dir, name);
  if (!existsSync(path)) writeFileSync(path, Buffer.from((oracle.files[name] ?? oracle.hostile[name])!, 'base64'));
  return path;
};
const bytesOf = (t: Tensor) => Buffer.from(t.toArray().buffer);
const asMap = (v: unknown) => v as Map<unknown, unknown>;

function assertMatches(t: unknown, e: Expected, what: string, { layout = true } = {}): void {
  assert.ok(t instanceof Tensor, `${what} is a tensor`);
  assert.equal(t.dtype, e.dtype, what);
  assert.deepEqual([...t.shape], e.shape, what);
  if (layout) assert.deepEqual(t.strides, e.stride, `${what} strides`);
  assert.deepEqual(bytesOf(t), Buffer.from(e.data, 'base64'), `${what} values`);
}

// ---- builders for hand-made archives and pickles ------------------------------------------

const le = (n: number | bigint, size: number) => {
  const b = Buffer.alloc(size);
  if (size === 8) b.writeBigUInt64LE(BigInt(n));
  else b.writeUIntLE(Number(n), 0, size);
  return b;
};

/** A stored zip like torch.save's; `zip64` saturates the 32-bit fields and adds the ZIP64 records. */
function makeZip(files: [string, Uint8Array | string][], { zip64 = false } = {}): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, content] of files) {
    const data = Buffer.from(content);
    const n = Buffer.from(name);
    const crc = crc32(data);
    const local = Buffer.concat([le(0x04034b50, 4), le(45, 2), le(0, 2), le(0, 2), le(0, 4), le(crc, 4), le(data.length, 4), le(data.length, 4), le(n.length, 2), le(0, 2), n, data]);
    const big = (v: number) => (zip64 ? 0xffffffff : v);
    const extra = zip64 ? Buffer.concat([le(1, 2), le(24, 2), le(data.length, 8), le(data.length, 8), le(offset, 8)]) : Buffer.alloc(0);
    centrals.push(Buffer.concat([
      le(0x02014b50, 4), le(0x031e, 2), le(45, 2), le(0, 2), le(0, 2), le(0, 4), le(crc, 4),
      le(big(data.length), 4), le(big(data.length), 4), le(n.length, 2), le(extra.length, 2), le(0, 2), le(0, 2), le(0, 2), le(0, 4),
      le(big(offset), 4), n, extra,
    ]));
    locals.push(local);
    offset += local.length;
  }
  const cd = Buffer.concat(centrals);
  const count = files.length;
  const tail: Buffer[] = [];
  if (zip64) {
    const at = offset + cd.length;
    tail.push(Buffer.concat([le(0x06064b50, 4), le(44, 8), le(45, 2), le(45, 2), le(0, 4), le(0, 4), le(count, 8), le(count, 8), le(cd.length, 8), le(offset, 8)]));
    tail.push(Buffer.concat([le(0x07064b50, 4), le(0, 4), le(at, 8), le(1, 4)]));
  }
  const eocd = zip64
    ? Buffer.concat([le(0x06054b50, 4), le(0, 2), le(0, 2), le(0xffff, 2), le(0xffff, 2), le(0xffffffff, 4), le(0xffffffff, 4), le(0, 2)])
    : Buffer.concat([le(0x06054b50, 4), le(0, 2), le(0, 2), le(count, 2), le(count, 2), le(cd.length, 4), le(offset, 4), le(0, 2)]);
  return Buffer.concat([...locals, cd, ...tail, eocd]);
}

// Pickle opcodes, spelled out so each hostile case reads as the bytes it is.
const MARK = 0x28, STOP = 0x2e, TUPLE = 0x74, EMPTY_DICT = 0x7d, EMPTY_TUPLE = 0x29, EMPTY_LIST = 0x5d, SETITEM = 0x73;
const REDUCE = 0x52, BINPERSID = 0x51, NEWFALSE = 0x89, NONE = 0x4e, PROTO2 = [0x80, 2];
const str = (s: string) => [0x58, ...le(Buffer.byteLength(s), 4), ...Buffer.from(s)];
const int = (n: number) => [0x4a, ...le(n >>> 0, 4)];
const float = (x: number) => { const b = Buffer.alloc(8); b.writeDoubleBE(x); return [0x47, ...b]; };
const global = (module: string, name: string) => [0x63, ...Buffer.from(`${module}\n${name}\n`)];
const tuple = (...items: number[][]) => [MARK, ...items.flat(), TUPLE];
const pickle = (...ops: (number | number[])[]) => Uint8Array.from([...PROTO2, ...ops.flat(), STOP]);

interface TensorSpec { numel: number; size: number[]; stride: number[]; offset?: number; type?: string; pid?: number[] }
/** _rebuild_tensor_v2(storage '0', offset, size, stride, False, OrderedDict()) */
function rebuild({ numel, size, stride, offset = 0, type = 'FloatStorage', pid }: TensorSpec): number[] {
  const storage = pid ?? tuple(str('storage'), global('torch', type), str('0'), str('cpu'), int(numel));
  return [...global('torch._utils', '_rebuild_tensor_v2'),
    ...tuple(storage, [BINPERSID], int(offset), tuple(...size.map(int)), tuple(...stride.map(int)), [NEWFALSE],
      global('collections', 'OrderedDict'), [EMPTY_TUPLE, REDUCE]),
    REDUCE];
}
/** {'w': rebuild(spec)} */
const tensorPickle = (spec: TensorSpec) => pickle(EMPTY_DICT, str('w'), rebuild(spec), SETITEM);
const archive = (pkl: Uint8Array, storage?: Uint8Array, options?: { zip64?: boolean }) =>
  makeZip([['archive/data.pkl', pkl], ...(storage ? [['archive/data/0', storage] as [string, Uint8Array]] : []), ['archive/version', '3\n']], options);
const floats = (...v: number[]) => new Uint8Array(Float32Array.from(v).buffer);

// ---- tests --------------------------------------------------------------------------------

test('a torch.save checkpoint loads with identical values, dtypes, strides and shared storages', () => {
  const ckpt = asMap(loadPth(file('checkpoint.pth')));
  assert.deepEqual([...ckpt.keys()], ['epoch', 'state_dict', 'optimizer', 'meta']);
  assert.equal(ckpt.get('epoch'), 7);
  const meta = asMap(ckpt.get('meta'));
  assert.equal(meta.get('name'), 'résumé');
  assert.equal(meta.get('big'), 2n ** 70n);
  assert.equal(meta.get('neg'), -5);
  assert.equal(meta.get('float'), 0.25);
  assert.equal(meta.get('none'), null);
  assert.equal(meta.get('flag'), true);
  assert.deepEqual(meta.get('tuple'), [1, 'a']);
  assert.deepEqual(meta.get('set'), new Set([1, 2]));
  assert.deepEqual(meta.get('bytes'), Uint8Array.from([0, 255, 97, 98]));
  assert.deepEqual(meta.get('size'), [2, 3]);
  const momentum = asMap(asMap(asMap(ckpt.get('optimizer')).get('state')).get(0)).get('momentum_buffer') as Tensor;
  assert.deepEqual(momentum.toNumbers(), [1, 1, 1]);

  const sd = asMap(ckpt.get('state_dict'));
  assert.deepEqual([...sd.keys()], Object.keys(oracle.expected));
  for (const [key, e] of Object.entries(oracle.expected)) {
    assertMatches(sd.get(key), e, key);
    assert.equal((sd.get(key) as Tensor).requiresGrad, e.requiresGrad, `${key} requiresGrad`);
  }
  const base = sd.get('shared.base') as Tensor;
  assert.ok((sd.get('shared.slice') as Tensor).sharesMemoryWith(base));
  assert.ok((sd.get('shared.t') as Tensor).sharesMemoryWith(base));
  assert.ok(!(sd.get('f32') as Tensor).sharesMemoryWith(base));
  // Deflated entries and an explicit little-endian byteorder record give the same tensors.
  for (const variant of ['deflated.pth', 'little.pth']) {
    const v = asMap(asMap(loadPth(file(variant))).get('state_dict'));
    for (const [key, e] of Object.entries(oracle.expected)) assertMatches(v.get(key), e, `${variant} ${key}`);
  }
});

test('loadStateDict finds the weights in common layouts and frees everything else', () => {
  const before = memoryStats().liveHandles;
  const sd = loadStateDict(file('checkpoint.pth'));
  // Only the returned tensors stay alive: storages and optimizer state were freed.
  assert.equal(memoryStats().liveHandles - before, sd.size);
  const fromSafetensors = loadStateDict(file('checkpoint.safetensors'));
  assert.deepEqual([...sd.keys()], Object.keys(oracle.expected));
  assert.deepEqual([...fromSafetensors.keys()].sort(), Object.keys(oracle.expected).sort());
  for (const [key, e] of Object.entries(oracle.expected)) {
    assertMatches(sd.get(key), e, `pth ${key}`);
    assertMatches(fromSafetensors.get(key), e, `safetensors ${key}`, { layout: false });
  }
  const module = loadStateDict(file('module.pth'));
  const wrapped = loadStateDict(file('wrapped.pth'));
  assert.deepEqual([...module.keys()], Object.keys(oracle.moduleExpected));
  assert.deepEqual([...wrapped.keys()], Object.keys(oracle.moduleExpected), "'module.' prefixes are stripped");
  for (const [key, e] of Object.entries(oracle.moduleExpected)) {
    assertMatches(module.get(key), e, key);
    assertMatches(wrapped.get(key), e, `wrapped ${key}`);
  }
  const out = join(dir, 'resaved.safetensors');
  saveStateDict(out, sd, { source: 'checkpoint.pth' });
  const again = loadStateDict(out);
  for (const [key, e] of Object.entries(oracle.expected)) assertMatches(again.get(key), e, `resaved ${key}`, { layout: false });

  const compiled = join(dir, 'compiled.safetensors');
  saveStateDict(compiled, { '_orig_mod.module.a': tensor([1]), '_orig_mod.module.b.c': tensor([2]) });
  assert.deepEqual([...loadStateDict(compiled).keys()], ['a', 'b.c']);
  const partial = join(dir, 'partial.safetensors');
  saveStateDict(partial, { 'module.a': tensor([1]), b: tensor([2]) });
  assert.deepEqual([...loadStateDict(partial).keys()], ['b', 'module.a'], 'a prefix only some keys have is a real name');
});

test('checkpoints without a state dict are explained with their top-level keys', () => {
  const noWeights = join(dir, 'no-weights.pth');
  writeFileSync(noWeights, archive(pickle(EMPTY_DICT, str('epoch'), int(1), SETITEM, str('lr'), float(0.1), SETITEM)));
  assert.throws(() => loadStateDict(noWeights), /no-weights\.pth: no state dict found: 'epoch' holds a number, not a tensor, and none of 'state_dict', 'model', 'model_state_dict', 'module' holds a dict \(top-level keys: epoch, lr\)/);
  const mixed = join(dir, 'mixed.pth');
  writeFileSync(mixed, archive(pickle(EMPTY_DICT, str('state_dict'), EMPTY_DICT, str('a'), [NONE], SETITEM, SETITEM)));
  assert.throws(() => loadStateDict(mixed), /mixed\.pth: the state dict under 'state_dict' is not all tensors: 'a' holds a None, not a tensor \(top-level keys: state_dict\)/);
  const list = join(dir, 'list.pth');
  writeFileSync(list, archive(pickle(EMPTY_LIST)));
  assert.throws(() => loadStateDict(list), /list\.pth: the checkpoint is a tuple\/list, not a dict of tensors/);
});

test('legacy, big-endian, TorchScript and non-checkpoint files are refused with what to do', () => {
  assert.throws(() => loadPth(file('legacy.pth')), /legacy\.pth: is a legacy \(non-zip\) PyTorch checkpoint.*re-save it with a current torch\.save/);
  assert.throws(() => loadStateDict(file('legacy.pth')), /legacy \(non-zip\)/);
  assert.throws(() => loadPth(file('big.pth')), /big\.pth: stores tensors in "big"-endian byte order/);
  assert.throws(() => loadPth(file('scripted.pt')), /scripted\.pt: is a TorchScript archive/);
  const text = join(dir, 'notes.txt');
  writeFileSync(text, 'hello world');
  assert.throws(() => loadPth(text), /notes\.txt: is not a PyTorch checkpoint/);
  assert.throws(() => loadStateDict(text), /notes\.txt: neither a PyTorch checkpoint .* nor a safetensors file \(it starts with 'hello wor', which looks like text\)/);
});

test('ZIP64 archives (torch writes them beyond 4 GB) and hand-made tensor pickles load', () => {
  const pkl = tensorPickle({ numel: 6, size: [3, 2], stride: [1, 3] });
  for (const zip64 of [false, true]) {
    const w = asMap(parsePth(archive(pkl, floats(0, 1, 2, 3, 4, 5), { zip64 }))).get('w') as Tensor;
    assert.deepEqual(w.toNumbers(), [0, 3, 1, 4, 2, 5], `zip64=${zip64}`);
    assert.deepEqual(w.strides, [1, 3]);
  }
  // Tensors the pickle builds and then drops (a popped value, an overwritten key) are freed.
  const before = memoryStats().liveHandles;
  const spec = { numel: 6, size: [6], stride: [1] };
  const dropped = pickle(EMPTY_DICT, rebuild(spec), 0x30, str('w'), rebuild(spec), SETITEM, str('w'), rebuild({ ...spec, size: [2], offset: 4 }), SETITEM);
  const w = asMap(parsePth(archive(dropped, floats(0, 1, 2, 3, 4, 5)))).get('w') as Tensor;
  assert.deepEqual(w.toNumbers(), [4, 5]);
  assert.equal(memoryStats().liveHandles - before, 1);
});

test('hostile pickles are refused by the global they name, and nothing runs', () => {
  rmSync(oracle.marker, { force: true });
  const cases: [string, RegExp][] = [
    ['posix_system_p2', /refused to load the global posix\.system/],
    ['builtins_eval_p2', /refused to load the global builtins\.eval/],
    ['builtins_eval_p4', /refused to load the global builtins\.eval/],
    ['subprocess_popen', /refused to load the global subprocess\.Popen/],
    // Protocol 2 writes Python 2 module names; the error names the global as the file does.
    ['subprocess_popen_p2', /refused to load the global commands\.Popen/],
  ];
  for (const [name, pattern] of cases) {
    const path = file(name);
    for (const load of [loadPth, loadStateDict]) {
      assert.throws(() => load(path), (err: Error) => {
        assert.ok(err.message.startsWith(`${path}: archive/data.pkl: `), err.message);
        assert.match(err.message, pattern);
        assert.match(err.message, /\(opcode (STACK_)?GLOBAL at byte \d+\)$/);
        return true;
      });
    }
  }
  const handMade: [Uint8Array, RegExp][] = [
    [pickle(global('os', 'system'), tuple(str(`touch ${oracle.marker}`)), REDUCE), /global os\.system/],
    [pickle(str('builtins'), str('exec'), 0x93), /global builtins\.exec:.*\(opcode STACK_GLOBAL at byte \d+\)$/],
    [pickle(global('__builtin__', 'getattr')), /global builtins\.getattr/],
    [pickle(global('numpy.core.multiarray', '_reconstruct')), /global numpy\.core\.multiarray\._reconstruct/],
    [pickle(global('torch.nn.modules.linear', 'Linear')), /global torch\.nn\.modules\.linear\.Linear.*torch\.save\(model\.state_dict\(\), path\)/],
    [pickle(global('torch', 'load')), /global torch\.load/],
    [pickle(global('torch._utils', '_rebuild_device_tensor_from_numpy')), /global torch\._utils\._rebuild_device_tensor_from_numpy/],
    [tensorPickle({ numel: 2, size: [2], stride: [1], type: 'ComplexFloatStorage' }), /storage type torch\.ComplexFloatStorage is not supported/],
  ];
  for (const [pkl, pattern] of handMade) {
    assert.throws(() => parsePth(archive(pkl, floats(1, 2, 3, 4))), (err: Error) => err.message.startsWith('<buffer>: archive/data.pkl: ') && pattern.test(err.message));
  }
  assert.equal(existsSync(oracle.marker), false, 'no hostile command ran');
});

test('structurally hostile pickles and archives: clear Errors, no leaks, no giant allocations', () => {
  const data = floats(1, 2, 3, 4);
  const pickles: [string, Uint8Array, RegExp][] = [
    ['unknown opcode', Uint8Array.from([...PROTO2, 0xff]), /unsupported opcode .*\(opcode 0xff at byte 2\)/],
    ['text-protocol INT', Uint8Array.from([...PROTO2, 0x49, 0x31, 0x0a, STOP]), /unsupported opcode .*\(opcode 0x49/],
    ['empty pickle', new Uint8Array(0), /data ends without a STOP opcode \(truncated\)/],
    ['no STOP', Uint8Array.from([...PROTO2, NONE]), /data ends without a STOP opcode/],
    ['protocol 6', Uint8Array.from([0x80, 6, NONE, STOP]), /pickle protocol 6 is not supported/],
    ['missing memo', pickle(0x68, 5), /memo key 5 was never stored \(opcode BINGET/],
    ['empty stack', pickle(), /stack underflow \(opcode STOP/],
    ['underflow past a MARK', pickle(NONE, MARK, 0x86), /stack underflow \(opcode TUPLE2/],
    ['POP_MARK without MARK', pickle(0x31), /no MARK to pop to/],
    ['4 GB string', Uint8Array.from([...PROTO2, 0x58, 0xff, 0xff, 0xff, 0xff]), /needs 4294967295 bytes but only 0 remain/],
    ['2^63-byte string', Uint8Array.from([...PROTO2, 0x8d, 0, 0, 0, 0, 0, 0, 0, 0x80]), /needs \d+ bytes but only 0 remain/],
    ['2 GB integer', Uint8Array.from([...PROTO2, 0x8b, 0, 0, 0, 0x80]), /integer of 2147483648 bytes is over the 1024-byte limit/],
    ['deep MARKs', Uint8Array.from([...PROTO2, ...new Array(20_000).fill(MARK)]), /MARKs nest deeper than 10000/],
    ['invalid UTF-8', Uint8Array.from([...PROTO2, 0x8c, 1, 0xff, STOP]), /string is not valid UTF-8/],
    ['SETITEM on a list', pickle(EMPTY_LIST, NONE, NONE, SETITEM), /SETITEM target is a tuple\/list, not a dict/],
    ['APPEND to a dict', pickle(EMPTY_DICT, NONE, 0x61), /APPEND target is a dict, not a list/],
    ['odd DICT', pickle(MARK, NONE, 0x64), /odd number of items for a dict/],
    ['calling None', pickle(NONE, EMPTY_TUPLE, REDUCE), /cannot call a None/],
    ['args not a tuple', pickle(global('collections', 'OrderedDict'), NONE, REDUCE), /call arguments are a None, not a tuple/],
    ['calling a storage type', pickle(global('torch', 'FloatStorage'), EMPTY_TUPLE, REDUCE), /cannot call a torch\.FloatStorage/],
    ['BUILD with a string state', pickle([...tensorPickle({ numel: 4, size: [4], stride: [1] }).slice(2, -1)], str('w'), 0x62), /cannot set the state of a dict from a string/],
    ['GLOBAL without newline', Uint8Array.from([...PROTO2, 0x63, 0x61, 0x62]), /GLOBAL name is not a line/],
    ['bad persistent id', pickle(NONE, BINPERSID), /persistent id is not a \('storage', type, key, location, numel\) tuple/],
    ['storage type not a type', tensorPickle({ numel: 4, size: [4], stride: [1], pid: tuple(str('storage'), [NONE], str('0'), str('cpu'), int(4)) }), /persistent id for storage "0" is malformed/],
    ['rebuild from a non-storage', pickle(global('torch._utils', '_rebuild_tensor'), tuple([NONE], int(0), tuple(), tuple()), REDUCE), /a tensor must be rebuilt from a storage/],
    ['wrong numel', tensorPickle({ numel: 8, size: [8], stride: [1] }), /storage '0' holds 16 bytes, but 8 float32 elements need 32/],
    ['numel 2^50', tensorPickle({ numel: 2 ** 50, size: [4], stride: [1], pid: tuple(str('storage'), global('torch', 'FloatStorage'), str('0'), str('cpu'), [0x8a, 8, ...le(2 ** 50, 8)]) }), /but 1125899906842624 float32 elements need 4503599627370496/],
    ['view past the storage', tensorPickle({ numel: 4, size: [2, 3], stride: [3, 1] }), /tensor of size \[2,3\], stride \[3,1\] at offset 0 does not fit in its storage of 4 elements/],
    ['offset past the storage', tensorPickle({ numel: 4, size: [1], stride: [1], offset: 4 }), /at offset 4 does not fit/],
    ['huge stride', tensorPickle({ numel: 4, size: [2], stride: [2 ** 31 - 1] }), /does not fit in its storage/],
    ['size/stride mismatch', tensorPickle({ numel: 4, size: [2, 2], stride: [1] }), /size \[2,2\] and stride \[1\] do not match/],
    ['negative size', tensorPickle({ numel: 4, size: [-1], stride: [1] }), /size must be a tuple of non-negative integers/],
    ['bool bytes', tensorPickle({ numel: 16, size: [16], stride: [1], type: 'BoolStorage' }), /storage '0': bool element 1 has byte value 128/],
  ];
  const zipWithout = makeZip([['archive/data.pkl', tensorPickle({ numel: 4, size: [4], stride: [1] })], ['archive/version', '3\n']]);
  const good = archive(tensorPickle({ numel: 4, size: [4], stride: [1] }), data);
  const cd = good.indexOf(Buffer.from([0x50, 0x4b, 1, 2]));
  const patched = (at: number, value: number, size: number) => {
    const b = Buffer.from(good);
    b.writeUIntLE(value, at, size);
    return b;
  };
  const archives: [string, Uint8Array, RegExp][] = [
    ['missing storage', zipWithout, /storage '0' is missing \(no archive\/data\/0 in the archive\)/],
    ['truncated zip', good.subarray(0, good.length - 10), /zip archive: no end-of-central-directory record/],
    ['empty zip', makeZip([]), /expected one <prefix>\/data\.pkl, found 0/],
    ['two data.pkl', makeZip([['a/data.pkl', pickle(NONE)], ['b/data.pkl', pickle(NONE)]]), /found 2/],
    ['duplicate entries', makeZip([['a/data.pkl', pickle(NONE)], ['a/data.pkl', pickle(NONE)]]), /entry 'a\/data\.pkl' appears twice/],
    ['central directory outside', patched(good.length - 6, 0x7fffffff, 4), /central directory lies outside the file/],
    ['entry count too large', patched(good.length - 12, 0xffff, 2), /65535 entries cannot fit/],
    ['local header elsewhere', patched(cd + 42, 7, 4), /entry 'archive\/data\.pkl': no local header at byte 7/],
    ['local offset past the end', patched(cd + 42, 0x7fffff00, 4), /truncated: needs bytes/],
    ['compression method 12', patched(cd + 10, 12, 2), /compression method 12; only stored and deflate/],
    ['encrypted', patched(cd + 8, 1, 2), /entry 'archive\/data\.pkl' is encrypted/],
    ['size mismatch', patched(cd + 24, 3, 4), /stored entry 'archive\/data\.pkl' has compressed size \d+ != size 3/],
    ['deflate bomb claim', patched(cd + 10, 8, 2), /does not inflate|impossible compression ratio|inflates to/],
  ];
  const before = memoryStats().liveHandles;
  for (const [what, pkl, pattern] of pickles) {
    const bytes = archive(pkl, what === 'bool bytes' ? Uint8Array.from([0, 128, ...new Array(14).fill(0)]) : data);
    assert.throws(() => parsePth(bytes), (err: Error) => {
      assert.ok(err instanceof Error);
      assert.ok(err.message.startsWith('<buffer>: '), `${what}: ${err.message}`);
      assert.match(err.message, pattern, what);
      return true;
    });
  }
  for (const [what, bytes, pattern] of archives) {
    assert.throws(() => parsePth(bytes), (err: Error) => err.message.startsWith('<buffer>: ') && pattern.test(err.message), what);
  }
  assert.equal(memoryStats().liveHandles, before, 'tensors made before an error are freed');
});
