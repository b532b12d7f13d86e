// The compute study's real-photo task definition: the variants the script and bench:compute run.
// Cached variants must train without random augmentation (the prefix cache refuses otherwise), full
// fine-tuning keeps BatchNorm in eval mode at lr 1e-4 for this checkpoint, and the benchmark's
// cheapest configuration is one of the study's variants.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeStudy } from '../../src/experiments/compute-tasks.js';

test('compute study, clothing task: full, Mona defaults and cached variants without augmentation', async () => {
  const study = await computeStudy('clothing', 5, '/nonexistent-unused');
  assert.equal(study.base.model, 'mobilenet_v2');
  assert.equal(study.base.epochs, 5);
  const full = study.full;
  assert.ok(study.variants.includes(full), 'full fine-tuning is a variant');
  assert.deepEqual(full.methodOptions, { trainBatchNormStats: false });
  assert.equal(full.overrides?.lr, 1e-4);
  for (const v of study.variants.filter((x) => x.overrides?.cacheFrozenPrefix)) {
    assert.equal(v.overrides?.augment, 'none', `${v.label}: a cached prefix needs the same images every epoch`);
  }
  assert.ok(study.variants.some((v) => v.label === study.cheapest.label), 'the cheapest configuration is one of the study\'s');
  assert.deepEqual({ method: study.mona.method, options: study.mona.methodOptions }, { method: 'mona', options: undefined }, 'Mona with its defaults');
});
