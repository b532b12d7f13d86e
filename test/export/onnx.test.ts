// ONNX export: onnxruntime-node computes what deltatune computes, for every family and the main
// methods (merged, as nodes, split from the base), at opset 17 and 13 and in float16; ONNX's own
// checker accepts every file; a torchvision model exported by torch.onnx.export from the same
// weights agrees; bad input gets one clear message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import {
  ExportError, applyDelta, callOp, createModel, methodsFor, exportDeltaOnnx, exportOnnx, keep, manualSeed, noGrad, randn, readOnnxMeta, saveDelta, saveStateDict, tidy,
  type Tensor, type VisionModel,
} from '../../src/index.js';
import { ROOT } from '../helpers.js';

const PYTHON = '/usr/bin/python3';
let dir = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'deltatune-onnx-'));
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Small inputs per family: the exported graph is for this image size, with a dynamic batch. */
const FAMILIES: [model: string, size: number][] = [
  ['resnet18', 64],
  ['mobilenet_v2', 64],
  ['convnext_tiny', 64],
  ['swin_t', 64],
  ['vit_tiny_p4_32', 32],
];

/** The same base for every call (seed 0); `seed` picks the delta. */
function tuned(model: string, method: string, seed = 3): VisionModel {
  manualSeed(0);
  const m = createModel(model, { numClasses: 4 });
  manualSeed(seed);
  if (method !== 'none') {
    const delta = applyDelta(m, { method, numClasses: 4 });
    // As after training: every trained tensor moved away from its initial value (Mona's and LoRA's start as identities).
    noGrad(() => delta.trainableParameters().forEach((p) => tidy(() => void p.add_(randn(p.shape).mul(0.05)))));
  }
  return m.eval();
}

function ours(model: VisionModel, x: Tensor): Float32Array {
  return tidy(() => noGrad(() => model.eval().call(x).toArray() as Float32Array));
}

async function theirs(file: string, x: Tensor): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 2 });
  try {
    const out = await session.run({ image: new ort.Tensor('float32', x.toArray() as Float32Array, [...x.shape]) });
    return out.logits!.data as Float32Array;
  } finally {
    await session.release();
  }
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** ONNX's checker (python3-onnx), with shape inference, over files; throws with its message. */
function check(files: string[]): void {
  const script = 'import onnx, sys\nfor f in sys.argv[1:]:\n    onnx.checker.check_model(f, full_check=True)\n';
  const r = spawnSync(PYTHON, ['-c', script, ...files], { encoding: 'utf8' });
  assert.equal(r.status, 0, `onnx.checker rejected one of ${files.map((f) => basename(f)).join(', ')}: ${r.stderr}`);
}

for (const [family, size] of FAMILIES) {
  test(`${family}: onnxruntime gives deltatune's logits for fixed, lora (merged), bitfit, mona and adapter; the checker accepts every file`, { timeout: 300_000 }, async (t) => {
    const methods = ['fixed', 'lora', 'bitfit', 'mona', family === 'swin_t' || family.startsWith('vit') ? 'adapter' : 'conv-adapter'];
    if (family === 'mobilenet_v2') methods[4] = 'filter-atom'; // it has no k×k convolution beside which conv-adapter goes
    const files: string[] = [];
    for (const method of methods) {
      const model = tuned(family, method);
      const x = keep(randn([3, 3, size, size]));
      try {
        const expected = ours(model, x);
        const file = join(dir, `${family}-${method}.onnx`);
        const exported = exportOnnx({ model, preprocess: { size } }, { out: file, name: `${family}-${method}` });
        // 'fixed' trains the head only: its delta is in the graph as plain weights, as a merged one is.
        assert.equal(exported.meta.merged, ['fixed', 'lora', 'bitfit', 'filter-atom'].includes(method), `${method}: merged`);
        assert.ok(model.modules().every((m) => !m.training), `${method}: the model is left in eval mode`);
        const diff = maxDiff(expected, await theirs(file, x));
        t.diagnostic(`${family} + ${method}${exported.meta.merged ? ' (merged)' : ''}: max |Δ| ${diff.toExponential(2)}, ${(exported.graphBytes / 2 ** 20).toFixed(1)} MiB`);
        assert.ok(diff <= 1e-4, `${family} + ${method}: max |Δ| ${diff}`);
        files.push(file);
      } finally {
        x.dispose();
        model.dispose();
      }
    }
    check(files);
    for (const f of files) rmSync(f);
  });
}

