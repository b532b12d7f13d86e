// `deltatune inspect`: what a model, a weights file, a delta or a run holds.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { finite, validate, z } from '../io/json.js';
import { INPUT_LIMITS, readTextFile } from '../io/read.js';
import { readRunConfig } from '../train/run-config.js';
import { readRunSummary } from '../experiments/files.js';
import { extname, join } from 'node:path';
import { noGrad } from '../engine/index.js';
import { createModel, listModels } from '../models/index.js';
import { withoutInitialisation } from '../nn/init.js';
import { applyDelta, listMethods, methodFacts, planDelta, type DeltaPlan } from '../delta/index.js';
import { readDeltaManifest } from '../delta/index.js';
import { inspectSafetensors } from '../io/safetensors.js';
import { loadStateDict } from '../io/state-dict.js';
import { UsageError } from './errors.js';
import { keyValues, parse, str } from './args.js';

export const inspectHelp = `Usage: deltatune inspect TARGET [options]
       deltatune inspect --model NAME --method NAME --dry-run [--opt KEY=VALUE ...]
       deltatune inspect --methods [--markdown]

TARGET is one of:
  a model name (${listModels().join(', ')}): parameters per top-level module and the blocks
      delta methods can target; with --method, what that method would train
  a delta directory (delta.json + delta.safetensors): method, config, base, classes, sizes
  a run directory (config.json): its configuration, epochs and best delta
  a weights file (.safetensors, .pth, .pt): tensors, dtypes, parameter count

  --model NAME       the model, instead of giving it as TARGET
  --method NAME      with a model name: apply this method and show its summary
  --dry-run          with --method: list every module the method would add (and where), every
                     base parameter it would train, and the head; nothing is trained or written
  --opt KEY=VALUE    method options (repeatable); targets take exclude=REGEX too
  --classes N        with --method: the delta's number of classes (default: the model's)
  --methods          the registered methods: kinds, mergeable, identity at init, learning rate, options
  --markdown         with --methods: as the README's Markdown table
  --json             machine-readable output`;

const mib = (bytes: number) => (bytes >= 1 << 20 ? `${(bytes / 2 ** 20).toFixed(2)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`);
const count = (n: number) => n.toLocaleString('en-US');

function out(json: boolean, value: unknown, lines: string[]): void {
  console.log(json ? JSON.stringify(value, null, 2) : lines.join('\n'));
}

function fileSizes(dir: string): Record<string, number> {
  return Object.fromEntries(readdirSync(dir).filter((f) => statSync(join(dir, f)).isFile()).map((f) => [f, statSync(join(dir, f)).size]));
}

export function runInspect(argv: string[]): void {
  const p = parse(
    argv,
    {
      model: { type: 'string' }, method: { type: 'string' }, opt: { type: 'string', multiple: true }, classes: { type: 'string' }, json: { type: 'boolean' },
      'dry-run': { type: 'boolean' }, methods: { type: 'boolean' }, markdown: { type: 'boolean' },
    },
    inspectHelp,
    true,
  );
  if (!p) return;
  const json = p.values.json === true;
  if (p.values.methods) {
    if (p.positionals.length || p.values.model || p.values.method) throw new UsageError('--methods takes no TARGET, --model or --method', inspectHelp);
    return inspectMethods(json, p.values.markdown === true);
  }
  if (p.values.markdown) throw new UsageError('--markdown applies only to --methods', inspectHelp);
  const model = str(p, 'model');
  if (model !== undefined && !listModels().includes(model)) throw new UsageError(`--model: unknown model '${model}'; available: ${listModels().join(', ')}`, inspectHelp);
  const [target, ...extra] = model !== undefined ? [model, ...p.positionals] : p.positionals;
  if (!target || extra.length) throw new UsageError(model !== undefined ? 'inspect: give --model or a TARGET, not both' : 'inspect: give exactly one TARGET', inspectHelp);
  const method = str(p, 'method');
  const dryRun = p.values['dry-run'] === true;
  if (dryRun && !method) throw new UsageError('--dry-run needs --method (which method to plan)', inspectHelp);
  if (listModels().includes(target)) return inspectModel(target, method, keyValues(p, 'opt', inspectHelp), str(p, 'classes'), json, dryRun);
  if (method) throw new UsageError('--method applies only to a model name', inspectHelp);
  if (!existsSync(target)) throw new Error(`'${target}' is neither a model name (${listModels().join(', ')}) nor an existing file or directory`);
  if (statSync(target).isDirectory()) {
    if (existsSync(join(target, 'delta.json'))) return inspectDelta(target, json);
    if (existsSync(join(target, 'config.json'))) return inspectRun(target, json);
    throw new Error(`${target}: a directory, but neither a delta (delta.json) nor a run (config.json)`);
  }
  return inspectWeights(target, json);
}

