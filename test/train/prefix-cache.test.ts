// Caching the frozen prefix: the feature steps compose to forwardFeatures, the cut sits before the
// first trained layer, and training on cached features ends where uncached training ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ArrayDataset, DataLoader, PrefixCache, Trainer, applyDelta, createModel, evalTransform, frozenPrefix, manualSeed, noGrad, pipe,
  randn, tidy, trainTransform, loadSafetensors, memoryStats, type Dataset,
} from '../../src/index.js';
import { assertClose } from '../helpers.js';

test('featureSteps run in order equal forwardFeatures (resnet, mobilenet_v2, convnext)', () => {
  for (const [name, size] of [['resnet18', 32], ['mobilenet_v2', 32], ['convnext_tiny', 32]] as const) {
    manualSeed(0);
    const model = createModel(name, { numClasses: 3 });
    model.eval();
    noGrad(() =>
      tidy(() => {
        const x = randn([2, 3, size, size]);
        const steps = model.featureSteps()!;
        assert.ok(steps.length > 5, name);
        assertClose(pipe(x, ...steps.map(([, s]) => s)), model.forwardFeatures(x), { atol: 1e-5, what: name });
      }),
    );
    model.dispose();
  }
  const swin = createModel('swin_t', { numClasses: 3 });
  assert.equal(swin.featureSteps(), null);
  swin.dispose();
});

test('the frozen prefix ends before the first step the delta trains', () => {
  const model = createModel('resnet18', { numClasses: 3 });
  // [options, first step trained or extended, whether that step's own computation stays frozen]
  const cases: [Record<string, unknown>, string | null, boolean][] = [
    [{ method: 'fixed' }, null, false],
    [{ method: 'mona', stages: [3] }, 'layer4.0', true], // Mona only adapts the block's output
    [{ method: 'mona', stages: [2, 3] }, 'layer3.0', true],
    [{ method: 'partial', blocks: 1 }, 'layer4.1', false],
    [{ method: 'lora', targets: String.raw`layer4\.0\.conv1` }, 'layer4.0', false], // LoRA changes the block's own convolution
    [{ method: 'bitfit' }, 'bn1', false], // ResNet's convolutions have no bias: BatchNorm's is first
  ];
  for (const [options, first, split] of cases) {
    const delta = applyDelta(model, { numClasses: 3, ...options } as unknown as { method: string });
    const found = frozenPrefix(delta);
    assert.equal(found.cut === found.steps.length ? null : found.steps[found.cut]![0], first, JSON.stringify(options));
    assert.equal(found.split !== null, split, `${JSON.stringify(options)}: split`);
    delta.dispose();
  }
  model.dispose();
});

/** 60 tiny two-class images: bright or dark upper half. */
function dataset(): ArrayDataset {
  const n = 60;
  const images = new Uint8Array(n * 16 * 16);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    for (let p = 0; p < 256; p++) images[i * 256 + p] = ((p < 128) === (i % 2 === 0) ? 200 : 40) + ((i * 31 + p * 7) % 30);
  }
  return new ArrayDataset({ images, labels, height: 16, width: 16, channels: 1, classes: ['a', 'b'] });
}

test('training on the cached prefix ends with the weights of uncached training', async () => {
  const results = [];
  for (const cached of [false, true]) {
    const dir = mkdtempSync(join(tmpdir(), 'deltatune-prefix-'));
    manualSeed(0);
    const model = createModel('resnet18', { numClasses: 2 });
    manualSeed(1);
    const delta = applyDelta(model, { method: 'mona', stages: [3], numClasses: 2 });
    const ds = dataset();
    const train = new DataLoader(ds, { batchSize: 16, transform: trainTransform(32, { randomResizedCrop: false, hflip: 0 }), seed: 3 });
    const val = new DataLoader(ds, { batchSize: 16, transform: evalTransform(32, { cropPct: 1 }) });
    const cache = cached ? await PrefixCache.build(delta, train, val) : null;
    try {
      const r = await new Trainer(delta, cache?.train ?? train, cache?.val ?? val, dir, {
        epochs: 2, lr: 1e-3, seed: 5, ...(cache ? { forward: cache.forward } : {}),
      }).fit();
      results.push({ dir, top1: r.final!.top1, loss: r.history.map((h) => h.trainLoss) });
    } finally {
      cache?.dispose();
      delta.dispose();
      model.dispose();
    }
  }
  assertClose(results[1]!.loss, results[0]!.loss, { rtol: 1e-4, what: 'train loss per epoch' });
  assert.equal(results[1]!.top1, results[0]!.top1);
  const a = loadSafetensors(join(results[0]!.dir, 'last', 'delta.safetensors')).tensors;
  const b = loadSafetensors(join(results[1]!.dir, 'last', 'delta.safetensors')).tensors;
  for (const [k, t] of a) assertClose(b.get(k)!, t, { rtol: 1e-3, atol: 1e-5, what: k });
  [...a.values(), ...b.values()].forEach((t) => t.dispose());
  results.forEach((r) => rmSync(r.dir, { recursive: true, force: true }));
});

