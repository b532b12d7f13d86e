// `deltatune eval`: accuracy of a saved delta on a dataset.
import { evaluateTuned, loadTuned } from '../train/tuned.js';
import { choice, num, parse, progressMode, required, str } from './args.js';

export const evalHelp = `Usage: deltatune eval --delta DIR --data DATA [options]

Loads the base and the delta in DIR (a run's best/ or last/), evaluates it on DATA (fashion-mnist,
fashion-mnist:test, mnist, a folder with one subfolder per class, or a .csv of path,label) and
prints top-1, top-5, per-class accuracy and the confusion matrix.

  --weights FILE|NAME       the base weights, if not where the delta recorded them (a name
                            is read from the cache: 'deltatune weights fetch NAME' first)
  --ignore-base-mismatch    load even if the base's fingerprint differs from the delta's
  --batch N                 (default 32)
  --on-bad-image skip|fail  (default fail)
  --progress auto|bar|lines live bar on a terminal, plain lines otherwise (default auto; on stderr)
  --quiet                   no progress, only the results
  --json                    print the metrics as JSON`;

export async function runEval(argv: string[]): Promise<void> {
  const p = parse(argv, {
    delta: { type: 'string' }, data: { type: 'string' }, weights: { type: 'string' }, 'ignore-base-mismatch': { type: 'boolean' },
    batch: { type: 'string' }, 'on-bad-image': { type: 'string' }, json: { type: 'boolean' }, progress: { type: 'string' }, quiet: { type: 'boolean' },
  }, evalHelp);
  if (!p) return;
  const tuned = loadTuned(required(p, 'delta', evalHelp), { weights: str(p, 'weights'), ignoreBaseMismatch: p.values['ignore-base-mismatch'] === true });
  try {
    const m = await evaluateTuned(tuned, required(p, 'data', evalHelp), {
      batchSize: num(p, 'batch', evalHelp, { integer: true, min: 1 }),
      onBadImage: choice(p, 'on-bad-image', ['skip', 'fail'] as const, evalHelp),
      progress: progressMode(p, evalHelp),
    });
    if (p.values.json) {
      console.log(JSON.stringify({ ...m, classes: tuned.classes }));
      return;
    }
    console.log(`${m.samples} images  loss ${m.loss.toFixed(4)}  top-1 ${m.top1.toFixed(2)}%  top-5 ${m.top5.toFixed(2)}%`);
    const width = Math.max(5, ...tuned.classes.map((c) => c.length));
    console.log(`\n${'class'.padEnd(width)}  accuracy  images`);
    tuned.classes.forEach((c, i) => {
      const n = m.confusion[i]!.reduce((a, b) => a + b, 0);
      console.log(`${c.padEnd(width)}  ${Number.isNaN(m.perClass[i]!) ? '     -' : `${m.perClass[i]!.toFixed(1).padStart(6)}%`}  ${String(n).padStart(6)}`);
    });
    console.log('\nconfusion matrix (rows: true class, columns: predicted)');
    const cell = Math.max(4, ...m.confusion.flat().map((v) => String(v).length + 1));
    console.log(' '.repeat(width) + tuned.classes.map((_, j) => String(j).padStart(cell)).join(''));
    m.confusion.forEach((row, i) => console.log(`${tuned.classes[i]!.padEnd(width)}${row.map((v) => String(v).padStart(cell)).join('')}`));
  } finally {
    tuned.dispose();
  }
}
