// The delta-method matrix: every method on a CNN, a Swin and a ViT. Only the delta trains; methods
// that promise it leave outputs unchanged at init; save → load onto a fresh base reproduces the
// outputs; merge reproduces them in an ordinary model; detach restores the base exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdamW, BatchNorm2d, Conv2d, FoldedBatchNorm2d, FoldedConv2d, FrozenBatchNorm2d, GroupNorm, StandIn, LayerNorm, type Module, SwinTransformer, VisionTransformer, applyDelta, crossEntropy, createModel, keep, listMethods, loadDelta, manualSeed,
  memoryStats, methodFacts, modelConfig, noGrad, randint, randn, saveDelta, tidy, type Delta, type ModelConfig, type Tensor, type VisionModel,
} from '../../src/index.js';
import { assertClose, runOracle } from '../helpers.js';

const resnetWeights = runOracle<Record<string, { safetensors: string }>>('models').resnet18!.safetensors;

/** A small member of a registered family: the family's facts, a test's sizes. */
const cfg = (name: string, like: string): ModelConfig => ({
  ...modelConfig(like), name, inputSize: [3, 32, 32], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], numClasses: 5,
  weightSource: 'test', license: 'test', paper: 'test',
});

interface Family {
  make(): VisionModel;
  input: number[];
}

const families: Record<string, Family> = {
  resnet18: { make: () => createModel('resnet18', { weights: resnetWeights }), input: [2, 3, 32, 32] },
  'tiny-swin': {
    make: () => new SwinTransformer(cfg('tiny_swin', 'swin_t'), { patchSize: 4, embedDim: 16, depths: [2, 1], numHeads: [2, 2], windowSize: 4 }, 5, 0),
    input: [2, 3, 32, 32],
  },
  'tiny-vit': {
    make: () => new VisionTransformer(cfg('tiny_vit', 'vit_b_16'), { imageSize: 32, patchSize: 8, numLayers: 2, numHeads: 2, hiddenDim: 16, mlpDim: 32 }, 5),
    input: [2, 3, 32, 32],
  },
};

/** Which base parameter names each method trains (beyond its own modules and the head). */
const expectedBase: Record<string, (name: string, owner: Module<any, any>) => boolean> = {
  full: () => true,
  fixed: () => false,
  bitfit: (n) => n.includes('bias'),
  normtuning: (n, owner) => n.includes('norm') || owner instanceof BatchNorm2d || owner instanceof LayerNorm || owner instanceof GroupNorm,
  lora: () => false,
  ssf: () => false,
};

function forward(model: VisionModel, x: Tensor): Tensor {
  model.eval();
  return noGrad(() => model.call(x));
}

function trainSteps(model: VisionModel, delta: Delta, x: Tensor, steps = 2): void {
  const opt = new AdamW(delta.trainableParameters(), { lr: 1e-2 });
  const y = randint(0, delta.head.outFeatures, [x.size(0)]);
  model.train();
  for (let i = 0; i < steps; i++) {
    tidy(() => {
      opt.zeroGrad();
      crossEntropy(model.call(x), y).backward();
      opt.step();
    });
  }
  opt.dispose();
  y.dispose();
}

