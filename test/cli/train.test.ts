// `deltatune train / eval / predict / inspect / merge` end to end on generated images (with a
// corrupt file and a grayscale PNG), a SIGKILL mid-epoch followed by --resume, and bad calls.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadSafetensors, loadTuned, memoryStats, predictFiles } from '../../src/index.js';
import { ROOT, assertClose } from '../helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, DELTATUNE_THREADS: '2' } });

let dir = '';
const COLOURS: Record<string, [number, number, number]> = { red: [200, 40, 40], green: [40, 180, 60], blue: [40, 60, 200] };

/** A 40×40 image of a class colour with a random-ish pattern of darker squares. */
async function makeImage(colour: [number, number, number], seed: number, format: 'png' | 'jpeg'): Promise<Buffer> {
  const w = 40;
  const px = Buffer.alloc(w * w * 3);
  let s = seed * 7919 + 1;
  for (let i = 0; i < w * w; i++) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const shade = 0.6 + 0.4 * ((s >> 8) % 100) / 100;
    for (let c = 0; c < 3; c++) px[i * 3 + c] = Math.round(colour[c]! * shade);
  }
  const img = sharp(px, { raw: { width: w, height: w, channels: 3 } });
  return format === 'png' ? img.png().toBuffer() : img.jpeg({ quality: 90 }).toBuffer();
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'deltatune-train-'));
  for (const split of ['train', 'val']) {
    for (const [name, colour] of Object.entries(COLOURS)) {
      const d = join(dir, 'data', split, name);
      mkdirSync(d, { recursive: true });
      const n = split === 'train' ? 16 : 6;
      for (let i = 0; i < n; i++) {
        writeFileSync(join(d, `${i}.${i % 2 ? 'png' : 'jpg'}`), await makeImage(colour, i + (split === 'val' ? 100 : 0), i % 2 ? 'png' : 'jpeg'));
      }
    }
  }
  // A grayscale PNG (decoded to RGB) and a corrupt JPEG (skipped with a warning).
  const gray = await sharp(Buffer.alloc(40 * 40, 90), { raw: { width: 40, height: 40, channels: 1 } }).png().toBuffer();
  writeFileSync(join(dir, 'data', 'train', 'blue', 'gray.png'), gray);
  writeFileSync(join(dir, 'data', 'train', 'red', 'broken.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4]));
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const common = ['--model', 'resnet18', '--image-size', '32', '--batch', '8', '--lr', '3e-3', '--on-bad-image', 'skip', '--progress', 'lines'];

test('train → run directory; eval and predict reproduce the in-process results', async () => {
  const runDir = join(dir, 'run-mona');
  const r = run('train', ...common, '--data', join(dir, 'data'), '--method', 'mona', '--epochs', '3', '--out', runDir);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /broken\.jpg.*cannot decode/, 'the corrupt file is reported with its path');
  assert.match(r.stdout, /done in .* s: best \d+\.\d+% at epoch \d/);
  for (const f of ['config.json', 'metrics.jsonl', 'summary.json', 'state.safetensors', 'base.safetensors', 'best/delta.json', 'last/delta.safetensors']) {
    assert.ok(existsSync(join(runDir, f)), `${f} exists`);
  }
  const epochs = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(epochs.length, 3);
  assert.ok(epochs[2].trainLoss < epochs[0].trainLoss, `the loss falls: ${epochs.map((e) => e.trainLoss.toFixed(3)).join(' → ')}`);
  const summary = JSON.parse(readFileSync(join(runDir, 'summary.json'), 'utf8'));
  assert.ok(summary.best.top1 > 50, `accuracy beats chance (33%): ${summary.best.top1}`);

  // eval of the best delta gives exactly the validation score the trainer recorded for it.
  const ev = run('eval', '--delta', join(runDir, 'best'), '--data', join(dir, 'data', 'val'), '--json');
  assert.equal(ev.status, 0, ev.stderr);
  assertClose([JSON.parse(ev.stdout).top1], [summary.best.top1], { what: 'eval top-1' });

  // predict from the command line = predictions in this process.
  const images = ['red/1.png', 'green/2.jpg', 'blue/3.png'].map((f) => join(dir, 'data', 'val', f));
  const pr = run('predict', '--delta', join(runDir, 'best'), '--top-k', '2', '--json', ...images);
  assert.equal(pr.status, 0, pr.stderr);
  const cli = JSON.parse(pr.stdout) as { source: string; top: { label: string; probability: number }[] }[];
  const tuned = loadTuned(join(runDir, 'best'));
  try {
    const handles = memoryStats().liveHandles;
    const here = await predictFiles(tuned, images, 2);
    assert.equal(memoryStats().liveHandles, handles, 'predictFiles frees every tensor it made');
    assert.deepEqual(cli.map((p) => p.top.map((t) => t.label)), here.map((p) => p.top.map((t) => t.label)));
    assertClose(cli.flatMap((p) => p.top.map((t) => t.probability)), here.flatMap((p) => p.top.map((t) => t.probability)), { rtol: 1e-5, what: 'probabilities' });
  } finally {
    tuned.dispose();
  }
  const table = run('predict', '--delta', join(runDir, 'best'), images[0]!);
  assert.match(table.stdout, /red\/1\.png\s+\w+ \d+\.\d%/);

  const inspect = run('inspect', join(runDir, 'best'));
  assert.equal(inspect.status, 0, inspect.stderr);
  assert.match(inspect.stdout, /delta: mona on resnet18 \(3 classes: blue, green, red\)/);
  const merge = run('merge', '--delta', join(runDir, 'best'), '--out', join(dir, 'merged.safetensors'));
  assert.equal(merge.status, 1);
  assert.match(merge.stderr, /'mona' cannot be merged/);
});

test('merge folds a LoRA delta into a plain checkpoint with the same predictions', async () => {
  const runDir = join(dir, 'run-lora');
  const r = run('train', ...common, '--data', join(dir, 'data'), '--method', 'lora', '--epochs', '1', '--out', runDir, '--quiet');
  assert.equal(r.status, 0, r.stderr);
  const out = join(dir, 'merged.safetensors');
  const m = run('merge', '--delta', join(runDir, 'last'), '--out', out);
  assert.equal(m.status, 0, m.stderr);
  const { tensors } = loadSafetensors(out);
  assert.deepEqual(tensors.get('fc.weight')!.shape, [3, 512]);
  tensors.forEach((t) => t.dispose());
});

test('--frozen-precision bfloat16 names the convolutions it switches and is kept in the run config', () => {
  const runDir = join(dir, 'run-bf16');
  const r = run('train', ...common, '--data', join(dir, 'data'), '--method', 'mona', '--opt', 'stages=3', '--epochs', '1',
    '--augment', 'none', '--cache-frozen-prefix', '--frozen-precision', 'bfloat16', '--out', runDir);
  assert.equal(r.status, 0, r.stderr);
  // ResNet-18's 256- and 512-channel convolutions qualify; layer1-2's and the stem's do not.
  const line = `${r.stdout}${r.stderr}`.split('\n').find((l) => l.startsWith('frozen convolutions in bfloat16: '));
  assert.ok(line, `${r.stdout}${r.stderr}`);
  assert.match(line, /layer3\.0\.conv2, .*layer4\.1\.conv2/);
  assert.doesNotMatch(line, /layer[12]\./);
  assert.equal(JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')).tune.frozenPrecision, 'bfloat16');
  assert.ok(existsSync(join(runDir, 'last', 'delta.safetensors')));
});

test('a run killed with SIGKILL mid-epoch resumes to exactly the uninterrupted result', async () => {
  const args = [...common, '--data', join(dir, 'data'), '--method', 'mona', '--epochs', '2', '--batch', '4', '--checkpoint-every', '2', '--seed', '3'];
  const straight = join(dir, 'run-straight');
  const killed = join(dir, 'run-killed');
  const s = run('train', ...args, '--out', straight, '--quiet');
  assert.equal(s.status, 0, s.stderr);

  const child = spawn(process.execPath, [CLI, 'train', ...args, '--out', killed, '--quiet'], { stdio: 'ignore', env: { ...process.env, DELTATUNE_THREADS: '2' } });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  // Kill as soon as the first mid-epoch checkpoint exists (epoch 1 has 12 batches; it checkpoints every 2).
  const state = join(killed, 'state.safetensors');
  const deadline = Date.now() + 120_000;
  while (!existsSync(state) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 5));
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL', 'the child was killed, not finished');
  const progress = JSON.parse(loadSafetensors(state, { filter: () => false }).metadata.progress!);
  assert.equal(progress.finished, false, 'killed before the end');

  const resumed = run('train', '--resume', killed, '--progress', 'lines');
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming .* at epoch \d, batch \d+/);
  const a = loadSafetensors(join(straight, 'last', 'delta.safetensors')).tensors;
  const b = loadSafetensors(join(killed, 'last', 'delta.safetensors')).tensors;
  assert.deepEqual([...b.keys()], [...a.keys()]);
  for (const [k, t] of a) assertClose(b.get(k)!, t, { rtol: 0, atol: 0, what: k });
  [...a.values(), ...b.values()].forEach((t) => t.dispose());
});

