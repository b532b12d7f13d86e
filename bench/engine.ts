// npm run bench:engine — the same ResNet-18-shaped training step (batch 16, 3×128×128, AdamW)
// with deltatune's functional ops and with PyTorch eager (torchvision resnet18 + torch.optim.AdamW),
// interleaved in one run with the same thread count; plus the per-call overhead of a tiny op.
import { add, crossEntropy, getNumThreads, manualSeed, ones, randint, randn, keep, tidy, engineInfo } from '../src/index.js';
import { AdamW } from '../src/train/optim.js';
import { functionalResNet18 } from './resnet18.js';
import { TorchWorker, median, timeIt } from './common.js';

const BATCH = Number(process.env.BENCH_BATCH ?? 16);
const SIZE = Number(process.env.BENCH_SIZE ?? 128);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
const STEPS_PER_ROUND = 2;
const OVERHEAD_CALLS = 200_000;

const threads = getNumThreads();
console.log(`engine benchmark: ResNet-18 train step, batch ${BATCH}, 3x${SIZE}x${SIZE}, AdamW, ${threads} threads`);
console.log(`BLAS loaded: ${engineInfo().blas}`);

const torch = new TorchWorker('engine_torch.py', [String(threads), String(BATCH), String(SIZE)]);
const hello = await torch.ready<{ threads: number }>();
if (hello.threads !== threads) throw new Error(`thread counts differ: ours ${threads}, PyTorch ${hello.threads}`);

manualSeed(0);
const net = functionalResNet18(10);
const opt = new AdamW(net.params, { lr: 1e-3 });
const x = keep(randn([BATCH, 3, SIZE, SIZE]));
const y = keep(randint(0, 10, [BATCH]));
const ourStep = (): number =>
  tidy(() => {
    opt.zeroGrad();
    const loss = crossEntropy(net.forward(x), y);
    loss.backward();
    opt.step();
    return loss.item();
  });

const timeOurs = (n: number): number[] => timeIt(ourStep, n);

// Warm-up: allocator, oneDNN primitive caches, JIT.
timeOurs(2);
await torch.ask('steps 2');

const ours: number[] = [];
const theirs: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  // Alternate who goes first, so drift in machine load hits both sides alike.
  if (r % 2 === 0) {
    ours.push(...timeOurs(STEPS_PER_ROUND));
    theirs.push(...(await torch.ask<{ ms: number[] }>(`steps ${STEPS_PER_ROUND}`)).ms);
  } else {
    theirs.push(...(await torch.ask<{ ms: number[] }>(`steps ${STEPS_PER_ROUND}`)).ms);
    ours.push(...timeOurs(STEPS_PER_ROUND));
  }
  console.log(`round ${r + 1}/${ROUNDS}: ours ${median(ours).toFixed(0)} ms, pytorch ${median(theirs).toFixed(0)} ms (running medians)`);
}

function ourOverhead(n: number): number {
  const a = keep(ones([1]));
  const b = keep(ones([1]));
  for (let i = 0; i < 1000; i++) add(a, b).dispose();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) add(a, b).dispose();
  return ((performance.now() - t0) / n) * 1e3;
}
const overheadOurs: number[] = [];
const overheadTheirs: number[] = [];
for (let r = 0; r < 3; r++) {
  overheadOurs.push(ourOverhead(OVERHEAD_CALLS));
  overheadTheirs.push((await torch.ask<{ us: number }>(`overhead ${OVERHEAD_CALLS}`)).us);
}
torch.close();

const stepOurs = median(ours);
const stepTheirs = median(theirs);
const ratio = stepOurs / stepTheirs;
console.log('');
console.log('| measure | deltatune | PyTorch eager | ratio |');
console.log('|---|---|---|---|');
console.log(`| ResNet-18 train step, batch ${BATCH} at ${SIZE}px (median ms) | ${stepOurs.toFixed(1)} | ${stepTheirs.toFixed(1)} | ${ratio.toFixed(3)} |`);
console.log(`| tiny op (add of two 1-element tensors), µs per call | ${median(overheadOurs).toFixed(2)} | ${median(overheadTheirs).toFixed(2)} | ${(median(overheadOurs) / median(overheadTheirs)).toFixed(2)} |`);
console.log(`RESULT engine_step_ratio=${ratio.toFixed(3)} op_overhead_us=${median(overheadOurs).toFixed(2)} op_overhead_us_pytorch=${median(overheadTheirs).toFixed(2)}`);
