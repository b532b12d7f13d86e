// `deltatune predict`: top-k labels for images, from a saved delta.
import { existsSync } from 'node:fs';
import { loadTuned, predictFiles } from '../train/tuned.js';
import { UsageError } from './errors.js';
import { num, parse, progressMode, required, str } from './args.js';

export const predictHelp = `Usage: deltatune predict --delta DIR [options] IMAGE...

Prints the top-k labels for each image (JPEG, PNG, WebP, GIF, TIFF), prepared exactly as the
delta's evaluation transform.

  --weights FILE|NAME       the base weights, if not where the delta recorded them (a name
                            is read from the cache: 'deltatune weights fetch NAME' first)
  --ignore-base-mismatch    load even if the base's fingerprint differs from the delta's
  --top-k N                 labels per image (default 5)
  --progress auto|bar|lines live bar on a terminal, plain lines otherwise (default auto; on stderr)
  --quiet                   no progress, only the predictions
  --json                    one JSON array instead of a table`;

export async function runPredict(argv: string[]): Promise<void> {
  const p = parse(argv, {
    delta: { type: 'string' }, weights: { type: 'string' }, 'ignore-base-mismatch': { type: 'boolean' }, 'top-k': { type: 'string' }, json: { type: 'boolean' },
    progress: { type: 'string' }, quiet: { type: 'boolean' },
  }, predictHelp, true);
  if (!p) return;
  const deltaDir = required(p, 'delta', predictHelp);
  if (p.positionals.length === 0) throw new UsageError('predict: give at least one image file', predictHelp);
  const missing = p.positionals.find((f) => !existsSync(f));
  if (missing) throw new Error(`${missing}: no such file`);
  const topK = num(p, 'top-k', predictHelp, { integer: true, min: 1 }) ?? 5;
  const progress = progressMode(p, predictHelp);
  const tuned = loadTuned(deltaDir, { weights: str(p, 'weights'), ignoreBaseMismatch: p.values['ignore-base-mismatch'] === true });
  try {
    const predictions = await predictFiles(tuned, p.positionals, topK, 16, progress);
    if (p.values.json) {
      console.log(JSON.stringify(predictions, null, 2));
      return;
    }
    const width = Math.max(5, ...predictions.map((q) => q.source.length));
    for (const q of predictions) {
      console.log(`${q.source.padEnd(width)}  ${q.top.map((t) => `${t.label} ${(100 * t.probability).toFixed(1)}%`).join('  ')}`);
    }
  } finally {
    tuned.dispose();
  }
}
