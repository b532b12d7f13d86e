// `deltatune train` data-parallel on 127.0.0.1: 2 ranks with half the batch each train the same
// weights as 1 process with the whole batch (full fine-tuning and Mona); a rank killed mid-epoch
// stops the run with one line naming it, and --resume (on 2 ranks, or on 1) finishes it; ranks
// started with different options are refused; a rank that finds no peers fails within its timeout.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSafetensors } from '../../src/index.js';
import { freePort, maxDeltaDiff } from './common.js';
import { ROOT } from '../helpers.js';
import { makeFolder } from '../data/fixtures.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const LIMIT_MS = 120_000; // every child is killed after this

let dir = '';
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'deltatune-ddp-'));
  await makeFolder(join(dir, 'data', 'train'), ['a', 'b', 'c'], 16);
  await makeFolder(join(dir, 'data', 'val'), ['a', 'b', 'c'], 3);
  await makeFolder(join(dir, 'small', 'train'), ['a', 'b'], 8);
  await makeFolder(join(dir, 'small', 'val'), ['a', 'b'], 2);
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});


interface Exit { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }

function runCli(args: string[], env: Record<string, string> = {}, onSpawn?: (pid: number) => void): Promise<Exit> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, DELTATUNE_THREADS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  if (onSpawn) onSpawn(child.pid!);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

const ok = (r: Exit, what: string) => assert.equal(r.code, 0, `${what}: exit ${r.code ?? r.signal}\n${r.stderr.slice(-3000)}`);


// Mona's dropout off (each rank draws its own masks, so with dropout on no two runs agree).
const common = (method: string, model: string) => [
  'train', '--model', model, '--method', method, ...(method === 'mona' ? ['--opt', 'dropout=0'] : []),
  '--image-size', '32', '--batch', '8', '--lr', '2e-3', '--epochs', '1', '--seed', '5', '--quiet',
];

// Full fine-tuning on a model without BatchNorm (BN in training mode normalises each rank's own
// half-batch, as DDP does without SyncBatchNorm), and Mona on a ResNet (its BN is frozen, in eval).
// Mona also with the frozen prefix cached: every rank caches every image (shards change each epoch).
for (const [method, model, extra] of [['full', 'vit_tiny_p4_32', []], ['mona', 'resnet18', []], ['mona', 'resnet18', ['--cache-frozen-prefix', '--augment', 'none']]] as const) {
  test(`equivalence, ${method} on ${model}${extra.length ? ` (${extra.join(' ')})` : ''}: 2 ranks × batch 4 train the weights 1 process × batch 8 does`, { timeout: 300_000 }, async () => {
    const tag = `${method}${extra.length ? '-cached' : ''}`;
    const single = join(dir, `single-${tag}`);
    const two = join(dir, `two-${tag}`);
    const port = await freePort();
    // SGD with momentum: Adam divides by the root of tiny second moments, which magnifies the
    // rounding differences of summing a batch in two halves (the bench reports AdamW's figure).
    const sgd = ['--optimizer', 'sgd', '--lr', '0.05', ...extra];
    const [s, t] = await Promise.all([
      runCli([...common(method, model), ...sgd, '--data', join(dir, 'data'), '--out', single]),
      runCli([...common(method, model), ...sgd, '--data', join(dir, 'data'), '--out', two, '--nproc-per-node', '2', '--master-port', String(port)]),
    ]);
    ok(s, '1 process');
    ok(t, '2 ranks');
    const diff = maxDeltaDiff(single, two);
    console.log(`# ${tag} on ${model}: max |Δw| after 6 steps = ${diff.toExponential(2)}`);
    assert.ok(diff < 1e-5, `max abs diff ${diff}`);
    // The same validation figures: each rank scored its own part of the validation set.
    const m1 = JSON.parse(readFileSync(join(single, 'metrics.jsonl'), 'utf8').trim());
    const m2 = JSON.parse(readFileSync(join(two, 'metrics.jsonl'), 'utf8').trim());
    assert.equal(m2.val.top1, m1.val.top1);
    assert.ok(Math.abs(m2.val.loss - m1.val.loss) < 1e-4, `val loss ${m2.val.loss} vs ${m1.val.loss}`);
    assert.ok(Math.abs(m2.trainLoss - m1.trainLoss) < 1e-4, `train loss ${m2.trainLoss} vs ${m1.trainLoss}`);
    assert.equal(JSON.parse(readFileSync(join(two, 'config.json'), 'utf8')).worldSize, 2);
    // Only rank 0 wrote: the run folder holds one run's files and nothing half-written.
    assert.deepEqual(readdirSync(two).filter((f) => f.startsWith('.')), []);
  });
}

