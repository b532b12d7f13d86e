// Small, fast `deltatune compare` and `ablate-scales`: two variants, one epoch, tiny images; the
// report files exist, the table has its columns and a row per variant, the plots are valid.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { ROOT } from '../helpers.js';
import { inapplicable } from '../../src/cli/compare.js';
import { listMethods } from '../../src/index.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
let dir = '';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'deltatune-compare-'));
  const colours: [string, number[]][] = [['dark', [30, 30, 30]], ['light', [220, 220, 220]]];
  for (const [name, c] of colours) {
    mkdirSync(join(dir, 'data', name), { recursive: true });
    for (let i = 0; i < 12; i++) {
      const px = Buffer.alloc(24 * 24 * 3, 0).map((_, j) => c[j % 3]! + ((j * 7 + i * 13) % 25));
      writeFileSync(join(dir, 'data', name, `${i}.png`), await sharp(px, { raw: { width: 24, height: 24, channels: 3 } }).png().toBuffer());
    }
  }
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function checkPlots(out: string, names: string[]): Promise<void> {
  for (const name of names) {
    const svg = readFileSync(join(out, `${name}.svg`), 'utf8');
    assert.match(svg, /^<svg[\s\S]*<\/svg>\s*$/, `${name}.svg is an SVG document`);
    const meta = await sharp(join(out, `${name}.png`)).metadata();
    assert.equal(meta.format, 'png', `${name}.png`);
    assert.ok(meta.width! > 300, `${name}.png has a real size`);
  }
}

const budget = ['--model', 'resnet18', '--epochs', '1', '--image-size', '32', '--batch', '8', '--seeds', '0,1', '--val-split', '0.25'];

test('compare: two methods, two seeds → table, results, plots and an HTML page', async () => {
  const out = join(dir, 'compare');
  const r = run('compare', ...budget, '--data', join(dir, 'data'), '--methods', 'fixed,bitfit', '--out', out);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\[4\/4\] bitfit seed 1: top-1 \d+\.\d\d%/);
  const md = readFileSync(join(out, 'report.md'), 'utf8');
  assert.match(md, /\| method \| top-1 \(mean ± std, n\) \| trainable % \| delta size \| train time \| peak memory \|/);
  assert.match(md, /\| fixed \| [\d.]+ ± [\d.]+ \(n=2\) \|/);
  assert.match(md, /\| bitfit \| [\d.]+ ± [\d.]+ \(n=2\) \|/);
  assert.match(md, /deltatune compare --model resnet18/);
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  assert.equal(results.runs.length, 4);
  assert.ok(results.runs.every((x: { peakRssMiB: number; deltaBytes: number }) => x.peakRssMiB > 50 && x.deltaBytes > 0));
  await checkPlots(out, ['accuracy-vs-trainable', 'learning-curves']);
  assert.match(readFileSync(join(out, 'index.html'), 'utf8'), /<svg[\s\S]*bitfit/);
  // A second call reuses the finished runs instead of training again.
  const again = run('compare', ...budget, '--data', join(dir, 'data'), '--methods', 'fixed,bitfit', '--out', out);
  assert.equal(again.status, 0, again.stderr);
  assert.equal((again.stdout.match(/\(reused\)/g) ?? []).length, 4);
  // A finished run made under another budget is not reused as if it were this one's; nor is the folder of another kind.
  const other = run('compare', ...budget.map((a) => (a === '1' ? '2' : a)), '--data', join(dir, 'data'), '--methods', 'fixed', '--seeds', '0', '--out', out);
  assert.match(other.stdout + other.stderr, /fixed seed 0: FAILED: .* holds a run with other options \(epochs 1 vs 2\)/);
  const ablate = run('ablate-scales', ...budget, '--data', join(dir, 'data'), '--out', out);
  assert.equal(ablate.status, 1);
  assert.match(ablate.stderr, /holds a 'compare' report; give another folder for 'ablate-scales'/);
});

test('ablate-scales: two kernel sets → table and bar plot', async () => {
  const out = join(dir, 'ablate');
  const r = run('ablate-scales', ...budget, '--seeds', '0', '--data', join(dir, 'data'), '--sets', '[3];[3,5,7]-noLN', '--opt', 'hidden=8', '--out', out);
  assert.equal(r.status, 0, r.stderr);
  const md = readFileSync(join(out, 'report.md'), 'utf8');
  assert.match(md, /\| mona \\?\[3\\?\] \| [\d.]+ \(n=1\) \|/);
  assert.match(md, /\| mona \\?\[3,5,7\\?\] no scaled LN \| [\d.]+ \(n=1\) \|/);
  await checkPlots(out, ['ablation', 'learning-curves']);
  assert.ok(existsSync(join(out, 'index.html')));
});

test('compare and ablate-scales: bad calls are one clear line', () => {
  const cases: [string[], RegExp][] = [
    [['compare', '--model', 'resnet18', '--data', join(dir, 'data'), '--methods', 'full,magic'], /--methods: unknown magic/],
    [['compare', '--model', 'resnet18', '--data', join(dir, 'data'), '--seeds', 'a,b'], /--seeds must be a comma list/],
    [['ablate-scales', '--model', 'resnet18', '--data', join(dir, 'data'), '--sets', '[4]'], /--sets: kernel set '\[4\]' must look like/],
    [['ablate-scales', '--model', 'resnet18', '--data', join(dir, 'data'), '--opt', 'kernels=3'], /what the ablation varies/],
  ];
  for (const [args, message] of cases) {
    const r = run(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  }
});

test("compare's default list skips what does not apply to the model: other kinds by the registry, a model's own refusal by a dry run", () => {
  const onMobileNet = inapplicable('mobilenet_v2', listMethods(), {});
  assert.deepEqual([...onMobileNet.keys()].sort(), ['adapter', 'adaptformer', 'conv-adapter']);
  assert.match(onMobileNet.get('adapter')!, /^adapter: applies to transformers; mobilenet_v2 is a CNN/);
  assert.match(onMobileNet.get('conv-adapter')!, /^conv-adapter: mobilenet_v2 has no k×k \(k > 1\) convolution/);
  const onVit = inapplicable('vit_tiny_p4_32', listMethods(), {});
  assert.deepEqual([...onVit.keys()].sort(), ['conv-adapter', 'filter-atom']);
  // Per-method options take part: an impossible one skips that method, with its message.
  assert.match(inapplicable('resnet18', ['partial'], { partial: { blocks: 99 } }).get('partial')!, /'blocks' is 99 but resnet18 has 8 blocks/);
});
