// DataLoader: epoch coverage and order, resume, bad images, mixup/cutmix, tensor lifetime.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  ArrayDataset, DataLoader, ImageFolder, Scope, evalTransform, memoryStats, mnist, subset, tidy, trainTransform,
  type Batch, type Dataset, type LoaderOptions, type RawImage,
} from '../../src/index.js';
import { pattern, tempDir, writeImage, writeTruncatedJpeg } from './fixtures.js';

const { dir, cleanup } = tempDir('loader');
after(cleanup);

const live = () => {
  globalThis.gc?.();
  return memoryStats().liveHandles;
};

let folder: ImageFolder; // 14 pattern images in 3 classes
let badRoot: string; // the same plus one truncated JPEG
let digits: ArrayDataset; // 100 MNIST samples

before(async () => {
  const root = join(dir, 'good');
  for (let k = 0; k < 14; k++) await writeImage(join(root, `c${k % 3}`, `${String(k).padStart(2, '0')}.png`), pattern(30 + k, 40 - k, k), 30 + k, 40 - k);
  folder = new ImageFolder(root);
  badRoot = join(dir, 'bad');
  for (let k = 0; k < 9; k++) await writeImage(join(badRoot, `c${k % 2}`, `${k}.png`), pattern(24, 24, k), 24, 24);
  await writeTruncatedJpeg(join(badRoot, 'c1', '4b.jpg'));
  const all = mnist();
  digits = subset(all, Array.from({ length: 100 }, (_, i) => i * 97)) as ArrayDataset;
});

async function drain(loader: DataLoader, epoch: number, from?: number): Promise<{ indices: number[][]; index: number[]; images: number[][] }> {
  const out = { indices: [] as number[][], index: [] as number[], images: [] as number[][] };
  for await (const b of loader.epoch(epoch, { from })) {
    out.indices.push(b.indices);
    out.index.push(b.index);
    out.images.push(b.images.toNumbers());
    b.dispose();
  }
  return out;
}

test('every index appears exactly once per epoch; order depends on (seed, epoch) only', async () => {
  for (const [ds, t] of [[digits, trainTransform(28)], [folder, trainTransform(16)]] as const) {
    const loader = new DataLoader(ds, { batchSize: 3, transform: t, seed: 11 });
    assert.equal(loader.batchesPerEpoch, Math.ceil(ds.length / 3));
    const e0 = await drain(loader, 0);
    const flat = e0.indices.flat();
    assert.deepEqual([...flat].sort((a, b) => a - b), Array.from({ length: ds.length }, (_, i) => i));
    assert.notDeepEqual(flat, [...flat].sort((a, b) => a - b), 'shuffled');
    assert.deepEqual(e0.index, Array.from({ length: loader.batchesPerEpoch }, (_, i) => i));
    assert.equal(e0.indices.at(-1)!.length, ds.length % 3 || 3);
    const again = new DataLoader(ds, { batchSize: 3, transform: t, seed: 11 });
    assert.deepEqual(Array.from(again.order(0)), flat);
    assert.notDeepEqual(Array.from(again.order(1)), flat);
    assert.notDeepEqual(Array.from(new DataLoader(ds, { batchSize: 3, transform: t, seed: 12 }).order(0)), flat);
  }
  // Evaluation does not shuffle by default; dropLast drops the short batch.
  const ev = new DataLoader(digits, { batchSize: 8, transform: evalTransform(28), dropLast: true });
  assert.equal(ev.batchesPerEpoch, 12);
  assert.deepEqual((await drain(ev, 0)).indices.flat(), Array.from({ length: 96 }, (_, i) => i));
});

