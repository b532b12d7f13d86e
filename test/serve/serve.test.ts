// `deltatune serve` end to end on 127.0.0.1: one resnet18 base (random weights, 32 px) with five
// deltas of different methods. Predictions match `deltatune predict`; hot loading works under
// traffic; tokens, bad and oversized input, overload and timeouts get their status codes; SIGTERM
// answers what is in flight; memory stays flat over thousands of requests. All load is bounded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { applyDelta, createModel, loadTuned, manualSeed, noGrad, predictFiles, randn, saveDelta, saveStateDict, tidy } from '../../src/index.js';
import { createServer, type DeltaServer } from '../../src/serve/index.js';
import { ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const ADMIN = 'admin-token-0123456789';
const PREDICT = 'predict-token-0123456789';
const METHODS = ['mona', 'lora', 'bitfit', 'conv-adapter', 'ssf'];
const CLASSES = ['cat', 'dog', 'bird'];

let dir = '';
let weights = '';
const deltaDirs: Record<string, string> = {};
const images: { file: string; bytes: Buffer }[] = [];

async function noisePng(seed: number, width: number, height: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  let s = seed * 2654435761;
  for (let i = 0; i < raw.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    raw[i] = s >>> 24;
  }
  return sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'deltatune-serve-'));
  manualSeed(3);
  const base = createModel('resnet18', { numClasses: 3 });
  weights = join(dir, 'base.safetensors');
  saveStateDict(weights, base.stateDict());
  base.dispose();
  for (const method of METHODS) {
    const model = createModel('resnet18', { weights });
    const delta = applyDelta(model, { method, numClasses: 3 });
    // Non-zero everywhere, as after training, so each delta answers differently.
    noGrad(() => delta.trainableParameters().forEach((p) => tidy(() => void p.add_(randn(p.shape).mul(0.05)))));
    deltaDirs[method] = join(dir, method);
    saveDelta(delta, deltaDirs[method], { classes: CLASSES, preprocess: { size: 32, train: false } });
    delta.dispose();
    model.dispose();
  }
  for (let i = 0; i < 6; i++) {
    const bytes = await noisePng(i + 1, 40 + 7 * i, 36 + 5 * i);
    const file = join(dir, `img${i}.png`);
    writeFileSync(file, bytes);
    images.push({ file, bytes });
  }
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function start(options: Partial<Parameters<typeof createServer>[0]> = {}): Promise<{ server: DeltaServer; url: string }> {
  const server = await createServer({ model: 'resnet18', weights, deltas: METHODS.map((m) => deltaDirs[m]!), threads: 2, ...options });
  return { server, url: await server.listen(0, '127.0.0.1') };
}

type Answer = { status: number; body: any; headers: Headers };

async function call(url: string, init: RequestInit & { token?: string } = {}): Promise<Answer> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set('authorization', `Bearer ${init.token}`);
  const res = await fetch(url, { ...init, headers, signal: AbortSignal.timeout(60_000) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Prometheus text, or an error page: kept as text.
  }
  return { status: res.status, body, headers: res.headers };
}

const predict = (url: string, delta: string, bytes: Buffer, token?: string, query = ''): Promise<Answer> =>
  call(`${url}/v1/predict/${delta}${query}`, { method: 'POST', body: bytes, headers: { 'content-type': 'image/png' }, token });

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `no ${name} in /metrics`);
  return Number(line.split(' ')[1]);
}

