// The exported model's web page (src/export/web.ts) in a real browser: Debian's chromium, driven by
// playwright-core, opens the page from a local HTTP server and classifies images as
// onnxruntime-node (and deltatune itself) do on deltatune's own preprocessing of the same files,
// through the page's test hook, its file input, its drop zone and, with cross-origin isolation, on
// threads; a file the browser cannot decode, or a missing weights file, shows an error in the page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, extname, join, resolve, sep } from 'node:path';
import * as ort from 'onnxruntime-node';
import { chromium, type Browser, type Page } from 'playwright-core';
import sharp from 'sharp';
import {
  DataLoader, ImageFiles, applyDelta, createModel, evalTransform, exportOnnx, manualSeed, noGrad, predictFiles, randn, tensor, tidy,
  type ExportedOnnx, type Tensor, type Tuned, type VisionModel,
} from '../../src/index.js';
import { ORT_WEB_FILES, writeWebPage } from '../../src/export/web.js';
import { ROOT } from '../helpers.js';

// These run inside the page (playwright serialises them); the project compiles without the DOM lib.
declare const document: { querySelector(selector: string): { textContent: string | null } | null };
declare const DataTransfer: new () => { items: { add(file: unknown): void } };

const CHROMIUM = '/usr/bin/chromium';
const NO_BROWSER = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (Debian's chromium package runs the page)`;
// This machine's network is closed: no QUIC, background fetches, component updates or sync.
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SCREENSHOT = join(ROOT, 'dist', 'test-artifacts', 'export-web.png');

const MODEL = 'resnet18';
const CLASSES = ['a', 'b', 'c'];
const PREPROCESS = { size: 64, cropPct: 0.875, mean: [0.485, 0.456, 0.406] as [number, number, number], std: [0.229, 0.224, 0.225] as [number, number, number] };
/** The browser resizes with its own filter: probabilities agree to within PROB_TOL, and the top-1 where Node's leads by MIN_MARGIN. */
const PROB_TOL = 1e-2;
const MIN_MARGIN = 0.1;

let dir = '';
let pageDir = '';
let exported: ExportedOnnx;
/** The test images (in pageDir/images) with Node's probabilities, top-1, and its lead over the second. */
let images: { file: string; probs: number[]; top1: number; margin: number }[] = [];
let browser: Browser | undefined;
const servers: { close(): Promise<void> }[] = [];

/** Smooth colour patterns of several sizes and aspect ratios, a greyscale one and an EXIF-rotated JPEG. */
async function writeImages(out: string): Promise<string[]> {
  mkdirSync(out, { recursive: true });
  const files: string[] = [];
  for (let k = 0; k < 10; k++) {
    const [w, h] = [90 + 9 * k, 130 - 5 * k];
    const hue = k / 10;
    const px = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const [u, v] = [x / w, y / h];
        px.set([
          127.5 + 127.5 * Math.sin(6.28 * (hue + u)), 127.5 + 127.5 * Math.sin(6.28 * (2 * hue + v) + 1), 127.5 + 127.5 * Math.cos(6.28 * (u * v + hue)),
        ].map(Math.round), (y * w + x) * 3);
      }
    }
    const img = sharp(px, { raw: { width: w, height: h, channels: 3 } });
    const file = join(out, k === 3 ? `pattern${k}-grey.png` : k === 7 ? `pattern${k}-rotated.jpg` : `pattern${k}.png`);
    if (k === 3) await img.greyscale().png().toFile(file);
    else if (k === 7) await img.jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toFile(file);
    else await img.png().toFile(file);
    files.push(file);
  }
  return files;
}

/** deltatune's eval preprocessing of `files` (sharp) as one batch, for the model's input. */
async function nodeInput(files: string[]): Promise<{ data: Float32Array; shape: number[] }> {
  const loader = new DataLoader(new ImageFiles(files, CLASSES), { batchSize: files.length, transform: evalTransform(PREPROCESS.size, PREPROCESS), shuffle: false });
  for await (const batch of loader.epoch(0)) {
    try {
      return { data: batch.images.toArray() as Float32Array, shape: [...batch.images.shape] };
    } finally {
      batch.dispose();
    }
  }
  throw new Error('the loader gave no batch');
}

