// Mutation fuzzing with a fixed seed: every mutated file must either parse or fail with an Error
// naming '<buffer>' — never crash the process, hang, or leak tensors.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, arange, memoryStats, tensor } from '../../src/index.js';
import { parsePth, parseSafetensors, saveSafetensors } from '../../src/io/index.js';
import { collectTensors } from '../../src/io/pth.js';
import { bufferSource } from '../../src/io/source.js';
import { ZipReader } from '../../src/io/zip.js';
import { runOracle } from '../helpers.js';
import { rng, type Rng } from '../hostile/formats.js';

const ROUNDS = 3000;


// Mutations any file format meets on a bad disk or from an attacker.
const generic: ((b: Buffer, r: Rng) => Buffer)[] = [
  (b, r) => { // flip a few bytes
    const out = Buffer.from(b);
    for (let i = 1 + r.int(4); i > 0; i--) out[r.int(out.length)] = r.int(256);
    return out;
  },
  (b, r) => b.subarray(0, r.int(b.length)), // truncate
  (b, r) => { // duplicate a range over another place
    const out = Buffer.from(b);
    const to = r.int(b.length);
    const from = r.int(b.length);
    out.set(b.subarray(from, from + Math.min(1 + r.int(64), b.length - to)), to);
    return out;
  },
  (b, r) => { // insert or delete a range, shifting everything after it
    const at = r.int(b.length);
    const len = 1 + r.int(32);
    return r.next() < 0.5 ? Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]) : Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
  },
];

const NUMBERS = ['-1', '1.5', '0', '1e3', '99999999999999999999', '9007199254740993', '4', '8', '"4"', 'null', '[]', '12', '7'];
const DTYPE_CODES = ['F32', 'F64', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'C64', 'F8_E4M3', ''];

// Header-aware mutations keep the JSON parseable so the fuzzer reaches the deeper checks.
function withHeader(b: Buffer, edit: (text: string) => string): Buffer {
  if (b.length < 8 || b.readBigUInt64LE(0) > BigInt(b.length)) return b;
  const n = Number(b.readBigUInt64LE(0));
  const text = edit(b.subarray(8, 8 + n).toString());
  const head = Buffer.from(text);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.length));
  return Buffer.concat([len, head, b.subarray(8 + n)]);
}
const safetensorsMutations: ((b: Buffer, r: Rng) => Buffer)[] = [
  ...generic,
  (b, r) => { // absurd or nearly right header lengths
    const out = Buffer.from(b);
    const n = out.readBigUInt64LE(0);
    const choices = [0n, 1n, 2n ** 62n, 2n ** 64n - 1n, n - 1n, n + 1n, n + BigInt(r.int(100)), BigInt(r.int(2 ** 31)) * BigInt(r.int(2 ** 31))];
    out.writeBigUInt64LE(BigInt.asUintN(64, r.pick(choices)));
    return out;
  },
  (b, r) => withHeader(b, (text) => { // replace one number (shape or offset)
    const runs = [...text.matchAll(/\d+/g)];
    if (!runs.length) return text;
    const m = r.pick(runs);
    const value = r.next() < 0.5 ? r.pick(NUMBERS) : String(r.int(200));
    return text.slice(0, m.index) + value + text.slice(m.index! + m[0].length);
  }),
  (b, r) => withHeader(b, (text) => text.replace(/"dtype":"[^"]*"/g, (d) => (r.next() < 0.3 ? `"dtype":"${r.pick(DTYPE_CODES)}"` : d))),
];

interface Stats { ok: number; errors: number; kinds: Map<string, number>; slowestMs: number }

function fuzz(t: TestContext, seed: Buffer, mutations: ((b: Buffer, r: Rng) => Buffer)[], parse: (b: Buffer) => Tensor[], r: Rng): Stats {
  const stats: Stats = { ok: 0, errors: 0, kinds: new Map(), slowestMs: 0 };
  const before = memoryStats().liveHandles;
  for (let i = 0; i < ROUNDS; i++) {
    let bytes = seed;
    for (let k = 1 + r.int(2); k > 0; k--) bytes = r.pick(mutations)(bytes, r);
    const start = performance.now();
    try {
      for (const x of parse(bytes)) x.dispose();
      stats.ok++;
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('<buffer>: ')) {
        assert.fail(`round ${i}: expected an Error naming <buffer>, got ${String(err)}\ninput (base64): ${bytes.toString('base64')}`);
      }
      stats.errors++;
      // Group by message shape: numbers and quoted names vary between rounds.
      const kind = err.message.slice(10).replace(/global \S+|'[^']*'|"[^"]*"|\[[^\]]*\]|\d+/g, '#').slice(0, 60);
      stats.kinds.set(kind, (stats.kinds.get(kind) ?? 0) + 1);
    }
    stats.slowestMs = Math.max(stats.slowestMs, performance.now() - start);
  }
  assert.equal(memoryStats().liveHandles, before, 'every tensor made by a parse was freed');
  const top = [...stats.kinds].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, n]) => `${n}× ${k}`);
  t.diagnostic(`${ROUNDS} files: ${stats.ok} parsed, ${stats.errors} refused in ${stats.kinds.size} distinct ways; slowest ${stats.slowestMs.toFixed(1)} ms`);
  for (const line of top) t.diagnostic(`  ${line}`);
  return stats;
}

