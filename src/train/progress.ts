// How a run reports itself: a live bar per epoch on a terminal (cli-progress), plain periodic
// lines in CI logs, JSON lines for programs, or nothing. The same for every other long step
// (validation, eval, building the prefix cache, predict): a task with a count of items.
import cliProgress from 'cli-progress';
import type { EpochRecord } from './checkpoint.js';

export interface StepReport {
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  loss: number;
  top1: number;
  imagesPerSecond: number;
  /** Seconds left in this epoch at the current pace. */
  etaSeconds: number;
  lr: number;
}

/** One long step that is not a training epoch: `update` with the items done so far, then `end`. */
export interface TaskProgress {
  update(done: number): void;
  end(): void;
}

export interface ProgressSink {
  /** Starts a task of `total` items (`unit`, e.g. 'batches'); `label` says what it is ('validating'). */
  task(label: string, total: number, unit: string): TaskProgress;
  epochStart(epoch: number, epochs: number, batches: number, fromBatch: number): void;
  step(report: StepReport): void;
  evaluating(epoch: number): void;
  epochEnd(record: EpochRecord, isBest: boolean): void;
  message(text: string): void;
  close(): void;
}

export type ProgressMode = 'auto' | 'bar' | 'lines' | 'json' | 'quiet';

export function createProgress(mode: ProgressMode = 'auto', stream: NodeJS.WriteStream = process.stderr): ProgressSink {
  if (mode === 'auto') mode = stream.isTTY ? 'bar' : 'lines';
  switch (mode) {
    case 'bar': return new BarProgress(stream);
    case 'lines': return new LineProgress((s) => stream.write(s + '\n'));
    case 'json': return new JsonProgress((s) => process.stdout.write(s + '\n'));
    case 'quiet': return new QuietProgress();
    default: throw new Error(`progress mode must be auto, bar, lines, json or quiet; got '${String(mode)}'`);
  }
}

const pct = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '-' : `${x.toFixed(1)}%`);

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '-';
  const t = Math.round(s);
  return t >= 60 ? `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s` : `${t}s`;
}

export function describeEpoch(r: EpochRecord, isBest: boolean): string {
  const val = r.val ? `  val loss ${r.val.loss.toFixed(4)}  top1 ${pct(r.val.top1)}  top5 ${pct(r.val.top5)}` : '';
  return (
    `epoch ${r.epoch + 1}  train loss ${r.trainLoss.toFixed(4)}  top1 ${pct(r.trainTop1)}${val}  ` +
    `${r.imagesPerSecond.toFixed(0)} img/s  ${r.seconds.toFixed(1)} s  data wait ${(100 * r.dataWaitFraction).toFixed(1)}%${isBest ? '  (best)' : ''}`
  );
}

/** A task that reports nothing (for callers given no progress sink). */
export const NO_TASK: TaskProgress = { update() {}, end() {} };

class BarProgress implements ProgressSink {
  #bar: cliProgress.SingleBar | null = null;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  task(label: string, total: number, unit: string): TaskProgress {
    // Validation runs inside an epoch: its bar replaces the epoch's (cleared on stop), whose line follows at epochEnd.
    this.#bar?.stop();
    const bar = new cliProgress.SingleBar(
      { stream: this.stream, format: `${label} {bar} {value}/{total} ${unit} | ETA {eta_formatted}`, hideCursor: true, clearOnComplete: true, etaBuffer: 50 },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0);
    this.#bar = bar;
    return {
      update: (done) => bar.update(done),
      end: () => {
        bar.stop();
        if (this.#bar === bar) this.#bar = null;
      },
    };
  }