function softmaxRows(logits: Float32Array, classes: number): number[][] {
  const rows: number[][] = [];
  for (let r = 0; r < logits.length / classes; r++) {
    const row = Array.from(logits.subarray(r * classes, (r + 1) * classes));
    const max = Math.max(...row);
    const e = row.map((x) => Math.exp(x - max));
    const sum = e.reduce((a, b) => a + b, 0);
    rows.push(e.map((x) => x / sum));
  }
  return rows;
}

/**
 * A resnet18 with a Mona delta, random but seeded, the delta moved off its identity start as after
 * training, the head's bias set so that each class's logit averages 0 over the images (else they
 * all fall in one class). A random MobileNet would not do: its eval-mode output hardly depends on
 * the image.
 */
function toyModel(x: { data: Float32Array; shape: number[] }): { model: VisionModel; tuned: Tuned } {
  manualSeed(7);
  const model = createModel(MODEL, { numClasses: CLASSES.length });
  const delta = applyDelta(model, { method: 'mona', numClasses: CLASSES.length });
  noGrad(() => delta.trainableParameters().forEach((p) => tidy(() => void p.add_(randn(p.shape).mul(0.05)))));
  model.eval();
  // Centre each class's logit over the images, so that they do not all fall in one class.
  const head = model.getSubmodule(model.config.classifier) as unknown as { bias: Tensor };
  noGrad(() => tidy(() => void head.bias.sub_(model.forward(tensor(x.data, { shape: x.shape })).mean([0]))));
  const tuned = { model, delta, classes: CLASSES, preprocess: evalTransform(PREPROCESS.size, PREPROCESS), dispose() {} } as unknown as Tuned;
  return { model, tuned };
}

/** A static file server for `root` on 127.0.0.1; `headers` go on every response, `hide` are 404s. Records the paths asked for. */
async function serve(root: string, headers: Record<string, string> = {}, hide: string[] = []): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const TYPES: Record<string, string> = {
    '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
    '.json': 'application/json', '.wasm': 'application/wasm', '.onnx': 'application/octet-stream', '.bin': 'application/octet-stream',
    '.png': 'image/png', '.jpg': 'image/jpeg',
  };
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const fail = (status: number) => res.writeHead(status, { 'content-type': 'text/plain', ...headers }).end(String(status));
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    } catch {
      return fail(400);
    }
    requests.push(path);
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405);
    const file = resolve(root, `.${path.endsWith('/') ? `${path}index.html` : path}`);
    if (path.includes('\0') || !file.startsWith(root + sep)) return fail(403);
    if (hide.includes(path) || !existsSync(file) || !statSync(file).isFile()) return fail(404);
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-length': statSync(file).size, ...headers });
    if (req.method === 'HEAD') return res.end();
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  const handle = {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((ok) => {
      server.closeAllConnections();
      server.close(() => ok());
    }),
  };
  servers.push(handle);
  return handle;
}

/** `promise`, or a rejection naming `what` after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, fail) => { timer = setTimeout(() => fail(new Error(`${what}: no answer in ${ms} ms`)), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

interface PageRun { page: Page; errors: string[]; close(): Promise<void> }

/** A new page at `url`, its model loaded (unless `ready` is false); uncaught page errors are collected. */
async function openPage(url: string, ready = true): Promise<PageRun> {
  const context = await browser!.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(`${url}/index.html`, { timeout: 30_000 });
  if (ready) await within(page.evaluate(() => (globalThis as any).deltatune.ready), 60_000, 'the page loading its model');
  return { page, errors, close: () => context.close() };
}

/** The largest |browser − Node| probability seen. */
let worstProb = 0;
const clearImages = () => images.filter((im) => im.margin >= MIN_MARGIN);

