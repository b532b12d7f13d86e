// A static web page that classifies images with an exported model in the browser: onnxruntime-web
// on its wasm backend, plain HTML and one ES module, no build step. Serve the folder over HTTP
// (browsers do not fetch models or wasm from file://) and open index.html.
//
// The page preprocesses as deltatune's eval transform does (shorter side to floor(size / cropPct),
// centre crop, /255, (x - mean) / std, NCHW); the resize is the browser's, so probabilities can
// differ from Node's in the second or third decimal.
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import type { ExportedOnnx } from './onnx.js';

export interface WebPage {
  /** The page's folder (absolute). */
  dir: string;
  /** The names, inside `dir`, of every file the page needs: page, model, weights and runtime. */
  files: string[];
}

/**
 * The onnxruntime-web files the page loads: the wasm-only API module, the Emscripten glue it
 * imports, and the SIMD build of the runtime (the only one the wasm backend asks for; every
 * current browser has wasm SIMD).
 */
export const ORT_WEB_FILES = ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'] as const;

/**
 * Writes the page for `exported` into `dir`: index.html, app.js, model.json (the model's metadata
 * and file names) and onnxruntime-web's runtime files; the .onnx file and its split base weights are
 * copied in when they are elsewhere. Each file is written atomically.
 */
export function writeWebPage(dir: string, exported: ExportedOnnx): WebPage {
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new Error(`writeWebPage: ${dir} is not a folder`);
  const ortDir = ortWebDist();
  const files: string[] = [];
  const place = (source: string): string => {
    const name = basename(source);
    if (!existsSync(source)) throw new Error(`writeWebPage: ${source} does not exist`);
    if (resolve(source) !== join(root, name)) writeFileAtomic(join(root, name), readChunks(source));
    files.push(name);
    return name;
  };
  // The .onnx file names its external weights file, so that keeps its name beside it.
  const modelFile = place(exported.file);
  const weightsFile = exported.baseWeightsFile ? place(exported.baseWeightsFile) : null;
  for (const name of ORT_WEB_FILES) place(join(ortDir, name));

  const model = { ...exported.meta, modelFile, weightsFile, inputName: exported.inputName, outputName: exported.outputName };
  const text: [string, string][] = [
    ['model.json', `${JSON.stringify(model, null, 2)}\n`],
    ['app.js', APP_JS],
    ['index.html', INDEX_HTML],
  ];
  for (const [name, body] of text) {
    writeFileAtomic(join(root, name), Buffer.from(body, 'utf8'));
    files.push(name);
  }
  return { dir: root, files };
}

/** onnxruntime-web's dist/ folder, found from deltatune's install, then from the working directory. */
function ortWebDist(): string {
  const wasm = `onnxruntime-web/${ORT_WEB_FILES[2]}`;
  let found: string | undefined;
  for (const from of [import.meta.url, join(process.cwd(), 'package.json')]) {
    try {
      found = createRequire(from).resolve(wasm);
      break;
    } catch {
      // try the next place
    }
  }
  if (!found) {
    throw new Error('a web page needs the onnxruntime-web package (its wasm runtime is copied beside the page); install it with: npm install onnxruntime-web');
  }
  const dist = dirname(found);
  const missing = ORT_WEB_FILES.filter((f) => !existsSync(join(dist, f)));
  if (missing.length) {
    let version = 'unknown';
    try {
      version = (JSON.parse(readFileSync(join(dist, '..', 'package.json'), 'utf8')) as { version?: string }).version ?? version;
    } catch {
      // the version only helps the message
    }
    throw new Error(`onnxruntime-web ${version} (${dirname(dist)}) has no ${missing.join(', ')}; the page needs onnxruntime-web 1.19 or later`);
  }
  return dist;
}

/** A file's bytes in 4 MiB pieces (a base weights file can be large). */
function* readChunks(path: string): Generator<Uint8Array> {
  const fd = openSync(path, 'r');
  try {
    for (;;) {
      const chunk = Buffer.allocUnsafe(4 << 20);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) return;
      yield chunk.subarray(0, n);
    }
  } finally {
    closeSync(fd);
  }
}

