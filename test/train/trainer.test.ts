// The trainer on synthetic in-memory batches: schedule, metrics, weight-decay groups, clipping,
// a run directory, exact resume after a crash, NaN detection and early stopping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ClassificationMeter, DivergedError, Trainer, applyDelta, clipGradNorm, cosineLr, createModel, decayGroups, keep, loadSafetensors,
  manualSeed, memoryStats, noGrad, randn, tensor, tidy, zeros, type BatchSource, type TrainBatch, type Tensor,
} from '../../src/index.js';
import { assertClose } from '../helpers.js';

test('cosine schedule: linear warm-up to the peak, cosine down to the floor', () => {
  const s = { lr: 1, totalSteps: 110, warmupSteps: 10, warmupStartFactor: 0, minLr: 0.1 };
  assert.equal(cosineLr(s, 0), 0);
  assertClose([cosineLr(s, 5)], [0.5]);
  assert.equal(cosineLr(s, 10), 1);
  assertClose([cosineLr(s, 60)], [0.55]);
  assertClose([cosineLr(s, 110)], [0.1]);
  assertClose([cosineLr(s, 500)], [0.1]);
});

test('classification meter: top-1, top-5, per-class accuracy and the confusion matrix', () => {
  const m = new ClassificationMeter(6);
  const logits = tensor(new Float32Array([
    9, 1, 0, 0, 0, 0, // true 0 → 0
    0, 9, 8, 0, 0, 0, // true 2 → 1 (2 in top 5)
    0, 0, 0, 0, 0, 9, // true 1 → 5 (1 among the ties of the top 5? no: 0..4 tie at 0)
  ]), { shape: [3, 6] });
  const labels = tensor(new BigInt64Array([0n, 2n, 3n]));
  m.update(logits, labels, 0.5);
  const r = m.result();
  assert.equal(r.samples, 3);
  assertClose([r.top1], [100 / 3]);
  assert.equal(r.confusion[0]![0], 1);
  assert.equal(r.confusion[2]![1], 1);
  assert.equal(r.confusion[3]![5], 1);
  assert.equal(r.perClass[0], 100);
  assert.equal(r.perClass[2], 0);
  assert.ok(Number.isNaN(r.perClass[4]!), 'a class without samples has no accuracy');
  assert.ok(r.top5 >= 200 / 3 - 1e-9, 'row 2 has its class in the top 5');
  assertClose([r.loss], [0.5]);
  logits.dispose();
  labels.dispose();
});

test('weight decay skips norms, biases and position tables', () => {
  const named: [string, Tensor][] = [
    ['conv.weight', zeros([4, 3, 3, 3])],
    ['bn.weight', zeros([4])],
    ['fc.bias', zeros([4])],
    ['encoder.pos_embedding', zeros([1, 5, 8])],
    ['layers.0.attn.relative_position_bias_table', zeros([9, 3])],
  ];
  const groups = decayGroups(named, 0.05);
  assert.deepEqual(groups.map((g) => [g.params.length, g.weightDecay]), [[1, 0.05], [4, 0]]);
  named.forEach(([, t]) => t.dispose());
});

test('clipGradNorm scales every gradient to the global norm', () => {
  const a = keep(zeros([3]).requiresGrad_());
  const b = keep(zeros([4]).requiresGrad_());
  tidy(() => a.mul(tensor([3, 0, 0])).sum().add(b.mul(tensor([0, 4, 0, 0])).sum()).backward());
  const before = clipGradNorm([a, b], 1);
  assertClose([before], [5]);
  const ga = a.grad!;
  const gb = b.grad!;
  assertClose(ga, [0.6, 0, 0], { atol: 1e-5 });
  assertClose(gb, [0, 0.8, 0, 0], { atol: 1e-5 });
  [a, b, ga, gb].forEach((t) => t.dispose());
});

