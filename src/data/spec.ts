// Data specs: what `--data` and `--val-data` (and DataOptions.data/valData) may name (a built-in
// data set, an image folder with or without a train/val split, or a .csv list of path,label) and
// how one opens into a training set and a validation set with consistent classes.
import { existsSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { ArrayDataset, splitDataset, type Dataset } from './dataset.js';
import { CsvList, ImageFolder } from './folder.js';
import { fashionMnist, mnist } from './builtin.js';

export interface DataOptions {
  /** 'fashion-mnist', 'mnist', a folder (ImageFolder; with train/ and val|validation|test/ inside, those are the split) or a .csv list. */
  data: string;
  /** A separate validation set (same forms as `data`); otherwise split off by seed. */
  valData?: string;
  /** Fraction held out for validation when the data has no split (default 0.1). */
  valSplit?: number;
  imageSize?: number;
  batchSize?: number;
  seed?: number;
  /** 'default': RandomResizedCrop + flip for photos, none for digit-like arrays; 'none': eval transform for training too. */
  augment?: 'default' | 'none';
  colorJitter?: number;
  mixup?: number;
  cutmix?: number;
  onBadImage?: 'skip' | 'fail';
  /** Images decoded at once. */
  workers?: number;
  /**
   * Train in channels-last layout: 4-D weights and image batches with NHWC strides, which oneDNN
   * convolves without reordering (docs/performance.md#channels-last-training). `tune()` defaults
   * it to the model config's memoryFormat (on for the CNN families, off for transformers, where
   * only the patch embedding is a convolution); `makeLoaders` alone takes it as given. Results
   * match NCHW to float rounding.
   */
  channelsLast?: boolean;
}

export interface DataSplit {
  train: Dataset;
  val: Dataset | null;
  classes: readonly string[];
  /** True for in-memory same-size image arrays (digits), which are resized whole, never cropped. */
  arrays: boolean;
}

/** The built-in data sets a spec can name instead of a path. */
export const BUILTIN_DATA: readonly string[] = ['fashion-mnist', 'fashion-mnist:train', 'fashion-mnist:test', 'mnist'];

/** A data spec with its path made absolute (built-in names stay as they are), so a run resumes from any folder. */
export function absoluteDataSpec(spec: string): string {
  return BUILTIN_DATA.includes(spec) ? spec : resolve(spec);
}

/**
 * One data set from a spec: a built-in name, a folder (one ImageFolder: its subfolders are the
 * classes; only openData looks for a train/ and val/ split) or a .csv list. `what` names the spec in
 * errors ('data', 'val-data').
 */
export function openOne(spec: string, what: string): Dataset {
  if (spec === 'fashion-mnist' || spec === 'fashion-mnist:train') return fashionMnist({ split: 'train' });
  if (spec === 'fashion-mnist:test') return fashionMnist({ split: 'test' });
  if (spec === 'mnist') return mnist();
  if (!existsSync(spec)) throw new Error(`${what} '${spec}' is not a file, a folder, or one of fashion-mnist, fashion-mnist:test, mnist`);
  if (statSync(spec).isDirectory()) return new ImageFolder(spec);
  if (extname(spec).toLowerCase() === '.csv') return new CsvList(spec);
  throw new Error(`${what} '${spec}' is a file but not a .csv list; give a folder (one subfolder per class) or a .csv of path,label`);
}

/** Resolves data specs into a train/validation pair with consistent classes. */
export function openData(options: DataOptions): DataSplit {
  const seed = options.seed ?? 0;
  const valSplit = options.valSplit ?? 0.1;
  if (!(valSplit >= 0 && valSplit < 1)) throw new RangeError(`valSplit must be in [0, 1), got ${valSplit}`);
  let train: Dataset;
  let val: Dataset | null = null;
  const { data } = options;
  if (options.valData) {
    train = openOne(data, 'data');
    val = openOne(options.valData, 'val-data');
  } else if (data === 'fashion-mnist') {
    train = fashionMnist({ split: 'train' });
    val = fashionMnist({ split: 'test' });
  } else if (existsSync(join(data, 'train')) && statSync(join(data, 'train')).isDirectory()) {
    train = new ImageFolder(join(data, 'train'));
    const v = ['val', 'validation', 'test'].map((n) => join(data, n)).find((p) => existsSync(p) && statSync(p).isDirectory());
    val = v ? new ImageFolder(v) : null;
  } else {
    train = openOne(data, 'data');
  }
  if (!val && valSplit > 0) ({ train, val } = splitDataset(train, { valFraction: valSplit, seed }));
  if (val && val.classes.join('\n') !== train.classes.join('\n')) {
    throw new Error(`the validation set's classes (${val.classes.join(', ')}) differ from the training set's (${train.classes.join(', ')})`);
  }
  if (train.length === 0) throw new Error(`data '${data}': the training set is empty`);
  return { train, val, classes: train.classes, arrays: train instanceof ArrayDataset };
}
