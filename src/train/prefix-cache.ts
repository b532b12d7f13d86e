// Computing the frozen prefix once. When a delta leaves the first layers of a sequential backbone
// untouched (a linear probe, Mona or LoRA only in later stages) and the training images are the
// same every epoch (no random augmentation), the prefix's outputs never change: compute them once
// per image, keep them, and train only the rest. Each later epoch then costs the suffix alone.
import { Tensor, keep, noGrad, tidy } from '../engine/index.js';
import { tensor } from '../ops/creation.js';
import { cat } from '../ops/shape.js';
import { pipe, type Step } from '../nn/release.js';
import type { Delta } from '../delta/index.js';
import type { DataLoader } from '../data/index.js';
import type { BatchSource, TrainBatch } from './trainer.js';
import { NO_TASK, type ProgressSink } from './progress.js';

/**
 * Where the untouched prefix ends: `cut` is the index of the first feature step the delta trains
 * or extends. When the delta only adapts that step's output (Mona after a block), the step's own
 * computation is frozen too: `split` then holds it (`frozen`, run without the adapters) and the
 * adapters (`adapt`), so the cache can go through the step and training starts at its adapters.
 */
export function frozenPrefix(delta: Delta): { steps: [string, Step][]; cut: number; split: { frozen: Step; adapt: Step } | null } {
  const model = delta.model;
  const steps = model.featureSteps();
  if (!steps) throw new Error(`${model.config.name}: its backbone is not a plain sequence of steps, so no frozen prefix can be cached (supported: resnet, mobilenet_v2, convnext)`);
  const trained = delta.namedTrainableParameters().map(([n]) => n);
  let cut = steps.findIndex(([name]) => trained.some((p) => p === name || p.startsWith(`${name}.`)));
  if (cut < 0) return { steps, cut: steps.length, split: null };
  return { steps, cut, split: splitAtAdapters(delta, steps[cut]!, trained) };
}

function splitAtAdapters(delta: Delta, [name, step]: [string, Step], trained: string[]): { frozen: Step; adapt: Step } | null {
  const adapters = delta.outputAdaptersOf(name);
  if (adapters.length === 0 || typeof step === 'function') return null;
  // Only when the step runs nothing but those adapters around its own forward, and everything
  // trained inside it belongs to them.
  if (step.forwardPreHookCount() > 0 || step.forwardHookCount() !== adapters.length) return null;
  const inside = trained.filter((p) => p.startsWith(`${name}.`));
  if (!inside.every((p) => adapters.some((a) => p.startsWith(`${a.module}.`)))) return null;
  return {
    frozen: (x: Tensor) => step.forward(x),
    adapt: (out: Tensor) => adapters.reduce((h, a) => a.apply(h), out),
  };
}

class CachedSource implements BatchSource {
  readonly batchesPerEpoch: number;
  constructor(
    private readonly loader: DataLoader,
    private readonly features: Tensor,
    private readonly labels: Tensor,
    /** Row of each dataset index in `features`, or -1 for an image that could not be decoded. */
    private readonly rowOf: Int32Array,
    /** `features` holds [N, H, W, C] rows (channels-last data, read back as NCHW views without a copy). */
    private readonly nhwc: boolean,
  ) {
    this.batchesPerEpoch = loader.batchesPerEpoch;
  }

  async *epoch(epoch: number, options: { from?: number } = {}): AsyncIterableIterator<TrainBatch> {
    const batches = this.loader.batchIndices(epoch);
    for (let b = options.from ?? 0; b < batches.length; b++) {
      const rows = batches[b]!.map((i) => this.rowOf[i]!).filter((r) => r >= 0);
      if (rows.length === 0) continue;
      const [images, labels] = noGrad(() =>
        tidy(() => {
          const index = tensor(new BigInt64Array(rows.map(BigInt)));
          const rowsOut = this.features.indexSelect(0, index);
          return [keep(this.nhwc ? rowsOut.permute([0, 3, 1, 2]) : rowsOut), keep(this.labels.indexSelect(0, index))] as const;
        }),
      );
      yield { images, labels, dispose: () => (images.dispose(), labels.dispose()) };
    }
  }
}

export interface PrefixCacheInfo {
  /** Feature steps computed once (by name: the last one). */
  cachedSteps: number;
  cachedThrough: string;
  /** Shape of one cached sample. */
  featureShape: number[];
  bytes: number;
  seconds: number;
}

/**
 * The frozen prefix's outputs for every sample of the given loaders, and a forward for the rest
 * of the model. Dispose it to free the cache.
 */
