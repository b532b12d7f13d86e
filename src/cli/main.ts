#!/usr/bin/env node
// The `deltatune` command: a thin layer over the public API, one file per sub-command.
import { runWeights, weightsHelp } from './weights.js';
import { UsageError } from './errors.js';

const HELP = `Usage: deltatune <command> [options]

Commands:
  weights convert IN OUT   convert a .pth/.pt checkpoint to .safetensors (no code from the file runs)

Run 'deltatune <command> --help' for a command's options.`;

const commands: Record<string, { run: (argv: string[]) => void | Promise<void>; help: string }> = {
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
    console.error(`deltatune: ${message.split('\n').slice(0, 6).join('\n  ')}`);
    if (err instanceof UsageError) {
      console.error("Run with --help for usage.");
      process.exit(2);
    }
    process.exit(1);
  },
);
