// Weights by name against a real HTTP server on 127.0.0.1 serving real files made by the oracle
// (test/oracle/hub.py): a download that loads into createModel, resume after a cut connection, a
// server that ignores Range, wrong hashes, a 404, a stall, two processes fetching one file, offline
// mode, and a Hugging Face-style repo whose config.json sets the model's preprocessing.
// No test touches the internet; every server answer and wait is bounded.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createModel, modelConfig } from '../../src/models/index.js';
import { configWithWeights } from '../../src/models/index.js';
import { DownloadError, downloadFile, registerWeights, resolveWeights, type TransferProgress } from '../../src/hub/index.js';
import { runTransforms } from '../../src/train/run.js';
import type { DataOptions } from '../../src/data/spec.js';
import { PYTHON, ROOT, assertClose } from '../helpers.js';
import { TestServer } from './server.js';

interface Described {
  path: string;
  size: number;
  sha256: string;
}
const dir = mkdtempSync(join(tmpdir(), 'deltatune-hub-'));
const oracle = JSON.parse(execFileSync(PYTHON, [join(ROOT, 'test', 'oracle', 'hub.py'), dir], { encoding: 'utf8', maxBuffer: 1 << 24 })) as {
  pth: Described;
  safetensors: Described;
  config: string;
  fcBias: number[];
};
const pth = readFileSync(oracle.pth.path);
const pthFile = basename(oracle.pth.path);
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
let server: TestServer;
let caches = 0;
const freshCache = () => join(dir, `cache-${caches++}`);

/** A progress reporter that keeps its messages, for asserting what a download said. */
function recorder(): TransferProgress & { messages: string[] } {
  const messages: string[] = [];
  return { messages, start() {}, update() {}, stop() {}, message: (t: string) => void messages.push(t) };
}

before(async () => {
  server = await TestServer.start();
});
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a download by name lands in the cache, verified, and createModel loads it with the weights\' preprocessing', async () => {
  server.routes.set(`/models/${pthFile}`, { body: pth });
  registerWeights({
    name: 'resnet18.TEST_V1', model: 'resnet18', enum: 'ResNet18_Weights.TEST_V1', default: false,
    url: `${server.url}/models/${pthFile}`, file: pthFile, sha256Prefix: oracle.pth.sha256.slice(0, 8),
    numParams: 11_181_642, numClasses: 10, top1: null, top5: null, recipe: null,
    preprocess: { inputSize: [3, 192, 192], resizeSize: 220, mean: [0.4, 0.45, 0.5], std: [0.3, 0.2, 0.1], interpolation: 'bilinear' },
  });
  const cacheDir = freshCache();
  // createModel never downloads: it names the command that does.
  assert.throws(() => createModel('resnet18', { weights: 'resnet18.TEST_V1', cacheDir }), /weights 'resnet18\.TEST_V1' are not in the cache \(.*resnet18-[0-9a-f]{8}\.pth\); fetch them first: deltatune weights fetch resnet18\.TEST_V1/);
  const got = await resolveWeights('resnet18.TEST_V1', { model: 'resnet18', cacheDir, progress: 'quiet' });
  assert.equal(got.path, join(cacheDir, 'torchvision', pthFile));
  assert.equal(sha256(readFileSync(got.path)), oracle.pth.sha256);
  assert.deepEqual(readdirSync(join(cacheDir, 'torchvision')), [pthFile], 'no .part or .lock left');
  assert.equal(server.hits(`/models/${pthFile}`).length, 1);
  // Cached now: no second request.
  await resolveWeights('resnet18.TEST_V1', { cacheDir, progress: 'quiet' });
  assert.equal(server.hits(`/models/${pthFile}`).length, 1);
  await assert.rejects(resolveWeights('resnet18.TEST_V1', { model: 'resnet50', cacheDir }), /weights 'resnet18\.TEST_V1' are for resnet18, not resnet50/);

  const model = createModel('resnet18', { weights: 'resnet18.TEST_V1', cacheDir });
  try {
    const c = model.config;
    assert.equal(c.numClasses, 10);
    assert.equal(c.weightsName, 'resnet18.TEST_V1');
    assert.equal(c.weightsFile, got.path);
    assert.deepEqual(c.inputSize, [3, 192, 192]);
    assert.deepEqual(c.mean, [0.4, 0.45, 0.5]);
    assert.deepEqual(c.std, [0.3, 0.2, 0.1]);
    assert.equal(c.cropPct, 192 / 220);
    assertClose(model.stateDict().get('fc.bias')!, oracle.fcBias, { rtol: 0, atol: 0, what: 'fc.bias' });
  } finally {
    model.dispose();
  }
});