export class PrefixCache {
  readonly train: BatchSource;
  readonly val: BatchSource | null;
  readonly info: PrefixCacheInfo;
  readonly #tensors: Tensor[];
  readonly #suffix: Step[];
  readonly #delta: Delta;

  private constructor(delta: Delta, suffix: Step[], sources: [BatchSource, BatchSource | null], tensors: Tensor[], info: PrefixCacheInfo) {
    this.#delta = delta;
    this.#suffix = suffix;
    [this.train, this.val] = sources;
    this.#tensors = tensors;
    this.info = info;
  }

  /** `channelsLast`: the model and the loaders' batches are channels-last; the cached batches will be too. */
  static async build(delta: Delta, train: DataLoader, val: DataLoader | null, options: { channelsLast?: boolean; progress?: ProgressSink } = {}): Promise<PrefixCache> {
    const channelsLast = options.channelsLast ?? false;
    if (train.randomised) {
      throw new Error('the frozen prefix can only be cached when training images are the same every epoch: turn off random augmentation (--augment none) and mixup/cutmix');
    }
    const { steps, cut, split } = frozenPrefix(delta);
    if (cut === 0 && !split) throw new Error(`the '${delta.method}' delta trains the first layer (${steps[0]![0]}), so there is no frozen prefix to cache`);
    const started = performance.now();
    const prefix = [...steps.slice(0, cut).map(([, s]) => s), ...(split ? [split.frozen] : [])];
    const model = delta.model;
    const wasTraining = model.training;
    model.eval();
    const tensors: Tensor[] = [];
    // The current loader's per-batch outputs, until they are concatenated into `tensors`.
    let parts: Tensor[] = [];
    const sources: (CachedSource | null)[] = [];
    let featureShape: number[] = [];
    try {
      for (const loader of [train, val]) {
        if (!loader) {
          sources.push(null);
          continue;
        }
        const order: number[] = [];
        // A rank of a data-parallel run caches every sample, not just its shard: shards change each epoch.
        const every = loader.shard ? loader.withShard(null) : loader;
        const task = options.progress?.task(`caching the frozen prefix (${loader === train ? 'training' : 'validation'} images)`, every.batchesPerEpoch, 'batches') ?? NO_TASK;
        let done = 0;
        try {
          for await (const batch of every.epoch(0)) {
            try {
              // Kept in the layout the suffix wants: index_select returns dense rows, so channels-last
              // data is stored as [N, H, W, C], whose rows permute back to channels-last NCHW views.
              parts.push(keep(noGrad(() => tidy(() => {
                const out = pipe(batch.images, ...prefix);
                return channelsLast ? out.permute([0, 2, 3, 1]).contiguous() : out.contiguous();
              }))));
              order.push(...batch.indices);
            } finally {
              batch.dispose();
            }
            task.update(++done);
          }
        } finally {
          task.end();
        }
        const features = keep(noGrad(() => cat(parts, 0)));
        parts.forEach((t) => t.dispose());
        parts = [];
        const rowOf = new Int32Array(loader.dataset.length).fill(-1);
        order.forEach((index, row) => (rowOf[index] = row));
        const labels = keep(tensor(new BigInt64Array(order.map((i) => BigInt(loader.dataset.label(i))))));
        tensors.push(features, labels);
        const [, a, b, c] = features.shape;
        featureShape = channelsLast ? [c!, a!, b!] : features.shape.slice(1);
        sources.push(new CachedSource(loader, features, labels, rowOf, channelsLast));
      }
    } catch (err) {
      [...tensors, ...parts].forEach((t) => t.dispose());
      throw err;
    } finally {
      model.train(wasTraining);
    }
    const info: PrefixCacheInfo = {
      cachedSteps: prefix.length,
      cachedThrough: split ? `${steps[cut]![0]} (before its delta modules)` : steps[cut - 1]![0],
      featureShape,
      bytes: tensors.reduce((s, t) => s + t.nbytes, 0),
      seconds: (performance.now() - started) / 1000,
    };
    const suffix = split ? [split.adapt, ...steps.slice(cut + 1).map(([, s]) => s)] : steps.slice(cut).map(([, s]) => s);
    return new PrefixCache(delta, suffix, [sources[0]!, sources[1] ?? null], tensors, info);
  }

  /** The model's forward from the cached features on: the remaining steps, then the head. */
  readonly forward = (features: Tensor): Tensor => this.#delta.model.forwardHead(pipe(features, ...this.#suffix));

  dispose(): void {
    this.#tensors.forEach((t) => t.dispose());
  }
}
