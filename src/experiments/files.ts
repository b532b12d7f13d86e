// The files experiments read back: a run's summary.json (a finished run is reused) and an earlier
// report's results.json (an output folder is continued only when it holds the same kind of
// experiment). Both through schemas, so an edited or foreign file is named, not misread.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { finite, readJsonFile, z } from '../io/json.js';
import { OutputRefusedError, checkNotPseudoFilesystem } from '../io/output.js';

const nullableNumber = finite().nullable();

export const runSummarySchema = z.looseObject({
  seconds: finite(),
  peakRssMiB: finite(),
  final: z.looseObject({ top1: finite() }).optional(),
  delta: z.looseObject({ percent: finite().refine((v) => v >= 0 && v <= 100, 'must be a percentage') }),
});

const epochPointSchema = z.looseObject({
  epoch: z.number().int().min(0),
  trainLoss: nullableNumber,
  trainTop1: nullableNumber,
  val: z.looseObject({ top1: nullableNumber, loss: nullableNumber }).optional(),
});

export const resultsSchema = z.looseObject({
  kind: z.enum(['compare', 'ablate-scales']),
  title: z.string(),
  backbone: z.string(),
  dataset: z.string(),
  budget: z.string(),
  commands: z.array(z.string()),
  runs: z.array(
    z.looseObject({
      label: z.string(),
      method: z.string(),
      seed: z.number().int().min(0),
      // JSON has no NaN: a diverged run's top-1 is stored as null.
      top1: nullableNumber,
      trainablePercent: finite(),
      deltaBytes: z.number().int().min(0),
      seconds: finite(),
      peakRssMiB: finite(),
      history: z.array(epochPointSchema),
    }),
  ),
  notes: z.array(z.string()).optional(),
  reference: z.array(z.object({ label: z.string(), top1: finite() })).optional(),
});

export function readRunSummary(runDir: string): z.output<typeof runSummarySchema> {
  return readJsonFile(join(runDir, 'summary.json'), runSummarySchema, 'run summary');
}

export function readResults(path: string): z.output<typeof resultsSchema> {
  return readJsonFile(path, resultsSchema, 'experiment results');
}

/**
 * An experiment's output folder must be new, empty, or an earlier report of the same kind (whose
 * finished runs are reused and whose report is rewritten); anything else is refused.
 */
export function checkExperimentFolder(dir: string, kind: 'compare' | 'ablate-scales'): void {
  checkNotPseudoFilesystem(dir, '--out');
  if (!existsSync(dir)) return;
  if (!statSync(dir).isDirectory()) throw new OutputRefusedError(`--out ${dir} is a file, not a folder`);
  const entries = readdirSync(dir);
  if (entries.length === 0) return;
  const resultsPath = join(dir, 'results.json');
  if (existsSync(resultsPath)) {
    const earlier = readResults(resultsPath);
    if (earlier.kind !== kind) throw new OutputRefusedError(`--out ${dir} holds a '${earlier.kind}' report; give another folder for '${kind}'`);
    return;
  }
  // A first attempt killed before its report: only run folders so far.
  if (entries.every((e) => e === 'runs' || e.startsWith('.'))) return;
  throw new OutputRefusedError(`--out ${dir} holds other files (${entries.slice(0, 3).join(', ')}); give a new or empty folder, or an earlier ${kind} report to continue`);
}