interface Top { label: string; index: number; probability: number }

function assertMatches(top: Top[], expected: (typeof images)[number], how: string): void {
  const name = basename(expected.file);
  assert.equal(top.length, CLASSES.length, `${name} (${how}): top-k of ${CLASSES.length} classes`);
  if (expected.margin >= MIN_MARGIN) assert.equal(top[0]!.index, expected.top1, `${name} (${how}): top-1 ${top[0]!.label}, Node says ${CLASSES[expected.top1]} (${JSON.stringify(expected.probs)})`);
  for (const { index, label, probability } of top) {
    assert.equal(label, CLASSES[index]);
    worstProb = Math.max(worstProb, Math.abs(probability - expected.probs[index]!));
    assert.ok(Math.abs(probability - expected.probs[index]!) <= PROB_TOL, `${name} (${how}): p(${label}) ${probability} in the browser, ${expected.probs[index]} in Node`);
  }
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'deltatune-web-'));
  pageDir = join(dir, 'page');
  mkdirSync(pageDir);
  const files = await writeImages(join(pageDir, 'images'));
  const input = await nodeInput(files);
  const { model, tuned } = toyModel(input);
  exported = exportOnnx({ model, classes: CLASSES, preprocess: PREPROCESS }, { out: join(pageDir, 'model.onnx'), split: true, name: 'toy-mona' });

  // Node's answer: onnxruntime-node on deltatune's preprocessing, checked against deltatune's own predictFiles.
  const session = await ort.InferenceSession.create(exported.file);
  let probs: number[][];
  try {
    const out = await session.run({ image: new ort.Tensor('float32', input.data, input.shape) });
    probs = softmaxRows(out.logits!.data as Float32Array, CLASSES.length);
  } finally {
    await session.release();
  }
  const ours = await predictFiles(tuned, files, CLASSES.length);
  files.forEach((file, i) => {
    assert.equal(ours[i]!.top[0]!.index, probs[i]!.indexOf(Math.max(...probs[i]!)), `${basename(file)}: deltatune and onnxruntime-node disagree`);
  });
  images = files.map((file, i) => {
    const p = probs[i]!;
    const sorted = [...p].sort((a, b) => b - a);
    return { file, probs: p, top1: p.indexOf(sorted[0]!), margin: sorted[0]! - sorted[1]! };
  });
  const clear = images.filter((im) => im.margin >= MIN_MARGIN);
  const summary = images.map((im) => `${basename(im.file)} ${im.probs.map((p) => p.toFixed(2)).join('/')}`).join(', ');
  assert.ok(clear.length >= 4 && new Set(clear.map((im) => im.top1)).size >= 2, `too few test images with a clear top-1, in more than one class: ${summary}`);

  writeWebPage(pageDir, exported);
  if (!NO_BROWSER) browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
});

