// One call from "a model, a method and some images" to a trained delta in a run directory — the
// API under `deltatune train`: the run folder's policy (new, resumed, replaced, cleaned after a
// kill), the base, the loaders and transforms, and reading a run's options back for --resume.
// Loading a tuned model back for eval, predict and merge is in tuned.ts.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { cpuHasNativeBfloat16, manualSeed } from '../engine/index.js';
import { saveStateDict } from '../io/state-dict.js';
import { OutputFolder, OutputRefusedError, checkNotPseudoFilesystem, isInside } from '../io/output.js';
import { fileSha256 } from '../delta/files.js';
import { effectiveMethodOptions, readRunConfig, type DataFingerprint } from './run-config.js';
import { packageVersion } from '../version.js';
import { configWithWeights, createModel, listModels, modelConfig } from '../models/index.js';
import { isWeightsName, resolveWeights } from '../hub/index.js';
import type { ModelConfig, VisionModel } from '../models/base.js';
import { BatchNorm2d } from '../nn/index.js';
import { applyDelta, listMethods, type Delta, type DeltaSummary, type FrozenPrecision } from '../delta/index.js';
import { DataLoader, evalTransform, trainTransform, type Dataset, type TransformOptions } from '../data/index.js';
import { BUILTIN_DATA, absoluteDataSpec, openData, type DataOptions, type DataSplit } from '../data/spec.js';
import { Trainer, type TrainOptions, type TrainResult } from './trainer.js';
import { PrefixCache, type PrefixCacheInfo } from './prefix-cache.js';
import { createProgress, type ProgressMode } from './progress.js';
import type { DataParallel } from './distributed.js';

export interface TuneOptions extends DataOptions, Omit<TrainOptions, 'runConfig' | 'deltaInfo' | 'seed'> {
  model: string;
  /**
   * Pretrained weights: a file, or a name ('resnet50.IMAGENET1K_V2', 'hf-hub:timm/...'; downloaded
   * into the hub cache if missing, and their mean, std, input size and crop become the model's).
   * Without any, the model starts from a seeded random init, saved into the run as base.safetensors.
   */
  weights?: string;
  method: string;
  methodOptions?: Record<string, unknown>;
  out: string;
  progress?: ProgressMode;
  /**
   * Compute the frozen prefix of the backbone (the layers before the first one the delta trains)
   * once per image and train only the rest. Needs training images that do not change between
   * epochs (no random augmentation or mixing); CNN families only.
   */
  cacheFrozenPrefix?: boolean;
  /**
   * Run the frozen convolutions that pay for it in bfloat16 (Delta.setFrozenPrecision): faster on
   * CPUs with AMX or AVX512-BF16 (docs/performance.md#frozen-convolutions-in-bfloat16). The
   * trained parameters, and so the delta file, stay float32. Default float32.
   */
  frozenPrecision?: FrozenPrecision;
  /**
   * Data-parallel runs: BatchNorm layers that train normalise with the statistics of the global
   * batch (torch.nn.SyncBatchNorm) instead of each rank's own. Off by default, as in DDP.
   */
  syncBatchNorm?: boolean;
}

/** Whether a run trains channels-last: the option if given, else the model config's memory format. */
export function usesChannelsLast(options: Pick<TuneOptions, 'model' | 'channelsLast'>): boolean {
  return options.channelsLast ?? modelConfig(options.model).memoryFormat === 'channelsLast';
}

const TRAIN_KEYS = [
  'epochs', 'lr', 'optimizer', 'weightDecay', 'momentum', 'nesterov', 'warmupEpochs', 'minLr', 'labelSmoothing', 'clipGrad',
  'accumulate', 'patience', 'checkpointEvery',
] as const;

function pickTrainOptions(options: TuneOptions): Omit<TrainOptions, 'seed'> {
  const out: Record<string, unknown> = {};
  for (const k of TRAIN_KEYS) if (options[k] !== undefined) out[k] = options[k];
  return out as unknown as Omit<TrainOptions, 'seed'>;
}

/**
 * The transforms a run uses, recorded in its deltas so predict prepares images the same way. The
 * input size (unless `imageSize` is given) and the normalisation come from the model's config when
 * `model` is given (tune passes it), else 224 and ImageNet's.
 */
