// The child process of the hostile-input suite (`node dist/test/hostile/worker.js`, forked by
// harness.ts). It builds the baselines once (shared through HOSTILE_ROOT), loads libtorch once,
// then runs the cases the parent sends over IPC one at a time: builds the case's files, hashes
// them, tells the parent where they are, runs the reader and judges what came back. Crashes,
// hangs, memory and changed files are the parent's to see.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import {
  CsvList, DataLoader, ImageFiles, type Tensor, type VisionModel, applyDelta, attachedDelta, createModel, evalTransform, firstNonFinite, keep, loadPeftLora,
  loadStateDict, loadTuned, manualSeed, memoryStats, noGrad, randn, runOptions, saveDelta, savePeftLora, saveStateDict, tidy, uniform_,
} from '../../src/index.js';
import { resolveTransform } from '../../src/data/transforms.js';
import { ST_DTYPE, strictStHeader } from './formats.js';
import { type Baselines, type BuiltCase, type CaseSpec, type Expect, type ImageFormat, type ImageRef, type KnownFile, buildCase, describeCase, weightBaselines } from './generate.js';
import { hashTree, type FromWorker, type ToWorker, type Verdict } from './harness.js';

const ROOT = process.env.HOSTILE_ROOT!;
const SEED = Number(process.env.HOSTILE_SEED ?? 1);
const send = (m: FromWorker) => process.send!(m);

sharp.cache(false);
sharp.concurrency(1);

// ---------------------------------------------------------------------------------------------
// Baselines

const CLASSES = ['cat', 'dog', 'emu'];
const IMG_SIZE = 32;

async function pattern(seed: number, channels: 1 | 3): Promise<sharp.Sharp> {
  const w = 40;
  const px = Buffer.alloc(w * w * channels);
  let s = seed * 7919 + 1;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    px[i] = (((i / channels) % w) * 5 + Math.floor(i / channels / w) * 3 + ((s >> 8) % 60)) & 0xff;
  }
  return sharp(px, { raw: { width: w, height: w, channels } });
}

/** Writes the shared baseline folder (once per run; the first worker builds, the others wait). */
async function buildBaselineDir(dir: string): Promise<void> {
  mkdirSync(join(dir, 'images'), { recursive: true });
  writeFileSync(join(dir, 'images', 'png'), await (await pattern(1, 3)).png().toBuffer());
  writeFileSync(join(dir, 'images', 'jpeg'), await (await pattern(2, 3)).jpeg({ quality: 90 }).toBuffer());
  writeFileSync(join(dir, 'images', 'webp'), await (await pattern(3, 3)).webp({ quality: 80 }).toBuffer());
  writeFileSync(join(dir, 'images', 'gray'), await (await pattern(4, 1)).png().toBuffer());
  writeFileSync(join(dir, 'images', 'gif'), await (await pattern(5, 3)).gif().toBuffer());

  // A LoRA delta of the small ViT with non-zero values everywhere (so every tensor shows in the logits).
  manualSeed(0);
  const vit = createModel('vit_tiny_p4_32', { numClasses: 3 });
  const basePath = join(dir, 'vit-base.safetensors');
  saveStateDict(basePath, vit.stateDict());
  vit.config.weightsFile = basePath;
  const delta = applyDelta(vit, { method: 'lora', numClasses: 3 });
  for (const p of delta.trainableParameters()) uniform_(p, -0.05, 0.05);
  saveDelta(delta, join(dir, 'delta'), { classes: CLASSES, preprocess: { ...evalTransform(IMG_SIZE) } });
  delta.dispose();
  vit.dispose();
  const base = readFileSync(basePath);
  writeFileSync(join(dir, 'truncated-base.safetensors'), base.subarray(0, base.length >> 1));

  // A PEFT adapter of resnet18 (convolution LoRA).
  manualSeed(1);
  const rn = createModel('resnet18', { numClasses: 3 });
  const d2 = applyDelta(rn, { method: 'lora', numClasses: 3 });
  for (const p of d2.trainableParameters()) uniform_(p, -0.05, 0.05);
  savePeftLora(d2, join(dir, 'peft'));
  d2.dispose();
  rn.dispose();

  // A run's config.json as the trainer writes it: the tune options, classes, method and train options.
  const train = { epochs: 3, lr: 0.003, optimizer: 'adamw', weightDecay: 0.05, momentum: 0.9, nesterov: false, warmupEpochs: 0, minLr: 0, labelSmoothing: 0, clipGrad: 0, accumulate: 1, patience: 0, checkpointEvery: 100, seed: 0 };
  const config = {
    tune: {
      model: 'vit_tiny_p4_32', weights: basePath, method: 'lora', methodOptions: { rank: 8 }, out: join(dir, 'run'), data: join(dir, 'data', 'list.csv'),
      imageSize: IMG_SIZE, batchSize: 8, seed: 0, augment: 'default', onBadImage: 'skip', valSplit: 0.1, epochs: 3, lr: 0.003, optimizer: 'adamw', labelSmoothing: 0.1,
    },
    classes: CLASSES,
    method: 'lora',
    methodConfig: { rank: 8, alpha: 1, dropout: 0, targets: 'encoder\\.layers\\.encoder_layer_\\d+\\.self_attention' },
    model: 'vit_tiny_p4_32',
    train,
  };
  mkdirSync(join(dir, 'run'));
  writeFileSync(join(dir, 'run', 'config.json'), JSON.stringify(config, null, 2) + '\n');
  writeFileSync(join(dir, 'READY'), '');
}

