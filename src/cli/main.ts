#!/usr/bin/env node
// The `deltatune` command: a thin layer over the public API, one file per sub-command. The
// environment is checked before anything loads: command modules (and with them libtorch) are
// imported only once a command is known, so `deltatune --help` and a bad variable load none.
import { packageVersion } from '../version.js';
import { ReportedFailure, UsageError } from './errors.js';
import { DECIMAL, shown } from './args.js'; // no libtorch behind these two

const HELP = `Usage: deltatune <command> [options]

Commands:
  demo                     pretrain a small backbone, delta-tune it three ways, print a table (offline)
  train                    delta-tune a model on your images; writes a run directory
  eval                     accuracy of a saved delta on a dataset (top-1, top-5, per class, confusion)
  predict                  top-k labels for image files from a saved delta
  inspect                  what a model, weights file, delta or run holds (parameters, trainable %, sizes)
  merge                    fold a mergeable delta into its base and write a plain checkpoint
  export                   the tuned model as ONNX (Node, browsers; --web for a page) or a PEFT adapter
  serve                    an HTTP server for many deltas over one base (batching, hot loading, metrics)
  compare                  every method under one budget and several seeds: table, plots, HTML report
  ablate-scales            Mona's filter-scale ablation under one budget: table, plots, HTML report
  weights list             pretrained weights known by name (torchvision, timm on the HF hub) and the cache
  weights fetch NAME       download named weights into the cache (resumable, sha256-checked)
  weights convert IN OUT   convert a .pth/.pt checkpoint to .safetensors (no code from the file runs)

Run 'deltatune <command> --help' for a command's options; 'deltatune --version' for the version.`;

type Run = (argv: string[]) => void | Promise<void>;

const commands: Record<string, () => Promise<Run>> = {
  demo: async () => (await import('./demo.js')).runDemo,
  train: async () => (await import('./train.js')).runTrain,
  eval: async () => (await import('./eval.js')).runEval,
  predict: async () => (await import('./predict.js')).runPredict,
  inspect: async () => (await import('./inspect.js')).runInspect,
  merge: async () => (await import('./merge.js')).runMerge,
  export: async () => (await import('./export.js')).runExport,
  serve: async () => (await import('./serve.js')).runServe,
  compare: async () => (await import('./compare.js')).runCompare,
  'ablate-scales': async () => (await import('./compare.js')).runAblate,
  weights: async () => (await import('./weights.js')).runWeights,
};

/**
 * Environment variables the library reads while it loads, checked as flags are (plain decimal
 * digits, a bounded range) so that a bad value is one named line and exit code 2 rather than a
 * stack trace from a module's top level. src/engine/runtime.ts applies the same DELTATUNE_THREADS
 * rule for API users.
 */
const ENVIRONMENT: { name: string; pattern: RegExp; min: number; max: number; what: string }[] = [
  { name: 'DELTATUNE_THREADS', pattern: /^\d+$/, min: 1, max: 1024, what: 'a whole number from 1 to 1024' },
  { name: 'DELTATUNE_CPU_CACHE_MB', pattern: DECIMAL, min: 0, max: 1e9, what: 'a number of MiB from 0 to 1000000000' },
];

/** The first environment problem as a message, or undefined. Unset and empty variables are fine. */
function environmentProblem(env: NodeJS.ProcessEnv): string | undefined {
  for (const { name, pattern, min, max, what } of ENVIRONMENT) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    const v = pattern.test(raw) ? Number(raw) : NaN;
    if (!(v >= min && v <= max)) return `${name} must be ${what}, got '${shown(raw)}'`;
  }
  return undefined;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    console.log(HELP);
    return 0;
  }
  if (command === '--version' || command === '-V' || command === 'version') {
    console.log(packageVersion());
    return 0;
  }
  const load = Object.hasOwn(commands, command) ? commands[command] : undefined;
  if (!load) throw new UsageError(`unknown command '${command}'`, HELP);
  const run = await load();
  await run(rest);
  return 0;
}

const problem = environmentProblem(process.env);
if (problem) {
  console.error(`deltatune: ${problem}`);
  process.exit(2);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    // (the engine's own messages already start with 'deltatune: ')
    if (err instanceof ReportedFailure) process.exit(err.exitCode);
    const message = (err instanceof Error ? err.message : String(err)).replace(/^deltatune: /, '');
    // One rank of several names itself, so the launcher's and the scheduler's logs tell ranks apart.
    const rank = Number(process.env.WORLD_SIZE) > 1 && process.env.RANK ? ` [rank ${process.env.RANK}]` : '';
    // One clear line (libtorch/io messages may carry detail lines; keep the first few).
    if (err instanceof UsageError) {
      const command = process.argv[2] && Object.hasOwn(commands, process.argv[2]) ? ` ${process.argv[2]}` : '';
      console.error(`deltatune${rank}: ${message} (see 'deltatune${command} --help')`);
      process.exit(2);
    }
    console.error(`deltatune${rank}: ${message.split('\n').slice(0, 6).join('\n  ')}`);
    process.exit(1);
  },
);
