// `deltatune compare` and `deltatune ablate-scales`: method comparisons and Mona's filter-scale
// ablation under one budget and several seeds, with a report (markdown, plots, HTML).
import { inapplicableReason, listMethods, planDelta } from '../delta/index.js';
import { createModel, modelConfig } from '../models/index.js';
import { ablateScales, compareMethods, parseScaleSets, type ExperimentOptions } from '../experiments/compare.js';
import { DEFAULT_METHODS, type ExperimentBase } from '../experiments/runner.js';
import { UsageError } from './errors.js';
import { FLAG_CAPS, keyValues, parse, str, type Parsed } from './args.js';
import { TUNE_FLAG_NAMES, tuneFlagHelp, tuneFlagOptions, tuneFlagValues } from './tune-flags.js';

// The flags shared with train (TUNE_FLAGS), with compare's defaults, then those of the experiments.
const shared = `${tuneFlagHelp(TUNE_FLAG_NAMES, { epochs: '(default 3)', lr: 'for every method (default: per-method rates, see the report)' })}
  --seeds LIST            comma list of seeds (default 0,1,2)
  --method-lr LIST        per-method rates overriding --lr and the defaults, e.g. full=1e-4,lora=3e-3
  --out DIR               report and runs (finished runs in DIR/runs are reused)
  --title, --backbone, --dataset TEXT   descriptions for the report`;

export const compareHelp = `Usage: deltatune compare --model NAME --data DATA [options]

Runs each method with each seed under the same budget (each run in its own process), then writes
DIR/report.md, DIR/index.html, DIR/results.json and plots (accuracy against trainable %, learning
curves) as PNG and SVG.

  --methods LIST          comma list (default: those of ${DEFAULT_METHODS.join(',')} that apply to the model)
  --opt METHOD.KEY=VALUE  an option for one method, repeatable (e.g. --opt full.trainBatchNormStats=false
                          to keep BatchNorm in eval mode for a checkpoint whose BatchNorms are folded)
${shared}`;

export const ablateHelp = `Usage: deltatune ablate-scales --model NAME --data DATA [options]

Mona with kernel sets [3], [5], [7], [3,3,3], [3,5], [5,7], [3,5,7], [3,5,7,9], and [3,5,7] without
the scaled LayerNorm, under the same budget and seeds; writes the same report files, with a bar plot.

  --opt KEY=VALUE         other Mona options for every variant (e.g. --opt hidden=32 --opt stages=2,3)
  --sets LIST             only these sets, e.g. '[3];[3,5,7];[3,5,7]-noLN' (default: all nine)
${shared}`;

const flags = {
  ...tuneFlagOptions(),
  seeds: { type: 'string' }, out: { type: 'string' }, title: { type: 'string' }, backbone: { type: 'string' }, dataset: { type: 'string' },
  methods: { type: 'string' }, 'method-lr': { type: 'string' }, sets: { type: 'string' }, opt: { type: 'string', multiple: true },
} as const;

function experimentOptions(p: Parsed, help: string, command: string, argv: string[]): ExperimentOptions {
  // The flags shared with train come from TUNE_FLAGS; --lr is compare's override of the per-method rates, not part of the base.
  const { lr, ...shared } = tuneFlagValues(p, help);
  const model = shared.model!;
  const seeds = (str(p, 'seeds') ?? '0,1,2').split(',').map((s) => s.trim());
  if (seeds.some((s) => !/^\d{1,10}$/.test(s) || Number(s) > FLAG_CAPS.seed!)) {
    throw new UsageError(`--seeds must be a comma list of integers from 0 to ${FLAG_CAPS.seed}, got '${str(p, 'seeds')}'`, help);
  }
  const base: ExperimentBase = {
    ...shared,
    model,
    data: shared.data!,
    epochs: shared.epochs ?? 3,
    batchSize: shared.batchSize ?? 32,
    // Default: the model's own input size (its config), as train does.
    imageSize: shared.imageSize ?? modelConfig(model).inputSize[2],
  };
  return {
    base,
    seeds: [...new Set(seeds.map(Number))],
    outDir: str(p, 'out') ?? `runs/${command}-${model}`,
    lr,
    methodLr: methodRates(str(p, 'method-lr'), help),
    title: str(p, 'title'),
    backbone: str(p, 'backbone'),
    dataset: str(p, 'dataset'),
    command: ['deltatune', command, ...argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))].join(' '),
    log: (line) => console.log(line),
  };
}

