// Gradient averaging over a Collective: buckets in reverse order under the size cap, and the mean
// over ranks, checked with an in-process stand-in for a process group (ranks as promises that meet).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GradientBuckets, type Collective } from '../../src/train/grad-sync.js';
import { keep, noGrad, tensor, tidy, zeros, type Tensor } from '../../src/index.js';

/** worldSize fake ranks: the k-th call of every rank meet, then the sums are written into all. */
function fakeGroup(worldSize: number): Collective[] {
  const queues: { tensors: Tensor[]; done: () => void }[][] = Array.from({ length: worldSize }, () => []);
  return Array.from({ length: worldSize }, (_, rank) => ({
    worldSize,
    allreduceCoalesced(tensors: Tensor[]) {
      return new Promise<void>((resolve) => {
        queues[rank]!.push({ tensors, done: resolve });
        if (queues.some((q) => q.length === 0)) return;
        const all = queues.map((q) => q.shift()!);
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

test('armed: each bucket starts from inside the backward once its gradients are final; the result is the mean, twice in a row', async () => {
  // Two "ranks" in one process: a chain y = sum(((x·w0)·w1)·w2) whose backward makes w2's gradient
  // final first. Rank 1's input is twice rank 0's, so the ranks' gradients differ.
  const weights = [0, 1].map(() => [1.5, -0.5, 2].map((v) => keep(tensor(new Float32Array([v, v + 0.25]))).requiresGrad_()));
  const started: string[][] = [[], []];
  const group = fakeGroup(2).map((c, r) => ({
    worldSize: c.worldSize,
    allreduceCoalesced(ts: Tensor[]) {
      started[r]!.push(`bucket of ${ts.length}`);
      return c.allreduceCoalesced(ts);
    },
  }));
  const buckets = weights.map((ws) => new GradientBuckets(ws, { bucketBytes: 8 })); // one parameter per bucket
  try {
    for (let round = 0; round < 2; round++) {
      for (let r = 0; r < 2; r++) {
        buckets[r]!.arm(group[r]!);
        const launchedBefore = started[r]!.length;
        tidy(() => {
          const x = tensor(new Float32Array([1 + r, 2 + r]));
          weights[r]!.reduce((h, w) => h.mul(w), x).sum().backward();
        });
        // All three buckets were started by the backward itself (rank 0's wait for rank 1's).
        assert.equal(started[r]!.length - launchedBefore, 3);
      }
      await Promise.all(buckets.map((b, r) => b.average(group[r]!)));
      // d/dw_i of sum(x·w0·w1·w2) = x · prod of the other two; the mean over ranks.
      const w = [1.5, -0.5, 2].map((v) => [v, v + 0.25]);
      for (let i = 0; i < 3; i++) {
        const want = [0, 1].map((j) => {
          const others = [0, 1, 2].filter((k) => k !== i).reduce((a, k) => a * w[k]![j]!, 1);
          return ((1 + j) * others + (2 + j) * others) / 2;
        });
        for (const ws of weights) {
          const g = ws[i]!.grad!;
          g.toNumbers().forEach((v, j) => assert.ok(Math.abs(v - want[j]!) < 1e-5, `round ${round}, w${i}[${j}]: ${v} vs ${want[j]}`));
          g.dispose();
          ws[i]!.zeroGrad();
        }
      }
    }
    // Not armed: the next backward leaves the gradients alone until average() is called.
    tidy(() => weights[0]!.reduce((h, w) => h.mul(w), tensor(new Float32Array([1, 2]))).sum().backward());
    assert.equal(started[0]!.length, 6);
  } finally {
    buckets.forEach((b) => b.dispose());
    weights.flat().forEach((p) => p.dispose());
  }
});