export function runTransforms(
  options: DataOptions,
  arrays: boolean,
  model?: Pick<ModelConfig, 'inputSize' | 'mean' | 'std' | 'cropPct'>,
): { train: TransformOptions; eval: TransformOptions } {
  const size = options.imageSize ?? model?.inputSize[2] ?? 224;
  if (!(Number.isInteger(size) && size >= 8)) throw new RangeError(`imageSize must be an integer ≥ 8, got ${size}`);
  const jitter = options.colorJitter ?? 0;
  const norm = model ? { mean: [...model.mean] as [number, number, number], std: [...model.std] as [number, number, number] } : {};
  const crop = model?.cropPct !== undefined ? { cropPct: model.cropPct } : {};
  const evalT = evalTransform(size, { ...norm, ...crop, ...(arrays ? { cropPct: 1 } : {}) });
  const augment = options.augment ?? 'default';
  if (augment !== 'default' && augment !== 'none') throw new Error(`augment must be 'default' or 'none', got '${String(augment)}'`);
  const trainT =
    augment === 'none'
      ? { ...evalT, train: false }
      : arrays
        ? // Digits and garments in fixed 28×28 frames: no crops and no flips (a flipped 2 is not a 2).
          trainTransform(size, { ...norm, randomResizedCrop: false, hflip: 0, ...(jitter ? { colorJitter: { brightness: jitter, contrast: jitter } } : {}) })
        : trainTransform(size, { ...norm, ...(jitter ? { colorJitter: { brightness: jitter, contrast: jitter, saturation: jitter } } : {}) });
  return { train: trainT, eval: evalT };
}

/**
 * The run's loaders; with `shard`, this rank's share: training padded so every rank takes the same
 * steps (DistributedSampler), validation unpadded so every image counts once.
 */
export function makeLoaders(
  split: DataSplit,
  options: DataOptions,
  t: { train: TransformOptions; eval: TransformOptions } = runTransforms(options, split.arrays),
  warn?: (message: string) => void,
  shard?: { rank: number; worldSize: number },
): { train: DataLoader; val: DataLoader | null } {
  const batchSize = options.batchSize ?? 32;
  const common = {
    seed: options.seed ?? 0,
    onBadImage: options.onBadImage ?? 'fail',
    ...(options.workers ? { concurrency: options.workers } : {}),
    ...(options.channelsLast ? { channelsLast: true } : {}),
    ...(warn ? { onWarning: warn } : {}),
  } as const;
  return {
    train: new DataLoader(split.train, {
      ...common,
      batchSize,
      transform: t.train,
      shuffle: true,
      mixup: options.mixup,
      cutmix: options.cutmix,
      numClasses: split.classes.length,
      ...(shard ? { shard } : {}),
    }),
    val: split.val ? new DataLoader(split.val, { ...common, batchSize, transform: t.eval, shuffle: false, ...(shard ? { shard: { ...shard, pad: false } } : {}) }) : null,
  };
}

function checkNames(model: string, method: string): void {
  if (!listModels().includes(model)) throw new Error(`unknown model '${model}'; available: ${listModels().join(', ')}`);
  if (!listMethods().includes(method)) throw new Error(`unknown method '${method}'; available: ${listMethods().join(', ')}`);
}

/** The base a run tunes: the given weights, or a seeded random init saved once into the run. */
function prepareBase(options: TuneOptions, runDir: string, writes: boolean): VisionModel {
  if (options.weights) return createModel(options.model, { weights: options.weights });
  const basePath = join(runDir, 'base.safetensors');
  manualSeed(options.seed ?? 0);
  // The other ranks of a data-parallel run get rank 0's base by broadcast (the trainer's start).
  if (!writes) return createModel(options.model);
  if (existsSync(basePath)) return createModel(options.model, { weights: basePath });
  const model = createModel(options.model);
  saveStateDict(basePath, model.stateDict());
  model.config.weightsFile = basePath;
  return model;
}

