// The Dataset contract, in-memory datasets, subsets and seeded train/validation splits.
import { type RawImage } from './image.js';
import { Rng, STREAM, checkSeed } from './random.js';

export interface Dataset {
  readonly length: number;
  /** Class names; index = label. */
  readonly classes: readonly string[];
  /** The label of sample i, without decoding it. */
  label(i: number): number;
  /** Where sample i comes from: a file path, or e.g. 'fashion-mnist/train#123'. */
  source(i: number): string;
  /** Decodes sample i; rejects with an Error whose message names source(i). */
  load(i: number): Promise<RawImage>;
}

/**
 * @internal Datasets backed by image files implement this, so the loader's worker reads each
 * file and decodes + transforms it in one sharp pipeline (JPEG shrink-on-load, no full-size RGB
 * copy, no main-thread work).
 */
export const ENCODED: unique symbol = Symbol('deltatune.data.encoded');

export interface EncodedSource {
  /** The image file of sample i. */
  [ENCODED](i: number): string;
}

export function hasEncoded(ds: Dataset): ds is Dataset & EncodedSource {
  return typeof (ds as Partial<EncodedSource>)[ENCODED] === 'function';
}

/** Throws a RangeError naming the dataset source when i is not a valid index. */
export function checkIndex(ds: { length: number }, i: number, what: string): void {
  if (!Number.isInteger(i) || i < 0 || i >= ds.length) {
    throw new RangeError(`${what}: index ${i} is out of range for a dataset of ${ds.length} samples`);
  }
}

/** Checks that an object looks like a Dataset (it may come from plain JS). */
export function checkDataset(ds: unknown, what: string): Dataset {
  const d = ds as Dataset;
  if (
    !d || typeof d !== 'object' || !Number.isInteger(d.length) || d.length < 0 || !Array.isArray(d.classes) ||
    typeof d.label !== 'function' || typeof d.source !== 'function' || typeof d.load !== 'function'
  ) {
    throw new TypeError(`${what}: expected a Dataset (length, classes, label(), source(), load()), got ${String(ds)}`);
  }
  return d;
}

export interface ArrayDatasetInit {
  /** n images of height*width*channels bytes each, HWC, back to back. */
  images: Uint8Array;
  labels: Uint8Array | Int32Array;
  height: number;
  width: number;
  channels: 1 | 3;
  classes: readonly string[];
  /** Prefix of source(i) (default 'array'). */
  name?: string;
  /** Original sample numbers used in source(i) (set by subset, so sources stay stable). */
  ids?: Int32Array;
}

/**
 * Same-size 8-bit images held in memory (greyscale or RGB): MNIST, Fashion-MNIST, or any
 * decoded collection. The loader batches these without sharp (uint8 bytes → one tensor).
 */
export class ArrayDataset implements Dataset {
  readonly images: Uint8Array;
  readonly labels: Uint8Array | Int32Array;
  readonly height: number;
  readonly width: number;
  readonly channels: 1 | 3;
  readonly classes: readonly string[];
  readonly name: string;
  readonly #ids: Int32Array | undefined;

  constructor(init: ArrayDatasetInit) {
    const { images, labels, height, width, channels, classes } = init;
    if (!(images instanceof Uint8Array)) throw new TypeError('ArrayDataset: images must be a Uint8Array');
    if (!(labels instanceof Uint8Array || labels instanceof Int32Array)) throw new TypeError('ArrayDataset: labels must be a Uint8Array or an Int32Array');
    for (const [k, v] of [['height', height], ['width', width]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`ArrayDataset: ${k} must be a positive integer, got ${v}`);
    }
    if (channels !== 1 && channels !== 3) throw new RangeError(`ArrayDataset: channels must be 1 or 3, got ${String(channels)}`);
    if (!Array.isArray(classes) || classes.length === 0) throw new TypeError('ArrayDataset: classes must be a non-empty array of names');
    const per = height * width * channels;
    if (images.length !== labels.length * per) {
      throw new RangeError(`ArrayDataset: images holds ${images.length} bytes, but ${labels.length} labels × ${height}×${width}×${channels} need ${labels.length * per}`);
    }
    for (let i = 0; i < labels.length; i++) {
      const l = labels[i]!;
      if (l < 0 || l >= classes.length) throw new RangeError(`ArrayDataset: label ${l} of sample ${i} is outside [0, ${classes.length})`);
    }
    if (init.ids && init.ids.length !== labels.length) throw new RangeError('ArrayDataset: ids must have one entry per sample');
    this.images = images;
    this.labels = labels;
    this.height = height;
    this.width = width;
    this.channels = channels;
    this.classes = Object.freeze([...classes]);
    this.name = init.name ?? 'array';
    this.#ids = init.ids;
  }

  get length(): number {
    return this.labels.length;
  }

  /** Bytes per image. */
  get imageBytes(): number {
    return this.height * this.width * this.channels;
  }

  label(i: number): number {
    checkIndex(this, i, `${this.name}.label`);
    return this.labels[i]!;
  }

  source(i: number): string {
    checkIndex(this, i, `${this.name}.source`);
    return `${this.name}#${this.#ids ? this.#ids[i] : i}`;
  }

