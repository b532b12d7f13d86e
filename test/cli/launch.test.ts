// The launcher's torchrun conventions: each worker's environment, and one failing worker stopping
// the others with one line naming its rank. Workers here are tiny node scripts, not training runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, workerEnvironment } from '../../src/cli/launch.js';

const KEYS = ['RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'GROUP_RANK', 'MASTER_ADDR', 'MASTER_PORT'];

test('every worker gets torchrun\'s environment; rank = node rank × workers per node + local rank', { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dt-launch-'));
  try {
    const script = `const fs = require('fs'); const e = process.env; fs.writeFileSync(${JSON.stringify(dir)} + '/' + e.RANK + '.json', JSON.stringify(Object.fromEntries(${JSON.stringify([...KEYS, 'DELTATUNE_THREADS'])}.map((k) => [k, e[k]]))));`;
    const lines: string[] = [];
    const result = await launch({ nprocPerNode: 3, nnodes: 2, nodeRank: 1, masterAddr: '10.0.0.1', masterPort: 29400, command: [process.execPath, '-e', script], say: (l) => lines.push(l) });
    assert.equal(result.exitCode, 0);
    assert.equal(result.failure, null);
    assert.deepEqual(lines, []);
    assert.deepEqual(readdirSync(dir).sort(), ['3.json', '4.json', '5.json']);
    for (let local = 0; local < 3; local++) {
      const env = JSON.parse(readFileSync(join(dir, `${3 + local}.json`), 'utf8'));
      assert.equal(env.RANK, String(3 + local));
      assert.equal(env.LOCAL_RANK, String(local));
      assert.equal(env.WORLD_SIZE, '6');
      assert.equal(env.LOCAL_WORLD_SIZE, '3');
      assert.equal(env.GROUP_RANK, '1');
      assert.equal(env.MASTER_ADDR, '10.0.0.1');
      assert.equal(env.MASTER_PORT, '29400');
      assert.ok(Number(env.DELTATUNE_THREADS) >= 1);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failing worker stops the others promptly, with one line naming its rank and cause', { timeout: 30_000 }, async () => {
  // Rank 1 fails at once; the others would sleep for a minute.
  const script = `if (process.env.RANK === '1') process.exit(3); setTimeout(() => {}, 60_000);`;
  const lines: string[] = [];
  const started = performance.now();
  const result = await launch({ nprocPerNode: 3, command: [process.execPath, '-e', script], say: (l) => lines.push(l), graceMs: 2000 });
  assert.ok(performance.now() - started < 15_000, 'the others were stopped, not waited for');
  assert.equal(result.exitCode, 3);
  assert.match(result.failure ?? '', /^rank 1 \(local rank 1, pid \d+\) exited with code 3; stopping the other workers$/);
  assert.equal(lines.length, 1);
  assert.deepEqual(result.exits.map((e) => e.rank), [0, 1, 2]);
  assert.ok(result.exits.filter((e) => e.rank !== 1).every((e) => e.signal === 'SIGTERM'));
});

test('a worker that ignores SIGTERM is killed after the grace period; bad options are refused', { timeout: 30_000 }, async () => {
  const script = `process.on('SIGTERM', () => {}); if (process.env.RANK === '0') setTimeout(() => process.exit(1), 200); setInterval(() => {}, 1000);`;
  const result = await launch({ nprocPerNode: 2, command: [process.execPath, '-e', script], say: () => {}, graceMs: 500 });
  assert.equal(result.exitCode, 1);
  assert.equal(result.exits.find((e) => e.rank === 1)?.signal, 'SIGKILL');
  assert.throws(() => workerEnvironment({ nprocPerNode: 1, command: ['x'] }, 0) && launch({ nprocPerNode: 0, command: ['x'] }), /--nproc-per-node must be an integer from 1 to 1024, got 0/);
  assert.throws(() => launch({ nprocPerNode: 1, nnodes: 2, nodeRank: 2, command: ['x'] }), /--node-rank must be an integer from 0 to 1, got 2/);
  assert.throws(() => launch({ nprocPerNode: 1, masterPort: 70000, command: ['x'] }), /--master-port must be an integer from 1 to 65535/);
});
