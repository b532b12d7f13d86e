// The registry sweep: every registered model runs forward and backward at a small input, reloads
// its own saved weights strictly, and round-trips a delta of every method that applies to its kind
// (apply, save, load onto a fresh base, same outputs). Driven by the registries: a new family or
// method is swept without editing this file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  applyDelta, createModel, crossEntropy, keep, listMethods, listModels, loadDelta, manualSeed, methodFacts, modelConfig, noGrad, randint, randn,
  saveDelta, saveStateDict, tidy, withoutInitialisation, type Tensor, type VisionModel,
} from '../src/index.js';
import { assertClose } from './helpers.js';

const CLASSES = 3;

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

const logits = (model: VisionModel, x: Tensor) => keep(noGrad(() => model.eval().call(x)));

for (const name of listModels()) {
  test(`registry sweep: ${name}`, { timeout: 240_000 }, () => {
    manualSeed(0);
    const config = modelConfig(name);
    const dir = mkdtempSync(join(tmpdir(), 'deltatune-sweep-'));
    const source = withoutInitialisation(() => createModel(name, { numClasses: CLASSES }));
    // Random values (not the skipped initialisation's), so the outputs below are informative.
    noGrad(() => source.parameters().forEach((p) => p.copy_(tidy(() => randn(p.shape).mul(0.05)))));
    let model: VisionModel | null = null;
    let fresh: VisionModel | null = null;
    const x = smallInput(source);
    try {
      assert.equal(source.config.kind, config.kind);
      // Forward and backward: every parameter gets a gradient.
      tidy(() => {
        source.train();
        crossEntropy(source.call(x), randint(0, CLASSES, [1])).backward();
        const missing = source.namedParameters().filter(([, p]) => p.grad === null).map(([n]) => n);
        assert.deepEqual(missing, [], 'parameters without a gradient');
        source.zeroGrad();
      });

      // Its own weights, saved and loaded strictly by name, give the same outputs.
      const weights = join(dir, 'weights.safetensors');
      saveStateDict(weights, source.stateDict());
      model = createModel(name, { weights });
      fresh = createModel(name, { weights });
      const base = logits(model, x);
      assertClose(base, logits(source, x), { rtol: 0, atol: 0, what: `${name} reloaded` });

      const methods = listMethods().filter((m) => methodFacts(m).kinds.includes(config.kind));
      assert.ok(methods.includes('mona') && methods.includes('lora'), `${name}: mona and lora apply to every kind`);
      for (const method of methods) {
        const delta = applyDelta(model!, { method });
        try {
          // A training-like nudge to every trainable tensor, so the round trip carries real values.
          noGrad(() => delta.trainableParameters().forEach((p) => p.add_(tidy(() => randn(p.shape).mul(1e-3)))));
          const tuned = logits(model!, x);
          const deltaDir = join(dir, method);
          saveDelta(delta, deltaDir);
          const loaded = loadDelta(fresh!, deltaDir);
          try {
            assertClose(logits(fresh!, x), tuned, { rtol: 1e-5, atol: 1e-5, what: `${method} on ${name}, loaded onto a fresh base` });
          } finally {
            loaded.dispose();
          }
          delta.detach();
          assertClose(logits(model!, x), base, { rtol: 0, atol: 0, what: `${name} after detaching ${method}` });
        } finally {
          delta.dispose();
        }
      }
    } finally {
      source.dispose();
      model?.dispose();
      fresh?.dispose();
      x.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
