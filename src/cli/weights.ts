// `deltatune weights convert IN OUT`: re-saves a checkpoint (.pth/.pt or .safetensors) as safetensors.
import { basename } from 'node:path';
import { checkFinite, loadStateDict, saveStateDict } from '../io/state-dict.js';
import { checkOutputFile } from '../io/output.js';
import { noGrad } from '../engine/index.js';
import { UsageError } from './errors.js';
import { parse } from './args.js';

export const weightsHelp = `Usage: deltatune weights convert <in.pth|in.pt|in.safetensors> <out.safetensors> [--force]

Reads a PyTorch checkpoint through a restricted unpickler (it never runs code from the file),
takes its state dict (also from 'state_dict' / 'model' entries; 'module.' prefixes removed)
and writes it as safetensors, atomically. An existing OUT is kept unless --force (and never
replaced by a conversion of itself); tensors holding NaN or inf are refused.`;

export function runWeights(argv: string[]): void {
  const p = parse(argv, { force: { type: 'boolean' } }, weightsHelp, true);
  if (!p) return;
  const { positionals } = p;
  const [sub, input, output, ...extra] = positionals;
  if (sub !== 'convert') throw new UsageError(`weights: unknown sub-command '${sub ?? ''}' (expected 'convert')`, weightsHelp);
  if (!input || !output || extra.length) throw new UsageError('weights convert: expects exactly two paths, IN and OUT', weightsHelp);
  if (!output.endsWith('.safetensors')) throw new UsageError(`weights convert: the output '${output}' must end in .safetensors`, weightsHelp);
  checkOutputFile(output, { force: p.values.force === true, reads: [input], what: 'OUT' });
  const started = performance.now();
  const state = loadStateDict(input);
  try {
    checkFinite(state, input);
    saveStateDict(output, state, { converted_from: basename(input) });
    const bytes = [...state.values()].reduce((s, t) => s + t.nbytes, 0);
    console.log(`converted ${state.size} tensors (${(bytes / 2 ** 20).toFixed(1)} MiB) from ${input} to ${output} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    noGrad(() => state.forEach((t) => t.dispose()));
  }
}