function methodRates(text: string | undefined, help: string): Record<string, number> | undefined {
  if (text === undefined) return undefined;
  const out: Record<string, number> = {};
  for (const item of text.split(',')) {
    const [method, value] = item.split('=').map((x) => x.trim());
    const lr = Number(value);
    if (!method || !listMethods().includes(method) || !(lr > 0)) {
      throw new UsageError(`--method-lr expects METHOD=RATE pairs of known methods and positive rates, got '${item}'`, help);
    }
    out[method] = lr;
  }
  return out;
}

function finish(result: { files: string[]; failures: string[] }, outDir: string): void {
  console.log(`report: ${outDir}/report.md, ${outDir}/index.html (${result.files.length} files)`);
  if (result.failures.length) throw new Error(`${result.failures.length} run(s) failed; see the report's notes (first: ${result.failures[0]})`);
}

export async function runCompare(argv: string[]): Promise<void> {
  const p = parse(argv, flags, compareHelp);
  if (!p) return;
  if (p.values.sets) throw new UsageError('--sets applies to ablate-scales', compareHelp);
  const perMethod: Record<string, Record<string, unknown>> = {};
  for (const [key, value] of Object.entries(keyValues(p, 'opt', compareHelp))) {
    const dot = key.indexOf('.');
    if (dot <= 0) throw new UsageError(`--opt for compare is METHOD.KEY=VALUE, got '${key}'`, compareHelp);
    (perMethod[key.slice(0, dot)] ??= {})[key.slice(dot + 1)] = value;
  }
  const o = experimentOptions(p, compareHelp, 'compare', argv);
  const given = str(p, 'methods')?.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = (given ?? []).filter((m) => !listMethods().includes(m));
  if (unknown.length) throw new UsageError(`--methods: unknown ${unknown.join(', ')}; known: ${listMethods().join(', ')}`, compareHelp);
  let methods = given ?? DEFAULT_METHODS;
  let skipped = new Map<string, string>();
  if (!given) {
    // The default list, less the methods that do not apply to this model (the transformer adapters on a CNN, ...).
    skipped = inapplicable(o.base.model, methods, perMethod);
    for (const [m, why] of skipped) console.log(`skipping ${m}: ${why}`);
    methods = methods.filter((m) => !skipped.has(m));
  }
  finish(await compareMethods(methods, o, perMethod, skipped), o.outDir);
}

/**
 * The default methods that do not apply to the model, with the reason: the registry's, for a
 * method of another kind; else the method's own refusal of this model (conv-adapter on a CNN with
 * no dense k×k convolution), found by a dry run on a freshly initialised copy.
 */
export function inapplicable(model: string, methods: string[], options: Record<string, Record<string, unknown>>): Map<string, string> {
  const config = modelConfig(model);
  const out = new Map<string, string>();
  const probe = createModel(model, { numClasses: 2 });
  try {
    for (const method of methods) {
      const reason = inapplicableReason(method, config);
      if (reason) {
        out.set(method, reason);
        continue;
      }
      try {
        planDelta(probe, { method, numClasses: 2, ...(options[method] ?? {}) });
      } catch (err) {
        out.set(method, (err as Error).message.split('\n')[0]!);
      }
    }
  } finally {
    probe.dispose();
  }
  return out;
}

export async function runAblate(argv: string[]): Promise<void> {
  const p = parse(argv, flags, ablateHelp);
  if (!p) return;
  if (p.values.methods) throw new UsageError('--methods applies to compare; ablate-scales runs Mona', ablateHelp);
  const o = experimentOptions(p, ablateHelp, 'ablate-scales', argv);
  const extra = keyValues(p, 'opt', ablateHelp);
  if ('kernels' in extra || 'scaledNorm' in extra) throw new UsageError('--opt kernels/scaledNorm are what the ablation varies; leave them out', ablateHelp);
  let sets;
  try {
    sets = str(p, 'sets') ? parseScaleSets(str(p, 'sets')!) : undefined;
  } catch (err) {
    throw new UsageError(`--sets: ${(err as Error).message}`, ablateHelp);
  }
  finish(await ablateScales(o, extra, sets), o.outDir);
}
