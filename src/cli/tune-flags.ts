// The flags `train`, `compare` and `ablate-scales` share, declared once each: the parseArgs type,
// the help line, and how the value is read and checked into TuneOptions. The commands build their
// parseArgs options, the help for these flags and their option objects from this table, so the
// same flag takes the same values, with the same message for a bad one, under every command.
// Defaults that differ between the commands (epochs, lr) are applied by the command, and named in
// its help through the `notes` of tuneFlagHelp.
import { FROZEN_PRECISIONS } from '../delta/index.js';
import { listModels } from '../models/index.js';
import type { TuneOptions } from '../train/run.js';
import { choice, drop, memoryFormat, num, required, str, type Parsed } from './args.js';

interface TuneFlag {
  type: 'string' | 'boolean';
  /** The flag and its value as the help shows them, e.g. '--epochs N'. */
  usage: string;
  /** What the flag does, for the help: lines of at most ~76 characters after the usage column. */
  about: string[];
  /** The flag's TuneOptions field, read and checked (its value undefined when the flag is absent). */
  read(p: Parsed, help: string): Partial<TuneOptions>;
}

export const TUNE_FLAGS = {
  model: {
    type: 'string', usage: '--model NAME', about: [listModels().join(', ')],
    read: (p, h) => ({ model: required(p, 'model', h) }),
  },
  weights: {
    type: 'string', usage: '--weights FILE|NAME',
    about: [
      'pretrained weights: a file (.safetensors/.pth, torchvision or timm',
      'names) or a name (resnet50.IMAGENET1K_V2, DEFAULT, hf-hub:timm/...;',
      "see 'deltatune weights list'), fetched once into the cache; the run",
      "uses the weights' mean, std, input size and crop. Without it the model",
      'starts from a seeded random init (saved in the run)',
    ],
    read: (p) => ({ weights: str(p, 'weights') }),
  },
  data: {
    type: 'string', usage: '--data DATA',
    about: ['fashion-mnist | mnist | a folder (one subfolder per class; train/ and', 'val|validation|test/ inside are used as the split) | a .csv of path,label'],
    read: (p, h) => ({ data: required(p, 'data', h) }),
  },
  'val-data': {
    type: 'string', usage: '--val-data DATA', about: ['a separate validation set (e.g. a test split), in the same forms as --data'],
    read: (p) => ({ valData: str(p, 'val-data') }),
  },
  'val-split': {
    type: 'string', usage: '--val-split F', about: ['fraction held out by seed when the data has no split (default 0.1)'],
    read: (p, h) => ({ valSplit: num(p, 'val-split', h, { min: 0, max: 0.9 }) }),
  },
  'image-size': {
    type: 'string', usage: '--image-size N',
    about: ["input side in pixels (default: the model's input size, 224 for most;", "normalisation always follows the model's config)"],
    read: (p, h) => ({ imageSize: num(p, 'image-size', h, { integer: true, min: 8, max: 2048 }) }),
  },
  augment: {
    type: 'string', usage: '--augment default|none', about: ['random crops and flips for photos (default), or none'],
    read: (p, h) => ({ augment: choice(p, 'augment', ['default', 'none'] as const, h) }),
  },
  'cache-frozen-prefix': {
    type: 'boolean', usage: '--cache-frozen-prefix',
    about: [
      'compute the layers before the first one the method trains once per image',
      'and train only the rest (needs no random augmentation; resnet, mobilenet_v2,',
      'convnext); e.g. with --method fixed, or mona/lora limited to late stages',
    ],
    read: (p) => ({ cacheFrozenPrefix: p.values['cache-frozen-prefix'] === true ? true : undefined }),
  },
  'memory-format': {
    type: 'string', usage: '--memory-format auto|channels-last|contiguous',
    about: ['weight and batch layout; auto (default) trains CNNs', 'channels-last (NHWC, faster oneDNN convolutions) and transformers contiguous'],
    read: (p, h) => ({ channelsLast: memoryFormat(p, h) }),
  },
  'frozen-precision': {
    type: 'string', usage: '--frozen-precision float32|bfloat16',
    about: [
      'run the frozen convolutions that pay for it (dense, with many',
      "channels) in bfloat16: ~15% off an epoch of Mona in MobileNetV2's last stages",
      'on CPUs with AMX/AVX512-BF16; trained parameters stay float32 (default float32)',
    ],
    read: (p, h) => ({ frozenPrecision: choice(p, 'frozen-precision', FROZEN_PRECISIONS, h) }),
  },
  epochs: {
    type: 'string', usage: '--epochs N', about: ['passes over the training images'],
    read: (p, h) => ({ epochs: num(p, 'epochs', h, { integer: true, min: 1 }) }),
  },
  batch: {
    type: 'string', usage: '--batch N', about: ['images per batch (default 32)'],
    read: (p, h) => ({ batchSize: num(p, 'batch', h, { integer: true, min: 1, max: 65536 }) }),
  },
  lr: {
    type: 'string', usage: '--lr F', about: ['peak learning rate'],
    read: (p, h) => ({ lr: num(p, 'lr', h, { min: 0 }) }),
  },
  'warmup-epochs': {
    type: 'string', usage: '--warmup-epochs F', about: ['linear warm-up before the cosine decay, in epochs (default 0)'],
    read: (p, h) => ({ warmupEpochs: num(p, 'warmup-epochs', h, { min: 0 }) }),
  },
} satisfies Record<string, TuneFlag>;

export type TuneFlagName = keyof typeof TUNE_FLAGS;
export const TUNE_FLAG_NAMES = Object.keys(TUNE_FLAGS) as TuneFlagName[];

/** The shared flags as parseArgs options, to spread into a command's own. */
export function tuneFlagOptions(): Record<TuneFlagName, { type: 'string' | 'boolean' }> {
  return Object.fromEntries(TUNE_FLAG_NAMES.map((name) => [name, { type: TUNE_FLAGS[name].type }])) as Record<TuneFlagName, { type: 'string' | 'boolean' }>;
}

/** Reads every shared flag (in the table's order; the first bad one throws its UsageError). Absent flags are left out. */
export function tuneFlagValues(p: Parsed, help: string): Partial<TuneOptions> {
  const out: Partial<TuneOptions> = {};
  for (const name of TUNE_FLAG_NAMES) Object.assign(out, drop(TUNE_FLAGS[name].read(p, help)));
  return out;
}

/** The usage column of the help: flags are indented 2, their descriptions start at column 26. */
const COLUMN = 26;

/**
 * Help lines for the named shared flags, in that order. `notes` adds a command's own words to a
 * flag's description (its default, where the commands differ), e.g. `{ epochs: '(default 10)' }`.
 */
export function tuneFlagHelp(names: readonly TuneFlagName[], notes: Partial<Record<TuneFlagName, string>> = {}): string {
  return names
    .map((name) => {
      const { usage, about } = TUNE_FLAGS[name];
      const lines = notes[name] ? [...about.slice(0, -1), `${about.at(-1)!} ${notes[name]}`] : about;
      const lead = `  ${usage}`;
      const first = lead.length + 2 <= COLUMN ? lead.padEnd(COLUMN) : `${lead}  `;
      return [first + lines[0], ...lines.slice(1).map((l) => ' '.repeat(COLUMN) + l)].join('\n');
    })
    .join('\n');
}