/** Two classes a conv net tells apart at once: the sign of the first channel, plus noise. */
class Synthetic implements BatchSource {
  readonly batchesPerEpoch: number;
  crashAfter = Infinity;
  poisonBatch = -1;
  constructor(readonly batches: number, readonly batchSize = 8, readonly size = 32) {
    this.batchesPerEpoch = batches;
  }
  async *epoch(epoch: number, options: { from?: number } = {}): AsyncIterableIterator<TrainBatch> {
    for (let b = options.from ?? 0; b < this.batches; b++) {
      if (b >= this.crashAfter) throw new Error('simulated crash');
      manualSeed(1000 + epoch * 100 + b);
      const labels = Array.from({ length: this.batchSize }, (_, i) => (i + b + epoch) % 2);
      const images = keep(noGrad(() => {
        const x = randn([this.batchSize, 3, this.size, this.size]).mul(0.5);
        const sign = tensor(new Float32Array(labels.map((l) => (l ? 1 : -1))), { shape: [this.batchSize, 1, 1, 1] });
        const shifted = x.add(sign.mul(tensor(new Float32Array([1, 0, 0]), { shape: [1, 3, 1, 1] })));
        if (b === this.poisonBatch) shifted.fill_(Number.NaN);
        return shifted;
      }));
      const y = keep(tensor(new BigInt64Array(labels.map(BigInt))));
      yield { images, labels: y, dispose: () => { images.dispose(); y.dispose(); } };
    }
  }
}

function setup(method = 'mona') {
  manualSeed(0);
  const model = createModel('resnet18', { numClasses: 2 });
  manualSeed(1);
  const delta = applyDelta(model, { method, numClasses: 2 });
  return { model, delta };
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'deltatune-trainer-'));
}

