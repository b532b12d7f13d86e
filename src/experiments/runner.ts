// Runs a grid of delta-tuning runs (variants × seeds) under one budget, each in its own child
// process — so every run starts from the same clean state and its peak memory is its own — and
// collects what the report needs.
import { spawn } from 'node:child_process';
import { isWeightsName, resolveWeights } from '../hub/index.js';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { readRunSummary } from './files.js';
import { listMethods, methodFacts } from '../delta/index.js';
import { effectiveMethodOptions, readRunConfig } from '../train/run-config.js';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TuneOptions } from '../train/run.js';
import type { EpochRecord } from '../train/checkpoint.js';
import type { RunRecord } from './report.js';

/** What every run of a grid shares. */
export type ExperimentBase = Omit<TuneOptions, 'method' | 'lr' | 'out' | 'seed'>;

/** One row of an experiment: a method with its options. */
export interface Variant {
  label: string;
  method: string;
  methodOptions?: Record<string, unknown>;
  /** Overrides of the shared budget for this variant (e.g. its learning rate). */
  overrides?: Partial<TuneOptions>;
}

/** Every registered method, baselines first (the registry's order). */
export const DEFAULT_METHODS = listMethods('registration');

const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'worker.js');

export interface GridOptions {
  variants: Variant[];
  seeds: number[];
  /** The shared budget: model, weights, data, epochs, batch, image size... (`method`, `lr`, `out` and `seed` are per run). */
  base: ExperimentBase;
  outDir: string;
  /** Use a given learning rate for every variant instead of the per-method defaults. */
  lr?: number;
  log?: (line: string) => void;
  /** Threads per run (default: libtorch's default, every core). */
  threads?: number;
}

interface WorkerResult {
  ok: boolean;
  error?: string;
}

function runChild(options: TuneOptions, threads?: number): Promise<WorkerResult> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [WORKER, JSON.stringify(options)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...(threads ? { DELTATUNE_THREADS: String(threads) } : {}) },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code, signal) => {
      const last = out.trim().split('\n').at(-1) ?? '';
      try {
        resolvePromise(JSON.parse(last) as WorkerResult);
      } catch {
        resolvePromise({ ok: false, error: `the run process ended with ${signal ?? `code ${code}`}: ${err.trim().split('\n').slice(-3).join(' | ')}` });
      }
    });
  });
}

/** Reads a finished run directory into a report record. */
export function readRun(runDir: string, label: string, method: string, seed: number): RunRecord {
  const summary = readRunSummary(runDir);
  const history = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as EpochRecord);
  return {
    label,
    method,
    seed,
    top1: summary.final?.top1 ?? NaN,
    trainablePercent: summary.delta.percent,
    deltaBytes: statSync(join(runDir, 'last', 'delta.safetensors')).size,
    seconds: summary.seconds,
    peakRssMiB: summary.peakRssMiB,
    history: history.map((h) => ({ epoch: h.epoch, trainLoss: h.trainLoss, trainTop1: h.trainTop1, ...(h.val ? { val: { top1: h.val.top1, loss: h.val.loss } } : {}) })),
  };
}

/** What differs between a finished run's saved options and the grid's for its cell (null when nothing that shapes the result does). */
function differentBudget(runDir: string, wanted: TuneOptions): string | null {
  const config = readRunConfig(runDir);
  const saved = config.tune;
  if (!saved) return 'no saved options';
  const keys = ['model', 'method', 'seed', 'epochs', 'lr', 'batchSize', 'imageSize', 'augment', 'warmupEpochs', 'optimizer', 'cacheFrozenPrefix', 'frozenPrecision'] as const;
  const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
  const diff = keys.filter((k) => !same(saved[k], wanted[k])).map((k) => `${k} ${JSON.stringify(saved[k] ?? null)} vs ${JSON.stringify(wanted[k] ?? null)}`);
  if (!same(effectiveMethodOptions(config), wanted.methodOptions ?? {})) diff.push('method options');
  return diff.length ? diff.join(', ') : null;
}

/** Runs every variant with every seed (finished runs in `outDir` are reused) and returns their records. */
export async function runGrid(options: GridOptions): Promise<{ runs: RunRecord[]; failures: string[] }> {
  const runs: RunRecord[] = [];
  const failures: string[] = [];
  const log = options.log ?? (() => {});
  const total = options.variants.length * options.seeds.length;
  let done = 0;
  // Named weights are fetched once here, with progress shown; each run's child then finds them cached.
  const { weights, model } = options.base;
  if (weights && isWeightsName(weights)) await resolveWeights(weights, { model, progress: options.log ? 'auto' : 'quiet' });
  for (const variant of options.variants) {
    for (const seed of options.seeds) {
      done += 1;
      const slug = variant.label.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^_+|_+$/g, '');
      const runDir = resolve(join(options.outDir, 'runs', `${slug}-s${seed}`));
      const finished = existsSync(join(runDir, 'summary.json')) && existsSync(join(runDir, 'last', 'delta.safetensors'));
      const tuneOptions: TuneOptions = {
        ...options.base,
        method: variant.method,
        methodOptions: variant.methodOptions ?? {},
        lr: options.lr ?? methodFacts(variant.method).defaultLr,
        ...variant.overrides,
        seed,
        out: runDir,
        progress: 'quiet',
      };
      const stale = finished ? differentBudget(runDir, tuneOptions) : null;
      if (stale) {
        failures.push(`${variant.label} seed ${seed}: ${runDir} holds a run with other options (${stale}); remove it or choose another --out`);
        log(`[${done}/${total}] ${variant.label} seed ${seed}: FAILED: ${runDir} holds a run with other options (${stale})`);
        continue;
      }
      if (!finished) {
        mkdirSync(dirname(runDir), { recursive: true });
        // A directory left by a killed run would refuse to start again: resume it instead.
        const resume = existsSync(join(runDir, 'state.safetensors'));
        const result = await runChild({ ...tuneOptions, ...(resume ? { resume: true } : {}) } as TuneOptions, options.threads);
        if (!result.ok) {
          failures.push(`${variant.label} seed ${seed}: ${result.error}`);
          log(`[${done}/${total}] ${variant.label} seed ${seed}: FAILED: ${result.error}`);
          continue;
        }
      }
      const record = readRun(runDir, variant.label, variant.method, seed);
      runs.push(record);
      log(
        `[${done}/${total}] ${variant.label} seed ${seed}: top-1 ${record.top1.toFixed(2)}%, ${record.trainablePercent.toFixed(2)}% trainable, ` +
          `${record.seconds.toFixed(1)} s, ${record.peakRssMiB.toFixed(0)} MiB${finished ? ' (reused)' : ''}`,
      );
    }
  }
  return { runs, failures };
}
