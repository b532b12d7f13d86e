// The training loop for a delta: AdamW/SGD with weight-decay exclusion, cosine schedule with
// warm-up, label smoothing or soft (mixup) targets, gradient clipping and accumulation, evaluation
// every epoch, best/last deltas, exact resume, NaN/Inf detection and early stopping.
//
// Exact resume rests on three things: every random draw of the data pipeline is a function of
// (seed, epoch, sample); libtorch's generator is re-seeded from (seed, micro-step) before every
// forward; and the state file (one atomic write) holds everything else.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor, manualSeed, noGrad, peakRssMiB, tidy } from '../engine/index.js';
import { crossEntropy } from '../ops/loss.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { Delta } from '../delta/core/index.js';
import { saveDelta, type SaveDeltaOptions } from '../delta/files.js';
import { AdamW, SGD, type Optimizer, type ParamGroup } from './optim.js';
import { cosineLr, checkSchedule, type CosineSchedule } from './schedule.js';
import { ClassificationMeter, metricsFromTotals, metricsTotals, type EvalMetrics } from './metrics.js';
import type { DataParallel } from './distributed.js';
import { loadTrainState, saveTrainState, disposeTrainState, type EpochRecord, type TrainProgress } from './checkpoint.js';
import { NO_TASK, createProgress, type ProgressSink, type TaskProgress } from './progress.js';

/** A batch as the data layer delivers it; the consumer disposes it. */
export interface TrainBatch {
  images: Tensor;
  labels: Tensor;
  targets?: Tensor;
  dispose(): void;
}

/** What the trainer needs of a loader (src/data's DataLoader is one). */
export interface BatchSource {
  readonly batchesPerEpoch: number;
  epoch(epoch: number, options?: { from?: number }): AsyncIterableIterator<TrainBatch>;
}

export interface TrainOptions {
  epochs: number;
  lr: number;
  optimizer?: 'adamw' | 'sgd';
  /** Default 0.05 for AdamW, 0 for SGD. Never applied to norms, biases or position tables. */
  weightDecay?: number;
  momentum?: number;
  nesterov?: boolean;
  /** Epochs of linear warm-up (fractions allowed). */
  warmupEpochs?: number;
  minLr?: number;
  labelSmoothing?: number;
  /** Clip the global gradient norm to this value (0 = off). */
  clipGrad?: number;
  /** Micro-batches per optimizer step. */
  accumulate?: number;
  /** Stop after this many epochs without a better validation top-1 (0 = never). */
  patience?: number;
  /** Optimizer steps between resume checkpoints (the end of each epoch always writes one). */
  checkpointEvery?: number;
  seed?: number;
  /** Written to config.json; on resume it must match the saved one. */
  runConfig?: Record<string, unknown>;
  /** Replaces model.forward for training and evaluation (e.g. the suffix after a cached frozen prefix). */
  forward?: (x: Tensor) => Tensor;
  /** Seconds of training work done before fit (e.g. building a prefix cache), counted in the run's time. */
  setupSeconds?: number;
  /** More facts for summary.json (e.g. the delta's size, the prefix cache). */
  summaryInfo?: Record<string, unknown>;
  /** Stored in every saved delta's manifest (class names, preprocessing) so predict needs nothing else. */
  deltaInfo?: SaveDeltaOptions;
  /**
   * Data-parallel training: this process is one rank of the group. The loaders must be this rank's
   * shards; gradients are averaged over the ranks before each step, validation is summed over
   * them, and only rank 0 writes to the run directory.
   */
  parallel?: DataParallel;
}

export interface TrainResult {
  runDir: string;
  history: EpochRecord[];
  best: { epoch: number; top1: number } | null;
  /** Validation metrics of the final model (when a validation set was given). */
  final: EvalMetrics | null;
  stoppedEarly: boolean;
  seconds: number;
  /** Peak resident memory of this process so far, in MiB. */
  peakRssMiB: number;
}

/** JSON with object keys sorted, so two configs compare by content, not by key order. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

/** The loss became NaN or infinite: training stops and the last good checkpoint is kept. */
export class DivergedError extends Error {}

