// `deltatune merge`: folds a mergeable delta into its base and writes an ordinary weights file.
import { saveStateDict } from '../io/state-dict.js';
import { loadTuned } from '../train/tune.js';
import { UsageError } from './errors.js';
import { parse, required, str } from './args.js';

export const mergeHelp = `Usage: deltatune merge --delta DIR --out FILE.safetensors [options]

Folds the delta (lora, ssf, bitfit, normtuning, filter-atom, full, fixed, partial) into the base
weights and writes a plain checkpoint with torchvision's names and the delta's head, loadable by
createModel or by PyTorch. Mona and the adapters add modules and cannot be merged.

  --weights FILE            the base weights, if not where the delta recorded them
  --ignore-base-mismatch    load even if the base's fingerprint differs from the delta's`;

export function runMerge(argv: string[]): void {
  const p = parse(argv, { delta: { type: 'string' }, out: { type: 'string' }, weights: { type: 'string' }, 'ignore-base-mismatch': { type: 'boolean' } }, mergeHelp);
  if (!p) return;
  const out = required(p, 'out', mergeHelp);
  if (!out.endsWith('.safetensors')) throw new UsageError(`--out '${out}' must end in .safetensors`, mergeHelp);
  const tuned = loadTuned(required(p, 'delta', mergeHelp), { weights: str(p, 'weights'), ignoreBaseMismatch: p.values['ignore-base-mismatch'] === true });
  try {
    const model = tuned.delta.merge();
    saveStateDict(out, model.stateDict(), { merged_from: tuned.manifest.method, model: tuned.manifest.model, classes: JSON.stringify(tuned.classes) });
    console.log(`merged the ${tuned.manifest.method} delta into ${tuned.manifest.model}; wrote ${out} (${tuned.classes.length} classes)`);
  } finally {
    tuned.dispose();
  }
}
