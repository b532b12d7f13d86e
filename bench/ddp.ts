// npm run bench:ddp — data-parallel training against PyTorch DDP (Gloo) on one machine:
//  - Steps: ResNet-50 at 224, channels-last, full fine-tuning and Mona, 2 ranks × 1 thread on each
//    side, batch BENCH_BATCH per rank (default 4), AdamW, the same synthetic global batch (seeded,
//    written here) sharded the same way. Four worker processes live through the whole bench: our 2
//    ranks (dist/bench/ddp_worker.js) and PyTorch's 2 (bench/ddp_torch.py), each pair with its
//    own rendezvous on 127.0.0.1. A round is one step of our pair (both ranks at once) and one of
//    PyTorch's, alternating which goes first; a side's step time is its slower rank's; the ratio is
//    the median over rounds of ours/PyTorch in the same round (quartiles shown), after warm-up steps.
//  - Allreduce: ProcessGroup.allreduce against torch.distributed.all_reduce (both Gloo, 2 ranks) on
//    the same float32 sizes, interleaved the same way; ratio on the largest size.
//  - Equivalence: 2 ranks with per-rank batch B/2 against one process with batch B (see
//    equivalence() in bench/ddp_worker.ts); max abs difference of the trainable weights.
//  - Grad sync share (Mona): DataParallel.gradientSyncMs per step over the step, on the rank that
//    reached the sync last (its wait is the transfer itself; the other rank's adds the time it
//    waited for this one, shown apart, and on a shared 2-core machine that is load imbalance).
// BENCH_ROUNDS (default 10) sets the rounds of steps and of allreduces, BENCH_BATCH the per-rank
// batch, BENCH_VERBOSE=1 prints every rank's reply and each worker's CPU time per command.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT, median, prng, quantile, settle } from './common.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const VERBOSE = process.env.BENCH_VERBOSE === '1';
const PER_RANK = Number(process.env.BENCH_BATCH ?? 4);
const WORLD = 2;
const WARMUP = 2;
const CLASSES = 10;
const GROUP_TIMEOUT_MS = 10 * 60 * 1000;
/** Allreduce sizes in MiB of float32, with the timed calls per round. */
const SIZES: [mib: number, calls: number][] = [[1, 10], [16, 5], [100, 5]];
/** The equivalence check's global batch and steps. */
const EQUIV_BATCH = 8;
const EQUIV_STEPS = 3;
const MINUTE = 60_000;

type Reply = Record<string, unknown>;

/** A worker process answering one JSON line per command line; every wait is bounded. */
class Worker {
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #pending: { resolve(v: Reply): void; reject(e: Error): void }[] = [];
  #stderr = '';
  #exited: string | null = null;

