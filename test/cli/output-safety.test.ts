// The output policy and manifest validation, end to end through the CLI: nothing saved is ever
// replaced without --force, nothing a command read is ever written over, a hand-edited delta.json
// or config.json is refused naming the file and the field, and a run resumes after SIGKILL from
// another working directory and after its folder moved, noticing a changed dataset.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { loadTuned } from '../../src/index.js';
import { ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const run = (args: string[], cwd = ROOT) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd, env: { ...process.env, DELTATUNE_THREADS: '2' } });
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

let dir = '';
let runDir = '';
const COLOURS: Record<string, [number, number, number]> = { red: [200, 40, 40], green: [40, 180, 60], blue: [40, 60, 200] };

async function makeImages(root: string, perClass: number, seed: number): Promise<void> {
  for (const [name, colour] of Object.entries(COLOURS)) {
    mkdirSync(join(root, name), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const px = Buffer.alloc(24 * 24 * 3);
      for (let p = 0; p < 24 * 24; p++) for (let c = 0; c < 3; c++) px[p * 3 + c] = Math.round(colour[c]! * (0.6 + 0.4 * (((p + i * 31 + seed) * 2654435761) % 97) / 97));
      writeFileSync(join(root, name, `${i}.png`), await sharp(px, { raw: { width: 24, height: 24, channels: 3 } }).png().toBuffer());
    }
  }
}

const common = ['--model', 'resnet18', '--image-size', '32', '--batch', '8', '--progress', 'lines'];

/** One line on stderr, prefixed 'deltatune:', with no stack trace. */
function assertOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split('\n');
  assert.match(lines[0]!, /^deltatune: /, stderr);
  assert.match(lines[0]!, pattern, stderr);
  assert.ok(!/\n\s+at /.test(stderr), `no stack trace: ${stderr}`);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'deltatune-safety-'));
  await makeImages(join(dir, 'data'), 8, 0);
  runDir = join(dir, 'run');
  const r = run(['train', ...common, '--data', join(dir, 'data'), '--method', 'lora', '--epochs', '1', '--out', runDir]);
  assert.equal(r.status, 0, r.stderr);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('merge and weights convert never replace a file without --force, nor a file they read even with it', () => {
  const delta = join(runDir, 'best');
  const base = join(runDir, 'base.safetensors');
  const existing = join(dir, 'existing.safetensors');
  writeFileSync(existing, 'precious');
  const before = [sha(existing), sha(base), sha(join(delta, 'delta.safetensors'))];

  let r = run(['merge', '--delta', delta, '--out', existing]);
  assert.equal(r.status, 1);
  assertOneLine(r.stderr, /existing\.safetensors already exists; pass --force/);
  for (const target of [base, join(delta, 'delta.safetensors')]) {
    r = run(['merge', '--delta', delta, '--out', target, '--force']);
    assert.equal(r.status, 1, `merge over ${target} is refused`);
    assertOneLine(r.stderr, /this command reads/);
  }
  r = run(['weights', 'convert', base, existing]);
  assert.equal(r.status, 1);
  assertOneLine(r.stderr, /already exists; pass --force/);
  r = run(['weights', 'convert', base, base, '--force']);
  assert.equal(r.status, 1);
  assertOneLine(r.stderr, /this command reads/);
  r = run(['merge', '--delta', delta, '--out', '/proc/self/merged.safetensors']);
  assert.equal(r.status, 1);
  assertOneLine(r.stderr, /pseudo-filesystem \(proc\)/);
  assert.deepEqual([sha(existing), sha(base), sha(join(delta, 'delta.safetensors'))], before, 'no file changed');

  // With --force an unrelated file is replaced, by a complete checkpoint.
  r = run(['merge', '--delta', delta, '--out', existing, '--force']);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(readFileSync(existing).length > 1e6);
});

test('a hand-edited delta.json is refused naming the file and the field', () => {
  const cases: [string, (m: Record<string, any>) => void, RegExp][] = [
    ['no preprocess', (m) => delete m.preprocess, /'preprocess'.*is required/],
    ['no base', (m) => delete m.base, /'base'.*is required/],
    ['a null class name', (m) => (m.classes[1] = null), /'classes\[1\]'/],
    ['classes vs numClasses', (m) => m.classes.pop(), /'classes'.*lists 2 names but numClasses is 3/],
    ['numClasses vs the head', (m) => { m.numClasses = 4; m.classes.push('x'); }, /mis-shaped.*fc\.weight|fc\.weight/],
    ['a tampered LoRA alpha', (m) => (m.config.alpha = 1e30), /'config'.*alpha/],
    ['an unknown method', (m) => (m.method = 'magic'), /unknown method 'magic'/],
    ['a string for numClasses', (m) => (m.numClasses = '3'), /'numClasses'/],
  ];
  for (const [what, edit, pattern] of cases) {
    const copy = join(dir, `edited-${what.replace(/\W+/g, '-')}`);
    cpSync(join(runDir, 'best'), copy, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(copy, 'delta.json'), 'utf8'));
    edit(manifest);
    writeFileSync(join(copy, 'delta.json'), JSON.stringify(manifest));
    assert.throws(() => loadTuned(copy), (err: Error) => {
      assert.match(err.message.split('\n')[0]!, pattern, what);
      assert.ok(err.message.includes(copy), `${what}: the message names the delta (${err.message})`);
      return true;
    });
  }
  // Through the CLI, for the two cases the issue saw: eval silently at 50%, merge writing inf/NaN.
  for (const [what, pattern] of [['no preprocess', /'preprocess'.*is required/], ['a tampered LoRA alpha', /'config'.*alpha/]] as const) {
    const copy = join(dir, `edited-${what.replace(/\W+/g, '-')}`);
    const out = join(dir, `merged-${what.replace(/\W+/g, '-')}.safetensors`);
    for (const args of [['eval', '--delta', copy, '--data', join(dir, 'data')], ['merge', '--delta', copy, '--out', out]]) {
      const r = run(args);
      assert.equal(r.status, 1, `${what}: ${args[0]} fails (${r.stdout})`);
      assertOneLine(r.stderr, pattern);
    }
    assert.ok(!existsSync(out), `${what}: merge wrote nothing`);
  }
});

