// Long training must not grow memory: 2,000 AdamW steps of a small conv net built from the
// functional ops, with handle counts and resident memory checked after warm-up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Tensor, adaptiveAvgPool2d, batchNorm, conv2d, crossEntropy, keep, kaimingUniform_, linear, manualSeed, memoryStats,
  ones, peakRssMiB, randint, randn, relu, tidy, zeros,
} from '../../src/index.js';
import { AdamW } from '../../src/train/optim.js';
import { runWithLibrary } from '../helpers.js';

test('2,000 training steps of a small conv net: no growth in handles or resident memory', (t) => {
  manualSeed(0);
  const param = (shape: number[]) => {
    const t = keep(zeros(shape));
    kaimingUniform_(t, { a: Math.sqrt(5) });
    return t.requiresGrad_();
  };
  const w1 = param([8, 3, 3, 3]);
  const b1 = keep(zeros([8])).requiresGrad_();
  const g1 = keep(ones([8])).requiresGrad_();
  const beta1 = keep(zeros([8])).requiresGrad_();
  const mean1 = keep(zeros([8]));
  const var1 = keep(ones([8]));
  const w2 = param([16, 8, 3, 3]);
  const fc = param([10, 16]);
  const fcb = keep(zeros([10])).requiresGrad_();
  const params = [w1, b1, g1, beta1, w2, fc, fcb];
  const opt = new AdamW(params, { lr: 1e-3 });
  const x = keep(randn([8, 3, 16, 16]));
  const y = keep(randint(0, 10, [8]));

  const step = (): number =>
    tidy(() => {
      opt.zeroGrad();
      let h = conv2d(x, w1, b1, { padding: 1 });
      h = relu(batchNorm(h, mean1, var1, { weight: g1, bias: beta1, training: true }));
      h = relu(conv2d(h, w2, null, { stride: 2, padding: 1 }));
      const logits = linear(adaptiveAvgPool2d(h, 1).flatten(1), fc, fcb);
      const loss = crossEntropy(logits, y);
      loss.backward();
      opt.step();
      return loss.item();
    });

  const losses: number[] = [];
  let handlesAfterWarmup = 0;
  let rssAfterWarmup = 0;
  for (let i = 0; i < 2000; i++) {
    losses.push(step());
    if (i === 199) {
      handlesAfterWarmup = memoryStats().liveHandles;
      rssAfterWarmup = process.memoryUsage().rss;
    }
  }
  const handlesAtEnd = memoryStats().liveHandles;
  const rssGrowthMiB = (process.memoryUsage().rss - rssAfterWarmup) / 2 ** 20;
  t.diagnostic(`rss growth after warm-up ${rssGrowthMiB.toFixed(2)} MiB; live handles ${handlesAfterWarmup} -> ${handlesAtEnd}`);
  assert.equal(handlesAtEnd, handlesAfterWarmup, 'live native handles changed after warm-up');
  assert.ok(rssGrowthMiB < 24, `resident memory grew by ${rssGrowthMiB.toFixed(1)} MiB over 1,800 steps`);
  // The loop really trained: the loss on the fixed batch fell.
  assert.ok(losses.at(-1)! < losses[0]! * 0.5, `loss ${losses[0]} -> ${losses.at(-1)}`);

  opt.dispose();
  for (const t of [...params, mean1, var1, x, y] as Tensor[]) t.dispose();
});

test('peakRssMiB is the process\'s own peak: a child spawned by a large parent does not report the parent\'s size', (t) => {
  const ballast = Buffer.alloc(400 * 2 ** 20, 1); // resident in this process
  assert.ok(peakRssMiB() >= 400, `parent peak ${peakRssMiB()} MiB`);
  const child = runWithLibrary('console.log(JSON.stringify({ peak: lib.peakRssMiB(), maxRss: process.resourceUsage().maxRSS / 1024 }));');
  assert.equal(child.status, 0, child.stderr);
  const { peak, maxRss } = JSON.parse(child.stdout) as { peak: number; maxRss: number };
  t.diagnostic(`child: peakRssMiB ${peak.toFixed(0)}, resourceUsage maxRSS ${maxRss.toFixed(0)} MiB; parent holds ${ballast.length >> 20} MiB`);
  assert.ok(peak < 350, `the child reported ${peak.toFixed(0)} MiB`);
});