function inspectModel(name: string, method: string | undefined, options: Record<string, unknown>, classes: string | undefined, json: boolean, dryRun = false): void {
  const model = withoutInitialisation(() => createModel(name));
  try {
    const total = model.numParameters();
    const children = [...model.namedChildren()].map(([n, m]) => [n, m.numParameters()] as const);
    const blocks = model.blocks();
    if (!method) {
      out(json, { model: name, family: model.config.family, parameters: total, children: Object.fromEntries(children), blocks }, [
        `${name} (${model.config.family}): ${count(total)} parameters, input ${model.config.inputSize.join('x')}, classifier '${model.config.classifier}'`,
        ...children.map(([n, c]) => `  ${n.padEnd(12)} ${count(c).padStart(12)}`),
        `blocks (${blocks.length}): ${blocks.map((b) => `${b.name}[${b.channels}/${b.reduction}]`).join(' ')}`,
      ]);
      return;
    }
    const numClasses = classes === undefined ? undefined : Number(classes);
    if (numClasses !== undefined && !(Number.isInteger(numClasses) && numClasses > 0)) throw new UsageError(`--classes must be a positive integer, got '${classes}'`, inspectHelp);
    if (dryRun) return printPlan(planDelta(model, { method, ...(numClasses ? { numClasses } : {}), ...options }), json);
    const delta = applyDelta(model, { method, ...(numClasses ? { numClasses } : {}), ...options });
    try {
      const s = delta.summary();
      out(json, { ...s, config: delta.config }, [
        `${method} on ${name}: ${count(s.trainable)} of ${count(s.total)} parameters train (${s.percent.toFixed(2)}%); delta ${mib(s.bytes)}`,
        `config: ${JSON.stringify(delta.config)}`,
        ...Object.entries(s.byModuleType).map(([t, n]) => `  ${t.padEnd(20)} ${count(n).padStart(12)}`),
      ]);
    } finally {
      delta.dispose();
    }
  } finally {
    model.dispose();
  }
}

const LISTED = 40;
const listed = <T>(items: T[], line: (item: T) => string): string[] => [
  ...items.slice(0, LISTED).map(line),
  ...(items.length > LISTED ? [`  ... ${items.length - LISTED} more (--json lists all)`] : []),
];

function printPlan(plan: DeltaPlan, json: boolean): void {
  out(json, plan, [
    `${plan.method} on ${plan.model} (dry run): adds ${plan.added.length} module${plan.added.length === 1 ? '' : 's'}, trains ${plan.trainedBase.length} base parameter${plan.trainedBase.length === 1 ? '' : 's'} and the head`,
    `config: ${JSON.stringify(plan.config)}`,
    ...(plan.added.length ? ['adds:', ...listed(plan.added, (a) => `  ${a.name.padEnd(44)} ${a.type.padEnd(16)} ${count(a.parameters).padStart(10)}  in ${a.owner || 'the model'}`)] : []),
    ...(plan.trainedBase.length ? ['trains from the base:', ...listed(plan.trainedBase, (n) => `  ${n}`)] : []),
    `head: ${plan.head.path}, ${plan.head.classes} classes (${plan.head.fresh ? 'new' : "copied from the model's"})`,
    `trainable: ${count(plan.trainable)} of ${count(plan.total)} parameters (${plan.percent.toFixed(2)}%)`,
  ]);
}

const kindNames = (kinds: readonly string[]) => kinds.map((k) => (k === 'cnn' ? 'CNN' : 'transformer')).join(', ');