test('predictions equal predictFiles and `deltatune predict --json` for every delta; multipart keeps the order; the list describes each delta', { timeout: 120_000 }, async () => {
  const { server, url } = await start({ predictToken: PREDICT });
  try {
    const list = await call(`${url}/v1/deltas`, { token: PREDICT });
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.deltas.map((d: { name: string }) => d.name).sort(), [...METHODS].sort());
    for (const d of list.body.deltas) {
      assert.equal(d.method, d.name);
      assert.deepEqual(d.classes, CLASSES);
      assert.equal(d.imageSize, 32);
      assert.ok(d.trainableParameters > 0 && d.fileBytes > 0, JSON.stringify(d));
      assert.equal(d.path, undefined, 'the list does not show server paths');
    }
    for (const method of METHODS) {
      const tuned = loadTuned(deltaDirs[method]!);
      const expected = await predictFiles(tuned, images.map((i) => i.file), 3);
      tuned.dispose();
      // One image per request, all at once (so the server batches them)...
      const single = await Promise.all(images.map((i) => predict(url, method, i.bytes, PREDICT, '?top=3')));
      // ... and all of them in one multipart request.
      const form = new FormData();
      images.forEach((i, k) => form.append('image', new Blob([i.bytes], { type: 'image/png' }), `img${k}.png`));
      const multi = await call(`${url}/v1/predict/${method}?top=3`, { method: 'POST', body: form, token: PREDICT });
      assert.equal(multi.status, 200, JSON.stringify(multi.body));
      assert.deepEqual(multi.body.predictions.map((p: { source: string }) => p.source), images.map((_, k) => `img${k}.png`));
      images.forEach((_, k) => {
        assert.equal(single[k]!.status, 200, JSON.stringify(single[k]!.body));
        const answer = single[k]!.body;
        assert.equal(answer.delta, method);
        assert.equal(answer.model, 'resnet18');
        assert.ok(answer.latencyMs > 0);
        for (const got of [answer.predictions[0].top, multi.body.predictions[k].top]) {
          assert.deepEqual(got.map((t: { label: string }) => t.label), expected[k]!.top.map((t) => t.label), `${method} image ${k}`);
          got.forEach((t: { probability: number }, j: number) => assert.ok(Math.abs(t.probability - expected[k]!.top[j]!.probability) < 1e-5, `${method} image ${k}: ${t.probability} vs ${expected[k]!.top[j]!.probability}`));
        }
      });
    }
    // The CLI, for one delta: the same labels and probabilities.
    const cli = spawnSync(process.execPath, [CLI, 'predict', '--delta', deltaDirs.mona!, '--json', '--quiet', '--top-k', '3', ...images.map((i) => i.file)], { encoding: 'utf8', env: { ...process.env, DELTATUNE_THREADS: '2' } });
    assert.equal(cli.status, 0, cli.stderr);
    const fromCli = JSON.parse(cli.stdout) as { top: { label: string; probability: number }[] }[];
    const served = await Promise.all(images.map((i) => predict(url, 'mona', i.bytes, PREDICT, '?top=3')));
    fromCli.forEach((p, k) => {
      assert.deepEqual(served[k]!.body.predictions[0].top.map((t: { label: string }) => t.label), p.top.map((t) => t.label));
      p.top.forEach((t, j) => assert.ok(Math.abs(served[k]!.body.predictions[0].top[j].probability - t.probability) < 1e-5));
    });
    // Without the predict token: 401 for predictions and the list; health stays open.
    assert.equal((await predict(url, 'mona', images[0]!.bytes)).status, 401);
    assert.equal((await predict(url, 'mona', images[0]!.bytes, 'wrong-token-0123456789')).status, 401);
    assert.equal((await call(`${url}/v1/deltas`)).status, 401);
    assert.equal((await call(`${url}/healthz`)).status, 200);
    const metrics = await call(`${url}/metrics`);
    assert.ok(metric(metrics.body, 'deltatune_batch_size_count') > 0);
    assert.ok(metric(metrics.body, 'deltatune_request_duration_seconds_count') >= METHODS.length * (images.length + 1));
    assert.match(metrics.body, /deltatune_requests_total\{route="\/v1\/predict\/:delta",code="401"\} 2/);
    assert.match(metrics.body, /deltatune_delta_switches_total \d+/);
    assert.equal(metric(metrics.body, 'deltatune_deltas_loaded'), METHODS.length);
  } finally {
    await server.close();
  }
});