async function baselines(): Promise<Baselines> {
  const dir = join(ROOT, 'baseline');
  let builder = false;
  try {
    mkdirSync(dir);
    builder = true;
  } catch {
    // another worker builds it
  }
  if (builder) await buildBaselineDir(dir);
  for (let waited = 0; !existsSync(join(dir, 'READY')); waited += 100) {
    if (waited > 240_000) throw new Error(`the baseline in ${dir} never became ready`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const images = Object.fromEntries((['png', 'jpeg', 'webp', 'gray', 'gif'] as const).map((k) => [k, readFileSync(join(dir, 'images', k))])) as Record<ImageFormat, Buffer>;
  return {
    dir, ...weightBaselines(), images,
    delta: { json: readFileSync(join(dir, 'delta', 'delta.json'), 'utf8'), st: readFileSync(join(dir, 'delta', 'delta.safetensors')) },
    peft: { json: readFileSync(join(dir, 'peft', 'adapter_config.json'), 'utf8'), st: readFileSync(join(dir, 'peft', 'adapter_model.safetensors')) },
    config: { json: readFileSync(join(dir, 'run', 'config.json'), 'utf8') },
  };
}

// ---------------------------------------------------------------------------------------------
// Readers, run as a program would call them

interface Loaded {
  /** dataset-level facts (CSV) */
  classes?: string[];
  rows?: { path: string; label: number }[];
  /** dataset index → normalised pixels delivered */
  delivered: Map<number, Float32Array>;
  warnings: string[];
}

let input: Tensor;
let peftModel: VisionModel | null = null;

function getPeftModel(): VisionModel {
  if (!peftModel) {
    manualSeed(2);
    peftModel = createModel('resnet18', { numClasses: 3 });
    peftModel.eval();
  }
  return peftModel;
}

/** The model's logits for the fixed input (in a tidy: a forward's intermediates are not the reader's leak). */
function logitsOf(model: VisionModel): Float32Array {
  return tidy(() => noGrad(() => model.forward(input).toArray() as Float32Array));
}

const finiteArray = (a: Float32Array) => a.every(Number.isFinite);

async function loadImages(ds: ImageFiles | CsvList, mode: 'fail' | 'skip', limit = 64): Promise<Loaded> {
  const warnings: string[] = [];
  const delivered = new Map<number, Float32Array>();
  const loader = new DataLoader(ds, {
    batchSize: 4, transform: evalTransform(IMG_SIZE), shuffle: false, onBadImage: mode, concurrency: 2, onWarning: (m) => warnings.push(m),
  });
  for await (const batch of loader.epoch(0)) {
    try {
      const px = batch.images.toArray() as Float32Array;
      const per = px.length / batch.indices.length;
      batch.indices.forEach((i, k) => delivered.set(i, px.slice(k * per, (k + 1) * per)));
    } finally {
      batch.dispose();
    }
    if (delivered.size >= limit) break;
  }
  return { delivered, warnings };
}

interface Refs {
  images: Record<ImageRef, Float32Array>;
  delta: DeltaSummary;
  peft: Float32Array;
  config: string;
}

interface DeltaSummary {
  classes: unknown;
  numClasses: unknown;
  headOut: number;
  preprocess: unknown;
  logits: Float32Array;
  nonFinite: string | null;
}

/** The reader accepted the input, but using what it returned failed. */
class PostLoadError extends Error {}

function afterLoad<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new PostLoadError(err instanceof Error ? err.message : String(err));
  }
}

