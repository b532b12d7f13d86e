// npm run bench:serve — `deltatune serve` under load on 127.0.0.1, against the same images run as
// plain batched calls in-process.
//  - Base: MobileNetV2 at 224 (the ImageNet weights of ../shared/data/weights when present, else
//    random init), 10 classes. Deltas: 4 Mona (defaults: hidden 64, kernels 3/5/7) and 4 LoRA
//    (rank 8), their parameters moved off their init so each delta answers differently.
//  - Images: 64 photos of ../shared/data/clothing-small/test (≈400×533 JPEG; else seeded noise
//    JPEGs of that size), each request one image as the body, decoded and prepared by the server.
//  - The server is the CLI in its own process (every core for inference; --max-batch 16,
//    --max-wait-ms 5, a queue large enough that nothing is refused). The load generator is
//    autocannon (HTTP/1.1, keep-alive) in this process, at several connection counts, each for
//    BENCH_SECONDS (default 10) after a warm-up: "1 delta" sends everything to mona-0; "8 deltas"
//    picks the delta uniformly at random per request (seeded). rps = 200 answers / duration;
//    anything but 200 is counted and reported.
//  - In-process: the same images through predictFiles (the DataLoader's decode pool, batches of
//    16, one forward per batch: what `deltatune predict` does) on mona-0, in this process while the
//    server idles, ~10 s of images.
//  - BENCH_ROUNDS passes (default 2): in each, every load runs both scenarios back to back (order
//    alternating), then the in-process measurement; figures are medians over the passes.
//  - serve_vs_inprocess = serve_rps_1delta / in-process images per second. serve_p99_ms is the
//    p99 latency of the 8-delta run at the connection count where its throughput peaked.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import sharp from 'sharp';
import { applyDelta, loadTuned, manualSeed, noGrad, predictFiles, randn, saveDelta, tidy } from '../src/index.js';
import { createModel } from '../src/models/index.js';
import { ROOT, median, prng } from './common.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const CONNECTIONS = [32, 64, 128];
const MAX_BATCH = 16;
const SHARED = join(ROOT, '..', 'shared', 'data');
const WEIGHTS = join(SHARED, 'weights', 'mobilenet_v2_imagenet.safetensors');
const PHOTOS = join(SHARED, 'clothing-small', 'test');
const CLASSES = ['dress', 'hat', 'longsleeve', 'outwear', 'pants', 'shirt', 'shoes', 'shorts', 'skirt', 't-shirt'];
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');

const cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown CPU';
const f1 = (x: number) => x.toFixed(1);

async function images(dir: string): Promise<string[]> {
  if (existsSync(PHOTOS)) {
    const files = readdirSync(PHOTOS).sort().flatMap((c) => readdirSync(join(PHOTOS, c)).sort().slice(0, 7).map((f) => join(PHOTOS, c, f)));
    return files.slice(0, 64);
  }
  console.log(`# ${PHOTOS} is absent: seeded noise JPEGs of 400×533 instead`);
  const random = prng(7);
  return Promise.all(Array.from({ length: 64 }, async (_, i) => {
    const raw = Buffer.alloc(400 * 533 * 3);
    for (let k = 0; k < raw.length; k++) raw[k] = Math.floor(random() * 256);
    const file = join(dir, `noise-${i}.jpg`);
    writeFileSync(file, await sharp(raw, { raw: { width: 400, height: 533, channels: 3 } }).jpeg({ quality: 90 }).toBuffer());
    return file;
  }));
}

function makeDeltas(dir: string, weights: string | undefined): string[] {
  manualSeed(11);
  const names: string[] = [];
  for (const method of ['mona', 'lora']) {
    for (let i = 0; i < 4; i++) {
      const model = createModel('mobilenet_v2', weights ? { weights } : {});
      const delta = applyDelta(model, { method, numClasses: CLASSES.length, ...(method === 'lora' ? { rank: 8 } : {}) });
      noGrad(() => delta.trainableParameters().forEach((p) => tidy(() => void p.add_(randn(p.shape).mul(0.02)))));
      const name = `${method}-${i}`;
      saveDelta(delta, join(dir, name), { classes: CLASSES });
      delta.dispose();
      model.dispose();
      names.push(name);
    }
  }
  return names;
}

