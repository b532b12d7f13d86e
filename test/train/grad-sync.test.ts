// Gradient averaging over a Collective: buckets in reverse order under the size cap, and the mean
// over ranks, checked with an in-process stand-in for a process group (ranks as promises that meet).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GradientBuckets, type Collective } from '../../src/train/grad-sync.js';
import { keep, noGrad, tensor, tidy, zeros, type Tensor } from '../../src/index.js';

/** worldSize fake ranks: each call waits for every rank's call, then writes the sums into all. */
function fakeGroup(worldSize: number): Collective[] {
  let waiting: { tensors: Tensor[]; done: () => void }[] = [];
  return Array.from({ length: worldSize }, () => ({
    worldSize,
    allreduceCoalesced(tensors: Tensor[]) {
      return new Promise<void>((resolve) => {
        waiting.push({ tensors, done: resolve });
        if (waiting.length < worldSize) return;
        const all = waiting;
        waiting = [];
        tidy(() => noGrad(() => {
          for (let k = 0; k < tensors.length; k++) {
            const shapes = all.map((w) => w.tensors[k]!.shape.join());
            assert.ok(shapes.every((s) => s === shapes[0]), 'every rank sends the same shapes in the same order');
            const sum = all.map((w) => w.tensors[k]!.clone()).reduce((a, b) => a.add(b));
            for (const w of all) w.tensors[k]!.copy_(sum);
          }
        }));
        all.forEach((w) => w.done());
      });
    },
  }));
}

function params(rank: number, withGrad: boolean[]): Tensor[] {
  return withGrad.map((has, i) => {
    const p = keep(zeros([2, 3])).requiresGrad_();
    if (has) {
      const g = tensor(Float32Array.from({ length: 6 }, (_, j) => (rank + 1) * (i + 1) + j), { shape: [2, 3] });
      p.grad = g;
      g.dispose();
    }
    return p;
  });
}

test('buckets follow reverse order under the cap; gradients become the mean over ranks, missing ones count as zero', async () => {
  const ranks = [params(0, [true, true, false]), params(1, [true, true, true])];
  try {
    const buckets = ranks.map((ps) => new GradientBuckets(ps, { bucketBytes: 2 * 24 }));
    assert.deepEqual(buckets[0]!.buckets, [[2, 1], [0]]);
    const group = fakeGroup(2);
    await Promise.all(buckets.map((b, r) => b.average(group[r]!)));
    for (let i = 0; i < 3; i++) {
      const want = Array.from({ length: 6 }, (_, j) => ((i === 2 ? 0 : 1 * (i + 1) + j) + (2 * (i + 1) + j)) / 2);
      for (const ps of ranks) {
        const g = ps[i]!.grad!;
        assert.deepEqual(g.toNumbers(), want, `parameter ${i}`);
        g.dispose();
      }
    }
  } finally {
    ranks.flat().forEach((p) => p.dispose());
  }
  const frozen = keep(zeros([1]));
  assert.throws(() => new GradientBuckets([frozen]), /parameter 0 \(shape \[1\]\) does not require grad/);
  frozen.dispose();
});
