// `deltatune train`: delta-tunes a model on a dataset and writes a run directory.
import { listMethods } from '../delta/index.js';
import { runOptions, tune, type TuneOptions } from '../train/run.js';
import { describeEpoch, type ProgressMode } from '../train/progress.js';
import { UsageError } from './errors.js';
import { choice, drop, keyValues, num, parse, str } from './args.js';
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
  --quiet                 only the final line     --json   JSON lines on stdout`;

const flags = {
  ...tuneFlagOptions(),
  method: { type: 'string' }, opt: { type: 'string', multiple: true },
  'color-jitter': { type: 'string' }, mixup: { type: 'string' }, cutmix: { type: 'string' }, 'on-bad-image': { type: 'string' }, workers: { type: 'string' },
  seed: { type: 'string' }, optimizer: { type: 'string' }, 'weight-decay': { type: 'string' }, momentum: { type: 'string' }, nesterov: { type: 'boolean' },
  'min-lr': { type: 'string' }, 'label-smoothing': { type: 'string' }, 'clip-grad': { type: 'string' }, accumulate: { type: 'string' }, patience: { type: 'string' },
  'checkpoint-every': { type: 'string' }, out: { type: 'string' }, resume: { type: 'string' }, progress: { type: 'string' },
  quiet: { type: 'boolean' }, json: { type: 'boolean' }, force: { type: 'boolean' }, 'allow-data-change': { type: 'boolean' },
} as const;

export async function runTrain(argv: string[]): Promise<void> {
  const p = parse(argv, flags, trainHelp);
  if (!p) return;
  const h = trainHelp;
  const mode: ProgressMode = p.values.json ? 'json' : p.values.quiet ? 'quiet' : (choice(p, 'progress', ['auto', 'bar', 'lines'] as const, h) ?? 'auto');
  const resumeDir = str(p, 'resume');
  let options: TuneOptions;
  if (resumeDir) {
    const others = Object.keys(p.values).filter((k) => !['resume', 'progress', 'quiet', 'json', 'allow-data-change'].includes(k));
    if (others.length) throw new UsageError(`--resume takes the run's saved options; drop --${others.join(', --')}`, h);
    options = { ...runOptions(resumeDir), progress: mode };
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
      out: str(p, 'out') ?? `runs/${shared.model!}-${method}`,
      progress: mode,
    });
  }
  if (p.values['allow-data-change'] && !resumeDir) throw new UsageError('--allow-data-change goes with --resume', h);
  const result = await tune(options, {
    resume: Boolean(resumeDir),
    force: p.values.force === true,
    allowDataChange: p.values['allow-data-change'] === true,
  });
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
