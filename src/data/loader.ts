// The batch loader: a seeded order; per-sample decoding and augmentation in sharp (image files
// in the decode worker thread, so they progress during a synchronous training step; other
// datasets from this thread); ArrayDatasets straight from memory; then batches assembled,
// normalised and mixed with libtorch ops on the whole batch.
import { availableParallelism } from 'node:os';
import { Tensor, callTensorOp } from '../engine/tensor.js';
import { keep, tidy } from '../engine/scope.js';
import { noGrad } from '../engine/autograd.js';
import { tensor } from '../ops/creation.js';
import { flip, indexSelect, narrow, permute, reshape, expand } from '../ops/shape.js';
import { add_, clamp_, div_, mul_, sub, sub_ } from '../ops/pointwise.js';
import { mean as meanOp } from '../ops/reduce.js';
import { interpolate, oneHot } from '../ops/resize.js';
import { copy_ } from '../ops/init.js';
import { ArrayDataset, type Dataset, ENCODED, checkDataset, hasEncoded } from './dataset.js';
import { checkRawImage, reason } from './image.js';
import { transformSample } from './pipeline.js';
import { DecodeWorkerError, cancelGroup, decodeFile, decodeGroup } from './decode-pool.js';
import { Rng, STREAM, checkSeed } from './random.js';
import { type Augment, type ResolvedTransform, type TransformOptions, composeColour, needsMean, resolveTransform, sampleAugment } from './transforms.js';

export interface Batch {
  /** float32 [B,3,size,size], normalised. */
  images: Tensor;
  /** int64 [B] */
  labels: Tensor;
  /** float32 [B,numClasses] soft targets, only with mixup/cutmix. */
  targets?: Tensor;
  /** Dataset indices of the samples in this batch. */
  indices: number[];
  /** Batch number within the epoch (skipped images do not renumber batches). */
  index: number;
  /** Frees the tensors: the consumer owns them. */
  dispose(): void;
}

export interface LoaderOptions {
  batchSize: number;
  transform: TransformOptions;
  /** Default true when transform.train. */
  shuffle?: boolean;
  /** Default 0. */
  seed?: number;
  /** Drop a last, smaller batch (default false). */
  dropLast?: boolean;
  /** Batches decoded ahead of the one being consumed (default 4). */
  prefetch?: number;
  /** Images decoding at once (default 2 × available cores). */
  concurrency?: number;
  /** 'fail' (default): the iterator rejects naming the file; 'skip': drop the sample, warn, go on. */
  onBadImage?: 'skip' | 'fail';
  /** Called once per skipped image with its path and reason (default console.warn). */
  onWarning?: (message: string) => void;
  /** Mixup alpha (0/undefined = off), timm batch mode. */
  mixup?: number;
  /** CutMix alpha (0/undefined = off); with mixup too, each batch picks one at even odds. */
  cutmix?: number;
  /** Soft-target width (default dataset.classes.length). */
  numClasses?: number;
  /** Deliver images in channels-last memory format (NHWC strides). */
  channelsLast?: boolean;
  /**
   * Data-parallel training: this process's share of each epoch, as torch's DistributedSampler
   * (drop_last=False): every rank draws the same permutation from (seed, epoch), pads it by
   * repeating its start to a multiple of worldSize, and takes every worldSize-th index from rank.
   * Ranks thus see disjoint samples (but for the padding) and take the same number of steps.
   * `pad: false` (for evaluation) leaves the order unpadded: every sample exactly once over all
   * ranks, the last ranks one sample short.
   */
  shard?: { rank: number; worldSize: number; pad?: boolean };
}

const OPTION_NAMES = new Set([
  'batchSize', 'transform', 'shuffle', 'seed', 'dropLast', 'prefetch', 'concurrency', 'onBadImage',
  'onWarning', 'mixup', 'cutmix', 'numClasses', 'channelsLast', 'shard',
]);

class LoadedBatch implements Batch {
  constructor(
    readonly images: Tensor,
    readonly labels: Tensor,
    readonly targets: Tensor | undefined,
    readonly indices: number[],
    readonly index: number,
  ) {}
  dispose(): void {
    this.images.dispose();
    this.labels.dispose();
    this.targets?.dispose();
  }
}

