// A run's config.json: the options it was started with (what --resume continues), its classes and
// the fingerprints of its data and base weights. Read through a schema, so a hand edit that breaks
// a type or a range is refused naming the field instead of surfacing later as a TypeError.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { finite, finiteJson, readJsonFile, z } from '../io/json.js';
import { INPUT_LIMITS } from '../io/read.js';

const count = (max: number) => z.number().int().min(1).max(max);
const nonNegative = () => finite().refine((v) => v >= 0, 'must be ≥ 0');

/** The tune options as config.json stores them (paths absolute since this version; older runs may hold relative ones). */
export const tuneOptionsSchema = z.looseObject({
  model: z.string().min(1),
  weights: z.string().min(1).optional(),
  method: z.string().min(1),
  methodOptions: z.record(z.string(), finiteJson).optional(),
  out: z.string().min(1),
  data: z.string().min(1),
  valData: z.string().min(1).optional(),
  valSplit: finite().refine((v) => v >= 0 && v < 1, 'must be in [0, 1)').optional(),
  imageSize: z.number().int().min(8).max(4096).optional(),
  batchSize: count(65536).optional(),
  // Runs started before the CLI capped --seed at 2^31-1 may hold larger ones.
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  augment: z.enum(['default', 'none']).optional(),
  colorJitter: finite().refine((v) => v >= 0 && v <= 1, 'must be in [0, 1]').optional(),
  mixup: nonNegative().optional(),
  cutmix: nonNegative().optional(),
  onBadImage: z.enum(['skip', 'fail']).optional(),
  workers: count(256).optional(),
  channelsLast: z.boolean().optional(),
  epochs: count(10000),
  lr: nonNegative(),
  optimizer: z.enum(['adamw', 'sgd']).optional(),
  weightDecay: nonNegative().optional(),
  momentum: finite().refine((v) => v >= 0 && v <= 1, 'must be in [0, 1]').optional(),
  nesterov: z.boolean().optional(),
  warmupEpochs: nonNegative().optional(),
  minLr: nonNegative().optional(),
  labelSmoothing: finite().refine((v) => v >= 0 && v < 1, 'must be in [0, 1)').optional(),
  clipGrad: nonNegative().optional(),
  accumulate: count(65536).optional(),
  patience: z.number().int().min(0).max(10000).optional(),
  checkpointEvery: count(1e9).optional(),
  cacheFrozenPrefix: z.boolean().optional(),
  frozenPrecision: z.enum(['float32', 'bfloat16']).optional(),
});

const splitFingerprint = z.object({ count: z.number().int().min(0), sha256: z.string().regex(/^[0-9a-f]{64}$/) });

export const dataFingerprintSchema = z.object({
  train: splitFingerprint,
  val: splitFingerprint.nullable(),
  classes: z.array(z.string()).max(INPUT_LIMITS.classes),
});
export type DataFingerprint = z.output<typeof dataFingerprintSchema>;

export const runConfigSchema = z
  .looseObject({
    tune: tuneOptionsSchema.optional(),
    classes: z.array(z.string()).max(INPUT_LIMITS.classes).optional(),
    fingerprints: z.object({ data: dataFingerprintSchema, weights: z.string().regex(/^[0-9a-f]{64}$/).nullable() }).optional(),
    pathsFromRun: z.object({ data: z.string().optional(), valData: z.string().optional(), weights: z.string().optional() }).optional(),
    method: z.string().optional(),
    model: z.string().optional(),
    /** The deltatune version that started the run; absent before 0.2.0. */
    version: z.string().optional(),
  })
  .superRefine((c, ctx) => {
    if (c.tune && c.method !== undefined && c.method !== c.tune.method) {
      ctx.addIssue({ code: 'custom', path: ['method'], message: `is '${c.method}' but tune.method is '${c.tune.method}'` });
    }
    if (c.tune && c.model !== undefined && c.model !== c.tune.model) {
      ctx.addIssue({ code: 'custom', path: ['model'], message: `is '${c.model}' but tune.model is '${c.tune.model}'` });
    }
    if (c.fingerprints && c.classes && c.fingerprints.data.classes.join('\n') !== c.classes.join('\n')) {
      ctx.addIssue({ code: 'custom', path: ['fingerprints', 'data', 'classes'], message: 'differs from classes' });
    }
  });
export type RunConfig = z.output<typeof runConfigSchema>;

/** Reads and validates `runDir`/config.json. */
export function readRunConfig(runDir: string): RunConfig {
  const path = join(runDir, 'config.json');
  if (!existsSync(path)) throw new Error(existsSync(runDir) ? `${runDir}: not a run directory (no config.json)` : `${runDir}: not a run directory (no such folder)`);
  return readJsonFile(path, runConfigSchema, 'run config');
}

/**
 * The method options a run was trained with, with defaults that have changed since made explicit:
 * before 0.2.0 (no `version` in config.json) LoRA's alpha defaulted to 1; it now equals the rank.
 * A resume must go on with the old scaling, and a grid must not reuse such a run as a new-default one.
 */
export function effectiveMethodOptions(config: RunConfig): Record<string, unknown> {
  const options: Record<string, unknown> = { ...(config.tune?.methodOptions ?? {}) };
  if (config.version === undefined && config.tune?.method === 'lora' && options.alpha === undefined) options.alpha = 1;
  return options;
}