after(async () => {
  try {
    await browser?.close();
  } finally {
    await Promise.all(servers.map((s) => s.close()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

test('writeWebPage writes the page, model.json and the runtime beside the model, and copies a model from elsewhere', () => {
  const other = join(dir, 'copy');
  mkdirSync(other);
  const page = writeWebPage(other, exported);
  const weights = basename(exported.baseWeightsFile!);
  assert.deepEqual([...page.files].sort(), ['app.js', 'index.html', 'model.json', 'model.onnx', weights, ...ORT_WEB_FILES].sort());
  assert.equal(page.dir, other);
  for (const f of ['model.onnx', weights]) assert.deepEqual(readFileSync(join(other, f)), readFileSync(join(pageDir, f)), f);
  const json = JSON.parse(readFileSync(join(other, 'model.json'), 'utf8'));
  assert.deepEqual(json, { ...exported.meta, modelFile: 'model.onnx', weightsFile: weights, inputName: 'image', outputName: 'logits' });
  assert.throws(() => writeWebPage(join(dir, 'missing'), exported), /missing is not a folder/);
});

test('in Chromium, the page shows the model and classifies images as onnxruntime-node does', { skip: NO_BROWSER, timeout: 180_000 }, async (t) => {
  const server = await serve(pageDir);
  const run = await openPage(server.url);
  try {
    const { page } = run;
    assert.equal(await page.textContent('#delta'), 'toy-mona');
    assert.equal(await page.textContent('#model'), MODEL);
    assert.equal(await page.textContent('#method'), 'mona');
    assert.equal(await page.textContent('#classes'), '3');
    assert.match((await page.textContent('#status'))!, /^ready/);

    // Through the test hook, by URL.
    for (const im of images) {
      const { top } = await within(page.evaluate((url) => (globalThis as any).deltatune.classifyUrl(url), `images/${basename(im.file)}`), 30_000, basename(im.file)) as { top: Top[] };
      assertMatches(top, im, 'classifyUrl');
      assert.equal(await page.textContent('#error'), '');
      assert.match((await page.textContent('#status'))!, new RegExp(`^${basename(im.file)}: ${top[0]!.label} `));
    }

    // As a user would: the file input; the result list shows the top-1 first.
    for (const im of clearImages().slice(0, 2)) {
      await page.setInputFiles('#file', im.file);
      await page.waitForFunction((name) => document.querySelector('#status')!.textContent!.startsWith(`${name}: `), basename(im.file), { timeout: 30_000 });
      const first = await page.textContent('#result li:first-child');
      assert.match(first!, new RegExp(`^${CLASSES[im.top1]} \\d+\\.\\d%$`));
      assert.equal(await page.locator('#result li').count(), CLASSES.length);
      const shown = Number(/(\d+\.\d)%/.exec(first!)![1]) / 100;
      assert.ok(Math.abs(shown - im.probs[im.top1]!) <= PROB_TOL + 0.0005, `${basename(im.file)}: the page shows ${first}, Node ${im.probs[im.top1]}`);
    }
    // Dropped on the drop zone.
    const dropped = clearImages()[2]!;
    const transfer = await page.evaluateHandle(({ bytes, name }) => {
      const data = new DataTransfer();
      data.items.add(new File([new Uint8Array(bytes)], name, { type: 'image/png' }));
      return data;
    }, { bytes: [...readFileSync(dropped.file)], name: basename(dropped.file) });
    await page.dispatchEvent('#drop', 'drop', { dataTransfer: transfer });
    await page.waitForFunction((name) => document.querySelector('#status')!.textContent!.startsWith(`${name}: `), basename(dropped.file), { timeout: 30_000 });
    assert.match((await page.textContent('#result li:first-child'))!, new RegExp(`^${CLASSES[dropped.top1]} `));

    t.diagnostic(`${images.length} images (${clearImages().length} with a clear top-1), largest probability difference from Node ${worstProb.toExponential(1)}`);
    mkdirSync(join(ROOT, 'dist', 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true, timeout: 30_000 });
    t.diagnostic(`screenshot: ${SCREENSHOT}`);

    // The page fetched its own files only, and every one of them existed.
    const asked = new Set(server.requests.filter((p) => !p.startsWith('/images/')));
    const expected = ['/index.html', '/app.js', '/model.json', '/model.onnx', `/${basename(exported.baseWeightsFile!)}`, ...ORT_WEB_FILES.map((f) => `/${f}`)];
    assert.deepEqual([...asked].sort(), expected.sort(), 'the files the page asked for');

    // The test server keeps to its folder.
    const escape = await new Promise<number>((ok, fail) => {
      get(`${server.url}/..%2f..%2fetc%2fpasswd`, (res) => ok(res.resume().statusCode!)).on('error', fail);
    });
    assert.equal(escape, 403);
    assert.deepEqual(run.errors, [], 'uncaught errors in the page');
  } finally {
    await run.close();
  }
});

test('in Chromium, a file the browser cannot decode shows an error, and the page goes on', { skip: NO_BROWSER, timeout: 120_000 }, async () => {
  const server = await serve(pageDir);
  const run = await openPage(server.url);
  try {
    const { page } = run;
    const junk = { name: 'x.png', mimeType: 'image/png', buffer: Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 73 + 11) % 256)) };
    await page.setInputFiles('#file', junk);
    await page.waitForFunction(() => document.querySelector('#error')!.textContent !== '', undefined, { timeout: 30_000 });
    assert.match((await page.textContent('#error'))!, /^cannot decode x\.png: /);
    assert.equal(await page.locator('#result li').count(), 0);

    // The hook rejects with the same message; a missing URL names it.
    const viaHook = await within(page.evaluate(async (bytes) => {
      try {
        await (globalThis as any).deltatune.classifyBlob(new Blob([new Uint8Array(bytes)], { type: 'image/png' }), 'y.png');
        return 'resolved';
      } catch (err) {
        return (err as Error).message;
      }
    }, [...junk.buffer]), 30_000, 'classifyBlob of junk');
    assert.match(viaHook, /^cannot decode y\.png: /);
    const missing = await within(page.evaluate(() => (globalThis as any).deltatune.classifyUrl('images/nothing.png').then(() => 'resolved', (err: Error) => err.message)), 30_000, 'classifyUrl of a missing file');
    assert.equal(missing, 'cannot load images/nothing.png: HTTP 404');
    assert.equal(await page.textContent('#error'), missing);

    // The next good image clears the error.
    const im = clearImages()[0]!;
    const { top } = await within(page.evaluate((url) => (globalThis as any).deltatune.classifyUrl(url), `images/${basename(im.file)}`), 30_000, basename(im.file)) as { top: Top[] };
    assertMatches(top, im, 'after an error');
    assert.equal(await page.textContent('#error'), '');
    assert.deepEqual(run.errors, [], 'uncaught errors in the page');
    assert.ok(server.requests.includes('/images/nothing.png'));
  } finally {
    await run.close();
  }
});

test('in Chromium, with cross-origin isolation the page runs on threads and agrees', { skip: NO_BROWSER, timeout: 120_000 }, async () => {
  const server = await serve(pageDir, { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' });
  const run = await openPage(server.url);
  try {
    const { page } = run;
    const threads = await page.evaluate(async () => [(globalThis as any).crossOriginIsolated, (await import('./ort.wasm.min.mjs' as string)).env.wasm.numThreads]);
    assert.equal(threads[0], true, 'crossOriginIsolated');
    assert.ok(threads[1] > 1, `numThreads ${threads[1]}`);
    for (const im of clearImages().slice(0, 3)) {
      const { top } = await within(page.evaluate((url) => (globalThis as any).deltatune.classifyUrl(url), `images/${basename(im.file)}`), 30_000, basename(im.file)) as { top: Top[] };
      assertMatches(top, im, 'threads');
    }
    assert.deepEqual(run.errors, [], 'uncaught errors in the page');
  } finally {
    await run.close();
  }
});

test('in Chromium, a page whose weights file is missing says so', { skip: NO_BROWSER, timeout: 120_000 }, async () => {
  const weights = `/${basename(exported.baseWeightsFile!)}`;
  const server = await serve(pageDir, {}, [weights]);
  const run = await openPage(server.url, false);
  try {
    const { page } = run;
    const failure = await within(page.evaluate(() => (globalThis as any).deltatune.ready.then(() => 'loaded', (err: Error) => err.message)), 60_000, 'the page failing to load');
    assert.match(failure, /^cannot load model\.onnx: /);
    assert.equal(await page.textContent('#error'), failure);
    assert.ok(server.requests.includes(weights));
    // Classifying then gives the same error rather than hanging.
    const again = await within(page.evaluate((url) => (globalThis as any).deltatune.classifyUrl(url).then(() => 'resolved', (err: Error) => err.message), `images/${basename(images[0]!.file)}`), 30_000, 'classifyUrl without a model');
    assert.equal(again, failure);
    assert.deepEqual(run.errors, [], 'uncaught errors in the page');
  } finally {
    await run.close();
  }
});