const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>deltatune</title>
<link rel="icon" href="data:,">
<style>
  body { font: 16px/1.45 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; margin-bottom: .25rem; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; margin: .5rem 0 1.5rem; }
  dt { color: #666; }
  dd { margin: 0; }
  #drop { display: block; border: 2px dashed #999; border-radius: .5rem; padding: 2rem 1rem; text-align: center; cursor: pointer; }
  #drop.over { border-color: #06c; background: #eef5ff; }
  #drop input { display: block; margin: .75rem auto 0; }
  #status { color: #666; min-height: 1.5em; }
  #error { color: #b00020; white-space: pre-wrap; }
  #error:empty { display: none; }
  .output { display: flex; gap: 1.5rem; align-items: flex-start; }
  #preview canvas { width: 8rem; height: 8rem; border: 1px solid #ccc; }
  #preview:empty { display: none; }
  #result { flex: 1; margin: 0; padding-left: 1.5rem; }
  #result li { margin: .3rem 0; }
  #result .bar { display: block; height: .4rem; background: #06c; border-radius: .2rem; }
</style>
</head>
<body>
<h1>deltatune</h1>
<dl>
  <dt>delta</dt><dd id="delta">…</dd>
  <dt>model</dt><dd id="model">…</dd>
  <dt>method</dt><dd id="method">…</dd>
  <dt>classes</dt><dd id="classes">…</dd>
</dl>
<label id="drop">Drop an image here, or choose one
  <input id="file" type="file" accept="image/*">
</label>
<p id="status">loading the model…</p>
<p id="error" role="alert"></p>
<div class="output">
  <div id="preview"></div>
  <ol id="result"></ol>
</div>
<script>
  if (location.protocol === 'file:') {
    document.getElementById('status').textContent = '';
    document.getElementById('error').textContent = 'Open this page through a web server (for example: npx http-server ' +
      'in its folder): browsers do not load models or WebAssembly from file://';
  }
</script>
<script type="module" src="app.js"></script>
</body>
</html>
`;

// Kept free of backticks and dollar-brace so that it sits in this template unescaped.
const APP_JS = `// Classifies images with the model in model.json, in the browser (onnxruntime-web, wasm backend).
// window.deltatune = { ready, classifyUrl(url), classifyBlob(blob, name?) }: each classify
// resolves to { top: [{ label, index, probability }] } (best first) and shows it in the page.
import * as ort from './ort.wasm.min.mjs';

const here = new URL('./', import.meta.url).href;
// The runtime's .mjs and .wasm files sit beside this one. Threads need cross-origin isolation.
ort.env.wasm.wasmPaths = here;
ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;

const el = (id) => document.getElementById(id);
let meta;
let session;

const message = (err) => (err && err.message) || String(err);

async function get(url) {
  let response;
  try {
    response = await fetch(url);
  } catch (err) {
    throw new Error('cannot load ' + url + ': ' + message(err));
  }
  if (!response.ok) throw new Error('cannot load ' + url + ': HTTP ' + response.status);
  return response;
}

async function load() {
  meta = await (await get(new URL('model.json', here))).json();
  el('delta').textContent = meta.delta || '(unnamed)';
  el('model').textContent = meta.model;
  el('method').textContent = meta.method + (meta.merged ? ' (merged into the base)' : '');
  el('classes').textContent = String(meta.classes.length);
  document.title = 'deltatune: ' + (meta.delta || meta.model);
  const options = { executionProviders: ['wasm'] };
  if (meta.weightsFile) options.externalData = [{ path: meta.weightsFile, data: new URL(meta.weightsFile, here).href }];
  try {
    session = await ort.InferenceSession.create(new URL(meta.modelFile, here).href, options);
  } catch (err) {
    throw new Error('cannot load ' + meta.modelFile + ': ' + message(err));
  }
}

/** torchvision Resize(int) then CenterCrop: deltatune's resizeCenterCrop. */
function resizeCenterCrop(width, height, size, cropPct) {
  const short = Math.max(size, Math.floor(size / cropPct + 1e-9));
  const [w, h] = width <= height
    ? [short, Math.max(size, Math.floor((short * height) / width))]
    : [Math.max(size, Math.floor((short * width) / height)), short];
  return { width: w, height: h, left: roundHalfEven((w - size) / 2), top: roundHalfEven((h - size) / 2) };
}

function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * An image file as the model's input: float32 [1, 3, size, size], normalised, and the size×size
 * canvas it came from. Rejects with "cannot decode <name>: ..." for a file the browser cannot read.
 */
export async function preprocess(blob, name, p = meta.preprocess) {
  let bitmap;
  try {
    // As deltatune decodes: EXIF orientation applied, no colour management, grey as R = G = B.
    // Alpha is dropped (a fully transparent pixel reads as black).
    bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none' });
  } catch (err) {
    throw new Error('cannot decode ' + name + ': ' + message(err));
  }
  const { size, cropPct, mean, std } = p;
  const plan = resizeCenterCrop(bitmap.width, bitmap.height, size, cropPct);
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = size;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, -plan.left, -plan.top, plan.width, plan.height);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, size, size).data;
  const plane = size * size;
  const data = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) data[c * plane + i] = (rgba[i * 4 + c] / 255 - mean[c]) / std[c];
  }
  return { tensor: new ort.Tensor('float32', data, [1, 3, size, size]), canvas };
}

