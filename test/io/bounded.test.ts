// Bounded inputs (issue 16), weights side: a FIFO, /dev/zero, a directory, or a symlink to one,
// given as a weights file is refused at once naming the path; sizes a file declares (deflated
// zip entries, pickle object counts, safetensors tensor counts) are capped by named limits
// before anything is allocated.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';
import { Tensor, memoryStats } from '../../src/index.js';
import { INPUT_LIMITS, inspectSafetensors, loadPth, loadSafetensors, loadStateDict, parsePth } from '../../src/io/index.js';
import { unpickle, type UnpickleHooks } from '../../src/io/pickle.js';
import { nonRegularInputs } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'deltatune-bounded-io-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const { fifo, bad: BAD } = nonRegularInputs(dir, '.safetensors');

/**
 * Runs fn while a watchdog, after 4 s, opens the FIFO for writing: should a reader block in
 * open() (the bug), it is released and the elapsed-time assertion fails instead of the suite
 * hanging. The watchdog is stopped (by its own pid) when fn returns.
 */
function promptly(fn: () => void, what: string): void {
  const watchdog = spawn('sh', ['-c', 'sleep 4; exec 3>"$0"', fifo], { stdio: 'ignore' });
  const start = Date.now();
  try {
    fn();
  } finally {
    watchdog.kill();
  }
  const ms = Date.now() - start;
  assert.ok(ms < 2000, `${what} took ${ms} ms`);
}

test('a FIFO, /dev/zero, a directory or a symlink to one, given as a weights file, is refused at once naming it', () => {
  const loaders: [string, (p: string) => unknown][] = [
    ['loadStateDict', loadStateDict], ['loadSafetensors', loadSafetensors], ['inspectSafetensors', inspectSafetensors], ['loadPth', loadPth],
  ];
  for (const [name, load] of loaders) {
    for (const [path, words] of BAD) {
      promptly(() => {
        assert.throws(() => load(path), (e: Error) => {
          assert.ok(e.message.startsWith(`${path}: the weights file `), `${name}(${path}): ${e.message}`);
          assert.match(e.message, words, `${name}(${path})`);
          return true;
        });
      }, `${name}(${path})`);
    }
  }
  // A missing file keeps the system's words.
  assert.throws(() => loadSafetensors(join(dir, 'nope.safetensors')), /nope\.safetensors: cannot open: ENOENT/);
});

// ---- hand-made zip archives ------------------------------------------------------------------

const le = (n: number, size: number) => {
  const b = Buffer.alloc(size);
  b.writeUIntLE(n, 0, size);
  return b;
};

interface Entry { name: string; data: Uint8Array; deflated?: boolean; size?: number; crc?: number; sameDataAs?: string }
/** A zip of stored or deflated entries; `size` overrides the declared size, `sameDataAs` points an entry at another's bytes. */
function makeZip(entries: Entry[]): Buffer {
  const parts: Buffer[] = [];
  const centrals: Buffer[] = [];
  const offsets = new Map<string, number>();
  let offset = 0;
  for (const e of entries) {
    const data = Buffer.from(e.data);
    const n = Buffer.from(e.name);
    const method = e.deflated ? 8 : 0;
    const size = e.size ?? data.length;
    const crc = e.crc ?? 0;
    let at = offset;
    if (e.sameDataAs !== undefined) at = offsets.get(e.sameDataAs)!;
    else {
      const local = Buffer.concat([le(0x04034b50, 4), le(20, 2), le(0, 2), le(method, 2), le(0, 4), le(crc, 4), le(data.length, 4), le(size, 4), le(n.length, 2), le(0, 2), n]);
      parts.push(local, data);
      offset += local.length + data.length;
    }
    offsets.set(e.name, at);
    centrals.push(Buffer.concat([
      le(0x02014b50, 4), le(20, 2), le(20, 2), le(0, 2), le(method, 2), le(0, 4), le(crc, 4),
      le(data.length, 4), le(size, 4), le(n.length, 2), le(0, 2), le(0, 2), le(0, 2), le(0, 2), le(0, 4), le(at, 4), n,
    ]));
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.concat([le(0x06054b50, 4), le(0, 2), le(0, 2), le(entries.length, 2), le(entries.length, 2), le(cd.length, 4), le(offset, 4), le(0, 2)]);
  return Buffer.concat([...parts, cd, eocd]);
}

// Pickle protocol 2 opcodes, as torch.save writes them.
const PROTO2 = [0x80, 2];
const [MARK, TUPLE, EMPTY_DICT, SETITEM, STOP, BINPERSID, REDUCE, NEWFALSE, EMPTY_TUPLE] = [0x28, 0x74, 0x7d, 0x73, 0x2e, 0x51, 0x52, 0x89, 0x29];
const str = (s: string) => [0x58, ...le(Buffer.byteLength(s), 4), ...Buffer.from(s)];
const int = (n: number) => [0x8a, 8, ...(() => { const b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(n)); return b; })()]; // LONG1
const global = (module: string, name: string) => [0x63, ...Buffer.from(`${module}\n${name}\n`)];
const tuple = (...items: number[][]) => [MARK, ...items.flat(), TUPLE];

