// npm run bench:models — eval forward and full fine-tuning step (AdamW) at batch 8, 224×224, for
// each benchmarked model, ours vs torchvision on PyTorch, interleaved in one run with the same
// thread count; plus loading resnet50's checkpoint: our .safetensors reader vs torch.load(.pth).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AdamW, crossEntropy, getNumThreads, keep, manualSeed, noGrad, randint, randn, tidy, type Tensor } from '../src/index.js';
import { createModel, listModels, type VisionModel } from '../src/models/index.js';
import { loadStateDict } from '../src/io/state-dict.js';
import { ROOT, TorchWorker, fmt, median, pairedRounds, timeIt, type Paired } from './common.js';

const BATCH = Number(process.env.BENCH_BATCH ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const FWD_ROUNDS = Number(process.env.BENCH_FWD_ROUNDS ?? 15);
const MODELS = (process.env.BENCH_MODELS ?? 'resnet50,mobilenet_v2,convnext_tiny,swin_t,vit_b_16').split(',');

const threads = getNumThreads();
console.log(`models benchmark: batch ${BATCH}, 224x224, ${threads} threads; ${FWD_ROUNDS} paired rounds of forwards and ${ROUNDS} of train steps; times are each side's lower quartile`);
const torch = new TorchWorker('models_torch.py', [String(threads), String(BATCH)]);
await torch.ready();

interface Row { model: string; fwd: Paired; train: Paired }
const rows: Row[] = [];
for (const name of MODELS) {
  if (!listModels().includes(name)) {
    console.log(`${name}: not in the model zoo yet, skipped`);
    continue;
  }
  await torch.ask(`use ${name}`);
  manualSeed(0);
  const model: VisionModel = createModel(name);
  const opt = new AdamW(model.parameters(), { lr: 1e-4 });
  const x = keep(randn([BATCH, 3, 224, 224]));
  const y = keep(randint(0, 1000, [BATCH]));
  const fwd = () => {
    model.eval();
    tidy(() => noGrad(() => void model.call(x)));
  };
  const train = () => {
    model.train();
    tidy(() => {
      opt.zeroGrad();
      const loss: Tensor = crossEntropy(model.call(x), y);
      loss.backward();
      opt.step();
    });
  };
  // Warm-up both sides.
  timeIt(fwd, 1);
  timeIt(train, 1);
  await torch.ask('fwd 1');
  await torch.ask('train 1');
  // Paired rounds: each round times one sample per side back to back, alternating who goes
  // first, so that drift in the machine's speed (tens of percent over seconds here) hits both.
  // A forward sample repeats the call until it lasts ~0.3 s so that timer and scheduler jitter
  // stay small against it.
  const perSample = Math.max(1, Math.round(300 / Math.max(1, median(timeIt(fwd, 2)))));
  const fwdPairs = await pairedRounds(FWD_ROUNDS, () => timeIt(fwd, perSample), async () => (await torch.ask<{ ms: number[] }>(`fwd ${perSample}`)).ms);
  const trainPairs = await pairedRounds(ROUNDS, () => timeIt(train, 1), async () => (await torch.ask<{ ms: number[] }>('train 1')).ms);
  const row = { model: name, fwd: fwdPairs, train: trainPairs };
  rows.push(row);
  console.log(`${name}: forward ${fmt(row.fwd)}; train step ${fmt(row.train)}`);
  opt.dispose();
  model.dispose();
  x.dispose();
  y.dispose();
}

// Checkpoint loading: resnet50 saved by PyTorch as .pth and as .safetensors.
const dir = join(ROOT, '.cache', 'bench');
mkdirSync(dir, { recursive: true });
const pth = join(dir, 'resnet50.pth');
const st = join(dir, 'resnet50.safetensors');
await torch.ask('use resnet50');
await torch.ask(`save ${pth} ${st}`);
// Warm the page cache for both files first: the comparison is of parsing and copying, not disk.
// A sample is 5 loads (~40 ms each).
const loadOurs = () => timeIt(() => noGrad(() => loadStateDict(st).forEach((t) => t.dispose())), 5);
const loadTorch = async () => (await torch.ask<{ ms: number[] }>(`load ${pth} 5`)).ms;
loadOurs();
await loadTorch();
const load = await pairedRounds(9, loadOurs, loadTorch);
torch.close();

console.log('');
console.log('| model | eval forward ms (ours / PyTorch) | ratio | train step ms (ours / PyTorch) | ratio |');
console.log('|---|---|---|---|---|');
const cell = (p: Paired) => `${p.ours.toFixed(0)} / ${p.torch.toFixed(0)} | ${p.ratio.toFixed(3)}`;
for (const r of rows) console.log(`| ${r.model} | ${cell(r.fwd)} | ${cell(r.train)} |`);
console.log(`| resnet50 checkpoint load (ours .safetensors / torch.load .pth) | ${cell(load)} | | |`);
console.log('(times: lower quartile of each side over rounds measured back to back, alternating who goes first)');
const fwdMax = Math.max(...rows.map((r) => r.fwd.ratio));
const trainMax = Math.max(...rows.map((r) => r.train.ratio));
console.log(`RESULT models_fwd_ratio_max=${fwdMax.toFixed(3)} models_train_ratio_max=${trainMax.toFixed(3)} load_ratio=${load.ratio.toFixed(3)}`);