const POSITION_TABLE = /(^|\.)(pos_embedding|pos_embed|absolute_pos_embed|relative_position_bias_table|class_token|cls_token)$/;

/** Weight decay only on weight matrices and kernels: not on norms, biases or position tables. */
export function decayGroups(named: [string, Tensor][], weightDecay: number): ParamGroup[] {
  const decay: Tensor[] = [];
  const noDecay: Tensor[] = [];
  for (const [name, p] of named) (p.shape.length <= 1 || POSITION_TABLE.test(name) ? noDecay : decay).push(p);
  return [
    { params: decay, weightDecay },
    { params: noDecay, weightDecay: 0 },
  ].filter((g) => g.params.length > 0);
}

/** Scales gradients so their global L2 norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  return noGrad(() =>
    tidy(() => {
      const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null);
      let sq = 0;
      for (const g of grads) sq += g.norm().item() ** 2;
      const total = Math.sqrt(sq);
      if (total > maxNorm) for (const g of grads) g.mul_(maxNorm / (total + 1e-6));
      return total;
    }),
  );
}

/** Evaluates the model on a loader: loss, top-1/top-5, per-class accuracy, confusion matrix. */
export async function evaluate(
  delta: Delta,
  loader: BatchSource,
  numClasses: number = delta.head.outFeatures,
  forward: (x: Tensor) => Tensor = (x) => delta.model.forward(x),
  task: TaskProgress = NO_TASK,
  parallel?: DataParallel,
): Promise<EvalMetrics> {
  const model = delta.model;
  const wasTraining = model.training;
  model.eval();
  const meter = new ClassificationMeter(numClasses);
  let done = 0;
  try {
    for await (const batch of loader.epoch(0)) {
      try {
        noGrad(() =>
          tidy(() => {
            const logits = forward(batch.images);
            meter.update(logits, batch.labels, crossEntropy(logits, batch.labels).item());
          }),
        );
      } finally {
        batch.dispose();
      }
      task.update(++done);
    }
  } finally {
    model.train(wasTraining);
    task.end();
  }
  // Each rank saw its own part of the data: the whole's metrics come from the summed totals.
  if (parallel && parallel.worldSize > 1) return metricsFromTotals(await parallel.sum(metricsTotals(meter.result())), numClasses);
  return meter.result();
}

const emptySums = (): TrainProgress['epochSums'] => ({ loss: 0, correct: 0, samples: 0, seconds: 0, waitMs: 0 });

// Distinct, reproducible libtorch seeds per micro-step (kept below 2^53).
const stepSeed = (seed: number, microStep: number) => (seed * 1_000_003 + microStep * 7_919 + 17) % 2 ** 52;

export class Trainer {
  readonly runDir: string;
  readonly delta: Delta;
  /** The training hyper-parameters, as recorded in config.json. */
  readonly options: Required<Omit<TrainOptions, 'runConfig' | 'deltaInfo' | 'forward' | 'setupSeconds' | 'summaryInfo' | 'parallel'>>;
  readonly parallel: DataParallel | null;
  readonly forward: (x: Tensor) => Tensor;
  readonly progress: ProgressSink;
  readonly #runConfig: Record<string, unknown>;
  readonly #deltaInfo: SaveDeltaOptions;
  readonly #setupSeconds: number;
  readonly #summaryInfo: Record<string, unknown>;