/** {'w<k>': _rebuild_tensor_v2(storage '<k>' of `numel` floats, 0, [numel], [1], False, OrderedDict())} for each k. */
function statePickle(numels: number[]): Uint8Array {
  const items = numels.flatMap((numel, k) => [
    ...str(`w${k}`),
    ...global('torch._utils', '_rebuild_tensor_v2'),
    ...tuple(tuple(str('storage'), global('torch', 'FloatStorage'), str(String(k)), str('cpu'), int(numel)), [BINPERSID], int(0),
      tuple(int(numel)), tuple(int(1)), [NEWFALSE], global('collections', 'OrderedDict'), [EMPTY_TUPLE, REDUCE]),
    REDUCE, SETITEM,
  ]);
  return Uint8Array.from([...PROTO2, EMPTY_DICT, ...items, STOP]);
}

/**
 * A raw deflate stream (one fixed-Huffman block) that really inflates to `2 + 258 k` zero
 * bytes: two literal zeros, then k copies of (length 258, distance 1), 13 bits each. Deflate's
 * best is 1032×; this is 159×, which is plenty for a bomb.
 */
function zeroBomb(k: number): Buffer {
  const out = Buffer.alloc(Math.ceil((3 + 16 + 13 * k + 7) / 8) + 1);
  let pos = 0;
  let acc = 0;
  let nbits = 0;
  const bits = (value: number, n: number) => { // LSB first
    acc |= value << nbits;
    nbits += n;
    while (nbits >= 8) {
      out[pos++] = acc & 0xff;
      acc >>>= 8;
      nbits -= 8;
    }
  };
  const code = (c: number, n: number) => { // Huffman codes go MSB first
    let r = 0;
    for (let i = 0; i < n; i++) r |= ((c >> i) & 1) << (n - 1 - i);
    bits(r, n);
  };
  bits(1, 1); // BFINAL
  bits(1, 2); // BTYPE 01: fixed Huffman
  code(0x30, 8); // literal 0
  code(0x30, 8);
  for (let i = 0; i < k; i++) {
    code(0xc5, 8); // length symbol 285 = 258
    code(0, 5); // distance code 0 = 1
  }
  code(0, 7); // end of block
  if (nbits > 0) out[pos++] = acc & 0xff;
  return out.subarray(0, pos);
}

/** This process's peak resident size in bytes since the last reset (VmHWM; Linux). */
function resetPeak(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}
function peakBytes(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : process.memoryUsage().rss;
}