function summariseTuned(dir: string): DeltaSummary {
  const tuned = loadTuned(dir);
  try {
    return afterLoad(() => ({
      classes: tuned.classes, numClasses: tuned.manifest.numClasses, headOut: tuned.delta.head.outFeatures, preprocess: tuned.preprocess,
      logits: logitsOf(tuned.model), nonFinite: firstNonFinite(tuned.delta.stateDict()),
    }));
  } finally {
    tuned.dispose();
  }
}

function runPeft(dir: string): { logits: Float32Array; headOut: number; nonFinite: string | null } {
  const model = getPeftModel();
  const delta = loadPeftLora(model, dir);
  try {
    return afterLoad(() => {
      model.eval();
      return { logits: logitsOf(model), headOut: delta.head.outFeatures, nonFinite: firstNonFinite(delta.stateDict()) };
    });
  } finally {
    delta.dispose();
    if (attachedDelta(model)) {
      // Something stayed attached: start the next case from a fresh model.
      model.dispose();
      peftModel = null;
    }
  }
}

async function references(b: Baselines): Promise<Refs> {
  const files = (['png', 'jpeg', 'webp', 'gray'] as const).map((k) => {
    const p = join(ROOT, `ref-${process.pid}.${k}`);
    writeFileSync(p, b.images[k]);
    return p;
  });
  const loaded = await loadImages(new ImageFiles(files, ['x']), 'fail');
  files.forEach((f) => rmSync(f));
  const images = Object.fromEntries((['png', 'jpeg', 'webp', 'gray'] as const).map((k, i) => [k, loaded.delivered.get(i)!])) as Record<ImageRef, Float32Array>;
  const peft = runPeft(join(b.dir, 'peft')).logits;
  return { images, delta: summariseTuned(join(b.dir, 'delta')), peft, config: canonicalOptions(runOptions(join(b.dir, 'run')), join(b.dir, 'run')) };
}

// ---------------------------------------------------------------------------------------------
// Judging

const firstLine = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
/** Shortened, with control characters (a NUL in a path, say) escaped so logs stay text. */
const short = (s: string, n = 400) => {
  // eslint-disable-next-line no-control-regex
  const t = s.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return t.length > n ? `${t.slice(0, n)}…` : t;
};

