// npm run bench:loader — the data loader on real JPEGs (../shared/data/clothing-small/train,
// ≈400×533 phone photos): (1) images/s decoded + train-augmented by the loader alone, and the
// in-memory fast path on Fashion-MNIST; (2) a ResNet-50 + Mona training loop fed by the loader:
// how long the step waits for data. The last line is machine-readable.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  AdamW, DataLoader, ImageFolder, applyDelta, crossEntropy, evalTransform, fashionMnist, getNumThreads, manualSeed,
  subset, tidy, trainTransform, type Batch, type Dataset, type LoaderOptions,
} from '../src/index.js';
import { createModel } from '../src/models/index.js';
import { ROOT } from './common.js';

const DATA = join(ROOT, '..', 'shared', 'data', 'clothing-small', 'train');
const IMAGES = Number(process.env.BENCH_IMAGES ?? 600);
const STEPS = Number(process.env.BENCH_STEPS ?? 12);
const WARMUP = 2;
const BATCH = 8;

if (!existsSync(DATA)) {
  console.error(`bench:loader needs the real photos in ${DATA} (the shared data folder beside the project); it is absent.`);
  process.exit(1);
}

const folder = new ImageFolder(DATA);
const stride = Math.max(1, Math.floor(folder.length / IMAGES));
const photos = subset(folder, Array.from({ length: Math.min(IMAGES, folder.length) }, (_, i) => i * stride));
console.log(`loader benchmark: ${photos.length} of ${folder.length} photos from ${DATA}; ${getNumThreads()} libtorch threads, ${process.env.UV_THREADPOOL_SIZE ?? 4} libuv threads`);

/** Images/s for one full epoch of the loader alone (every batch disposed at once). */
async function loaderRate(ds: Dataset, options: LoaderOptions): Promise<number> {
  const loader = new DataLoader(ds, options);
  const t0 = performance.now();
  let n = 0;
  for await (const b of loader.epoch(0)) {
    n += b.indices.length;
    b.dispose();
  }
  return (n * 1000) / (performance.now() - t0);
}

const rows: [string, string][] = [];
const trainRate = await loaderRate(photos, { batchSize: BATCH, transform: trainTransform(224, { colorJitter: false }) });
rows.push(['loader alone: photos, RandomResizedCrop 224 + flip, batch 8', `${trainRate.toFixed(0)} images/s`]);
const evalRate = await loaderRate(photos, { batchSize: BATCH, transform: evalTransform(224) });
rows.push(['loader alone: photos, resize 256 + centre crop 224, batch 8', `${evalRate.toFixed(0)} images/s`]);
const fmnist = fashionMnist();
const fastRate = await loaderRate(fmnist, { batchSize: 256, transform: trainTransform(32, { randomResizedCrop: false }) });
rows.push(['loader alone: Fashion-MNIST 60k, resize 32 + flip, batch 256', `${fastRate.toFixed(0)} images/s`]);

// (2) Consumption: a real training step on the main thread while sharp decodes ahead.
manualSeed(0);
const model = createModel('resnet50', { numClasses: 10 });
const delta = applyDelta(model, { method: 'mona', numClasses: 10 });
// Weights in NHWC like the input: oneDNN's preferred layout for convolutions.
model.toMemoryFormat('channelsLast');
const opt = new AdamW(delta.trainableParameters(), { lr: 1e-4 });
model.train();
const loader = new DataLoader(photos, { batchSize: BATCH, transform: trainTransform(224, { colorJitter: false }), channelsLast: true });
const it = loader.epoch(0);
const waits: number[] = [];
const totals: number[] = [];
for (let s = 0; s < STEPS; s++) {
  const t0 = performance.now();
  const r = await it.next();
  const t1 = performance.now();
  if (r.done) throw new Error(`the epoch ended after ${s} steps; raise BENCH_IMAGES`);
  const batch: Batch = r.value;
  tidy(() => {
    opt.zeroGrad();
    crossEntropy(model.call(batch.images), batch.labels).backward();
    opt.step();
  });
  batch.dispose();
  waits.push(t1 - t0);
  totals.push(performance.now() - t0);
}
await it.return?.();
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const waitMs = sum(waits.slice(WARMUP));
const totalMs = sum(totals.slice(WARMUP));
const stepsPerS = ((STEPS - WARMUP) * 1000) / totalMs;
const fraction = waitMs / totalMs;
rows.push([`training resnet50 + mona, batch 8, ${STEPS - WARMUP} timed steps`, `${(totalMs / (STEPS - WARMUP)).toFixed(0)} ms/step`]);
rows.push(['  waiting for the next batch', `${(waitMs / (STEPS - WARMUP)).toFixed(1)} ms/step (${(fraction * 100).toFixed(2)}%)`]);
rows.push(['  images/s consumed (steps/s × 8)', `${(stepsPerS * BATCH).toFixed(1)} images/s`]);
rows.push(['  first step wait (pipeline fill, untimed)', `${waits[0]!.toFixed(0)} ms`]);

const width = Math.max(...rows.map(([k]) => k.length));
for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
console.log(`RESULT loader_images_per_s=${trainRate.toFixed(0)} data_wait_fraction=${fraction.toFixed(4)}`);