/** The method registry as a Markdown table (the README's method table is this output). */
export function methodTable(): string {
  const rows = listMethods().map((m) => methodFacts(m));
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  return [
    '| method | what trains | applies to | mergeable | identity at init | default lr | options |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((f) =>
      `| \`${f.name}\` | ${cell(f.description)} | ${kindNames(f.kinds)} | ${f.mergeable ? 'yes' : 'no'} | ${f.identityAtInit ? 'yes' : 'no'} | ${f.defaultLr} | ${f.options.map((o) => `\`${o.name}\``).join(', ') || '—'} |`,
    ),
  ].join('\n');
}

function inspectMethods(json: boolean, markdown: boolean): void {
  if (markdown) {
    console.log(methodTable());
    return;
  }
  const facts = listMethods().map((m) => methodFacts(m));
  out(json, facts, facts.flatMap((f) => [
    `${f.name}: ${f.description}`,
    `  applies to ${kindNames(f.kinds)}; ${f.mergeable ? 'mergeable' : 'not mergeable'}; ${f.identityAtInit ? 'identity at init' : 'not the identity at init'}; default lr ${f.defaultLr}`,
    ...f.options.map((o) => `  --opt ${o.name}=...  ${o.doc} (default ${o.default})`),
  ]));
}

function inspectDelta(dir: string, json: boolean): void {
  const m = readDeltaManifest(dir);
  const header = inspectSafetensors(join(dir, 'delta.safetensors'));
  const params = header.entries.reduce((s, e) => s + e.shape.reduce((a, b) => a * b, 1), 0);
  const sizes = fileSizes(dir);
  out(json, { ...m, elements: params, files: sizes }, [
    `delta: ${m.method} on ${m.model} (${m.numClasses} classes${m.classes ? `: ${m.classes.slice(0, 10).join(', ')}${m.classes.length > 10 ? ', ...' : ''}` : ''})`,
    `config: ${JSON.stringify(m.config)}`,
    `base: ${m.base.weightsFile ?? '(random init)'}${m.base.sha256 ? ` sha256 ${m.base.sha256.slice(0, 16)}...` : ''}`,
    `tensors: ${m.tensors}, ${count(params)} elements, ${mib(m.bytes)}`,
    `files: ${Object.entries(sizes).map(([f, s]) => `${f} ${mib(s)}`).join(', ')}`,
    `saved by deltatune ${m.library} at ${m.createdAt}`,
  ]);
}

function inspectRun(dir: string, json: boolean): void {
  const config = readRunConfig(dir);
  const summary = existsSync(join(dir, 'summary.json')) ? readRunSummary(dir) : null;
  const metricsPath = join(dir, 'metrics.jsonl');
  const history = existsSync(metricsPath)
    ? readTextFile(metricsPath, { maxBytes: INPUT_LIMITS.manifestBytes, what: 'metrics log' }).split('\n').filter(Boolean).map((line, i) => {
        try {
          return validate(epochLine, JSON.parse(line), `${metricsPath}:${i + 1}`, 'metrics line');
        } catch (err) {
          throw new Error(err instanceof SyntaxError ? `${metricsPath}:${i + 1}: not valid JSON: ${err.message}` : (err as Error).message);
        }
      })
    : [];
  out(json, { config, summary, history }, [
    `run ${dir}: ${String(config.method ?? config.tune?.method)} on ${String(config.model ?? config.tune?.model)}${summary ? '' : ' (not finished)'}`,
    ...history.map((r) => `  epoch ${r.epoch + 1}: train loss ${r.trainLoss.toFixed(4)}${r.val ? `, val top-1 ${r.val.top1.toFixed(2)}%` : ''}`),
    ...(existsSync(join(dir, 'best', 'delta.json')) ? [`best delta: ${join(dir, 'best')} (${mib(statSync(join(dir, 'best', 'delta.safetensors')).size)})`] : []),
  ]);
}

const epochLine = z.looseObject({ epoch: z.number().int().min(0), trainLoss: finite(), val: z.looseObject({ top1: finite() }).optional() });

function inspectWeights(file: string, json: boolean): void {
  const ext = extname(file).toLowerCase();
  let entries: { name: string; dtype: string; shape: number[] }[];
  if (ext === '.safetensors') {
    entries = inspectSafetensors(file).entries.map((e) => ({ name: e.name, dtype: e.dtype, shape: e.shape }));
  } else {
    const state = loadStateDict(file);
    entries = [...state].map(([name, t]) => ({ name, dtype: t.dtype, shape: [...t.shape] }));
    noGrad(() => state.forEach((t) => t.dispose()));
  }
  const elements = entries.reduce((s, e) => s + e.shape.reduce((a, b) => a * b, 1), 0);
  const dtypes = [...new Set(entries.map((e) => e.dtype))];
  out(json, { file, bytes: statSync(file).size, tensors: entries.length, elements, dtypes, entries }, [
    `${file}: ${entries.length} tensors, ${count(elements)} elements (${dtypes.join(', ')}), ${mib(statSync(file).size)}`,
    ...entries.slice(0, 8).map((e) => `  ${e.name} ${e.dtype} [${e.shape.join(', ')}]`),
    ...(entries.length > 8 ? [`  ... ${entries.length - 8} more`] : []),
  ]);
}
