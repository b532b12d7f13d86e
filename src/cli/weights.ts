// `deltatune weights convert IN OUT`: re-saves a checkpoint (.pth/.pt or .safetensors) as safetensors.
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { loadStateDict, saveStateDict } from '../io/state-dict.js';
import { noGrad } from '../engine/index.js';
import { UsageError } from './errors.js';

export const weightsHelp = `Usage: deltatune weights convert <in.pth|in.pt|in.safetensors> <out.safetensors>

Reads a PyTorch checkpoint through a restricted unpickler (it never runs code from the file),
takes its state dict (also from 'state_dict' / 'model' entries; 'module.' prefixes removed)
and writes it as safetensors, atomically.`;

export function runWeights(argv: string[]): void {
  const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, options: { help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    console.log(weightsHelp);
    return;
  }
  const [sub, input, output, ...extra] = positionals;
  if (sub !== 'convert') throw new UsageError(`weights: unknown sub-command '${sub ?? ''}' (expected 'convert')`, weightsHelp);
  if (!input || !output || extra.length) throw new UsageError('weights convert: expects exactly two paths, IN and OUT', weightsHelp);
  if (!output.endsWith('.safetensors')) throw new UsageError(`weights convert: the output '${output}' must end in .safetensors`, weightsHelp);
  const started = performance.now();
  const state = loadStateDict(input);
  try {
    saveStateDict(output, state, { converted_from: basename(input) });
    const bytes = [...state.values()].reduce((s, t) => s + t.nbytes, 0);
    console.log(`converted ${state.size} tensors (${(bytes / 2 ** 20).toFixed(1)} MiB) from ${input} to ${output} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    noGrad(() => state.forEach((t) => t.dispose()));
  }
}