/** How tune() treats the run folder in `options.out`: start anew, replace, or resume. */
export interface TuneControl {
  /** Continue the run in `options.out` from its state file. */
  resume?: boolean;
  /** Replace a run already in `options.out` (never one whose files this run reads). */
  force?: boolean;
  /** On resume, go on even though the data list differs from the one the run started with. */
  allowDataChange?: boolean;
  /**
   * Train as one rank of a data-parallel group (DataParallel.fromEnvironment()). `batchSize` stays
   * the global batch: each rank takes batchSize / worldSize images per step. Only rank 0 touches
   * the run folder; every rank needs the data (and named weights in its cache) at the same paths.
   */
  parallel?: DataParallel;
}

const RUN_FILES = ['config.json', 'metrics.jsonl', 'summary.json', 'state.safetensors', 'base.safetensors', 'best', 'last'];
/** Temporary names our own writers use in a run folder (delta swaps, atomic writes, a run set aside). */
const RUN_TEMP = /^\.(best|last)\.(tmp|old)$|^\..+\.\d+\.[0-9a-f]+\.tmp$|^\.replaced\.\d+\.tmp$/;
const isRunEntry = (name: string) => RUN_FILES.includes(name) || RUN_TEMP.test(name);

/**
 * The output policy for a new run: the folder must be new, hold nothing but dot-files, hold a start
 * that never reached a checkpoint, or (with force) an earlier run whose files this run does not
 * read; it may not lie inside the data it reads. Returns the earlier run's entries to replace.
 */
function checkRunFolder(runDir: string, options: TuneOptions, force: boolean): string[] {
  checkNotPseudoFilesystem(runDir, '--out');
  if (existsSync(runDir) && !statSync(runDir).isDirectory()) throw new OutputRefusedError(`--out ${runDir} is a file, not a run folder`);
  const reads = [options.weights, options.data, options.valData].filter((r): r is string => Boolean(r) && !BUILTIN_DATA.includes(r!));
  for (const read of reads) {
    if (existsSync(read) && statSync(read).isDirectory() && isInside(runDir, read)) {
      throw new OutputRefusedError(`--out ${runDir} is inside ${read}, which this run reads; write the run somewhere else`);
    }
  }
  if (!existsSync(runDir)) return [];
  const entries = readdirSync(runDir);
  const foreign = entries.filter((e) => !isRunEntry(e) && !e.startsWith('.'));
  if (foreign.length) {
    throw new OutputRefusedError(`--out ${runDir} holds other files (${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', ...' : ''}); give a new or empty folder`);
  }
  const earlier = entries.filter(isRunEntry);
  if (earlier.length === 0) return [];
  // A start killed before its first checkpoint saved nothing worth keeping: it is simply replaced.
  if (existsSync(join(runDir, 'state.safetensors')) && !force) {
    throw new OutputRefusedError(`${runDir} already holds a run; resume it (--resume ${runDir}), pass --force to replace it, or choose another --out`);
  }
  for (const read of reads) {
    if (isInside(read, runDir)) throw new OutputRefusedError(`replacing the run in ${runDir} would delete ${read}, which this run reads; write the run somewhere else`);
  }
  return earlier;
}

/**
 * Moves an earlier run's entries into a hidden folder inside the run folder, so a new start that
 * fails before its first checkpoint can put them back; `discard()` deletes them once it no longer can.
 */
function setAside(runDir: string, entries: string[]): { restore(): void; discard(): void } {
  const aside = join(runDir, `.replaced.${process.pid}.tmp`);
  mkdirSync(aside);
  for (const e of entries) renameSync(join(runDir, e), join(aside, e));
  return {
    restore() {
      for (const e of readdirSync(aside)) renameSync(join(aside, e), join(runDir, e));
      rmSync(aside, { recursive: true, force: true });
    },
    discard() {
      rmSync(aside, { recursive: true, force: true });
    },
  };
}

/** Removes what a killed process left half-written in a run folder, and restores a delta folder caught mid-swap. */
function cleanRunFolder(runDir: string): void {
  for (const which of ['best', 'last']) {
    const old = join(runDir, `.${which}.old`);
    // Killed between the two renames of a delta folder swap: the previous copy is the complete one.
    if (existsSync(old) && !existsSync(join(runDir, which))) renameSync(old, join(runDir, which));
  }
  for (const name of readdirSync(runDir)) if (RUN_TEMP.test(name)) rmSync(join(runDir, name), { recursive: true, force: true });
}

