// LoRA deltas in PEFT's layout: the keys and config fields PEFT expects, and a round trip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyDelta, createModel, inspectSafetensors, keep, loadPeftLora, noGrad, randn, savePeftLora, tidy } from '../../src/index.js';
import { assertClose, runOracle } from '../helpers.js';

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

test('packed q/v LoRA has no PEFT layout: a clear error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'deltatune-peft-'));
  const model = createModel('swin_t');
  try {
    const delta = applyDelta(model, { method: 'lora', rank: 2, targets: 'features\\.1\\.0\\.attn\\.qkv' });
    assert.throws(() => savePeftLora(delta, dir), /packed q\/v projections .*has no PEFT layout; use saveDelta/);
    delta.dispose();
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
