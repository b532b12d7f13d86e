// One rank of our side of `npm run bench:ddp` (bench/ddp.ts starts two). argv[2] is JSON:
//   { rank, worldSize, initMethod, timeoutMs, data, perRank, classes }
// `data` is the synthetic global batch (bench/ddp.ts writes it: a header line of JSON, then the
// float32 images and int32 labels); this rank trains on global positions rank, rank + W, ...
// After joining the group it prints {"ready": ...} and then answers one JSON line per stdin line:
//   build <method>          resnet50 at 224, channels-last, `method` ('full' or 'mona'), 10 classes,
//                           AdamW lr 1e-4, rank 0's state broadcast (DDP's start)
//   step                    one data-parallel training step -> {ms, fwdBwdMs, syncMs, optMs}
//   allreduce <numel> <n>   n timed allreduces of a float32 tensor (barrier before each) -> {ms: [...]}
//   equiv <path> <batch>    the equivalence check (see equivalence() below) -> {checks: [...]}
//   quit
// Errors are replied as {"error": message} so the driver can stop with the message.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import {
  AdamW, DataParallel, SGD, applyDelta, createModel, crossEntropy, initProcessGroup, manualSeed, noGrad, tensor, tidy, zeros,
  getNumThreads, type Delta, type Optimizer, type Tensor, type VisionModel,
} from '../src/index.js';

interface Args { rank: number; worldSize: number; initMethod: string; timeoutMs: number; data: string; perRank: number; classes: number }
const args = JSON.parse(process.argv[2]!) as Args;
const { rank, worldSize } = args;

/** The data file: `{"n", "shape": [C,H,W]}\n`, then n·C·H·W float32, then n int32 labels. */
function readData(path: string): { n: number; shape: number[]; images: Float32Array; labels: Int32Array } {
  const buf = readFileSync(path);
  const nl = buf.indexOf(10);
  const header = JSON.parse(buf.subarray(0, nl).toString('utf8')) as { n: number; shape: number[] };
  const per = header.shape.reduce((a, b) => a * b, 1);
  const body = buf.subarray(nl + 1);
  const copy = new Uint8Array(body.length);
  copy.set(body);
  const images = new Float32Array(copy.buffer, 0, header.n * per);
  const labels = new Int32Array(copy.buffer, header.n * per * 4, header.n);
  return { ...header, images, labels };
}

/** The images and labels at `positions` as tensors (images in `memoryFormat`). */
function batchOf(d: ReturnType<typeof readData>, positions: number[], channelsLast: boolean): { x: Tensor; y: Tensor } {
  const per = d.shape.reduce((a, b) => a * b, 1);
  const img = new Float32Array(positions.length * per);
  positions.forEach((p, i) => img.set(d.images.subarray(p * per, (p + 1) * per), i * per));
  const lab = new BigInt64Array(positions.map((p) => BigInt(d.labels[p]!)));
  const x0 = tensor(img, { shape: [positions.length, ...d.shape] });
  const x = channelsLast ? x0.contiguous('channelsLast') : x0;
  if (x !== x0) x0.dispose();
  return { x, y: tensor(lab) };
}

/** Global positions of this rank's shard of global batch k (DistributedSampler's order). */
const shard = (k: number, globalBatch: number) => Array.from({ length: globalBatch / worldSize }, (_, i) => k * globalBatch + rank + i * worldSize);

const group = await initProcessGroup({ initMethod: args.initMethod, rank, worldSize, timeoutMs: args.timeoutMs, devices: [{ hostname: '127.0.0.1' }] });

interface Built { model: VisionModel; delta: Delta; opt: Optimizer; params: Tensor[]; dp: DataParallel; x: Tensor; y: Tensor }
let current: Built | null = null;

function disposeCurrent(): void {
  if (!current) return;
  current.opt.dispose();
  current.model.dispose();
  current.x.dispose();
  current.y.dispose();
  current = null;
}

async function build(method: string): Promise<Record<string, unknown>> {
  disposeCurrent();
  const data = readData(args.data);
  manualSeed(0);
  const model = createModel('resnet50');
  const delta = applyDelta(model, { method, numClasses: args.classes });
  model.toMemoryFormat('channelsLast');
  model.train();
  const dp = new DataParallel(group);
  await dp.broadcastTensors([...model.stateDict().values()]);
  const params = delta.trainableParameters();
  const opt = new AdamW(params, { lr: 1e-4 });
  const { x, y } = batchOf(data, shard(0, args.perRank * worldSize), true);
  current = { model, delta, opt, params, dp, x, y };
  const numel = params.reduce((s, p) => s + p.numel, 0);
  return { trainable: numel, tensors: params.length, bytes: numel * 4 };
}

async function step(): Promise<Record<string, number>> {
  const c = current!;
  const t0 = performance.now();
  const sync0 = c.dp.gradientSyncMs;
  tidy(() => {
    c.opt.zeroGrad();
    // As the trainer does: the buckets' allreduces start inside this backward.
    c.dp.beforeBackward(c.params);
    crossEntropy(c.model.call(c.x), c.y).backward();
  });
  const t1 = performance.now();
  await c.dp.averageGradients(c.params);
  const t2 = performance.now();
  tidy(() => c.opt.step());
  const t3 = performance.now();
  return { ms: t3 - t0, fwdBwdMs: t1 - t0, syncMs: c.dp.gradientSyncMs - sync0, optMs: t3 - t2 };
}