test('hot load and unload under traffic: no request fails, a new delta answers at once, an unloaded one is 404; admin needs the token', { timeout: 120_000 }, async () => {
  const { server, url } = await start({ adminToken: ADMIN, deltas: [deltaDirs.mona!, deltaDirs.lora!] });
  try {
    let stop = false;
    const statuses: number[] = [];
    const traffic = Promise.all(Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; !stop; i++) statuses.push((await predict(url, w % 2 ? 'mona' : 'lora', images[i % images.length]!.bytes)).status);
    }));
    const put = (name: string, path: string, token?: string) =>
      call(`${url}/v1/deltas/${name}`, { method: 'PUT', body: JSON.stringify({ path }), headers: { 'content-type': 'application/json' }, token });
    assert.equal((await put('extra', deltaDirs.bitfit!)).status, 401);
    assert.equal((await put('extra', deltaDirs.bitfit!, 'not-the-admin-token-000')).status, 401);
    assert.equal((await call(`${url}/v1/deltas/mona`, { method: 'DELETE' })).status, 401);
    const added = await put('extra', deltaDirs.bitfit!, ADMIN);
    assert.equal(added.status, 201, JSON.stringify(added.body));
    assert.equal(added.body.method, 'bitfit');
    assert.equal(added.body.path, deltaDirs.bitfit, 'the admin sees where it was loaded from');
    assert.equal((await predict(url, 'extra', images[0]!.bytes)).status, 200);
    // Replacing a delta under the same name: answers now come from the new one.
    const replaced = await put('extra', deltaDirs['conv-adapter']!, ADMIN);
    assert.equal(replaced.status, 200);
    const viaServer = await predict(url, 'extra', images[1]!.bytes, undefined, '?top=3');
    const viaAdapter = await predict(url, 'conv-adapter', images[1]!.bytes, undefined, '?top=3');
    assert.equal(viaAdapter.status, 404, 'conv-adapter is not loaded under its own name here');
    const tuned = loadTuned(deltaDirs['conv-adapter']!);
    const expected = await predictFiles(tuned, [images[1]!.file], 3);
    tuned.dispose();
    assert.deepEqual(viaServer.body.predictions[0].top.map((t: { label: string }) => t.label), expected[0]!.top.map((t) => t.label));
    // Bad loads are 400s naming the problem, and change nothing.
    const missing = await put('nothing', join(dir, 'no-such-folder'), ADMIN);
    assert.equal(missing.status, 400);
    assert.match(missing.body.error, /no-such-folder: no such file or folder/);
    assert.equal((await put('bad name!', deltaDirs.bitfit!, ADMIN)).status, 400);
    const other = join(dir, 'other-base');
    mkdirSync(other, { recursive: true });
    cpSync(deltaDirs.lora!, join(other, 'lora'), { recursive: true });
    const json = join(other, 'lora', 'delta.json');
    const manifest = JSON.parse((await import('node:fs')).readFileSync(json, 'utf8'));
    manifest.base.sha256 = '0'.repeat(64);
    writeFileSync(json, JSON.stringify(manifest));
    const mismatch = await put('mismatch', join(other, 'lora'), ADMIN);
    assert.equal(mismatch.status, 400);
    assert.match(mismatch.body.error, /base weights/);
    // Unload under traffic: queued requests are answered, later ones get 404.
    const gone = await call(`${url}/v1/deltas/extra`, { method: 'DELETE', token: ADMIN });
    assert.equal(gone.status, 200);
    assert.equal((await predict(url, 'extra', images[0]!.bytes)).status, 404);
    assert.equal((await call(`${url}/v1/deltas/extra`, { method: 'DELETE', token: ADMIN })).status, 404);
    stop = true;
    await traffic;
    assert.ok(statuses.length >= 8, `${statuses.length} requests during the changes`);
    assert.deepEqual([...new Set(statuses)], [200]);
    const list = await call(`${url}/v1/deltas`);
    assert.deepEqual(list.body.deltas.map((d: { name: string }) => d.name).sort(), ['lora', 'mona']);
  } finally {
    await server.close();
  }
  // Without an admin token hot loading is off: 403, whatever is sent.
  const { server: closed, url: url2 } = await start({ deltas: [deltaDirs.mona!] });
  try {
    const r = await call(`${url2}/v1/deltas/x`, { method: 'PUT', body: JSON.stringify({ path: deltaDirs.lora }), headers: { 'content-type': 'application/json' }, token: ADMIN });
    assert.equal(r.status, 403);
    assert.match(r.body.error, /--admin-token/);
  } finally {
    await closed.close();
  }
});

