// npm run bench:export — exported ONNX models in onnxruntime-node against the same models in
// deltatune's own eval forward and in PyTorch eager, and the size of a delta-only download.
//  - Models at 224, 10 classes: MobileNetV2 (the ImageNet weights of ../shared/data/weights when
//    present, else random init) + Mona (defaults: hidden 64, kernels 3/5/7, after every block),
//    exported split (base tensors in a shared .bin, the delta in the .onnx); ResNet-50 (random
//    init) + LoRA (rank 8 on every bottleneck conv), exported merged into one plain graph. The
//    delta's parameters get random values (Mona's away from its near-identity init, LoRA's B away
//    from zero) so the delta moves the logits; how much is printed.
//  - Engines, all with the same thread count (deltatune's: every core): deltatune's eval forward
//    (eval mode, noGrad + tidy, channels-last model and input, as its trainer evaluates these
//    models; the Mona delta attached, the LoRA model merged as the export is); onnxruntime-node
//    (intraOpNumThreads = that count, graphOptimizationLevel 'all', NCHW float32 input as the
//    graph takes it); PyTorch eager (bench/export_torch.py: torchvision models with a reference
//    Mona, every tensor from safetensors files deltatune writes, channels-last, inference_mode).
//  - Time: per (model, batch) a warm-up, then BENCH_ROUNDS rounds (default 7) of one sample per
//    engine, the order rotating each round; a sample repeats the call until it lasts ~0.3 s. ms per
//    image = median over rounds / batch; a ratio is the median over rounds of the per-round ratio
//    (quartiles shown), so the machine's drift cancels. onnx_vs_deltatune_latency is the geometric
//    mean of the four cases' onnxruntime/deltatune ratios.
//  - onnx_maxdiff: max abs difference of onnxruntime's logits from deltatune's over all cases
//    (for LoRA against both the unmerged delta and the merged model). Inputs: 16 photos of
//    ../shared/data/clothing-small/test through the eval transform (else seeded noise); batch 1
//    is the first of them.
//  - delta_download_vs_full: MobileNetV2+Mona's delta-only .onnx (graphBytes) over one
//    self-contained .onnx of the same model (fullBytes).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import {
  DataLoader, ImageFolder, applyDelta, evalTransform, exportOnnx, getNumThreads, manualSeed, noGrad, randn, randnLike,
  saveSafetensors, subset, tidy, type Delta, type ExportedOnnx, type Tensor,
} from '../src/index.js';
import { createModel, type VisionModel } from '../src/models/index.js';
import { ROOT, TorchWorker, median, quantile, settle } from './common.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const WARMUP = 2;
const SAMPLE_MS = 300;
const CLASSES = 10;
const MAX_BATCH = 16;
const BATCHES = [1, MAX_BATCH];
const SHARED = join(ROOT, '..', 'shared', 'data');
const WEIGHTS = join(SHARED, 'weights', 'mobilenet_v2_imagenet.safetensors');
const PHOTOS = join(SHARED, 'clothing-small', 'test');

type Reply = Record<string, unknown> & { error?: string };

const f2 = (x: number) => x.toFixed(2);
const f3 = (x: number) => x.toFixed(3);
const e2 = (x: number) => x.toExponential(2);
const size = (bytes: number) => (bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(2)} MiB` : `${(bytes / 1024).toFixed(0)} KiB`);
const spread = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: median(s), q1: quantile(s, 0.25), q3: quantile(s, 0.75) };
};
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  if (a.length !== b.length) throw new Error(`logits of different lengths: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};
const maxAbs = (a: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
};

/** CPU time the whole machine spent busy so far, in ms (/proc/stat; USER_HZ = 100). */
function machineBusyMs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]!) * 10;
}

/** CPU time of this process and its children (the PyTorch worker) so far, in ms. */
function ownCpuMs(): number {
  let total = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pid) === process.pid || Number(f[1]) === process.pid) total += (Number(f[11]) + Number(f[12])) * 10;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** The bench's inputs: 16 photos (eval transform, 224) or, without the shared data, seeded noise. */