/** JSON with object keys sorted: equal for values that differ only in key order. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x));
}

function clear(err: unknown, culprits: string[]): boolean {
  return err instanceof Error && culprits.some((c) => firstLine(err).includes(c));
}

function rejected(expect: Expect, err: unknown, culprits: string[]): Verdict {
  if (err instanceof PostLoadError) return { status: 'silent_wrong', falseReject: false, accepted: true, detail: short(`loaded, but using the result failed: ${err.message}`) };
  const msg = short(err instanceof Error ? err.message.split('\n').slice(0, 3).join(' | ') : `non-Error thrown: ${String(err)}`);
  if (expect === 'accept') return { status: 'silent_wrong', falseReject: true, accepted: false, detail: `rejected a neutral edit: ${msg}` };
  if (!clear(err, culprits)) return { status: 'unclear', falseReject: false, accepted: false, detail: `message does not name ${culprits[0]}: ${msg}` };
  return { status: 'ok', falseReject: false, accepted: false, detail: msg };
}

const ok = (detail: string): Verdict => ({ status: 'ok', falseReject: false, accepted: true, detail });
const wrong = (detail: string): Verdict => ({ status: 'silent_wrong', falseReject: false, accepted: true, detail: short(detail) });

function sameArray(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

const WRAPPERS = ['module.', '_orig_mod.'];
function stripped(names: string[]): Map<string, string> {
  let cur = names.map((n) => [n, n] as [string, string]);
  for (;;) {
    const p = WRAPPERS.find((w) => cur.length > 0 && cur.every(([, k]) => k.startsWith(w)));
    if (!p) return new Map(cur.map(([orig, k]) => [k, orig]));
    cur = cur.map(([orig, k]) => [orig, k.slice(p.length)]);
  }
}

function tensorBytes(t: Tensor): Buffer {
  const a = t.toArray() as ArrayBufferView;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function judgeWeights(built: BuiltCase & { target: { kind: 'weights' } }): Verdict {
  const { target, culprits, spec } = built;
  let sd: Map<string, Tensor>;
  try {
    sd = loadStateDict(target.path);
  } catch (err) {
    return rejected(spec.expect, err, culprits);
  }
  try {
    if (spec.expect === 'reject') return wrong(`accepted ${sd.size} tensors: ${[...sd.keys()].slice(0, 5).join(', ')}`);
    if (sd.size > 10_000 && spec.expect === 'either') {
      const dtypes = new Set([...new Set(sd.values())].map((t) => t.dtype));
      return ok(`loaded ${sd.size} entries (${new Set(sd.values()).size} distinct tensors; ${[...dtypes].join(', ')})`);
    }
    const got = new Map([...sd].map(([k, t]) => [k, { dtype: t.dtype, shape: [...t.shape], bytes: tensorBytes(t) }]));
    for (const [k, v] of got) {
      if (v.dtype === 'bool' && v.bytes.some((x) => x > 1)) return wrong(`bool tensor '${k}' holds a byte > 1`);
    }
    if (spec.expect === 'accept') {
      const exp = target.expected!;
      if (got.size !== exp.size || ![...exp.keys()].every((k) => got.has(k))) return wrong(`tensor names ${[...got.keys()].join(',')} != ${[...exp.keys()].join(',')}`);
      for (const [k, e] of exp) {
        const g = got.get(k)!;
        if (g.dtype !== ST_DTYPE[e.dtype] || g.shape.join() !== e.shape.join()) return wrong(`'${k}' is ${g.dtype}[${g.shape}] not ${ST_DTYPE[e.dtype]}[${e.shape}]`);
        if (e.bytes && !g.bytes.equals(e.bytes)) return wrong(`'${k}' values differ from the file's`);
      }
      return ok(`same ${got.size} tensors`);
    }
    // either: what was loaded must be what the file says
    if (got.size > 10_000) return ok(`loaded ${got.size} tensors (too many to compare one by one)`);
    if (target.format === 'st') {
      const bytes = readFileSync(target.path);
      const h = strictStHeader(bytes);
      if (!h.ok) return wrong(`accepted a header that is not valid: ${h.why}`);
      const names = stripped(h.entries.map((e) => e.name));
      if (names.size !== got.size || ![...got.keys()].every((k) => names.has(k))) return wrong(`loaded names ${[...got.keys()].join(',')} != header's ${[...names.keys()].join(',')}`);
      for (const [k, g] of got) {
        const e = h.entries.find((x) => x.name === names.get(k))!;
        if (g.dtype !== ST_DTYPE[e.code] || g.shape.join() !== e.shape.join()) return wrong(`'${k}' loaded as ${g.dtype}[${g.shape}], header says ${e.code}[${e.shape}]`);
        if (!g.bytes.equals(bytes.subarray(h.dataStart + e.begin, h.dataStart + e.end))) return wrong(`'${k}' values are not the bytes at its offsets`);
      }
    }
    return ok(`loaded ${got.size} consistent tensors`);
  } finally {
    for (const t of new Set(sd.values())) t.dispose();
  }
}

/** Images and CSV lists: what was delivered, skipped and refused against each file's expectation. */
async function judgeImages(built: BuiltCase & { target: { kind: 'images' | 'csv' } }): Promise<Verdict> {
  const { target, culprits, spec } = built;
  const mode = target.mode;
  let ds: ImageFiles | CsvList;
  try {
    ds = target.kind === 'images' ? new ImageFiles(target.files, ['x']) : new CsvList(target.path);
  } catch (err) {
    return rejected(target.kind === 'csv' ? target.listExpect : 'accept', err, culprits);
  }
  const listExpect: Expect = target.kind === 'csv' ? target.listExpect : 'accept';
  if (listExpect === 'reject') return wrong(`CsvList accepted the list: ${ds.length} rows, ${ds.classes.length} classes`);
  if (target.kind === 'csv') {
    if (ds.classes.some((c) => typeof c !== 'string')) return wrong('a class name is not a string');
    for (let i = 0; i < ds.length; i++) if (!(ds.label(i) >= 0 && ds.label(i) < ds.classes.length)) return wrong(`row ${i} has label ${ds.label(i)} outside ${ds.classes.length} classes`);
    const exp = target.expectedList;
    if (exp) {
      if (ds.classes.length !== exp.classes.length || ds.classes.join('\n') !== exp.classes.join('\n')) return wrong(`classes ${ds.classes.slice(0, 5).join(',')} (${ds.classes.length}) != ${exp.classes.slice(0, 5).join(',')} (${exp.classes.length})`);
      const rows = Array.from({ length: ds.length }, (_, i) => `${ds.source(i)}=${ds.label(i)}`).join('\n');
      if (rows !== exp.rows.map((r) => `${r.path}=${r.label}`).join('\n')) return wrong(`rows differ: ${short(rows, 200)}`);
    }
  }
  const knownOf = (i: number): KnownFile => target.known[ds.source(i)] ?? { expect: 'either' };
  const rows = Array.from({ length: Math.min(ds.length, 64) }, (_, i) => ({ i, path: ds.source(i), k: knownOf(i) }));
  let loaded: Loaded;
  try {
    loaded = await loadImages(ds, mode);
  } catch (err) {
    if (mode === 'skip') return { ...rejected('accept', err, culprits), detail: `threw although onBadImage is 'skip': ${short(firstLine(err))}` };
    const bad = rows.filter((r) => r.k.expect !== 'accept');
    if (bad.length === 0) return rejected('accept', err, culprits);
    return rejected(bad.some((r) => r.k.expect === 'reject') ? 'reject' : 'either', err, [...bad.map((r) => r.path), ...culprits]);
  }
  const problems: string[] = [];
  let unclear = '';
  for (const { i, path, k } of rows) {
    const px = loaded.delivered.get(i);
    if (px && !finiteArray(px)) problems.push(`${path} delivered non-finite pixels`);
    if (k.expect === 'reject' && px) problems.push(`${path} was delivered (${mode}), it should be refused`);
    if (k.expect === 'accept') {
      if (!px) problems.push(`${path} was not delivered`);
      else if (k.ref && !sameArray(px, refs.images[k.ref])) problems.push(`${path} decoded differently from the baseline ${k.ref}`);
    }
    if (!px && k.expect !== 'accept' && mode === 'skip' && !loaded.warnings.some((w) => w.split('\n')[0]!.includes(path))) {
      unclear = `skipped ${path} without a warning naming it (warnings: ${short(loaded.warnings.join(' | '), 200)})`;
    }
  }
  if (mode === 'fail' && rows.some((r) => r.k.expect === 'reject') && problems.length === 0) problems.push('nothing was refused');
  if (problems.length) {
    const falseReject = problems.some((p) => p.endsWith('was not delivered')) && !problems.some((p) => p.includes('should be refused'));
    return { status: 'silent_wrong', falseReject: falseReject && spec.expect !== 'reject', accepted: true, detail: short(problems.join('; ')) };
  }
  if (unclear) return { status: 'unclear', falseReject: false, accepted: true, detail: unclear };
  return ok(`delivered ${loaded.delivered.size} of ${ds.length}, ${loaded.warnings.length} warnings`);
}

