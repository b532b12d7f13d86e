// npm run bench:methods — every delta method on resnet50 and swin_t at 224, batch 8, channels-last
// on both sides (the faster layout for full fine-tuning and for the methods alike): trainable %,
// delta bytes, ms/step and peak resident memory relative to full fine-tuning; Mona's plain vs
// merged kernels and its literal vs folded LayerNorm.
//  - Time: all configurations of a model are built side by side in ONE process and take turns, a
//    training step each per round, alternating the order; a ratio is the median over rounds of the
//    configuration's step time over full fine-tuning's in the same round (quartiles shown), so the
//    machine's drift (±10% over minutes here) cancels.
//  - Memory: each configuration alone in its own process (peak resident memory, VmHWM).
// BENCH_MODELS, BENCH_METHODS (comma lists) and BENCH_ROUNDS (default 5) narrow or lengthen it.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { listMethods } from '../src/delta/index.js';
import { ROOT, median, quantile } from './common.js';

interface Config { label: string; method: string; options?: Record<string, unknown> }
interface Memory { peakRssMiB: number; trainablePct: number; deltaBytes: number }

const MODELS = (process.env.BENCH_MODELS ?? 'resnet50,swin_t').split(',');
const METHODS = (process.env.BENCH_METHODS ?? listMethods().join(',')).split(',').filter((m) => m !== 'full' && m !== 'mona');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const workerPath = join(ROOT, 'dist', 'bench', 'method_worker.js');

function worker<T>(args: string[]): T | null {
  try {
    const out = execFileSync(process.execPath, [workerPath, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
    return JSON.parse(out.trim().split('\n').pop()!) as T;
  } catch (err) {
    const msg = ((err as { stderr?: string }).stderr ?? String(err)).trim().split('\n').find((l) => /^\w*Error: /.test(l)) ?? 'failed';
    console.log(`  ${args.slice(0, 3).join(' ')}: ${msg.slice(0, 200)}`);
    return null;
  }
}

/** Median and quartiles of the per-round ratios a[r] / b[r]. */
function ratio(a: readonly number[], b: readonly number[]): { median: number; q1: number; q3: number } {
  const rs = a.map((t, r) => t / b[r]!).sort((p, q) => p - q);
  return { median: median(rs), q1: quantile(rs, 0.25), q3: quantile(rs, 0.75) };
}

const size = (bytes: number) => (bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(0)} KiB`);

console.log(`methods benchmark: batch 8, 224x224, channels-last; time side by side in one process (${ROUNDS} rounds), memory each configuration in its own process`);
const headline: Record<string, { step: number; mem: number; mergedVsPlain: number; trainablePct: number }> = {};
for (const model of MODELS) {
  const configs: Config[] = [
    { label: 'full', method: 'full' },
    { label: 'mona', method: 'mona' },
    { label: 'mona, plain kernels', method: 'mona', options: { merged: false } },
    // The LayerNorm form other than the default on this model (folded on ResNet's wide maps, literal on tokens).
    model === 'swin_t' || model.startsWith('vit')
      ? { label: 'mona, foldNorm', method: 'mona', options: { foldNorm: true } }
      : { label: 'mona, literal LayerNorm', method: 'mona', options: { foldNorm: false } },
    ...METHODS.map((m) => ({ label: m, method: m })),
  ];
  const timed = worker<{ times: number[][]; errors: (string | null)[] }>(['time', model, JSON.stringify(configs.map(({ method, options }) => ({ method, options }))), String(ROUNDS)]);
  if (!timed) process.exit(1);
  timed.errors.forEach((e, i) => e && console.log(`  ${model} ${configs[i]!.label}: ${e.split('\n')[0]!.slice(0, 160)}`));
  const memory = configs.map((c, i) => (timed.errors[i] ? null : worker<Memory>(['memory', model, c.method, JSON.stringify(c.options ?? {})])));
  const fullTimes = timed.times[0]!;
  const fullMem = memory[0];
  console.log('');
  console.log(`${model} (full fine-tuning: ${median(fullTimes).toFixed(0)} ms/step, peak ${fullMem ? fullMem.peakRssMiB.toFixed(0) : '?'} MiB)`);
  console.log('| method | trainable % | delta size | ms/step | vs full (quartiles) | peak MiB | vs full |');
  console.log('|---|---|---|---|---|---|---|');
  configs.forEach((c, i) => {
    if (timed.errors[i]) return;
    const r = ratio(timed.times[i]!, fullTimes);
    const m = memory[i];
    const mem = m && fullMem ? m.peakRssMiB / fullMem.peakRssMiB : NaN;
    const spread = i === 0 ? '' : `${r.median.toFixed(3)} (${r.q1.toFixed(3)}–${r.q3.toFixed(3)})`;
    console.log(`| ${c.label} | ${m ? m.trainablePct.toFixed(2) : '?'} | ${m ? size(m.deltaBytes) : '?'} | ${median(timed.times[i]!).toFixed(0)} | ${spread} | ${m ? m.peakRssMiB.toFixed(0) : '?'} | ${i === 0 ? '' : mem.toFixed(3)} |`);
  });
  const mergedVsPlain = ratio(timed.times[1]!, timed.times[2]!).median;
  console.log(`${model}: mona merged/plain kernels ${mergedVsPlain.toFixed(3)}; ${configs[3]!.label} vs default ${ratio(timed.times[3]!, timed.times[1]!).median.toFixed(3)}`);
  headline[model] = {
    step: ratio(timed.times[1]!, fullTimes).median,
    mem: memory[1] && fullMem ? memory[1].peakRssMiB / fullMem.peakRssMiB : NaN,
    mergedVsPlain,
    trainablePct: memory[1]?.trainablePct ?? NaN,
  };
}
for (const model of MODELS.filter((m) => m !== 'resnet50')) {
  console.log(`\n${model}: mona_step_vs_full=${headline[model]!.step.toFixed(3)} mona_mem_vs_full=${headline[model]!.mem.toFixed(3)}`);
}
const r50 = headline.resnet50;
if (r50) {
  console.log(`RESULT mona_step_vs_full=${r50.step.toFixed(3)} mona_mem_vs_full=${r50.mem.toFixed(3)} mona_merged_vs_plain=${r50.mergedVsPlain.toFixed(3)} mona_trainable_pct=${r50.trainablePct.toFixed(2)}`);
}
