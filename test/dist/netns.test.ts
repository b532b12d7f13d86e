// Multi-node for real, on one machine: two network namespaces joined by a veth pair are two
// "hosts" with their own addresses (10.213.x.1 and 10.213.x.2), so the store, Gloo's full mesh and
// `deltatune train --nnodes 2` cross an actual link instead of 127.0.0.1. Needs root and a working
// `ip netns`; skipped otherwise, with the reason. Nothing leaves the machine: the namespaces have
// no route anywhere but each other. Every child is killed after LIMIT_MS; the namespaces are
// deleted in after() (and stale ones from killed runs of this file before starting).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../helpers.js';
import { maxDeltaDiff } from './common.js';
import { makeFolder } from '../data/fixtures.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const INDEX = join(ROOT, 'dist', 'src', 'index.js');
const LIMIT_MS = 90_000; // every child (and its process group) is killed after this
const TEST_MS = 150_000;

const PREFIX = 'dt-netns-';
const NS_A = `${PREFIX}a-${process.pid}`;
const NS_B = `${PREFIX}b-${process.pid}`;
// Interface names are at most 15 bytes; each lives in its own namespace only.
const IF_A = `dta${process.pid}`.slice(0, 15);
const IF_B = `dtb${process.pid}`.slice(0, 15);
const NET = `10.213.${(process.pid % 250) + 1}`;
const ADDR_A = `${NET}.1`;
const ADDR_B = `${NET}.2`;

function ip(...args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}`.trim() };
}

/** Namespaces of this file left by runs that were killed (their pid is gone). */
function removeStaleNamespaces(): void {
  const list = ip('netns', 'list');
  if (!list.ok) return;
  for (const line of list.out.split('\n')) {
    const m = new RegExp(`^(${PREFIX}[ab]-(\\d+))\\b`).exec(line.trim());
    if (!m || Number(m[2]) === process.pid) continue;
    let alive = true;
    try {
      process.kill(Number(m[2]), 0);
    } catch {
      alive = false;
    }
    if (!alive) ip('netns', 'del', m[1]!);
  }
}

let cleaned = false;
function removeNamespaces(): void {
  if (cleaned) return;
  cleaned = true;
  // Deleting a namespace removes its end of the veth pair (and with it the other end).
  for (const ns of [NS_A, NS_B]) if (ip('netns', 'list').out.split('\n').some((l) => l.split(' ')[0] === ns)) ip('netns', 'del', ns);
}

/** Creates the two hosts; returns why not when it cannot (then every test is skipped). */
function setUp(): string | undefined {
  if (process.platform !== 'linux') return `needs Linux network namespaces (platform ${process.platform})`;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return `needs root for ip netns (uid ${process.getuid?.() ?? '?'})`;
  removeStaleNamespaces();
  const add = ip('netns', 'add', NS_A);
  if (!add.ok) return `ip netns add failed: ${add.out}`;
  process.on('exit', removeNamespaces); // also when the runner stops this file early
  const steps: string[][] = [
    ['netns', 'add', NS_B],
    ['link', 'add', IF_A, 'netns', NS_A, 'type', 'veth', 'peer', 'name', IF_B, 'netns', NS_B],
    ['-n', NS_A, 'addr', 'add', `${ADDR_A}/24`, 'dev', IF_A],
    ['-n', NS_B, 'addr', 'add', `${ADDR_B}/24`, 'dev', IF_B],
    ['-n', NS_A, 'link', 'set', 'lo', 'up'],
    ['-n', NS_B, 'link', 'set', 'lo', 'up'],
    ['-n', NS_A, 'link', 'set', IF_A, 'up'],
    ['-n', NS_B, 'link', 'set', IF_B, 'up'],
  ];
  for (const s of steps) {
    const r = ip(...s);
    if (!r.ok) {
      removeNamespaces();
      return `ip ${s.join(' ')} failed: ${r.out}`;
    }
  }
  return undefined;
}

const skip = setUp();
if (skip) console.log(`# netns tests skipped: ${skip}`);