/** runOptions' result with `out` (the run folder itself, wherever it now is) made comparable across folders. */
function canonicalOptions(opts: unknown, runDir: string): string {
  if (!opts || typeof opts !== 'object') return canonical(opts);
  const o = opts as Record<string, unknown>;
  return canonical({ ...o, out: o.out === resolve(runDir) || o.out === join(ROOT, 'baseline', 'run') ? '<the run folder>' : o.out });
}

function checkTuneOptions(o: Record<string, unknown>): string | null {
  const str = (k: string) => (typeof o[k] === 'string' && (o[k] as string).length > 0 ? null : `${k} is ${JSON.stringify(o[k])}`);
  const int = (k: string, lo: number, hi: number, optional = true) =>
    o[k] === undefined && optional ? null : Number.isInteger(o[k]) && (o[k] as number) >= lo && (o[k] as number) <= hi ? null : `${k} is ${JSON.stringify(o[k])}`;
  const num = (k: string, lo: number, hi: number, optional = true) =>
    o[k] === undefined && optional ? null : typeof o[k] === 'number' && Number.isFinite(o[k]) && (o[k] as number) >= lo && (o[k] as number) <= hi ? null : `${k} is ${JSON.stringify(o[k])}`;
  return (
    str('model') ?? str('method') ?? str('data') ?? str('out') ?? int('epochs', 1, 1e9, false) ?? num('lr', 0, 1e9, false) ?? int('batchSize', 1, 1e9) ??
    int('imageSize', 8, 8192) ?? int('seed', 0, 2 ** 32) ?? num('valSplit', 0, 0.999999) ?? num('labelSmoothing', 0, 0.999999) ?? num('momentum', 0, 1) ??
    int('workers', 1, 1e6) ?? (o.optimizer === undefined || ['adamw', 'sgd'].includes(o.optimizer as string) ? null : `optimizer is ${JSON.stringify(o.optimizer)}`) ??
    (o.onBadImage === undefined || ['skip', 'fail'].includes(o.onBadImage as string) ? null : `onBadImage is ${JSON.stringify(o.onBadImage)}`)
  );
}

