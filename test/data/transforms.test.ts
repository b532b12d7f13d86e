// Transforms: defaults and validation, exact eval values, reproducible train randomness, flips,
// colour jitter, RandomResizedCrop boxes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ArrayDataset, DataLoader, ImageFolder, evalTransform, mnist, subset, trainTransform, tensor, type Batch, type Dataset, type TransformOptions } from '../../src/index.js';
import { composeColour, randomResizedCropBox, resolveTransform } from '../../src/data/transforms.js';
import { Rng } from '../../src/data/random.js';
import { assertClose } from '../helpers.js';
import { constant, pattern, tempDir, writeImage } from './fixtures.js';

const { dir, cleanup } = tempDir('transforms');
after(cleanup);

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];
const f = Math.fround;

/** All batches of one epoch, in order; the caller disposes them. */
async function collect(ds: Dataset, transform: TransformOptions, epoch = 0, extra: object = {}): Promise<Batch[]> {
  const loader = new DataLoader(ds, { batchSize: 4, transform, shuffle: false, ...extra });
  const out: Batch[] = [];
  for await (const b of loader.epoch(epoch)) out.push(b);
  return out;
}
const disposeAll = (bs: Batch[]) => bs.forEach((b) => b.dispose());

/** The normalised value torchvision computes for byte c in channel ch, in float32 steps. */
const normalised = (c: number, ch: number) => f(f(f(c / 255) - f(MEAN[ch]!)) / f(STD[ch]!));

test('trainTransform / evalTransform defaults', () => {
  assert.deepEqual(trainTransform(224), {
    size: 224, train: true, randomResizedCrop: { scale: [0.08, 1], ratio: [3 / 4, 4 / 3] }, hflip: 0.5, colorJitter: false,
    cropPct: 0.875, mean: MEAN, std: STD,
  });
  assert.deepEqual(evalTransform(224, { cropPct: 1 }), {
    size: 224, train: false, randomResizedCrop: false, hflip: 0, colorJitter: false, cropPct: 1, mean: MEAN, std: STD,
  });
  // train: false turns randomness off, so a train transform can be reused for evaluation.
  const r = resolveTransform({ ...trainTransform(64, { colorJitter: { brightness: 0.2 } }), train: false });
  assert.deepEqual([r.rrc, r.hflip, r.jitter], [null, 0, null]);
});

test('transform validation names the option and the value', () => {
  assert.throws(() => trainTransform(0), /trainTransform\.size must be an integer in \[1, 8192\], got 0/);
  assert.throws(() => trainTransform(32, { hflip: 1.5 }), /trainTransform\.hflip must be a probability in \[0, 1\], got 1\.5/);
  assert.throws(() => evalTransform(32, { cropPct: 0 }), /evalTransform\.cropPct must be in \(0, 1\], got 0/);
  assert.throws(() => trainTransform(32, { randomResizedCrop: { scale: [0.5, 0.2], ratio: [1, 1] } }), /randomResizedCrop\.scale must be \[min, max\] with 0 < min ≤ max ≤ 1, got \[0\.5,0\.2\]/);
  assert.throws(() => trainTransform(32, { colorJitter: { hue: 0.7 } }), /colorJitter\.hue must be a number in \[0, 0\.5\], got 0\.7/);
  assert.throws(() => trainTransform(32, { colorJitter: { gamma: 1 } as never }), /colorJitter\.gamma is not an option/);
  assert.throws(() => trainTransform(32, { std: [1, 0, 1] }), /std must be 3 positive numbers/);
  assert.throws(() => evalTransform(32, { hflip: 0.5 }), /evalTransform: hflip 0\.5 need train: true/);
});

test('RandomResizedCrop boxes lie inside the image with the requested area and aspect', () => {
  for (let i = 0; i < 300; i++) {
    const rng = new Rng(99, i);
    const b = randomResizedCropBox(rng, 200, 120, [0.2, 0.6], [0.5, 2]);
    assert.ok(b.left >= 0 && b.top >= 0 && b.left + b.width <= 200 && b.top + b.height <= 120, JSON.stringify(b));
    const area = (b.width * b.height) / (200 * 120);
    assert.ok(area > 0.18 && area < 0.63, `area ${area}`);
    const aspect = b.width / b.height;
    assert.ok(aspect > 0.45 && aspect < 2.2, `aspect ${aspect}`);
  }
  // Impossible requests fall back to a centred crop of the nearest allowed aspect ratio.
  const b = randomResizedCropBox(new Rng(1), 300, 100, [1, 1], [1, 1]);
  assert.deepEqual(b, { left: 100, top: 0, width: 100, height: 100 });
});