/**
 * A fingerprint of the data a run sees: per split, the number of samples and a sha256 over each
 * sample's path (relative to the data spec), file size and label. A dataset edited between a kill
 * and a resume changes it.
 */
export function dataFingerprint(split: DataSplit, options: Pick<DataOptions, 'data' | 'valData'>): DataFingerprint {
  const one = (ds: Dataset, spec: string | undefined) => {
    const root = spec && !BUILTIN_DATA.includes(spec) ? (existsSync(spec) && statSync(spec).isDirectory() ? resolve(spec) : dirname(resolve(spec))) : null;
    const hash = createHash('sha256');
    for (let i = 0; i < ds.length; i++) {
      const source = ds.source(i);
      let size = -1;
      if (root) {
        try {
          size = statSync(source).size;
        } catch {
          // A missing file changes the fingerprint through its size.
        }
      }
      hash.update(`${root ? relative(root, source) : source}\t${size}\t${ds.label(i)}\n`);
    }
    return { count: ds.length, sha256: hash.digest('hex') };
  };
  return { train: one(split.train, options.data), val: split.val ? one(split.val, options.valData ?? options.data) : null, classes: [...split.classes] };
}

function describeDataChange(then: DataFingerprint, now: DataFingerprint): string {
  // (A change of classes is refused before this is asked.)
  const parts: string[] = [];
  if (then.train.count !== now.train.count) parts.push(`training images ${then.train.count} -> ${now.train.count}`);
  else if (then.train.sha256 !== now.train.sha256) parts.push('training files changed (names or sizes)');
  if ((then.val?.count ?? 0) !== (now.val?.count ?? 0)) parts.push(`validation images ${then.val?.count ?? 0} -> ${now.val?.count ?? 0}`);
  else if (then.val?.sha256 !== now.val?.sha256) parts.push('validation files changed (names or sizes)');
  return parts.join(', ');
}

/**
 * Trains a delta: opens the data, builds the base, applies the method, trains and writes the run
 * directory (config.json, metrics.jsonl, summary.json, best/ and last/ deltas, state.safetensors).
 * With `resume`, continues that run exactly. A new run never replaces an existing one unless
 * `force`; a start that fails before the first checkpoint removes what it created.
 */