async function inputs(): Promise<{ x: Tensor; classes: string[]; what: string }> {
  if (existsSync(PHOTOS)) {
    const folder = new ImageFolder(PHOTOS);
    const stride = Math.floor(folder.length / MAX_BATCH);
    const photos = subset(folder, Array.from({ length: MAX_BATCH }, (_, i) => i * stride));
    const loader = new DataLoader(photos, { batchSize: MAX_BATCH, transform: evalTransform(224), shuffle: false, onBadImage: 'fail' });
    for await (const batch of loader.epoch(0)) {
      const x = batch.images.contiguous().clone();
      batch.dispose();
      return { x, classes: [...folder.classes], what: `${MAX_BATCH} photos of ${PHOTOS} (resize 256, centre crop 224, ImageNet normalisation)` };
    }
    throw new Error(`${PHOTOS}: no images`);
  }
  manualSeed(7);
  return { x: randn([MAX_BATCH, 3, 224, 224]), classes: Array.from({ length: CLASSES }, (_, i) => `class${i}`), what: `seeded standard-normal noise (${PHOTOS} is absent)` };
}

/** One tuned model in the three engines. */
interface Case {
  label: string;
  key: string;
  model: VisionModel;
  session: ort.InferenceSession;
  exported: ExportedOnnx;
  exportMs: number;
  /** deltatune's logits per batch size, of the model as timed; and other references to compare with. */
  ours: Map<number, Float32Array>;
  refs: { label: string; logits: Map<number, Float32Array> }[];
  /** The delta's effect: max abs change of the (batch 16) logits from the base's with the delta at identity. */
  deltaEffect: number;
}