test(`safetensors: ${ROUNDS} mutated files parse or fail cleanly`, (t) => {
  const path = join(mkdtempSync(join(tmpdir(), 'deltatune-fuzz-')), 'seed.safetensors');
  saveSafetensors(path, {
    weight: arange(12, undefined, 1, { dtype: 'float32' }).reshape([3, 4]),
    bias: tensor(new Float64Array([0.5, -1])),
    half: tensor([1, 2, 3]).to('float16'),
    mask: tensor([true, false, true, true]),
    steps: tensor(new BigInt64Array([7n])).reshape([]),
    codes: tensor(new Int8Array([-1, 2])),
    empty: tensor(new Int32Array(0)),
  }, { format: 'pt' });
  const stats = fuzz(t, readFileSync(path), safetensorsMutations, (b) => [...parseSafetensors(b).tensors.values()], rng(20240601));
  assert.ok(stats.ok > 20 && stats.errors > ROUNDS / 2, 'the mutations reach both outcomes');
  assert.ok(stats.kinds.size >= 15, `the mutations reach many checks (${stats.kinds.size})`);
  assert.ok(stats.slowestMs < 1000);
});

test(`pth: ${ROUNDS} mutated torch.save files parse or fail cleanly`, (t) => {
  const seed = Buffer.from(runOracle<{ files: Record<string, string> }>('io').files['small.pth']!, 'base64');
  // Half the mutations hit data.pkl itself, where the unpickler's checks live.
  const zip = new ZipReader(bufferSource(seed));
  const pkl = [...zip.entries.values()].find((e) => e.name.endsWith('/data.pkl'))!;
  const pklStart = seed.indexOf(Buffer.from(zip.read(pkl)).subarray(0, 16));
  const inPickle = (b: Buffer, r: Rng) => {
    const out = Buffer.from(b);
    for (let i = 1 + r.int(3); i > 0; i--) out[pklStart + r.int(pkl.size)] = r.next() < 0.5 ? r.int(256) : out[pklStart + r.int(pkl.size)]!;
    return out;
  };
  const stats = fuzz(t, seed, [...generic, inPickle, inPickle, inPickle, inPickle], (b) => [...collectTensors(parsePth(b))], rng(7));
  assert.ok(stats.ok > 20 && stats.errors > ROUNDS / 2, 'the mutations reach both outcomes');
  assert.ok(stats.kinds.size >= 15, `the mutations reach many checks (${stats.kinds.size})`);
  assert.ok(stats.slowestMs < 1000);
});