export async function tune(options: TuneOptions, control: TuneControl = {}): Promise<TrainResult & { classes: readonly string[]; summary: DeltaSummary; prefixCache: PrefixCacheInfo | null }> {
  checkNames(options.model, options.method);
  const runDir = resolve(options.out);
  // Absolute paths: a run resumes from any working directory.
  options = {
    ...options,
    out: runDir,
    data: absoluteDataSpec(options.data),
    ...(options.valData ? { valData: absoluteDataSpec(options.valData) } : {}),
    ...(options.weights && !isWeightsName(options.weights) ? { weights: resolve(options.weights) } : {}),
  };
  const parallel = control.parallel && control.parallel.worldSize > 1 ? control.parallel : null;
  const writes = !parallel || parallel.isMain;
  const worldSize = parallel?.worldSize ?? 1;
  const globalBatch = options.batchSize ?? 32;
  if (globalBatch % worldSize !== 0) {
    throw new Error(`the batch (${globalBatch}) must be divisible by the world size (${worldSize}): each rank takes batch / world size images per step`);
  }
  let replaced: string[] = [];
  if (!writes) {
    // Rank 0 alone checks and owns the run folder.
  } else if (control.resume) {
    if (!existsSync(join(runDir, 'state.safetensors'))) throw new Error(`${runDir}: no state.safetensors to resume from (the run never saved a checkpoint); start it again`);
  } else {
    replaced = checkRunFolder(runDir, options, control.force === true);
  }
  const progress = createProgress(writes ? (options.progress ?? 'auto') : 'quiet');
  // Named weights are fetched now (createModel, later, only reads the cache); they bring their preprocessing.
  const mode = options.progress ?? 'auto';
  const base = options.weights
    ? await resolveWeights(options.weights, { model: options.model, progress: mode === 'json' ? 'quiet' : mode })
    : null;
  const split = openData(options);
  const fingerprint = dataFingerprint(split, options);
  const weightsSha256 = base ? fileSha256(base.path) : null;
  if (parallel) {
    // Refused at the start, not discovered as a hang or a shape error in the first allreduce.
    await parallel.checkSameConfig({
      model: options.model,
      method: options.method,
      methodOptions: options.methodOptions ?? {},
      training: { ...pickTrainOptions(options), seed: options.seed ?? 0, batchSize: globalBatch },
      data: Object.fromEntries(
        Object.entries(options).filter(([k]) => !['model', 'method', 'methodOptions', 'out', 'data', 'valData', 'weights', 'progress', 'workers', 'seed', 'batchSize', ...TRAIN_KEYS].includes(k)),
      ),
      dataFingerprint: fingerprint,
      weights: weightsSha256,
      worldSize,
      resume: control.resume === true,
      version: packageVersion(),
    });
  }
  if (control.resume && writes) {
    const saved = readRunConfig(runDir);
    if (saved.fingerprints) {
      const change = describeDataChange(saved.fingerprints.data, fingerprint);
      if (saved.fingerprints.data.classes.join('\n') !== fingerprint.classes.join('\n')) {
        throw new Error(`${runDir}: the classes changed since the run started (${saved.fingerprints.data.classes.length} -> ${fingerprint.classes.length}); a run cannot change its head, start a new one`);
      }
      if (change && !control.allowDataChange) {
        throw new Error(`${runDir}: the data changed since the run started (${change}); resuming would mix two datasets. Pass --allow-data-change to go on anyway, or start a new run`);
      }
      if (change) progress.message(`warning: the data changed since the run started (${change}); going on as --allow-data-change asks`);
      if (saved.fingerprints.weights !== weightsSha256) {
        throw new Error(`${runDir}: the base weights ${options.weights ?? ''} changed since the run started (sha256 ${saved.fingerprints.weights ?? 'none'} -> ${weightsSha256 ?? 'none'}); resuming would train on another base`);
      }
    }
    cleanRunFolder(runDir);
  }
  const config = base?.name ? configWithWeights(modelConfig(options.model), base.name, base.config) : modelConfig(options.model);
  const transforms = runTransforms(options, split.arrays, config);
  const channelsLast = usesChannelsLast(options);
  // Every image skipped as undecodable is reported (also under --quiet) and listed in summary.json.
  const skipped = new Set<string>();
  const warn = (m: string) => {
    if (m.startsWith('skipping ') && skipped.size < 10_000) skipped.add(m.slice('skipping '.length));
    progress.message(`warning: ${m}`);
  };
  const loaders = makeLoaders(
    split,
    { ...options, channelsLast, batchSize: globalBatch / worldSize },
    transforms,
    warn,
    parallel ? { rank: parallel.rank, worldSize } : undefined,
  );
  // An earlier run is replaced only now, when the new one's data opened; until the first checkpoint it can come back.
  let aside = replaced.length ? setAside(runDir, replaced) : null;
  const folder = writes ? new OutputFolder(runDir).prepare() : null;
  if (control.resume) folder?.commit();
  let model: VisionModel | undefined;
  let delta: Delta | undefined;
  try {
    model = prepareBase(options, runDir, writes);
    manualSeed(options.seed ?? 0);
    delta = applyDelta(model, { method: options.method, numClasses: split.classes.length, ...(options.methodOptions ?? {}) });
    if (channelsLast) model.toMemoryFormat('channelsLast');
    if (options.frozenPrecision && options.frozenPrecision !== 'float32') {
      const low = delta.setFrozenPrecision(options.frozenPrecision);
      progress.message(`frozen convolutions in ${options.frozenPrecision}: ${low.length ? low.join(', ') : 'none of this model qualifies'}`);
      if (low.length && cpuHasNativeBfloat16() === false) {
        progress.message('warning: this CPU lists neither amx_bf16 nor avx512_bf16 (/proc/cpuinfo), so bfloat16 convolutions are emulated and likely slower than float32');
      }
    }
    if (parallel && options.syncBatchNorm) {
      const norms = model.modules().filter((m): m is BatchNorm2d => m instanceof BatchNorm2d);
      for (const bn of norms) bn.crossReplicaSum = (t) => parallel.group.allreduceSumDifferentiable(t);
      const training = norms.filter((bn) => bn.weight?.requiresGrad).length;
      progress.message(`sync-bn: ${training} of ${norms.length} BatchNorm layers train, with the statistics of the global batch`);
    }
    const summary = delta.summary();
    progress.message(
      `${options.method} on ${options.model}: ${summary.trainable.toLocaleString('en-US')} of ${summary.total.toLocaleString('en-US')} parameters train ` +
        `(${summary.percent.toFixed(2)}%); ${split.train.length} training images, ${split.val?.length ?? 0} validation, ${split.classes.length} classes`,
    );
    let cache: PrefixCache | null = null;
    if (options.cacheFrozenPrefix) {
      cache = await PrefixCache.build(delta, loaders.train, loaders.val, { channelsLast, progress });
      const c = cache.info;
      progress.message(
        `cached the frozen prefix (${c.cachedSteps} steps, through ${c.cachedThrough}): features [${c.featureShape.join(', ')}] per image, ` +
          `${(c.bytes / 2 ** 20).toFixed(1)} MiB, ${c.seconds.toFixed(1)} s`,
      );
    }
    const trainer = new Trainer(
      delta,
      cache ? cache.train : loaders.train,
      cache ? cache.val : loaders.val,
      runDir,
      {
        ...pickTrainOptions(options),
        seed: options.seed ?? 0,
        ...(cache ? { forward: cache.forward, setupSeconds: cache.info.seconds } : {}),
        summaryInfo: {
          delta: { ...summary, byModuleType: undefined },
          prefixCache: cache?.info ?? null,
          get skippedImages() {
            return [...skipped];
          },
        },
        // Presentation (progress) is not part of the run: a resume may report differently.
        runConfig: {
          tune: { ...options, progress: undefined },
          classes: split.classes,
          fingerprints: { data: fingerprint, weights: weightsSha256 },
          pathsFromRun: pathsFromRun(runDir, options),
          version: packageVersion(),
          ...(parallel ? { worldSize } : {}),
        },
        ...(parallel ? { parallel } : {}),
        deltaInfo: { classes: split.classes, preprocess: { ...transforms.eval } },
      },
      progress,
    );
    try {
      const result = await trainer.fit({ resume: control.resume });
      return { ...result, classes: split.classes, summary, prefixCache: cache?.info ?? null };
    } finally {
      cache?.dispose();
    }
  } catch (err) {
    // A start that never reached its first checkpoint leaves nothing behind, and gives back what it replaced.
    if (writes && !existsSync(join(runDir, 'state.safetensors'))) {
      folder?.rollback();
      aside?.restore();
      aside = null;
    }
    throw err;
  } finally {
    aside?.discard();
    delta?.dispose();
    model?.dispose();
  }
}

