// Swin v1 (swin_t/s/b) and ViT-B/16 against torchvision 0.14 (test/oracle/swin_vit.py): state-dict
// keys, order, shapes and dtypes; strict loading of torchvision's .pth; eval logits (1e-4 absolute);
// train-mode logits and sampled gradients; blocks(); resetClassifier; timm checkpoints in both of
// timm's layouts (test/oracle/timm_swin.py) through the registered remap; clear input errors.
//
// Gradient tolerance: rtol 1e-3 plus atol = 1e-4 × the largest |gradient| of that parameter. Both
// sides run the same libtorch kernels, but thread counts and the order of a few reductions differ
// (ViT's attention is batched differently from torch's slow path), and a gradient element that
// nearly cancels carries the absolute rounding error of its largest terms.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, memoryStats, noGrad, randn, tidy } from '../../src/index.js';
import { createModel, listModels, modelConfig } from '../../src/models/registry.js';
import { SwinTransformer, swinFromTimm } from '../../src/models/swin.js';
import { VisionTransformer } from '../../src/models/vit.js';
import type { VisionModel } from '../../src/models/base.js';
import { MLP, MultiheadAttention, PatchMerging, ShiftedWindowAttention } from '../../src/nn/attention.js';
import { DropPath, Dropout, Linear } from '../../src/nn/layers.js';
import { loadStateDict } from '../../src/io/state-dict.js';
import { assertClose, fromOracle, runOracle, type OracleArray } from '../helpers.js';

type KeyList = [string, number[], string][];
interface FullEntry {
  pth: string;
  keys: KeyList;
  input: OracleArray;
  logits: OracleArray;
  trainLogits: OracleArray;
  gradOut: OracleArray;
  grads: string;
  input200?: OracleArray;
  logits200?: OracleArray;
  timm_new?: string;
  timm_old?: string;
}
interface Oracle {
  swin_s: { keys: KeyList };
  swin_b: { keys: KeyList };
  swin_t: FullEntry;
  vit_b_16: FullEntry;
  vit_tiny_p4_32: { pth: string; keys: unknown; input: OracleArray; logits: OracleArray };
}

const oracle = runOracle<Oracle>('swin_vit');
const LOGIT_ATOL = 1e-4;

function ourKeys(model: VisionModel): KeyList {
  return [...model.stateDict()].map(([k, v]) => [k, [...v.shape], v.dtype]);
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).abs().max().item());
}

function checkLogits(actual: Tensor, expected: Tensor, what: string): number {
  assert.deepEqual([...actual.shape], [...expected.shape], `${what}: shape`);
  const d = maxAbsDiff(actual, expected);
  assert.ok(d <= LOGIT_ATOL, `${what}: max |difference| ${d} > ${LOGIT_ATOL}`);
  return d;
}

function disableDropout(model: VisionModel): void {
  for (const m of model.modules()) if (m instanceof Dropout || m instanceof DropPath) m.eval();
}

for (const name of ['swin_s', 'swin_b'] as const) {
  test(`${name}: state-dict keys, order, shapes and dtypes equal torchvision's`, () => {
    const model = createModel(name);
    try {
      assert.deepEqual(ourKeys(model), oracle[name].keys);
    } finally {
      model.dispose();
    }
  });
}

test('vit_tiny_p4_32 is torchvision\'s VisionTransformer(32, patch 4, 6 layers, 3 heads, 192, 768): keys and eval logits', () => {
  const o = oracle.vit_tiny_p4_32;
  const model = createModel('vit_tiny_p4_32', { weights: o.pth });
  try {
    assert.deepEqual(ourKeys(model), o.keys);
    model.eval();
    const d = tidy(() => checkLogits(noGrad(() => model.call(fromOracle(o.input))), fromOracle(o.logits), 'vit_tiny_p4_32 eval logits'));
    console.log(`# vit_tiny_p4_32: max |logit difference| ${d.toExponential(2)}`);
  } finally {
    model.dispose();
  }
});

