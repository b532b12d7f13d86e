// `deltatune merge`: folds a mergeable delta into its base and writes an ordinary weights file.
import { checkFinite, saveStateDict } from '../io/state-dict.js';
import { checkOutputFile } from '../io/output.js';
import { readDeltaManifest } from '../delta/files.js';
import { loadTuned } from '../train/tuned.js';
import { UsageError } from './errors.js';
import { parse, required, str } from './args.js';

export const mergeHelp = `Usage: deltatune merge --delta DIR --out FILE.safetensors [options]

Folds the delta (lora, ssf, bitfit, normtuning, filter-atom, full, fixed, partial) into the base
weights and writes a plain checkpoint with torchvision's names and the delta's head, loadable by
createModel or by PyTorch. Mona and the adapters add modules and cannot be merged.

  --weights FILE|NAME       the base weights, if not where the delta recorded them (a name
                            is read from the cache: 'deltatune weights fetch NAME' first)
  --ignore-base-mismatch    load even if the base's fingerprint differs from the delta's
  --force                   replace FILE if it exists (never the delta's files or its base)`;

export function runMerge(argv: string[]): void {
  const p = parse(argv, {
    delta: { type: 'string' }, out: { type: 'string' }, weights: { type: 'string' }, 'ignore-base-mismatch': { type: 'boolean' }, force: { type: 'boolean' },
  }, mergeHelp);
  if (!p) return;
  const out = required(p, 'out', mergeHelp);
  const deltaDir = required(p, 'delta', mergeHelp);
  if (!out.endsWith('.safetensors')) throw new UsageError(`--out '${out}' must end in .safetensors`, mergeHelp);
  const force = p.values.force === true;
  const weights = str(p, 'weights');
  // Before loading anything: the output may not replace a file without --force, nor any file this merge reads.
  checkOutputFile(out, { force, reads: [deltaDir, weights, readDeltaManifest(deltaDir).base.path], what: '--out' });
  const tuned = loadTuned(deltaDir, { weights, ignoreBaseMismatch: p.values['ignore-base-mismatch'] === true });
  try {
    checkOutputFile(out, { force, reads: [deltaDir, tuned.model.config.weightsFile], what: '--out' });
    const model = tuned.delta.merge();
    const state = model.stateDict();
    // A tampered delta (say a LoRA alpha of 1e30) would otherwise write a checkpoint of inf and NaN.
    checkFinite(state, `merging ${deltaDir} into ${tuned.manifest.model}`);
    saveStateDict(out, state, { merged_from: tuned.manifest.method, model: tuned.manifest.model, classes: JSON.stringify(tuned.classes) });
    console.log(`merged the ${tuned.manifest.method} delta into ${tuned.manifest.model}; wrote ${out} (${tuned.classes.length} classes)`);
  } finally {
    tuned.dispose();
  }
}
