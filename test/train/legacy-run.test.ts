// Runs started before 0.2.0 (no `version` in config.json) trained LoRA with alpha 1 when none was
// given; the default is now the rank. A resume must keep the old scaling, a new run records its version.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runOptions } from '../../src/train/run.js';
import { effectiveMethodOptions, readRunConfig } from '../../src/train/run-config.js';

function runDir(config: object): string {
  const dir = mkdtempSync(join(tmpdir(), 'dt-legacy-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

const tune = (method: string, methodOptions: object) => ({ model: 'resnet18', method, methodOptions, out: '/x', data: 'mnist', epochs: 1, lr: 1e-3 });

test('a LoRA run from before 0.2.0 resumes with alpha 1; newer runs and other options are left as saved', () => {
  const dirs = [
    runDir({ tune: tune('lora', {}) }),
    runDir({ tune: tune('lora', { rank: 4 }), version: '0.2.0' }),
    runDir({ tune: tune('lora', { alpha: 16 }) }),
    runDir({ tune: tune('mona', {}) }),
  ];
  try {
    assert.deepEqual(runOptions(dirs[0]!).methodOptions, { alpha: 1 });
    assert.deepEqual(runOptions(dirs[1]!).methodOptions, { rank: 4 });
    assert.deepEqual(runOptions(dirs[2]!).methodOptions, { alpha: 16 });
    assert.deepEqual(runOptions(dirs[3]!).methodOptions, {});
    assert.deepEqual(effectiveMethodOptions(readRunConfig(dirs[0]!)), { alpha: 1 });
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
});
