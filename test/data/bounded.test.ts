// Bounded inputs (issue 16), data side: a FIFO, /dev/zero, a directory, or a symlink to one,
// given as an image is an ordinary bad image (onBadImage 'fail' names it, 'skip' skips it with a
// warning naming it), never a hang; CSV lists and dataset files are read only when regular; class
// counts and image pixel counts are capped by named limits.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, gzipSync } from 'node:zlib';
import { CsvList, DataLoader, ImageFiles, ImageFolder, decodeImage, evalTransform, fashionMnist } from '../../src/index.js';
import { INPUT_LIMITS } from '../../src/io/index.js';
import { pattern, tempDir, writeImage } from './fixtures.js';
import { nonRegularInputs } from '../helpers.js';

const { dir, cleanup } = tempDir('bounded');
after(cleanup);

const { fifo, bad: BAD } = nonRegularInputs(dir, '.png');

/**
 * Runs fn while a watchdog, after 4 s, opens the FIFO for writing: a reader blocked in open()
 * (the bug) is released and the elapsed-time assertion fails rather than the suite hanging.
 */
async function promptly<T>(fn: () => Promise<T> | T, what: string, pipe = fifo): Promise<T> {
  const watchdog = spawn('sh', ['-c', 'sleep 4; exec 3>"$0"', pipe], { stdio: 'ignore' });
  const start = Date.now();
  try {
    return await fn();
  } finally {
    watchdog.kill();
    const ms = Date.now() - start;
    assert.ok(ms < 3000, `${what} took ${ms} ms`);
  }
}

async function drain(loader: DataLoader): Promise<number[][]> {
  const out: number[][] = [];
  for await (const b of loader.epoch(0)) {
    out.push(b.indices);
    b.dispose();
  }
  return out;
}

test("non-regular images: onBadImage 'fail' rejects naming the file, 'skip' skips each with a warning naming it; promptly", { timeout: 30_000 }, async () => {
  const good = await writeImage(join(dir, 'good.png'), pattern(12, 10), 12, 10);
  const files = [good, ...BAD.map(([p]) => p), good];
  const ds = new ImageFiles(files, ['x']);
  const t = evalTransform(8);

  await promptly(() => assert.rejects(drain(new DataLoader(ds, { batchSize: files.length, transform: t })), (e: Error) => {
    assert.ok(e.message.startsWith(`${fifo}: cannot read image file: the image file is a FIFO (named pipe), not a regular file`), e.message);
    return true;
  }), "onBadImage 'fail'");

  const warnings: string[] = [];
  const loader = new DataLoader(ds, { batchSize: 3, transform: t, onBadImage: 'skip', onWarning: (m) => warnings.push(m) });
  const batches = await promptly(() => drain(loader), "onBadImage 'skip'");
  assert.deepEqual(batches.flat().sort(), [0, files.length - 1]);
  assert.equal(warnings.length, BAD.length);
  for (const [path, words] of BAD) {
    const w = warnings.find((m) => m.startsWith(`skipping ${path}: cannot read image file: `));
    assert.ok(w, `a warning names ${path}: ${warnings.join(' | ')}`);
    assert.match(w, words);
  }
  assert.equal(loader.stats.skipped, BAD.length);

  // The main-thread paths: Dataset.load() and decodeImage(path).
  for (const [k, [path, words]] of BAD.entries()) {
    await promptly(() => assert.rejects(ds.load(k + 1), (e: Error) => e.message.startsWith(`${path}: cannot read image file: `) && words.test(e.message)), `load(${path})`);
    await promptly(() => assert.rejects(decodeImage(path), (e: Error) => e.message.startsWith(`${path}: cannot decode image: the image file is `) && words.test(e.message)), `decodeImage(${path})`);
  }
});

/** A real 4×4 PNG whose IHDR (with a correct CRC) claims width × height. */
async function pngClaiming(path: string, width: number, height: number): Promise<string> {
  await writeImage(path, pattern(4, 4), 4, 4);
  const b = readFileSync(path);
  assert.equal(b.toString('latin1', 12, 16), 'IHDR');
  b.writeUInt32BE(width, 16);
  b.writeUInt32BE(height, 20);
  b.writeUInt32BE(crc32(b.subarray(12, 29)), 29);
  writeFileSync(path, b);
  return path;
}

