// A tuned model: a base with a saved delta loaded onto it (from a run's best/ or last/, or any
// delta folder), for eval, predict and merge; the base is found by the sha256 the delta recorded.
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { noGrad, tidy, type Tensor } from '../engine/index.js';
import { fileSha256 } from '../delta/files.js';
import { createModel, listModels } from '../models/index.js';
import { isWeightsName } from '../hub/index.js';
import type { VisionModel } from '../models/base.js';
import { loadDelta, readDeltaManifest, type Delta, type DeltaManifest } from '../delta/index.js';
import { DataLoader, ImageFiles, type TransformOptions } from '../data/index.js';
import { openOne } from '../data/spec.js';
import { resolveTransform } from '../data/transforms.js';
import { evaluate } from './trainer.js';
import type { EvalMetrics } from './metrics.js';
import { createProgress, type ProgressMode, type ProgressSink } from './progress.js';

export interface Tuned {
  model: VisionModel;
  delta: Delta;
  manifest: DeltaManifest;
  classes: string[];
  preprocess: TransformOptions;
  dispose(): void;
}

/**
 * Where a delta's base weights are: `weights` if given, else the path recorded in the manifest,
 * else the recorded file name next to the delta or its run folder (a run folder that moved keeps
 * its base.safetensors beside best/ and last/). Candidates are confirmed by their sha256.
 */
function findBase(deltaDir: string, manifest: DeltaManifest, weights: string | undefined): string | undefined {
  if (weights) {
    // A weights name is looked up in the hub cache by createModel (which names the fetch command if it is missing).
    if (!existsSync(weights) && !isWeightsName(weights)) throw new Error(`--weights ${weights}: no such file`);
    return weights;
  }
  const { weightsFile, sha256, path } = manifest.base;
  if (!weightsFile || !sha256) return undefined;
  const candidates = [path, join(deltaDir, weightsFile), join(dirname(resolve(deltaDir)), weightsFile)].filter((c): c is string => Boolean(c));
  for (const c of candidates) {
    try {
      if (fileSha256(c) === sha256) return c;
    } catch {
      // missing or unreadable candidates are skipped; the error below names what was tried
    }
  }
  throw new Error(
    `${deltaDir}: cannot find the base weights ${weightsFile} (sha256 ${sha256.slice(0, 12)}...); looked at ${candidates.join(', ')}. Pass the file with --weights`,
  );
}

/**
 * The delta folder `path` names: a delta folder, its delta.json or delta.safetensors, or a run
 * folder (its best/ delta, else last/). `what` names the flag in errors.
 */
export function findDelta(path: string, what: string): string {
  if (!existsSync(path)) throw new Error(`${what} ${path}: no such file or folder`);
  if (!statSync(path).isDirectory()) {
    if (basename(path) === 'delta.json' || basename(path) === 'delta.safetensors') return dirname(path);
    throw new Error(`${what} ${path}: not a delta (give a delta folder, its delta.json, or a run folder)`);
  }
  if (existsSync(join(path, 'delta.json'))) return path;
  for (const which of ['best', 'last']) if (existsSync(join(path, which, 'delta.json'))) return join(path, which);
  throw new Error(`${what} ${path}: neither a delta folder (no delta.json) nor a run folder with a saved delta (no best/ or last/)`);
}

