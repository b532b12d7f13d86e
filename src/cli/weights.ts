// `deltatune weights list | fetch | convert`: the pretrained weights deltatune knows by name and
// the hub cache, downloading one into it, and re-saving a checkpoint (.pth/.pt or .safetensors)
// as safetensors.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { checkFinite, loadStateDict, saveStateDict } from '../io/state-dict.js';
import { checkOutputFile } from '../io/output.js';
import { noGrad } from '../engine/index.js';
import {
  DEFAULT_HF_URL, DEFAULT_TORCHVISION_URL, TIMM_ARCHITECTURES, createTransferProgress, hubCacheDir, knownWeights, resolveWeights, weightsLocation,
  type TransferProgressMode,
} from '../hub/index.js';
import { mib } from '../hub/progress.js';
import { UsageError } from './errors.js';
import { choice, parse, str } from './args.js';

export const weightsHelp = `Usage: deltatune weights list [--json]
       deltatune weights fetch NAME [--model MODEL] [--mirror URL] [--progress auto|bar|lines] [--quiet]
       deltatune weights convert <in.pth|in.pt|in.safetensors> <out.safetensors> [--force] [--quiet]

list     the weights known by name (torchvision's published ImageNet-1K weights for the zoo's
         models), with their model, ImageNet top-1, size, and whether and where they are cached;
         timm weights from the Hugging Face hub are fetched by name too (hf-hub:timm/ARCH.TAG or
         ARCH.TAG) for the timm architectures the zoo loads:
${wrap(Object.keys(TIMM_ARCHITECTURES).join(', '), 86, '         ')}
fetch    downloads NAME into the cache once (resumed after a dropped connection, sha256 checked):
         resnet50.IMAGENET1K_V2, IMAGENET1K_V2 or DEFAULT with --model resnet50,
         hf-hub:timm/convnext_tiny.fb_in22k, convnext_tiny.fb_in22k. 'train --weights NAME' does
         the same by itself; createModel() and eval/predict/merge read the cache only.
  --mirror URL   a base URL to fetch from instead of ${DEFAULT_TORCHVISION_URL}
                 (torchvision names) or ${DEFAULT_HF_URL} (hf-hub names)
convert  reads a PyTorch checkpoint through a restricted unpickler (it never runs code from the
         file), takes its state dict (also from 'state_dict' / 'model' entries; 'module.' prefixes
         removed) and writes it as safetensors, atomically. An existing OUT is kept unless --force
         (and never replaced by a conversion of itself); tensors holding NaN or inf are refused.

Progress: a bar on a terminal, plain lines otherwise (--progress), nothing with --quiet.
Environment: DELTATUNE_CACHE (the cache is DELTATUNE_CACHE/hub, default
\${XDG_CACHE_HOME:-~/.cache}/deltatune/hub), DELTATUNE_OFFLINE=1 (never connect: a missing file is an
error naming where to place it by hand), DELTATUNE_TORCHVISION_URL and DELTATUNE_HUB_URL (mirrors).`;

function wrap(text: string, width: number, indent: string): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, indent + line].join('\n');
}

const flags = {
  force: { type: 'boolean' }, quiet: { type: 'boolean' }, json: { type: 'boolean' }, progress: { type: 'string' },
  mirror: { type: 'string' }, model: { type: 'string' },
} as const;

export async function runWeights(argv: string[]): Promise<void> {
  const p = parse(argv, flags, weightsHelp, true);
  if (!p) return;
  const [sub, ...args] = p.positionals;
  const progress: TransferProgressMode = p.values.quiet ? 'quiet' : (choice(p, 'progress', ['auto', 'bar', 'lines'] as const, weightsHelp) ?? 'auto');
  const allowed: Record<string, string[]> = { list: ['json'], fetch: ['mirror', 'model', 'quiet', 'progress'], convert: ['force', 'quiet', 'progress'] };
  if (sub === undefined || !allowed[sub]) throw new UsageError(`weights: unknown sub-command '${sub ?? ''}' (expected list, fetch or convert)`, weightsHelp);
  const stray = Object.keys(p.values).filter((k) => !allowed[sub]!.includes(k));
  if (stray.length) throw new UsageError(`weights ${sub}: --${stray.join(', --')} does not apply`, weightsHelp);
  if (sub === 'list') return list(args, p.values.json === true);
  if (sub === 'fetch') {
    if (args.length !== 1) throw new UsageError('weights fetch: expects exactly one NAME', weightsHelp);
    const name = args[0]!;
    const mirror = str(p, 'mirror');
    const model = str(p, 'model');
    const before = weightsLocation(name, { model, mirror });
    const cached = existsSync(before.path);
    const got = await resolveWeights(name, { model, mirror, progress });
    const size = statSync(got.path).size;
    console.log(`${got.name}: ${cached ? 'already cached' : 'fetched'} ${got.path} (${mib(size)} MiB, model ${got.model})`);
    return;
  }
  convert(args, p.values.force === true, progress);
}