  constructor(
    delta: Delta,
    readonly trainLoader: BatchSource,
    readonly valLoader: BatchSource | null,
    runDir: string,
    options: TrainOptions,
    progress: ProgressSink = createProgress('quiet'),
  ) {
    this.delta = delta;
    this.runDir = runDir;
    this.progress = progress;
    this.forward = options.forward ?? ((x) => delta.model.forward(x));
    const optimizer = options.optimizer ?? 'adamw';
    if (optimizer !== 'adamw' && optimizer !== 'sgd') throw new Error(`optimizer must be 'adamw' or 'sgd', got '${String(optimizer)}'`);
    this.options = {
      epochs: options.epochs,
      lr: options.lr,
      optimizer,
      weightDecay: options.weightDecay ?? (optimizer === 'adamw' ? 0.05 : 0),
      momentum: options.momentum ?? 0.9,
      nesterov: options.nesterov ?? false,
      warmupEpochs: options.warmupEpochs ?? 0,
      minLr: options.minLr ?? 0,
      labelSmoothing: options.labelSmoothing ?? 0,
      clipGrad: options.clipGrad ?? 0,
      accumulate: options.accumulate ?? 1,
      patience: options.patience ?? 0,
      checkpointEvery: options.checkpointEvery ?? 100,
      seed: options.seed ?? 0,
    };
    this.#runConfig = options.runConfig ?? {};
    this.#deltaInfo = options.deltaInfo ?? {};
    this.#setupSeconds = options.setupSeconds ?? 0;
    this.#summaryInfo = options.summaryInfo ?? {};
    this.parallel = options.parallel ?? null;
    const o = this.options;
    const positiveInt = (v: number, name: string) => {
      if (!(Number.isInteger(v) && v > 0)) throw new RangeError(`${name} must be a positive integer, got ${v}`);
    };
    positiveInt(o.epochs, 'epochs');
    positiveInt(o.accumulate, 'accumulate');
    positiveInt(o.checkpointEvery, 'checkpointEvery');
    if (!(o.weightDecay >= 0)) throw new RangeError(`weightDecay must be ≥ 0, got ${o.weightDecay}`);
    if (!(o.labelSmoothing >= 0 && o.labelSmoothing < 1)) throw new RangeError(`labelSmoothing must be in [0, 1), got ${o.labelSmoothing}`);
    if (!(o.clipGrad >= 0)) throw new RangeError(`clipGrad must be ≥ 0, got ${o.clipGrad}`);
    if (!(Number.isInteger(o.patience) && o.patience >= 0)) throw new RangeError(`patience must be a non-negative integer, got ${o.patience}`);
    if (!(o.warmupEpochs >= 0 && o.warmupEpochs <= o.epochs)) throw new RangeError(`warmupEpochs must be in [0, epochs], got ${o.warmupEpochs}`);
    if (!(Number.isSafeInteger(o.seed) && o.seed >= 0)) throw new RangeError(`seed must be a non-negative integer, got ${o.seed}`);
    if (trainLoader.batchesPerEpoch < 1) throw new Error('the training set gives no batch (is it empty, or smaller than the batch with dropLast?)');
    checkSchedule(this.schedule());
  }

  /** Whether this process writes the run directory (rank 0, or the only process). */
  get writes(): boolean {
    return this.parallel === null || this.parallel.isMain;
  }

  get statePath(): string {
    return join(this.runDir, 'state.safetensors');
  }

  /** Optimizer steps per epoch (a last partial accumulation still steps). */
  get stepsPerEpoch(): number {
    return Math.ceil(this.trainLoader.batchesPerEpoch / this.options.accumulate);
  }

  schedule(): CosineSchedule {
    const o = this.options;
    const stepsPerEpoch = this.stepsPerEpoch;
    return {
      lr: o.lr,
      totalSteps: stepsPerEpoch * o.epochs,
      warmupSteps: Math.round(o.warmupEpochs * stepsPerEpoch),
      minLr: o.minLr,
    };
  }

