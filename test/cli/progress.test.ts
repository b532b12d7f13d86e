// Progress on the long steps besides training: `eval` and `predict` print progress lines with
// --progress lines, none with --quiet; the line reporter's task rhythm.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { applyDelta, createModel, createProgress, manualSeed, saveDelta } from '../../src/index.js';
import { ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, DELTATUNE_THREADS: '2' } });

let dir = '';
let deltaDir = '';
const COLOURS: Record<string, [number, number, number]> = { red: [200, 40, 40], green: [40, 180, 60], blue: [40, 60, 200] };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'deltatune-progress-'));
  for (const [name, colour] of Object.entries(COLOURS)) {
    mkdirSync(join(dir, 'data', name), { recursive: true });
    for (let i = 0; i < 4; i++) {
      const px = Buffer.alloc(16 * 16 * 3);
      for (let p = 0; p < 16 * 16; p++) for (let c = 0; c < 3; c++) px[p * 3 + c] = Math.round(colour[c]! * (0.6 + (0.4 * ((p * 7 + i * 31) % 97)) / 97));
      writeFileSync(join(dir, 'data', name, `${i}.png`), await sharp(px, { raw: { width: 16, height: 16, channels: 3 } }).png().toBuffer());
    }
  }
  // A tiny model (32x32 input) and a LoRA delta on its random init: progress, not accuracy, is tested.
  manualSeed(0);
  const model = createModel('vit_tiny_p4_32', { numClasses: 3 });
  const delta = applyDelta(model, { method: 'lora', rank: 2 });
  deltaDir = join(dir, 'delta');
  saveDelta(delta, deltaDir, { classes: Object.keys(COLOURS).sort() });
  delta.dispose();
  model.dispose();
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('eval: progress lines with --progress lines, none with --quiet', { timeout: 120_000 }, () => {
  const lines = run(['eval', '--delta', deltaDir, '--data', join(dir, 'data'), '--batch', '4', '--progress', 'lines']);
  assert.equal(lines.status, 0, lines.stderr);
  assert.match(lines.stderr, /^evaluating: 1\/3 batches {2}ETA /m);
  assert.match(lines.stderr, /^evaluating: 3 batches in \d+\.\d s$/m);
  assert.match(lines.stdout, /^12 images {2}loss/);

  const quiet = run(['eval', '--delta', deltaDir, '--data', join(dir, 'data'), '--batch', '4', '--quiet']);
  assert.equal(quiet.status, 0, quiet.stderr);
  assert.equal(quiet.stderr, '');
  assert.equal(quiet.stdout, lines.stdout, 'the results do not depend on the progress mode');

  const both = run(['eval', '--delta', deltaDir, '--data', join(dir, 'data'), '--quiet', '--progress', 'lines']);
  assert.equal(both.status, 2);
  assert.match(both.stderr, /^deltatune: --quiet and --progress contradict each other/);
});

test('predict: progress lines over the images with --progress lines, none with --quiet', { timeout: 120_000 }, () => {
  const images = Object.keys(COLOURS).flatMap((c) => readdirSync(join(dir, 'data', c)).map((f) => join(dir, 'data', c, f)));
  const lines = run(['predict', '--delta', deltaDir, '--progress', 'lines', ...images]);
  assert.equal(lines.status, 0, lines.stderr);
  assert.match(lines.stderr, /^predicting: 12 images in \d+\.\d s$/m);
  assert.equal(lines.stdout.trim().split('\n').length, 12);

  const quiet = run(['predict', '--delta', deltaDir, '--quiet', ...images]);
  assert.equal(quiet.status, 0, quiet.stderr);
  assert.equal(quiet.stderr, '');
});

test('the line reporter: a line per quarter at most, one at the end; none for a task that fails; quiet says nothing', () => {
  const written: string[] = [];
  const stream = { isTTY: false, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream;
  const progress = createProgress('lines', stream);
  const task = progress.task('validating (epoch 1)', 8, 'batches');
  for (let i = 1; i <= 8; i++) task.update(i);
  task.end();
  task.end();
  const lines = written.join('').trim().split('\n');
  assert.deepEqual(lines.slice(0, -1).map((l) => l.split('  ')[0]), ['validating (epoch 1): 2/8 batches', 'validating (epoch 1): 4/8 batches', 'validating (epoch 1): 6/8 batches']);
  assert.match(lines.at(-1)!, /^validating \(epoch 1\): 8 batches in \d+\.\d s$/);

  // A task that stops at its first item (a bad image) leaves the command's error as the only line.
  const before = written.length;
  const failed = progress.task('predicting', 1, 'images');
  failed.end();
  const quiet = createProgress('quiet', stream).task('x', 3, 'batches');
  quiet.update(1);
  quiet.update(3);
  quiet.end();
  assert.equal(written.length, before);
});