/** Limits how many sample jobs run at once; once closed, queued jobs end without working. */
class Limiter {
  #active = 0;
  readonly #waiting: (() => void)[] = [];
  closed = false;
  constructor(readonly max: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#active >= this.max) await new Promise<void>((r) => this.#waiting.push(r));
    this.#active++;
    try {
      if (this.closed) throw new Error('loader iteration was closed');
      return await fn();
    } finally {
      this.#active--;
      this.#waiting.shift()?.();
    }
  }
}

type SampleResult = { ok: true; pixels: Uint8Array } | { ok: false; error: Error };
interface PendingBatch {
  index: number;
  indices: number[];
  results: SampleResult[];
}

interface Resolved {
  batchSize: number;
  transform: ResolvedTransform;
  shuffle: boolean;
  seed: number;
  dropLast: boolean;
  prefetch: number;
  concurrency: number;
  onBadImage: 'skip' | 'fail';
  onWarning: (message: string) => void;
  mixup: number;
  cutmix: number;
  numClasses: number;
  channelsLast: boolean;
  shard: { rank: number; worldSize: number; pad: boolean } | null;
}

function resolveShard(v: unknown): Resolved['shard'] {
  if (v === undefined) return null;
  const s = v as { rank?: unknown; worldSize?: unknown; pad?: unknown };
  if (!v || typeof v !== 'object' || !Number.isInteger(s.worldSize) || (s.worldSize as number) < 1 || !Number.isInteger(s.rank) || (s.rank as number) < 0 || (s.rank as number) >= (s.worldSize as number)) {
    throw new RangeError(`DataLoader: shard must be { rank, worldSize } with integers 0 ≤ rank < worldSize, got ${JSON.stringify(v)}`);
  }
  if (s.pad !== undefined && typeof s.pad !== 'boolean') throw new TypeError(`DataLoader: shard.pad must be a boolean, got ${JSON.stringify(s.pad)}`);
  return { rank: s.rank as number, worldSize: s.worldSize as number, pad: s.pad !== false };
}

function resolveOptions(ds: Dataset, o: LoaderOptions): Resolved {
  if (!o || typeof o !== 'object') throw new TypeError(`DataLoader: options must be an object, got ${String(o)}`);
  for (const k of Object.keys(o)) {
    if (!OPTION_NAMES.has(k)) throw new TypeError(`DataLoader: unknown option '${k}' (options: ${[...OPTION_NAMES].join(', ')})`);
  }
  const posInt = (v: unknown, name: string, min = 1): number => {
    if (!Number.isInteger(v) || (v as number) < min) throw new RangeError(`DataLoader: ${name} must be an integer ≥ ${min}, got ${String(v)}`);
    return v as number;
  };
  const bool = (v: unknown, name: string, dflt: boolean): boolean => {
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') throw new TypeError(`DataLoader: ${name} must be a boolean, got ${String(v)}`);
    return v;
  };
  const alpha = (v: unknown, name: string): number => {
    if (v === undefined) return 0;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`DataLoader: ${name} must be a Beta alpha ≥ 0 (0 = off), got ${String(v)}`);
    return v;
  };
  const transform = resolveTransform(o.transform, 'DataLoader: transform');
  const onBadImage = o.onBadImage ?? 'fail';
  if (onBadImage !== 'skip' && onBadImage !== 'fail') throw new RangeError(`DataLoader: onBadImage must be 'skip' or 'fail', got '${String(onBadImage)}'`);
  if (o.onWarning !== undefined && typeof o.onWarning !== 'function') throw new TypeError('DataLoader: onWarning must be a function');
  const mixup = alpha(o.mixup, 'mixup');
  const cutmix = alpha(o.cutmix, 'cutmix');
  const numClasses = o.numClasses === undefined ? ds.classes.length : posInt(o.numClasses, 'numClasses');
  if ((mixup > 0 || cutmix > 0) && numClasses < 2) throw new RangeError(`DataLoader: mixup/cutmix need numClasses ≥ 2, got ${numClasses}`);
  return {
    batchSize: posInt(o.batchSize, 'batchSize'),
    transform,
    shuffle: bool(o.shuffle, 'shuffle', transform.train),
    seed: o.seed === undefined ? 0 : checkSeed(o.seed, 'DataLoader: seed'),
    dropLast: bool(o.dropLast, 'dropLast', false),
    prefetch: o.prefetch === undefined ? 4 : posInt(o.prefetch, 'prefetch'),
    concurrency: o.concurrency === undefined ? 2 * availableParallelism() : posInt(o.concurrency, 'concurrency'),
    onBadImage,
    onWarning: o.onWarning ?? ((m: string) => console.warn(m)),
    mixup,
    cutmix,
    numClasses,
    channelsLast: bool(o.channelsLast, 'channelsLast', false),
    shard: resolveShard(o.shard),
  };
}