let dir = '';
before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'deltatune-netns-'));
  await makeFolder(join(dir, 'data', 'train'), ['a', 'b', 'c'], 8);
  await makeFolder(join(dir, 'data', 'val'), ['a', 'b', 'c'], 2);
});
after(() => {
  if (!skip) removeNamespaces();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Exit { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }

/** Runs `node args...` inside `ns` (or here when ns is null), in its own process group killed after LIMIT_MS. */
function runIn(ns: string | null, args: string[], env: Record<string, string>): Promise<Exit> {
  const t0 = performance.now();
  const [exe, argv] = ns ? ['ip', ['netns', 'exec', ns, process.execPath, ...args]] : [process.execPath, args];
  const child = spawn(exe, argv, { env: { ...process.env, DELTATUNE_THREADS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const killGroup = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL'); // the launcher's workers too
    } catch {
      /* already gone */
    }
  };
  const timer = setTimeout(killGroup, LIMIT_MS);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      killGroup(); // nothing of this child outlives it
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

const ok = (r: Exit, what: string) => assert.equal(r.code, 0, `${what}: exit ${r.code ?? r.signal} after ${Math.round(r.ms)} ms\nstdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-3000)}`);

/** Bytes the veth end in `ns` has sent and received. */
function vethBytes(ns: string, dev: string): { tx: number; rx: number } {
  const r = ip('-n', ns, '-s', '-j', 'link', 'show', 'dev', dev);
  assert.ok(r.ok, r.out);
  const s = (JSON.parse(r.out) as { stats64: { tx: { bytes: number }; rx: { bytes: number } } }[])[0]!.stats64;
  return { tx: s.tx.bytes, rx: s.rx.bytes };
}

// One rank: env:// rendezvous (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE), Gloo on GLOO_SOCKET_IFNAME
// (no devices given); exact results of every collective, incl. a 4 MiB allreduce that takes many packets.
const RANK_SCRIPT = `
import assert from 'node:assert/strict';
const { initProcessGroup, tensor, zeros } = await import(${JSON.stringify(pathToFileURL(INDEX).href)});
const pg = await initProcessGroup({ initMethod: 'env://', timeoutMs: 20000 });
const rank = pg.rank, size = pg.size;
assert.equal(rank, Number(process.env.RANK));
assert.equal(size, 2);
const f = tensor(new Float32Array([rank + 1, 0.5, -rank]));
await pg.allreduce(f);
assert.deepEqual(f.toNumbers(), [3, 1, -1]);
const big = 1000000000000n;
const i = tensor(new BigInt64Array([BigInt(rank), big + BigInt(rank)]));
await pg.allreduce(i, { op: 'max' });
assert.deepEqual(Array.from(i.toArray()), [1n, big + 1n]);
const n = 1 << 20;
const x = new Float32Array(n);
for (let k = 0; k < n; k++) x[k] = (k % 1000) * (rank + 1);
const t = tensor(x);
await pg.allreduce(t);
const y = t.toArray();
let bad = -1;
for (let k = 0; k < n; k++) if (y[k] !== (k % 1000) * 3) { bad = k; break; }
assert.equal(bad, -1, 'large allreduce: element ' + bad + ' = ' + y[bad]);
const b = rank === 1 ? tensor(new Float32Array([7, 8.5, 9])) : zeros([3]);
await pg.broadcast(b, 1);
assert.deepEqual(b.toNumbers(), [7, 8.5, 9]);
const g = await pg.allgather(tensor(new Float32Array([rank, rank * 10 + 0.5])));
const gathered = g.map((u) => u.toNumbers());
assert.deepEqual(gathered, [[0, 0.5], [1, 10.5]]);
await pg.barrier();
pg.dispose();
console.log('RESULT ' + JSON.stringify({ rank, size, sum: f.toNumbers(), max: Array.from(i.toArray(), String), broadcast: b.toNumbers(), gathered, large: n }));
`;

const result = (r: Exit) => {
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  return line ? (JSON.parse(line.slice(7)) as Record<string, unknown>) : undefined;
};

test('collectives between two network namespaces over a veth pair (env://, GLOO_SOCKET_IFNAME): exact results', { skip, timeout: TEST_MS }, async () => {
  const script = join(dir, 'rank.mjs');
  writeFileSync(script, RANK_SCRIPT);
  const beforeA = vethBytes(NS_A, IF_A);
  const base = { MASTER_ADDR: ADDR_A, MASTER_PORT: '29511', WORLD_SIZE: '2' };
  const [a, b] = await Promise.all([
    runIn(NS_A, [script], { ...base, RANK: '0', GLOO_SOCKET_IFNAME: IF_A }),
    runIn(NS_B, [script], { ...base, RANK: '1', GLOO_SOCKET_IFNAME: IF_B }),
  ]);
  ok(a, `rank 0 in ${NS_A}`);
  ok(b, `rank 1 in ${NS_B}`);
  const expected = { size: 2, sum: [3, 1, -1], max: ['1', '1000000000001'], broadcast: [7, 8.5, 9], gathered: [[0, 0.5], [1, 10.5]], large: 1 << 20 };
  assert.deepEqual(result(a), { rank: 0, ...expected });
  assert.deepEqual(result(b), { rank: 1, ...expected });
  // The traffic went over the link: a ring allreduce of 4 MiB sends and receives ≥ 2 MiB per rank.
  const afterA = vethBytes(NS_A, IF_A);
  const tx = afterA.tx - beforeA.tx;
  const rx = afterA.rx - beforeA.rx;
  console.log(`# ${IF_A} (${ADDR_A}): sent ${(tx / 2 ** 20).toFixed(1)} MiB, received ${(rx / 2 ** 20).toFixed(1)} MiB; ranks took ${Math.round(a.ms)} / ${Math.round(b.ms)} ms`);
  assert.ok(tx >= 2 * 2 ** 20 && rx >= 2 * 2 ** 20, `veth bytes: sent ${tx}, received ${rx}`);
});


test('deltatune train --nnodes 2 across the two namespaces: rank 0 writes the run, rank 1 nothing; the weights of one process', { skip, timeout: TEST_MS }, async () => {
  const run = join(dir, 'run-a');
  const other = join(dir, 'run-b'); // rank 1's --out: --out is not compared between ranks, and only rank 0 writes
  const single = join(dir, 'run-single');
  // Deterministic (Mona's dropout off, SGD) so the two-node run can be compared with one process.
  const common = ['train', '--model', 'resnet18', '--opt', 'dropout=0', '--optimizer', 'sgd', '--lr', '0.05', '--seed', '5', '--image-size', '32', '--batch', '8', '--data', join(dir, 'data'), '--epochs', '1'];
  const node = (rank: number, out: string) => [CLI, ...common, '--out', out, '--nnodes', '2', '--node-rank', String(rank), '--nproc-per-node', '1', '--master-addr', ADDR_A, '--master-port', '29512', '--dist-timeout', '60', '--progress', 'lines'];
  const [a, b, s] = await Promise.all([
    runIn(NS_A, node(0, run), { GLOO_SOCKET_IFNAME: IF_A }),
    runIn(NS_B, node(1, other), { GLOO_SOCKET_IFNAME: IF_B }),
    runIn(null, [CLI, ...common, '--out', single, '--quiet'], {}),
  ]);
  ok(a, `node 0 in ${NS_A}`);
  ok(b, `node 1 in ${NS_B}`);
  ok(s, 'one process');
  console.log(`# node 0 took ${Math.round(a.ms)} ms, node 1 ${Math.round(b.ms)} ms`);
  // The run folder, on rank 0's side only.
  for (const f of ['best', 'last', 'config.json', 'metrics.jsonl']) assert.ok(existsSync(join(run, f)), `${run}/${f} missing: ${readdirSync(run).join(', ')}`);
  assert.equal(JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')).worldSize, 2);
  assert.deepEqual(readdirSync(run).filter((f) => f.startsWith('.')), [], 'nothing half-written');
  assert.equal(existsSync(other), false, `rank 1 created its --out ${other}`);
  // What the launchers said: rank 0 reports the finished run, rank 1 stays quiet; no failure line.
  assert.match(a.stdout, new RegExp(`done in [\\d.]+ s: best .*; deltas in ${run.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/best and .*/last`));
  assert.doesNotMatch(b.stdout, /done in/);
  for (const r of [a, b]) assert.doesNotMatch(`${r.stdout}${r.stderr}`, /stopping the other workers|error|timed out/i);
  // 2 nodes × batch 4 train what 1 process × batch 8 does (BN is frozen under Mona).
  const diff = maxDeltaDiff(single, run);
  console.log(`# max |Δw| between the two-node run and one process: ${diff.toExponential(2)}`);
  assert.ok(diff < 1e-5, `max abs diff ${diff}`);
});