test('resume with `from` yields exactly the tail of the uninterrupted epoch', async () => {
  const t = trainTransform(20, { colorJitter: { brightness: 0.3, contrast: 0.3, saturation: 0.3, hue: 0.05 } });
  for (const ds of [folder, digits] as Dataset[]) {
    // Concurrency 5 with prefetch 3: decodes finish out of order, results must not care.
    const options: LoaderOptions = { batchSize: 4, transform: t, seed: 2, concurrency: 5, prefetch: 3 };
    const full = await drain(new DataLoader(ds, options), 7);
    const tail = await drain(new DataLoader(ds, { ...options, concurrency: 1, prefetch: 1 }), 7, 2);
    assert.deepEqual(tail.index, full.index.slice(2));
    assert.deepEqual(tail.indices, full.indices.slice(2));
    assert.deepEqual(tail.images, full.images.slice(2), 'identical image tensors');
    const none = await drain(new DataLoader(ds, options), 7, full.index.length);
    assert.equal(none.index.length, 0);
  }
});

test("onBadImage 'fail' rejects naming the file; 'skip' drops it, warns once and goes on", async () => {
  const bad = join(badRoot, 'c1', '4b.jpg');
  const ds = new ImageFolder(badRoot);
  const failing = new DataLoader(ds, { batchSize: 4, transform: evalTransform(16) });
  await assert.rejects(drain(failing, 0), (e: Error) => e.message.startsWith(`${bad}: cannot decode image:`));

  const warnings: string[] = [];
  const skipping = new DataLoader(ds, { batchSize: 4, transform: trainTransform(16), onBadImage: 'skip', onWarning: (m) => warnings.push(m) });
  const before = live();
  const got = await drain(skipping, 0);
  assert.equal(live(), before);
  assert.equal(warnings.length, 1);
  assert.ok(warnings[0]!.includes(bad) && warnings[0]!.includes('cannot decode image'), warnings[0]);
  const badIndex = ds.files.indexOf(bad);
  assert.deepEqual(got.indices.flat().sort((a, b) => a - b), Array.from({ length: 10 }, (_, i) => i).filter((i) => i !== badIndex));
  assert.equal(got.indices.map((b) => b.length).filter((n) => n === 3).length, 1, 'one batch is one image short');
  assert.deepEqual(skipping.stats.skipped, 1);
  assert.deepEqual(skipping.stats.images, 9);
});

test('a plain Dataset object works; its load errors name the source', async () => {
  const images = [pattern(10, 12, 1), pattern(12, 10, 2), pattern(8, 8, 3)];
  const ds: Dataset = {
    length: 3, classes: ['a', 'b'],
    label: (i) => i % 2,
    source: (i) => `mem://${i}`,
    load: async (i): Promise<RawImage> => {
      if (i === 2) throw new Error('storage offline');
      return { data: images[i]!, width: i === 0 ? 10 : 12, height: i === 0 ? 12 : 10 };
    },
  };
  const warnings: string[] = [];
  const loader = new DataLoader(ds, { batchSize: 3, transform: evalTransform(8), onBadImage: 'skip', onWarning: (m) => warnings.push(m) });
  const got = await drain(loader, 0);
  assert.deepEqual(got.indices, [[0, 1]]);
  assert.deepEqual(warnings, ['skipping mem://2: storage offline']);
});