  constructor(readonly label: string, command: string, argv: string[], env: NodeJS.ProcessEnv) {
    this.#proc = spawn(command, argv, { cwd: ROOT, env: { ...process.env, ...env } });
    this.#proc.stderr.on('data', (d: Buffer) => (this.#stderr = (this.#stderr + d.toString()).slice(-8000)));
    createInterface({ input: this.#proc.stdout }).on('line', (line) => {
      const waiter = this.#pending.shift();
      if (!waiter) return;
      let value: Reply;
      try {
        value = JSON.parse(line) as Reply;
      } catch {
        waiter.reject(new Error(`${this.label}: not a JSON reply: ${line.slice(0, 200)}`));
        return;
      }
      if (typeof value.error === 'string') waiter.reject(new Error(`${this.label}: ${value.error}`));
      else waiter.resolve(value);
    });
    this.#proc.on('exit', (code, signal) => {
      this.#exited = `exited (${signal ?? `code ${code}`})`;
      for (const w of this.#pending.splice(0)) w.reject(new Error(`${this.label} ${this.#exited}; its stderr ends:\n${this.#stderr.trim().split('\n').slice(-15).join('\n')}`));
    });
  }

  #next(what: string, timeoutMs: number): Promise<Reply> {
    if (this.#exited) return Promise.reject(new Error(`${this.label} ${this.#exited}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.label}: no reply to '${what}' within ${timeoutMs / 1000} s`)), timeoutMs);
      this.#pending.push({
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
  }

  ready(timeoutMs: number): Promise<Reply> {
    return this.#next('ready', timeoutMs);
  }

  ask(command: string, timeoutMs: number): Promise<Reply> {
    const reply = this.#next(command, timeoutMs);
    this.#proc.stdin.write(command + '\n');
    return reply;
  }

  /** CPU time (user, system) the process has used so far, in ms (from /proc). */
  cpuMs(): [number, number] {
    try {
      const f = readFileSync(`/proc/${this.#proc.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      const tick = 10; // USER_HZ = 100
      return [Number(f[11]) * tick, Number(f[12]) * tick];
    } catch {
      return [0, 0];
    }
  }

  kill(): void {
    if (this.#exited === null && this.#proc.pid !== undefined) this.#proc.kill('SIGKILL');
  }
}

/** The ranks of one side: commands go to all of them at once. */
class Side {
  constructor(readonly name: string, readonly ranks: Worker[]) {}

  async all(command: string, timeoutMs: number): Promise<Reply[]> {
    return Promise.all(this.ranks.map((w) => w.ask(command, timeoutMs)));
  }
}

const workers: Worker[] = [];
const killAll = () => workers.forEach((w) => w.kill());
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** n standard-normal images of `shape` and uniform labels, in the format both workers read. */
function writeData(path: string, n: number, shape: [number, number, number], seed: number): void {
  const rand = prng(seed);
  const per = shape[0] * shape[1] * shape[2];
  const images = new Float32Array(n * per);
  for (let i = 0; i < images.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rand()));
    const th = 2 * Math.PI * rand();
    images[i] = r * Math.cos(th);
    if (i + 1 < images.length) images[i + 1] = r * Math.sin(th);
  }
  const labels = Int32Array.from({ length: n }, () => Math.floor(rand() * CLASSES));
  const header = Buffer.from(JSON.stringify({ n, shape }) + '\n', 'utf8');
  writeFileSync(path, Buffer.concat([header, Buffer.from(images.buffer), Buffer.from(labels.buffer)]));
}

const num = (r: Reply, key: string) => r[key] as number;
const spread = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: median(s), q1: quantile(s, 0.25), q3: quantile(s, 0.75) };
};
const f0 = (x: number) => x.toFixed(0);
const f3 = (x: number) => x.toFixed(3);

/** One timed command on each side per round, alternating which side goes first. */
async function interleaved(ours: Side, torch: Side, command: string, timeoutMs: number, rounds: number): Promise<{ ours: Reply[][]; torch: Reply[][] }> {
  const out = { ours: [] as Reply[][], torch: [] as Reply[][] };
  for (let r = 0; r < rounds; r++) {
    for (const side of r % 2 === 0 ? [ours, torch] : [torch, ours]) {
      await settle();
      const c0 = workers.map((w) => w.cpuMs());
      const replies = await side.all(command, timeoutMs);
      if (VERBOSE) {
        // Each rank's reply, and the CPU time (user/system ms) every worker used meanwhile: the idle side's should stay small.
        const c1 = workers.map((w) => w.cpuMs());
        const round = (v: unknown): unknown => (typeof v === 'number' ? Math.round(v) : Array.isArray(v) ? v.map(round) : v);
        const shown = replies.map((rep) => Object.fromEntries(Object.entries(rep).map(([k, v]) => [k, round(v)])));
        console.error(`${side.name} ${command}: ${JSON.stringify(shown)}; cpu ms ${c1.map((c, i) => `${workers[i]!.label} ${c[0] - c0[i]![0]}/${c[1] - c0[i]![1]}`).join(', ')}`);
      }
      (side === ours ? out.ours : out.torch).push(replies);
    }
  }
  return out;
}

interface Check { name: string; steps: number; globalBatch: number; tensors: number; maxDiff: number; maxUpdate: number }

interface StepFigures {
  method: string;
  trainable: number;
  torchTrainable: number;
  /** Per round: each side's step (its slower rank's), ours/PyTorch. */
  ours: number[];
  torch: number[];
  ratio: ReturnType<typeof spread>;
  /** Per round, our ranks' mean forward+backward and optimizer ms. */
  fwdBwd: number[];
  opt: number[];
  /** Per round: grad sync of the rank that reached it last (the transfer itself), and how much longer the other rank waited there. */
  transfer: number[];
  imbalance: number[];
  /** Per round: gradientSyncMs / step ms on the rank that reached the sync last; and averaged over the ranks. */
  commFraction: number[];
  commFractionAllRanks: number[];
  torchFwdBwd: number[];
  torchOpt: number[];
}

async function main(): Promise<void> {
  const cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown CPU';
  const dir = mkdtempSync(join(tmpdir(), 'deltatune-bench-ddp-'));
  try {
    const trainData = join(dir, 'train.bin');
    const equivData = join(dir, 'equiv.bin');
    writeData(trainData, PER_RANK * WORLD, [3, 224, 224], 1);
    writeData(equivData, EQUIV_STEPS * EQUIV_BATCH, [3, 32, 32], 2);

    const [ourPort, torchPort] = [await freePort(), await freePort()];
    const env = { DELTATUNE_THREADS: '1', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1' };
    const common = { worldSize: WORLD, timeoutMs: GROUP_TIMEOUT_MS, data: trainData, perRank: PER_RANK, classes: CLASSES };
    const ours = new Side('ours', Array.from({ length: WORLD }, (_, rank) =>
      new Worker(`our rank ${rank}`, process.execPath, [join(ROOT, 'dist', 'bench', 'ddp_worker.js'), JSON.stringify({ ...common, rank, initMethod: `tcp://127.0.0.1:${ourPort}` })], env)));
    const torch = new Side('PyTorch', Array.from({ length: WORLD }, (_, rank) =>
      new Worker(`PyTorch rank ${rank}`, '/usr/bin/python3', [join(ROOT, 'bench', 'ddp_torch.py'), JSON.stringify({ ...common, rank, initMethod: `tcp://127.0.0.1:${torchPort}` })], { ...env, GLOO_SOCKET_IFNAME: 'lo' })));
    workers.push(...ours.ranks, ...torch.ranks);
    const readies = await Promise.all(workers.map((w) => w.ready(5 * MINUTE)));
    const torchVersion = readies[WORLD]!.torch as string;
    const threadCounts = readies.map((r) => r.threads as number);
    if (threadCounts.some((t) => t !== 1)) throw new Error(`every rank should run 1 thread, got ${threadCounts.join(', ')}`);

    console.log(`ddp benchmark on ${cpuModel} (${cpus().length} cores): ${WORLD} ranks × 1 thread on each side (ours: DELTATUNE_THREADS=1; PyTorch ${torchVersion}: torch.set_num_threads(1)), Gloo over 127.0.0.1, 2 Gloo threads per rank`);
    console.log(`steps: ResNet-50 at 224, channels-last, batch ${PER_RANK} per rank (global ${PER_RANK * WORLD}), AdamW lr 1e-4, 10 classes, one synthetic batch; ${WARMUP} warm-up steps, then ${ROUNDS} rounds of one step per side, alternating which side goes first`);

    // --- equivalence: 2 ranks × B/2 vs 1 process × B ----------------------------------------------
    const equiv = await ours.all(`equiv ${equivData} ${EQUIV_BATCH}`, 10 * MINUTE);
    const checks = new Map<string, Check>();
    for (const reply of equiv) {
      for (const c of reply.checks as Check[]) {
        const prev = checks.get(c.name);
        checks.set(c.name, { ...c, maxDiff: Math.max(prev?.maxDiff ?? 0, c.maxDiff), maxUpdate: Math.max(prev?.maxUpdate ?? 0, c.maxUpdate) });
      }
    }
    const weightsMaxDiff = Math.max(...[...checks.values()].map((c) => c.maxDiff));

    // --- allreduce bandwidth ----------------------------------------------------------------------
    const allreduce: { mib: number; ours: number; torch: number; ratio: ReturnType<typeof spread> }[] = [];
    for (const [mib, calls] of SIZES) {
      const numel = (mib * 2 ** 20) / 4;
      // A side's figure per round: its median call, each call the mean of its ranks' times.
      const perRound = (rs: Reply[][]) => rs.map((ranks) => median(Array.from({ length: calls }, (_, i) => ranks.reduce((s, r) => s + (r.ms as number[])[i]!, 0) / ranks.length)));
      const res = await interleaved(ours, torch, `allreduce ${numel} ${calls}`, 5 * MINUTE, ROUNDS);
      const a = perRound(res.ours);
      const b = perRound(res.torch);
      allreduce.push({ mib, ours: median(a), torch: median(b), ratio: spread(a.map((x, i) => x / b[i]!)) });
    }

    // --- training steps ---------------------------------------------------------------------------
    const steps: StepFigures[] = [];
    for (const method of ['full', 'mona']) {
      const builtOurs = await ours.all(`build ${method}`, 10 * MINUTE);
      const builtTorch = await torch.all(`build ${method}`, 10 * MINUTE);
      await interleaved(ours, torch, 'step', 5 * MINUTE, WARMUP);
      const res = await interleaved(ours, torch, 'step', 5 * MINUTE, ROUNDS);
      const slowest = (ranks: Reply[]) => Math.max(...ranks.map((r) => num(r, 'ms')));
      const meanOf = (ranks: Reply[], key: string) => ranks.reduce((s, r) => s + num(r, key), 0) / ranks.length;
      const lastIn = (ranks: Reply[]) => ranks.reduce((a, b) => (num(b, 'syncMs') < num(a, 'syncMs') ? b : a));
      const a = res.ours.map(slowest);
      const b = res.torch.map(slowest);
      steps.push({
        method,
        trainable: num(builtOurs[0]!, 'trainable'),
        torchTrainable: num(builtTorch[0]!, 'trainable'),
        ours: a,
        torch: b,
        ratio: spread(a.map((x, i) => x / b[i]!)),
        fwdBwd: res.ours.map((rs) => meanOf(rs, 'fwdBwdMs')),
        opt: res.ours.map((rs) => meanOf(rs, 'optMs')),
        transfer: res.ours.map((rs) => num(lastIn(rs), 'syncMs')),
        imbalance: res.ours.map((rs) => Math.max(...rs.map((r) => num(r, 'syncMs'))) - num(lastIn(rs), 'syncMs')),
        commFraction: res.ours.map((rs) => num(lastIn(rs), 'syncMs') / num(lastIn(rs), 'ms')),
        commFractionAllRanks: res.ours.map((rs) => rs.reduce((s, r) => s + num(r, 'syncMs') / num(r, 'ms'), 0) / rs.length),
        torchFwdBwd: res.torch.map((rs) => meanOf(rs, 'fwdBwdMs')),
        torchOpt: res.torch.map((rs) => meanOf(rs, 'optMs')),
      });
    }
    await Promise.allSettled(workers.map((w) => w.ask('quit', 10_000)));

    // --- report -----------------------------------------------------------------------------------
    const m = (xs: number[]) => f0(median(xs));
    console.log('');
    console.log('Training step, 2 ranks (medians over rounds; a side\'s step is its slower rank\'s)');
    console.log('| method | trainable (ours / PyTorch) | ours ms | fwd+bwd (sync overlapped) | grad sync left after the backward: transfer + waiting for the other rank | optimizer | PyTorch DDP ms | fwd+bwd (sync overlapped) | optimizer | ours/PyTorch per round (quartiles) |');
    console.log('|---|---|---:|---:|---|---:|---:|---:|---:|---|');
    for (const s of steps) {
      const tr = (n: number) => `${(n / 1e6).toFixed(3)} M`;
      console.log(`| ${s.method} | ${tr(s.trainable)} / ${tr(s.torchTrainable)} | ${m(s.ours)} | ${m(s.fwdBwd)} | ${m(s.transfer)} + ${m(s.imbalance)} | ${m(s.opt)} | ${m(s.torch)} | ${m(s.torchFwdBwd)} | ${m(s.torchOpt)} | ${f3(s.ratio.median)} (${f3(s.ratio.q1)}–${f3(s.ratio.q3)}) |`);
    }
    for (const s of steps) {
      const own = spread(s.commFraction);
      console.log(`${s.method}: grad sync ${(100 * own.median).toFixed(1)}% of a step on the rank that reached it last (quartiles ${(100 * own.q1).toFixed(1)}–${(100 * own.q3).toFixed(1)}%), ${(100 * median(s.commFractionAllRanks)).toFixed(1)}% averaged over both ranks (with the wait for the slower one)`);
    }
    console.log('');
    console.log('Allreduce, float32, 2 ranks (median call; MB/s = size / time)');
    console.log('| size | ours ms | ours MB/s | PyTorch ms | PyTorch MB/s | ours/PyTorch per round (quartiles) |');
    console.log('|---|---:|---:|---:|---:|---|');
    for (const r of allreduce) {
      const mbs = (ms: number) => f0((r.mib * 2 ** 20) / 1e6 / (ms / 1e3));
      console.log(`| ${r.mib} MiB | ${r.ours.toFixed(2)} | ${mbs(r.ours)} | ${r.torch.toFixed(2)} | ${mbs(r.torch)} | ${f3(r.ratio.median)} (${f3(r.ratio.q1)}–${f3(r.ratio.q3)}) |`);
    }
    console.log('');
    console.log(`Equivalence: 2 ranks × ${EQUIV_BATCH / WORLD} vs 1 process × ${EQUIV_BATCH}, ${EQUIV_STEPS} SGD steps (lr 0.05, momentum 0.9) at 32×32, ours (max over both ranks)`);
    console.log('| model, method | trainable tensors | max abs diff of the weights | max abs change of the weights |');
    console.log('|---|---:|---:|---:|');
    for (const [name, c] of checks) console.log(`| ${name} | ${c.tensors} | ${c.maxDiff.toExponential(2)} | ${c.maxUpdate.toExponential(2)} |`);
    const full = steps.find((s) => s.method === 'full')!;
    const mona = steps.find((s) => s.method === 'mona')!;
    console.log('');
    console.log(`Mona: ours/PyTorch ${f3(mona.ratio.median)} per step. PyTorch's side runs the reference Mona as written (LayerNorm output kept, three depthwise convolutions and two residual adds), ours its merged and folded kernels with the same parameters; the backbone is frozen on both, BatchNorm in eval (ours folds it into the convolutions).`);
    // The conservative figure: both ranks' time in the gradient sync, the wait for the slower rank included.
    console.log(`RESULT ddp_step_vs_pytorch=${f3(full.ratio.median)} ddp_allreduce_vs_pytorch=${f3(allreduce.at(-1)!.ratio.median)} ddp_comm_fraction_mona=${f3(median(mona.commFractionAllRanks))} ddp_weights_maxdiff=${weightsMaxDiff.toExponential(2)}`);
  } finally {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench:ddp failed: ${(err as Error).message}`);
  killAll();
  process.exit(1);
});
