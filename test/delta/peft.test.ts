// LoRA deltas in PEFT's layout: the keys and config fields PEFT expects, a round trip on every family, and
// an independent check: torchvision's model with the adapter merged as PEFT's LoRA layers merge (test/oracle/peft_apply.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  applyDelta, createModel, inspectSafetensors, keep, loadPeftLora, loadSafetensors, manualSeed, noGrad, PackedQVLora, randn, savePeftLora, saveSafetensors, saveStateDict, tidy,
  type Delta, type Tensor, type VisionModel,
} from '../../src/index.js';
import { execFileSync } from 'node:child_process';
import { PYTHON, ROOT, assertClose, fromOracle, runOracle } from '../helpers.js';

const weights = runOracle<Record<string, { safetensors: string }>>('models').resnet18!.safetensors;

test('a LoRA delta written in PEFT layout has PEFT keys and config, and reads back identically', () => {
  const dir = mkdtempSync(join(tmpdir(), 'deltatune-peft-'));
  const model = createModel('resnet18', { weights });
  const fresh = createModel('resnet18', { weights });
  const x = keep(randn([2, 3, 32, 32]));
  try {
    const delta = applyDelta(model, { method: 'lora', rank: 4, alpha: 8, numClasses: 7, targets: ['layer4.1.conv1', 'layer4.1.conv2'] });
    // Give B non-zero values so the round trip is meaningful.
    noGrad(() => delta.trainableParameters().forEach((p) => p.normal_(0, 0.05)));
    savePeftLora(delta, dir);
    const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    assert.equal(config.peft_type, 'LORA');
    assert.equal(config.r, 4);
    assert.equal(config.lora_alpha, 8);
    assert.deepEqual(config.target_modules, ['layer4.1.conv1', 'layer4.1.conv2']);
    assert.deepEqual(config.modules_to_save, ['fc']);
    const keys = inspectSafetensors(join(dir, 'adapter_model.safetensors')).entries.map((e) => e.name).sort();
    assert.deepEqual(keys, [
      'base_model.model.fc.bias', 'base_model.model.fc.weight',
      'base_model.model.layer4.1.conv1.lora_A.weight', 'base_model.model.layer4.1.conv1.lora_B.weight',
      'base_model.model.layer4.1.conv2.lora_A.weight', 'base_model.model.layer4.1.conv2.lora_B.weight',
    ]);
    const loaded = loadPeftLora(fresh, dir);
    model.eval();
    fresh.eval();
    tidy(() => assertClose(noGrad(() => fresh.call(x)), noGrad(() => model.call(x)), { rtol: 0, atol: 1e-6, what: 'PEFT round trip' }));
    loaded.dispose();
    delta.dispose();
  } finally {
    model.dispose();
    fresh.dispose();
    x.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

// A training-like nudge to every trainable tensor (B too), so the round trip carries real values.
const nudge = (delta: Delta) => noGrad(() => delta.trainableParameters().forEach((p) => tidy(() => void p.add_(randn(p.shape).mul(0.02)))));
const logits = (model: VisionModel, x: Tensor) => keep(tidy(() => noGrad(() => model.eval().call(x))));

// Every family, its default LoRA targets (packed q/v on Swin's qkv and ViT's attention), plus
// Swin with mixed targets (packed and plain, so plain ones are padded to the packed rank).
const cases: [model: string, options: Record<string, unknown>][] = [
  ['resnet18', {}], ['mobilenet_v2', {}], ['convnext_tiny', {}], ['swin_t', {}], ['vit_tiny_p4_32', {}],
  ['swin_t', { targets: String.raw`features\.1\.0\.attn\.qkv|features\.1\.0\.mlp\.0` }],
  ['vit_tiny_p4_32', { packed: 'qkv', targets: String.raw`encoder\.layers\.encoder_layer_0\.self_attention(\.out_proj)?` }],
];

for (const [name, options] of cases) {
  test(`PEFT round trip on ${name} ${JSON.stringify(options)}: savePeftLora, then loadPeftLora, gives the tuned outputs`, { timeout: 120_000 }, () => {
    manualSeed(0);
    const dir = mkdtempSync(join(tmpdir(), 'deltatune-peft-'));
    const model = createModel(name, { numClasses: 3 });
    const x = keep(randn([1, 3, 32, 32]));
    let tuned: Tensor | null = null;
    let loaded: Delta | null = null;
    try {
      const base = join(dir, 'base.safetensors');
      saveStateDict(base, model.stateDict());
      const delta = applyDelta(model, { method: 'lora', rank: 2, alpha: 3, ...options });
      nudge(delta);
      tuned = logits(model, x);
      savePeftLora(delta, join(dir, 'adapter'));
      const packedQV = delta.addedModules.some(([, m]) => m instanceof PackedQVLora);
      delta.dispose();
      // An independent reading: torchvision's model with the adapter merged as PEFT's LoRA layers merge.
      const input = join(dir, 'x.safetensors');
      saveSafetensors(input, new Map([['x', x]]));
      const oracle = JSON.parse(execFileSync(PYTHON, [join(ROOT, 'test', 'oracle', 'peft_apply.py'), name, base, join(dir, 'adapter'), input], { encoding: 'utf8', maxBuffer: 1 << 26 }));
      tidy(() => assertClose(fromOracle(oracle.logits), tuned!, { rtol: 1e-4, atol: 1e-4, what: `${name}: torchvision with the adapter merged as PEFT does` }));
      const config = JSON.parse(readFileSync(join(dir, 'adapter', 'adapter_config.json'), 'utf8'));
      // Packed q/v pairs become one rank-2r update; alpha doubles with r, so alpha / r stays 1.5.
      assert.equal(config.r, packedQV ? 4 : 2);
      assert.equal(config.lora_alpha / config.r, 1.5);
      assert.equal(config.fan_in_fan_out, false);
      const entries = inspectSafetensors(join(dir, 'adapter', 'adapter_model.safetensors')).entries;
      for (const t of config.target_modules) assert.ok(entries.some((e) => e.name === `base_model.model.${t}.lora_A.weight`), `${t}: lora_A saved`);
      if (name.startsWith('vit')) {
        // PEFT's MultiheadAttention LoRA: on the module itself (in_proj, [3E, r]) and its out_proj under base_layer.
        const t = config.target_modules[0];
        assert.deepEqual(entries.find((e) => e.name === `base_model.model.${t}.lora_B.weight`)!.shape, [3 * 192, config.r]);
        assert.ok(entries.some((e) => e.name === `base_model.model.${t}.base_layer.out_proj.lora_B.weight`));
        assert.ok(!config.target_modules.some((m: string) => m.endsWith('out_proj')), 'out_proj is not a target of its own');
      }
      loaded = loadPeftLora(model, join(dir, 'adapter'));
      same(logits(model, x), tuned, `${name}: PEFT round trip`);
      tuned = null;
    } finally {
      tuned?.dispose();
      loaded?.dispose();
      model.dispose();
      x.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('a packed q/v export keeps k unchanged: the rows of B for k are zero', () => {
  const dir = mkdtempSync(join(tmpdir(), 'deltatune-peft-'));
  const model = createModel('swin_t');
  try {
    const delta = applyDelta(model, { method: 'lora', rank: 2, targets: String.raw`features\.1\.0\.attn\.qkv` });
    nudge(delta);
    savePeftLora(delta, dir);
    delta.dispose();
    const { tensors } = loadSafetensors(join(dir, 'adapter_model.safetensors'));
    const B = tensors.get('base_model.model.features.1.0.attn.qkv.lora_B.weight')!;
    assert.deepEqual([...B.shape], [3 * 96, 4]);
    tidy(() => {
      assert.equal(B.narrow(0, 96, 96).abs().sum().item(), 0, 'k rows');
      assert.ok((B.narrow(0, 0, 96).abs().sum().item() as number) > 0, 'q rows');
    });
    tensors.forEach((t) => t.dispose());
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("LoRA on a MultiheadAttention's out_proj alone has no PEFT layout: a clear error", () => {
  const dir = mkdtempSync(join(tmpdir(), 'deltatune-peft-'));
  const model = createModel('vit_tiny_p4_32');
  try {
    const delta = applyDelta(model, { method: 'lora', rank: 2, targets: String.raw`encoder\.layers\.encoder_layer_0\.self_attention\.out_proj` });
    assert.throws(() => savePeftLora(delta, dir), /LoRA on 'encoder\.layers\.encoder_layer_0\.self_attention\.out_proj' alone has no PEFT layout/);
    delta.dispose();
    const bitfit = applyDelta(model, { method: 'bitfit' });
    assert.throws(() => savePeftLora(bitfit, dir), /the delta is 'bitfit', not 'lora'/);
    bitfit.dispose();
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** assertClose within float tolerance, then frees both. */
function same(actual: Tensor, expected: Tensor, what: string): void {
  try {
    assertClose(actual, expected, { rtol: 1e-4, atol: 1e-5, what });
  } finally {
    actual.dispose();
    expected.dispose();
  }
}

test("LoRA with packed: 'qkv' (PEFT's way) adapts k too, and merges into the packed weight", () => {
  manualSeed(0);
  for (const [name, targets] of [['vit_tiny_p4_32', String.raw`encoder\.layers\.encoder_layer_[01]\.self_attention`], ['swin_t', String.raw`features\.1\.\d\.attn\.qkv`]] as const) {
    const model = createModel(name, { numClasses: 3 });
    const x = keep(randn([1, 3, 32, 32]));
    try {
      const delta = applyDelta(model, { method: 'lora', rank: 2, packed: 'qkv', targets });
      nudge(delta);
      // One B of width 3E per projection, k's rows included.
      const B = delta.namedTrainableParameters().find(([n]) => n.endsWith('lora_B.weight'))!;
      const E = name === 'swin_t' ? 96 : 192;
      assert.deepEqual([...B[1].shape], [3 * E, 2], B[0]);
      assert.ok((tidy(() => B[1].narrow(0, E, E).abs().sum().item()) as number) > 0, 'k rows train');
      const tuned = logits(model, x);
      const merged = delta.merge();
      same(logits(merged, x), tuned, `${name}: packed qkv merged`);
      delta.dispose();
    } finally {
      model.dispose();
      x.dispose();
    }
  }
});