test('every method the registry has, on a CNN and a transformer, exports and agrees with onnxruntime', { timeout: 300_000 }, async (t) => {
  for (const [family, size] of [['resnet18', 64], ['vit_tiny_p4_32', 32]] as const) {
    const methods = methodsFor(createModel(family, { numClasses: 4 }).config.kind);
    assert.ok(methods.length >= 10, `${family}: ${methods.join(', ')}`);
    const x = keep(randn([2, 3, size, size]));
    try {
      for (const method of methods) {
        const model = tuned(family, method);
        try {
          const expected = ours(model, x);
          const file = join(dir, `${family}-${method}-all.onnx`);
          exportOnnx({ model, preprocess: { size } }, { out: file });
          const diff = maxDiff(expected, await theirs(file, x));
          // 'full' moves every weight, so its logits reach thousands: the bound is relative to them.
          const scale = Math.max(1, ...Array.from(expected, Math.abs));
          t.diagnostic(`${family} + ${method}: max |Δ| ${diff.toExponential(2)} (logits up to ${scale.toPrecision(3)})`);
          assert.ok(diff <= 1e-4 * scale, `${family} + ${method}: max |Δ| ${diff} for logits up to ${scale}`);
          rmSync(file);
        } finally {
          model.dispose();
        }
      }
    } finally {
      x.dispose();
    }
  }
});

test('split export: the base tensors go to one shared file, each delta keeps kilobytes, and onnxruntime reads both', { timeout: 180_000 }, async (t) => {
  const x = keep(randn([2, 3, 64, 64]));
  const sub = mkdtempSync(join(dir, 'split-'));
  try {
    const results = [];
    for (const [method, seed] of [['mona', 1], ['mona', 2], ['bitfit', 3], ['lora', 4]] as const) {
      const model = tuned('mobilenet_v2', method, seed);
      const expected = ours(model, x);
      const trainedBytes = 4 * model.numParameters({ trainableOnly: true });
      // The output folder need not exist.
      const exported = exportOnnx({ model, preprocess: { size: 64 } }, { out: join(sub, 'deltas', `${method}-${seed}.onnx`), split: true, name: `${method}-${seed}` });
      model.dispose();
      const diff = maxDiff(expected, await theirs(exported.file, x));
      t.diagnostic(`${method} (seed ${seed}): delta ${(exported.graphBytes / 1024).toFixed(0)} KiB (trained tensors ${(trainedBytes / 1024).toFixed(0)} KiB), base ${(exported.baseBytes / 2 ** 20).toFixed(2)} MiB, whole ${(exported.fullBytes / 2 ** 20).toFixed(2)} MiB, max |Δ| ${diff.toExponential(2)}`);
      assert.ok(diff <= 1e-4, `${method}: max |Δ| ${diff}`);
      assert.equal(exported.meta.merged, false, 'a split export keeps the delta as nodes');
      assert.equal(statSync(exported.file).size, exported.graphBytes);
      // The delta file holds the trained tensors and the graph, none of the base's frozen ones.
      assert.ok(exported.graphBytes < trainedBytes + 96 * 1024, `${method}: ${exported.graphBytes} bytes for ${trainedBytes} bytes trained`);
      results.push(exported);
    }
    // Every delta of the base points at the same base file. MobileNetV2 is small (3.5 M parameters), so
    // Mona's default bottleneck (64) is ~13% of it; on larger backbones it is the paper's few percent.
    assert.equal(new Set(results.map((r) => r.baseWeightsFile)).size, 1);
    assert.ok(results[0]!.graphBytes / results[0]!.fullBytes < 0.15, `mona delta ${results[0]!.graphBytes} of ${results[0]!.fullBytes}`);
    check(results.map((r) => r.file));
    // The file's own metadata says where the base is and how to prepare images.
    const meta = readOnnxMeta(results[0]!.file);
    assert.equal(meta.baseWeightsFile, basename(results[0]!.baseWeightsFile!));
    assert.deepEqual(meta.classes, ['0', '1', '2', '3']);
    assert.equal(meta.preprocess.size, 64);
    assert.equal(meta.method, 'mona');
  } finally {
    x.dispose();
    rmSync(sub, { recursive: true, force: true });
  }
});

