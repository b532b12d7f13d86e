// Classification metrics accumulated over an evaluation: top-1, top-5, per-class accuracy and the
// confusion matrix (rows: true class, columns: predicted class).
import { Tensor, noGrad } from '../engine/index.js';

export interface EvalMetrics {
  samples: number;
  loss: number;
  top1: number;
  top5: number;
  /** Accuracy per true class (NaN where the class has no samples). */
  perClass: number[];
  confusion: number[][];
}

export class ClassificationMeter {
  readonly confusion: number[][];
  #samples = 0;
  #top5Hits = 0;
  #lossSum = 0;

  constructor(readonly numClasses: number) {
    this.confusion = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  }

  /** Adds a batch: logits [B, C], labels int64 [B], and the batch's mean loss. */
  update(logits: Tensor, labels: Tensor, meanLoss: number): void {
    const b = logits.shape[0]!;
    const k = Math.min(5, logits.shape[1]!);
    const top = noGrad(() => logits.topk(k, { dim: 1 }));
    const predicted = top.indices.toNumbers();
    top.values.dispose();
    top.indices.dispose();
    const truth = labels.toNumbers();
    for (let i = 0; i < b; i++) {
      const t = truth[i]!;
      const row = predicted.slice(i * k, (i + 1) * k);
      this.confusion[t]![row[0]!]! += 1;
      if (row.includes(t)) this.#top5Hits += 1;
    }
    this.#samples += b;
    this.#lossSum += meanLoss * b;
  }

  result(): EvalMetrics {
    return metricsFromTotals([this.#samples, this.#lossSum, this.#top5Hits, ...this.confusion.flat()], this.numClasses);
  }
}

/**
 * The sums behind a result: [samples, loss sum, top-5 hits, confusion row by row]. Sums of these
 * over disjoint parts of a dataset (the ranks' shards) give the metrics of the whole.
 */
export function metricsTotals(m: EvalMetrics): number[] {
  const n = m.samples;
  return [n, n ? m.loss * n : 0, n ? Math.round((m.top5 * n) / 100) : 0, ...m.confusion.flat()];
}

export function metricsFromTotals(totals: readonly number[], numClasses: number): EvalMetrics {
  const [n, lossSum, top5Hits] = totals as [number, number, number];
  const confusion = Array.from({ length: numClasses }, (_, i) => totals.slice(3 + i * numClasses, 3 + (i + 1) * numClasses));
  const correct = confusion.reduce((s, row, i) => s + row[i]!, 0);
  return {
    samples: n,
    loss: n ? lossSum / n : NaN,
    top1: n ? (100 * correct) / n : NaN,
    top5: n ? (100 * top5Hits) / n : NaN,
    perClass: confusion.map((row, i) => {
      const total = row.reduce((a, c) => a + c, 0);
      return total ? (100 * row[i]!) / total : NaN;
    }),
    confusion,
  };
}