for (const [familyName, family] of Object.entries(families)) {
  for (const method of listMethods()) {
    test(`${method} on ${familyName}`, () => {
      manualSeed(3);
      // The registry's facts are what this test holds each method to.
      const facts = methodFacts(method);
      const probe = family.make();
      const kind = probe.config.kind;
      probe.dispose();
      if (!facts.kinds.includes(kind)) {
        const m = family.make();
        try {
          assert.throws(() => applyDelta(m, { method }), (err: Error) => /applies to/.test(err.message) && err.message.includes(m.config.name));
        } finally {
          m.dispose();
        }
        return;
      }
      const model = family.make();
      const x = keep(randn(family.input));
      const dir = mkdtempSync(join(tmpdir(), 'deltatune-delta-'));
      const fresh = family.make();
      try {
        fresh.loadStateDict(model.stateDict()); // the same base, whatever its initialisation
        const base = keep(forward(model, x));
        const baseFeatures = keep(noGrad(() => model.forwardFeatures(x)));
        const delta = applyDelta(model, { method });
        const headPrefix = `${model.config.classifier}.`;

        // Only the delta trains: its modules, the head, and the base parameters it selects.
        const added = delta.addedModules.map(([n]) => `${n}.`);
        const trainable = new Set(delta.namedTrainableParameters().map(([n]) => n));
        for (const [name] of model.namedParameters()) {
          const own = added.some((a) => name.startsWith(a)) || name.startsWith(headPrefix);
          const expectBase = expectedBase[method];
          if (own) assert.ok(trainable.has(name), `${name} (the delta's own) should train`);
          else if (expectBase) {
            // While attached, frozen BatchNorms are stand-ins: judge the module they stand in for.
            const owner = model.getSubmodule(name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : '');
            assert.equal(trainable.has(name), expectBase(name, owner instanceof StandIn ? owner.original : owner), `${name} trainable`);
          }
        }
        assert.ok(trainable.size > 0);

        // Equal up to float32 rounding: frozen BatchNorm is folded into its conv, and filter-atom
        // rebuilds each kernel from its SVD.
        if (facts.identityAtInit) assertClose(forward(model, x), base, { rtol: 0, atol: 2e-5, what: 'output at init' });
        // (Features, not logits: a zero-initialised head, as ViT's, hides any change.)
        else assert.ok(tidy(() => noGrad(() => model.forwardFeatures(x).sub(baseFeatures).abs().max().item())) > 0, 'the registry says it is not the identity at init');

        // One backward: gradients reach exactly the trainable parameters.
        tidy(() => {
          model.train();
          crossEntropy(model.call(x), randint(0, 5, [x.size(0)])).backward();
          for (const [name, p] of model.namedParameters()) {
            if (trainable.has(name)) assert.ok(p.grad !== null, `${name} has a gradient`);
            else assert.equal(p.grad, null, `${name} (frozen) has no gradient`);
          }
          model.zeroGrad();
        });

        trainSteps(model, delta, x);
        const tuned = keep(forward(model, x));
        assert.ok(tidy(() => tuned.sub(base).abs().max().item()) > 1e-4, 'training changed the outputs');

        // Detach restores the base exactly; attach brings the delta back.
        delta.detach();
        assertClose(forward(model, x), base, { rtol: 0, atol: 0, what: 'base after detach' });
        delta.attach();
        assertClose(forward(model, x), tuned, { rtol: 0, atol: 0, what: 'delta after re-attach' });

        // Save, then load onto a fresh copy of the base.
        const manifest = saveDelta(delta, dir);
        assert.equal(manifest.method, method);
        const loaded = loadDelta(fresh, dir);
        assertClose(forward(fresh, x), tuned, { rtol: 1e-6, atol: 1e-6, what: 'loaded delta' });
        loaded.dispose();

        if (facts.mergeable) {
          const merged = delta.merge();
          assertClose(forward(merged, x), tuned, { rtol: 1e-5, atol: 2e-5, what: 'merged model' });
          assert.equal(merged.parameters().every((p) => p.requiresGrad), true, 'a merged model is an ordinary model');
          assert.throws(() => delta.attach(), /was merged into its model/);
          delta.dispose();
          // The merged model keeps working after its delta is disposed (the head is the model's now).
          assertClose(forward(merged, x), tuned, { rtol: 1e-5, atol: 2e-5, what: 'merged model after delta.dispose()' });
        } else {
          assert.throws(() => delta.merge(), /cannot be merged/);
        }
        delta.dispose();
        base.dispose();
        baseFeatures.dispose();
        tuned.dispose();
      } finally {
        model.dispose();
        fresh.dispose();
        x.dispose();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
}

test('bad configs are clear errors that list the valid choices', () => {
  const model = families['tiny-vit']!.make();
  try {
    assert.throws(() => applyDelta(model, { method: 'nope' }), /unknown delta method 'nope'; available: .*lora/);
    assert.throws(() => applyDelta(model, { method: 'lora', rank: 0 }), /'rank' must be a positive integer/);
    assert.throws(() => applyDelta(model, { method: 'lora', rnk: 4 }), /unknown option 'rnk'; valid: rank, alpha, dropout, targets/);
    assert.throws(() => applyDelta(model, { method: 'lora', targets: 'no\\.such\\.module' }), /matches no module. Module names look like: conv_proj/);
    assert.throws(() => applyDelta(model, { method: 'partial', blocks: 99 }), /'blocks' is 99 but tiny_vit has 2 blocks/);
    const d = applyDelta(model, { method: 'fixed' });
    assert.throws(() => applyDelta(model, { method: 'lora' }), /already attached/);
    d.dispose();
  } finally {
    model.dispose();
  }
  const cnn = createModel('mobilenet_v2');
  try {
    assert.throws(() => applyDelta(cnn, { method: 'lora', targets: 'features\\.1\\.conv\\.0\\.0' }), /grouped convolution \(groups=32\)/);
  } finally {
    cnn.dispose();
  }
});

test('a delta onto a base with other weights is refused unless overridden', () => {
  const dir = mkdtempSync(join(tmpdir(), 'deltatune-delta-'));
  const trained = createModel('resnet18', { weights: resnetWeights });
  const other = createModel('resnet18');
  try {
    const d = applyDelta(trained, { method: 'bitfit', numClasses: 3 });
    saveDelta(d, dir);
    assert.throws(() => loadDelta(other, dir), /trained on base weights resnet18\.safetensors .*this model has \(random init\)/s);
    const forced = loadDelta(other, dir, { ignoreBaseMismatch: true });
    assert.equal(forced.head.outFeatures, 3);
    forced.dispose();
    d.dispose();
  } finally {
    trained.dispose();
    other.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('no tensors leak across apply, train, save, load, detach and dispose', () => {
  const before = memoryStats().liveHandles;
  const model = families['tiny-swin']!.make();
  const d = applyDelta(model, { method: 'lora', rank: 4 });
  tidy(() => trainSteps(model, d, randn([2, 3, 32, 32]), 1));
  d.detach();
  d.dispose();
  model.dispose();
  assert.equal(memoryStats().liveHandles, before);
});

test('frozen BatchNorm folds into its conv while attached, and only there', () => {
  const model = createModel('resnet18', { weights: resnetWeights });
  const x = keep(randn([2, 3, 32, 32]));
  try {
    const base = keep(forward(model, x));
    const folded = (conv: string, bn: string) => model.getSubmodule(conv) instanceof FoldedConv2d && model.getSubmodule(bn) instanceof FoldedBatchNorm2d;
    const fixed = applyDelta(model, { method: 'fixed', numClasses: 1000 });
    assert.ok(folded('layer1.0.conv1', 'layer1.0.bn1'), 'frozen pair folded');
    assertClose(forward(model, x), base, { rtol: 0, atol: 2e-5, what: 'folded' });
    fixed.dispose();
    assert.ok(model.getSubmodule('layer1.0.conv1') instanceof Conv2d && model.getSubmodule('layer1.0.bn1') instanceof BatchNorm2d, 'unfolded on detach');
    // A method that hooks or trains a pair leaves it unfolded; its BatchNorm still runs frozen.
    const ssf = applyDelta(model, { method: 'ssf' });
    assert.ok(model.getSubmodule('layer1.0.bn1') instanceof FrozenBatchNorm2d);
    ssf.dispose();
    const lora = applyDelta(model, { method: 'lora', targets: ['layer1.0.conv1'] });
    assert.ok(model.getSubmodule('layer1.0.conv1') instanceof Conv2d && folded('layer1.0.conv2', 'layer1.0.bn2'));
    lora.dispose();
    base.dispose();
  } finally {
    model.dispose();
    x.dispose();
  }
});

test('frozen convolutions run in bfloat16 on request: the dense wide ones only, close to float32, and back exactly', () => {
  const model = createModel('resnet18', { weights: resnetWeights });
  const x = keep(randn([2, 3, 32, 32]));
  try {
    const base = keep(forward(model, x));
    const d = applyDelta(model, { method: 'mona', numClasses: 1000, stages: [3] });
    const fp32 = keep(forward(model, x));
    assert.equal(d.frozenPrecision, 'float32');
    assert.deepEqual(d.lowPrecisionConvolutions(), []);
    const low = d.setFrozenPrecision('bfloat16');
    // cin·cout/(cin+cout) ≥ 100: 256→256 (128) and 256→512 (170) switch; 128→256 (85), the
    // 64-channel stem and layer1–2 do not.
    assert.ok(low.includes('layer3.0.conv2') && low.includes('layer4.0.conv1') && low.includes('layer4.1.conv2'), low.join());
    assert.ok(!low.includes('layer3.0.conv1') && !low.includes('layer3.0.downsample.0'), low.join());
    assert.ok(!low.some((n) => n === 'conv1' || n.startsWith('layer1.') || n.startsWith('layer2.')), low.join());
    const bf16 = keep(forward(model, x));
    assert.equal(bf16.dtype, 'float32');
    const diff = bf16.sub(fp32).abs().max().item();
    assert.ok(diff > 0, 'bfloat16 changes the outputs (it is really used)');
    assertClose(bf16, fp32, { rtol: 0.05, atol: 0.05 * fp32.abs().max().item(), what: 'bfloat16 vs float32 logits' });

    // Gradients reach the delta through the bfloat16 convolutions, close to float32's.
    const labels = keep(randint(0, 1000, [2]));
    const grads = (): number[] => tidy(() => {
      manualSeed(3); // the same dropout masks in Mona
      for (const p of d.trainableParameters()) p.grad?.zero_();
      crossEntropy(model.call(x), labels).backward();
      return d.trainableParameters().flatMap((p) => p.grad!.toNumbers());
    });
    model.train();
    const g16 = grads();
    d.setFrozenPrecision('float32');
    const g32 = grads();
    model.eval();
    assert.ok(g16.every(Number.isFinite));
    const norm = (v: number[]) => Math.sqrt(v.reduce((s, a) => s + a * a, 0));
    assert.ok(norm(g16.map((g, i) => g - g32[i]!)) < 0.05 * norm(g32), 'gradients within 5% of float32');

    // Back to float32: exactly the float32 outputs; detach restores the base exactly.
    assert.deepEqual(d.lowPrecisionConvolutions(), []);
    assert.deepEqual(forward(model, x).toNumbers(), fp32.toNumbers());
    d.setFrozenPrecision('bfloat16');
    d.detach();
    assert.deepEqual(forward(model, x).toNumbers(), base.toNumbers());
    assert.deepEqual(d.attach().lowPrecisionConvolutions(), low, 'the setting survives detach and attach');
    assertClose(forward(model, x), bf16, { rtol: 0, atol: 0, what: 're-attached' });
    assert.throws(() => d.setFrozenPrecision('float16' as never), /frozen precision must be 'float32' or 'bfloat16', got "float16"/);
    d.dispose();
    for (const t of [base, fp32, bf16, labels]) t.dispose();
  } finally {
    model.dispose();
    x.dispose();
  }
});

test('two deltas share one base: switch between them without reloading', () => {
  const model = createModel('resnet18', { weights: resnetWeights });
  const x = keep(randn([2, 3, 32, 32]));
  try {
    const base = keep(forward(model, x));
    const a = applyDelta(model, { method: 'bitfit', numClasses: 4 });
    trainSteps(model, a, x);
    const outA = keep(forward(model, x));
    a.detach();
    const b = applyDelta(model, { method: 'lora', numClasses: 6 });
    trainSteps(model, b, x);
    const outB = keep(forward(model, x));
    assert.deepEqual([...outB.shape], [2, 6]);
    b.detach();
    assertClose(forward(model, x), base, { rtol: 0, atol: 0, what: 'base between deltas' });
    a.attach();
    assertClose(forward(model, x), outA, { rtol: 0, atol: 0, what: 'delta A again' });
    a.detach();
    b.attach();
    assertClose(forward(model, x), outB, { rtol: 0, atol: 0, what: 'delta B again' });
    b.dispose();
    a.dispose();
    assertClose(forward(model, x), base, { rtol: 0, atol: 0, what: 'base after both' });
    for (const t of [base, outA, outB]) t.dispose();
  } finally {
    model.dispose();
    x.dispose();
  }
});