const threads = getNumThreads();
const cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown CPU';
const ortVersion = (JSON.parse(readFileSync(join(ROOT, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')) as { version: string }).version;
const dir = mkdtempSync(join(tmpdir(), 'deltatune-bench-export-'));
const torch = new TorchWorker('export_torch.py', [String(threads)]);

async function ask(command: string): Promise<Reply> {
  const reply = await torch.ask<Reply>(command);
  if (typeof reply.error === 'string') throw new Error(`PyTorch worker, '${command.split(' ')[0]}': ${reply.error}`);
  return reply;
}

/** Logits of the first `batch` images (deltatune). */
function logitsOf(model: VisionModel, x: Tensor, batch: number): Float32Array {
  return tidy(() => noGrad(() => model.forward(x.narrow(0, 0, batch)).toArray() as Float32Array));
}

/** Logits at batch 1 and 16. */
function allLogits(model: VisionModel, xs: Map<number, Tensor>): Map<number, Float32Array> {
  return new Map(BATCHES.map((b) => [b, logitsOf(model, xs.get(b)!, b)]));
}

/** Adds normal noise of standard deviation `std` to each tensor. */
function perturb(tensors: Tensor[], std: number): void {
  noGrad(() => tidy(() => tensors.forEach((t) => t.add_(randnLike(t).mul_(std)))));
}

/**
 * Max abs change of the logits the delta makes: against the same model with `identity` tensors
 * zeroed (which makes the delta the identity), then restored.
 */
function deltaEffect(model: VisionModel, x: Tensor, identity: Tensor[]): number {
  const withDelta = logitsOf(model, x, MAX_BATCH);
  const saved = noGrad(() => identity.map((t) => t.clone()));
  noGrad(() => identity.forEach((t) => t.zero_()));
  const without = logitsOf(model, x, MAX_BATCH);
  noGrad(() => identity.forEach((t, i) => t.copy_(saved[i]!)));
  saved.forEach((t) => t.dispose());
  return maxAbsDiff(withDelta, without);
}

function session(file: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(file, { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
}

async function ortLogits(s: ort.InferenceSession, input: ort.Tensor): Promise<Float32Array> {
  const out = await s.run({ image: input });
  return out.logits!.data as Float32Array;
}

function trainable(delta: Delta, pattern: RegExp): Tensor[] {
  return delta.namedTrainableParameters().filter(([name]) => pattern.test(name)).map(([, p]) => p);
}

async function main(): Promise<void> {
  const ready = await torch.ready<{ threads: number; torch: string }>();
  if (ready.threads !== threads) throw new Error(`PyTorch runs ${ready.threads} threads, deltatune ${threads}`);
  const data = await inputs();
  const x16 = data.x;
  // deltatune's loader hands over channels-last batches for these models; onnxruntime takes NCHW float32.
  const xs = new Map(BATCHES.map((b) => [b, noGrad(() => x16.narrow(0, 0, b).contiguous('channelsLast'))]));
  const nchw = x16.toArray() as Float32Array;
  const ortInputs = new Map(BATCHES.map((b) => [b, new ort.Tensor('float32', nchw.subarray(0, b * 3 * 224 * 224), [b, 3, 224, 224])]));
  const header = Buffer.from(JSON.stringify({ n: MAX_BATCH, shape: [3, 224, 224] }) + '\n', 'utf8');
  writeFileSync(join(dir, 'images.bin'), Buffer.concat([header, Buffer.from(nchw.buffer, nchw.byteOffset, nchw.byteLength)]));
  await ask(`data ${join(dir, 'images.bin')}`);
  const classes = data.classes.slice(0, CLASSES);

  const realWeights = existsSync(WEIGHTS);
  console.log(`export benchmark on ${cpuModel} (${cpus().length} cores): ${threads} threads in every engine — deltatune (libtorch), onnxruntime-node ${ortVersion} (intraOpNumThreads ${threads}, graphOptimizationLevel all), PyTorch ${ready.torch} eager (torch.set_num_threads(${threads}), inference_mode)`);
  console.log(`inputs: ${data.what}; batch 1 is the first image`);
  const cases: Case[] = [];
  let narrowMona: ExportedOnnx | null = null;

  // --- MobileNetV2 + Mona, split export --------------------------------------------------------
  {
    manualSeed(0);
    const model = createModel('mobilenet_v2', realWeights ? { weights: WEIGHTS } : {});
    const delta = applyDelta(model, { method: 'mona', numClasses: CLASSES });
    model.eval();
    // Away from the near-identity init (LayerNorm branch scale 1e-6, projections std 0.02), and a head that is not tiny.
    perturb(trainable(delta, /\.mona\./), 0.05);
    perturb(trainable(delta, /^classifier\./), 0.05);
    const effect = deltaEffect(model, x16, trainable(delta, /\.mona\.project2\./));
    saveSafetensors(join(dir, 'mobilenet_v2-mona.safetensors'), model.stateDict());
    saveSafetensors(join(dir, 'mona-delta.safetensors'), delta.stateDict());
    mkdirSync(join(dir, 'split'));
    const t0 = performance.now();
    const exported = exportOnnx({ model, classes }, { out: join(dir, 'split', 'mobilenet_v2-mona.onnx'), split: true, name: 'bench-mona' });
    const exportMs = performance.now() - t0;
    model.toMemoryFormat('channelsLast');
    // For context, sizes only: the same with a narrower Mona bottleneck (hidden 16 instead of 64).
    {
      const narrow = createModel('mobilenet_v2', realWeights ? { weights: WEIGHTS } : {});
      applyDelta(narrow, { method: 'mona', numClasses: CLASSES, hidden: 16 });
      mkdirSync(join(dir, 'narrow'));
      narrowMona = exportOnnx({ model: narrow, classes }, { out: join(dir, 'narrow', 'mobilenet_v2-mona16.onnx'), split: true, name: 'bench-mona16' });
      narrow.dispose();
    }
    await ask(`build mona mobilenet_v2 ${CLASSES} 1 ${join(dir, 'mobilenet_v2-mona.safetensors')}`);
    cases.push({
      label: `MobileNetV2${realWeights ? ' (ImageNet weights)' : ' (random init)'} + Mona`, key: 'mona', model, exported, exportMs,
      session: await session(exported.file), ours: allLogits(model, xs), refs: [], deltaEffect: effect,
    });
  }

  // --- ResNet-50 + LoRA, merged export ---------------------------------------------------------
  {
    manualSeed(1);
    const model = createModel('resnet50');
    const delta = applyDelta(model, { method: 'lora', numClasses: CLASSES });
    model.eval();
    const loraB = trainable(delta, /\.lora_B\./);
    perturb(loraB, 0.1);
    const effect = deltaEffect(model, x16, loraB);
    // The delta as trained (unmerged), before the export merges it into the base weights.
    const unmerged = allLogits(model, xs);
    const t0 = performance.now();
    const exported = exportOnnx({ model, classes }, { out: join(dir, 'resnet50-lora.onnx'), name: 'bench-lora' });
    const exportMs = performance.now() - t0;
    if (!exported.meta.merged) throw new Error('the LoRA export was not merged');
    // Delta.merge() (which the export runs) puts the base's own modules back as they were when the
    // delta froze them — BatchNorm in training mode here, while model.training says false — so
    // eval() again, or the merged model would normalise by batch statistics (and update them).
    model.eval();
    saveSafetensors(join(dir, 'resnet50-lora-merged.safetensors'), model.stateDict());
    model.toMemoryFormat('channelsLast');
    await ask(`build lora resnet50 ${CLASSES} 0 ${join(dir, 'resnet50-lora-merged.safetensors')}`);
    cases.push({
      label: 'ResNet-50 (random init) + LoRA, merged', key: 'lora', model, exported, exportMs,
      session: await session(exported.file), ours: allLogits(model, xs), refs: [{ label: 'unmerged LoRA', logits: unmerged }], deltaEffect: effect,
    });
  }

  // --- agreement --------------------------------------------------------------------------------
  interface Agreement { label: string; batch: number; scale: number; ort: number; ortRefs: string; torch: number }
  const agreement: Agreement[] = [];
  let onnxMaxDiff = 0;
  for (const c of cases) {
    for (const b of BATCHES) {
      const ours = c.ours.get(b)!;
      const onnx = await ortLogits(c.session, ortInputs.get(b)!);
      const torchLogits = Float32Array.from((await ask(`logits ${c.key} ${b}`)).logits as number[]);
      const ort = maxAbsDiff(onnx, ours);
      const refDiffs = c.refs.map((r) => [r.label, maxAbsDiff(onnx, r.logits.get(b)!)] as const);
      onnxMaxDiff = Math.max(onnxMaxDiff, ort, ...refDiffs.map(([, d]) => d));
      agreement.push({ label: c.label, batch: b, scale: maxAbs(ours), ort, ortRefs: refDiffs.map(([l, d]) => `${e2(d)} vs ${l}`).join(', '), torch: maxAbsDiff(torchLogits, ours) });
    }
  }

  // --- latency ----------------------------------------------------------------------------------
  interface Timing { label: string; batch: number; calls: number; ours: number[]; ort: number[]; torch: number[]; otherCores: number }
  const timings: Timing[] = [];
  for (const c of cases) {
    for (const b of BATCHES) {
      const x = xs.get(b)!;
      const input = ortInputs.get(b)!;
      const oursOnce = () => tidy(() => noGrad(() => void c.model.forward(x)));
      const ortOnce = async () => void (await c.session.run({ image: input }));
      const meanMs = (ms: number[]) => ms.reduce((s, v) => s + v, 0) / ms.length;
      const oursSample = async (n: number) => {
        await settle();
        const t0 = performance.now();
        for (let i = 0; i < n; i++) oursOnce();
        return (performance.now() - t0) / n;
      };
      const ortSample = async (n: number) => {
        await settle();
        const t0 = performance.now();
        for (let i = 0; i < n; i++) await ortOnce();
        return (performance.now() - t0) / n;
      };
      const torchSample = async (n: number) => meanMs((await ask(`fwd ${c.key} ${b} ${n}`)).ms as number[]);
      const engines = [oursSample, ortSample, torchSample];
      // Warm-up, then one call each: the calls per sample come from the slowest engine's.
      for (const e of engines) await e(WARMUP);
      const probe: number[] = [];
      for (const e of engines) probe.push(await e(1));
      const calls = Math.max(1, Math.round(SAMPLE_MS / Math.max(...probe)));
      const t: number[][] = [[], [], []];
      const [busy0, own0, wall0] = [machineBusyMs(), ownCpuMs(), performance.now()];
      for (let r = 0; r < ROUNDS; r++) {
        for (let k = 0; k < engines.length; k++) {
          const e = (k + r) % engines.length;
          t[e]!.push((await engines[e]!(calls)) / b);
        }
      }
      const otherCores = (machineBusyMs() - busy0 - (ownCpuMs() - own0)) / (performance.now() - wall0);
      timings.push({ label: c.label, batch: b, calls, ours: t[0]!, ort: t[1]!, torch: t[2]!, otherCores: Math.max(0, otherCores) });
    }
  }
  torch.close();

  // --- report -----------------------------------------------------------------------------------
  const ratioOf = (a: number[], b: number[]) => spread(a.map((v, i) => v / b[i]!));
  const q = (r: ReturnType<typeof spread>) => `${f3(r.median)} (${f3(r.q1)}–${f3(r.q3)})`;
  console.log('');
  console.log(`Latency, ms per image (median over ${ROUNDS} rounds; a sample repeats the call ~${SAMPLE_MS} ms; ratios: median and quartiles of the per-round ratios)`);
  console.log('| model | batch | calls/sample | deltatune | onnxruntime | PyTorch eager | onnxruntime/deltatune | PyTorch/deltatune | other processes (cores) |');
  console.log('|---|---:|---:|---:|---:|---:|---|---|---:|');
  const ortRatios: number[] = [];
  for (const t of timings) {
    const r = ratioOf(t.ort, t.ours);
    ortRatios.push(r.median);
    console.log(`| ${t.label} | ${t.batch} | ${t.calls} | ${f2(median(t.ours))} | ${f2(median(t.ort))} | ${f2(median(t.torch))} | ${q(r)} | ${q(ratioOf(t.torch, t.ours))} | ${f2(t.otherCores)} |`);
  }
  const geomean = Math.exp(ortRatios.reduce((s, r) => s + Math.log(r), 0) / ortRatios.length);
  console.log(`onnxruntime/deltatune, geometric mean over the ${ortRatios.length} cases: ${f3(geomean)}`);
  console.log("(other processes: the CPU the rest of the machine used while the case was timed, in cores; on this 2-core machine anything above ~0.05 slows the 2-thread engines unevenly)");

  console.log('');
  console.log("Logits: max abs difference from deltatune's (the timed model; 10 classes)");
  console.log("| model | batch | max abs logit | onnxruntime | PyTorch eager | the delta's effect (batch 16) |");
  console.log('|---|---:|---:|---|---:|---:|');
  for (const a of agreement) {
    const c = cases.find((k) => k.label === a.label)!;
    console.log(`| ${a.label} | ${a.batch} | ${f2(a.scale)} | ${e2(a.ort)}${a.ortRefs ? `; ${a.ortRefs}` : ''} | ${e2(a.torch)} | ${f2(c.deltaEffect)} |`);
  }
  console.log("(the delta's effect: max abs change of the logits against the same model with the delta at identity — Mona's project2 or LoRA's B zeroed)");

  const mona = cases[0]!.exported;
  const lora = cases[1]!.exported;
  const fileSize = (p: string) => statSync(p).size;
  console.log('');
  console.log('Sizes');
  console.log('| file | size |');
  console.log('|---|---:|');
  console.log(`| MobileNetV2 + Mona, one self-contained .onnx (fullBytes) | ${size(mona.fullBytes)} |`);
  console.log(`| MobileNetV2 base .bin, shared by every delta over this base (baseBytes) | ${size(mona.baseBytes)} |`);
  console.log(`| MobileNetV2 + Mona, delta-only .onnx: graph + Mona + head (graphBytes) | ${size(mona.graphBytes)} |`);
  console.log(`| the same Mona delta as deltatune's delta.safetensors (for comparison) | ${size(fileSize(join(dir, 'mona-delta.safetensors')))} |`);
  console.log(`| ResNet-50 + LoRA merged, one .onnx | ${size(lora.graphBytes)} |`);
  if (narrowMona) console.log(`| (context) MobileNetV2 + Mona hidden 16: delta-only .onnx / self-contained .onnx | ${size(narrowMona.graphBytes)} / ${size(narrowMona.fullBytes)} = ${f3(narrowMona.graphBytes / narrowMona.fullBytes)} |`);
  const downloadRatio = mona.graphBytes / mona.fullBytes;
  console.log(`delta-only download / whole model: ${f3(downloadRatio)}; export took ${cases.map((c) => `${(c.exportMs / 1000).toFixed(1)} s (${c.key})`).join(', ')}`);
  console.log(`RESULT onnx_vs_deltatune_latency=${f3(geomean)} onnx_maxdiff=${e2(onnxMaxDiff)} delta_download_vs_full=${f3(downloadRatio)}`);
}

try {
  await main();
} catch (err) {
  console.error(`bench:export failed: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
  torch.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
