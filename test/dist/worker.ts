// One rank of a test/dist scenario, run as its own node process by dist.test.ts.
// argv[2] is JSON: { scenario, rank, worldSize, initMethod, timeoutMs }. The last stdout line is
// `RESULT <json>`; an assertion failure exits 1 with the message on stderr.
import assert from 'node:assert/strict';
import { ProcessGroup, Store, initProcessGroup, tensor, zeros, type Tensor } from '../../src/index.js';

interface Args {
  scenario: 'collectives' | 'never-joins' | 'no-group' | 'killed' | 'ticks' | 'bench';
  rank: number;
  worldSize: number;
  initMethod: string;
  timeoutMs: number;
  port?: number;
}
const args = JSON.parse(process.argv[2]!) as Args;
// env:// takes the rank and world size from the environment, as under torchrun
const fromEnv = args.initMethod === 'env://';
const rank = fromEnv ? Number(process.env.RANK) : args.rank;
const size = fromEnv ? Number(process.env.WORLD_SIZE) : args.worldSize;
const { timeoutMs } = args;
const devices = [{ hostname: '127.0.0.1' }];
const result: Record<string, unknown> = { rank };
const sumOver = (f: (r: number) => number) => Array.from({ length: size }, (_, r) => f(r)).reduce((a, b) => a + b, 0);
const done = () => console.log(`RESULT ${JSON.stringify(result)}`);
const nums = (t: Tensor) => t.toNumbers();
const bigs = (t: Tensor) => Array.from(t.toArray() as BigInt64Array);

async function init(): Promise<ProcessGroup> {
  if (fromEnv) return initProcessGroup({ backend: 'gloo', initMethod: 'env://', timeoutMs, devices });
  return initProcessGroup({ backend: 'gloo', initMethod: args.initMethod, rank, worldSize: size, timeoutMs, devices });
}

async function expectRejection(what: string, body: () => Promise<unknown>): Promise<void> {
  const t0 = performance.now();
  try {
    await body();
  } catch (err) {
    result[what] = { message: (err as Error).message, ms: Math.round(performance.now() - t0) };
    return;
  }
  assert.fail(`${what}: expected a rejection`);
}

