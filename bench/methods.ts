// npm run bench:methods — every delta method on resnet50 and swin_t at 224, batch 8: trainable %,
// delta bytes, ms/step and peak resident memory relative to full fine-tuning, each configuration
// in its own process (so its peak memory is its own), all cores, channels-last on both sides
// (the faster layout for full fine-tuning and for the methods alike). Mona plain vs merged kernel,
// and Mona with its LayerNorm folded into project1 (foldNorm: less memory).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { listMethods } from '../src/delta/index.js';
import { ROOT, median } from './common.js';

interface Result { model: string; method: string; msPerStep: number; peakRssMiB: number; trainablePct: number; deltaBytes: number }

const MODELS = (process.env.BENCH_MODELS ?? 'resnet50,swin_t').split(',');
const METHODS = (process.env.BENCH_METHODS ?? listMethods().join(',')).split(',');
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const worker = join(ROOT, 'dist', 'bench', 'method_worker.js');

function run(model: string, method: string, options: Record<string, unknown> = {}): Result | null {
  try {
    const out = execFileSync(process.execPath, [worker, model, method, JSON.stringify({ channelsLast: true, ...options })], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return JSON.parse(out.trim().split('\n').pop()!) as Result;
  } catch (err) {
    const msg = ((err as { stderr?: string }).stderr ?? String(err)).trim().split('\n').find((l) => /^\w*Error: /.test(l)) ?? 'failed';
    console.log(`  ${model} ${method}: ${msg.slice(0, 160)}`);
    return null;
  }
}

/** Alternates full fine-tuning and `method` processes, so drift in machine speed hits both. */
function paired(model: string, method: string, options: Record<string, unknown> = {}): { full: Result; other: Result; step: number; mem: number } {
  const full: Result[] = [];
  const other: Result[] = [];
  for (let i = 0; i < REPEATS; i++) {
    full.push(run(model, 'full')!);
    other.push(run(model, method, options)!);
  }
  const pick = (rs: Result[]): Result => ({ ...rs[0]!, msPerStep: median(rs.map((r) => r.msPerStep)), peakRssMiB: median(rs.map((r) => r.peakRssMiB)) });
  const f = pick(full);
  const o = pick(other);
  return { full: f, other: o, step: o.msPerStep / f.msPerStep, mem: o.peakRssMiB / f.peakRssMiB };
}

console.log(`methods benchmark: batch 8, 224x224, channels-last, each configuration in its own process; ${REPEATS} alternating runs for the Mona/full ratios`);
const headline: Record<string, ReturnType<typeof paired>> = {};
for (const model of MODELS) {
  headline[model] = paired(model, 'mona');
  console.log(`${model}: mona ${headline[model]!.other.msPerStep.toFixed(0)} ms/step vs full ${headline[model]!.full.msPerStep.toFixed(0)} (${headline[model]!.step.toFixed(3)}), peak ${headline[model]!.other.peakRssMiB.toFixed(0)} vs ${headline[model]!.full.peakRssMiB.toFixed(0)} MiB (${headline[model]!.mem.toFixed(3)})`);
}
const plainVsMerged = paired('resnet50', 'mona', { merged: false });
const plain = plainVsMerged.other.msPerStep / plainVsMerged.full.msPerStep;
const mergedRatio = headline.resnet50 ? headline.resnet50.step / plain : NaN;
console.log(`resnet50 mona plain kernels: ${plainVsMerged.other.msPerStep.toFixed(0)} ms/step (${plain.toFixed(3)} of full); merged/plain ${mergedRatio.toFixed(3)}`);
const folded = paired('resnet50', 'mona', { foldNorm: true });
console.log(`resnet50 mona foldNorm: ${folded.other.msPerStep.toFixed(0)} ms/step (${folded.step.toFixed(3)} of full), peak ${folded.other.peakRssMiB.toFixed(0)} MiB (${folded.mem.toFixed(3)} of full)`);

for (const model of MODELS) {
  const full = headline[model]!.full;
  console.log('');
  console.log(`${model} (full fine-tuning: ${full.msPerStep.toFixed(0)} ms/step, peak ${full.peakRssMiB.toFixed(0)} MiB)`);
  console.log('| method | trainable % | delta size | ms/step | vs full | peak MiB | vs full |');
  console.log('|---|---|---|---|---|---|---|');
  for (const method of METHODS) {
    const r = method === 'full' ? full : method === 'mona' ? headline[model]!.other : run(model, method);
    if (!r) continue;
    const size = r.deltaBytes >= 2 ** 20 ? `${(r.deltaBytes / 2 ** 20).toFixed(1)} MiB` : `${(r.deltaBytes / 1024).toFixed(0)} KiB`;
    console.log(`| ${method} | ${r.trainablePct.toFixed(2)} | ${size} | ${r.msPerStep.toFixed(0)} | ${(r.msPerStep / full.msPerStep).toFixed(3)} | ${r.peakRssMiB.toFixed(0)} | ${(r.peakRssMiB / full.peakRssMiB).toFixed(3)} |`);
  }
}
const r50 = headline.resnet50!;
if (headline.swin_t) console.log(`\nswin_t: mona_step_vs_full=${headline.swin_t.step.toFixed(3)} mona_mem_vs_full=${headline.swin_t.mem.toFixed(3)}`);
console.log(`RESULT mona_step_vs_full=${r50.step.toFixed(3)} mona_mem_vs_full=${r50.mem.toFixed(3)} mona_merged_vs_plain=${mergedRatio.toFixed(3)} mona_trainable_pct=${r50.other.trainablePct.toFixed(2)}`);