test('a run trains, evaluates, and writes a complete run directory', async () => {
  const dir = tmp();
  const { model, delta } = setup();
  try {
    const trainer = new Trainer(delta, new Synthetic(6), new Synthetic(2), dir, { epochs: 2, lr: 3e-3, warmupEpochs: 0.5, runConfig: { note: 'test' } });
    const result = await trainer.fit();
    assert.equal(result.history.length, 2);
    assert.ok(result.history[1]!.trainLoss < result.history[0]!.trainLoss, `loss falls: ${result.history.map((r) => r.trainLoss).join(' → ')}`);
    assert.ok(result.final && result.final.top1 > 75, `validation top-1 beats chance clearly: ${result.final?.top1}`);
    for (const f of ['config.json', 'metrics.jsonl', 'summary.json', 'state.safetensors', 'best/delta.json', 'best/delta.safetensors', 'last/delta.json', 'last/delta.safetensors']) {
      assert.ok(existsSync(join(dir, f)), `${f} exists`);
    }
    assert.equal(readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 2);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.equal(config.note, 'test');
    assert.equal(config.method, 'mona');
    assert.ok(!readdirSync(dir).some((f) => f.includes('.tmp')), 'no temporary files left');
  } finally {
    delta.dispose();
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

async function lastDelta(dir: string): Promise<Map<string, Tensor>> {
  return loadSafetensors(join(dir, 'last', 'delta.safetensors')).tensors;
}

test('resume after a crash mid-epoch ends with exactly the weights of an uninterrupted run', async () => {
  const options = { epochs: 2, lr: 2e-3, checkpointEvery: 2, accumulate: 1, seed: 7 };
  const straight = tmp();
  const crashed = tmp();
  try {
    {
      const { model, delta } = setup();
      await new Trainer(delta, new Synthetic(5), null, straight, options).fit();
      delta.dispose();
      model.dispose();
    }
    {
      const { model, delta } = setup();
      const source = new Synthetic(5);
      source.crashAfter = 3; // epoch 1 crashes after 3 batches; the last checkpoint is after batch 2
      await assert.rejects(new Trainer(delta, source, null, crashed, options).fit(), /simulated crash/);
      delta.dispose();
      model.dispose();
    }
    const settle = async () => {
      for (let i = 0; i < 3; i++) {
        globalThis.gc?.();
        await new Promise((r) => setImmediate(r));
      }
      return memoryStats().liveHandles;
    };
    const before = await settle();
    {
      // The same base (as from its weights file), but the delta's own init differs: the state file must override it.
      manualSeed(0);
      const model = createModel('resnet18', { numClasses: 2 });
      manualSeed(99);
      const delta = applyDelta(model, { method: 'mona', numClasses: 2 });
      await new Trainer(delta, new Synthetic(5), null, crashed, options).fit({ resume: true });
      delta.dispose();
      model.dispose();
    }
    const after = await settle();
    assert.ok(after <= before, `resuming leaks no tensors: ${before} → ${after}`);
    const a = await lastDelta(straight);
    const b = await lastDelta(crashed);
    assert.deepEqual([...a.keys()], [...b.keys()]);
    for (const [k, t] of a) assertClose(b.get(k)!, t, { rtol: 0, atol: 0, what: k });
    assert.deepEqual(
      readFileSync(join(straight, 'metrics.jsonl'), 'utf8').split('\n').map((l) => l && JSON.parse(l).trainLoss),
      readFileSync(join(crashed, 'metrics.jsonl'), 'utf8').split('\n').map((l) => l && JSON.parse(l).trainLoss),
    );
    [...a.values(), ...b.values()].forEach((t) => t.dispose());
  } finally {
    rmSync(straight, { recursive: true, force: true });
    rmSync(crashed, { recursive: true, force: true });
  }
});

test('a NaN loss stops training with a clear error and keeps the last good checkpoint', async () => {
  const dir = tmp();
  const { model, delta } = setup('fixed');
  try {
    const source = new Synthetic(4);
    const trainer = new Trainer(delta, source, null, dir, { epochs: 2, lr: 1e-3, checkpointEvery: 1 });
    source.poisonBatch = 3;
    await assert.rejects(trainer.fit(), (err: Error) => {
      assert.ok(err instanceof DivergedError);
      assert.match(err.message, /loss became NaN at epoch 1, batch 4/);
      return true;
    });
    const { tensors } = loadSafetensors(join(dir, 'state.safetensors'));
    for (const [k, t] of tensors) assert.ok(t.toNumbers().every(Number.isFinite), `${k} is finite in the kept checkpoint`);
    tensors.forEach((t) => t.dispose());
  } finally {
    delta.dispose();
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('early stopping ends the run once validation stops improving', async () => {
  const dir = tmp();
  const { model, delta } = setup('fixed');
  try {
    // lr 0 after warm-up: nothing changes, so epoch 2 is no better than epoch 1.
    const result = await new Trainer(delta, new Synthetic(2), new Synthetic(1), dir, { epochs: 6, lr: 1e-9, patience: 1 }).fit();
    assert.equal(result.stoppedEarly, true);
    assert.equal(result.history.length, 2);
  } finally {
    delta.dispose();
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad trainer options name the option', () => {
  const { model, delta } = setup('fixed');
  try {
    assert.throws(() => new Trainer(delta, new Synthetic(2), null, tmp(), { epochs: 0, lr: 1 }), /epochs must be a positive integer, got 0/);
    assert.throws(() => new Trainer(delta, new Synthetic(2), null, tmp(), { epochs: 1, lr: -1 }), /lr must be a positive number/);
    assert.throws(() => new Trainer(delta, new Synthetic(2), null, tmp(), { epochs: 1, lr: 1, labelSmoothing: 2 }), /labelSmoothing must be in \[0, 1\)/);
    assert.throws(() => new Trainer(delta, new Synthetic(2), null, tmp(), { epochs: 1, lr: 1, optimizer: 'lamb' as 'sgd' }), /optimizer must be 'adamw' or 'sgd'/);
  } finally {
    delta.dispose();
    model.dispose();
  }
});

