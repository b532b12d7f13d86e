// The dist API in one process (world size 1): argument checks and init methods, no peers needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessGroup, Store, initProcessGroup, tensor } from '../../src/index.js';

const devices = [{ hostname: '127.0.0.1' }];

test('world size 1 over a FileStore: collectives are identities, avg divides by 1, store keys work', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'deltatune-dist1-'));
  try {
    const store = await Store.create({ type: 'file', path: join(dir, 'store'), worldSize: 1, timeoutMs: 5000 });
    await store.set('k', 'v');
    assert.equal((await store.get('k')).toString(), 'v');
    assert.equal(await store.add('n', 3), 3);
    assert.equal(await store.add('n', 2), 5);
    const pg = await ProcessGroup.create(store, { rank: 0, worldSize: 1, timeoutMs: 5000, devices });
    const t = tensor([1.5, -2, 3]);
    await pg.allreduce(t, { op: 'avg' });
    assert.deepEqual(t.toNumbers(), [1.5, -2, 3]);
    const [g] = await pg.allgather(t);
    assert.deepEqual(g!.toNumbers(), [1.5, -2, 3]);
    assert.equal(g!.sharesMemoryWith(t), false);
    await pg.barrier();
    await assert.rejects(pg.allreduce(tensor([1, 2], { dtype: 'int64' }), { op: 'avg' }), /op 'avg' needs a floating tensor, got int64/);
    await assert.rejects(pg.allreduce(t, { op: 'mean' as never }), /op must be sum, avg, product, min or max/);
    await assert.rejects(pg.allreduceCoalesced([t, tensor([1], { dtype: 'int64' })]), /^Error: allreduceCoalesced \(rank 0 of world size 1\): /);
    pg.dispose();
    pg.dispose();
    await assert.rejects(pg.barrier(), /was disposed/);
    store.dispose();
    await assert.rejects(store.get('k'), /was disposed/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad arguments are rejected before any native call', { timeout: 30_000 }, async () => {
  await assert.rejects(initProcessGroup({ initMethod: 'udp://x:1', rank: 0, worldSize: 1 }), /must start with tcp:\/\/, file:\/\/ or env:\/\//);
  await assert.rejects(initProcessGroup({ initMethod: 'tcp://127.0.0.1', rank: 0, worldSize: 1 }), /must be host:port/);
  await assert.rejects(initProcessGroup({ initMethod: 'file://relative', rank: 0, worldSize: 1 }), /absolute path/);
  await assert.rejects(initProcessGroup({ backend: 'nccl' as never }), /only gloo/);
  const saved = { ...process.env };
  try {
    delete process.env.MASTER_ADDR;
    process.env.RANK = '0';
    process.env.WORLD_SIZE = '1';
    await assert.rejects(initProcessGroup({ initMethod: 'env://' }), /env:\/\/ needs the environment variable MASTER_ADDR/);
  } finally {
    for (const k of ['RANK', 'WORLD_SIZE', 'MASTER_ADDR']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
  await assert.rejects(Store.create({ type: 'tcp', host: '127.0.0.1', port: 70000, worldSize: 1, isServer: true }), /port must be ≤ 65535/);
  await assert.rejects(Store.create({ type: 'file', path: '/tmp/x', worldSize: 0 }), /worldSize must be an integer ≥ 1/);
  const dir = mkdtempSync(join(tmpdir(), 'deltatune-dist1-'));
  try {
    const store = await Store.create({ type: 'file', path: join(dir, 'store'), worldSize: 1, timeoutMs: 5000 });
    await assert.rejects(ProcessGroup.create(store, { rank: 1, worldSize: 1 }), /rank must be an integer in \[0, 1\)/);
    await assert.rejects(ProcessGroup.create(store, { rank: 0, worldSize: 1, devices: [{ hostname: '' }] }), /non-empty name/);
    store.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
