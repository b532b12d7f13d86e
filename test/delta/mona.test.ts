// Mona as a delta method: placement and parameter counts on the zoo (mona.md), frozen backbone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyDelta, createModel, monaParameterCount, noGrad, randn, tidy } from '../../src/index.js';

test('Swin-T: two modules per block, 1,408,128 Mona parameters (133·C + 9728 each)', () => {
  const model = createModel('swin_t');
  try {
    const delta = applyDelta(model, { method: 'mona', numClasses: 10 });
    const s = delta.summary();
    assert.equal(s.byModuleType.Mona, 1_408_128);
    const blocks = model.blocks();
    assert.equal(delta.addedModules.length, 2 * blocks.length);
    const expected = blocks.reduce((sum, b) => sum + 2 * (133 * b.channels + 9728), 0);
    assert.equal(expected, 1_408_128);
    // Only Mona and the head train.
    assert.deepEqual(Object.keys(s.byModuleType).sort(), ['Mona', 'head']);
    tidy(() => assert.deepEqual([...noGrad(() => model.eval().call(randn([1, 3, 224, 224]))).shape], [1, 10]));
    delta.dispose();
  } finally {
    model.dispose();
  }
});

test('ResNet-50, ConvNeXt-T and ViT-B/16: Mona after every block, counts by the formula', () => {
  for (const [name, perBlock] of [['resnet50', 1], ['convnext_tiny', 1], ['vit_b_16', 2]] as const) {
    const model = createModel(name);
    try {
      const delta = applyDelta(model, { method: 'mona' });
      const blocks = model.blocks();
      assert.equal(delta.addedModules.length, perBlock * blocks.length, `${name} module count`);
      const expected = blocks.reduce((sum, b) => sum + perBlock * monaParameterCount(b.channels), 0);
      const s = delta.summary();
      assert.equal((s.byModuleType.Mona ?? 0) + (s.byModuleType.MonaMap ?? 0), expected, `${name} Mona parameters`);
      delta.dispose();
    } finally {
      model.dispose();
    }
  }
});

test('stages and kernels select where and what; bad values are clear errors', () => {
  const model = createModel('resnet18');
  try {
    const d = applyDelta(model, { method: 'mona', stages: [3], kernels: [3, 3, 3], hidden: 32 });
    assert.deepEqual(d.addedModules.map(([n]) => n), ['layer4.0.mona', 'layer4.1.mona']);
    d.dispose();
    assert.throws(() => applyDelta(model, { method: 'mona', kernels: [4] }), /even|odd/);
    assert.throws(() => applyDelta(model, { method: 'mona', hidden: 0 }), /'hidden' must be a positive integer/);
    assert.throws(() => applyDelta(model, { method: 'mona', stages: [7] }), /'stages' must list stage indices in 0\.\.3/);
    const last = applyDelta(model, { method: 'mona', lastBlocks: 3 } as never);
    assert.deepEqual(last.addedModules.map(([n]) => n), ['layer3.1.mona', 'layer4.0.mona', 'layer4.1.mona']);
    last.dispose();
    assert.throws(() => applyDelta(model, { method: 'mona', lastBlocks: 0 } as never), /'lastBlocks' must be a positive integer/);
  } finally {
    model.dispose();
  }
});

test("hidden 'capped': min(64, channels) per module, so thin MobileNetV2 stages get narrower bottlenecks", () => {
  const model = createModel('mobilenet_v2');
  try {
    const d = applyDelta(model, { method: 'mona', hidden: 'capped' } as never);
    const widths = new Map(model.blocks().map((b) => [`${b.name}.mona`, Math.min(64, b.channels)]));
    assert.ok([...widths.values()].some((w) => w < 64) && [...widths.values()].some((w) => w === 64));
    for (const [name, m] of d.addedModules) assert.equal((m as unknown as { hidden: number }).hidden, widths.get(name), name);
    const capped = d.summary().trainable;
    d.dispose();
    const paper = applyDelta(model, { method: 'mona' });
    assert.ok(capped < paper.summary().trainable, 'fewer parameters than width 64 everywhere');
    paper.dispose();
    assert.throws(() => applyDelta(model, { method: 'mona', hidden: 'wide' } as never), /'hidden' must be a positive integer or 'capped'/);
  } finally {
    model.dispose();
  }
});