test('a connection cut mid-file is resumed with a Range request, and the file is byte-identical', async () => {
  const path = '/resume/r18.pth';
  server.routes.set(path, { body: pth, cutAfter: 5_000_000 });
  const cacheDir = freshCache();
  const progress = recorder();
  const target = join(cacheDir, 'r18.pth');
  const r = await downloadFile({ url: `${server.url}${path}`, path: target, sha256: oracle.pth.sha256.slice(0, 8) }, { progress, retries: 2 });
  assert.equal(r.downloaded, true);
  const hits = server.hits(path);
  assert.equal(hits.length, 2, 'one cut request and one resume');
  assert.equal(hits[0]!.range, undefined);
  const from = Number(/^bytes=(\d+)-$/.exec(hits[1]!.range ?? '')?.[1]);
  assert.ok(from > 0 && from <= 5_000_000, `the resume asked for ${hits[1]!.range}`);
  assert.match(progress.messages.join('\n'), /closed at \d+ of 44\d{6} bytes.*retrying \(1\/2\)/);
  assert.ok(readFileSync(target).equals(pth), 'the resumed file differs from the original');
});

test('a server that answers a Range request with 200 is downloaded again from the start', async () => {
  const path = '/norange/r18.pth';
  server.routes.set(path, { body: pth, cutAfter: 3_000_000, ignoreRange: true });
  const progress = recorder();
  const target = join(freshCache(), 'r18.pth');
  await downloadFile({ url: `${server.url}${path}`, path: target, sha256: oracle.pth.sha256 }, { progress, retries: 2 });
  assert.match(server.hits(path)[1]!.range ?? '', /^bytes=\d+-$/);
  assert.match(progress.messages.join('\n'), /does not resume \(HTTP 200 to a Range request\); starting over/);
  assert.ok(readFileSync(target).equals(pth));
});

test('a wrong hash deletes the download and says expected, got and the URL', async () => {
  const path = '/hash/r18.pth';
  server.routes.set(path, { body: pth });
  const target = join(freshCache(), 'r18.pth');
  await assert.rejects(
    downloadFile({ url: `${server.url}${path}`, path: target, sha256: 'deadbeef' }, { progress: 'quiet' }),
    (err: DownloadError) => {
      assert.equal(err.reason, 'hash');
      assert.match(err.message, new RegExp(`^sha256 mismatch for ${server.url}/hash/r18\\.pth: expected deadbeef\\.\\.\\., got ${oracle.pth.sha256}; the download was deleted`));
      return true;
    },
  );
  assert.equal(existsSync(target) || existsSync(`${target}.part`), false);
  // By name: the catalog's real resnet18 hash (f37072fd) against the oracle's file from a mirror.
  server.routes.set('/mirror/resnet18-f37072fd.pth', { body: pth });
  const cacheDir = freshCache();
  await assert.rejects(
    resolveWeights('resnet18.IMAGENET1K_V1', { mirror: `${server.url}/mirror/`, cacheDir, progress: 'quiet' }),
    /sha256 mismatch for http:\/\/127\.0\.0\.1:\d+\/mirror\/resnet18-f37072fd\.pth: expected f37072fd\.\.\., got [0-9a-f]{64}/,
  );
  assert.equal(existsSync(join(cacheDir, 'torchvision', 'resnet18-f37072fd.pth')), false);
});