test('channels-last (64 px, 2×2 maps at the cut): cached batches are channels-last views and train as uncached channels-last training does', async () => {
  const results = [];
  for (const cached of [false, true]) {
    const dir = mkdtempSync(join(tmpdir(), 'deltatune-prefix-cl-'));
    manualSeed(0);
    const model = createModel('resnet18', { numClasses: 2 });
    manualSeed(1);
    const delta = applyDelta(model, { method: 'mona', stages: [3], numClasses: 2 });
    model.toMemoryFormat('channelsLast');
    const ds = dataset();
    const options = { batchSize: 16, seed: 3, channelsLast: true };
    const train = new DataLoader(ds, { ...options, transform: trainTransform(64, { randomResizedCrop: false, hflip: 0 }) });
    const val = new DataLoader(ds, { ...options, transform: evalTransform(64, { cropPct: 1 }) });
    const cache = cached ? await PrefixCache.build(delta, train, val, { channelsLast: true }) : null;
    try {
      if (cache) {
        assert.deepEqual(cache.info.featureShape, [512, 2, 2]);
        for await (const b of cache.train.epoch(0)) {
          assert.ok(b.images.isContiguous('channelsLast') && !b.images.isContiguous(), 'a cached batch is channels-last');
          assert.deepEqual(b.images.shape.slice(1), [512, 2, 2]);
          b.dispose();
        }
      }
      const r = await new Trainer(delta, cache?.train ?? train, cache?.val ?? val, dir, {
        epochs: 2, lr: 1e-3, seed: 5, ...(cache ? { forward: cache.forward } : {}),
      }).fit();
      results.push({ dir, top1: r.final!.top1, loss: r.history.map((h) => h.trainLoss) });
    } finally {
      cache?.dispose();
      delta.dispose();
      model.dispose();
    }
  }
  assertClose(results[1]!.loss, results[0]!.loss, { rtol: 1e-4, what: 'train loss per epoch' });
  assert.equal(results[1]!.top1, results[0]!.top1);
  results.forEach((r) => rmSync(r.dir, { recursive: true, force: true }));
});

test('random augmentation or a delta on the first layer refuses the cache, saying why', async () => {
  const model = createModel('resnet18', { numClasses: 2 });
  const ds = dataset();
  const delta = applyDelta(model, { method: 'fixed', numClasses: 2 });
  const random = new DataLoader(ds, { batchSize: 16, transform: trainTransform(32) });
  await assert.rejects(PrefixCache.build(delta, random, null), /only be cached when training images are the same every epoch/);
  delta.dispose();
  const full = applyDelta(model, { method: 'full', numClasses: 2 });
  const fixed = new DataLoader(ds, { batchSize: 16, transform: evalTransform(32) });
  await assert.rejects(PrefixCache.build(full, fixed, null), /'full' delta trains the first layer \(conv1\)/);
  full.dispose();
  model.dispose();
});

test('an image that fails mid-way through building the cache leaves no tensor behind', async () => {
  const model = createModel('resnet18', { numClasses: 2 });
  const delta = applyDelta(model, { method: 'mona', stages: [3], numClasses: 2 });
  // Sample 40 (third batch) fails after two batches went through the prefix.
  const broken: Dataset = {
    length: 60, classes: ['a', 'b'], label: (i) => i % 2, source: (i) => `generated#${i}`,
    load: async (i) => {
      if (i === 40) throw new Error('generated#40: cannot decode image: broken');
      return { data: new Uint8Array(16 * 16 * 3).fill(i * 4), width: 16, height: 16 };
    },
  };
  const loader = new DataLoader(broken, { batchSize: 16, shuffle: false, onBadImage: 'fail', transform: evalTransform(32, { cropPct: 1 }) });
  const before = memoryStats().liveHandles;
  await assert.rejects(PrefixCache.build(delta, loader, null), /generated#40/);
  assert.equal(memoryStats().liveHandles, before, 'no tensor of the failed build is left');
  delta.dispose();
  model.dispose();
});