for (const name of ['swin_t', 'vit_b_16'] as const) {
  describe(name, () => {
    const o = oracle[name];
    // Stochastic depth 0 (swin_t defaults to 0.2): the train-mode step must be deterministic.
    const model = createModel(name, { weights: o.pth, dropPath: name === 'swin_t' ? 0 : undefined });
    const x = fromOracle(o.input);
    const expected = fromOracle(o.logits);
    after(() => {
      model.dispose();
      x.dispose();
      expected.dispose();
    });

    test('state-dict keys, order, shapes and dtypes equal torchvision\'s', () => {
      assert.deepEqual(ourKeys(model), o.keys);
    });

    test('strict loading reports nothing missing or unexpected', () => {
      const sd = loadStateDict(o.pth);
      try {
        const report = model.loadStateDict(sd, { strict: true, source: o.pth });
        assert.deepEqual(report, { missing: [], unexpected: [], mismatched: [] });
      } finally {
        for (const t of sd.values()) t.dispose();
      }
    });

    test('eval logits match torchvision (no grad, and with grad recording on)', () => {
      model.eval();
      const d1 = tidy(() => checkLogits(noGrad(() => model.call(x)), expected, 'eval logits (noGrad)'));
      const d2 = tidy(() => checkLogits(model.call(x), expected, 'eval logits (grad enabled)'));
      console.log(`# ${name}: max |logit difference| ${d1.toExponential(2)} (noGrad), ${d2.toExponential(2)} (grad on)`);
    });

    if (name === 'swin_t') {
      test('eval logits on 200×200 match torchvision (padded windows, odd patch merging)', () => {
        const x200 = fromOracle(o.input200!);
        const e200 = fromOracle(o.logits200!);
        try {
          const d = tidy(() => checkLogits(noGrad(() => model.eval().call(x200)), e200, '200×200 logits'));
          console.log(`# swin_t 200×200: max |logit difference| ${d.toExponential(2)}`);
        } finally {
          x200.dispose();
          e200.dispose();
        }
      });
    }

    test('train-mode logits and sampled gradients match torchvision', () => {
      const grads = loadStateDict(o.grads);
      const gradOut = fromOracle(o.gradOut);
      const expectedTrain = fromOracle(o.trainLogits);
      try {
        model.train();
        disableDropout(model);
        model.zeroGrad();
        tidy(() => {
          const logits = model.call(x);
          checkLogits(logits, expectedTrain, 'train logits');
          logits.backward(gradOut);
        });
        const params = new Map(model.namedParameters());
        let worst = 0;
        for (const [pname, g] of grads) {
          const p = params.get(pname);
          assert.ok(p, `no parameter ${pname}`);
          const ours = p.grad;
          assert.ok(ours, `${pname}: no gradient`);
          const scale = tidy(() => g.abs().max().item());
          assertClose(ours, g, { rtol: 1e-3, atol: 1e-4 * scale, what: `grad ${pname}` });
          worst = Math.max(worst, maxAbsDiff(ours, g) / scale);
          ours.dispose();
        }
        console.log(`# ${name}: sampled gradients, max |difference| / max |gradient| = ${worst.toExponential(2)}`);
      } finally {
        model.zeroGrad();
        model.eval();
        for (const t of [...grads.values(), gradOut, expectedTrain]) t.dispose();
      }
    });

    test('blocks() lists every block with its channels, reduction and layout', () => {
      const blocks = model.blocks();
      if (name === 'swin_t') {
        const depths = [2, 2, 6, 2];
        assert.equal(blocks.length, 12);
        let i = 0;
        depths.forEach((depth, stage) => {
          for (let j = 0; j < depth; j++, i++) {
            assert.deepEqual(blocks[i], { name: `features.${2 * stage + 1}.${j}`, stage, channels: 96 * 2 ** stage, reduction: 4 * 2 ** stage, layout: 'nhwc' });
          }
        });
      } else {
        assert.equal(blocks.length, 12);
        blocks.forEach((b, i) => assert.deepEqual(b, { name: `encoder.layers.encoder_layer_${i}`, stage: 0, channels: 768, reduction: 16, layout: 'tokens' }));
      }
      for (const b of blocks) assert.ok(model.getSubmodule(b.name), b.name);
      // The block outputs really have those shapes and layouts.
      const seen: number[][] = [];
      const removers = blocks.map((b) => model.getSubmodule(b.name).registerForwardHook((_m, _i, out) => void seen.push([...(out as Tensor).shape])));
      try {
        tidy(() => void noGrad(() => model.eval().call(x.narrow(0, 0, 1))));
      } finally {
        removers.forEach((r) => r());
      }
      blocks.forEach((b, i) => {
        const shape = seen[i]!;
        if (b.layout === 'nhwc') assert.deepEqual(shape, [1, 224 / b.reduction, 224 / b.reduction, b.channels], b.name);
        else assert.deepEqual(shape, [1, 1 + (224 / b.reduction) ** 2, b.channels], b.name);
      });
    });

    test('config names the first conv and the classifier', () => {
      const cfg = modelConfig(name);
      assert.ok(model.getSubmodule(cfg.firstConv));
      assert.ok(model.getSubmodule(cfg.classifier) instanceof Linear);
      assert.equal(cfg.classifier, name === 'swin_t' ? 'head' : 'heads.head');
      assert.deepEqual(cfg.mean, [0.485, 0.456, 0.406]);
      assert.deepEqual(cfg.inputSize, [3, 224, 224]);
    });

    if (name === 'swin_t') {
      for (const layout of ['new', 'old'] as const) {
        test(`timm checkpoint (${layout} layout) loads through the remap with the same logits`, () => {
          const path = o[`timm_${layout}`]!;
          const timm = createModel('swin_t', { weights: path });
          try {
            const d = tidy(() => checkLogits(noGrad(() => timm.eval().call(x)), expected, `timm ${layout} logits`));
            assert.equal(d, 0, 'the same weights must give bit-identical logits');
          } finally {
            timm.dispose();
          }
        });
      }

      test('swinFromTimm renames, rebuilds relative_position_index, drops attn_mask and frees what it replaces', () => {
        const raw = loadStateDict(o.timm_old!);
        assert.ok([...raw.keys()].some((k) => k.endsWith('attn_mask')));
        const masks = [...raw].filter(([k]) => k.endsWith('attn_mask') || k.endsWith('relative_position_index')).map(([, v]) => v);
        const mapped = swinFromTimm(raw);
        try {
          assert.ok(masks.every((t) => t.isDisposed), 'replaced tensors are disposed');
          assert.deepEqual([...mapped.keys()].sort(), o.keys.map(([k]) => k).sort());
        } finally {
          for (const t of mapped.values()) t.dispose();
        }
        const fresh = loadStateDict(o.timm_new!);
        assert.ok(![...fresh.keys()].some((k) => k.includes('relative_position_index')));
        const mappedNew = swinFromTimm(fresh);
        try {
          const ours = model.stateDict();
          for (const [k, v] of mappedNew) {
            assert.ok(ours.has(k), `unexpected ${k}`);
            if (k.endsWith('relative_position_index')) assert.deepEqual(v.toNumbers(), ours.get(k)!.toNumbers(), k);
          }
          assert.equal(mappedNew.size, ours.size);
        } finally {
          for (const t of mappedNew.values()) t.dispose();
        }
      });
    }

    test('resetClassifier changes the output width and frees the old head', () => {
      const cfg = modelConfig(name);
      const old = model.getSubmodule(cfg.classifier) as Linear;
      model.resetClassifier(10);
      const fresh = model.getSubmodule(cfg.classifier) as Linear;
      assert.notEqual(fresh, old);
      assert.ok(old.weight.isDisposed);
      assert.equal(model.config.numClasses, 10);
      // The head alone, on features of the backbone's output shape (a full forward is covered above).
      const featureShape = name === 'swin_t' ? [2, 7, 7, 768] : [2, 197, 768];
      const shape = tidy(() => [...noGrad(() => model.forwardHead(randn(featureShape))).shape]);
      assert.deepEqual(shape, [2, 10]);
      assert.deepEqual([...model.stateDict().get(`${cfg.classifier}.weight`)!.shape], [10, 768]);
    });
  });
}

