// `deltatune train`: delta-tunes a model on a dataset and writes a run directory.
import { listMethods } from '../delta/index.js';
import { runOptions, tune, type TuneOptions } from '../train/run.js';
import { DEFAULT_DIST_TIMEOUT_MS, DataParallel, distributedEnvironment } from '../train/distributed.js';
import { launch } from './launch.js';
import { describeEpoch, type ProgressMode } from '../train/progress.js';
import { ReportedFailure, UsageError } from './errors.js';
import { choice, drop, keyValues, num, parse, str, type Parsed } from './args.js';
import { tuneFlagHelp, tuneFlagOptions, tuneFlagValues } from './tune-flags.js';

export const trainHelp = `Usage: deltatune train --model NAME --data DATA [options]
       deltatune train --resume RUN_DIR

Freezes the model, applies a delta-tuning method, trains it, and writes RUN_DIR with config.json,
metrics.jsonl, summary.json, best/ and last/ (delta files) and state.safetensors (for --resume).

Model and method:
${tuneFlagHelp(['model', 'weights'])}
  --method NAME           ${listMethods().join(', ')} (default mona)
  --opt KEY=VALUE         a method option, repeatable (e.g. --opt kernels=3,5,7 --opt hidden=32)
Data:
${tuneFlagHelp(['data', 'val-data', 'val-split', 'image-size', 'augment'])}
  --color-jitter F        brightness/contrast/saturation jitter strength (default 0)
  --mixup A / --cutmix A  batch mixing with Beta(A, A) (default off)
  --on-bad-image skip|fail  an undecodable image is skipped with a warning, or stops the run (default fail)
  --workers N             images decoded at once (default 2 x cores)
${tuneFlagHelp(['cache-frozen-prefix', 'memory-format', 'frozen-precision'])}
Training:
${tuneFlagHelp(['epochs', 'batch', 'lr', 'warmup-epochs'], { epochs: '(default 10)', lr: '(default 1e-3)' })}
  --seed N (default 0)  --optimizer adamw|sgd (default adamw)  --weight-decay F (adamw 0.05, sgd 0)
  --momentum F (0.9)  --nesterov  --min-lr F (default 0)  --label-smoothing F (default 0)
  --clip-grad F  --accumulate N  --patience N (early stopping; default off)
  --checkpoint-every N    optimizer steps between resume points (default 100; each epoch end too)
Output:
  --out DIR               run directory (default runs/<model>-<method>); must be new, empty, or
                          (with --force) an earlier run, which is then replaced
  --force                 replace the run already in --out (never files this run reads)
  --resume DIR            continue a killed or stopped run exactly where it left off (from any
                          working directory, also after the run folder moved)
  --allow-data-change     with --resume: go on although the data list changed since the start
  --progress auto|bar|lines   live bar on a terminal, plain lines otherwise (default auto)
  --quiet                 only the final line     --json   JSON lines on stdout
Several processes or machines (data-parallel, torchrun's conventions; --batch stays the global batch):
  --nproc-per-node N      start N workers on this machine (threads split between them)
  --nnodes M --node-rank R --master-addr HOST --master-port P
                          M machines; run the same command on each with its R (0..M-1); rank 0's
                          machine is HOST (default 127.0.0.1), its rendezvous port P (default 29500)
  --dist-timeout S        seconds a rank waits for the others before failing (default 1800)
  --sync-bn               BatchNorm layers that train use the global batch's statistics (default:
                          each rank's own, as DDP without SyncBatchNorm)
  Workers started by a scheduler instead get RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (and
  LOCAL_RANK) in their environment and run plain \`deltatune train\`; only rank 0 writes --out.`;