test('mixup and cutmix give soft targets whose rows sum to 1, reproducibly', async () => {
  for (const mix of [{ mixup: 0.8 }, { cutmix: 1.0 }, { mixup: 0.8, cutmix: 1.0 }]) {
    for (const ds of [digits, folder] as Dataset[]) {
      const options: LoaderOptions = { batchSize: 6, transform: trainTransform(16), seed: 4, ...mix };
      const loader = new DataLoader(ds, options);
      const it = loader.epoch(0);
      const { value: b } = (await it.next()) as { value: Batch };
      await it.return!();
      assert.deepEqual(b.targets!.shape, [6, ds.classes.length]);
      assert.equal(b.targets!.dtype, 'float32');
      const sums = b.targets!.sum(1);
      assert.ok(sums.toNumbers().every((s) => Math.abs(s - 1) < 1e-5), `${JSON.stringify(mix)} rows sum to 1`);
      const labels = b.labels.toNumbers();
      const t = b.targets!.toNumbers();
      // Row k mixes its own label with the label of row B-1-k.
      for (let k = 0; k < 6; k++) {
        for (let c = 0; c < ds.classes.length; c++) {
          if (t[k * ds.classes.length + c]! > 1e-6) assert.ok(c === labels[k] || c === labels[5 - k], `row ${k} class ${c}`);
        }
      }
      const again = new DataLoader(ds, options).epoch(0);
      const { value: b2 } = (await again.next()) as { value: Batch };
      await again.return!();
      assert.deepEqual(b2.targets!.toNumbers(), t);
      assert.deepEqual(b2.images.toNumbers(), b.images.toNumbers());
      [sums, b, b2].forEach((x) => x.dispose());
    }
  }
  const plain = new DataLoader(digits, { batchSize: 4, transform: evalTransform(28) }).epoch(0);
  const { value: p } = (await plain.next()) as { value: Batch };
  await plain.return!();
  assert.equal(p.targets, undefined);
  assert.equal(p.labels.dtype, 'int64');
  p.dispose();
});

test('mixed images agree with their targets (mixup blends, cutmix pastes a box of the area 1 − λ)', async () => {
  // Six constant grey images with distinct values and labels: every mixed pixel tells its origin.
  const levels = [0, 50, 100, 150, 200, 250];
  const images = new Uint8Array(6 * 256);
  levels.forEach((v, k) => images.fill(v, k * 256, (k + 1) * 256));
  const ds = new ArrayDataset({ images, labels: Uint8Array.from([0, 1, 2, 3, 4, 5]), height: 16, width: 16, channels: 1, classes: ['0', '1', '2', '3', '4', '5'] });
  const value = (v: number) => (v / 255 - 0.485) / 0.229; // channel 0
  for (const [mix, seed] of [[{ mixup: 1 }, 1], [{ cutmix: 1 }, 1], [{ cutmix: 1 }, 2], [{ cutmix: 1 }, 3]] as const) {
    const it = new DataLoader(ds, { batchSize: 6, transform: evalTransform(16), seed, ...mix }).epoch(0);
    const { value: b } = (await it.next()) as { value: Batch };
    await it.return!();
    const x = b.images.toNumbers();
    const t = b.targets!.toNumbers();
    for (let k = 0; k < 6; k++) {
      const lam = t[k * 6 + k]!;
      const plane = x.slice(k * 3 * 256, k * 3 * 256 + 256); // channel 0 of sample k
      if ('mixup' in mix) {
        const want = lam * value(levels[k]!) + (1 - lam) * value(levels[5 - k]!);
        assert.ok(plane.every((v) => Math.abs(v - want) < 1e-4), `mixup row ${k}`);
      } else {
        const pasted = plane.filter((v) => Math.abs(v - value(levels[5 - k]!)) < 1e-4).length;
        const own = plane.filter((v) => Math.abs(v - value(levels[k]!)) < 1e-4).length;
        assert.equal(pasted + own, 256, `cutmix row ${k}: every pixel is its own or its partner's`);
        assert.ok(Math.abs(pasted / 256 - (1 - lam)) < 1e-6, `cutmix row ${k}: pasted share ${pasted / 256} vs 1 − λ = ${1 - lam}`);
      }
    }
    b.dispose();
  }
});

