#!/usr/bin/env node
// The `deltatune` command: a thin layer over the public API, one file per sub-command.
import { runWeights, weightsHelp } from './weights.js';
import { runTrain, trainHelp } from './train.js';
import { runEval, evalHelp } from './eval.js';
import { runPredict, predictHelp } from './predict.js';
import { runInspect, inspectHelp } from './inspect.js';
import { runMerge, mergeHelp } from './merge.js';
import { runDemo, demoHelp } from './demo.js';
import { runCompare, compareHelp, runAblate, ablateHelp } from './compare.js';
import { UsageError } from './errors.js';

const HELP = `Usage: deltatune <command> [options]

Commands:
  demo                     pretrain a small backbone, delta-tune it three ways, print a table (offline)
  train                    delta-tune a model on your images; writes a run directory
  eval                     accuracy of a saved delta on a dataset (top-1, top-5, per class, confusion)
  predict                  top-k labels for image files from a saved delta
  inspect                  what a model, weights file, delta or run holds (parameters, trainable %, sizes)
  merge                    fold a mergeable delta into its base and write a plain checkpoint
  compare                  every method under one budget and several seeds: table, plots, HTML report
  ablate-scales            Mona's filter-scale ablation under one budget: table, plots, HTML report
  weights convert IN OUT   convert a .pth/.pt checkpoint to .safetensors (no code from the file runs)

Run 'deltatune <command> --help' for a command's options.`;

const commands: Record<string, { run: (argv: string[]) => void | Promise<void>; help: string }> = {
  demo: { run: runDemo, help: demoHelp },
  train: { run: runTrain, help: trainHelp },
  eval: { run: runEval, help: evalHelp },
  predict: { run: runPredict, help: predictHelp },
  inspect: { run: runInspect, help: inspectHelp },
  merge: { run: runMerge, help: mergeHelp },
  compare: { run: runCompare, help: compareHelp },
  'ablate-scales': { run: runAblate, help: ablateHelp },
  weights: { run: runWeights, help: weightsHelp },
};

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    console.log(HELP);
    return command ? 0 : 2;
  }
  const entry = commands[command];
  if (!entry) throw new UsageError(`unknown command '${command}'`, HELP);
  await entry.run(rest);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    // One clear line (libtorch/io messages may carry detail lines; keep the first few).
    if (err instanceof UsageError) {
      const command = process.argv[2] && process.argv[2] in commands ? ` ${process.argv[2]}` : '';
      console.error(`deltatune: ${message} (see 'deltatune${command} --help')`);
      process.exit(2);
    }
    console.error(`deltatune: ${message.split('\n').slice(0, 6).join('\n  ')}`);
    process.exit(1);
  },
);
