// A run prepares images as its model's config says (input size, mean, std), not as ImageNet's at
// 224 whatever the model: tested with a registered model whose config differs from ImageNet's.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createModel, modelConfig, registerModel, tune } from '../../src/index.js';
import { makeFolder, tempDir } from '../data/fixtures.js';

const { dir, cleanup } = tempDir('model-preprocess');
after(cleanup);

const NAME = 'resnet18_halfnorm_test';
registerModel({ ...modelConfig('resnet18'), name: NAME, inputSize: [3, 40, 40], mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }, (o) => {
  const m = createModel('resnet18', { numClasses: o.numClasses });
  Object.assign(m.config, { name: NAME, inputSize: [3, 40, 40], mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] });
  return m;
});

test('training reads input size, mean and std from the model config; --image-size overrides the size', async () => {
  await makeFolder(join(dir, 'data'), ['a', 'b'], 4);
  const common = { model: NAME, method: 'fixed', data: join(dir, 'data'), valSplit: 0.25, epochs: 1, batchSize: 4, lr: 1e-3, progress: 'quiet' as const };
  await tune({ ...common, out: join(dir, 'run') });
  const pre = JSON.parse(readFileSync(join(dir, 'run', 'best', 'delta.json'), 'utf8')).preprocess;
  assert.equal(pre.size, 40);
  assert.deepEqual(pre.mean, [0.5, 0.5, 0.5]);
  assert.deepEqual(pre.std, [0.25, 0.25, 0.25]);
  await tune({ ...common, imageSize: 32, out: join(dir, 'run-32') });
  const pre32 = JSON.parse(readFileSync(join(dir, 'run-32', 'best', 'delta.json'), 'utf8')).preprocess;
  assert.equal(pre32.size, 32);
  assert.deepEqual(pre32.mean, [0.5, 0.5, 0.5]);
});
