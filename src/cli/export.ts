// `deltatune export`: writes a saved delta in another library's format. One entry per format in
// FORMATS, so a new one (onnx) is a table line and a function, not a new command.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { OutputFolder, OutputRefusedError, checkNotPseudoFilesystem, checkOutputFile } from '../io/output.js';
import { createModel } from '../models/index.js';
import { loadDelta, readDeltaManifest, savePeftLora, PackedQVLora, type DeltaManifest } from '../delta/index.js';
import { findDelta } from '../train/tuned.js';
import { UsageError } from './errors.js';
import { num, parse, required, str, type Parsed } from './args.js';
import { exportDeltaOnnx } from '../export/index.js';
import { writeWebPage } from '../export/web.js';

export const exportHelp = `Usage: deltatune export --delta PATH --out FILE.onnx [options]
       deltatune export --delta PATH --web DIR [options]
       deltatune export --format peft --delta PATH --out DIR [--force]

Writes a saved delta (over its base) in another runtime's or library's format. PATH is a delta
folder, its delta.json or delta.safetensors, or a run folder (its best/ delta, else last/).

Formats:
  onnx    (default) the tuned model as ONNX for onnxruntime (Node, browsers, Python, C++): input
          'image' float32 [batch, 3, size, size] (batch dynamic), output 'logits' [batch, classes];
          class names and preprocessing (size, crop, mean, std) in the metadata ('deltatune.meta').
          Mergeable methods (lora, bitfit, ssf, ...) are folded into the base: one plain graph;
          the others (mona, adapters, ...) run as ONNX nodes.
          --base-weights F  the base weights (default: where the delta recorded them)
          --opset N         13 or 17 (default 17; 13 writes LayerNorm as its decomposition)
          --float16         float16 weights (half the size; computed in float32)
          --split           the base's tensors in a shared file beside FILE (<model>-base-<hash>.bin,
                            the same for every delta of that base), FILE keeps the delta: kilobytes
                            to download per task once the base is cached. The delta is not merged.
          --no-merge        keep a mergeable delta's modules as nodes
          --name NAME       the delta's name in the metadata (default: the run folder's name)
          --web DIR         a static page in DIR (split model, onnxruntime-web, no build step):
                            drop or choose an image, see the top-5 classes. Serve DIR with any
                            static server (e.g. npx http-server DIR) and open it.
          --force           replace existing files

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
  const p = parse(
    argv,
    {
      format: { type: 'string' }, delta: { type: 'string' }, out: { type: 'string' }, force: { type: 'boolean' }, 'base-weights': { type: 'string' },
      opset: { type: 'string' }, float16: { type: 'boolean' }, split: { type: 'boolean' }, 'no-merge': { type: 'boolean' }, name: { type: 'string' }, web: { type: 'string' },
    },
    exportHelp,
  );
  if (!p) return;
  const format = str(p, 'format') ?? 'onnx';
  if (format === 'onnx') return runOnnxExport(p);
  for (const flag of ['base-weights', 'opset', 'float16', 'split', 'no-merge', 'name', 'web']) {
    if (p.values[flag] !== undefined) throw new UsageError(`--${flag} applies to --format onnx only`, exportHelp);
  }
  const write = Object.hasOwn(FORMATS, format) ? FORMATS[format] : undefined;
  if (!write) throw new UsageError(`--format '${format}' is not one deltatune exports (available: onnx, ${Object.keys(FORMATS).join(', ')})`, exportHelp);
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

function runOnnxExport(p: Parsed): void {
  const deltaDir = findDelta(required(p, 'delta', exportHelp), '--delta');
  const web = str(p, 'web');
  const outFlag = str(p, 'out');
  if (!web && !outFlag) throw new UsageError('give --out FILE.onnx (or --web DIR for a page)', exportHelp);
  const opset = num(p, 'opset', exportHelp, { integer: true, min: 13, max: 17 });
  if (opset !== undefined && opset !== 13 && opset !== 17) throw new UsageError(`--opset must be 13 or 17, got ${opset}`, exportHelp);
  const force = p.values.force === true;
  const weights = str(p, 'base-weights');
  const options = { opset, float16: p.values.float16 === true, name: str(p, 'name'), weights, merge: p.values['no-merge'] === true ? false : undefined };
  if (web) {
    if (outFlag) throw new UsageError('--web DIR writes DIR/model.onnx itself; drop --out', exportHelp);
    checkNotPseudoFilesystem(web, '--web');
    if (existsSync(web) && !statSync(web).isDirectory()) throw new OutputRefusedError(`--web ${web} is a file; give a folder`);
    const held = existsSync(web) ? readdirSync(web) : [];
    if (held.length && !force) throw new OutputRefusedError(`--web ${web} already holds files (${held.slice(0, 3).join(', ')}${held.length > 3 ? ', ...' : ''}); pass --force to replace the page`);
    const folder = new OutputFolder(web).prepare();
    try {
      const exported = exportDeltaOnnx(deltaDir, { ...options, out: join(web, 'model.onnx'), split: true });
      const page = writeWebPage(web, exported);
      folder.commit();
      console.log(`wrote a page for ${exported.meta.model} + ${exported.meta.method} '${exported.meta.delta}' in ${web}: ${page.files.length} files; ` +
        `the delta's graph ${kb(exported.graphBytes)}, the shared base ${kb(exported.baseBytes)} (a whole model: ${kb(exported.fullBytes)}). Serve the folder over HTTP and open index.html`);
    } finally {
      folder.rollback();
    }
    return;
  }
  const out = outFlag!;
  if (!out.endsWith('.onnx')) throw new UsageError(`--out ${out}: an ONNX file name must end in .onnx`, exportHelp);
  checkOutputFile(out, { force, reads: [deltaDir, weights], what: '--out' });
  const exported = exportDeltaOnnx(deltaDir, { ...options, out, split: p.values.split === true });
  const how = exported.meta.merged ? 'merged into the base' : exported.meta.method === 'none' ? '' : 'as graph nodes';
  console.log(
    `exported ${exported.meta.model} + ${exported.meta.method} '${exported.meta.delta}' (${how}) to ${out}: opset ${exported.meta.opset}, ${kb(exported.graphBytes)}` +
      (exported.baseWeightsFile ? `; base tensors in ${exported.baseWeightsFile} (${kb(exported.baseBytes)}, shared by the deltas of this base; a whole model is ${kb(exported.fullBytes)})` : ''),
  );
}

function kb(bytes: number): string {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}