test('a 404 is one clear error with the URL and status, not retried', async () => {
  const target = join(freshCache(), 'nope.pth');
  await assert.rejects(downloadFile({ url: `${server.url}/nope.pth`, path: target }, { progress: 'quiet', retries: 3 }), (err: DownloadError) => {
    assert.equal(err.reason, 'http');
    assert.match(err.message, /^HTTP 404 Not Found for http:\/\/127\.0\.0\.1:\d+\/nope\.pth \(no such file on the server/);
    return true;
  });
  assert.equal(server.hits('/nope.pth').length, 1);
});

test('a server that stalls times out with a message naming the URL, in bounded time', async () => {
  const path = '/stall/r18.pth';
  server.routes.set(path, { body: pth, stallAfter: 1000 });
  const target = join(freshCache(), 'r18.pth');
  const started = performance.now();
  await assert.rejects(downloadFile({ url: `${server.url}${path}`, path: target }, { progress: 'quiet', stallTimeoutMs: 300, retries: 1 }), (err: DownloadError) => {
    assert.equal(err.reason, 'stall');
    assert.match(err.message, /no data from http:\/\/127\.0\.0\.1:\d+\/stall\/r18\.pth for 0\.3 s \(the server stalls\) \(2 attempts\); the partial download is kept/);
    return true;
  });
  assert.ok(performance.now() - started < 5000, 'the stall took too long to notice');
  assert.equal(server.hits(path)[1]!.range, 'bytes=1000-', 'the retry resumes after the bytes that came');
  // No answer at all (headers never sent) is a stall too.
  server.routes.set('/silent.pth', { body: pth, stallAfter: 0 });
  await assert.rejects(downloadFile({ url: `${server.url}/silent.pth`, path: join(freshCache(), 's.pth') }, { progress: 'quiet', stallTimeoutMs: 300, retries: 0 }), /no data from .*silent\.pth for 0\.3 s/);
});

test('two processes fetching the same file: one download, both get a good file', { timeout: 60_000 }, async () => {
  const path = '/slow/r18.pth';
  // ~45 chunks of 1 MB, 20 ms apart: about a second, long enough for the second process to find the lock.
  server.routes.set(path, { body: pth, chunk: 1 << 20, delayMs: 20 });
  const target = join(freshCache(), 'r18.pth');
  const hub = JSON.stringify(join(ROOT, 'dist', 'src', 'hub', 'index.js'));
  const spec = JSON.stringify({ url: `${server.url}${path}`, path: target, sha256: oracle.pth.sha256.slice(0, 8) });
  const body = `const hub = await import(${hub}); const r = await hub.downloadFile(${spec}, { progress: 'lines' }); console.log(JSON.stringify(r));`;
  const child = () =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, ['--input-type=module', '-e', body], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      const kill = setTimeout(() => p.kill(), 50_000);
      p.on('close', (code) => {
        clearTimeout(kill);
        resolve({ code, stdout, stderr });
      });
    });
  const results = await Promise.all([child(), child()]);
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  const outcomes = results.map((r) => JSON.parse(r.stdout) as { downloaded: boolean; path: string });
  assert.deepEqual(outcomes.map((o) => o.downloaded).sort(), [false, true], 'exactly one process downloaded');
  assert.equal(server.hits(path).length, 1, 'one request reached the server');
  const waiter = results[outcomes.findIndex((o) => !o.downloaded)]!;
  assert.match(waiter.stderr, /waiting for process \d+, which is downloading it/);
  assert.ok(readFileSync(target).equals(pth));
  assert.equal(existsSync(`${target}.lock`) || existsSync(`${target}.part`), false);
});