function list(args: string[], json: boolean): void {
  if (args.length) throw new UsageError(`weights list: takes no arguments, got '${args[0]}'`, weightsHelp);
  const rows = knownWeights().map((w) => {
    const { path } = weightsLocation(w.name);
    const cached = existsSync(path);
    return { name: w.name, model: w.model, top1: w.top1, approxMiB: Math.round((w.numParams * 4) / 2 ** 20), cached, path, url: w.url, default: w.default };
  });
  // Hugging Face downloads already in the cache: hub/hf/ORG/REPO/REVISION/model.safetensors.
  const hf = join(hubCacheDir(), 'hf');
  const hfRows: { name: string; path: string; MiB: number }[] = [];
  for (const org of dirs(hf)) {
    for (const repo of dirs(join(hf, org))) {
      for (const rev of dirs(join(hf, org, repo))) {
        const path = join(hf, org, repo, rev, 'model.safetensors');
        if (existsSync(path)) hfRows.push({ name: `hf-hub:${org}/${repo}${rev === 'main' ? '' : `@${rev}`}`, path, MiB: Number(mib(statSync(path).size)) });
      }
    }
  }
  if (json) {
    console.log(JSON.stringify({ cache: hubCacheDir(), torchvision: rows, huggingFace: hfRows }, null, 2));
    return;
  }
  const table = [
    ['name', 'model', 'top-1', 'size', 'cached'],
    ...rows.map((r) => [r.name + (r.default ? ' (default)' : ''), r.model, r.top1 === null ? '-' : `${r.top1.toFixed(2)}%`, `~${r.approxMiB.toFixed(0)} MiB`, r.cached ? r.path : 'no']),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  for (const row of table) console.log(row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
  console.log(`\ncache: ${hubCacheDir()} (sizes ~ parameters x 4 bytes)`);
  if (hfRows.length) for (const r of hfRows) console.log(`cached: ${r.name}  ${r.MiB.toFixed(1)} MiB  ${r.path}`);
  console.log(`also by name: hf-hub:ORG/REPO (timm: ${Object.keys(TIMM_ARCHITECTURES).join(', ')}), e.g. hf-hub:timm/convnext_tiny.fb_in22k`);
}

function dirs(path: string): string[] {
  try {
    return readdirSync(path, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  } catch {
    return [];
  }
}

function convert(args: string[], force: boolean, mode: TransferProgressMode): void {
  const [input, output, ...extra] = args;
  if (!input || !output || extra.length) throw new UsageError('weights convert: expects exactly two paths, IN and OUT', weightsHelp);
  if (!output.endsWith('.safetensors')) throw new UsageError(`weights convert: the output '${output}' must end in .safetensors`, weightsHelp);
  checkOutputFile(output, { force, reads: [input], what: 'OUT' });
  const started = performance.now();
  const progress = createTransferProgress(mode);
  // Reading and the NaN check are one call each: a line before each (reading only for a file big
  // enough to take a while, so a missing or garbage file is just its one-line error); the write has a bar (or lines).
  const size = existsSync(input) ? statSync(input).size : 0;
  if (size >= 16 * 2 ** 20) progress.message(`reading ${input} (${mib(size)} MiB)`);
  const state = loadStateDict(input);
  try {
    progress.message(`checking ${state.size} tensors for NaN and inf`);
    checkFinite(state, input);
    progress.start(`writing ${basename(output)}`, [...state.values()].reduce((s, t) => s + t.nbytes, 0), 0);
    saveStateDict(output, state, { converted_from: basename(input) }, (written) => progress.update(written));
    progress.stop();
    const bytes = [...state.values()].reduce((s, t) => s + t.nbytes, 0);
    console.log(`converted ${state.size} tensors (${(bytes / 2 ** 20).toFixed(1)} MiB) from ${input} to ${output} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    progress.stop();
    noGrad(() => state.forEach((t) => t.dispose()));
  }
}
