// `compare` and `ablate-scales`: the same budget for every variant and seed, then one report.

import { runGrid, DEFAULT_METHODS, type ExperimentBase, type Variant } from './runner.js';
import { checkExperimentFolder } from './files.js';
import { writeReport, summariseRuns, type ExperimentResults } from './report.js';

export interface ExperimentOptions {
  base: ExperimentBase;
  seeds: number[];
  outDir: string;
  lr?: number;
  /** Per-method learning rates, over `lr` and the defaults. */
  methodLr?: Record<string, number>;
  title?: string;
  /** Describes the backbone and the data for the report (defaults are built from the options). */
  backbone?: string;
  dataset?: string;
  /** The command line that ran this, recorded in the report. */
  command: string;
  log?: (line: string) => void;
}

function budget(base: ExperimentOptions['base']): string {
  return [
    `${base.epochs} epochs`,
    `batch ${base.batchSize ?? 32}`,
    `${base.imageSize ?? 224}x${base.imageSize ?? 224}`,
    `${base.optimizer ?? 'adamw'} with cosine decay${base.warmupEpochs ? ` after ${base.warmupEpochs} warm-up epochs` : ''}`,
    base.augment === 'none' ? 'no augmentation' : 'default augmentation',
    ...(base.cacheFrozenPrefix ? ['frozen prefix cached'] : []),
  ].join(', ');
}

async function run(kind: ExperimentResults['kind'], variants: Variant[], o: ExperimentOptions, notes: (r: ExperimentResults) => string[]) {
  checkExperimentFolder(o.outDir, kind);
  const withLr = variants.map((v) => (o.methodLr?.[v.method] ? { ...v, overrides: { ...v.overrides, lr: o.methodLr[v.method] } } : v));
  const { runs, failures } = await runGrid({ variants: withLr, seeds: o.seeds, base: o.base, outDir: o.outDir, lr: o.lr, log: o.log });
  const results: ExperimentResults = {
    kind,
    title: o.title ?? (kind === 'compare' ? `Delta-tuning methods on ${o.base.model}` : `Mona filter scales on ${o.base.model}`),
    backbone: o.backbone ?? `${o.base.model}${o.base.weights ? ` (${o.base.weights})` : ' (random init)'}`,
    dataset: o.dataset ?? o.base.data + (o.base.valData ? ` (validation: ${o.base.valData})` : ''),
    budget:
      budget(o.base) +
      `; seeds ${o.seeds.join(', ')}` +
      (o.lr ? `; lr ${o.lr}` : "; each method's own learning rate (the registry's defaultLr)") +
      (o.methodLr ? `, except ${Object.entries(o.methodLr).map(([m, lr]) => `${m} ${lr}`).join(', ')}` : ''),
    commands: [o.command],
    runs,
    notes: [],
  };
  results.notes = [...notes(results), ...failures.map((f) => `Failed run: ${f}`)];
  const { files } = await writeReport(results, o.outDir);
  return { results, files, failures };
}

/** Every method (default: all twelve) under one budget and several seeds. */
export function compareMethods(
  methods: string[] = DEFAULT_METHODS,
  o: ExperimentOptions,
  methodOptions: Record<string, Record<string, unknown>> = {},
  /** Methods left out because they do not apply to the model, with the reason. */
  skipped: Map<string, string> = new Map(),
) {
  const variants = methods.map((m) => ({ label: m, method: m, methodOptions: methodOptions[m] ?? {} }));
  return run('compare', variants, o, (r) => [...findings(r), ...[...skipped].map(([m, why]) => `Not run: ${m} (${why})`)]);
}

function findings(r: ExperimentResults): string[] {
  const rows = summariseRuns(r);
  const full = rows.find((x) => x.label === 'full');
  if (!full) return [];
  return rows
    .filter((x) => x.label !== 'full' && Number.isFinite(x.top1Mean))
    .sort((a, b) => b.top1Mean - a.top1Mean)
    .slice(0, 3)
    .map((x) => `${x.label}: ${x.top1Mean.toFixed(2)}% with ${x.trainablePercent.toFixed(2)}% of the parameters trained, ${(x.top1Mean - full.top1Mean >= 0 ? '+' : '')}${(x.top1Mean - full.top1Mean).toFixed(2)} points against full fine-tuning (${full.top1Mean.toFixed(2)}%) in ${(x.secondsMean / full.secondsMean).toFixed(2)}× its time.`);
}

