// The local launcher for data-parallel runs, with torchrun's conventions: N worker processes per
// machine, each told its place through the environment torchrun sets (RANK, LOCAL_RANK,
// WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT), so a cluster scheduler can
// start the same workers itself. One worker failing stops the others (torchrun's default): a rank
// left waiting on a dead peer would otherwise only give up at the collective's timeout.
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';

export interface LaunchOptions {
  /** Workers on this machine (torchrun --nproc-per-node). */
  nprocPerNode: number;
  /** Machines (torchrun --nnodes; default 1). */
  nnodes?: number;
  /** This machine's index, 0 ≤ nodeRank < nnodes (torchrun --node-rank; default 0). */
  nodeRank?: number;
  /** Rank 0's machine (default 127.0.0.1). */
  masterAddr?: string;
  /** Rank 0's rendezvous port (default 29500, torchrun's). */
  masterPort?: number;
  /** The command every worker runs: [executable, ...args]. */
  command: readonly [string, ...string[]];
  /** Extra environment for every worker. */
  env?: NodeJS.ProcessEnv;
  /** How long the others get to exit after a SIGTERM before SIGKILL (default 10 s). */
  graceMs?: number;
  /** Where the launcher's own lines go (default stderr). */
  say?: (line: string) => void;
}

export interface WorkerExit {
  rank: number;
  localRank: number;
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface LaunchResult {
  /** 0 when every worker succeeded; else the exit code of the first worker that failed (1 for a signal). */
  exitCode: number;
  /** The first failure, as one line naming the rank and the cause; null on success. */
  failure: string | null;
  exits: WorkerExit[];
}

/** The environment torchrun gives local worker `localRank`; threads split the cores between local workers. */
export function workerEnvironment(o: LaunchOptions, localRank: number): NodeJS.ProcessEnv {
  const nnodes = o.nnodes ?? 1;
  const nodeRank = o.nodeRank ?? 0;
  const threads = process.env.DELTATUNE_THREADS ?? String(Math.max(1, Math.floor(availableParallelism() / o.nprocPerNode)));
  return {
    ...process.env,
    ...o.env,
    RANK: String(nodeRank * o.nprocPerNode + localRank),
    LOCAL_RANK: String(localRank),
    WORLD_SIZE: String(nnodes * o.nprocPerNode),
    LOCAL_WORLD_SIZE: String(o.nprocPerNode),
    GROUP_RANK: String(nodeRank),
    MASTER_ADDR: o.masterAddr ?? '127.0.0.1',
    MASTER_PORT: String(o.masterPort ?? 29500),
    DELTATUNE_THREADS: threads,
  };
}

export function checkLaunchOptions(o: LaunchOptions): void {
  const int = (v: unknown, name: string, min: number, max: number) => {
    if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${String(v)}`);
  };
  int(o.nprocPerNode, '--nproc-per-node', 1, 1024);
  int(o.nnodes ?? 1, '--nnodes', 1, 65536);
  int(o.nodeRank ?? 0, '--node-rank', 0, (o.nnodes ?? 1) - 1);
  int(o.masterPort ?? 29500, '--master-port', 1, 65535);
  if (o.masterAddr !== undefined && !/^[A-Za-z0-9.:\-[\]]+$/.test(o.masterAddr)) throw new RangeError(`--master-addr must be a host name or address, got '${o.masterAddr}'`);
}

/**
 * Starts the local workers and waits for all of them. When one fails (non-zero exit or a signal),
 * the others get SIGTERM, then SIGKILL after `graceMs`; SIGINT/SIGTERM sent to the launcher are
 * passed on to every worker.
 */
export function launch(o: LaunchOptions): Promise<LaunchResult> {
  checkLaunchOptions(o);
  const say = o.say ?? ((l: string) => process.stderr.write(`${l}\n`));
  const graceMs = o.graceMs ?? 10_000;
  const [exe, ...args] = o.command;
  const workers: { child: ChildProcess; rank: number; localRank: number; done: boolean }[] = [];
  const exits: WorkerExit[] = [];
  let failure: string | null = null;
  let exitCode = 0;
  let killTimer: NodeJS.Timeout | null = null;

  const stopAll = (signal: NodeJS.Signals) => {
    for (const w of workers) if (!w.done) w.child.kill(signal);
    if (!killTimer) {
      killTimer = setTimeout(() => {
        for (const w of workers) if (!w.done) w.child.kill('SIGKILL');
      }, graceMs);
      killTimer.unref();
    }
  };
  const forward = (signal: NodeJS.Signals) => () => stopAll(signal);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);

  return new Promise((resolveAll) => {
    let remaining = o.nprocPerNode;
    for (let localRank = 0; localRank < o.nprocPerNode; localRank++) {
      const env = workerEnvironment(o, localRank);
      const child = spawn(exe, args, { env, stdio: 'inherit' });
      const w = { child, rank: Number(env.RANK), localRank, done: false };
      workers.push(w);
      const finish = (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
        if (w.done) return;
        w.done = true;
        exits.push({ rank: w.rank, localRank, pid: child.pid ?? -1, code, signal });
        if ((code !== 0 || error) && failure === null) {
          const cause = error ? `could not start: ${error.message}` : signal ? `was killed by ${signal}` : `exited with code ${code}`;
          failure = `rank ${w.rank} (local rank ${localRank}, pid ${child.pid ?? '?'}) ${cause}; stopping the other workers`;
          exitCode = code && code > 0 ? code : 1;
          say(`deltatune: ${failure}`);
          stopAll('SIGTERM');
        }
        if (--remaining === 0) {
          if (killTimer) clearTimeout(killTimer);
          process.off('SIGINT', onInt);
          process.off('SIGTERM', onTerm);
          resolveAll({ exitCode, failure, exits: exits.sort((a, b) => a.rank - b.rank) });
        }
      };
      child.on('error', (err) => finish(null, null, err));
      child.on('exit', (code, signal) => finish(code, signal));
    }
  });
}
