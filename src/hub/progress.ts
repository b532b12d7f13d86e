// Progress of a long byte transfer (a download, a checkpoint conversion): a live bar on a terminal
// (cli-progress), a plain line every ~10 s or quarter in logs, or nothing. The same auto|bar|lines|quiet
// convention as a training run's (src/train/progress.ts).
import cliProgress from 'cli-progress';

export type TransferProgressMode = 'auto' | 'bar' | 'lines' | 'quiet';

export interface TransferProgress {
  /** A transfer of `total` bytes (null: unknown) begins, `from` of them already done (a resume). */
  start(label: string, total: number | null, from: number): void;
  /** `done` bytes of the current transfer are complete. */
  update(done: number): void;
  /** A line about the transfer (a retry, a wait); not shown when quiet. */
  message(text: string): void;
  /** The current transfer ended (successfully or not). */
  stop(): void;
}

export function createTransferProgress(mode: TransferProgressMode = 'auto', stream: NodeJS.WriteStream = process.stderr): TransferProgress {
  if (mode === 'auto') mode = stream.isTTY ? 'bar' : 'lines';
  switch (mode) {
    case 'bar': return new BarTransfer(stream);
    case 'lines': return new LineTransfer((s) => stream.write(s + '\n'));
    case 'quiet': return { start() {}, update() {}, message() {}, stop() {} };
    default: throw new Error(`progress mode must be auto, bar, lines or quiet; got '${String(mode)}'`);
  }
}

export const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

/** Transfers under 1 MiB are not reported. */
const SMALL = 2 ** 20;

class BarTransfer implements TransferProgress {
  #bar: cliProgress.SingleBar | null = null;
  #lines: LineTransfer;

  constructor(private readonly stream: NodeJS.WriteStream) {
    this.#lines = new LineTransfer((s) => stream.write(s + '\n'));
  }

  start(label: string, total: number | null, from: number): void {
    this.stop();
    if (total !== null && total < SMALL) return;
    // Without a size a bar has nothing to fill: plain lines instead.
    if (total === null) return this.#lines.start(label, total, from);
    this.#bar = new cliProgress.SingleBar(
      {
        stream: this.stream,
        format: `${label} {bar} {percentage}% | {doneMiB}/{totalMiB} MiB | {speed} MiB/s | ETA {eta_formatted}`,
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    this.#bar.start(total, from, { doneMiB: mib(from), totalMiB: mib(total), speed: '-' });
    this.#started = { at: performance.now(), from };
  }

  #started = { at: 0, from: 0 };

  update(done: number): void {
    if (!this.#bar) return this.#lines.update(done);
    const seconds = (performance.now() - this.#started.at) / 1000;
    const speed = seconds > 0.5 ? mib((done - this.#started.from) / seconds) : '-';
    this.#bar.update(done, { doneMiB: mib(done), speed });
  }

  message(text: string): void {
    if (this.#bar) this.stream.write('\n');
    this.stream.write(text + '\n');
  }

  stop(): void {
    this.#bar?.stop();
    this.#bar = null;
    this.#lines.stop();
  }
}

/** One line at the start, then one every ~10 s or quarter of the total: readable in CI logs. */
class LineTransfer implements TransferProgress {
  #label = '';
  #total: number | null = null;
  #last = 0;
  #nextQuarter = 0.25;
  #active = false;

  constructor(private readonly write: (s: string) => void) {}

  start(label: string, total: number | null, from: number): void {
    if (total !== null && total < SMALL) return; // a config file: over before a line would help
    this.#label = label;
    this.#total = total;
    this.#last = performance.now();
    this.#nextQuarter = 0.25;
    this.#active = true;
    if (total !== null) while (this.#nextQuarter <= from / total) this.#nextQuarter += 0.25;
    this.write(`${label}: ${total === null ? 'size unknown' : `${mib(total)} MiB`}${from ? ` (resuming at ${mib(from)} MiB)` : ''}`);
  }

  update(done: number): void {
    if (!this.#active) return;
    const now = performance.now();
    const fraction = this.#total ? done / this.#total : 0;
    if (now - this.#last < 10_000 && (this.#total === null || fraction < this.#nextQuarter)) return;
    this.#last = now;
    if (this.#total !== null) while (this.#nextQuarter <= fraction) this.#nextQuarter += 0.25;
    this.write(`  ${this.#label}: ${mib(done)}${this.#total === null ? '' : `/${mib(this.#total)}`} MiB`);
  }

  message(text: string): void {
    this.write(text);
  }

  stop(): void {
    this.#active = false;
  }
}