test('opset 13 (LayerNorm decomposed) and float16 weights: same logits (float16 within its precision), half the bytes', { timeout: 180_000 }, async (t) => {
  for (const family of ['convnext_tiny', 'vit_tiny_p4_32'] as const) {
    const size = family === 'convnext_tiny' ? 64 : 32;
    const model = tuned(family, 'mona');
    const x = keep(randn([2, 3, size, size]));
    try {
      const expected = ours(model, x);
      const e13 = exportOnnx({ model, preprocess: { size } }, { out: join(dir, `${family}-13.onnx`), opset: 13 });
      const d13 = maxDiff(expected, await theirs(e13.file, x));
      const e16 = exportOnnx({ model, preprocess: { size } }, { out: join(dir, `${family}-f16.onnx`), float16: true });
      const d16 = maxDiff(expected, await theirs(e16.file, x));
      const scale = Math.max(...expected.map(Math.abs));
      t.diagnostic(`${family}: opset 13 max |Δ| ${d13.toExponential(2)}; float16 max |Δ| ${d16.toExponential(2)} (logits up to ${scale.toFixed(2)}), ${(e16.graphBytes / e13.graphBytes).toFixed(3)} of the bytes`);
      assert.ok(d13 <= 1e-4, `opset 13: ${d13}`);
      assert.ok(d16 <= 2e-2 * Math.max(1, scale), `float16: ${d16}`);
      assert.ok(e16.graphBytes < 0.55 * e13.graphBytes, 'float16 halves the file');
      assert.ok(!readFileSync(e13.file).includes('LayerNormalization'), 'opset 13 has no LayerNormalization node');
      check([e13.file, e16.file]);
      rmSync(e13.file);
      rmSync(e16.file);
    } finally {
      x.dispose();
      model.dispose();
    }
  }
});