test('a deflated entry declaring 3 GB (a real 19 MB bomb) is refused naming the file, entry, size and limit, without inflating', () => {
  const k = 11_627_907; // 2 + 258 k = 3,000,000,008 bytes = 750,000,002 floats
  const size = 2 + 258 * k;
  const bomb = zeroBomb(k);
  assert.ok(size <= bomb.length * 1032, 'the old check (deflate\'s 1032× at most) would have let it inflate');
  const path = join(dir, 'bomb.pth');
  writeFileSync(path, makeZip([
    { name: 'archive/data.pkl', data: statePickle([size / 4]) },
    { name: 'archive/data/0', data: bomb, deflated: true, size },
  ]));
  globalThis.gc?.();
  const canReset = resetPeak();
  const before = canReset ? peakBytes() : process.memoryUsage().rss;
  const handles = memoryStats().liveHandles;
  for (const load of [loadPth, loadStateDict]) {
    assert.throws(() => load(path), (e: Error) => {
      assert.ok(e.message.startsWith(`${path}: zip archive: entry 'archive/data/0' declares 3,000,000,008 bytes uncompressed`), e.message);
      assert.match(e.message, /more than the limit of 1,073,741,824 bytes for a deflated entry \(INPUT_LIMITS\.inflatedEntryBytes\)/);
      assert.match(e.message, /re-save the checkpoint with torch\.save/);
      return true;
    });
  }
  const grown = (canReset ? peakBytes() : process.memoryUsage().rss) - before;
  // Reading the 19 MB compressed stream is not even needed; 64 MB leaves room for the pickle and noise.
  assert.ok(grown < 64 << 20, `peak resident memory grew by ${(grown / 2 ** 20).toFixed(0)} MiB`);
  globalThis.gc?.();
  assert.equal(memoryStats().liveHandles, handles);
});