test('offline: one line naming the file to place in the cache and its URL; also when the host cannot be reached', async () => {
  const cacheDir = freshCache();
  await assert.rejects(resolveWeights('resnet50.DEFAULT', { offline: true, cacheDir }), (err: Error) => {
    assert.equal(err.message.includes('\n'), false);
    assert.equal(
      err.message,
      `offline (DELTATUNE_OFFLINE=1): resnet50.IMAGENET1K_V2 is not in the cache; download https://download.pytorch.org/models/resnet50-11ad3fa6.pth and place it at ${join(cacheDir, 'torchvision', 'resnet50-11ad3fa6.pth')}`,
    );
    return true;
  });
  // The environment variable, through the CLI.
  const cli = join(ROOT, 'dist', 'src', 'cli', 'main.js');
  const r = execFileSyncResult(process.execPath, [cli, 'weights', 'fetch', 'IMAGENET1K_V1', '--model', 'mobilenet_v2'], { DELTATUNE_OFFLINE: '1', DELTATUNE_CACHE: cacheDir });
  assert.equal(r.status, 1);
  assert.equal(
    r.stderr.trim(),
    `deltatune: offline (DELTATUNE_OFFLINE=1): mobilenet_v2.IMAGENET1K_V1 is not in the cache; download https://download.pytorch.org/models/mobilenet_v2-b0353104.pth and place it at ${join(cacheDir, 'hub', 'torchvision', 'mobilenet_v2-b0353104.pth')}`,
  );
  // A refused connection: the same advice, after the URL that failed.
  const gone = await TestServer.start();
  const url = `${gone.url}/x.pth`;
  await gone.close();
  const target = join(cacheDir, 'x.pth');
  await assert.rejects(downloadFile({ url, path: target }, { progress: 'quiet', retries: 0, offline: false }), (err: DownloadError) => {
    assert.equal(err.reason, 'unreachable');
    assert.equal(err.message, `cannot reach ${new URL(url).host} (ECONNREFUSED) for x.pth; to work offline, download ${url} and place it at ${target}`);
    return true;
  });
});