test('oracle: torch.onnx.export of torchvision\'s resnet18 and ours, from the same weights, agree in onnxruntime', { timeout: 180_000 }, async (t) => {
  manualSeed(5);
  const model = createModel('resnet18', { numClasses: 10 });
  const weights = join(dir, 'resnet18-oracle.safetensors');
  saveStateDict(weights, model.stateDict());
  const theirsFile = join(dir, 'resnet18-torch.onnx');
  // Debian has no python3-safetensors: the format is a length, a JSON header and raw bytes.
  const script = [
    'import json, struct, sys, torch, torchvision',
    "raw = open(sys.argv[1], 'rb').read()",
    "(n,) = struct.unpack('<Q', raw[:8])",
    "header = {k: v for k, v in json.loads(raw[8:8 + n]).items() if k != '__metadata__'}",
    "dtypes = {'F32': torch.float32, 'I64': torch.int64}",
    "state = {k: torch.frombuffer(bytearray(raw[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]]), dtype=dtypes[v['dtype']]).reshape(v['shape']) for k, v in header.items()}",
    'm = torchvision.models.resnet18(num_classes=10)',
    'm.load_state_dict(state)',
    'm.eval()',
    "torch.onnx.export(m, torch.zeros(1, 3, 64, 64), sys.argv[2], input_names=['image'], output_names=['logits'], dynamic_axes={'image': {0: 'batch'}}, opset_version=17)",
  ].join('\n');
  const r = spawnSync(PYTHON, ['-c', script, weights, theirsFile], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const oursFile = join(dir, 'resnet18-ours.onnx');
  exportOnnx({ model, preprocess: { size: 64 } }, { out: oursFile });
  const x = keep(randn([2, 3, 64, 64]));
  try {
    const a = await theirs(theirsFile, x);
    const b = await theirs(oursFile, x);
    const diff = maxDiff(a, b);
    t.diagnostic(`torch.onnx.export vs deltatune's exporter in onnxruntime: max |Δ| ${diff.toExponential(2)}`);
    assert.ok(diff <= 1e-4, `max |Δ| ${diff}`);
  } finally {
    x.dispose();
    model.dispose();
  }
});

test('bad input: an unsupported op names its module; truncated files and a wrong base are one clear message; nothing is half-written', { timeout: 120_000 }, async () => {
  // A module whose forward runs an op with no ONNX translation.
  const model = tuned('mobilenet_v2', 'fixed');
  const block = model.getSubmodule('features.3') as unknown as { forward: (x: Tensor) => Tensor };
  const original = block.forward.bind(block);
  block.forward = (x: Tensor) => callOp('aten::cumsum', [original(x), 1, null]) as Tensor;
  const out = join(dir, 'bad.onnx');
  assert.throws(() => exportOnnx({ model, preprocess: { size: 32 } }, { out }), (err: Error) => {
    assert.ok(err instanceof ExportError);
    assert.match(err.message, /^features\.3 \(InvertedResidual\): aten::cumsum has no ONNX translation/);
    return true;
  });
  assert.equal(existsSync(out), false, 'a failed export writes nothing');
  assert.throws(() => exportOnnx({ model }, { out: join(dir, 'x.onnx'), opset: 11 }), /opset 11 is not supported; use 13 or 17/);
  assert.throws(() => exportOnnx({ model }, { out: join(dir, 'x.pb') }), /must end in \.onnx/);
  model.dispose();

  // A file cut short, and a split file whose base was cut short.
  const whole = tuned('mobilenet_v2', 'mona');
  const split = exportOnnx({ model: whole, preprocess: { size: 32 } }, { out: join(dir, 'whole.onnx'), split: true });
  whole.dispose();
  const cut = join(dir, 'cut.onnx');
  copyFileSync(split.file, cut);
  truncateSync(cut, Math.floor(statSync(cut).size / 2));
  assert.throws(() => readOnnxMeta(cut), /cut\.onnx: not a whole ONNX model \(.*\); the file may be truncated/);
  writeFileSync(join(dir, 'empty.onnx'), '');
  assert.throws(() => readOnnxMeta(join(dir, 'empty.onnx')), /empty\.onnx: not a whole ONNX model/);
  truncateSync(split.baseWeightsFile!, 1000);
  assert.throws(() => readOnnxMeta(split.file), /lies beyond the end of mobilenet_v2-base-[0-9a-f]{12}\.bin .*truncated/);

  // A delta saved over one base, exported over another.
  manualSeed(7);
  const base = createModel('resnet18', { numClasses: 3 });
  const weights = join(dir, 'base.safetensors');
  saveStateDict(weights, base.stateDict());
  base.dispose();
  const m = createModel('resnet18', { weights });
  const delta = applyDelta(m, { method: 'mona' });
  saveDelta(delta, join(dir, 'mona-delta'), { classes: ['a', 'b', 'c'] });
  m.dispose();
  const other = createModel('resnet18', { numClasses: 3 });
  const otherWeights = join(dir, 'other.safetensors');
  saveStateDict(otherWeights, other.stateDict());
  other.dispose();
  assert.throws(() => exportDeltaOnnx(join(dir, 'mona-delta'), { out: join(dir, 'm.onnx'), weights: otherWeights }), /base/i);
  assert.equal(existsSync(join(dir, 'm.onnx')), false);
});

test('deltatune export: a run\'s delta to .onnx (and --split), with a one-line summary; bad flags are one line', { timeout: 180_000 }, async () => {
  manualSeed(8);
  const base = createModel('mobilenet_v2', { numClasses: 3 });
  const weights = join(dir, 'mnv2.safetensors');
  saveStateDict(weights, base.stateDict());
  base.dispose();
  const m = createModel('mobilenet_v2', { weights });
  const delta = applyDelta(m, { method: 'mona' });
  noGrad(() => delta.trainableParameters().forEach((p) => tidy(() => void p.add_(randn(p.shape).mul(0.05)))));
  const run = join(dir, 'my-run');
  saveDelta(delta, join(run, 'best'), { classes: ['cat', 'dog', 'fox'], preprocess: { size: 32, train: false } });
  const x = keep(randn([2, 3, 32, 32]));
  const expected = ours(m, x);
  m.dispose();
  const cli = (args: string[]) => spawnSync(process.execPath, [join(ROOT, 'dist', 'src', 'cli', 'main.js'), ...args], { encoding: 'utf8', env: { ...process.env, DELTATUNE_THREADS: '2' } });
  try {
    const out = join(dir, 'cli.onnx');
    let r = cli(['export', '--delta', run, '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^exported mobilenet_v2 \+ mona 'my-run' \(as graph nodes\) to .*cli\.onnx: opset 17, [\d.]+ MiB\n$/);
    assert.ok(maxDiff(expected, await theirs(out, x)) <= 1e-4);
    assert.deepEqual(readOnnxMeta(out).classes, ['cat', 'dog', 'fox']);
    r = cli(['export', '--delta', run, '--out', out]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^deltatune: --out .*cli\.onnx already exists; pass --force to replace it\n$/);
    r = cli(['export', '--delta', run, '--out', join(dir, 'cli-split.onnx'), '--split', '--opset', '13']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /opset 13, [\d.]+ [KM]iB; base tensors in .*mobilenet_v2-base-[0-9a-f]{12}\.bin \([\d.]+ MiB, shared by the deltas of this base; a whole model is [\d.]+ MiB\)/);
    assert.ok(maxDiff(expected, await theirs(join(dir, 'cli-split.onnx'), x)) <= 1e-4);
    r = cli(['export', '--delta', run, '--out', join(dir, 'y.onnx'), '--opset', '15']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--opset must be 13 or 17, got 15/);
    r = cli(['export', '--delta', run]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /give --out FILE\.onnx \(or --web DIR for a page\)/);
  } finally {
    x.dispose();
  }
});
