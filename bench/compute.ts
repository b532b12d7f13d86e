// npm run bench:compute — total training time of full fine-tuning, Mona (default config) and the
// cheapest configuration found in the compute study (src/experiments/compute-tasks.ts), same data,
// epochs, batch and seed, each run in its own process, one after another.
//   BENCH_TASK=clothing (default): the ImageNet MobileNetV2 on clothing-small photos at 160×160
//     (../shared/data), reported on its test split.
//   BENCH_TASK=demo: the demo transfer task (resnet18 from Fashion-MNIST to MNIST at 32×32).
//   BENCH_EPOCHS (default 10, `deltatune train`'s default): a cached prefix is a fixed cost paid
//     once, so its share of the time, and the ratio, fall as the epochs grow (clothing, float32:
//     0.137× at 5 epochs, 0.112× at 10; with bfloat16 frozen convolutions 0.098× at 10; all within
//     a point; docs/results/compute-clothing, -e10).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runGrid } from '../src/experiments/runner.js';
import { COMPUTE_TASKS, computeStudy, type ComputeTask } from '../src/experiments/compute-tasks.js';

const TASK = (process.env.BENCH_TASK ?? 'clothing') as ComputeTask;
if (!COMPUTE_TASKS.includes(TASK)) throw new Error(`BENCH_TASK must be one of ${COMPUTE_TASKS.join(', ')}, got '${TASK}'`);
const EPOCHS = Number(process.env.BENCH_EPOCHS ?? 10);
const SEED = Number(process.env.BENCH_SEED ?? 0);

const work = mkdtempSync(join(tmpdir(), 'deltatune-bench-compute-'));
try {
  const study = await computeStudy(TASK, EPOCHS, work, (l) => console.log(l));
  console.log(`compute benchmark: ${TASK}; ${study.backbone}; ${study.dataset}; ${study.budget}`);
  const { runs, failures } = await runGrid({
    variants: [study.full, study.mona, study.cheapest],
    seeds: [SEED],
    base: study.base,
    outDir: work,
    log: (l) => console.log(l),
  });
  if (failures.length) throw new Error(`runs failed: ${failures.join('; ')}`);
  const [full, mona, best] = runs as [typeof runs[0], typeof runs[0], typeof runs[0]];
  console.log('\n| configuration | top-1 | trainable % | training time | time vs full |');
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