test('train refuses an existing run without --force, a foreign folder always, and a folder inside its data', () => {
  const before = sha(join(runDir, 'best', 'delta.safetensors'));
  let r = run(['train', ...common, '--data', join(dir, 'data'), '--method', 'lora', '--epochs', '1', '--out', runDir]);
  assert.equal(r.status, 1);
  assertOneLine(r.stderr, /already holds a run; resume it .*--force/);
  assert.equal(sha(join(runDir, 'best', 'delta.safetensors')), before);

  const foreign = join(dir, 'foreign');
  mkdirSync(foreign);
  writeFileSync(join(foreign, 'notes.txt'), 'mine');
  r = run(['train', ...common, '--data', join(dir, 'data'), '--method', 'lora', '--epochs', '1', '--out', foreign, '--force']);
  assert.equal(r.status, 1);
  assertOneLine(r.stderr, /holds other files \(notes\.txt\)/);
  assert.equal(readFileSync(join(foreign, 'notes.txt'), 'utf8'), 'mine');

  r = run(['train', ...common, '--data', join(dir, 'data'), '--method', 'lora', '--epochs', '1', '--out', join(dir, 'data', 'run')]);
  assert.equal(r.status, 1);
  assertOneLine(r.stderr, /inside .*data, which this run reads/);
  assert.ok(!existsSync(join(dir, 'data', 'run')));
});

