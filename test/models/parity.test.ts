// Every CNN in the zoo against torchvision: identical state-dict keys and shapes, strict loading
// of .pth and .safetensors files made by PyTorch, eval logits within 1e-4, and train-mode logits,
// gradients and running statistics matching after one backward.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Dropout, DropPath, backward, tidy, type Tensor } from '../../src/index.js';
import { createModel, listModels, modelConfig, type VisionModel } from '../../src/models/index.js';
import { assertClose, fromOracle, runOracle, type OracleArray } from '../helpers.js';

interface ModelCase {
  pth: string;
  safetensors: string;
  input: OracleArray;
  logits: OracleArray;
  keys: [string, number[]][];
  trainLogits: OracleArray;
  gradOut: OracleArray;
  grads: Record<string, OracleArray>;
  runningMean?: Record<string, OracleArray>;
  timm?: string;
}

const oracle = runOracle<Record<string, ModelCase>>('models');
const LOGIT_ATOL = 1e-4;

function evalLogits(model: VisionModel, input: OracleArray): Tensor {
  model.eval();
  return tidy(() => model.call(fromOracle(input)));
}

for (const [name, c] of Object.entries(oracle)) {
  test(`${name}: state-dict keys, order and shapes equal torchvision's`, () => {
    const model = createModel(name);
    try {
      const ours = [...model.stateDict()].map(([k, t]) => [k, [...t.shape]]);
      assert.deepEqual(ours, c.keys);
    } finally {
      model.dispose();
    }
  });

  for (const format of ['safetensors', 'pth'] as const) {
    test(`${name}: loads torchvision's ${format} strictly; eval logits within ${LOGIT_ATOL}`, () => {
      const model = createModel(name, { weights: c[format] });
      try {
        tidy(() => assertClose(evalLogits(model, c.input), fromOracle(c.logits), { rtol: 0, atol: LOGIT_ATOL, what: `${name} logits` }));
      } finally {
        model.dispose();
      }
    });
  }

  test(`${name}: train-mode logits, gradients and running statistics match`, () => {
    const model = createModel(name, { weights: c.safetensors });
    try {
      model.train();
      // Dropout and stochastic depth off, as in the oracle, so the step is deterministic.
      model.apply((m) => {
        if (m instanceof Dropout || m instanceof DropPath) m.training = false;
      });
      tidy(() => {
        const logits = model.call(fromOracle(c.input));
        assertClose(logits, fromOracle(c.trainLogits), { rtol: 0, atol: LOGIT_ATOL, what: 'train logits' });
        backward([logits], [fromOracle(c.gradOut)]);
        const params = new Map(model.namedParameters());
        for (const [pname, expected] of Object.entries(c.grads)) {
          const g = params.get(pname)?.grad;
          assert.ok(g, `${pname} has a gradient`);
          // Gradients sum over batch and space: compare relative to their own scale.
          const exp = fromOracle(expected);
          const scale = exp.abs().max().item();
          assertClose(g, exp, { rtol: 1e-3, atol: 1e-4 * Math.max(scale, 1e-3), what: `grad of ${pname}` });
        }
        const buffers = new Map(model.namedBuffers());
        for (const [bname, expected] of Object.entries(c.runningMean ?? {})) {
          assertClose(buffers.get(bname)!, fromOracle(expected), { rtol: 1e-4, atol: 1e-5, what: bname });
        }
      });
    } finally {
      model.dispose();
    }
  });
}

test('every registered CNN has an oracle case (transformers: test/models/swin_vit.test.ts)', () => {
  const cnns = listModels().filter((n) => modelConfig(n).kind === 'cnn');
  assert.deepEqual(cnns.filter((n) => !(n in oracle)), []);
});

test('blocks() names real submodules with the right output channels', () => {
  const expected: Record<string, [count: number, lastChannels: number]> = {
    resnet18: [8, 512], resnet50: [16, 2048], mobilenet_v2: [17, 320], convnext_tiny: [18, 768],
  };
  for (const [name, [count, lastChannels]] of Object.entries(expected)) {
    const model = createModel(name);
    try {
      const blocks = model.blocks();
      assert.equal(blocks.length, count, `${name} block count`);
      assert.equal(blocks.at(-1)!.channels, lastChannels, `${name} last block channels`);
      assert.equal(blocks.at(-1)!.reduction, 32, `${name} last block reduction`);
      for (const b of blocks) model.getSubmodule(b.name);
      // The reported channels are what the block really outputs.
      const seen = new Map<string, number>();
      const removers = blocks.map((b) => model.getSubmodule(b.name).registerForwardHook((_m, _i, out) => void seen.set(b.name, (out as Tensor).shape[1]!)));
      model.eval();
      tidy(() => model.call(fromOracle(oracle[name]!.input)));
      removers.forEach((r) => r());
      for (const b of blocks) assert.equal(seen.get(b.name), b.channels, `${name} ${b.name} channels`);
    } finally {
      model.dispose();
    }
  }
});

test('numClasses different from the checkpoint keeps the backbone and replaces the head', () => {
  const c = oracle.resnet18!;
  const model = createModel('resnet18', { weights: c.safetensors, numClasses: 7 });
  const reference = createModel('resnet18', { weights: c.safetensors });
  try {
    assert.equal(model.config.numClasses, 7);
    tidy(() => {
      const x = fromOracle(c.input);
      model.eval();
      reference.eval();
      assert.deepEqual([...model.call(x).shape], [2, 7]);
      assertClose(model.forwardFeatures(x), reference.forwardFeatures(x), { rtol: 0, atol: 0, what: 'features' });
    });
    model.resetClassifier(3);
    tidy(() => assert.deepEqual([...model.call(fromOracle(c.input)).shape], [2, 3]));
  } finally {
    model.dispose();
    reference.dispose();
  }
});

test('a timm-named ConvNeXt checkpoint loads through the remap and gives the same logits', () => {
  const c = oracle.convnext_tiny!;
  const model = createModel('convnext_tiny', { weights: c.timm! });
  try {
    tidy(() => assertClose(evalLogits(model, c.input), fromOracle(c.logits), { rtol: 0, atol: LOGIT_ATOL, what: 'timm logits' }));
  } finally {
    model.dispose();
  }
});

test('weights errors are clear: unknown names, bad files and wrong models are named', () => {
  assert.throws(() => createModel('resnet50', { weights: 'imagenet' }), /unknown weights 'imagenet': not a file, and not a known name \(for resnet50: resnet50\.IMAGENET1K_V1, resnet50\.IMAGENET1K_V2/);
  assert.throws(() => createModel('resnet50', { weights: '/nonexistent/r50.safetensors' }), /nonexistent\/r50\.safetensors/);
  assert.throws(() => createModel('resnet34', { weights: oracle.resnet18!.safetensors }), /loading a state dict from .*resnet18\.safetensors into ResNet:\n.*(missing|mis-shaped)/s);
  assert.throws(() => createModel('no_such_model'), /unknown model 'no_such_model'; available: .*resnet50/);
  const model = createModel('resnet18');
  try {
    tidy(() => assert.throws(() => model.call(fromOracle(oracle.resnet18!.input).narrow(1, 0, 2)), /expected images as a \[N, 3, H, W\] tensor/));
  } finally {
    model.dispose();
  }
});
