// The compute study of issue 6: which configuration comes closest to a 90% cut in total training
// time against full fine-tuning, within a point of its accuracy (tasks: src/experiments/compute-tasks.ts).
// Usage: node dist/scripts/compute-study.js [outDir] [epochs] [task: demo (default) | clothing]
import { runGrid } from '../src/experiments/runner.js';
import { writeReport } from '../src/experiments/report.js';
import { COMPUTE_TASKS, computeStudy, type ComputeTask } from '../src/experiments/compute-tasks.js';

const outDir = process.argv[2] ?? 'runs/compute-study';
const epochs = Number(process.argv[3] ?? 5);
const task = (process.argv[4] ?? 'demo') as ComputeTask;
if (!COMPUTE_TASKS.includes(task)) throw new Error(`compute-study: task must be one of ${COMPUTE_TASKS.join(', ')}, got '${task}'`);
const study = await computeStudy(task, epochs, outDir, console.log);
const { runs, failures } = await runGrid({ variants: study.variants, seeds: [0], base: study.base, outDir, log: console.log });
const full = runs.find((r) => r.label === 'full');
await writeReport(
  {
    kind: 'compare',
    title: `Compute study: total training time against full fine-tuning${task === 'clothing' ? ' (real photos)' : ''}`,
    backbone: study.backbone,
    dataset: study.dataset,
    budget: study.budget,
    commands: [`node dist/scripts/compute-study.js ${outDir} ${epochs}${task === 'demo' ? '' : ` ${task}`}`],
    runs,
    notes: [
      ...runs.map((r) => `${r.label}: ${(r.seconds / (full?.seconds ?? NaN)).toFixed(3)}x full's time, ${(r.top1 - (full?.top1 ?? NaN)).toFixed(2)} points.`),
      ...failures,
    ],
  },
  outDir,
);
console.log(`report in ${outDir}/report.md`);