test('an image whose header claims 60000×60000 pixels is refused naming the file and the pixel limit', { timeout: 30_000 }, async () => {
  const huge = await pngClaiming(join(dir, 'huge.png'), 60000, 60000);
  const limit = `it is 60000×60000 = 3,600,000,000 pixels, more than the limit of ${INPUT_LIMITS.imagePixels.toLocaleString('en-US')} pixels (width × height, INPUT_LIMITS.imagePixels)`;
  const rss = process.memoryUsage().rss;
  await assert.rejects(decodeImage(huge), (e: Error) => e.message === `${huge}: cannot decode image: ${limit}`);
  await assert.rejects(decodeImage(readFileSync(huge), 'upload #1'), (e: Error) => e.message === `upload #1: cannot decode image: ${limit}`);

  const good = await writeImage(join(dir, 'good2.png'), pattern(9, 9), 9, 9);
  const ds = new ImageFiles([huge, good], ['x']);
  await assert.rejects(ds.load(0), (e: Error) => e.message === `${huge}: cannot decode image: ${limit}`);
  // The loader's worker decodes with the transform in one sharp pipeline: same refusal.
  await assert.rejects(drain(new DataLoader(ds, { batchSize: 2, transform: evalTransform(8) })), (e: Error) => e.message === `${huge}: cannot decode image: ${limit}`);
  const warnings: string[] = [];
  const batches = await drain(new DataLoader(ds, { batchSize: 2, transform: evalTransform(8), onBadImage: 'skip', onWarning: (m) => warnings.push(m) }));
  assert.deepEqual(batches, [[1]]);
  assert.deepEqual(warnings, [`skipping ${huge}: cannot decode image: ${limit}`]);
  // Nothing near 3.6 G pixels × 3 bytes was allocated.
  assert.ok(process.memoryUsage().rss - rss < 512 << 20);
});

test('a CSV list that is a FIFO, /dev/zero, a directory or a symlink to one is refused at once naming it', async () => {
  for (const [path, words] of BAD) {
    await promptly(() => {
      assert.throws(() => new CsvList(path), (e: Error) => {
        assert.ok(e.message.startsWith(`CsvList: cannot read ${path}: the CSV list is `), e.message);
        assert.match(e.message, words);
        return true;
      });
    }, `CsvList(${path})`);
  }
});

test('CsvList: class counts are capped at INPUT_LIMITS.classes, naming the file and line', () => {
  const csv = join(dir, 'numbers.csv');
  writeFileSync(csv, 'path,label\na.png,0\nb.png,20000000\nc.png,3\n');
  assert.throws(() => new CsvList(csv), (e: Error) => {
    assert.equal(e.message, `${csv}:3: class number 20000000 would make 20,000,001 classes (all-numeric labels give classes 0..max), more than the limit of 100,000 (INPUT_LIMITS.classes)`);
    return true;
  });
  // The same number among class names is just a name.
  writeFileSync(csv, 'a.png,cat\nb.png,20000000\n');
  assert.deepEqual(new CsvList(csv).classes, ['20000000', 'cat']);
  // 99,999 is the largest class number allowed.
  writeFileSync(csv, 'a.png,99999\n');
  assert.equal(new CsvList(csv).classes.length, 100_000);

  const names = join(dir, 'names.csv');
  const lines = Array.from({ length: INPUT_LIMITS.classes + 1 }, (_, i) => `img${i}.png,class${i}`);
  writeFileSync(names, `${lines.join('\n')}\n`);
  assert.throws(() => new CsvList(names), (e: Error) => {
    assert.equal(e.message, `${names}:100001: label 'class100000' makes more than 100,000 distinct classes, the limit (INPUT_LIMITS.classes)`);
    return true;
  });
  // Given classes are checked too.
  assert.throws(() => new CsvList(csv, { classes: Array.from({ length: 100_001 }, (_, i) => `c${i}`) }), /classes has 100,001 names, more than the limit of 100,000 \(INPUT_LIMITS\.classes\)/);
});

test('ImageFolder follows symlinked folders, but a symlink loop is an error naming the link', async () => {
  const root = join(dir, 'looped');
  await writeImage(join(root, 'cat', 'a.png'), pattern(4, 4), 4, 4);
  await writeImage(join(root, 'dog', 'b.png'), pattern(4, 4), 4, 4);
  // A class folder linked into another class is followed, as torchvision does.
  const shared = join(dir, 'shared');
  await writeImage(join(shared, 'c.png'), pattern(4, 4), 4, 4);
  symlinkSync(shared, join(root, 'dog', 'more'));
  symlinkSync(shared, join(root, 'cat', 'more'));
  const ok = new ImageFolder(root);
  assert.deepEqual(ok.files.map((f) => f.slice(root.length + 1)), ['cat/a.png', 'cat/more/c.png', 'dog/b.png', 'dog/more/c.png']);

  const link = join(root, 'dog', 'up');
  symlinkSync('..', link); // dog/up -> root: root/dog/up/dog/up/... forever
  const start = Date.now();
  assert.throws(() => new ImageFolder(root), (e: Error) => {
    assert.match(e.message, /^ImageFolder: .* leads to .*, which this class already lists as .* \(a symlink loop, or two links to one folder/);
    assert.ok(e.message.includes(join(root, 'dog', 'up')), e.message);
    return true;
  });
  assert.ok(Date.now() - start < 2000);
});

test('fashionMnist: a FIFO in place of a data file is refused at once naming it', async () => {
  const fake = join(dir, 'fake-fashion');
  mkdirSync(fake);
  execFileSync('mkfifo', [join(fake, 't10k-images-idx3-ubyte.gz')]);
  writeFileSync(join(fake, 't10k-labels-idx1-ubyte.gz'), gzipSync(Buffer.alloc(8)));
  const images = join(fake, 't10k-images-idx3-ubyte.gz');
  await promptly(() => {
    assert.throws(() => fashionMnist({ dir: fake, split: 'test' }), (e: Error) => e.message === `${images}: cannot read: the gzipped IDX file is a FIFO (named pipe), not a regular file`);
  }, 'fashionMnist', images);
});