  /** The stored bytes of image i (a view, HWC with `channels` channels). */
  pixels(i: number): Uint8Array {
    const per = this.imageBytes;
    return this.images.subarray(i * per, (i + 1) * per);
  }

  async load(i: number): Promise<RawImage> {
    checkIndex(this, i, `${this.name}.load`);
    const px = this.pixels(i);
    if (this.channels === 3) return { data: px.slice(), width: this.width, height: this.height };
    // Greyscale → RGB, as PIL's convert('RGB').
    const rgb = new Uint8Array(px.length * 3);
    for (let p = 0; p < px.length; p++) rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = px[p]!;
    return { data: rgb, width: this.width, height: this.height };
  }

  /** A copy holding the listed samples, in that order (sources keep their original numbers). */
  select(indices: readonly number[]): ArrayDataset {
    const per = this.imageBytes;
    const images = new Uint8Array(indices.length * per);
    const labels = new (this.labels.constructor as Uint8ArrayConstructor | Int32ArrayConstructor)(indices.length);
    const ids = new Int32Array(indices.length);
    indices.forEach((src, k) => {
      images.set(this.pixels(src), k * per);
      labels[k] = this.labels[src]!;
      ids[k] = this.#ids ? this.#ids[src]! : src;
    });
    return new ArrayDataset({ images, labels, height: this.height, width: this.width, channels: this.channels, classes: this.classes, name: this.name, ids });
  }
}

/** A view of some samples of another dataset, in the given order. */
class Subset implements Dataset {
  readonly #base: Dataset;
  readonly #indices: Int32Array;

  constructor(base: Dataset, indices: Int32Array) {
    this.#base = base;
    this.#indices = indices;
    // Keep the encoded-file fast path of the base.
    if (hasEncoded(base)) {
      (this as unknown as EncodedSource)[ENCODED] = (i: number) => base[ENCODED](this.#map(i, 'load'));
    }
  }

  get length(): number {
    return this.#indices.length;
  }
  get classes(): readonly string[] {
    return this.#base.classes;
  }
  #map(i: number, what: string): number {
    checkIndex(this, i, `subset.${what}`);
    return this.#indices[i]!;
  }
  label(i: number): number {
    return this.#base.label(this.#map(i, 'label'));
  }
  source(i: number): string {
    return this.#base.source(this.#map(i, 'source'));
  }
  load(i: number): Promise<RawImage> {
    try {
      return this.#base.load(this.#map(i, 'load'));
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

/**
 * The listed samples of `ds`, in that order (repeats allowed). An ArrayDataset gives an
 * ArrayDataset (a compact copy), so the loader keeps its fast in-memory path.
 */
export function subset(ds: Dataset, indices: readonly number[]): Dataset {
  checkDataset(ds, 'subset');
  if (!Array.isArray(indices)) throw new TypeError('subset: indices must be an array of sample numbers');
  for (const i of indices) checkIndex(ds, i, 'subset');
  if (ds instanceof ArrayDataset) return ds.select(indices);
  return new Subset(ds, Int32Array.from(indices));
}

export interface SplitOptions {
  /** Share of the samples that go to validation, in (0, 1). */
  valFraction: number;
  seed: number;
  /** Keep class proportions in both parts (default true). */
  stratified?: boolean;
}

/**
 * Splits a dataset into train and validation parts, deterministically from `seed`. Stratified,
 * each class contributes round(count × valFraction) samples to validation. Both parts keep the
 * original sample order.
 */
export function splitDataset(ds: Dataset, options: SplitOptions): { train: Dataset; val: Dataset } {
  checkDataset(ds, 'splitDataset');
  const { valFraction } = options ?? ({} as SplitOptions);
  if (typeof valFraction !== 'number' || !(valFraction > 0 && valFraction < 1)) {
    throw new RangeError(`splitDataset: valFraction must be a number in (0, 1), got ${String(valFraction)}`);
  }
  const seed = checkSeed(options.seed, 'splitDataset: seed');
  const stratified = options.stratified ?? true;
  if (typeof stratified !== 'boolean') throw new TypeError(`splitDataset: stratified must be a boolean, got ${String(stratified)}`);

  const isVal = new Uint8Array(ds.length);
  const groups: number[][] = [];
  if (stratified) {
    for (let i = 0; i < ds.length; i++) (groups[ds.label(i)] ??= []).push(i);
  } else {
    groups.push(Array.from({ length: ds.length }, (_, i) => i));
  }
  groups.forEach((members, g) => {
    if (!members) return;
    const rng = new Rng(STREAM.split, seed, g);
    rng.shuffle(members);
    const nVal = Math.round(members.length * valFraction);
    for (let k = 0; k < nVal; k++) isVal[members[k]!] = 1;
  });
  const train: number[] = [];
  const val: number[] = [];
  for (let i = 0; i < ds.length; i++) (isVal[i] ? val : train).push(i);
  if (val.length === 0 || train.length === 0) {
    throw new RangeError(`splitDataset: valFraction ${valFraction} of ${ds.length} samples leaves ${val.length === 0 ? 'no validation' : 'no training'} samples`);
  }
  return { train: subset(ds, train), val: subset(ds, val) };
}
