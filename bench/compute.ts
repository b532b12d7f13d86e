// npm run bench:compute — total training compute of full fine-tuning, Mona (default config) and the
// cheapest configuration found in the compute study (docs/results/compute.md), on the demo transfer
// task (resnet18 pretrained on Fashion-MNIST by `deltatune demo`, tuned on MNIST at 32x32), same
// data, epochs, batch and seed, each run in its own process, one after another.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { demoBackbone, demoTransfer, DEMO_MODEL } from '../src/experiments/backbone.js';
import { runGrid, type Variant } from '../src/experiments/runner.js';

const EPOCHS = Number(process.env.BENCH_EPOCHS ?? 5);
const SEED = Number(process.env.BENCH_SEED ?? 0);

/**
 * The configuration of the compute study (docs/results/compute) closest to the claim: no
 * configuration came within a point of full fine-tuning at a 90% cut on this task; Mona in stages
 * 1-3 over the cached stem and layer1 came closest in accuracy among those that cut time by half.
 */
export const CHEAPEST: Variant = {
  label: 'mona stages 1-3 on the cached stem+layer1',
  method: 'mona',
  methodOptions: { stages: [1, 2, 3] },
  overrides: { cacheFrozenPrefix: true },
};

const work = mkdtempSync(join(tmpdir(), 'deltatune-bench-compute-'));
try {
  const backbone = await demoBackbone({ workDir: join(work, 'pretrain'), say: (l) => console.log(l) });
  console.log(`backbone: ${backbone.note}`);
  const { runs, failures } = await runGrid({
    variants: [{ label: 'full', method: 'full' }, { label: 'mona', method: 'mona' }, CHEAPEST],
    seeds: [SEED],
    base: demoTransfer(backbone.path, EPOCHS),
    outDir: work,
    log: (l) => console.log(l),
  });
  if (failures.length) throw new Error(`runs failed: ${failures.join('; ')}`);
  const [full, mona, best] = runs as [typeof runs[0], typeof runs[0], typeof runs[0]];
  console.log('\n| configuration | MNIST val top-1 | trainable % | training time | time vs full |');
  console.log('|---|---:|---:|---:|---:|');
  for (const r of runs) {
    console.log(`| ${r.label} | ${r.top1.toFixed(2)}% | ${r.trainablePercent.toFixed(2)}% | ${r.seconds.toFixed(1)} s | ${(r.seconds / full.seconds).toFixed(3)} |`);
  }
  console.log(
    `\nRESULT mona_time_vs_full=${(mona.seconds / full.seconds).toFixed(3)} best_time_vs_full=${(best.seconds / full.seconds).toFixed(3)} ` +
      `best_acc_gap_pts=${(full.top1 - best.top1).toFixed(2)}`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