const flags = {
  ...tuneFlagOptions(),
  method: { type: 'string' }, opt: { type: 'string', multiple: true },
  'color-jitter': { type: 'string' }, mixup: { type: 'string' }, cutmix: { type: 'string' }, 'on-bad-image': { type: 'string' }, workers: { type: 'string' },
  seed: { type: 'string' }, optimizer: { type: 'string' }, 'weight-decay': { type: 'string' }, momentum: { type: 'string' }, nesterov: { type: 'boolean' },
  'min-lr': { type: 'string' }, 'label-smoothing': { type: 'string' }, 'clip-grad': { type: 'string' }, accumulate: { type: 'string' }, patience: { type: 'string' },
  'checkpoint-every': { type: 'string' }, out: { type: 'string' }, resume: { type: 'string' }, progress: { type: 'string' },
  quiet: { type: 'boolean' }, json: { type: 'boolean' }, force: { type: 'boolean' }, 'allow-data-change': { type: 'boolean' },
  'nproc-per-node': { type: 'string' }, nnodes: { type: 'string' }, 'node-rank': { type: 'string' }, 'master-addr': { type: 'string' }, 'master-port': { type: 'string' },
  'dist-timeout': { type: 'string' }, 'sync-bn': { type: 'boolean' },
} as const;

const LAUNCH_FLAGS = ['nproc-per-node', 'nnodes', 'node-rank', 'master-addr', 'master-port'] as const;
const LAUNCH_VALUES = new Set(LAUNCH_FLAGS.map((f) => `--${f}`));

/** argv without the launcher's own flags (in both --flag value and --flag=value forms): what each worker runs. */
function workerArgv(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (LAUNCH_VALUES.has(a)) i++;
    else if (!LAUNCH_VALUES.has(a.split('=')[0]!)) out.push(a);
  }
  return out;
}

export async function runTrain(argv: string[]): Promise<void> {
  const p = parse(argv, flags, trainHelp);
  if (!p) return;
  const h = trainHelp;
  const distTimeout = num(p, 'dist-timeout', h, { min: 1, max: 7 * 24 * 3600 });
  const nproc = num(p, 'nproc-per-node', h, { integer: true, min: 1, max: 1024 });
  if (nproc === undefined) {
    const given = LAUNCH_FLAGS.filter((f) => p.values[f] !== undefined);
    if (given.length) throw new UsageError(`--${given.join(', --')} go${given.length > 1 ? '' : 'es'} with --nproc-per-node`, h);
  } else {
    if (distributedEnvironment()) throw new UsageError('--nproc-per-node starts the workers itself; this process already is one (RANK/WORLD_SIZE are set)', h);
    const nnodes = num(p, 'nnodes', h, { integer: true, min: 1, max: 65536 }) ?? 1;
    const nodeRank = num(p, 'node-rank', h, { integer: true, min: 0 }) ?? 0;
    if (nodeRank >= nnodes) throw new UsageError(`--node-rank must be below --nnodes (${nnodes}), got ${nodeRank}`, h);
    const result = await launch({
      nprocPerNode: nproc,
      nnodes,
      nodeRank,
      masterAddr: str(p, 'master-addr'),
      masterPort: num(p, 'master-port', h, { integer: true, min: 1, max: 65535 }),
      command: [process.execPath, ...process.execArgv, process.argv[1]!, 'train', ...workerArgv(argv)],
    });
    if (result.exitCode !== 0) throw new ReportedFailure(result.failure ?? `a worker exited with code ${result.exitCode}`, result.exitCode);
    return;
  }
  const rankEnv = distributedEnvironment();
  const parallel = rankEnv && rankEnv.worldSize > 1 ? await DataParallel.fromEnvironment({ timeoutMs: (distTimeout ?? DEFAULT_DIST_TIMEOUT_MS / 1000) * 1000 }) : null;
  try {
    await trainOneRank(p, parallel);
  } finally {
    parallel?.dispose();
  }
}

