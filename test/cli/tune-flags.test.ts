// The flags train shares with compare and ablate-scales come from one table (src/cli/tune-flags.ts):
// every one is in each command's help, each command takes it, and a bad value gets the same
// message from each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { TUNE_FLAGS, TUNE_FLAG_NAMES, tuneFlagHelp } from '../../src/cli/tune-flags.js';
import { runTrain, trainHelp } from '../../src/cli/train.js';
import { ablateHelp, compareHelp, runAblate, runCompare } from '../../src/cli/compare.js';
import { UsageError } from '../../src/cli/errors.js';
import { ROOT } from '../helpers.js';

const HELPS = { train: trainHelp, compare: compareHelp, 'ablate-scales': ablateHelp };
const RUNS = { train: runTrain, compare: runCompare, 'ablate-scales': runAblate };

test("every shared flag is in train's, compare's and ablate-scales' help, with the same description", () => {
  assert.ok(TUNE_FLAG_NAMES.length >= 14);
  for (const name of TUNE_FLAG_NAMES) {
    // A command's note (a default where the commands differ) only extends the last line.
    const lines = tuneFlagHelp([name]);
    assert.ok(lines.startsWith(`  --${name}`), lines);
    for (const [command, help] of Object.entries(HELPS)) {
      assert.ok(help.includes(lines), `${command} --help lacks --${name} as the table declares it:\n${lines}`);
    }
  }
  // The defaults that differ are each command's own.
  assert.match(trainHelp, /--epochs N +passes over the training images \(default 10\)/);
  assert.match(compareHelp, /--epochs N +passes over the training images \(default 3\)/);
  assert.match(trainHelp, /--lr F +peak learning rate \(default 1e-3\)/);
  assert.match(compareHelp, /--lr F +peak learning rate for every method \(default: per-method rates, see the report\)/);
});

/** The UsageError message a command gives for `argv` (none: undefined). */
async function usageMessage(command: keyof typeof RUNS, argv: string[]): Promise<string> {
  try {
    await RUNS[command](argv);
  } catch (err) {
    assert.ok(err instanceof UsageError, `${command} ${argv.join(' ')}: ${(err as Error).stack}`);
    return err.message;
  }
  assert.fail(`${command} ${argv.join(' ')} did not fail`);
}

test('a bad value of a shared flag gets the same message from train, compare and ablate-scales', async () => {
  const base = ['--model', 'resnet18', '--data', join(ROOT, 'nowhere')];
  const cases: [string[], RegExp][] = [
    [['--model', 'resnet18'], /^--data is required$/],
    [['--data', 'x'], /^--model is required$/],
    [[...base, '--val-split', '0.95'], /^--val-split must be a number ≥ 0 and ≤ 0\.9, got '0\.95'$/],
    [[...base, '--image-size', '4'], /^--image-size must be an integer ≥ 8 and ≤ 2048, got '4'$/],
    [[...base, '--augment', 'lots'], /^--augment must be one of default, none, got 'lots'$/],
    [[...base, '--memory-format', 'nhwc'], /^--memory-format must be one of auto, channels-last, contiguous, got 'nhwc'$/],
    [[...base, '--frozen-precision', 'fp16'], /^--frozen-precision must be one of float32, bfloat16, got 'fp16'$/],
    [[...base, '--epochs', '0'], /^--epochs must be an integer ≥ 1, got '0'$/],
    [[...base, '--epochs', '1e12'], /^--epochs must be an integer ≥ 1 and ≤ 10000, got '1e12'$/],
    [[...base, '--batch', '0'], /^--batch must be an integer ≥ 1 and ≤ 65536, got '0'$/],
    [[...base, '--lr', '-1'], /^--lr must be a number ≥ 0, got '-1'$/],
    [[...base, '--warmup-epochs', 'soon'], /^--warmup-epochs must be a number ≥ 0, got 'soon'$/],
    [[...base, '--cache-frozen-prefix=yes'], /^option '--cache-frozen-prefix' does not take an argument$/i],
    // A flag the table declares as boolean is taken by each command (the next error is another's).
    [['--model', 'resnet18', '--cache-frozen-prefix'], /^--data is required$/],
  ];
  for (const [argv, pattern] of cases) {
    const messages = await Promise.all((Object.keys(RUNS) as (keyof typeof RUNS)[]).map((c) => usageMessage(c, argv)));
    assert.match(messages[0]!, pattern, argv.join(' '));
    assert.deepEqual(messages, messages.map(() => messages[0]), argv.join(' '));
  }
});

test('each table entry reads into the TuneOptions field its help describes', () => {
  // The parseArgs type matches the help: a boolean flag shows no value.
  for (const name of TUNE_FLAG_NAMES) {
    const { type, usage } = TUNE_FLAGS[name];
    assert.equal(usage.includes(' '), type === 'string', `--${name}: ${usage}`);
  }
});