describe('input checks', () => {
  test('ViT refuses a size other than 224×224 with a clear error', () => {
    const vit = createModel('vit_b_16', { numClasses: 3 });
    try {
      tidy(() => {
        assert.throws(() => vit.call(randn([1, 3, 225, 225])), /expected 224×224 images .*patches of 16.*got 225×225/);
        assert.throws(() => vit.call(randn([1, 1, 224, 224])), /\[N, 3, H, W\]/);
      });
    } finally {
      vit.dispose();
    }
    assert.throws(() => createModel('vit_b_16', { dropPath: 0.1 }), /no stochastic depth/);
  });

  test('Swin refuses bad images and maps with a clear error', () => {
    const attn = new ShiftedWindowAttention(8, [4, 4], [2, 2], 2);
    const merge = new PatchMerging(8);
    try {
      tidy(() => {
        assert.throws(() => attn.call(randn([1, 8, 8, 6])), /NHWC map \[B, H, W, 8\].*\[1,8,8,6\]/);
        assert.throws(() => attn.call(randn([8, 8, 8])), /NHWC map/);
        assert.throws(() => merge.call(randn([1, 8, 8, 6])), /\[\.\.\., H, W, 8\]/);
      });
    } finally {
      attn.dispose();
      merge.dispose();
    }
    assert.throws(() => new ShiftedWindowAttention(8, [4, 4], [4, 0], 2), /shiftSize\[0\]/);
    assert.throws(() => new ShiftedWindowAttention(9, [4, 4], [0, 0], 2), /divisible/);
    assert.throws(() => new MultiheadAttention(10, 3), /divisible/);
  });
});