async function trainOneRank(p: Parsed, parallel: DataParallel | null): Promise<void> {
  const h = trainHelp;
  const mode: ProgressMode = p.values.json ? 'json' : p.values.quiet ? 'quiet' : (choice(p, 'progress', ['auto', 'bar', 'lines'] as const, h) ?? 'auto');
  const resumeDir = str(p, 'resume');
  let options: TuneOptions;
  if (resumeDir) {
    const others = Object.keys(p.values).filter((k) => !['resume', 'progress', 'quiet', 'json', 'allow-data-change', 'dist-timeout'].includes(k));
    if (others.length) throw new UsageError(`--resume takes the run's saved options; drop --${others.join(', --')}`, h);
    // The run folder is on rank 0's machine: the other ranks take the options it read.
    const saved = parallel ? await parallel.broadcastJson<TuneOptions>(parallel.isMain ? runOptions(resumeDir) : (null as unknown as TuneOptions)) : runOptions(resumeDir);
    options = { ...saved, progress: mode };
  } else {
    // The flags train shares with compare (model, data, budget, ...) come from TUNE_FLAGS; train's own follow.
    const shared = tuneFlagValues(p, h);
    const method = str(p, 'method') ?? 'mona';
    options = drop<TuneOptions>({
      model: shared.model!,
      weights: shared.weights,
      method,
      methodOptions: keyValues(p, 'opt', h),
      data: shared.data!,
      ...shared,
      colorJitter: num(p, 'color-jitter', h, { min: 0, max: 1 }),
      mixup: num(p, 'mixup', h, { min: 0 }),
      cutmix: num(p, 'cutmix', h, { min: 0 }),
      onBadImage: choice(p, 'on-bad-image', ['skip', 'fail'] as const, h),
      workers: num(p, 'workers', h, { integer: true, min: 1, max: 256 }),
      epochs: shared.epochs ?? 10,
      lr: shared.lr ?? 1e-3,
      seed: num(p, 'seed', h, { integer: true, min: 0 }),
      optimizer: choice(p, 'optimizer', ['adamw', 'sgd'] as const, h),
      weightDecay: num(p, 'weight-decay', h, { min: 0 }),
      momentum: num(p, 'momentum', h, { min: 0, max: 1 }),
      nesterov: p.values.nesterov === true ? true : undefined,
      minLr: num(p, 'min-lr', h, { min: 0 }),
      labelSmoothing: num(p, 'label-smoothing', h, { min: 0, max: 0.99 }),
      clipGrad: num(p, 'clip-grad', h, { min: 0 }),
      accumulate: num(p, 'accumulate', h, { integer: true, min: 1 }),
      patience: num(p, 'patience', h, { integer: true, min: 0 }),
      checkpointEvery: num(p, 'checkpoint-every', h, { integer: true, min: 1 }),
      syncBatchNorm: p.values['sync-bn'] === true ? true : undefined,
      out: str(p, 'out') ?? `runs/${shared.model!}-${method}`,
      progress: mode,
    });
  }
  if (p.values['allow-data-change'] && !resumeDir) throw new UsageError('--allow-data-change goes with --resume', h);
  const result = await tune(options, {
    resume: Boolean(resumeDir),
    force: p.values.force === true,
    allowDataChange: p.values['allow-data-change'] === true,
    ...(parallel ? { parallel } : {}),
  });
  if (parallel && !parallel.isMain) return;
  const last = result.history.at(-1);
  const line = {
    runDir: result.runDir,
    best: result.best,
    epochs: result.history.length,
    seconds: Number(result.seconds.toFixed(1)),
    ...(result.final ? { valTop1: result.final.top1, valTop5: result.final.top5 } : {}),
  };
  if (mode === 'json') console.log(JSON.stringify({ event: 'done', ...line }));
  else {
    if (mode === 'quiet' && last) console.log(describeEpoch(last, result.best?.epoch === last.epoch));
    console.log(
      `done in ${result.seconds.toFixed(1)} s: best ${result.best ? `${result.best.top1.toFixed(2)}% at epoch ${result.best.epoch + 1}` : '-'}` +
        `${result.stoppedEarly ? ' (stopped early)' : ''}; deltas in ${result.runDir}/best and ${result.runDir}/last`,
    );
  }
}
