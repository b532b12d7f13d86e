// DataLoader's `shard`: DistributedSampler semantics for data-parallel training. Every rank draws the
// same permutation from (seed, epoch), pads it by repeating its start to a multiple of the world size,
// and takes every worldSize-th index; each sample's augmentation depends only on (seed, epoch, index),
// so rank r's images are exactly the single-process images at those indices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataLoader, mnist, subset, trainTransform, type ArrayDataset } from '../../src/index.js';

const digits = subset(mnist(), Array.from({ length: 10 }, (_, i) => i * 13)) as ArrayDataset;
const transform = trainTransform(16);

test('ranks split each epoch disjointly (padded to equal length) and agree with one process', async () => {
  const whole = new DataLoader(digits, { batchSize: 4, transform, seed: 3 });
  for (const worldSize of [1, 3, 4]) {
    const ranks = Array.from({ length: worldSize }, (_, rank) => new DataLoader(digits, { batchSize: 2, transform, seed: 3, shard: { rank, worldSize } }));
    for (const epoch of [0, 1]) {
      const all = [...whole.order(epoch)];
      const orders = ranks.map((r) => [...r.order(epoch)]);
      const per = Math.ceil(10 / worldSize);
      assert.ok(orders.every((o) => o.length === per), `world ${worldSize}: every rank takes ${per} samples`);
      assert.ok(ranks.every((r) => r.batchesPerEpoch === Math.ceil(per / 2)), 'equal steps on every rank');
      // Interleaving the ranks' orders gives the padded single-process order.
      const padded = Array.from({ length: per * worldSize }, (_, p) => all[p % 10]);
      const interleaved = Array.from({ length: per * worldSize }, (_, p) => orders[p % worldSize]![Math.floor(p / worldSize)]);
      assert.deepEqual(interleaved, padded);
      assert.deepEqual(new Set(orders.flat()), new Set(all), 'every sample is seen by some rank');
    }
  }
  // The images a rank delivers are the single-process images of the same indices.
  const rank1 = new DataLoader(digits, { batchSize: 5, transform, seed: 3, shard: { rank: 1, worldSize: 2 } });
  const one = new DataLoader(digits, { batchSize: 10, transform, seed: 3 });
  const byIndex = new Map<number, number[]>();
  for await (const b of one.epoch(1)) {
    const px = b.images.toNumbers();
    const each = px.length / b.indices.length;
    b.indices.forEach((idx, k) => byIndex.set(idx, px.slice(k * each, (k + 1) * each)));
    b.dispose();
  }
  for await (const b of rank1.epoch(1)) {
    const px = b.images.toNumbers();
    const each = px.length / b.indices.length;
    b.indices.forEach((idx, k) => assert.deepEqual(px.slice(k * each, (k + 1) * each), byIndex.get(idx), `sample ${idx}`));
    b.dispose();
  }
});

test('a bad shard is refused naming it', () => {
  for (const shard of [{ rank: 2, worldSize: 2 }, { rank: -1, worldSize: 2 }, { rank: 0, worldSize: 0 }, { rank: 0.5, worldSize: 2 }]) {
    assert.throws(() => new DataLoader(digits, { batchSize: 2, transform, shard }), /DataLoader: shard must be \{ rank, worldSize \}/);
  }
});