describe('a small Swin', () => {
  const config = { ...modelConfig('swin_t'), name: 'swin_tiny_test' };
  const settings = { patchSize: 2, embedDim: 16, depths: [2, 2], numHeads: [2, 4], windowSize: 4 };

  test('caches its shifted-window mask outside the state dict and frees everything on dispose', () => {
    const before = memoryStats().liveHandles;
    const model = new SwinTransformer(config, settings, 5, 0.1);
    const keys = [...model.stateDict().keys()];
    tidy(() => void noGrad(() => model.eval().call(randn([2, 3, 32, 32]))));
    const masks = model.namedBuffers().filter(([k]) => k.endsWith('attn_mask'));
    assert.deepEqual(masks.map(([k]) => k), ['features.1.1.attn.attn_mask', 'features.3.1.attn.attn_mask']);
    assert.deepEqual([...masks[0]![1].shape], [16, 1, 16, 16]);
    assert.deepEqual([...model.stateDict().keys()], keys, 'the mask is not in the state dict');
    // A new size replaces the cached mask (the old one is freed).
    const first = masks[0]![1];
    tidy(() => void noGrad(() => model.call(randn([1, 3, 24, 24]))));
    assert.ok(first.isDisposed);
    // Training with stochastic depth runs and reaches every parameter.
    model.train();
    tidy(() => model.call(randn([2, 3, 32, 32])).sum().backward());
    assert.ok(tidy(() => model.parameters().every((p) => p.grad !== null)), 'every parameter gets a gradient');
    model.zeroGrad();
    model.dispose();
    assert.equal(memoryStats().liveHandles, before, 'no native tensor outlives the model');
  });

  test('MLP has torchvision.ops.MLP indices', () => {
    const mlp = new MLP(4, [8, 4]);
    try {
      assert.deepEqual([...mlp.stateDict().keys()], ['0.weight', '0.bias', '3.weight', '3.bias']);
    } finally {
      mlp.dispose();
    }
  });

  test('ViT classes are exported for custom sizes', () => {
    const vit = new VisionTransformer({ ...modelConfig('vit_b_16'), name: 'vit_test' }, { imageSize: 32, patchSize: 8, numLayers: 2, numHeads: 2, hiddenDim: 16, mlpDim: 32 }, 4);
    try {
      const out = tidy(() => [...vit.call(randn([2, 3, 32, 32])).shape]);
      assert.deepEqual(out, [2, 4]);
      assert.equal(vit.blocks().length, 2);
    } finally {
      vit.dispose();
    }
  });
});

test('every registered transformer has an oracle case (CNNs: test/models/parity.test.ts)', () => {
  const transformers = listModels().filter((n) => modelConfig(n).kind === 'transformer');
  assert.deepEqual(transformers.filter((n) => !(n in oracle)), []);
});