/** The Mona kernel sets of the ablation, and the paper's [3,5,7] without the scaled LayerNorm. */
export const SCALE_SETS: { label: string; kernels: number[]; scaledNorm: boolean }[] = [
  ...[[3], [5], [7], [3, 3, 3], [3, 5], [5, 7], [3, 5, 7], [3, 5, 7, 9]].map((k) => ({ label: `mona [${k.join(',')}]`, kernels: k, scaledNorm: true })),
  { label: 'mona [3,5,7] no scaled LN', kernels: [3, 5, 7], scaledNorm: false },
];

/** Parses `[3];[3,5,7];[3,5,7]-noLN` into kernel sets (for a shorter ablation). */
export function parseScaleSets(text: string): typeof SCALE_SETS {
  return text.split(';').map((item) => {
    const m = /^\s*\[([\d,\s]+)\](-noLN)?\s*$/.exec(item);
    const kernels = m ? m[1]!.split(',').map((k) => Number(k.trim())) : [];
    if (!m || kernels.some((k) => !Number.isInteger(k) || k < 1 || k % 2 === 0)) {
      throw new Error(`kernel set '${item}' must look like [3,5,7] (odd sizes), optionally followed by -noLN`);
    }
    return { label: `mona [${kernels.join(',')}]${m[2] ? ' no scaled LN' : ''}`, kernels, scaledNorm: !m[2] };
  });
}

export function ablateScales(o: ExperimentOptions, extraOptions: Record<string, unknown> = {}, sets = SCALE_SETS) {
  const variants = sets.map((s) => ({ label: s.label, method: 'mona', methodOptions: { ...extraOptions, kernels: s.kernels, scaledNorm: s.scaledNorm } }));
  return run('ablate-scales', variants, o, (r) => {
    const rows = summariseRuns(r);
    const get = (label: string) => rows.find((x) => x.label === label);
    const multi = get('mona [3,5,7]');
    const singles = ['mona [3]', 'mona [5]', 'mona [7]'].map(get).filter((x) => x && Number.isFinite(x.top1Mean));
    const best = [...rows].filter((x) => Number.isFinite(x.top1Mean)).sort((a, b) => b.top1Mean - a.top1Mean)[0];
    const notes: string[] = [];
    if (multi && singles.length) {
      const bestSingle = singles.sort((a, b) => b!.top1Mean - a!.top1Mean)[0]!;
      const gap = multi.top1Mean - bestSingle.top1Mean;
      const spread = Math.max(multi.top1Std, bestSingle.top1Std);
      notes.push(
        `Multi-scale [3,5,7] reaches ${multi.top1Mean.toFixed(2)}% against ${bestSingle.top1Mean.toFixed(2)}% for the best single scale (${bestSingle.label}): ` +
          `${gap >= 0 ? '+' : ''}${gap.toFixed(2)} points, ` +
          (Math.abs(gap) <= spread ? `within the seed spread (±${spread.toFixed(2)}), so this run does not support the claim that several scales help.` : gap > 0 ? 'larger than the seed spread: several scales help here, as the paper claims.' : 'below the single scale: the claim does not hold here.'),
      );
    }
    const noLn = get('mona [3,5,7] no scaled LN');
    if (multi && noLn) notes.push(`Without the scaled LayerNorm, [3,5,7] reaches ${noLn.top1Mean.toFixed(2)}% (${(noLn.top1Mean - multi.top1Mean >= 0 ? '+' : '')}${(noLn.top1Mean - multi.top1Mean).toFixed(2)} points).`);
    if (best) notes.push(`Best set: ${best.label}, ${best.top1Mean.toFixed(2)}% ± ${best.top1Std.toFixed(2)}.`);
    return notes;
  });
}

export { DEFAULT_METHODS };