test('bad calls: one clear line and a non-zero exit', () => {
  const data = join(dir, 'data');
  const cases: [string[], number, RegExp][] = [
    [['train', '--model', 'resnet18'], 2, /--data is required/],
    [['train', '--model', 'resnet18', '--data', data, '--epochs', 'abc'], 2, /--epochs must be an integer ≥ 1, got 'abc'/],
    [['train', '--model', 'resnet18', '--data', data, '--frobnicate'], 2, /unknown option '--frobnicate'/],
    [['train', '--model', 'resnet18', '--data', data, '--optimizer', 'lamb'], 2, /--optimizer must be one of adamw, sgd, got 'lamb'/],
    [['train', '--model', 'resnet18', '--data', data, '--frozen-precision', 'half'], 2, /--frozen-precision must be one of float32, bfloat16, got 'half'/],
    [['train', '--model', 'resnet9000', '--data', data], 1, /unknown model 'resnet9000'; available: .*resnet18/],
    [['train', '--model', 'resnet18', '--data', data, '--method', 'magic'], 1, /unknown method 'magic'; available: .*mona/],
    [['train', '--model', 'resnet18', '--data', join(dir, 'nowhere')], 1, /nowhere' is not a file, a folder/],
    [['train', '--model', 'resnet18', '--data', data, '--method', 'mona', '--opt', 'kernels=4'], 1, /kernel/],
    [['train', '--resume', join(dir, 'nowhere')], 1, /not a run directory/],
    [['predict', '--delta', join(dir, 'nowhere'), join(data, 'val', 'red', '0.jpg')], 1, /delta\.json/],
    [['predict', '--delta', join(dir, 'run-mona', 'best')], 2, /at least one image/],
    [['eval', '--data', data], 2, /--delta is required/],
    [['inspect', 'nothing-here'], 1, /neither a model name/],
  ];
  for (const [args, code, message] of cases) {
    const r = run(...args);
    assert.equal(r.status, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.match(r.stderr, /^deltatune: /);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
  }
  for (const command of ['train', 'eval', 'predict', 'inspect', 'merge', 'demo', 'weights']) {
    const h = run(command, '--help');
    assert.equal(h.status, 0, command);
    assert.match(h.stdout, new RegExp(`Usage: deltatune ${command}`));
  }
});

test('inspect a model with a method: trainable share and delta size', () => {
  const r = run('inspect', 'resnet50', '--method', 'mona', '--classes', '10');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /mona on resnet50: [\d,]+ of [\d,]+ parameters train \(\d+\.\d\d%\); delta \d+\.\d+ MiB/);
});