  epochStart(epoch: number, epochs: number, batches: number, fromBatch: number): void {
    this.#bar?.stop();
    this.#bar = new cliProgress.SingleBar(
      {
        stream: this.stream,
        format: `epoch ${epoch + 1}/${epochs} {bar} {value}/{total} | loss {loss} | acc {acc} | {ips} img/s | ETA {eta_formatted}`,
        hideCursor: true,
        clearOnComplete: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    this.#bar.start(batches, fromBatch, { loss: '-', acc: '-', ips: '-' });
  }

  step(r: StepReport): void {
    this.#bar?.update(r.batch + 1, { loss: r.loss.toFixed(4), acc: pct(r.top1), ips: r.imagesPerSecond.toFixed(0) });
  }

  evaluating(): void {}

  epochEnd(record: EpochRecord, isBest: boolean): void {
    this.#bar?.stop();
    this.#bar = null;
    this.stream.write(describeEpoch(record, isBest) + '\n');
  }

  message(text: string): void {
    if (this.#bar) this.stream.write('\n');
    this.stream.write(text + '\n');
  }

  close(): void {
    this.#bar?.stop();
    this.#bar = null;
  }
}

/** One line every ~10 s or 25% of an epoch: readable in CI logs, where a bar would be noise. */
class LineProgress implements ProgressSink {
  #last = 0;
  #nextQuarter = 0;
  constructor(private readonly write: (s: string) => void) {}

  /**
   * A line every ~10 s or 25%, and one when the task completes. Nothing before the first of these
   * and nothing for a task that fails: a command that stops on its first item (a bad image) prints
   * only its one-line error, and a short task prints one line.
   */
  task(label: string, total: number, unit: string): TaskProgress {
    const started = performance.now();
    let last = started;
    let nextQuarter = 0.25;
    let done = 0;
    let ended = false;
    return {
      update: (n) => {
        done = n;
        const now = performance.now();
        const fraction = total > 0 ? done / total : 1;
        if ((now - last < 10_000 && fraction < nextQuarter) || done >= total) return;
        last = now;
        while (nextQuarter <= fraction) nextQuarter += 0.25;
        const eta = ((now - started) / 1000 / done) * (total - done);
        this.write(`${label}: ${done}/${total} ${unit}  ETA ${formatSeconds(eta)}`);
      },
      end: () => {
        if (ended || done < total) return;
        ended = true;
        this.write(`${label}: ${total} ${unit} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      },
    };
  }

  epochStart(epoch: number, epochs: number, batches: number, fromBatch: number): void {
    this.#last = performance.now();
    this.#nextQuarter = 0.25;
    this.write(`epoch ${epoch + 1}/${epochs}: ${batches} batches${fromBatch ? ` (resuming at batch ${fromBatch + 1})` : ''}`);
  }

  step(r: StepReport): void {
    const now = performance.now();
    const done = (r.batch + 1) / r.batches;
    if (now - this.#last < 10_000 && done < this.#nextQuarter) return;
    this.#last = now;
    while (this.#nextQuarter <= done) this.#nextQuarter += 0.25;
    this.write(
      `  batch ${r.batch + 1}/${r.batches}  loss ${r.loss.toFixed(4)}  acc ${pct(r.top1)}  ${r.imagesPerSecond.toFixed(0)} img/s  ` +
        `lr ${r.lr.toExponential(2)}  ETA ${formatSeconds(r.etaSeconds)}`,
    );
  }

  evaluating(): void {}

  epochEnd(record: EpochRecord, isBest: boolean): void {
    this.write(describeEpoch(record, isBest));
  }

  message(text: string): void {
    this.write(text);
  }

  close(): void {}
}

class JsonProgress implements ProgressSink {
  constructor(private readonly write: (s: string) => void) {}
  task(label: string, total: number, unit: string): TaskProgress {
    const started = performance.now();
    this.write(JSON.stringify({ event: 'task-start', label, total, unit }));
    return {
      update: (done) => this.write(JSON.stringify({ event: 'task', label, done, total })),
      end: () => this.write(JSON.stringify({ event: 'task-end', label, seconds: (performance.now() - started) / 1000 })),
    };
  }
  epochStart(epoch: number, epochs: number, batches: number, fromBatch: number): void {
    this.write(JSON.stringify({ event: 'epoch-start', epoch, epochs, batches, fromBatch }));
  }
  step(r: StepReport): void {
    this.write(JSON.stringify({ event: 'step', ...r }));
  }
  evaluating(epoch: number): void {
    this.write(JSON.stringify({ event: 'evaluating', epoch }));
  }
  epochEnd(record: EpochRecord, isBest: boolean): void {
    this.write(JSON.stringify({ event: 'epoch', ...record, best: isBest }));
  }
  message(text: string): void {
    this.write(JSON.stringify({ event: 'message', text }));
  }
  close(): void {}
}

class QuietProgress implements ProgressSink {
  task(): TaskProgress {
    return NO_TASK;
  }
  epochStart(): void {}
  step(): void {}
  evaluating(): void {}
  epochEnd(): void {}
  /** Quiet hides progress, not problems: warnings (skipped images, ...) still reach stderr. */
  message(text: string): void {
    if (text.startsWith('warning:')) process.stderr.write(`${text}\n`);
  }
  close(): void {}
}