function judgeManifest(built: BuiltCase & { target: { kind: 'delta' | 'peft' | 'config' } }): Verdict {
  const { target, culprits, spec } = built;
  if (target.kind === 'config') {
    let opts: unknown;
    try {
      opts = runOptions(target.dir);
    } catch (err) {
      return rejected(spec.expect, err, culprits);
    }
    const json = canonicalOptions(opts, target.dir);
    if (spec.expect === 'reject') return wrong(`runOptions accepted it: ${short(json, 200)}`);
    if (spec.expect === 'accept') {
      const want = target.expected?.options ? canonicalOptions({ ...target.expected.options, out: resolve(target.dir) }, target.dir) : refs.config;
      return json === want ? ok('same options') : wrong(`options differ: ${short(json, 300)} (expected ${short(want, 300)})`);
    }
    const problem = typeof opts === 'object' && opts !== null ? checkTuneOptions(opts as Record<string, unknown>) : 'not an object';
    return problem ? wrong(`accepted options with ${problem}`) : ok('valid options');
  }
  if (target.kind === 'peft') {
    let r: ReturnType<typeof runPeft>;
    try {
      r = runPeft(target.dir);
    } catch (err) {
      return rejected(spec.expect, err, culprits);
    }
    if (spec.expect === 'reject') return wrong(`loaded: head ${r.headOut} outputs`);
    if (r.nonFinite) return wrong(`loaded a non-finite tensor '${r.nonFinite}'`);
    if (spec.expect === 'accept' && !sameArray(r.logits, refs.peft)) return wrong('logits differ from the baseline adapter\'s');
    return ok(`loaded, head ${r.headOut}`);
  }
  let s: DeltaSummary;
  try {
    s = summariseTuned(target.dir);
  } catch (err) {
    return rejected(spec.expect, err, culprits);
  }
  if (spec.expect === 'reject') return wrong(`loaded: ${s.headOut} outputs, classes ${short(JSON.stringify(s.classes), 80)}`);
  const classes = s.classes as unknown[];
  if (!Array.isArray(classes) || !classes.every((c) => typeof c === 'string' && c.length > 0)) return wrong(`classes ${short(JSON.stringify(classes), 80)}`);
  if (classes.length !== s.numClasses || s.numClasses !== s.headOut) return wrong(`classes.length ${classes.length}, numClasses ${String(s.numClasses)}, head ${s.headOut} disagree`);
  if (!s.preprocess || typeof s.preprocess !== 'object') return wrong('no preprocess');
  try {
    resolveTransform({ ...(s.preprocess as object), train: false } as never, 'preprocess');
  } catch (err) {
    return wrong(`preprocess is not usable: ${firstLine(err)}`);
  }
  if (s.nonFinite) return wrong(`loaded a non-finite tensor '${s.nonFinite}'`);
  if (spec.expect === 'accept') {
    const r = refs.delta;
    const exp = target.expected;
    if (canonical(s.classes) !== canonical(exp?.classes ?? r.classes)) return wrong(`classes ${short(JSON.stringify(s.classes), 120)} are not the manifest's`);
    if (exp?.preprocess) {
      const got = s.preprocess as Record<string, unknown>;
      const off = Object.entries(exp.preprocess).find(([k, v]) => canonical(got[k]) !== canonical(v));
      if (off) return wrong(`preprocess.${off[0]} is ${short(JSON.stringify(got[off[0]]), 60)}, the manifest says ${short(JSON.stringify(off[1]), 60)}`);
    } else if (canonical(s.preprocess) !== canonical(r.preprocess)) return wrong('preprocess differs from the baseline');
    if (!sameArray(s.logits, r.logits)) return wrong('logits differ from the baseline delta\'s');
    return ok('same delta');
  }
  return ok(`loaded, ${s.headOut} classes`);
}