test('bad, huge, truncated and oversized images are 400/413/415 with a message; the server keeps answering', { timeout: 120_000 }, async () => {
  const { server, url } = await start({ deltas: [deltaDirs.mona!], maxBodyBytes: 200_000, maxImagePixels: 1_000_000, maxImagesPerRequest: 3 });
  try {
    const garbage = await predict(url, 'mona', Buffer.from('this is not an image at all'));
    assert.equal(garbage.status, 400);
    assert.match(garbage.body.error, /cannot decode image/);
    const png = images[5]!.bytes;
    const truncated = await predict(url, 'mona', png.subarray(0, Math.floor(png.length / 2)));
    assert.equal(truncated.status, 400, JSON.stringify(truncated.body));
    const big = await sharp({ create: { width: 2000, height: 1000, channels: 3, background: '#336699' } }).png().toBuffer();
    const huge = await predict(url, 'mona', big);
    assert.equal(huge.status, 400);
    assert.match(huge.body.error, /2000x1000 = 2000000 pixels, over the server's limit of 1000000 \(--max-image-pixels\)/);
    const tooLong = await predict(url, 'mona', Buffer.alloc(300_000, 7));
    assert.equal(tooLong.status, 413);
    assert.match(tooLong.body.error, /over the server's limit of 200000 bytes/);
    const form = new FormData();
    for (let k = 0; k < 4; k++) form.append('image', new Blob([images[k]!.bytes], { type: 'image/png' }), `img${k}.png`);
    const many = await call(`${url}/v1/predict/mona`, { method: 'POST', body: form });
    assert.equal(many.status, 413);
    assert.match(many.body.error, /over 3 images/);
    const text = await call(`${url}/v1/predict/mona`, { method: 'POST', body: 'hello', headers: { 'content-type': 'text/plain' } });
    assert.equal(text.status, 415);
    assert.equal((await call(`${url}/v1/predict/mona`, { method: 'POST' })).status, 400);
    assert.equal((await predict(url, 'nope', png)).status, 404);
    assert.equal((await predict(url, 'mona', png, undefined, '?top=9')).status, 400);
    // One bad image in a multipart request: a 400 naming it.
    const mixed = new FormData();
    mixed.append('image', new Blob([images[0]!.bytes], { type: 'image/png' }), 'good.png');
    mixed.append('image', new Blob([Buffer.from('junk')], { type: 'image/png' }), 'junk.png');
    const mixedAnswer = await call(`${url}/v1/predict/mona`, { method: 'POST', body: mixed });
    assert.equal(mixedAnswer.status, 400);
    assert.match(mixedAnswer.body.error, /image 2 \(junk\.png\)/);
    const ok = await predict(url, 'mona', png);
    assert.equal(ok.status, 200);
    const metrics = (await call(`${url}/metrics`)).body as string;
    assert.match(metrics, /deltatune_rejected_total\{reason="bad_image"\} [3-9]/);
    assert.match(metrics, /deltatune_rejected_total\{reason="too_many_pixels"\} 1/);
  } finally {
    await server.close();
  }
});

test('overload: beyond the queue 503 with Retry-After, then the server recovers; a request over its timeout is 503', { timeout: 120_000 }, async () => {
  const { server, url } = await start({ deltas: [deltaDirs.mona!, deltaDirs.lora!], maxQueue: 4, maxBatch: 1 });
  try {
    const burst = await Promise.all(Array.from({ length: 40 }, (_, i) => predict(url, i % 2 ? 'mona' : 'lora', images[i % images.length]!.bytes)));
    const codes = burst.map((r) => r.status);
    assert.ok(codes.includes(503), `codes: ${codes.join(' ')}`);
    assert.ok(codes.includes(200), `codes: ${codes.join(' ')}`);
    assert.deepEqual([...new Set(codes)].sort(), [200, 503]);
    const refused = burst.find((r) => r.status === 503)!;
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.match(refused.body.error, /limit of 4 queued images \(--max-queue\)/);
    // Recovered: sequential requests all succeed, and the gauges are back to zero.
    for (let i = 0; i < 6; i++) assert.equal((await predict(url, 'mona', images[i]!.bytes)).status, 200);
    const metrics = (await call(`${url}/metrics`)).body as string;
    assert.equal(metric(metrics, 'deltatune_requests_in_flight'), 0);
    assert.equal(metric(metrics, 'deltatune_queue_depth'), 0);
    assert.match(metrics, /deltatune_rejected_total\{reason="overloaded"\} \d+/);
  } finally {
    await server.close();
  }
  // A batch that waits longer than the request may: 503 at the timeout, not a hang.
  const { server: slow, url: slowUrl } = await start({ deltas: [deltaDirs.mona!], maxWaitMs: 5_000, maxBatch: 64, requestTimeoutMs: 300 });
  try {
    const t0 = performance.now();
    const late = await predict(slowUrl, 'mona', images[0]!.bytes);
    assert.equal(late.status, 503);
    assert.match(late.body.error, /waited over 300 ms \(--request-timeout-ms\)/);
    assert.ok(performance.now() - t0 < 4_000);
  } finally {
    await slow.close();
  }
});

test('a client that hangs up takes its images out of the queue', { timeout: 60_000 }, async () => {
  const { server, url } = await start({ deltas: [deltaDirs.mona!], maxWaitMs: 3_000, maxBatch: 64 });
  try {
    const controller = new AbortController();
    const gone = images.slice(0, 5).map((i) => fetch(`${url}/v1/predict/mona`, { method: 'POST', body: i.bytes, headers: { 'content-type': 'image/png' }, signal: controller.signal }).catch((err: Error) => err.name));
    const gauges = async () => {
      const text = (await call(`${url}/metrics`)).body as string;
      return { queued: metric(text, 'deltatune_queue_depth'), inFlight: metric(text, 'deltatune_requests_in_flight'), batches: metric(text, 'deltatune_batch_size_count') };
    };
    while ((await gauges()).queued < 5) await new Promise((r) => setTimeout(r, 20));
    controller.abort();
    assert.deepEqual(await Promise.all(gone), Array(5).fill('AbortError'));
    const deadline = Date.now() + 2_000;
    let now = await gauges();
    while ((now.queued > 0 || now.inFlight > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      now = await gauges();
    }
    assert.deepEqual(now, { queued: 0, inFlight: 0, batches: 0 }, 'dropped before their batch ran');
    assert.equal((await predict(url, 'mona', images[0]!.bytes)).status, 200);
  } finally {
    await server.close();
  }
});

/** `deltatune serve` in a child process; resolves once it listens. */
async function spawnServer(args: string[]): Promise<{ child: ChildProcessWithoutNullStreams; url: string; output: () => string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--model', 'resnet18', '--weights', weights, '--port', '0', '--threads', '2', ...args]);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 60_000;
  while (!/on (http:\/\/\S+):/.test(stdout)) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      assert.fail(`the server did not start: ${stdout} ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, url: /on (http:\/\/\S+):/.exec(stdout)![1]!, output: () => stdout, exited };
}

test('memory stays flat over 2,400 requests across five deltas (the server in its own process)', { timeout: 300_000 }, async (t) => {
  // 192×192 noise: ~110 KB per body, so keeping even one buffer per request would show in the RSS.
  const bodies = await Promise.all([1, 2, 3].map((seed) => noisePng(100 + seed, 192, 192)));
  const { child, url } = await spawnServer(['--deltas', ...METHODS.map((m) => deltaDirs[m]!), '--max-queue', '1024']);
  try {
    let sent = 0;
    const round = async (count: number) => {
      const failures: number[] = [];
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (sent < count) {
          const i = sent++;
          const r = await predict(url, METHODS[i % METHODS.length]!, bodies[i % bodies.length]!);
          if (r.status !== 200) failures.push(r.status);
        }
      }));
      assert.deepEqual(failures, []);
      // Read with the same delta attached each time (deltas differ in how many tensors they hold).
      assert.equal((await predict(url, 'mona', bodies[0]!)).status, 200);
      const text = (await call(`${url}/metrics`)).body as string;
      return { rss: metric(text, 'process_resident_memory_bytes'), tensors: metric(text, 'deltatune_engine_live_tensors') };
    };
    const warm = await round(800);
    const middle = await round(1600);
    const end = await round(2400);
    const mb = (b: number) => (b / 2 ** 20).toFixed(1);
    const trace = `rss ${mb(warm.rss)} → ${mb(middle.rss)} → ${mb(end.rss)} MiB; live tensors ${warm.tensors} → ${middle.tensors} → ${end.tensors}`;
    t.diagnostic(trace);
    assert.ok(warm.tensors > 0, trace);
    assert.equal(end.tensors, warm.tensors, trace);
    assert.equal(middle.tensors, warm.tensors, trace);
    assert.ok(end.rss - middle.rss < 32 * 2 ** 20, trace);
    const metrics = (await call(`${url}/metrics`)).body as string;
    for (const m of METHODS) assert.match(metrics, new RegExp(`deltatune_images_total\\{delta="${m}"\\} ${m === 'mona' ? 483 : 480}\n`));
  } finally {
    child.kill('SIGKILL');
  }
});

test('the CLI: SIGTERM answers the requests in flight, refuses new ones, and exits 0 promptly', { timeout: 120_000 }, async () => {
  const { child, url, output, exited } = await spawnServer(['--deltas', deltaDirs.mona!, deltaDirs.lora!, '--max-batch', '64', '--max-wait-ms', '1500']);
  try {
    assert.match(output(), /serving resnet18 with 2 delta\(s\) on http:\/\/127\.0\.0\.1:\d+: mona \(mona, 3 classes\), lora \(lora, 3 classes\)/);
    // Eight requests wait for their batch (max wait 1.5 s); SIGTERM comes while they do.
    const pending = images.slice(0, 4).flatMap((i) => [predict(url, 'mona', i.bytes), predict(url, 'lora', i.bytes)]);
    while (metric((await call(`${url}/metrics`)).body, 'deltatune_requests_in_flight') < 8) await new Promise((r) => setTimeout(r, 20));
    const signalled = performance.now();
    child.kill('SIGTERM');
    const answers = await Promise.all(pending);
    assert.deepEqual(answers.map((a) => a.status), Array(8).fill(200));
    assert.equal(await exited, 0);
    // Kept-alive sockets do not hold the exit back (fastify would wait for their idle timeout, 72 s).
    assert.ok(performance.now() - signalled < 15_000, `${performance.now() - signalled} ms from SIGTERM to exit`);
    assert.match(output(), /SIGTERM: answering the requests in flight, then stopping\nstopped\n$/);
    await assert.rejects(fetch(`${url}/healthz`), 'nothing listens after the exit');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test('the CLI refuses bad flags and deltas in one line', { timeout: 60_000 }, () => {
  const run = (args: string[]) => spawnSync(process.execPath, [CLI, 'serve', ...args], { encoding: 'utf8', timeout: 60_000 });
  const cases: [string[], RegExp][] = [
    [['--model', 'resnet18'], /give --deltas PATH/],
    [['--model', 'resnet18', '--deltas', join(dir, 'missing')], /missing: no such file or folder/],
    [['--model', 'resnet18', '--deltas', deltaDirs.mona!, '--port', '70000'], /--port must be an integer ≥ 0 and ≤ 65535/],
    [['--model', 'resnet18', '--deltas', deltaDirs.mona!, '--admin-token', 'short'], /--admin-token \(or DELTATUNE_ADMIN_TOKEN\) must be at least 16 characters/],
    [['--model', 'resnet18', '--deltas', deltaDirs.mona!, deltaDirs.mona!], /two deltas are named 'mona'/],
    [['--model', 'resnet18', '--deltas', deltaDirs.mona!, '--max-batch', '8', '--batch-sizes', '1,4,32'], /--batch-sizes must be distinct whole numbers from 1 to --max-batch \(8\)/],
    [['--model', 'resnet18', '--deltas', deltaDirs.mona!], /the delta was trained on base weights base\.safetensors/],
  ];
  for (const [args, pattern] of cases) {
    const r = run(args);
    assert.notEqual(r.status, 0, args.join(' '));
    const lines = r.stderr.trim().split('\n');
    assert.match(lines[0]!, /^deltatune: /, r.stderr);
    assert.match(r.stderr, pattern);
  }
});
