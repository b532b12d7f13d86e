// The caching CPU allocator (native/src/allocator.cc): large blocks are reused by size, the cache
// is bounded and can be emptied, training with large activations neither grows resident memory nor
// keeps mapping fresh blocks, and DELTATUNE_CPU_CACHE_MB is validated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AdamW, conv2d, cpuMemoryStats, crossEntropy, emptyCpuCache, full, kaimingUniform_, keep, linear, manualSeed, randint, randn,
  relu, tidy, zeros, adaptiveAvgPool2d,
} from '../../src/index.js';
import { runWithLibrary } from '../helpers.js';

const MiB = 2 ** 20;
const rssMiB = () => process.memoryUsage().rss / MiB;

test('a freed large block is reused for the next request of its size, with correct contents', () => {
  const before = cpuMemoryStats();
  assert.equal(before.enabled, true);
  const a = full([3 * MiB / 4 + 7], 1.5); // 3 MiB + 28 bytes
  const during = cpuMemoryStats();
  assert.ok(during.liveBytes - before.liveBytes >= 3 * MiB, `live bytes grew by ${during.liveBytes - before.liveBytes}`);
  a.dispose();
  const freed = cpuMemoryStats();
  assert.equal(freed.liveBytes, before.liveBytes);
  assert.ok(freed.cachedBytes >= before.cachedBytes + 3 * MiB, 'the freed block was not cached');
  const b = full([3 * MiB / 4 + 7], 2.25);
  const reused = cpuMemoryStats();
  assert.equal(reused.hits, freed.hits + 1, 'the same-size request did not reuse the cached block');
  assert.equal(reused.misses, freed.misses);
  assert.deepEqual([b.sum().item(), b.max().item()], [2.25 * (3 * MiB / 4 + 7), 2.25]);
  b.dispose();
  // Small tensors stay with libtorch's default allocator.
  const small = zeros([1000]);
  assert.equal(cpuMemoryStats().liveBytes, before.liveBytes);
  small.dispose();
});

test('emptyCpuCache returns every cached block', () => {
  const t = zeros([2 * MiB]);
  t.dispose();
  assert.ok(cpuMemoryStats().cachedBytes >= 8 * MiB);
  emptyCpuCache();
  const after = cpuMemoryStats();
  assert.equal(after.cachedBytes, 0);
  assert.equal(after.cachedBlocks, 0);
});

test('training with multi-MiB activations: no fresh blocks and no resident growth after warm-up', (t) => {
  manualSeed(0);
  const param = (shape: number[]) => {
    const p = keep(zeros(shape));
    kaimingUniform_(p, { a: Math.sqrt(5) });
    return p.requiresGrad_();
  };
  const w1 = param([32, 3, 3, 3]);
  const w2 = param([64, 32, 3, 3]);
  const fc = param([10, 64]);
  const params = [w1, w2, fc];
  const opt = new AdamW(params, { lr: 1e-3 });
  const y = keep(randint(0, 10, [16]));
  // A new input every step, as a data loader gives; activations are 4–8 MiB each.
  const step = () =>
    tidy(() => {
      opt.zeroGrad();
      const x = randn([16, 3, 64, 64]);
      const h = relu(conv2d(relu(conv2d(x, w1, null, { padding: 1 })), w2, null, { stride: 2, padding: 1 }));
      crossEntropy(linear(adaptiveAvgPool2d(h, 1).flatten(1), fc), y).backward();
      opt.step();
    });
  for (let i = 0; i < 20; i++) step();
  const warm = cpuMemoryStats();
  const rssWarm = rssMiB();
  for (let i = 0; i < 60; i++) step();
  const end = cpuMemoryStats();
  const growth = rssMiB() - rssWarm;
  t.diagnostic(`after warm-up: ${end.hits - warm.hits} reuses, ${end.misses - warm.misses} fresh blocks, rss ${growth.toFixed(1)} MiB`);
  assert.ok(end.hits - warm.hits >= 60 * 4, `only ${end.hits - warm.hits} reuses in 60 steps`);
  assert.equal(end.misses, warm.misses, 'steady training still mapped fresh blocks');
  assert.equal(end.liveBytes, warm.liveBytes);
  assert.equal(end.cachedBytes, warm.cachedBytes, 'the cache grew after warm-up');
  // Coarse: lazily touched pages elsewhere (V8, glibc's small-block heap) add a few MiB of noise.
  assert.ok(growth < 48, `resident memory grew by ${growth.toFixed(1)} MiB`);
  opt.dispose();
  for (const p of [...params, y]) p.dispose();
});

const child = (env: Record<string, string>) =>
  runWithLibrary('const t = lib.zeros([4 << 20]); t.dispose(); console.log(JSON.stringify(lib.cpuMemoryStats()));', env);

test('DELTATUNE_CPU_CACHE_MB bounds the cache, 0 turns the allocator off, and a bad value is named', () => {
  const off = child({ DELTATUNE_CPU_CACHE_MB: '0' });
  assert.equal(off.status, 0, off.stderr);
  assert.equal(JSON.parse(off.stdout).enabled, false);
  const tiny = child({ DELTATUNE_CPU_CACHE_MB: '8' });
  assert.equal(tiny.status, 0, tiny.stderr);
  const stats = JSON.parse(tiny.stdout);
  assert.equal(stats.enabled, true);
  assert.equal(stats.cachedBytes, 0, 'a 16 MiB block was cached under an 8 MiB bound');
  const bad = child({ DELTATUNE_CPU_CACHE_MB: 'lots' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /DELTATUNE_CPU_CACHE_MB must be a number of MiB >= 0, got 'lots'/);
});