async function startServer(dir: string, names: string[], weights: string | undefined): Promise<{ child: ChildProcessWithoutNullStreams; url: string }> {
  const args = [CLI, 'serve', '--model', 'mobilenet_v2', ...(weights ? ['--weights', weights] : []), '--deltas', ...names.map((n) => join(dir, n)),
    '--port', '0', '--max-batch', String(MAX_BATCH), '--max-wait-ms', '5', '--max-queue', '100000', '--request-timeout-ms', '120000'];
  const child = spawn(process.execPath, args);
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const deadline = Date.now() + 120_000;
  while (!/ on (http:\/\/\S+):/.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the server did not start: ${out}${err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, url: / on (http:\/\/\S+):/.exec(out)![1]! };
}

async function scrape(url: string): Promise<{ batches: number; images: number; switches: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return { batches: value('deltatune_batch_size_count'), images: value('deltatune_batch_size_sum'), switches: value('deltatune_delta_switches_total') };
}

interface Run {
  scenario: string;
  connections: number;
  rps: number;
  p50: number;
  p99: number;
  other: number;
  meanBatch: number;
  switchesPerSecond: number;
}

async function load(url: string, scenario: string, deltas: string[], bodies: Buffer[], connections: number, seconds: number): Promise<Run> {
  const random = prng(connections * 1000 + deltas.length);
  const before = await scrape(url);
  const result = await autocannon({
    url, connections, duration: seconds, timeout: 120,
    requests: [{
      setupRequest: (request) => ({
        ...request, method: 'POST',
        path: `/v1/predict/${deltas[Math.floor(random() * deltas.length)]}`,
        headers: { 'content-type': 'image/jpeg' },
        body: bodies[Math.floor(random() * bodies.length)]!,
      }),
    }],
  });
  const after = await scrape(url);
  const ok = result.statusCodeStats['200']?.count ?? 0;
  return {
    scenario, connections, rps: ok / result.duration, p50: result.latency.p50, p99: result.latency.p99,
    other: result.non2xx + result.errors, meanBatch: (after.images - before.images) / Math.max(1, after.batches - before.batches),
    switchesPerSecond: (after.switches - before.switches) / result.duration,
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'deltatune-bench-serve-'));
  let server: ChildProcessWithoutNullStreams | null = null;
  try {
    const weights = existsSync(WEIGHTS) ? WEIGHTS : undefined;
    if (!weights) console.log(`# ${WEIGHTS} is absent: MobileNetV2 with random init`);
    console.log(`serve benchmark on ${cpuModel} (${cpus().length} cores): MobileNetV2 at 224, 4 Mona + 4 LoRA deltas, autocannon on 127.0.0.1, ${SECONDS} s per load`);
    const names = makeDeltas(dir, weights);
    const files = await images(dir);
    const bodies = files.map((f) => readFileSync(f));
    const started = await startServer(dir, names, weights);
    server = started.child;
    const { url } = started;
    await load(url, 'warm-up', names, bodies, 16, Math.max(3, SECONDS / 2));

    // Passes over the loads, the two scenarios back to back at each (order alternating) and an
    // in-process measurement after each pass, so the machine's drift falls on both sides alike.
    const tuned = loadTuned(join(dir, 'mona-0'));
    await predictFiles(tuned, files.slice(0, 32), 5, MAX_BATCH); // warm-up
    const runs: Run[] = [];
    const rates: number[] = [];
    const scenarios = [['1 delta', ['mona-0']], ['8 deltas', names]] as const;
    for (let pass = 0; pass < ROUNDS; pass++) {
      for (const [i, connections] of CONNECTIONS.entries()) {
        for (const [scenario, deltas] of (i + pass) % 2 ? [...scenarios].reverse() : scenarios) {
          const run = await load(url, scenario, [...deltas], bodies, connections, SECONDS);
          runs.push(run);
          console.log(`  pass ${pass + 1}  ${scenario.padEnd(8)} ${String(connections).padStart(3)} connections: ${f1(run.rps).padStart(6)} req/s, p50 ${String(Math.round(run.p50)).padStart(5)} ms, p99 ${String(Math.round(run.p99)).padStart(5)} ms, mean batch ${f1(run.meanBatch)}, ${f1(run.switchesPerSecond)} switches/s${run.other ? `, ${run.other} not 200` : ''}`);
        }
      }
      // In-process: the same files, batches of 16, as `deltatune predict` runs them (the server idles).
      const count = Math.max(64, Math.ceil((Math.max(...runs.map((r) => r.rps)) * SECONDS) / 64) * 64);
      const list = Array.from({ length: count }, (_, i) => files[i % files.length]!);
      const t0 = performance.now();
      await predictFiles(tuned, list, 5, MAX_BATCH);
      rates.push(count / ((performance.now() - t0) / 1000));
      console.log(`  pass ${pass + 1}  in-process predictFiles, batches of ${MAX_BATCH}: ${f1(rates.at(-1)!)} images/s (${count} images)`);
    }
    tuned.dispose();
    server.kill('SIGTERM');
    await new Promise((r) => server!.once('exit', r));
    server = null;

    // Per scenario and load, the median over passes; the peak is the load with the highest median.
    const summary = (scenario: string) => {
      const byLoad = CONNECTIONS.map((connections) => {
        const same = runs.filter((r) => r.scenario === scenario && r.connections === connections);
        const mid = (f: (r: Run) => number) => median(same.map(f));
        return { scenario, connections, rps: mid((r) => r.rps), p50: mid((r) => r.p50), p99: mid((r) => r.p99), meanBatch: mid((r) => r.meanBatch) };
      });
      return byLoad.reduce((a, b) => (b.rps > a.rps ? b : a));
    };
    const one = summary('1 delta');
    const eight = summary('8 deltas');
    const inProcess = median(rates);
    const notOk = runs.reduce((n, r) => n + r.other, 0);
    console.log('');
    console.log('| load | peak req/s | at connections | p50 ms | p99 ms | mean batch |');
    console.log('|---|---|---|---|---|---|');
    for (const r of [one, eight]) console.log(`| ${r.scenario} | ${f1(r.rps)} | ${r.connections} | ${Math.round(r.p50)} | ${Math.round(r.p99)} | ${f1(r.meanBatch)} |`);
    console.log(`| in-process predictFiles (mona-0) | ${f1(inProcess)} images/s | — | — | — | ${MAX_BATCH} |`);
    console.log(`(medians over ${ROUNDS} passes; in-process per pass: ${rates.map(f1).join(', ')})`);
    console.log('');
    console.log(`8 deltas / 1 delta: ${(eight.rps / one.rps).toFixed(3)} (target ≥ 0.85); serve / in-process: ${(one.rps / inProcess).toFixed(3)} (target ≥ 0.90); ${notOk} answers other than 200`);
    console.log(`RESULT serve_rps_1delta=${f1(one.rps)} serve_rps_8deltas=${f1(eight.rps)} serve_vs_inprocess=${(one.rps / inProcess).toFixed(3)} serve_p99_ms=${Math.round(eight.p99)}`);
  } finally {
    server?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