test('colour maps: hue 1/3 turns red into green, saturation 0 gives grey, brightness scales', () => {
  const apply = (c: { m: number[]; t: number[] }, rgb: number[]) => [0, 1, 2].map((r) => c.m[r * 3]! * rgb[0]! + c.m[r * 3 + 1]! * rgb[1]! + c.m[r * 3 + 2]! * rgb[2]! + c.t[r]!);
  const plan = { order: [0, 1, 2, 3], brightness: 1, contrast: 1, saturation: 1, hue: 1 / 3 };
  assertClose(apply(composeColour(plan, null), [255, 0, 0]), [0, 255, 0], { atol: 1e-9 });
  assertClose(apply(composeColour({ ...plan, hue: 0, saturation: 0 }, null), [255, 0, 0]), [0.299 * 255, 0.299 * 255, 0.299 * 255], { atol: 1e-9 });
  assertClose(apply(composeColour({ ...plan, hue: 0, brightness: 0.5 }, null), [100, 50, 20]), [50, 25, 10], { atol: 1e-9 });
  // Contrast 0 maps everything to the mean grey of the (brightness-scaled) image.
  const grey = 0.299 * 100 + 0.587 * 50 + 0.114 * 20;
  assertClose(apply(composeColour({ ...plan, hue: 0, contrast: 0, brightness: 2 }, [100, 50, 20]), [7, 8, 9]), [2 * grey, 2 * grey, 2 * grey], { atol: 1e-9 });
});

test('eval on a constant-colour image gives exactly (c/255 − mean)/std', async () => {
  const root = join(dir, 'constant');
  const colour = [200, 17, 99] as const;
  await writeImage(join(root, 'x', 'a.png'), constant(50, 40, colour), 50, 40);
  await writeImage(join(root, 'x', 'b.png'), constant(23, 61, colour), 23, 61);
  for (const channelsLast of [false, true]) {
    const [batch] = await collect(new ImageFolder(root), evalTransform(16), 0, { channelsLast });
    assert.deepEqual(batch!.images.shape, [2, 3, 16, 16]);
    assert.equal(batch!.images.isContiguous(channelsLast ? 'channelsLast' : 'contiguous'), true);
    const expected = tensor(Float32Array.from({ length: 2 * 3 * 256 }, (_, i) => normalised(colour[Math.floor(i / 256) % 3]!, Math.floor(i / 256) % 3)), { shape: [2, 3, 16, 16] });
    assertClose(batch!.images, expected, { rtol: 0, atol: 1e-7, what: 'normalised constant image' });
    expected.dispose();
    batch!.dispose();
  }
});

test('eval geometry: shorter side to size/cropPct, centre crop, NCHW layout', async () => {
  const root = join(dir, 'wide');
  const px = pattern(64, 32, 5);
  await writeImage(join(root, 'x', 'a.png'), px, 64, 32);
  const [batch] = await collect(new ImageFolder(root), evalTransform(32, { cropPct: 1 }));
  // No resize is needed (shorter side 32 already): the output is columns 16..47.
  const expected = new Float32Array(3 * 32 * 32);
  for (let c = 0; c < 3; c++) for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) expected[c * 1024 + y * 32 + x] = normalised(px[3 * (y * 64 + x + 16) + c]!, c);
  assertClose(batch!.images, expected, { rtol: 0, atol: 1e-6, what: 'centre crop' });
  batch!.dispose();
});

test('ArrayDataset eval resizes the whole image (no centre crop) and normalises per channel', async () => {
  const grey = new Uint8Array(2 * 28 * 28).fill(77);
  // Sample 1 has a bright 1-pixel frame: a centre crop would cut it away.
  for (let k = 0; k < 28; k++) for (const p of [k, 27 * 28 + k, k * 28, k * 28 + 27]) grey[784 + p] = 255;
  const ds = new ArrayDataset({ images: grey, labels: new Uint8Array([0, 1]), height: 28, width: 28, channels: 1, classes: ['a', 'b'] });
  const [same] = await collect(ds, evalTransform(28));
  const expected = Float32Array.from({ length: 3 * 784 }, (_, i) => normalised(77, Math.floor(i / 784)));
  assertClose(same!.images.select(0, 0), expected, { rtol: 0, atol: 1e-7, what: 'unresized grey' });
  same!.dispose();
  const [big] = await collect(ds, evalTransform(32));
  assert.deepEqual(big!.images.shape, [2, 3, 32, 32]);
  assertClose(big!.images.select(0, 0), Float32Array.from({ length: 3 * 1024 }, (_, i) => normalised(77, Math.floor(i / 1024))), { atol: 1e-5, what: 'resized constant' });
  const frame = big!.images.select(0, 1).select(0, 0); // sample 1, red channel
  const rows = frame.toNumbers();
  assert.ok(rows[0]! > normalised(200, 0) && rows[31 * 32 + 16]! > normalised(200, 0), 'the frame survives at the borders');
  big!.dispose();
});

