// Every method's defaults apply to MobileNetV2 (thin inverted residuals, depthwise 3×3 convs),
// or refuse with the reason (the transformer adapters, and conv-adapter, which needs a dense k×k conv).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyDelta, createModel, listMethods, noGrad, randn, tidy } from '../../src/index.js';

test('every method applies to mobilenet_v2 with its defaults, or refuses saying why', () => {
  const model = createModel('mobilenet_v2', { numClasses: 4 });
  model.eval();
  for (const method of listMethods()) {
    const refusal = { 'conv-adapter': /no k×k \(k > 1\) convolution/, adapter: /applies to transformers; mobilenet_v2 is a CNN/, adaptformer: /applies to transformers; mobilenet_v2 is a CNN/ }[method];
    if (refusal) {
      assert.throws(() => applyDelta(model, { method, numClasses: 4 }), refusal, method);
      continue;
    }
    const delta = applyDelta(model, { method, numClasses: 4 });
    try {
      const out = noGrad(() => tidy(() => model.forward(randn([1, 3, 32, 32])).shape));
      assert.deepEqual([...out], [1, 4], method);
      assert.ok(delta.summary().trainable > 0, method);
    } finally {
      delta.dispose();
    }
  }
  model.dispose();
});

test('LoRA on mobilenet_v2 targets exactly the 1×1 expand and project convolutions', () => {
  const model = createModel('mobilenet_v2', { numClasses: 4 });
  const delta = applyDelta(model, { method: 'lora', numClasses: 4 });
  const adapted = new Set(delta.namedTrainableParameters().map(([n]) => n.replace(/\.lora_[AB]\.weight$/, '')).filter((n) => !n.startsWith('classifier')));
  // 16 expanded blocks × (expand + project) + block 1's project.
  assert.equal(adapted.size, 33);
  assert.ok([...adapted].every((n) => /^features\.\d+\.conv\.(0\.0|1|2)$/.test(n)), [...adapted].join(' '));
  delta.dispose();
  model.dispose();
});
