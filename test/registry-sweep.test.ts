// The registry sweep: every registered model runs forward and backward at a small input, reloads
// its own saved weights strictly, and round-trips a delta of every method that applies to its kind
// (apply, save, detach, load onto the same base, same outputs). Driven by the registries: a new family or
// method is swept without editing this file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  applyDelta, cat, createModel, flip, crossEntropy, keep, memoryStats, listMethods, listModels, loadDelta, manualSeed, methodFacts, modelConfig, noGrad, randint, randn,
  saveDelta, saveStateDict, tidy, type Delta, type Tensor, type VisionModel,
} from '../src/index.js';
import { assertClose } from './helpers.js';

const CLASSES = 3;
const EXACT = { rtol: 0, atol: 0 };

/** The smallest square input the model takes: 32 pixels, or its configured size where it insists on that. */
function smallInput(model: VisionModel): Tensor {
  for (const side of [32, model.config.inputSize[1]]) {
    const x = keep(randn([1, 3, side, side]));
    try {
      noGrad(() => tidy(() => void model.eval().call(x)));
      return x;
    } catch (err) {
      x.dispose();
      if (side === model.config.inputSize[1]) throw err;
    }
  }
  throw new Error('unreachable');
}

// In a tidy: the forward's intermediates are freed at once, not left to the garbage collector.
const logits = (model: VisionModel, x: Tensor) => keep(tidy(() => noGrad(() => model.eval().call(x))));

/** assertClose, then frees both tensors. */
function same(actual: Tensor, expected: Tensor, tolerance: { rtol: number; atol: number }, what: string): void {
  try {
    assertClose(actual, expected, { ...tolerance, what });
  } finally {
    actual.dispose();
    expected.dispose();
  }
}

for (const name of listModels()) {
  test(`registry sweep: ${name}`, { timeout: 300_000 }, () => {
    manualSeed(0);
    const handlesBefore = memoryStats().liveHandles;
    const config = modelConfig(name);
    const dir = mkdtempSync(join(tmpdir(), 'deltatune-sweep-'));
    const source = createModel(name, { numClasses: CLASSES });
    let model: VisionModel | null = null;
    let base: Tensor | null = null;
    const x = smallInput(source);
    try {
      assert.equal(source.config.kind, config.kind);
      // Forward and backward: every parameter gets a gradient (two images: BatchNorm cannot train on
      // one value per channel).
      tidy(() => {
        source.train();
        crossEntropy(source.call(cat([x, flip(x, [3])])), randint(0, CLASSES, [2])).backward();
        const missing = source.namedParameters().filter(([, p]) => p.grad === null).map(([n]) => n);
        assert.deepEqual(missing, [], 'parameters without a gradient');
        source.zeroGrad();
      });

      // Its own weights, saved and loaded strictly by name, give the same features and outputs.
      const weights = join(dir, 'weights.safetensors');
      saveStateDict(weights, source.stateDict());
      model = createModel(name, { weights });
      const features = (m: VisionModel) => keep(tidy(() => noGrad(() => m.eval().forwardFeatures(x))));
      same(features(model), features(source), EXACT, `${name} reloaded: features`);
      same(logits(model, x), logits(source, x), EXACT, `${name} reloaded`);
      source.dispose();
      base = logits(model, x);

      const methods = listMethods().filter((m) => methodFacts(m).kinds.includes(config.kind));
      assert.ok(methods.includes('mona') && methods.includes('lora'), `${name}: mona and lora apply to every kind`);
      const refused: string[] = [];
      for (const method of methods) {
        let delta: Delta;
        try {
          delta = applyDelta(model, { method });
        } catch (err) {
          // A method may refuse a model of its kind that lacks what it adapts (conv-adapter needs a
          // dense k×k convolution; MobileNetV2 has none): only with a message naming the model.
          assert.match((err as Error).message, new RegExp(`^${method}: ${name} has no `), `${method} on ${name}`);
          refused.push(method);
          continue;
        }
        let loaded: Delta | null = null;
        try {
          // A training-like nudge to every trainable tensor (the head too), so the round trip carries real values.
          noGrad(() => delta.trainableParameters().forEach((p) => tidy(() => void p.add_(randn(p.shape).mul(1e-3)))));
          const tuned = logits(model, x);
          const deltaDir = join(dir, method);
          saveDelta(delta, deltaDir);
          delta.detach();
          const detached = logits(model, x);
          try {
            assertClose(detached, base!, { ...EXACT, what: `${name} after detaching ${method}` });
          } finally {
            detached.dispose();
          }
          // The saved delta, loaded onto the same base (checked by its fingerprint), gives the tuned outputs.
          loaded = loadDelta(model, deltaDir);
          same(logits(model, x), tuned, { rtol: 1e-5, atol: 1e-5 }, `${method} on ${name}, saved and loaded`);
        } finally {
          loaded?.dispose();
          delta.dispose();
        }
      }
      assert.ok(refused.length <= 1, `${name}: refused ${refused.join(', ')}`);
    } finally {
      source.dispose();
      model?.dispose();
      base?.dispose();
      x.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(memoryStats().liveHandles, handlesBefore, `${name}: every tensor freed`);
  });
}
