// `deltatune export --format peft`: a saved LoRA delta (a run folder, a delta folder or its
// delta.json) becomes a PEFT adapter that loads back to the tuned outputs; bad input is one line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  applyDelta, createModel, keep, loadPeftLora, loadTuned, manualSeed, noGrad, randn, saveDelta, saveStateDict, tidy, type Tensor, type VisionModel,
} from '../../src/index.js';
import { ROOT, assertClose } from '../helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, DELTATUNE_THREADS: '2' } });
const logits = (model: VisionModel, x: Tensor) => keep(tidy(() => noGrad(() => model.eval().call(x))));

let dir = '';

/** A base weights file and a LoRA delta on it with non-zero B (as after training), saved as deltatune saves. */
function makeDelta(model: string, method = 'lora'): string {
  manualSeed(1);
  const base = createModel(model, { numClasses: 3 });
  const weights = join(dir, `${model}.safetensors`);
  saveStateDict(weights, base.stateDict());
  base.dispose();
  const m = createModel(model, { weights });
  const delta = applyDelta(m, { method, ...(method === 'lora' ? { rank: 2 } : {}) });
  noGrad(() => delta.trainableParameters().forEach((p) => tidy(() => void p.add_(randn(p.shape).mul(0.02)))));
  const out = join(dir, `${model}-${method}`);
  saveDelta(delta, out, { classes: ['a', 'b', 'c'] });
  delta.dispose();
  m.dispose();
  return out;
}

/** One line on stderr, prefixed 'deltatune:', with no stack trace. */
function assertOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0]!, /^deltatune: /, stderr);
  assert.match(lines[0]!, pattern, stderr);
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'deltatune-export-'));
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

for (const model of ['resnet18', 'vit_tiny_p4_32']) {
  test(`export --format peft on ${model}: the adapter loads back to the tuned outputs`, { timeout: 120_000 }, () => {
    const deltaDir = makeDelta(model);
    // A run folder: its best/ delta is the one exported.
    const runDir = join(dir, `${model}-run`);
    mkdirSync(runDir);
    cpSync(deltaDir, join(runDir, 'best'), { recursive: true });
    const out = join(dir, `${model}-peft`);
    const r = run(['export', '--format', 'peft', '--delta', runDir, '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^exported the lora delta of /);
    assert.deepEqual(readdirSync(out).sort(), ['adapter_config.json', 'adapter_model.safetensors']);

    const tuned = loadTuned(deltaDir);
    const x = keep(randn([1, 3, 32, 32]));
    const fresh = createModel(model, { weights: join(dir, `${model}.safetensors`) });
    let expected: Tensor | null = null;
    let actual: Tensor | null = null;
    try {
      expected = logits(tuned.model, x);
      const delta = loadPeftLora(fresh, out);
      actual = logits(fresh, x);
      delta.dispose();
      assertClose(actual, expected, { rtol: 1e-4, atol: 1e-5, what: `${model}: PEFT export loaded back` });
    } finally {
      expected?.dispose();
      actual?.dispose();
      x.dispose();
      fresh.dispose();
      tuned.dispose();
    }
  });
}

test('export: bad input is one clear line, and nothing is left behind', { timeout: 120_000 }, () => {
  const lora = makeDelta('resnet18');
  const bitfit = makeDelta('resnet18', 'bitfit');
  const out = join(dir, 'bad-out');
  let r = run(['export', '--format', 'peft', '--delta', bitfit, '--out', out]);
  assert.equal(r.status, 1);
  assertOneLine(r.stderr, /the delta is 'bitfit'; --format peft writes LoRA deltas only/);
  assert.ok(!existsSync(out), 'no output folder after a refusal');

  r = run(['export', '--format', 'peft', '--delta', join(dir, 'missing'), '--out', out]);
  assert.equal(r.status, 1);
  assertOneLine(r.stderr, /--delta .*missing: no such file or folder/);

  const empty = join(dir, 'empty');
  mkdirSync(empty);
  r = run(['export', '--format', 'peft', '--delta', empty, '--out', out]);
  assertOneLine(r.stderr, /neither a delta folder \(no delta\.json\) nor a run folder/);

  r = run(['export', '--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /^Usage: deltatune export --delta PATH --out FILE\.onnx/);
  assert.match(r.stdout, /deltatune export --format peft --delta PATH --out DIR/);
  assert.match(r.stdout, /rank 2r on the whole projection, with zero\s+rows for k/);

  r = run(['export', '--format', 'tflite', '--delta', lora, '--out', out]);
  assert.equal(r.status, 2);
  assertOneLine(r.stderr, /--format 'tflite' is not one deltatune exports \(available: onnx, peft\)/);
  r = run(['export', '--format', 'peft', '--opset', '13', '--delta', lora, '--out', out]);
  assert.equal(r.status, 2);
  assertOneLine(r.stderr, /--opset applies to --format onnx only/);

  // An --out that holds files: refused without --force, written (the adapter files only) with it.
  mkdirSync(out);
  writeFileSync(join(out, 'notes.txt'), 'mine');
  r = run(['export', '--format', 'peft', '--delta', join(lora, 'delta.json'), '--out', out]);
  assert.equal(r.status, 1);
  assertOneLine(r.stderr, /--out .*bad-out already holds files \(notes\.txt\); pass --force/);
  r = run(['export', '--format', 'peft', '--delta', join(lora, 'delta.json'), '--out', out, '--force']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readdirSync(out).sort(), ['adapter_config.json', 'adapter_model.safetensors', 'notes.txt']);
});
