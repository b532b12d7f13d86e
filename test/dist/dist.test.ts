// c10d through the addon: 2 and 3 node processes on 127.0.0.1 (test/dist/worker.ts is one rank).
// Exact results of every collective (float32, int64) over TCP, file and env:// rendezvous; a rank
// that never joins, a rank killed mid-run, and the event loop running during a blocking barrier.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers.js';
import { freePort } from './common.js';

const WORKER = join(ROOT, 'dist', 'test', 'dist', 'worker.js');
const LIMIT_MS = 45_000; // each child is killed after this (the test's own bound is 60 s)


interface Rank {
  code: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
  stderr: string;
  result: Record<string, unknown> | undefined;
}

function runRank(args: Record<string, unknown>, env: Record<string, string> = {}): Promise<Rank> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [WORKER, JSON.stringify(args)], {
    env: { ...process.env, DELTATUNE_THREADS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
      resolve({ code, signal, ms: performance.now() - t0, stderr, result: line ? JSON.parse(line.slice(7)) : undefined });
    });
  });
}

function runRanks(worldSize: number, args: Record<string, unknown>, env: (rank: number) => Record<string, string> = () => ({})): Promise<Rank[]> {
  return Promise.all(Array.from({ length: worldSize }, (_, rank) => runRank({ ...args, rank, worldSize }, env(rank))));
}

const ok = (r: Rank, what: string) => assert.equal(r.code, 0, `${what}: exit ${r.code ?? r.signal}\n${r.stderr.slice(-3000)}`);

for (const worldSize of [2, 3]) {
  test(`collectives over tcp://, world size ${worldSize}: exact float32 and int64 results`, { timeout: 60_000 }, async () => {
    const port = await freePort();
    const ranks = await runRanks(worldSize, { scenario: 'collectives', initMethod: `tcp://127.0.0.1:${port}`, timeoutMs: 20_000 });
    ranks.forEach((r, i) => ok(r, `rank ${i}`));
    for (const r of ranks) {
      assert.equal(r.result?.ok, true);
      const bad = r.result?.badRoot as { message: string };
      assert.match(bad.message, /root must be in/);
      assert.match((r.result?.afterDispose as { message: string }).message, /disposed/);
    }
  });
}

test('collectives over file:// (FileStore)', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'deltatune-dist-'));
  try {
    const ranks = await runRanks(2, { scenario: 'collectives', initMethod: `file://${join(dir, 'store')}`, timeoutMs: 20_000 });
    ranks.forEach((r, i) => ok(r, `rank ${i}`));
    assert.ok(ranks.every((r) => r.result?.ok === true));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('collectives over env:// (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE as torchrun sets them)', { timeout: 60_000 }, async () => {
  const port = await freePort();
  const ranks = await Promise.all(
    [0, 1].map((rank) =>
      runRank({ scenario: 'collectives', initMethod: 'env://', timeoutMs: 20_000 }, {
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
        RANK: String(rank),
        WORLD_SIZE: '2',
      }),
    ),
  );
  // the worker takes rank and world size from the environment only
  ranks.forEach((r, i) => ok(r, `rank ${i}`));
  assert.deepEqual(ranks.map((r) => r.result?.rank), [0, 1]);
  assert.ok(ranks.every((r) => r.result?.ok === true));
});

for (const [rank, who] of [[0, 'the store server (rank 1 never connects)'], [1, 'a store client (no server)']] as const) {
  test(`a rank that never joins: ${who} rejects within the timeout and exits cleanly`, { timeout: 60_000 }, async () => {
    const port = await freePort();
    const r = await runRank({ scenario: 'never-joins', initMethod: `tcp://127.0.0.1:${port}`, rank, worldSize: 2, timeoutMs: 3000 });
    ok(r, `rank ${rank}`);
    const create = r.result?.create as { message: string; ms: number };
    console.log(`# rank ${rank}: rejected after ${create.ms} ms: ${create.message.split('\n')[0]}`);
    assert.match(create.message, /TCPStore\(127\.0\.0\.1:\d+, (server|client), world size 2\)/);
    assert.match(create.message, rank === 0 ? /timed out after 3000 ms waiting for all 2 ranks to connect/ : /timed out .* trying to connect/);
    assert.ok(create.ms >= 1000 && create.ms < 15_000, `rejected after ${create.ms} ms`);
  });
}

test('a rank that opens the store but never joins the group: the other create rejects within the timeout', { timeout: 60_000 }, async () => {
  const port = await freePort();
  const ranks = await runRanks(2, { scenario: 'no-group', initMethod: 'unused', port, timeoutMs: 3000 });
  ranks.forEach((r, i) => ok(r, `rank ${i}`));
  const create = ranks[0]!.result?.create as { message: string; ms: number };
  console.log(`# rank 0: rejected after ${create.ms} ms: ${create.message.split('\n')[0]}`);
  assert.match(create.message, /^ProcessGroupGloo \(rank 0 of world size 2\): /);
  assert.match(create.message, /time/i);
  assert.match(create.message, /the 2 ranks did not all join through TCPStore\(127\.0\.0\.1:\d+\) within timeoutMs = 3000/);
  assert.ok(create.ms < 15_000, `rejected after ${create.ms} ms`);
});

test('a rank killed mid-run: the survivor’s allreduce rejects within the timeout and it exits cleanly', { timeout: 60_000 }, async () => {
  const port = await freePort();
  const ranks = await runRanks(2, { scenario: 'killed', initMethod: `tcp://127.0.0.1:${port}`, timeoutMs: 3000 });
  assert.equal(ranks[1]!.signal, 'SIGKILL');
  ok(ranks[0]!, 'rank 0');
  const ar = ranks[0]!.result?.allreduce as { message: string; ms: number };
  console.log(`# rank 0: rejected after ${ar.ms} ms: ${ar.message.split('\n')[0]}`);
  assert.match(ar.message, /^allreduce \(rank 0 of world size 2\): /);
  assert.ok(ar.ms < 10_000, `rejected after ${ar.ms} ms`);
});

test('the event loop keeps running while a barrier waits for a late rank', { timeout: 60_000 }, async () => {
  const port = await freePort();
  const ranks = await runRanks(2, { scenario: 'ticks', initMethod: `tcp://127.0.0.1:${port}`, timeoutMs: 20_000 });
  ranks.forEach((r, i) => ok(r, `rank ${i}`));
  const { ticks, barrierMs } = ranks[0]!.result as { ticks: number; barrierMs: number };
  console.log(`# rank 0: ${ticks} ticks of a 20 ms interval during a ${barrierMs} ms barrier`);
  assert.ok(barrierMs >= 1000, `the barrier waited ${barrierMs} ms`);
  assert.ok(ticks >= barrierMs / 20 / 3, `only ${ticks} ticks in ${barrierMs} ms`);
});