/** Reads the options a run was started with, for `--resume`; the run's folder is where it is now (it may have moved). */
export function runOptions(runDir: string): TuneOptions {
  const config = readRunConfig(runDir);
  if (!config.tune) throw new Error(`${join(runDir, 'config.json')}: has no 'tune' options to resume with`);
  const options = { ...(config.tune as TuneOptions), methodOptions: effectiveMethodOptions(config) as TuneOptions['methodOptions'], out: resolve(runDir) };
  // A project moved whole (data and runs together): paths relative to the run folder still hold.
  // The fingerprints checked by tune() make sure they lead to the same data and weights.
  for (const key of ['data', 'valData', 'weights'] as const) {
    const saved = options[key];
    const fromRun = config.pathsFromRun?.[key];
    if (saved && !BUILTIN_DATA.includes(saved) && !existsSync(saved) && fromRun && existsSync(resolve(runDir, fromRun))) {
      options[key] = resolve(runDir, fromRun);
    }
  }
  return options;
}

/** The run's data and weights paths relative to its folder, for a resume after the whole project moved. */
function pathsFromRun(runDir: string, options: TuneOptions): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of ['data', 'valData', 'weights'] as const) {
    const v = options[key];
    if (v && !BUILTIN_DATA.includes(v) && !(key === 'weights' && isWeightsName(v))) out[key] = relative(runDir, v);
  }
  return out;
}