test('train --force replaces a run only once the new start works, and keeps what is not the run', () => {
  const out = join(dir, 'replace');
  let r = run(['train', ...common, '--data', join(dir, 'data'), '--method', 'lora', '--epochs', '1', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  writeFileSync(join(out, '.notes'), 'mine');
  const before = sha(join(out, 'best', 'delta.safetensors'));
  // A typo in --data, and a bad method option: the earlier run is still there, byte for byte.
  r = run(['train', ...common, '--data', join(dir, 'dta'), '--method', 'lora', '--epochs', '1', '--out', out, '--force']);
  assert.equal(r.status, 1);
  r = run(['train', ...common, '--data', join(dir, 'data'), '--method', 'lora', '--opt', 'rank=0', '--epochs', '1', '--out', out, '--force']);
  assert.equal(r.status, 1);
  assert.equal(sha(join(out, 'best', 'delta.safetensors')), before);
  assert.deepEqual(readdirSync(out).sort(), ['.notes', 'base.safetensors', 'best', 'config.json', 'last', 'metrics.jsonl', 'state.safetensors', 'summary.json']);
  // A start killed before its first checkpoint left only config.json and base.safetensors: replaced without --force.
  const killed = join(dir, 'never-checkpointed');
  mkdirSync(killed);
  cpSync(join(out, 'config.json'), join(killed, 'config.json'));
  r = run(['train', ...common, '--data', join(dir, 'data'), '--method', 'lora', '--epochs', '1', '--out', killed]);
  assert.equal(r.status, 0, r.stderr);
  // A symlink to the base is the base.
  const link = join(dir, 'base-link.safetensors');
  symlinkSync(join(out, 'base.safetensors'), link);
  const base = sha(join(out, 'base.safetensors'));
  r = run(['merge', '--delta', join(out, 'best'), '--weights', link, '--out', join(out, 'base.safetensors'), '--force']);
  assert.equal(r.status, 1);
  assertOneLine(r.stderr, /this command reads/);
  assert.equal(sha(join(out, 'base.safetensors')), base);
  assert.equal(readFileSync(join(out, '.notes'), 'utf8'), 'mine');
});

test('a failed start removes what it created', () => {
  const out = join(dir, 'failed', 'deeper');
  const r = run(['train', ...common, '--data', join(dir, 'data'), '--method', 'lora', '--opt', 'rank=0', '--epochs', '1', '--out', out]);
  assert.equal(r.status, 1);
  assertOneLine(r.stderr, /rank/);
  assert.ok(!existsSync(join(dir, 'failed')), 'neither the run folder nor its new parent is left');
});

test('a loss that diverges before the first checkpoint names no checkpoint and leaves nothing', () => {
  const out = join(dir, 'diverged');
  const r = run(['train', ...common, '--data', join(dir, 'data'), '--method', 'lora', '--lr', '1e15', '--epochs', '1', '--out', out, '--quiet']);
  assert.equal(r.status, 1);
  assertOneLine(r.stderr, /the loss became (NaN|Infinity|-Infinity) .*No checkpoint had been saved yet/);
  assert.ok(!existsSync(out));
});

test('SIGKILL, move the run folder, resume from another directory: it finishes, leaves no temp files, and finds its base', async () => {
  const data = join(dir, 'data2');
  await makeImages(data, 16, 5);
  const first = join(dir, 'killed');
  const child = spawn(process.execPath, [CLI, 'train', ...common, '--data', data, '--method', 'lora', '--epochs', '3', '--checkpoint-every', '1', '--out', 'killed'], {
    cwd: dir,
    env: { ...process.env, DELTATUNE_THREADS: '2' },
    stdio: 'ignore',
  });
  // Kill once the first checkpoint of epoch 2 exists (metrics.jsonl holds epoch 1).
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (existsSync(join(first, 'metrics.jsonl')) && readFileSync(join(first, 'metrics.jsonl'), 'utf8').trim().split('\n').filter(Boolean).length >= 1) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.ok(existsSync(join(first, 'state.safetensors')), 'a checkpoint was saved before the kill');

  const moved = join(dir, 'moved', 'run');
  mkdirSync(join(dir, 'moved'));
  renameSync(first, moved);
  const elsewhere = mkdtempSync(join(tmpdir(), 'deltatune-cwd-'));
  try {
    // A changed dataset is noticed...
    const extra = join(data, 'red', 'extra.png');
    cpSync(join(data, 'red', '0.png'), extra);
    let r = run(['train', '--resume', moved], elsewhere);
    assert.equal(r.status, 1);
    assertOneLine(r.stderr, /the data changed since the run started \(training images 48 -> 49\|.*validation images.*\).*--allow-data-change|the data changed since the run started/);
    rmSync(extra);
    // ...and with the same data the run finishes where it is now.
    r = run(['train', '--resume', moved], elsewhere);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /done in/);
    const leftovers = readdirSync(moved).filter((f) => f.startsWith('.'));
    assert.deepEqual(leftovers, [], 'no temp files remain');
    assert.equal(readFileSync(join(moved, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 3);
    // The deltas find the run's own base.safetensors beside them although the recorded path is gone.
    r = run(['eval', '--delta', join(moved, 'best'), '--data', data, '--json'], elsewhere);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(JSON.parse(r.stdout).top1 >= 0);
  } finally {
    rmSync(elsewhere, { recursive: true, force: true });
  }
});

test('a project moved whole (data and runs together) resumes through paths relative to the run', async () => {
  const project = join(dir, 'project');
  await makeImages(join(project, 'data'), 8, 3);
  let r = run(['train', ...common, '--data', join(project, 'data'), '--method', 'lora', '--epochs', '1', '--out', join(project, 'run')]);
  assert.equal(r.status, 0, r.stderr);
  renameSync(project, join(dir, 'project-moved'));
  r = run(['train', '--resume', join(dir, 'project-moved', 'run')]);
  assert.equal(r.status, 0, r.stderr);
});

test('--quiet still reports skipped images, summary.json lists them; resume with --allow-data-change goes on', async () => {
  const data = join(dir, 'data3');
  await makeImages(data, 8, 9);
  writeFileSync(join(data, 'green', 'broken.png'), 'not a png');
  const out = join(dir, 'run3');
  let r = run(['train', ...common, '--data', data, '--method', 'lora', '--epochs', '1', '--out', out, '--on-bad-image', 'skip', '--quiet', '--val-split', '0']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /warning: skipping .*broken\.png/, 'the skipped image is reported under --quiet');
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
  assert.equal(summary.skippedImages.length, 1);
  assert.match(summary.skippedImages[0], /broken\.png/);
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(config.tune.data, data, 'the data path is stored absolute');
  assert.equal(config.fingerprints.data.train.count, 25);
  // A config written before paths were stored absolute (relative data path, no fingerprints) still resumes.
  const legacy = join(dir, 'legacy-run');
  cpSync(out, legacy, { recursive: true });
  const old = JSON.parse(readFileSync(join(legacy, 'config.json'), 'utf8'));
  old.tune.data = relative(ROOT, data);
  old.tune.out = relative(ROOT, legacy);
  delete old.fingerprints;
  writeFileSync(join(legacy, 'config.json'), JSON.stringify(old, null, 2) + '\n');
  r = run(['train', '--resume', legacy]);
  assert.equal(r.status, 0, r.stderr);

  cpSync(join(data, 'red', '0.png'), join(data, 'red', 'extra.png'));
  r = run(['train', '--resume', out]);
  assert.equal(r.status, 1);
  r = run(['train', '--resume', out, '--allow-data-change']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr + r.stdout, /the data changed/);
});
