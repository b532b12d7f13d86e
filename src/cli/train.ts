// `deltatune train`: delta-tunes a model on a dataset and writes a run directory.
import { FROZEN_PRECISIONS, listMethods } from '../delta/index.js';
import { listModels } from '../models/index.js';
import { runOptions, tune, type TuneOptions } from '../train/run.js';
import { describeEpoch, type ProgressMode } from '../train/progress.js';
import { UsageError } from './errors.js';
import { choice, drop, keyValues, memoryFormat, num, parse, required, str } from './args.js';

export const trainHelp = `Usage: deltatune train --model NAME --data DATA [options]
       deltatune train --resume RUN_DIR

Freezes the model, applies a delta-tuning method, trains it, and writes RUN_DIR with config.json,
metrics.jsonl, summary.json, best/ and last/ (delta files) and state.safetensors (for --resume).

Model and method:
  --model NAME            ${listModels().join(', ')}
  --weights FILE          pretrained weights (.safetensors/.pth, torchvision or timm names);
                          without it the model starts from a seeded random init (saved in the run)
  --method NAME           ${listMethods().join(', ')} (default mona)
  --opt KEY=VALUE         a method option, repeatable (e.g. --opt kernels=3,5,7 --opt hidden=32)
Data:
  --data DATA             fashion-mnist | mnist | a folder (one subfolder per class; train/ and
                          val|validation|test/ inside are used as the split) | a .csv of path,label
  --val-data DATA         a separate validation set
  --val-split F           fraction held out by seed when the data has no split (default 0.1)
  --image-size N          input side in pixels (default: the model's input size, 224 for most;
                          normalisation always follows the model's config)
  --augment default|none  random crops and flips for photos (default), or none
  --color-jitter F        brightness/contrast/saturation jitter strength (default 0)
  --mixup A / --cutmix A  batch mixing with Beta(A, A) (default off)
  --on-bad-image skip|fail  an undecodable image is skipped with a warning, or stops the run (default fail)
  --workers N             images decoded at once (default 2 x cores)
  --cache-frozen-prefix   compute the layers before the first one the method trains once per image
                          and train only the rest (needs no random augmentation; resnet, mobilenet_v2,
                          convnext); e.g. with --method fixed, or mona/lora limited to late stages
  --memory-format auto|channels-last|contiguous  weight and batch layout; auto (default) trains CNNs
                          channels-last (NHWC, faster oneDNN convolutions) and transformers contiguous
  --frozen-precision float32|bfloat16  run the frozen convolutions that pay for it (dense, with many
                          channels) in bfloat16: ~15% off an epoch of Mona in MobileNetV2's last stages
                          on CPUs with AMX/AVX512-BF16; trained parameters stay float32 (default float32)
Training:
  --epochs N (default 10)  --batch N (default 32)  --lr F (default 1e-3)  --seed N (default 0)
  --optimizer adamw|sgd (default adamw)  --weight-decay F (adamw 0.05, sgd 0)  --momentum F (0.9)
  --nesterov  --warmup-epochs F (default 0)  --min-lr F (default 0)  --label-smoothing F (default 0)
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
  model: { type: 'string' }, weights: { type: 'string' }, method: { type: 'string' }, opt: { type: 'string', multiple: true },
  data: { type: 'string' }, 'val-data': { type: 'string' }, 'val-split': { type: 'string' }, 'image-size': { type: 'string' },
  augment: { type: 'string' }, 'color-jitter': { type: 'string' }, mixup: { type: 'string' }, cutmix: { type: 'string' },
  'on-bad-image': { type: 'string' }, workers: { type: 'string' }, epochs: { type: 'string' }, batch: { type: 'string' },
  lr: { type: 'string' }, seed: { type: 'string' }, optimizer: { type: 'string' }, 'weight-decay': { type: 'string' },
  momentum: { type: 'string' }, nesterov: { type: 'boolean' }, 'warmup-epochs': { type: 'string' }, 'min-lr': { type: 'string' },
  'label-smoothing': { type: 'string' }, 'clip-grad': { type: 'string' }, accumulate: { type: 'string' }, patience: { type: 'string' },
  'checkpoint-every': { type: 'string' }, out: { type: 'string' }, resume: { type: 'string' }, progress: { type: 'string' },
  quiet: { type: 'boolean' }, json: { type: 'boolean' }, 'cache-frozen-prefix': { type: 'boolean' },
  'memory-format': { type: 'string' }, 'frozen-precision': { type: 'string' }, force: { type: 'boolean' },
  'allow-data-change': { type: 'boolean' },
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
    const model = required(p, 'model', h);
    const method = str(p, 'method') ?? 'mona';
    options = drop<TuneOptions>({
      model,
      weights: str(p, 'weights'),
      method,
      methodOptions: keyValues(p, 'opt', h),
      data: required(p, 'data', h),
      valData: str(p, 'val-data'),
      valSplit: num(p, 'val-split', h, { min: 0, max: 0.9 }),
      imageSize: num(p, 'image-size', h, { integer: true, min: 8, max: 2048 }),
      augment: choice(p, 'augment', ['default', 'none'] as const, h),
      colorJitter: num(p, 'color-jitter', h, { min: 0, max: 1 }),
      mixup: num(p, 'mixup', h, { min: 0 }),
      cutmix: num(p, 'cutmix', h, { min: 0 }),
      onBadImage: choice(p, 'on-bad-image', ['skip', 'fail'] as const, h),
      workers: num(p, 'workers', h, { integer: true, min: 1, max: 256 }),
      epochs: num(p, 'epochs', h, { integer: true, min: 1 }) ?? 10,
      batchSize: num(p, 'batch', h, { integer: true, min: 1, max: 65536 }),
      lr: num(p, 'lr', h, { min: 0 }) ?? 1e-3,
      seed: num(p, 'seed', h, { integer: true, min: 0 }),
      optimizer: choice(p, 'optimizer', ['adamw', 'sgd'] as const, h),
      weightDecay: num(p, 'weight-decay', h, { min: 0 }),
      momentum: num(p, 'momentum', h, { min: 0, max: 1 }),
      nesterov: p.values.nesterov === true ? true : undefined,
      warmupEpochs: num(p, 'warmup-epochs', h, { min: 0 }),
      minLr: num(p, 'min-lr', h, { min: 0 }),
      labelSmoothing: num(p, 'label-smoothing', h, { min: 0, max: 0.99 }),
      clipGrad: num(p, 'clip-grad', h, { min: 0 }),
      accumulate: num(p, 'accumulate', h, { integer: true, min: 1 }),
      patience: num(p, 'patience', h, { integer: true, min: 0 }),
      checkpointEvery: num(p, 'checkpoint-every', h, { integer: true, min: 1 }),
      cacheFrozenPrefix: p.values['cache-frozen-prefix'] === true ? true : undefined,
      channelsLast: memoryFormat(p, h),
      frozenPrecision: choice(p, 'frozen-precision', FROZEN_PRECISIONS, h),
      out: str(p, 'out') ?? `runs/${model}-${method}`,
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