switch (args.scenario) {
  case 'collectives': {
    const pg = await init();
    assert.equal(pg.rank, rank);
    assert.equal(pg.size, size);
    // allreduce, float32 and int64 (exact: small integers and halves)
    const f = tensor(new Float32Array([rank + 1, 2 * (rank + 1), 0.5, -rank]));
    await pg.allreduce(f);
    assert.deepEqual(nums(f), [sumOver((r) => r + 1), sumOver((r) => 2 * (r + 1)), 0.5 * size, -sumOver((r) => r)]);
    const big = 1_000_000_000_000n;
    const i = tensor(new BigInt64Array([BigInt(rank), big + BigInt(rank)]));
    await pg.allreduce(i);
    assert.equal(i.dtype, 'int64');
    assert.deepEqual(bigs(i), [BigInt(sumOver((r) => r)), BigInt(size) * big + BigInt(sumOver((r) => r))]);
    const a = tensor(new Float32Array([2 * rank, 1]));
    await pg.allreduce(a, { op: 'avg' });
    assert.deepEqual(nums(a), [size - 1, 1]);
    const m = tensor(new BigInt64Array([BigInt(rank), BigInt(-rank)]));
    await pg.allreduce(m, { op: 'max' });
    assert.deepEqual(bigs(m), [BigInt(size - 1), 0n]);
    // coalesced: several shapes, one collective
    const c1 = tensor(new Float32Array([rank, 1, 2]));
    const c2 = tensor(new Float32Array([10 * rank, 0.25, 3, 4]), { shape: [2, 2] });
    await pg.allreduceCoalesced([c1, c2]);
    assert.deepEqual(nums(c1), [sumOver((r) => r), size, 2 * size]);
    assert.deepEqual(c2.shape, [2, 2]);
    assert.deepEqual(nums(c2), [10 * sumOver((r) => r), 0.25 * size, 3 * size, 4 * size]);
    const ci = [tensor(new BigInt64Array([BigInt(rank)])), tensor(new BigInt64Array([5n, BigInt(rank)]))];
    await pg.allreduceCoalesced(ci);
    assert.deepEqual(ci.map(bigs), [[BigInt(sumOver((r) => r))], [5n * BigInt(size), BigInt(sumOver((r) => r))]]);
    // broadcast from the last rank
    const root = size - 1;
    const b = rank === root ? tensor(new Float32Array([7, 8.5, 9])) : zeros([3]);
    const bi = rank === root ? tensor(new BigInt64Array([-3n, big])) : zeros([2], { dtype: 'int64' });
    await pg.broadcast([b, bi], root);
    assert.deepEqual(nums(b), [7, 8.5, 9]);
    assert.deepEqual(bigs(bi), [-3n, big]);
    // allgather: new tensors in rank order
    const g = await pg.allgather(tensor(new Float32Array([rank, rank * 10 + 0.5])));
    assert.deepEqual(g.map(nums), Array.from({ length: size }, (_, r) => [r, r * 10 + 0.5]));
    const gi = await pg.allgather(tensor(new BigInt64Array([BigInt(rank) + big])));
    assert.deepEqual(gi.map((t) => t.dtype), Array(size).fill('int64'));
    assert.deepEqual(gi.map(bigs), Array.from({ length: size }, (_, r) => [BigInt(r) + big]));
    await pg.barrier();
    // a bad argument rejects, and the group still works afterwards
    await expectRejection('badRoot', () => pg.broadcast(b, size));
    await pg.barrier();
    pg.dispose();
    assert.ok(pg.store.isDisposed, 'initProcessGroup gives the group its store');
    await expectRejection('afterDispose', () => pg.barrier());
    result.ok = true;
    break;
  }
  case 'never-joins': {
    // Only this rank runs: the store (server waiting for workers, or a client with no server) times out.
    await expectRejection('create', () => init());
    break;
  }
  case 'no-group': {
    // Both ranks open the store; only rank 0 joins the group.
    // rank 1's store waits longer than rank 0's group, for rank 0's answer
    const store = await Store.create({ type: 'tcp', host: '127.0.0.1', port: args.port!, worldSize: size, isServer: rank === 0, timeoutMs: rank === 0 ? timeoutMs : 5 * timeoutMs });
    if (rank === 0) {
      await expectRejection('create', () => ProcessGroup.create(store, { rank, worldSize: size, timeoutMs, devices }));
      await store.set('rank0-done', '1');
      await store.get('rank1-done'); // the server (this process) stays up until rank 1 has read the key
    } else {
      await store.get('rank0-done'); // keep the server's peer alive until rank 0 has its answer
      await store.set('rank1-done', '1');
    }
    store.dispose();
    break;
  }
  case 'killed': {
    const pg = await init();
    const t = tensor(new Float32Array([1, 2, 3]));
    await pg.allreduce(t);
    if (rank === 1) process.kill(process.pid, 'SIGKILL');
    await expectRejection('allreduce', async () => {
      for (let k = 0; k < 100; k++) await pg.allreduce(t); // the first one after the kill should fail
    });
    pg.dispose();
    break;
  }
  case 'ticks': {
    const pg = await init();
    if (rank === 0) {
      let ticks = 0;
      const timer = setInterval(() => ticks++, 20);
      const t0 = performance.now();
      await pg.barrier();
      clearInterval(timer);
      result.barrierMs = Math.round(performance.now() - t0);
      result.ticks = ticks;
    } else {
      await new Promise((r) => setTimeout(r, 1500));
      await pg.barrier();
    }
    pg.dispose();
    break;
  }
  case 'bench': {
    const pg = await init();
    const n = 25 * 1024 * 1024; // 100 MiB of float32
    const t = zeros([n]);
    await pg.allreduce(t); // warm-up
    const times: number[] = [];
    for (let k = 0; k < 5; k++) {
      await pg.barrier();
      const t0 = performance.now();
      await pg.allreduce(t);
      times.push(performance.now() - t0);
    }
    result.ms = times.map((x) => Math.round(x));
    pg.dispose();
    break;
  }
}
done();
