// The demo's backbone: resnet18 pretrained from scratch on Fashion-MNIST, made once per recipe
// (image size, epochs, seed) and cached. The experiments and the compute benchmark use the 32×32,
// two-epoch recipe their reports were made with; the demo uses a lighter one (DEMO_RECIPE) so the
// main job fits ten minutes on a 2-core machine without AVX-512 (docs/performance.md#the-demo).
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { readJsonFile, z } from '../io/json.js';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createModel } from '../models/index.js';
import { loadDelta } from '../delta/index.js';
import { saveStateDict } from '../io/state-dict.js';
import { writeFileAtomic } from '../io/atomic.js';
import { tune } from '../train/run.js';
import type { ProgressMode } from '../train/progress.js';
import type { ExperimentBase } from './runner.js';

export const DEMO_MODEL = 'resnet18';
/** Image side of the experiments' backbone and transfer task. */
export const DEMO_SIZE = 32;

/** What `deltatune demo` runs by default. */
export const DEMO_RECIPE = { imageSize: 28, pretrainEpochs: 1, epochs: 3 } as const;

/** The demo's transfer task from a backbone file: MNIST, batch 64, short warm-up. */
export function demoTransfer(backbone: string, epochs: number, imageSize: number = DEMO_SIZE): ExperimentBase {
  return { model: DEMO_MODEL, weights: backbone, data: 'mnist', imageSize, batchSize: 64, epochs, warmupEpochs: 0.3 };
}

export function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'deltatune');
}

export interface BackboneOptions {
  cache?: string;
  epochs?: number;
  /** Image side for pretraining (default DEMO_SIZE). */
  imageSize?: number;
  seed?: number;
  /** Where the pretraining run goes (it is removed and redone if the backbone must be made). */
  workDir: string;
  progress?: ProgressMode;
  say?: (line: string) => void;
}

/** The path of the pretrained backbone (made now if not cached) and one line about it. */
export async function demoBackbone(o: BackboneOptions): Promise<{ path: string; note: string; reused: boolean }> {
  const cache = o.cache ?? defaultCacheDir();
  const epochs = o.epochs ?? 2;
  const seed = o.seed ?? 0;
  const size = o.imageSize ?? DEMO_SIZE;
  const say = o.say ?? (() => {});
  mkdirSync(cache, { recursive: true });
  const path = join(cache, `${DEMO_MODEL}-fashion-mnist-${size}px-e${epochs}-s${seed}.safetensors`);
  if (existsSync(path) && existsSync(`${path}.json`)) {
    // JSON has no NaN: a backbone without a test score stores null.
    const info = readJsonFile(`${path}.json`, z.looseObject({ top1: z.number().nullable() }), 'cached backbone record');
    return { path, note: `reused ${path} (Fashion-MNIST test top-1 ${info.top1 === null ? '-' : `${info.top1.toFixed(2)}%`})`, reused: true };
  }
  say(`pretraining ${DEMO_MODEL} on Fashion-MNIST (60,000 images, ${size}x${size}, ${epochs} epoch${epochs === 1 ? '' : 's'}); cached in ${cache}`);
  rmSync(o.workDir, { recursive: true, force: true });
  const result = await tune({
    model: DEMO_MODEL, method: 'full', data: 'fashion-mnist', imageSize: size, batchSize: 128, epochs,
    lr: 2e-3, warmupEpochs: Math.min(0.5, epochs), seed, out: o.workDir, progress: o.progress ?? 'quiet',
  });
  // Full fine-tuning trained every weight: the tuned network is the backbone file.
  const model = createModel(DEMO_MODEL, { weights: join(o.workDir, 'base.safetensors') });
  try {
    const delta = loadDelta(model, join(o.workDir, 'last'));
    saveStateDict(path, model.stateDict(), { pretrained_on: 'fashion-mnist', model: DEMO_MODEL }); // atomic: temp file, fsync, rename
    delta.dispose();
  } finally {
    model.dispose();
  }
  const top1 = result.final?.top1 ?? NaN;
  writeFileAtomic(`${path}.json`, Buffer.from(JSON.stringify({ top1, seconds: result.seconds, epochs }, null, 2) + '\n'));
  return { path, note: `pretrained in ${result.seconds.toFixed(0)} s, Fashion-MNIST test top-1 ${top1.toFixed(2)}%`, reused: false };
}