/** Loads a base and a saved delta onto it (the base from `weights`, else where the delta recorded it). */
export function loadTuned(deltaDir: string, options: { weights?: string; ignoreBaseMismatch?: boolean } = {}): Tuned {
  const manifest = readDeltaManifest(deltaDir);
  const manifestPath = join(deltaDir, 'delta.json');
  const preprocess = manifest.preprocess as unknown as TransformOptions;
  resolveTransform({ ...preprocess, train: false }, `${manifestPath}: field 'preprocess'`);
  if (!listModels().includes(manifest.model)) throw new Error(`${manifestPath}: field 'model': unknown model '${manifest.model}'`);
  const weights = findBase(deltaDir, manifest, options.weights);
  let model: VisionModel;
  try {
    model = createModel(manifest.model, weights ? { weights } : {});
  } catch (err) {
    // Most often the manifest's model and the base disagree: name both.
    throw new Error(`${manifestPath}: field 'model' is '${manifest.model}', but its base ${weights ?? '(random init)'} does not load into it: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
  try {
    const delta = loadDelta(model, deltaDir, { ignoreBaseMismatch: options.ignoreBaseMismatch });
    model.eval();
    return {
      model, delta, manifest, classes: manifest.classes, preprocess,
      dispose() {
        delta.dispose();
        model.dispose();
      },
    };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

/** Evaluates a tuned model on data (same forms as train's --data; folders with a split use their validation part). */
export async function evaluateTuned(
  tuned: Tuned,
  data: string,
  options: { batchSize?: number; onBadImage?: 'skip' | 'fail'; progress?: ProgressMode | ProgressSink } = {},
): Promise<EvalMetrics> {
  const ds = openOne(data, 'data');
  if (ds.classes.length !== tuned.classes.length) {
    throw new Error(`data '${data}' has ${ds.classes.length} classes (${ds.classes.join(', ')}); the delta was trained on ${tuned.classes.length} (${tuned.classes.join(', ')})`);
  }
  const progress = sink(options.progress);
  const loader = new DataLoader(ds, {
    batchSize: options.batchSize ?? 32, transform: { ...tuned.preprocess, train: false }, shuffle: false, onBadImage: options.onBadImage ?? 'fail',
    onWarning: (m) => progress.message(`warning: ${m}`),
  });
  try {
    return await evaluate(tuned.delta, loader, tuned.delta.head.outFeatures, undefined, progress.task('evaluating', loader.batchesPerEpoch, 'batches'));
  } finally {
    if (progress !== options.progress) progress.close();
  }
}

/** A progress sink from a mode (quiet when none is given: the API reports nothing unless asked). */
function sink(progress: ProgressMode | ProgressSink | undefined): ProgressSink {
  return typeof progress === 'object' ? progress : createProgress(progress ?? 'quiet');
}

export interface Prediction {
  source: string;
  top: { label: string; index: number; probability: number }[];
}

/** Per row of `logits` [B, classes], the k most probable classes (softmax), most probable first. Call it inside tidy. */
export function topClasses(logits: Tensor, k: number, classes: readonly string[], rows = logits.size(0)): Prediction['top'][] {
  const top = logits.softmax(1).topk(k, { dim: 1 });
  const p = top.values.toNumbers();
  const idx = top.indices.toNumbers();
  return Array.from({ length: rows }, (_, row) =>
    Array.from({ length: k }, (_, j) => ({ index: idx[row * k + j]!, label: classes[idx[row * k + j]!]!, probability: p[row * k + j]! })),
  );
}

/** Top-k predictions for image files, prepared exactly as the delta's evaluation transform. */
export async function predictFiles(tuned: Tuned, files: string[], topK = 5, batchSize = 16, progress?: ProgressMode | ProgressSink): Promise<Prediction[]> {
  const k = Math.min(topK, tuned.classes.length);
  const loader = new DataLoader(new ImageFiles(files, tuned.classes), { batchSize, transform: { ...tuned.preprocess, train: false }, shuffle: false, onBadImage: 'fail' });
  const out: Prediction[] = [];
  const model = tuned.model;
  model.eval();
  const reporter = sink(progress);
  const task = reporter.task('predicting', files.length, 'images');
  try {
    for await (const batch of loader.epoch(0)) {
      try {
        // tidy: the forward's intermediates are freed here, not left to the finalizer.
        noGrad(() => tidy(() => {
          const tops = topClasses(model.forward(batch.images), k, tuned.classes);
          batch.indices.forEach((fileIndex, row) => out.push({ source: files[fileIndex]!, top: tops[row]! }));
        }));
      } finally {
        batch.dispose();
      }
      task.update(out.length);
    }
  } finally {
    task.end();
    if (reporter !== progress) reporter.close();
  }
  return out;
}