function execFileSyncResult(cmd: string, args: string[], env: Record<string, string>): { status: number | null; stderr: string } {
  try {
    execFileSync(cmd, args, { env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { status: 0, stderr: '' };
  } catch (err) {
    const e = err as { status: number | null; stderr: string };
    return { status: e.status, stderr: e.stderr };
  }
}

test("a Hugging Face-style repo: config.json's mean, std, input size and labels become the model's config", async () => {
  const st = readFileSync(oracle.safetensors.path);
  const repo = '/timm/resnet18.test_in10/resolve/main';
  server.routes.set(`${repo}/config.json`, { body: readFileSync(oracle.config), headers: { etag: '"0123456789abcdef0123456789abcdef01234567"' } });
  // As huggingface.co: the LFS file redirects to a CDN, naming its sha256 in X-Linked-Etag on the redirect.
  server.routes.set(`${repo}/model.safetensors`, { body: st, redirectTo: '/cdn/xyz/model.safetensors', redirectHeaders: { 'x-linked-etag': `"${oracle.safetensors.sha256}"`, 'x-linked-size': String(st.length) } });
  server.routes.set('/cdn/xyz/model.safetensors', { body: st, cutAfter: 1_000_000 });
  const cacheDir = freshCache();
  const name = 'hf-hub:timm/resnet18.test_in10';
  const got = await resolveWeights(name, { mirror: server.url, cacheDir, progress: 'quiet', model: 'resnet18' });
  assert.equal(got.model, 'resnet18');
  assert.equal(got.path, join(cacheDir, 'hf', 'timm', 'resnet18.test_in10', 'main', 'model.safetensors'));
  assert.ok(readFileSync(got.path).equals(st));
  assert.equal(server.hits(`${repo}/model.safetensors`).length, 2, 'the resume went through the redirect again');
  assert.match(server.hits('/cdn/xyz/model.safetensors')[1]!.range ?? '', /^bytes=\d+-$/);
  // The bare timm name is the same repo, already cached.
  const before = server.requests.length;
  assert.equal((await resolveWeights('resnet18.test_in10', { mirror: server.url, cacheDir, progress: 'quiet' })).path, got.path);
  assert.equal(server.requests.length, before);

  const model = createModel('resnet18', { weights: name, cacheDir });
  try {
    const c = model.config;
    assert.deepEqual(c.inputSize, [3, 160, 160]);
    assert.deepEqual(c.mean, [0.5, 0.4, 0.3]);
    assert.deepEqual(c.std, [0.2, 0.25, 0.3]);
    assert.equal(c.cropPct, 0.95);
    assert.equal(c.interpolation, 'bicubic');
    assert.equal(c.numClasses, 10);
    assert.deepEqual(c.classNames, Array.from({ length: 10 }, (_, i) => `class_${i}`));
    assertClose(model.stateDict().get('fc.bias')!, oracle.fcBias, { rtol: 0, atol: 0, what: 'fc.bias' });
    // A new head forgets the old class names.
    model.resetClassifier(3);
    assert.equal(model.config.classNames, undefined);
  } finally {
    model.dispose();
  }
  // Training reads its preprocessing from the model config, so the weights' reaches the transforms.
  const t = runTransforms({ data: 'unused' } as DataOptions, false, configWithWeights(modelConfig('resnet18'), name, got.config));
  assert.equal(t.eval.size, 160);
  assert.deepEqual(t.eval.mean, [0.5, 0.4, 0.3]);
  assert.deepEqual(t.eval.std, [0.2, 0.25, 0.3]);
  assert.equal(t.eval.cropPct, 0.95);
  assert.equal(runTransforms({ data: 'unused', imageSize: 128 } as DataOptions, false, configWithWeights(modelConfig('resnet18'), name, got.config)).eval.size, 128, '--image-size still wins');

  // A wrong X-Linked-Etag: the file is refused and deleted.
  const bad = '/timm/resnet18.bad/resolve/main';
  server.routes.set(`${bad}/config.json`, { body: readFileSync(oracle.config) });
  server.routes.set(`${bad}/model.safetensors`, { body: st, headers: { etag: `"${'0'.repeat(64)}"` } });
  await assert.rejects(resolveWeights('hf-hub:timm/resnet18.bad', { mirror: server.url, cacheDir, progress: 'quiet' }), /sha256 mismatch for .*resnet18\.bad\/resolve\/main\/model\.safetensors: expected 0{64}, got [0-9a-f]{64}; the download was deleted/);
  assert.equal(existsSync(join(cacheDir, 'hf', 'timm', 'resnet18.bad', 'main', 'model.safetensors')), false);
});

test('tune with a weights name fetches it, records the name, and prepares images with the weights\' preprocessing', { timeout: 120_000 }, async () => {
  const { tune } = await import('../../src/train/run.js');
  const { readDeltaManifest } = await import('../../src/delta/index.js');
  const { makeFolder } = await import('../data/fixtures.js');
  const st = readFileSync(oracle.safetensors.path);
  const repo = '/timm/resnet18.tune_in10/resolve/main';
  server.routes.set(`${repo}/config.json`, { body: readFileSync(oracle.config) });
  server.routes.set(`${repo}/model.safetensors`, { body: st, headers: { 'x-linked-etag': `"${oracle.safetensors.sha256}"` } });
  const data = join(dir, 'images');
  await makeFolder(data, ['a', 'b'], 4);
  const saved = { ...process.env };
  process.env.DELTATUNE_CACHE = freshCache();
  process.env.DELTATUNE_HUB_URL = server.url;
  try {
    const out = join(dir, 'run');
    const name = 'hf-hub:timm/resnet18.tune_in10';
    // 32 px keeps the step cheap; mean, std and crop still come from config.json.
    await tune({ model: 'resnet18', weights: name, method: 'fixed', data, valSplit: 0.25, imageSize: 32, epochs: 1, lr: 1e-3, batchSize: 4, out, progress: 'quiet' });
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { tune: { weights: string }; fingerprints: { weights: string } };
    assert.equal(config.tune.weights, name, 'the run records the name, not a cache path');
    assert.equal(config.fingerprints.weights, oracle.safetensors.sha256);
    const manifest = readDeltaManifest(join(out, 'last'));
    assert.deepEqual(manifest.preprocess.mean, [0.5, 0.4, 0.3]);
    assert.deepEqual(manifest.preprocess.std, [0.2, 0.25, 0.3]);
    assert.equal(manifest.preprocess.cropPct, 0.95);
    assert.equal(manifest.preprocess.size, 32);
    assert.equal(server.hits(`${repo}/model.safetensors`).length, 1);
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
});