  #makeOptimizer(): Optimizer {
    const o = this.options;
    const groups = decayGroups(this.delta.namedTrainableParameters(), o.weightDecay);
    if (groups.length === 0) throw new Error(`the '${this.delta.method}' delta has no trainable parameters`);
    return o.optimizer === 'adamw'
      ? new AdamW(groups, { lr: o.lr, weightDecay: o.weightDecay })
      : new SGD(groups, { lr: o.lr, momentum: o.momentum, nesterov: o.nesterov, weightDecay: o.weightDecay });
  }

  #writeConfig(resume: boolean): void {
    if (!this.writes) return;
    const path = join(this.runDir, 'config.json');
    const config = {
      ...this.#runConfig,
      method: this.delta.method,
      methodConfig: this.delta.config,
      model: this.delta.model.config.name,
      train: this.options,
    };
    const text = JSON.stringify(config, null, 2) + '\n';
    if (resume && existsSync(path)) {
      // The configuration may not differ; where the run, its data and weights live may (a run moved,
      // or saved before paths were stored absolute), and so may the data's fingerprints (a resume
      // allowed with --allow-data-change): tune checks the data's and weights' identity by those.
      const saved = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
      const now = JSON.parse(text) as Record<string, unknown>;
      const essence = (c: Record<string, unknown>) =>
        canonicalJson({
          ...c,
          fingerprints: undefined,
          pathsFromRun: undefined,
          worldSize: undefined, // a run may resume on another number of ranks
          tune: c.tune && typeof c.tune === 'object' ? { ...c.tune, out: undefined, data: undefined, valData: undefined, weights: undefined } : c.tune,
        });
      if (essence(saved) !== essence(now)) {
        throw new Error(`${path}: the run was started with another configuration; resume with the same options (or start a new run directory)`);
      }
      if (canonicalJson(saved) === canonicalJson(now)) return;
    }
    writeFileAtomic(path, Buffer.from(text));
  }

  #writeMetrics(history: EpochRecord[]): void {
    if (!this.writes) return;
    writeFileAtomic(join(this.runDir, 'metrics.jsonl'), Buffer.from(history.map((r) => JSON.stringify(r)).join('\n') + (history.length ? '\n' : '')));
  }

  #saveState(optimizer: Optimizer, progress: TrainProgress): void {
    if (!this.writes) return;
    saveTrainState(this.statePath, { progress, delta: this.delta.stateDict(), optimizer: optimizer.stateDict() });
  }

  /** Saves the attached delta to `name/` under the run directory, replacing the old one only once complete. */
  #saveDeltaDir(name: string): void {
    if (!this.writes) return;
    const target = join(this.runDir, name);
    const staging = join(this.runDir, `.${name}.tmp`);
    const previous = join(this.runDir, `.${name}.old`);
    rmSync(staging, { recursive: true, force: true });
    saveDelta(this.delta, staging, this.#deltaInfo);
    // At every instant one complete copy exists: target, or (between the renames) .old.
    rmSync(previous, { recursive: true, force: true });
    if (existsSync(target)) renameSync(target, previous);
    renameSync(staging, target);
    rmSync(previous, { recursive: true, force: true });
  }

  /** An epoch's sums over every rank (seconds and waits stay this rank's). */
  async #sumOverRanks(sums: TrainProgress['epochSums']): Promise<TrainProgress['epochSums']> {
    const [loss, correct, samples] = await this.parallel!.sum([sums.loss, sums.correct, sums.samples]);
    return { ...sums, loss: loss!, correct: correct!, samples: samples! };
  }

  /**
   * Trains for the configured epochs. With `resume`, continues from the run directory's state
   * file exactly where it stopped.
   */
  async fit(options: { resume?: boolean } = {}): Promise<TrainResult> {
    const o = this.options;
    const started = performance.now();
    const parallel = this.parallel;
    if (this.writes) mkdirSync(this.runDir, { recursive: true });
    this.#writeConfig(options.resume ?? false);
    const optimizer = this.#makeOptimizer();
    let progress: TrainProgress = {
      epoch: 0,
      batch: 0,
      step: 0,
      epochSums: emptySums(),
      history: [],
      best: null,
      epochsWithoutImprovement: 0,
      finished: false,
    };
    if (options.resume) {
      // Only rank 0 has the run directory (it may be on another machine): the others get its state file.
      const file = parallel ? await parallel.broadcastFile(this.statePath) : { path: this.statePath, dispose() {} };
      try {
        const state = loadTrainState(file.path);
        try {
          this.delta.loadStateDict(state.delta, this.statePath);
          optimizer.loadStateDict(state.optimizer, this.statePath);
          progress = state.progress;
          if (parallel && !parallel.isMain) progress.epochSums = { ...progress.epochSums, loss: 0, correct: 0, samples: 0 };
        } finally {
          disposeTrainState(state);
        }
      } finally {
        file.dispose();
      }
      this.progress.message(`resuming ${this.runDir} at epoch ${progress.epoch + 1}, batch ${progress.batch + 1} (optimizer step ${progress.step})`);
    } else if (this.writes) {
      rmSync(this.statePath, { force: true });
    }
    if (parallel) {
      // DDP's start: every rank continues from rank 0's parameters and buffers.
      const state = this.delta.model.stateDict();
      await parallel.broadcastTensors([...state.values()]);
    }
    this.#writeMetrics(progress.history);

    const params = this.delta.trainableParameters();
    const schedule = this.schedule();
    const batches = this.trainLoader.batchesPerEpoch;
    let stoppedEarly = false;
    let final: EvalMetrics | null = null;
    try {
      while (!progress.finished && progress.epoch < o.epochs) {
        const epoch = progress.epoch;
        this.delta.model.train();
        this.progress.epochStart(epoch, o.epochs, batches, progress.batch);
        const sums = progress.epochSums;
        const epochClock = performance.now() - sums.seconds * 1000;
        let waitStart = performance.now();
        let micro = progress.batch;
        let lossWindow = 0;
        let windowBatches = 0;
        let lr = cosineLr(schedule, progress.step);
        for await (const batch of this.trainLoader.epoch(epoch, { from: progress.batch })) {
          sums.waitMs += performance.now() - waitStart;
          let loss: number;
          let correct: number;
          const size = batch.images.shape[0]!;
          try {
            // Each rank draws its own dropout masks (its samples differ; the same masks would correlate them).
            manualSeed(stepSeed(o.seed, epoch * batches + micro) + (parallel?.rank ?? 0));
            // The step's last micro-batch: its backward starts the gradient allreduces.
            if (parallel && ((micro + 1) % o.accumulate === 0 || micro + 1 === batches)) parallel.beforeBackward(params);
            [loss, correct] = tidy(() => {
              const logits = this.forward(batch.images);
              const l = batch.targets
                ? logits.logSoftmax(1).mul(batch.targets).sum().div(-size)
                : crossEntropy(logits, batch.labels, { labelSmoothing: o.labelSmoothing });
              (o.accumulate > 1 ? l.div(o.accumulate) : l).backward();
              const hits = noGrad(() => logits.argmax(1).eq(batch.labels).sum().item());
              return [l.item(), hits];
            });
          } finally {
            batch.dispose();
          }
          if (!Number.isFinite(loss)) {
            const kept = ['last', 'best', 'state.safetensors'].filter((f) => existsSync(join(this.runDir, f)));
            throw new DivergedError(
              `the loss became ${loss} at epoch ${epoch + 1}, batch ${micro + 1} (optimizer step ${progress.step}, lr ${lr.toExponential(2)}); training stopped. ` +
                (kept.length ? `The last good checkpoint is kept in ${this.runDir} (${kept.join(', ')}). ` : 'No checkpoint had been saved yet. ') +
                'Lower the learning rate or set a gradient clip.',
            );
          }
          sums.loss += loss * size;
          sums.correct += correct;
          sums.samples += size;
          lossWindow += loss;
          windowBatches += 1;
          micro += 1;
          const endOfEpoch = micro === batches;
          if (micro % o.accumulate === 0 || endOfEpoch) {
            if (parallel) await parallel.averageGradients(params);
            if (o.clipGrad > 0) clipGradNorm(params, o.clipGrad);
            optimizer.lr = lr;
            optimizer.step();
            optimizer.zeroGrad();
            progress.step += 1;
            lr = cosineLr(schedule, progress.step);
            progress.batch = micro;
            if (!endOfEpoch && progress.step % o.checkpointEvery === 0) {
              sums.seconds = (performance.now() - epochClock) / 1000;
              // A data-parallel state holds the sums over all ranks; on resume rank 0 carries them.
              this.#saveState(optimizer, parallel ? { ...progress, epochSums: await this.#sumOverRanks(sums) } : progress);
            }
          }
          const elapsed = (performance.now() - epochClock) / 1000;
          // (The other ranks go at the same pace: each step waits for all of them.)
          const ips = ((parallel?.worldSize ?? 1) * sums.samples) / Math.max(elapsed, 1e-9);
          this.progress.step({
            epoch,
            epochs: o.epochs,
            batch: micro - 1,
            batches,
            loss: lossWindow / windowBatches,
            top1: (100 * sums.correct) / sums.samples,
            imagesPerSecond: ips,
            etaSeconds: ((batches - micro) * (sums.samples / micro)) / Math.max(ips, 1e-9),
            lr,
          });
          if (windowBatches >= 20) lossWindow = windowBatches = 0;
          waitStart = performance.now();
        }
        if (micro !== batches) throw new Error(`the training loader gave ${micro} batches in epoch ${epoch + 1}, expected ${batches}`);

        sums.seconds = (performance.now() - epochClock) / 1000;
        // The epoch's figures are over all ranks' samples (the state keeps this rank's own partial sums).
        const epochSums = parallel ? await this.#sumOverRanks(sums) : sums;
        let val: EvalMetrics | null = null;
        if (this.valLoader) {
          this.progress.evaluating(epoch);
          val = await evaluate(this.delta, this.valLoader, this.delta.head.outFeatures, this.forward, this.progress.task(`validating (epoch ${epoch + 1})`, this.valLoader.batchesPerEpoch, 'batches'), parallel ?? undefined);
        }
        const record: EpochRecord = {
          epoch,
          lr: cosineLr(schedule, progress.step - 1),
          trainLoss: epochSums.loss / epochSums.samples,
          trainTop1: (100 * epochSums.correct) / epochSums.samples,
          ...(val ? { val: { loss: val.loss, top1: val.top1, top5: val.top5, perClass: val.perClass } } : {}),
          seconds: sums.seconds,
          imagesPerSecond: epochSums.samples / sums.seconds,
          dataWaitFraction: sums.waitMs / 1000 / sums.seconds,
        };
        const score = val ? val.top1 : record.trainTop1;
        const isBest = progress.best === null || score > progress.best.top1;
        if (isBest) {
          progress.best = { epoch, top1: score };
          progress.epochsWithoutImprovement = 0;
        } else {
          progress.epochsWithoutImprovement += 1;
        }
        progress.history.push(record);
        if (val) final = val;
        const stop = o.patience > 0 && progress.epochsWithoutImprovement >= o.patience && epoch < o.epochs - 1;
        progress = {
          ...progress,
          epoch: epoch + 1,
          batch: 0,
          epochSums: emptySums(),
          finished: stop || epoch + 1 >= o.epochs,
        };
        // Deltas first, then the state that points past them: a kill in between redoes this epoch's end.
        this.#saveDeltaDir('last');
        if (isBest) this.#saveDeltaDir('best');
        this.#saveState(optimizer, progress);
        this.#writeMetrics(progress.history);
        this.progress.epochEnd(record, isBest);
        if (stop) {
          stoppedEarly = true;
          this.progress.message(`early stop: no better validation top-1 for ${o.patience} epochs (best ${progress.best!.top1.toFixed(2)}% at epoch ${progress.best!.epoch + 1})`);
        }
      }
    } finally {
      this.progress.close();
      optimizer.dispose();
    }
    // The others wait until rank 0's last files are written: a run is finished when its last rank is.
    if (parallel) await parallel.barrier();
    const result: TrainResult = {
      runDir: this.runDir,
      history: progress.history,
      best: progress.best,
      final,
      stoppedEarly,
      seconds: this.#setupSeconds + (performance.now() - started) / 1000,
      peakRssMiB: peakRssMiB(),
    };
    const summary = { ...result, final: final ?? undefined, ...this.#summaryInfo, ...(parallel ? { worldSize: parallel.worldSize } : {}) };
    if (this.writes) writeFileAtomic(join(this.runDir, 'summary.json'), Buffer.from(JSON.stringify(summary, null, 2) + '\n'));
    return result;
  }
}