/**
 * Iterates a dataset in batches of normalised image tensors. Everything random (order,
 * crops, flips, jitter, mixup) is a function of (seed, epoch, sample index or batch number).
 */
export class DataLoader {
  readonly dataset: Dataset;
  readonly batchesPerEpoch: number;
  readonly #o: Resolved;
  readonly #given: LoaderOptions;
  #waitMs = 0;
  #images = 0;
  #skipped = 0;

  constructor(dataset: Dataset, options: LoaderOptions) {
    this.dataset = checkDataset(dataset, 'DataLoader');
    this.#o = resolveOptions(dataset, options);
    this.#given = { ...options };
    if (dataset.length === 0) throw new RangeError('DataLoader: the dataset is empty');
    const n = this.samplesPerEpoch;
    const b = this.#o.batchSize;
    if (this.#o.dropLast && n < b) throw new RangeError(`DataLoader: batchSize ${b} with dropLast leaves no batch from ${n} samples`);
    this.batchesPerEpoch = this.#o.dropLast ? Math.floor(n / b) : Math.ceil(n / b);
  }

  /** Samples this loader delivers per epoch: the dataset's, or this rank's share of it (padded). */
  get samplesPerEpoch(): number {
    const n = this.dataset.length;
    const shard = this.#o.shard;
    if (!shard) return n;
    return shard.pad ? Math.ceil(n / shard.worldSize) : Math.floor(n / shard.worldSize) + (shard.rank < n % shard.worldSize ? 1 : 0);
  }

  /** The same loader over another share of the data (null: all of it). */
  withShard(shard: LoaderOptions['shard'] | null): DataLoader {
    const { shard: _, ...rest } = this.#given;
    return new DataLoader(this.dataset, shard ? { ...rest, shard } : rest);
  }

  /** This loader's share of the data, or null when it reads all of it. */
  get shard(): Readonly<{ rank: number; worldSize: number; pad: boolean }> | null {
    return this.#o.shard;
  }

  /** Total ms the consumer waited inside next() since construction (or resetStats()), images delivered, images skipped. */
  get stats(): { waitMs: number; images: number; skipped: number } {
    return { waitMs: this.#waitMs, images: this.#images, skipped: this.#skipped };
  }

  resetStats(): void {
    this.#waitMs = 0;
    this.#images = 0;
    this.#skipped = 0;
  }

  /**
   * The dataset indices of each batch of an epoch, in delivery order (images skipped as bad are
   * still listed: they are dropped only when decoded).
   */
  batchIndices(epoch: number): number[][] {
    const order = this.order(epoch);
    return Array.from({ length: this.batchesPerEpoch }, (_, b) => this.#batchIndices(order, b));
  }

  /** Whether samples differ between epochs (random crops, flips, jitter, mixing): then no sample's features can be cached. */
  get randomised(): boolean {
    const t = this.#o.transform;
    return (t.train && (t.rrc !== null || t.hflip > 0 || t.jitter !== null)) || this.#o.mixup > 0 || this.#o.cutmix > 0;
  }

  /** The dataset indices of one epoch, in delivery order. */
  order(epoch: number): Int32Array {
    checkSeed(epoch, 'DataLoader.order: epoch');
    const n = this.dataset.length;
    const ids = Int32Array.from({ length: n }, (_, i) => i);
    const all = this.#o.shuffle ? new Rng(STREAM.shuffle, this.#o.seed, epoch).shuffle(ids) : ids;
    const shard = this.#o.shard;
    if (!shard) return all;
    const mine = new Int32Array(this.samplesPerEpoch);
    // Position p of the padded order is all[p mod n] (the padding repeats the order's start).
    for (let k = 0; k < mine.length; k++) mine[k] = all[(shard.rank + k * shard.worldSize) % n]!;
    return mine;
  }

  /**
   * The batches of one epoch. Deterministic in (seed, epoch): the order and every random
   * augmentation derive from (seed, epoch, dataset index), never from the order in which
   * parallel decodes finish. `from` skips the first `from` batches (resume) without decoding them.
   */
  epoch(epoch: number, options: { from?: number } = {}): AsyncIterableIterator<Batch> {
    checkSeed(epoch, 'DataLoader.epoch: epoch');
    const from = options.from ?? 0;
    if (!Number.isInteger(from) || from < 0 || from > this.batchesPerEpoch) {
      throw new RangeError(`DataLoader.epoch: from must be an integer in [0, ${this.batchesPerEpoch}], got ${String(from)}`);
    }
    const gen = this.#run(epoch, from);
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const loader = this;
    return {
      async next() {
        const t0 = performance.now();
        try {
          return await gen.next();
        } finally {
          loader.#waitMs += performance.now() - t0;
        }
      },
      return: (value?: unknown) => gen.return(value as undefined),
      throw: (err?: unknown) => gen.throw(err),
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  #batchIndices(order: Int32Array, b: number): number[] {
    const B = this.#o.batchSize;
    return Array.from(order.subarray(b * B, Math.min((b + 1) * B, order.length)));
  }

  async *#run(epoch: number, from: number): AsyncGenerator<Batch, undefined, undefined> {
    const order = this.order(epoch);
    const total = this.batchesPerEpoch;
    const ds = this.dataset;
    if (ds instanceof ArrayDataset) {
      // In memory: nothing to overlap, each batch is a few libtorch ops.
      for (let b = from; b < total; b++) {
        const indices = this.#batchIndices(order, b);
        this.#images += indices.length;
        yield this.#arrayBatch(ds, indices, epoch, b);
      }
      return undefined;
    }
    const limiter = new Limiter(this.#o.concurrency);
    const group = decodeGroup();
    const { transform, seed, concurrency } = this.#o;
    // Image files go to the decode worker; other datasets' load() must run on this thread.
    const decode: (i: number) => Promise<Uint8Array> = hasEncoded(ds)
      ? (i) => decodeFile({ group, concurrency, path: ds[ENCODED](i), what: ds.source(i), transform, seed, epoch, index: i })
      : (i) => limiter.run(() => this.#sample(i, epoch));
    const queue: Promise<PendingBatch>[] = [];
    let next = from;
    const fill = () => {
      while (queue.length < this.#o.prefetch && next < total) queue.push(this.#start(next++, order, decode));
    };
    try {
      fill();
      for (let b = from; b < total; b++) {
        const job = queue.shift()!;
        fill(); // keep `prefetch` batches decoding while this one is consumed
        const batch = this.#deliver(await job, epoch);
        if (batch) yield batch;
      }
    } finally {
      // Abandoned or failed: queued sample jobs end without work; running sharp calls finish
      // on their own and their bytes are dropped (no tensors exist before delivery).
      limiter.closed = true;
      cancelGroup(group);
    }
    return undefined;
  }

  /** Starts decoding batch b's samples; the promise never rejects (errors are per sample). */
  #start(b: number, order: Int32Array, decode: (i: number) => Promise<Uint8Array>): Promise<PendingBatch> {
    const indices = this.#batchIndices(order, b);
    const jobs = indices.map((i) =>
      decode(i).then(
        (pixels): SampleResult => ({ ok: true, pixels }),
        (error: unknown): SampleResult => ({ ok: false, error: error instanceof Error ? error : new Error(String(error)) }),
      ),
    );
    return Promise.all(jobs).then((results) => ({ index: b, indices, results }));
  }

  /** One sample of a dataset that is not file-backed: load() here, then sharp. */
  async #sample(i: number, epoch: number): Promise<Uint8Array> {
    const ds = this.dataset;
    const what = ds.source(i);
    const rng = new Rng(STREAM.sample, this.#o.seed, epoch, i);
    let raw;
    try {
      raw = checkRawImage(await ds.load(i), what);
    } catch (err) {
      const msg = reason(err);
      throw msg.includes(what) ? err : new Error(`${what}: ${msg}`, { cause: err });
    }
    return transformSample({ raw }, this.#o.transform, rng, what);
  }

  /** Turns a decoded batch into tensors (or throws the first bad image, with 'fail'). */
  #deliver(p: PendingBatch, epoch: number): Batch | null {
    const kept: number[] = [];
    const pixels: Uint8Array[] = [];
    p.results.forEach((r, k) => {
      if (r.ok) {
        kept.push(p.indices[k]!);
        pixels.push(r.pixels);
      } else if (this.#o.onBadImage === 'fail' || r.error instanceof DecodeWorkerError) {
        throw r.error;
      } else {
        this.#skipped++;
        this.#o.onWarning(`skipping ${r.error.message}`);
      }
    });
    if (kept.length === 0) return null; // every image of this batch was bad
    this.#images += kept.length;
    const S = this.#o.transform.size;
    const per = S * S * 3;
    const bytes = new Uint8Array(kept.length * per);
    pixels.forEach((px, k) => bytes.set(px, k * per));
    return this.#finish(p.index, kept, epoch, () => imagesFromBytes(bytes, kept.length, S));
  }

  /** The in-memory fast path: uint8 batch → float → resize/crop/flip/jitter with libtorch. */
  #arrayBatch(ds: ArrayDataset, indices: number[], epoch: number, b: number): Batch {
    const t = this.#o.transform;
    const { height: H, width: W, channels: C } = ds;
    const per = ds.imageBytes;
    const bytes = new Uint8Array(indices.length * per);
    indices.forEach((i, k) => bytes.set(ds.pixels(i), k * per));
    const augs = indices.map((i) => sampleAugment(t, W, H, new Rng(STREAM.sample, this.#o.seed, epoch, i)));
    return this.#finish(b, indices, epoch, () => {
      let x = permute(tensor(bytes, { shape: [indices.length, H, W, C] }), [0, 3, 1, 2]).to('float32');
      x = arrayGeometry(x, augs, t.size, H, W);
      if (augs.some((a) => a.colour)) x = applyColour(x, augs);
      return x;
    });
  }

  /** Normalises, mixes and packs the tensors, outside every caller scope (the consumer owns them). */
  #finish(b: number, indices: number[], epoch: number, pixels: () => Tensor): Batch {
    const o = this.#o;
    const labelValues = indices.map((i) => this.dataset.label(i));
    for (const [k, l] of labelValues.entries()) {
      if (!Number.isInteger(l) || l < 0 || l >= o.numClasses) {
        throw new RangeError(`${this.dataset.source(indices[k]!)}: label ${l} is outside [0, ${o.numClasses})`);
      }
    }
    const out = noGrad(() =>
      tidy(() => {
        const y = normalizeImages(pixels(), o.transform.mean, o.transform.std).contiguous(o.channelsLast ? 'channelsLast' : 'contiguous');
        const labels = tensor(BigInt64Array.from(labelValues, (l) => BigInt(l)));
        const targets = o.mixup > 0 || o.cutmix > 0 ? mixBatch(y, labels, o, new Rng(STREAM.mix, o.seed, epoch, b)) : undefined;
        return { images: y, labels, targets };
      }),
    );
    keep(out); // out of any scope the consumer has open around next()
    return new LoadedBatch(out.images, out.labels, out.targets, indices, b);
  }
}

/**
 * torchvision's ToTensor + Normalize, op for op, on a float32 [B,C,S,S] batch in 0..255 (C = 1 or 3;
 * in place for RGB, greyscale broadcasts to RGB): x/255, −mean, ÷std. Call it inside tidy.
 */
export function normalizeImages(x: Tensor, mean: readonly number[], std: readonly number[]): Tensor {
  div_(x, 255);
  const m = tensor(Float32Array.from(mean), { shape: [1, 3, 1, 1] });
  const y = x.size(1) === 3 ? sub_(x, m) : sub(x, m);
  return div_(y, tensor(Float32Array.from(std), { shape: [1, 3, 1, 1] }));
}

/** `count` RGB images as NHWC bytes, viewed as a float32 NCHW batch (the copy keeps channels-last strides). */
export function imagesFromBytes(bytes: Uint8Array, count: number, size: number): Tensor {
  return permute(tensor(bytes, { shape: [count, size, size, 3] }), [0, 3, 1, 2]).to('float32');
}

/**
 * Crop/resize/flip of an in-memory batch. RandomResizedCrop (+flip) is one affine_grid +
 * grid_sample over the batch (bilinear, like resizing each crop); otherwise the whole image is
 * resized to size×size (no centre crop, so small digits are never cut) and chosen samples flipped.
 */
function arrayGeometry(x: Tensor, augs: Augment[], size: number, H: number, W: number): Tensor {
  const B = augs.length;
  if (augs[0]?.box) {
    const theta = new Float32Array(B * 6);
    augs.forEach((a, k) => {
      const bx = a.box!;
      // Output [-1, 1] maps onto the crop's pixel edges (align_corners = false).
      const sx = bx.width / W;
      theta.set([a.flip ? -sx : sx, 0, (2 * bx.left + bx.width) / W - 1, 0, bx.height / H, (2 * bx.top + bx.height) / H - 1], k * 6);
    });
    const grid = callTensorOp('aten::affine_grid_generator', [tensor(theta, { shape: [B, 2, 3] }), [B, x.size(1), size, size], false]);
    return callTensorOp('aten::grid_sampler', [x, grid, 0 /* bilinear */, 1 /* border */, false]);
  }
  let y = x;
  if (H !== size || W !== size) {
    // Antialiased when shrinking, as torchvision's Resize on tensors.
    y = size < H || size < W
      ? callTensorOp('aten::_upsample_bilinear2d_aa', [x, [size, size], false, null, null])
      : interpolate(x, { size, mode: 'bilinear', alignCorners: false });
  }
  const flipped = augs.flatMap((a, k) => (a.flip ? [k] : []));
  if (flipped.length > 0) {
    const idx = tensor(BigInt64Array.from(flipped, (k) => BigInt(k)));
    callTensorOp('aten::index_copy_', [y, 0, idx, flip(indexSelect(y, 0, idx), [3])]);
  }
  return y;
}

/** Per-sample colour jitter as a batched affine map: out = M·rgb + t, clamped to 0..255. */
function applyColour(x: Tensor, augs: Augment[]): Tensor {
  const [B, , S] = x.shape as [number, number, number];
  const rgb = reshape(x.size(1) === 3 ? x : expand(x, [B, 3, S, S]), [B, 3, S * S]);
  const means = augs.some((a) => a.colour && needsMean(a.colour)) ? (meanOp(rgb, 2).toArray() as Float32Array) : null;
  const m = new Float32Array(B * 9);
  const t = new Float32Array(B * 3);
  augs.forEach((a, k) => {
    const c = a.colour ? composeColour(a.colour, means ? Array.from(means.subarray(k * 3, k * 3 + 3)) : null) : { m: [1, 0, 0, 0, 1, 0, 0, 0, 1], t: [0, 0, 0] };
    m.set(c.m, k * 9);
    t.set(c.t, k * 3);
  });
  const out = callTensorOp('aten::baddbmm', [tensor(t, { shape: [B, 3, 1] }), tensor(m, { shape: [B, 3, 3] }), rgb]);
  return reshape(clamp_(out, 0, 255), [B, 3, S, S]);
}

/**
 * timm's Mixup in batch mode (label smoothing 0): λ ~ Beta(α, α); mixup blends each image with
 * the batch reversed, cutmix pastes a box of the reversed batch and corrects λ to the box area.
 * Mixes `x` in place and returns the soft targets.
 */
function mixBatch(x: Tensor, labels: Tensor, o: Resolved, rng: Rng): Tensor {
  const useCutmix = o.mixup > 0 && o.cutmix > 0 ? rng.float() < 0.5 : o.cutmix > 0;
  let lam = rng.beta(useCutmix ? o.cutmix : o.mixup, useCutmix ? o.cutmix : o.mixup);
  const reversed = flip(x, [0]);
  if (useCutmix) {
    const [, , H, W] = x.shape as [number, number, number, number];
    const ratio = Math.sqrt(1 - lam);
    const cutH = Math.floor(H * ratio);
    const cutW = Math.floor(W * ratio);
    const cy = rng.int(H);
    const cx = rng.int(W);
    const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
    const [y0, y1] = [clip(cy - (cutH >> 1), H), clip(cy + (cutH >> 1), H)];
    const [x0, x1] = [clip(cx - (cutW >> 1), W), clip(cx + (cutW >> 1), W)];
    if (y1 > y0 && x1 > x0) {
      const box = (t: Tensor) => narrow(narrow(t, 2, y0, y1 - y0), 3, x0, x1 - x0);
      copy_(box(x), box(reversed));
    }
    lam = 1 - ((y1 - y0) * (x1 - x0)) / (H * W);
  } else {
    add_(mul_(x, lam), reversed, 1 - lam);
  }
  const hot = oneHot(labels, o.numClasses).to('float32');
  const hotReversed = flip(hot, [0]); // before hot is scaled in place
  return add_(mul_(hot, lam), hotReversed, 1 - lam);
}
