// The trainer's resume state: the delta's tensors, the optimizer's state and where the run stands
// (epoch, batch, optimizer step, partial epoch sums, history, best score), in ONE safetensors file
// written atomically, so a process killed at any moment leaves either the previous state or the
// new one, never a mix.
import { existsSync } from 'node:fs';
import { noGrad, type Tensor } from '../engine/index.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';

const FORMAT = 'deltatune.train-state';

export interface EpochRecord {
  epoch: number;
  lr: number;
  trainLoss: number;
  trainTop1: number;
  val?: { loss: number; top1: number; top5: number; perClass: number[] };
  seconds: number;
  imagesPerSecond: number;
  dataWaitFraction: number;
}

/** Where a run stands: enough to continue exactly. */
export interface TrainProgress {
  /** The epoch in progress (0-based). */
  epoch: number;
  /** The next batch of that epoch. */
  batch: number;
  /** Optimizer steps taken so far. */
  step: number;
  /** Sums over the epoch's batches so far, so a resumed epoch reports the same figures. */
  epochSums: { loss: number; correct: number; samples: number; seconds: number; waitMs: number };
  history: EpochRecord[];
  best: { epoch: number; top1: number } | null;
  epochsWithoutImprovement: number;
  finished: boolean;
}

export interface TrainState {
  progress: TrainProgress;
  delta: Map<string, Tensor>;
  optimizer: { tensors: Map<string, Tensor>; steps: Record<string, number> };
}

export function saveTrainState(path: string, state: TrainState): void {
  const tensors = new Map<string, Tensor>();
  for (const [k, t] of state.delta) tensors.set(`delta/${k}`, t);
  for (const [k, t] of state.optimizer.tensors) tensors.set(`optimizer/${k}`, t);
  saveSafetensors(path, tensors, {
    format: FORMAT,
    progress: JSON.stringify(state.progress),
    optimizerSteps: JSON.stringify(state.optimizer.steps),
  });
}

/** Reads a state file; the caller owns (and must dispose) the returned tensors. */
export function loadTrainState(path: string): TrainState {
  if (!existsSync(path)) throw new Error(`${path}: no training state to resume from`);
  const { tensors, metadata } = loadSafetensors(path);
  try {
    if (metadata.format !== FORMAT) throw new Error(`${path}: not a deltatune training state (format '${metadata.format ?? 'none'}')`);
    const progress = JSON.parse(metadata.progress ?? 'null') as TrainProgress | null;
    const steps = JSON.parse(metadata.optimizerSteps ?? 'null') as Record<string, number> | null;
    if (!progress || typeof progress.epoch !== 'number' || !steps) throw new Error(`${path}: the training state's metadata is incomplete`);
    const delta = new Map<string, Tensor>();
    const optimizer = new Map<string, Tensor>();
    for (const [k, t] of tensors) {
      if (k.startsWith('delta/')) delta.set(k.slice(6), t);
      else if (k.startsWith('optimizer/')) optimizer.set(k.slice(10), t);
      else throw new Error(`${path}: unexpected tensor '${k}' in a training state`);
    }
    return { progress, delta, optimizer: { tensors: optimizer, steps } };
  } catch (err) {
    noGrad(() => tensors.forEach((t) => t.dispose()));
    throw err;
  }
}

export function disposeTrainState(state: TrainState): void {
  noGrad(() => {
    state.delta.forEach((t) => t.dispose());
    state.optimizer.tensors.forEach((t) => t.dispose());
  });
}