test('train randomness is reproducible from (seed, epoch) and differs across epochs', async () => {
  const root = join(dir, 'random');
  for (let k = 0; k < 6; k++) await writeImage(join(root, `c${k % 2}`, `${k}.png`), pattern(40 + k, 30, k), 40 + k, 30);
  const folder = new ImageFolder(root);
  const digits = subset(mnist(), [0, 1500, 3000, 4500, 6000, 7500]);
  const t = trainTransform(24, { colorJitter: { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 } });
  for (const ds of [folder, digits]) {
    const a = await collect(ds, t, 3, { seed: 5 });
    const b = await collect(ds, t, 3, { seed: 5 });
    const c = await collect(ds, t, 4, { seed: 5 });
    for (let k = 0; k < a.length; k++) {
      assert.deepEqual(a[k]!.images.toNumbers(), b[k]!.images.toNumbers(), 'same seed and epoch');
      assert.notDeepEqual(a[k]!.images.toNumbers(), c[k]!.images.toNumbers(), 'another epoch');
    }
    [a, b, c].forEach(disposeAll);
  }
});

test('hflip: 1 mirrors the image left-right (file and in-memory paths)', async () => {
  const root = join(dir, 'flip');
  await writeImage(join(root, 'x', 'a.png'), pattern(32, 32, 9), 32, 32);
  const digits = subset(mnist(), [3, 2222]);
  for (const ds of [new ImageFolder(root), digits]) {
    const size = ds instanceof ArrayDataset ? 28 : 32;
    const [plain] = await collect(ds, evalTransform(size, { cropPct: 1 }));
    const [flipped] = await collect(ds, trainTransform(size, { randomResizedCrop: false, hflip: 1, cropPct: 1 }));
    const mirrored = plain!.images.flip([3]);
    assertClose(flipped!.images, mirrored, { rtol: 0, atol: 0, what: 'flipped' });
    assert.notDeepEqual(flipped!.images.toNumbers(), plain!.images.toNumbers());
    mirrored.dispose();
    plain!.dispose();
    flipped!.dispose();
  }
  // In memory, RandomResizedCrop + flip is one grid sample: a whole-image box must map pixel
  // centres onto pixel centres exactly.
  const [plain] = await collect(digits, evalTransform(28));
  const [whole] = await collect(digits, trainTransform(28, { randomResizedCrop: { scale: [1, 1], ratio: [1, 1] }, hflip: 1 }));
  const mirrored = plain!.images.flip([3]);
  assertClose(whole!.images, mirrored, { atol: 1e-5, what: 'whole-image crop, flipped' });
  [plain!, whole!, mirrored].forEach((x) => x.dispose());
});

test('colour jitter changes colours reproducibly; saturation leaves grey images grey', async () => {
  const digits = subset(mnist(), [10, 20, 30, 40]);
  const [plain] = await collect(digits, trainTransform(28, { randomResizedCrop: false, hflip: 0 }));
  const [sat] = await collect(digits, trainTransform(28, { randomResizedCrop: false, hflip: 0, colorJitter: { saturation: 0.9 } }));
  assertClose(sat!.images, plain!.images, { atol: 1e-4, what: 'saturation on grey' });
  const [bright] = await collect(digits, trainTransform(28, { randomResizedCrop: false, hflip: 0, colorJitter: { brightness: 0.5 } }));
  assert.notDeepEqual(bright!.images.toNumbers(), plain!.images.toNumbers());
  [plain, sat, bright].forEach((b) => b!.dispose());

  // On a colour file the whole sharp pipeline runs (crop + flip + jitter) and stays in range.
  const root = join(dir, 'jitter');
  await writeImage(join(root, 'x', 'a.png'), pattern(48, 48, 1), 48, 48);
  const t = trainTransform(20, { colorJitter: { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.2 } });
  const [j] = await collect(new ImageFolder(root), t, 0, { seed: 3 });
  const values = j!.images.toNumbers();
  const lo = Math.min(...[0, 1, 2].map((c) => normalised(0, c)));
  const hi = Math.max(...[0, 1, 2].map((c) => normalised(255, c)));
  assert.ok(values.every((v) => v >= lo - 1e-6 && v <= hi + 1e-6));
  j!.dispose();
});