async function judge(built: BuiltCase): Promise<Verdict> {
  const t = built.target;
  switch (t.kind) {
    case 'weights': return judgeWeights(built as BuiltCase & { target: typeof t });
    case 'images': case 'csv': return judgeImages(built as BuiltCase & { target: typeof t });
    default: return judgeManifest(built as BuiltCase & { target: typeof t });
  }
}

// ---------------------------------------------------------------------------------------------
// Self-test: cases that misbehave on purpose, to show the parent sees each kind of failure

function selfTestSpec(id: string): CaseSpec {
  return { id, reader: 'weights', category: 'harness self-test', name: id.slice('selftest:'.length), expect: 'either' };
}

async function selfTest(id: string, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'input.bin');
  writeFileSync(file, 'input');
  send({ type: 'start', id, spec: selfTestSpec(id), dir, before: hashTree(dir) });
  switch (id.slice('selftest:'.length)) {
    case 'hang':
      setInterval(() => {}, 1000);
      await new Promise(() => {});
      break;
    case 'segv': process.kill(process.pid, 'SIGSEGV'); break;
    case 'abort': process.abort(); break;
    case 'throw-later': setTimeout(() => { throw new Error('thrown outside any reader call'); }, 10); await new Promise(() => {}); break;
    case 'overmem': {
      const hold: Buffer[] = [];
      for (let i = 0; i < 40; i++) {
        hold.push(Buffer.alloc(64 << 20, 1));
        await new Promise((r) => setTimeout(r, 30));
      }
      break;
    }
    case 'write': writeFileSync(file, 'changed'); break;
  }
  send({ type: 'result', id, verdict: { status: 'ok', falseReject: false, accepted: true, detail: 'self-test' }, ms: 0, leaked: 0 });
}