function softmax(logits) {
  const max = Math.max(...logits);
  const exps = Array.from(logits, (x) => Math.exp(x - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

async function predict(blob, name) {
  const { tensor, canvas } = await preprocess(blob, name);
  const output = await session.run({ [meta.inputName]: tensor });
  const probs = softmax(output[meta.outputName].data);
  const top = probs
    .map((probability, index) => ({ label: meta.classes[index], index, probability }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, 5);
  return { top, canvas };
}

function show(name, { top, canvas }, ms) {
  el('preview').replaceChildren(canvas);
  el('result').replaceChildren(...top.map(({ label, probability }) => {
    const li = document.createElement('li');
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.width = (100 * probability).toFixed(1) + '%';
    li.append(label + ' ' + (100 * probability).toFixed(1) + '%', bar);
    return li;
  }));
  el('status').textContent = name + ': ' + top[0].label + ' (' + Math.round(ms) + ' ms)';
}

// One image at a time: a session runs one call at once.
let queue = Promise.resolve();

/** Classifies the blob getBlob() gives, shows the result or the error, and returns the result. */
function classify(getBlob, name) {
  const job = queue.then(async () => {
    el('status').textContent = 'classifying ' + name + '…';
    el('error').textContent = '';
    const start = performance.now();
    try {
      await ready;
      const result = await predict(await getBlob(), name);
      show(name, result, performance.now() - start);
      return { top: result.top };
    } catch (err) {
      el('result').replaceChildren();
      el('preview').replaceChildren();
      el('status').textContent = '';
      el('error').textContent = message(err);
      throw err;
    }
  });
  queue = job.catch(() => {});
  return job;
}

function classifyUrl(url) {
  const last = String(url).split(/[?#]/)[0].split('/').pop();
  let name;
  try {
    name = decodeURIComponent(last) || String(url);
  } catch {
    name = last;
  }
  return classify(async () => {
    const response = await get(url);
    return response.blob();
  }, name);
}

const classifyBlob = (blob, name = blob.name || 'image') => classify(async () => blob, name);

const ready = load().then(
  () => { el('status').textContent = 'ready: choose or drop an image'; },
  (err) => {
    el('status').textContent = '';
    el('error').textContent = message(err);
    throw err;
  },
);
ready.catch(() => {}); // shown in the page; callers of deltatune.ready still see the rejection

window.deltatune = { ready, classifyUrl, classifyBlob };

// The user's side: a file input and a drop zone; errors are shown, never thrown.
const pick = (file) => { if (file) classifyBlob(file).catch(() => {}); };
const drop = el('drop');
el('file').addEventListener('change', (event) => pick(event.target.files[0]));
drop.addEventListener('dragover', (event) => { event.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (event) => {
  event.preventDefault();
  drop.classList.remove('over');
  pick(event.dataTransfer.files[0]);
});
`;