// Two steps only: a randomly initialised ResNet at 32 px with BN over 8 samples is chaotic (1 vs 2
// threads in ONE process differ by ~4e-5 after 2 steps and by ~7e-3 after 6), so longer runs
// measure the chaos, not the method.
test('--sync-bn: full fine-tuning of a ResNet on 2 ranks × batch 4 matches 1 process × batch 8; without it, it does not', { timeout: 300_000 }, async () => {
  const args = [...common('full', 'resnet18'), '--optimizer', 'sgd', '--lr', '0.01', '--data', join(dir, 'small')];
  const single = join(dir, 'bn-single');
  const synced = join(dir, 'bn-synced');
  const local = join(dir, 'bn-local');
  const s = await runCli([...args, '--out', single]);
  ok(s, '1 process');
  const [a, b] = await Promise.all([
    runCli([...args.filter((a) => a !== '--quiet'), '--out', synced, '--sync-bn', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--progress', 'lines']),
    runCli([...args, '--out', local, '--nproc-per-node', '2', '--master-port', String(await freePort())]),
  ]);
  ok(a, '2 ranks, --sync-bn');
  ok(b, '2 ranks, per-rank statistics');
  assert.match(a.stderr, /sync-bn: 20 of 20 BatchNorm layers train, with the statistics of the global batch/);
  const dSynced = maxDeltaDiff(single, synced);
  const dLocal = maxDeltaDiff(single, local);
  console.log(`# resnet18 full FT, max |Δw| vs 1 process: --sync-bn ${dSynced.toExponential(2)}, per-rank BN ${dLocal.toExponential(2)}`);
  assert.ok(dSynced < 5e-4, `--sync-bn: max abs diff ${dSynced}`);
  assert.ok(dLocal > 100 * dSynced, `per-rank statistics should differ: ${dLocal} vs ${dSynced}`);
});

/** Every child of `pid` (the launcher's workers) with its RANK. */
function workersOf(pid: number): { pid: number; rank: number }[] {
  const out = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' }).stdout;
  return out
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((p) => p > 0)
    .flatMap((p) => {
      try {
        const env = readFileSync(`/proc/${p}/environ`, 'utf8').split('\0');
        const rank = env.find((e) => e.startsWith('RANK='));
        return rank ? [{ pid: p, rank: Number(rank.slice(5)) }] : [];
      } catch {
        return [];
      }
    });
}

test('a rank killed mid-epoch stops the run with one line naming it; --resume on 2 ranks, or on 1, finishes it', { timeout: 400_000 }, async () => {
  const args = [...common('mona', 'resnet18'), '--epochs', '2', '--batch', '4', '--checkpoint-every', '2', '--data', join(dir, 'data')];
  const straight = join(dir, 'kill-straight');
  const killed = join(dir, 'kill-killed');
  const s = await runCli([...args, '--out', straight, '--nproc-per-node', '2', '--master-port', String(await freePort())]);
  ok(s, 'uninterrupted run');

  let launcher = 0;
  const running = runCli([...args, '--out', killed, '--nproc-per-node', '2', '--master-port', String(await freePort())], {}, (pid) => (launcher = pid));
  // Kill rank 1 as soon as rank 0 wrote its first mid-epoch checkpoint (12 steps per epoch, one every 2).
  const state = join(killed, 'state.safetensors');
  const deadline = Date.now() + 100_000;
  while (!existsSync(state) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const victim = workersOf(launcher).find((w) => w.rank === 1);
  assert.ok(victim, 'rank 1 is running');
  process.kill(victim.pid, 'SIGKILL');
  const k = await running;
  assert.notEqual(k.code, 0);
  const lines = k.stderr.split('\n').filter((l) => /rank 1 .*killed by SIGKILL/.test(l));
  assert.equal(lines.length, 1, k.stderr);
  assert.match(lines[0]!, /^deltatune: rank 1 \(local rank 1, pid \d+\) was killed by SIGKILL; stopping the other workers$/);
  const progress = JSON.parse(loadSafetensors(state, { filter: () => false }).metadata.progress!);
  assert.equal(progress.finished, false, 'killed before the end');
  console.log(`# killed at epoch ${progress.epoch + 1}, batch ${progress.batch}; the launcher exited after ${Math.round(k.ms)} ms`);

  // Resume on 2 ranks: exactly the uninterrupted run (the same ranks replay the same steps).
  const copy = join(dir, 'kill-copy');
  spawnSync('cp', ['-a', killed, copy]);
  const r2 = await runCli(['train', '--resume', killed, '--nproc-per-node', '2', '--master-port', String(await freePort()), '--progress', 'lines']);
  ok(r2, 'resume on 2 ranks');
  assert.match(r2.stderr, /resuming .* at epoch \d, batch \d+/);
  const d2 = maxDeltaDiff(straight, killed);
  assert.ok(d2 < 1e-6, `resumed on 2 ranks: max abs diff ${d2}`);
  // Resume on 1 process: the same global batches, summed in another order.
  const r1 = await runCli(['train', '--resume', copy, '--progress', 'lines']);
  ok(r1, 'resume on 1 process');
  const d1 = maxDeltaDiff(straight, copy);
  console.log(`# resumed on 2 ranks: max |Δw| ${d2.toExponential(2)}; on 1 process: ${d1.toExponential(2)}`);
  assert.ok(d1 < 1e-4, `resumed on 1 process: max abs diff ${d1}`);
});

test('a rank that hangs (SIGSTOP) makes the others fail after --dist-timeout; the launcher then stops it and --resume finishes', { timeout: 300_000 }, async () => {
  const args = [...common('mona', 'resnet18'), '--epochs', '2', '--batch', '4', '--checkpoint-every', '2', '--data', join(dir, 'data')];
  const hung = join(dir, 'hung');
  let launcher = 0;
  const running = runCli([...args, '--out', hung, '--dist-timeout', '4', '--nproc-per-node', '2', '--master-port', String(await freePort())], {}, (pid) => (launcher = pid));
  const state = join(hung, 'state.safetensors');
  const deadline = Date.now() + 100_000;
  while (!existsSync(state) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const victim = workersOf(launcher).find((w) => w.rank === 1);
  assert.ok(victim, 'rank 1 is running');
  const stoppedAt = performance.now();
  process.kill(victim.pid, 'SIGSTOP');
  const r = await running;
  const seconds = (performance.now() - stoppedAt) / 1000;
  console.log(`# rank 1 stopped; the run ended ${seconds.toFixed(1)} s later`);
  assert.notEqual(r.code, 0);
  // Rank 0 gives up at the timeout, naming itself and c10d's cause; the launcher names it too.
  assert.match(r.stderr, /^deltatune \[rank 0\]: .*\(rank 0 of world size 2\): .*(Timed out|timeout)/im);
  assert.match(r.stderr, /^deltatune: rank 0 \(local rank 0, pid \d+\) exited with code 1; stopping the other workers$/m);
  assert.ok(seconds < 4 + 10 + 20, `took ${seconds} s`); // the timeout, the launcher's grace before SIGKILL, slack
  assert.deepEqual(workersOf(launcher), [], 'no worker left');
  const resumed = await runCli(['train', '--resume', hung, '--nproc-per-node', '2', '--master-port', String(await freePort())]);
  ok(resumed, 'resume after the hang');
  assert.ok(existsSync(join(hung, 'last', 'delta.safetensors')));
});

test('ranks started with different options are refused at the start, naming what differs', { timeout: 200_000 }, async () => {
  const port = String(await freePort());
  const rank = (r: number, lr: string) =>
    runCli([...common('mona', 'resnet18'), '--lr', lr, '--data', join(dir, 'data'), '--out', join(dir, `mismatch-${r}`)], {
      RANK: String(r), WORLD_SIZE: '2', LOCAL_RANK: String(r), MASTER_ADDR: '127.0.0.1', MASTER_PORT: port,
    });
  const [a, b] = await Promise.all([rank(0, '2e-3'), rank(1, '1e-3')]);
  for (const [r, x] of [[0, a], [1, b]] as const) {
    assert.equal(x.code, 1, x.stderr);
    assert.match(x.stderr, new RegExp(`^deltatune \\[rank ${r}\\]: the ranks were started with different configurations: rank 1 differs from rank 0 in training; start every rank with the same command and data`, 'm'));
  }
  assert.ok(!existsSync(join(dir, 'mismatch-0', 'state.safetensors')), 'nothing trained');
});

test('a rank whose peers never come fails within --dist-timeout with one line', { timeout: 60_000 }, async () => {
  const port = String(await freePort());
  const r = await runCli([...common('mona', 'resnet18'), '--data', join(dir, 'data'), '--out', join(dir, 'alone'), '--dist-timeout', '3'], {
    RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: port,
  });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^deltatune \[rank 1\]: TCPStore\(127\.0\.0\.1:\d+, client, world size 2\): .*timed out/m);
  assert.ok(r.ms < 30_000, `took ${r.ms} ms`);
  assert.ok(!existsSync(join(dir, 'alone')), 'rank 1 writes nothing');
});
