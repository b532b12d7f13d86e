// npm run bench:models — eval forward and full fine-tuning step (AdamW) at batch 8, 224×224, for
// each benchmarked model, ours vs torchvision on PyTorch, interleaved in one run with the same
// thread count; plus loading resnet50's checkpoint: our .safetensors reader vs torch.load(.pth).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AdamW, crossEntropy, getNumThreads, keep, manualSeed, noGrad, randint, randn, tidy, type Tensor } from '../src/index.js';
import { createModel, listModels, type VisionModel } from '../src/models/index.js';
import { loadStateDict } from '../src/io/state-dict.js';
import { ROOT, TorchWorker, median, timeIt } from './common.js';

const BATCH = Number(process.env.BENCH_BATCH ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4);
const FWD_ROUNDS = Number(process.env.BENCH_FWD_ROUNDS ?? 10);
const MODELS = (process.env.BENCH_MODELS ?? 'resnet50,mobilenet_v2,convnext_tiny,swin_t,vit_b_16').split(',');

const threads = getNumThreads();
console.log(`models benchmark: batch ${BATCH}, 224x224, ${threads} threads; medians of ${FWD_ROUNDS} forwards and ${ROUNDS} train steps per side, interleaved`);
const torch = new TorchWorker('models_torch.py', [String(threads), String(BATCH)]);
await torch.ready();

interface Row { model: string; fwdOurs: number; fwdTorch: number; trainOurs: number; trainTorch: number }
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
  // Warm-up both sides, then alternate who goes first each round.
  timeIt(fwd, 1);
  timeIt(train, 1);
  await torch.ask('fwd 1');
  await torch.ask('train 1');
  // Interleave single calls, alternating who goes first, so drift in machine speed (large on
  // shared hosts) hits both sides alike; forwards are cheap, so they get more rounds.
  const f: number[] = [], ft: number[] = [], t: number[] = [], tt: number[] = [];
  for (let r = 0; r < FWD_ROUNDS; r++) {
    if (r % 2 === 0) f.push(...timeIt(fwd, 1));
    ft.push(...(await torch.ask<{ ms: number[] }>('fwd 1')).ms);
    if (r % 2 === 1) f.push(...timeIt(fwd, 1));
  }
  for (let r = 0; r < ROUNDS; r++) {
    if (r % 2 === 0) t.push(...timeIt(train, 1));
    tt.push(...(await torch.ask<{ ms: number[] }>('train 1')).ms);
    if (r % 2 === 1) t.push(...timeIt(train, 1));
  }
  const row = { model: name, fwdOurs: median(f), fwdTorch: median(ft), trainOurs: median(t), trainTorch: median(tt) };
  rows.push(row);
  console.log(`${name}: forward ${row.fwdOurs.toFixed(0)} vs ${row.fwdTorch.toFixed(0)} ms, train step ${row.trainOurs.toFixed(0)} vs ${row.trainTorch.toFixed(0)} ms`);
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
const loadOurs: number[] = [];
const loadTorch: number[] = [];
// Warm the page cache for both files first: the comparison is of parsing and copying, not disk.
await torch.ask(`load ${pth} 1`);
timeIt(() => noGrad(() => loadStateDict(st).forEach((t) => t.dispose())), 1);
for (let r = 0; r < 7; r++) {
  loadTorch.push(...(await torch.ask<{ ms: number[] }>(`load ${pth} 1`)).ms);
  loadOurs.push(...timeIt(() => noGrad(() => loadStateDict(st).forEach((t) => t.dispose())), 1));
}
torch.close();

const ratio = (a: number, b: number) => a / b;
console.log('');
console.log('| model | eval forward ms (ours / PyTorch) | ratio | train step ms (ours / PyTorch) | ratio |');
console.log('|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.model} | ${r.fwdOurs.toFixed(0)} / ${r.fwdTorch.toFixed(0)} | ${ratio(r.fwdOurs, r.fwdTorch).toFixed(3)} | ${r.trainOurs.toFixed(0)} / ${r.trainTorch.toFixed(0)} | ${ratio(r.trainOurs, r.trainTorch).toFixed(3)} |`);
}
const loadRatio = median(loadOurs) / median(loadTorch);
console.log(`| resnet50 checkpoint load (ours .safetensors / torch.load .pth) | ${median(loadOurs).toFixed(0)} / ${median(loadTorch).toFixed(0)} ms | ${loadRatio.toFixed(3)} | | |`);
const fwdMax = Math.max(...rows.map((r) => r.fwdOurs / r.fwdTorch));
const trainMax = Math.max(...rows.map((r) => r.trainOurs / r.trainTorch));
console.log(`RESULT models_fwd_ratio_max=${fwdMax.toFixed(3)} models_train_ratio_max=${trainMax.toFixed(3)} load_ratio=${loadRatio.toFixed(3)}`);
