// `deltatune export`: writes a saved delta in another library's format. One entry per format in
// FORMATS, so a new one (onnx) is a table line and a function, not a new command.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { OutputFolder, OutputRefusedError, checkNotPseudoFilesystem, checkOutputFile } from '../io/output.js';
import { createModel } from '../models/index.js';
import { loadDelta, readDeltaManifest, savePeftLora, PackedQVLora, type DeltaManifest } from '../delta/index.js';
import { findDelta } from '../train/tuned.js';
import { UsageError } from './errors.js';
import { parse, required } from './args.js';

export const exportHelp = `Usage: deltatune export --format peft --delta PATH --out DIR [options]

Writes a saved delta in another library's format. PATH is a delta folder, its delta.json or
delta.safetensors, or a run folder (its best/ delta, else last/).

Formats:
  peft    a LoRA delta as a Hugging Face PEFT adapter: DIR/adapter_config.json and
          DIR/adapter_model.safetensors (keys base_model.model.<module>.lora_A/B.weight, the head
          under modules_to_save), for the torchvision-named model, on every family. PEFT has no
          LoRA on q and v alone: a packed projection's q/v pair (Swin's attn.qkv, ViT's
          self_attention) is written as one LoRA of rank 2r on the whole projection, with zero
          rows for k, which is the same update; the other targets are zero-padded to rank 2r and
          lora_alpha doubles, so alpha / r is unchanged. ViT's attention carries PEFT's zero LoRA
          on its out_proj (PEFT >= 0.12 adapts nn.MultiheadAttention). torchvision's Swin passes
          attn.qkv's weight to F.linear rather than calling the module, so in PEFT LoRA there
          acts only once merged (merge_and_unload()). Other methods refuse.

  --force    write into a DIR that already holds files (replaces only the two adapter files)`;

/** The formats `export` writes: what each one accepts and how it writes. */
const FORMATS: Record<string, (deltaDir: string, manifest: DeltaManifest, out: string) => string> = {
  peft: exportPeft,
};

export function runExport(argv: string[]): void {
  const p = parse(argv, { format: { type: 'string' }, delta: { type: 'string' }, out: { type: 'string' }, force: { type: 'boolean' } }, exportHelp);
  if (!p) return;
  const format = required(p, 'format', exportHelp);
  const write = Object.hasOwn(FORMATS, format) ? FORMATS[format] : undefined;
  if (!write) throw new UsageError(`--format '${format}' is not one deltatune exports (available: ${Object.keys(FORMATS).join(', ')})`, exportHelp);
  const deltaDir = findDelta(required(p, 'delta', exportHelp), '--delta');
  const out = required(p, 'out', exportHelp);
  const manifest = readDeltaManifest(deltaDir);
  // Before loading anything: an existing folder with files is replaced only with --force, and never where the delta is.
  checkNotPseudoFilesystem(out, '--out');
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new OutputRefusedError(`--out ${out} is a file; give a folder`);
    const held = readdirSync(out);
    if (held.length && p.values.force !== true) throw new OutputRefusedError(`--out ${out} already holds files (${held.slice(0, 3).join(', ')}${held.length > 3 ? ', ...' : ''}); pass --force to write the adapter files into it`);
  }
  const folder = new OutputFolder(out).prepare();
  try {
    const message = write(deltaDir, manifest, out);
    folder.commit();
    console.log(message);
  } finally {
    folder.rollback();
  }
}

function exportPeft(deltaDir: string, manifest: DeltaManifest, out: string): string {
  if (manifest.method !== 'lora') {
    throw new Error(`${join(deltaDir, 'delta.json')}: the delta is '${manifest.method}'; --format peft writes LoRA deltas only (PEFT's LoRA layout)`);
  }
  for (const name of ['adapter_config.json', 'adapter_model.safetensors']) {
    checkOutputFile(join(out, name), { force: true, reads: [deltaDir], what: '--out' });
  }
  // The adapter holds only the delta's tensors, so the base's values never enter it: the
  // architecture, randomly initialised, is enough, and the base file need not be at hand.
  const model = createModel(manifest.model);
  try {
    const delta = loadDelta(model, deltaDir, { ignoreBaseMismatch: true });
    const packed = delta.addedModules.some(([, m]) => m instanceof PackedQVLora);
    savePeftLora(delta, out);
    const cfg = delta.config as { rank: number; alpha: number };
    const rank = packed ? 2 * cfg.rank : cfg.rank;
    delta.dispose();
    return (
      `exported the lora delta of ${manifest.model} (${deltaDir}) as a PEFT adapter: ${join(out, 'adapter_config.json')}, ${join(out, 'adapter_model.safetensors')} ` +
      `(r ${rank}, lora_alpha ${(cfg.alpha * rank) / cfg.rank}${packed ? `; q/v pairs of packed projections as rank-${rank} LoRA on the whole projection, k rows zero` : ''})`
    );
  } finally {
    model.dispose();
  }
}