// ---------------------------------------------------------------------------------------------
// The loop

let refs: Refs;
let current: string | null = null;

function fatal(kind: string, err: unknown): never {
  const message = err instanceof Error ? `${err.message}\n${err.stack ?? ''}` : String(err);
  try {
    send({ type: 'fatal', id: current, message: `${kind}: ${short(message, 2000)}` });
  } catch {
    // the channel may be gone
  }
  setTimeout(() => process.exit(70), 50);
  throw err;
}

process.on('uncaughtException', (err) => fatal('uncaught exception', err));
process.on('unhandledRejection', (err) => fatal('unhandled rejection', err));

async function main(): Promise<void> {
  let b: Baselines;
  try {
    b = await baselines();
    manualSeed(123);
    input = keep(randn([2, 3, IMG_SIZE, IMG_SIZE]));
    refs = await references(b);
  } catch (err) {
    send({ type: 'fatal', id: null, message: `baseline: ${err instanceof Error ? err.stack ?? err.message : String(err)}` });
    process.exit(71);
  }
  const queue: ToWorker[] = [];
  let wake: (() => void) | null = null;
  process.on('message', (m: ToWorker) => {
    queue.push(m);
    wake?.();
  });
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready', pid: process.pid });
  for (;;) {
    while (queue.length === 0) await new Promise<void>((r) => (wake = r));
    const msg = queue.shift()!;
    if (msg.type === 'quit') break;
    current = msg.id;
    const dir = join(ROOT, 'cases', msg.id.replace(':', '-'));
    if (msg.id.startsWith('selftest:')) {
      await selfTest(msg.id, dir);
      current = null;
      continue;
    }
    const t0 = performance.now();
    let built: BuiltCase;
    try {
      mkdirSync(dir, { recursive: true });
      built = await buildCase(msg.id, SEED, b, dir);
    } catch (err) {
      send({ type: 'start', id: msg.id, spec: describeCase(msg.id, SEED), dir, before: {} });
      send({ type: 'result', id: msg.id, verdict: { status: 'harness_error', falseReject: false, accepted: null, detail: `generator failed: ${err instanceof Error ? err.stack : String(err)}` }, ms: 0, leaked: 0 });
      continue;
    }
    send({ type: 'start', id: msg.id, spec: built.spec, dir, before: hashTree(dir) });
    const handles = memoryStats().liveHandles;
    let verdict: Verdict;
    try {
      verdict = await judge(built);
    } catch (err) {
      verdict = { status: 'harness_error', falseReject: false, accepted: null, detail: `judge failed: ${err instanceof Error ? err.stack : String(err)}` };
    }
    const ms = performance.now() - t0;
    const leaked = memoryStats().liveHandles - handles;
    if (process.memoryUsage().rss > 600 * 2 ** 20) (globalThis as { gc?: () => void }).gc?.();
    send({ type: 'result', id: msg.id, verdict, ms, leaked });
    current = null;
  }
  process.exit(0);
}

if (statSync(ROOT, { throwIfNoEntry: false })?.isDirectory()) void main();
else {
  console.error(`worker: HOSTILE_ROOT ${ROOT} is not a folder`);
  process.exit(2);
}
