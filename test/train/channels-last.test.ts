// Training channels-last (the default for CNN families) must give what NCHW gives: the same loss,
// the same gradients for every trainable tensor, the same delta after an optimizer step, a saved
// delta that loads into an NCHW model, and merges that match — for every method on every CNN family.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SGD, applyDelta, createModel, crossEntropy, keep, listMethods, loadDelta, manualSeed, noGrad, randint, randn, saveDelta, tidy,
  usesChannelsLast, type Tensor,
} from '../../src/index.js';
import { assertClose } from '../helpers.js';

// 64 px and 4 images: with 2 images at 1×1 maps, batch statistics amplify rounding differences into different losses.
const FAMILIES = [['resnet18', 64], ['mobilenet_v2', 64], ['convnext_tiny', 64]] as const;

/**
 * ‖actual − expected‖ ≤ 3% of ‖expected‖ (+1e-4: a BatchNorm bias feeding another BatchNorm
 * has a gradient of ~0 that is all rounding). Elementwise tolerances do not fit here: rounding differs
 * between layouts, and where two max-pool inputs nearly tie the other one wins, moving one
 * element's gradient (seen in about one draw in three). A layout bug is off by far more.
 */
function assertNear(actual: Tensor, expected: Tensor, what: string): void {
  assert.deepEqual([...actual.shape], [...expected.shape], `${what}: shape`);
  const [diff, norm] = noGrad(() => tidy(() => [actual.sub(expected).norm().item(), expected.norm().item()]));
  assert.ok(diff <= 3e-2 * norm + 1e-4, `${what}: |difference| ${diff.toExponential(2)} against |expected| ${norm.toExponential(2)}`);
}

// Dropout masks are drawn in memory order, so they differ between layouts (as in PyTorch): off here.
const OPTIONS: Record<string, Record<string, unknown>> = { mona: { dropout: 0 } };

function build(model: string, method: string, channelsLast: boolean) {
  manualSeed(0);
  const m = createModel(model, { numClasses: 3 });
  const delta = applyDelta(m, { method, numClasses: 3, ...OPTIONS[method] });
  if (channelsLast) m.toMemoryFormat('channelsLast');
  m.train();
  return { model: m, delta };
}

test('toMemoryFormat relays out 4-D parameters and buffers only, keeping values', () => {
  manualSeed(0);
  const m = createModel('resnet18', { numClasses: 3 });
  const before = new Map([...m.stateDict()].map(([k, t]) => [k, keep(t.clone())]));
  m.toMemoryFormat('channelsLast');
  for (const [k, t] of m.stateDict()) {
    // (a 1×1 kernel is both layouts at once)
    if (t.ndim === 4) assert.ok(t.isContiguous('channelsLast') && (t.shape[2]! * t.shape[3]! === 1 || !t.isContiguous()), `${k} is channels-last`);
    else assert.ok(t.isContiguous(), `${k} stays contiguous`);
    assertClose(t, before.get(k)!, { atol: 0, rtol: 0, what: k });
  }
  m.toMemoryFormat('contiguous');
  for (const [k, t] of m.stateDict()) assert.ok(t.isContiguous(), `${k} is contiguous again`);
  before.forEach((t) => t.dispose());
  m.dispose();
});

test('usesChannelsLast: on for CNN families, off for transformers, the option wins', () => {
  assert.equal(usesChannelsLast({ model: 'resnet50' }), true);
  assert.equal(usesChannelsLast({ model: 'mobilenet_v2' }), true);
  assert.equal(usesChannelsLast({ model: 'convnext_tiny' }), true);
  assert.equal(usesChannelsLast({ model: 'swin_t' }), false);
  assert.equal(usesChannelsLast({ model: 'vit_tiny_p4_32' }), false);
  assert.equal(usesChannelsLast({ model: 'resnet50', channelsLast: false }), false);
  assert.equal(usesChannelsLast({ model: 'swin_t', channelsLast: true }), true);
});

for (const [modelName, size] of FAMILIES) {
  test(`${modelName}: every method trains the same channels-last as NCHW`, () => {
    const x = keep(randn([4, 3, size, size]));
    const y = keep(randint(0, 3, [4]));
    const dir = mkdtempSync(join(tmpdir(), 'deltatune-cl-'));
    let checked = 0;
    try {
      for (const method of listMethods()) {
        let nchw: ReturnType<typeof build>;
        try {
          nchw = build(modelName, method, false);
        } catch {
          continue; // the method does not apply to this family (e.g. adapter on a CNN)
        }
        const cl = build(modelName, method, true);
        try {
          const lossAndGrads = (run: ReturnType<typeof build>, input: Tensor) => {
            // SGD: a step proportional to the gradient (AdamW would turn rounding-level gradients into full steps).
            const opt = new SGD(run.delta.trainableParameters(), { lr: 1e-2 });
            manualSeed(1); // the same dropout and drop-path draws for both layouts
            const loss = tidy(() => {
              opt.zeroGrad();
              const l = crossEntropy(run.model.call(input), y);
              l.backward();
              return l.item();
            });
            const grads = run.delta.namedTrainableParameters().map(([n, p]) => [n, keep(p.grad!.contiguous())] as const);
            opt.step();
            return { loss, grads };
          };
          const a = lossAndGrads(nchw, x);
          const xl = keep(x.contiguous('channelsLast'));
          const b = lossAndGrads(cl, xl);
          xl.dispose();
          assert.ok(Math.abs(a.loss - b.loss) <= 1e-4 * Math.max(1, Math.abs(a.loss)), `${method}: loss ${a.loss} vs ${b.loss}`);
          assert.equal(a.grads.length, b.grads.length);
          a.grads.forEach(([n, g], i) => assertNear(b.grads[i]![1], g, `${modelName} ${method} grad ${n}`));
          [...a.grads, ...b.grads].forEach(([, g]) => g.dispose());
          // After one step the deltas agree; the channels-last one saves and loads into an NCHW model.
          const saved = join(dir, `${method}`);
          saveDelta(cl.delta, saved);
          manualSeed(0);
          const fresh = createModel(modelName, { numClasses: 3 });
          const loaded = loadDelta(fresh, saved);
          nchw.model.eval();
          fresh.eval();
          noGrad(() =>
            tidy(() => assertNear(fresh.call(x), nchw.model.call(x), `${modelName} ${method} reloaded`)),
          );
          loaded.dispose();
          fresh.dispose();
          checked++;
        } finally {
          for (const r of [nchw, cl]) {
            r.delta.dispose();
            r.model.dispose();
          }
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      x.dispose();
      y.dispose();
    }
    assert.ok(checked >= 8, `${modelName}: only ${checked} methods checked`);
  });
}