test('no tensor leaks after a full epoch or an early break; batches escape enclosing scopes', async () => {
  for (const ds of [folder, digits] as Dataset[]) {
    const loader = new DataLoader(ds, { batchSize: 4, transform: trainTransform(16, { colorJitter: { contrast: 0.2 } }), mixup: 0.5, prefetch: 3 });
    const start = live();
    await drain(loader, 0);
    assert.equal(live(), start, 'after a full epoch');
    for await (const b of loader.epoch(1)) {
      b.dispose();
      break;
    }
    assert.equal(live(), start, 'after break');
    await new Promise((r) => setTimeout(r, 100)); // in-flight decodes finish and are dropped
    assert.equal(live(), start, 'after in-flight work settled');

    // A consumer scope open across next() must not capture (and free) the batch.
    const it = loader.epoch(2);
    const scope = new Scope();
    const { value: b } = (await it.next()) as { value: Batch };
    scope.end();
    assert.equal(b.images.isDisposed, false);
    const mean = tidy(() => b.images.mean().item());
    assert.ok(Number.isFinite(mean));
    await it.return!();
    b.dispose();
    assert.equal(live(), start, 'after the scoped batch');
  }
});

test('files decode while the main thread is blocked (a synchronous training step)', async () => {
  const root = join(dir, 'large');
  for (let k = 0; k < 8; k++) await writeImage(join(root, `c${k % 2}`, `${k}.png`), pattern(1600, 1600, k), 1600, 1600);
  // One image at a time: each takes several async steps, which must not need this thread
  // (decoded from here, the next batch would cost ~4 × 40 ms after the block).
  const loader = new DataLoader(new ImageFolder(root), { batchSize: 4, transform: evalTransform(64), concurrency: 1, prefetch: 1 });
  const it = loader.epoch(0);
  ((await it.next()).value as Batch).dispose();
  const block = performance.now();
  // The "training step"; long enough for the decode to finish on a loaded 2-core machine too (at
  // 1.5 s a run beside another training job waited 51 ms).
  while (performance.now() - block < 3000);
  loader.resetStats();
  ((await it.next()).value as Batch).dispose();
  assert.ok(loader.stats.waitMs < 80, `waited ${loader.stats.waitMs.toFixed(0)} ms for a batch decoded during the block`);
  await it.return!();
});

test('channelsLast, stats and option validation', async () => {
  const loader = new DataLoader(folder, { batchSize: 5, transform: evalTransform(16), channelsLast: true });
  const got: boolean[] = [];
  for await (const b of loader.epoch(0)) {
    got.push(b.images.isContiguous('channelsLast'));
    assert.deepEqual(b.images.shape.slice(1), [3, 16, 16]);
    b.dispose();
  }
  assert.deepEqual(got, [true, true, true]);
  assert.equal(loader.stats.images, 14);
  assert.ok(loader.stats.waitMs > 0);
  loader.resetStats();
  assert.deepEqual(loader.stats, { waitMs: 0, images: 0, skipped: 0 });

  const t = evalTransform(16);
  assert.throws(() => new DataLoader(folder, { batchSize: 0, transform: t }), /batchSize must be an integer ≥ 1, got 0/);
  assert.throws(() => new DataLoader(folder, { batchSize: 2, transform: t, onBadImage: 'ignore' as 'skip' }), /onBadImage must be 'skip' or 'fail', got 'ignore'/);
  assert.throws(() => new DataLoader(folder, { batchSize: 2, transform: t, batch_size: 3 } as LoaderOptions), /unknown option 'batch_size'/);
  assert.throws(() => new DataLoader(folder, { batchSize: 2, transform: t, mixup: -1 }), /mixup must be a Beta alpha ≥ 0 \(0 = off\), got -1/);
  assert.throws(() => new DataLoader(folder, { batchSize: 2, transform: t, seed: 1.5 }), /seed must be a non-negative integer, got 1\.5/);
  assert.throws(() => new DataLoader(folder, { batchSize: 20, transform: t, dropLast: true }), /batchSize 20 with dropLast leaves no batch from 14 samples/);
  assert.throws(() => new DataLoader(folder, { batchSize: 2, transform: { ...t, size: -3 } }), /transform\.size must be an integer in \[1, 8192\], got -3/);
  assert.throws(() => new DataLoader(folder, { batchSize: 2, transform: t }).epoch(0, { from: 8 }), /from must be an integer in \[0, 7\], got 8/);
});