async function allreduce(numel: number, n: number): Promise<{ ms: number[] }> {
  const t = zeros([numel]);
  try {
    await group.allreduce(t); // warm-up (first touch of the memory, Gloo's buffers)
    const ms: number[] = [];
    for (let i = 0; i < n; i++) {
      await group.barrier();
      const t0 = performance.now();
      await group.allreduce(t);
      ms.push(performance.now() - t0);
    }
    return { ms };
  } finally {
    t.dispose();
  }
}

/**
 * Data-parallel training is the same training as one process with the global batch: each check
 * trains `steps` SGD steps (momentum 0.9) over W ranks with per-rank batch B/W (rank r takes
 * positions r, r+W, ... of each global batch, as DistributedSampler shards), and, in this same
 * process, a reference copy built from the same seed trained on the whole global batches; the
 * figure is the max abs difference of the trainable weights (over both ranks in the driver).
 * Models without BatchNorm in train mode only: full fine-tuning of vit_tiny_p4_32 (no dropout),
 * Mona on resnet18 (frozen BatchNorm in eval; Mona's dropout set to 0).
 */
async function equivalence(path: string, globalBatch: number): Promise<{ checks: Record<string, unknown>[] }> {
  const data = readData(path);
  const steps = Math.floor(data.n / globalBatch);
  const checks: Record<string, unknown>[] = [];
  const configs = [
    { model: 'vit_tiny_p4_32', method: 'full', options: {} },
    { model: 'resnet18', method: 'mona', options: { dropout: 0 } },
  ];
  for (const cfg of configs) {
    const make = () => {
      manualSeed(1);
      const model = createModel(cfg.model);
      const delta = applyDelta(model, { method: cfg.method, numClasses: args.classes, ...cfg.options });
      const channelsLast = model.config.memoryFormat === 'channelsLast';
      if (channelsLast) model.toMemoryFormat('channelsLast');
      model.train();
      const params = delta.trainableParameters();
      const initial = noGrad(() => params.map((p) => p.clone()));
      return { model, params, initial, channelsLast, opt: new SGD(params, { lr: 0.05, momentum: 0.9 }) };
    };
    const run = async (m: ReturnType<typeof make>, positionsOf: (k: number) => number[], dp: DataParallel | null) => {
      for (let k = 0; k < steps; k++) {
        const { x, y } = batchOf(data, positionsOf(k), m.channelsLast);
        tidy(() => {
          m.opt.zeroGrad();
          dp?.beforeBackward(m.params);
          crossEntropy(m.model.call(x), y).backward();
        });
        x.dispose();
        y.dispose();
        if (dp) await dp.averageGradients(m.params);
        tidy(() => m.opt.step());
      }
    };
    const ddp = make();
    const dp = new DataParallel(group);
    await dp.broadcastTensors([...ddp.model.stateDict().values()]);
    await run(ddp, (k) => shard(k, globalBatch), dp);
    const ref = make();
    await run(ref, (k) => Array.from({ length: globalBatch }, (_, i) => k * globalBatch + i), null);
    const [maxDiff, maxUpdate] = noGrad(() => {
      let diff = 0;
      let update = 0;
      ddp.params.forEach((p, i) => {
        diff = Math.max(diff, tidy(() => p.sub(ref.params[i]!).abs().max().item()));
        update = Math.max(update, tidy(() => p.sub(ddp.initial[i]!).abs().max().item()));
      });
      return [diff, update];
    });
    checks.push({ name: `${cfg.model} ${cfg.method}`, steps, globalBatch, tensors: ddp.params.length, maxDiff, maxUpdate });
    for (const m of [ddp, ref]) {
      m.opt.dispose();
      m.initial.forEach((t) => t.dispose());
      m.model.dispose();
    }
  }
  return { checks };
}

const reply = (value: unknown) => process.stdout.write(JSON.stringify(value) + '\n');
reply({ ready: true, rank, threads: getNumThreads() });

const lines = createInterface({ input: process.stdin });
// Commands run one at a time, in order (the driver waits for each reply anyway).
let queue: Promise<void> = Promise.resolve();
lines.on('line', (line) => {
  queue = queue.then(async () => {
    const [cmd, ...rest] = line.trim().split(/\s+/);
    try {
      if (cmd === 'build') reply(await build(rest[0]!));
      else if (cmd === 'step') reply(await step());
      else if (cmd === 'allreduce') reply(await allreduce(Number(rest[0]), Number(rest[1])));
      else if (cmd === 'equiv') reply(await equivalence(rest[0]!, Number(rest[1])));
      else if (cmd === 'quit') {
        disposeCurrent();
        group.dispose();
        process.exit(0);
      } else reply({ error: `unknown command ${JSON.stringify(line)}` });
    } catch (err) {
      reply({ error: (err as Error).stack ?? String(err) });
    }
  });
});
// The driver gone (stdin closed): leave at once.
lines.on('close', () => void queue.then(() => process.exit(0)));