test('deflated entries: ratio over 100× above 16 MiB, a size the storage does not need, shared data and the archive total are refused by name', () => {
  // 32 MiB of zeros deflate ~1000×: over the ratio limit (they are above the floor).
  const zeros = Buffer.alloc(32 << 20);
  const packed = deflateRawSync(zeros);
  const ratioZip = makeZip([
    { name: 'archive/data.pkl', data: statePickle([zeros.length / 4]) },
    { name: 'archive/data/0', data: packed, deflated: true, size: zeros.length, crc: crc32(zeros) },
  ]);
  assert.throws(() => parsePth(ratioZip), (e: Error) => {
    assert.match(e.message, /^<buffer>: zip archive: entry 'archive\/data\/0' declares 33,554,432 bytes uncompressed from [\d,]+ compressed, more than the limit of 100× its compressed size for entries over 16,777,216 bytes \(INPUT_LIMITS\.inflateRatio\)/);
    return true;
  });

  // Under the floor, a constant buffer (a zero-initialised LoRA B, say) loads whatever its ratio.
  const small = Buffer.alloc(1 << 20);
  const ok = parsePth(makeZip([
    { name: 'archive/data.pkl', data: statePickle([small.length / 4]) },
    { name: 'archive/data/0', data: deflateRawSync(small), deflated: true, size: small.length, crc: crc32(small) },
  ])) as Map<string, Tensor>;
  assert.equal(ok.get('w0')!.numel, small.length / 4);
  ok.get('w0')!.dispose();

  // The pickle says 4 floats; the entry declares 3 GB: refused before the zip reader looks at it.
  assert.throws(() => parsePth(makeZip([
    { name: 'archive/data.pkl', data: statePickle([4]) },
    { name: 'archive/data/0', data: Buffer.alloc(16), deflated: true, size: 3_000_000_000 },
  ])), /storage '0' holds 3000000000 bytes, but 4 float32 elements need 16/);

  // Entries pointing at the same bytes (how zip bombs multiply): bytes read beyond the file's
  // size are refused, so a 1 MiB stored region cannot feed three 1 MiB tensors.
  const floats = Buffer.alloc(1 << 20, 1);
  assert.throws(() => parsePth(makeZip([
    { name: 'archive/data.pkl', data: statePickle([floats.length / 4, floats.length / 4, floats.length / 4]) },
    { name: 'archive/data/0', data: floats },
    { name: 'archive/data/1', data: floats, sameDataAs: 'archive/data/0' },
    { name: 'archive/data/2', data: floats, sameDataAs: 'archive/data/0' },
  ])), /^Error: <buffer>: zip archive: entry 'archive\/data\/1' shares its data with other entries \(the entries read so far hold [\d,]+ bytes, more than the file's [\d,]+\)/);

  // Many deflated entries each under the floor and the ratio still meet the archive total:
  // 20 entries of 16 MiB of zeros from a ~330 KB file pass one by one but not together (256 MiB floor).
  const sixteen = Buffer.alloc(16 << 20);
  const packed16 = deflateRawSync(sixteen);
  const total = makeZip([
    { name: 'archive/data.pkl', data: statePickle(Array.from({ length: 20 }, () => sixteen.length / 4)) },
    ...Array.from({ length: 20 }, (_, i) => ({ name: `archive/data/${i}`, data: packed16, deflated: true, size: sixteen.length, crc: crc32(sixteen) })),
  ]);
  const handles = memoryStats().liveHandles;
  assert.throws(() => parsePth(total), (e: Error) => {
    assert.match(e.message, /^<buffer>: zip archive: entry 'archive\/data\/16' declares 16,777,216 bytes uncompressed, which brings the deflated entries of this archive to 285,212,672 bytes, more than the limit of 268,435,456/);
    assert.match(e.message, /INPUT_LIMITS\.inflatedArchiveBytes/);
    return true;
  });
  globalThis.gc?.();
  assert.equal(memoryStats().liveHandles, handles, 'the storages inflated before the refusal are freed');
});

test('pickles: object and value counts are capped (one opcode byte must not make an object each, unbounded)', () => {
  const hooks: UnpickleHooks = {
    findGlobal: () => { throw new Error('no globals'); },
    call: () => null, newObject: () => null, build: (o) => o, persistentLoad: () => null,
  };
  // ')0' makes an empty tuple and drops it: 2 bytes per object, nothing kept alive.
  const tuples = Buffer.alloc(2 + 2 * ((1 << 22) + 1) + 2);
  tuples.set(PROTO2);
  for (let p = 2; p < tuples.length - 2; p += 2) [tuples[p], tuples[p + 1]] = [EMPTY_TUPLE, 0x30];
  tuples.set([0x4e, STOP], tuples.length - 2);
  assert.throws(() => unpickle(tuples, hooks, 'bomb.pkl'), /^Error: bomb\.pkl: the pickle makes more than 4194304 containers, the limit for a checkpoint's data\.pkl \(opcode EMPTY_TUPLE at byte \d+\)/);
  // 'N0' pushes None and drops it.
  const nones = Buffer.alloc(2 + 2 * ((1 << 24) + 1) + 2);
  nones.set(PROTO2);
  for (let p = 2; p < nones.length - 2; p += 2) [nones[p], nones[p + 1]] = [0x4e, 0x30];
  nones.set([0x4e, STOP], nones.length - 2);
  assert.throws(() => unpickle(nones, hooks, 'bomb.pkl'), /^Error: bomb\.pkl: the pickle makes more than 16777216 values, the limit for a checkpoint's data\.pkl \(opcode NONE at byte \d+\)/);
});

test(`safetensors: a header describing more than INPUT_LIMITS.tensors (${INPUT_LIMITS.tensors}) tensors is refused before any is made`, () => {
  const n = INPUT_LIMITS.tensors + 1;
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(`"t${i}":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}`);
  const header = Buffer.from(`{${parts.join(',')}}`);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  const path = join(dir, 'many.safetensors');
  writeFileSync(path, Buffer.concat([len, header]));
  const handles = memoryStats().liveHandles;
  assert.throws(() => loadSafetensors(path), (e: Error) => {
    assert.equal(e.message, `${path}: header describes 500,001 tensors, more than the limit of 500,000 for one weights file (INPUT_LIMITS.tensors)`);
    return true;
  });
  assert.equal(memoryStats().liveHandles, handles);
});
