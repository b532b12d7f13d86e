// Bounded CLI inputs: numeric flags take plain decimals only, within the command's bounds and a cap
// per flag (FLAG_CAPS, else ±GENERIC_CAP); `--lr -1` reaches the range check instead of parseArgs'
// "ambiguous"; and environment variables are checked before anything loads libtorch, so a bad
// DELTATUNE_THREADS is one named line and exit code 2, even for `deltatune --help`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { FLAG_CAPS, GENERIC_CAP, keyValues, num, parse, type Parsed } from '../../src/cli/args.js';
import { UsageError } from '../../src/cli/errors.js';
import { ROOT, runWithLibrary } from '../helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, DELTATUNE_THREADS: '2', ...env } });

const given = (values: Record<string, string>): Parsed => ({ values, positionals: [] });
/** num() on one value, or the UsageError's message. */
function tryNum(name: string, raw: string, check: Parameters<typeof num>[3] = {}): number | string {
  try {
    return num(given({ [name]: raw }), name, 'help', check)!;
  } catch (err) {
    assert.ok(err instanceof UsageError, String(err));
    return err.message;
  }
}

test('num(): plain decimals only (sign, digits, fraction, exponent)', () => {
  const accepted: [string, number][] = [
    ['5', 5], ['+5', 5], ['-5', -5], ['0', 0], ['1e-3', 0.001], ['1E3', 1000], ['.5', 0.5], ['5.', 5], ['1.5e+2', 150], ['007', 7], ['-0.25', -0.25],
  ];
  for (const [raw, v] of accepted) assert.equal(tryNum('lr', raw), v, raw);
  const refused = ['0x10', '0X10', '0b1', '0o7', '1_000', 'Infinity', '-Infinity', 'NaN', ' 5', '5 ', '5abc', '', '1e', 'e5', '--5', '.', '+', '5,5', '1e1.5', '١٢'];
  for (const raw of refused) {
    const message = tryNum('lr', raw);
    assert.equal(typeof message, 'string', `'${raw}' was accepted as ${message}`);
    assert.match(message as string, /^--lr must be a number, got '/, raw);
  }
  // Integers when asked; the message names the flag, the command's bounds and the value, on one line.
  assert.equal(tryNum('epochs', '1e3', { integer: true, min: 1 }), 1000);
  assert.equal(tryNum('epochs', '2.0', { integer: true, min: 1 }), 2);
  assert.equal(tryNum('epochs', '2.5', { integer: true, min: 1 }), "--epochs must be an integer ≥ 1, got '2.5'");
  assert.equal(tryNum('epochs', 'abc', { integer: true, min: 1 }), "--epochs must be an integer ≥ 1, got 'abc'");
  assert.equal(tryNum('epochs', '0x10', { integer: true, min: 1 }), "--epochs must be an integer ≥ 1, got '0x10'");
  assert.equal(tryNum('lr', '-1', { min: 0 }), "--lr must be a number ≥ 0, got '-1'");
  assert.equal(tryNum('val-split', '0.95', { min: 0, max: 0.9 }), "--val-split must be a number ≥ 0 and ≤ 0.9, got '0.95'");
  assert.equal(tryNum('lr', '1e400'), "--lr must be a number ≤ 1000000000000000, got '1e400'");
  assert.equal(tryNum('lr', '5\n6'), "--lr must be a number, got '5\\n6'");
  assert.equal(tryNum('lr', 'x'.repeat(100)), `--lr must be a number, got '${'x'.repeat(40)}…'`);
  assert.equal(num(given({}), 'lr', 'help'), undefined, 'an absent flag stays undefined');
});

test('num(): every flag has a maximum, from FLAG_CAPS or the generic ±1e15; the cap is named when broken', () => {
  const caps: [string, number][] = [
    ['epochs', 10_000], ['batch', 65_536], ['image-size', 4096], ['workers', 256], ['accumulate', 65_536],
    ['checkpoint-every', 1e9], ['patience', 10_000], ['seed', 2 ** 31 - 1], ['pretrain-epochs', 10_000], ['top-k', 1e6],
  ];
  for (const [name, cap] of caps) {
    assert.equal(FLAG_CAPS[name], cap, name);
    assert.equal(tryNum(name, String(cap), { integer: true, min: 0 }), cap, `${name} at its cap`);
    assert.equal(tryNum(name, String(cap + 1), { integer: true, min: 0 }), `--${name} must be an integer ≥ 0 and ≤ ${cap}, got '${cap + 1}'`);
  }
  assert.equal(tryNum('epochs', '1e12', { integer: true, min: 1 }), "--epochs must be an integer ≥ 1 and ≤ 10000, got '1e12'");
  // A command's own max may only be lower than the cap.
  assert.equal(tryNum('image-size', '3000', { integer: true, min: 8, max: 2048 }), "--image-size must be an integer ≥ 8 and ≤ 2048, got '3000'");
  assert.equal(tryNum('workers', '300', { integer: true, min: 1, max: 100_000 }), "--workers must be an integer ≥ 1 and ≤ 256, got '300'");
  // Flags not in the table: |v| ≤ 1e15.
  assert.equal(GENERIC_CAP, 1e15);
  assert.equal(tryNum('lr', '1e15', { min: 0 }), 1e15);
  assert.equal(tryNum('lr', '1e16', { min: 0 }), "--lr must be a number ≥ 0 and ≤ 1000000000000000, got '1e16'");
  assert.equal(tryNum('shift', '-1e16'), "--shift must be a number ≥ -1000000000000000, got '-1e16'");
});

test('FLAG_CAPS names every integer flag the commands read with num()', () => {
  const dir = join(ROOT, 'src', 'cli');
  const flags = new Set<string>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    for (const m of readFileSync(join(dir, file), 'utf8').matchAll(/num\(p, '([\w-]+)', \w+, \{([^}]*)\}/g)) {
      if (/integer: true/.test(m[2]!)) flags.add(m[1]!);
    }
  }
  assert.ok(flags.has('epochs') && flags.has('batch'), `found ${[...flags].join(', ')}`);
  for (const flag of flags) assert.ok(flag in FLAG_CAPS, `--${flag} is an integer flag without its own cap in FLAG_CAPS`);
});

test('parse(): `--flag -1` reaches the flag\'s own check; other dashes stay parseArgs\' business', () => {
  const options = { lr: { type: 'string' }, opt: { type: 'string', multiple: true }, quiet: { type: 'boolean' } } as const;
  const p = (argv: string[], positionals = false) => parse(argv, options, 'help', positionals)!;
  assert.equal(p(['--lr', '-1']).values.lr, '-1');
  assert.equal(p(['--lr', '-.5']).values.lr, '-.5');
  assert.equal(p(['--lr', '-1e-3', '--quiet']).values.lr, '-1e-3');
  assert.equal(p(['--lr=-2']).values.lr, '-2');
  assert.deepEqual(p(['--opt', '-3', '--opt', 'a=1']).values.opt, ['-3', 'a=1']);
  assert.throws(() => num(p(['--lr', '-1']), 'lr', 'help', { min: 0 }), (err: Error) => err instanceof UsageError && err.message === "--lr must be a number ≥ 0, got '-1'");
  // Not number-like: still refused (a forgotten value), on one line naming the flag and the way out.
  assert.throws(() => p(['--lr', '-x']), (err: Error) => err instanceof UsageError && err.message === "option '--lr' is missing its value (one that starts with a dash is written --lr=-VALUE)");
  // A boolean flag takes no value: '-1' after it is not joined to it.
  assert.throws(() => p(['--quiet', '-1']), (err: Error) => err instanceof UsageError && /unknown option '-1'/.test(err.message));
  // After '--' nothing is rewritten: '--lr' and '-1' are positionals there.
  assert.deepEqual(p(['--', '--lr', '-1'], true).positionals, ['--lr', '-1']);
  // The token after a string flag is its value (or parseArgs' complaint about it), never a flag of its own.
  assert.throws(() => p(['--lr', '5', '--opt', '--lr']), /^Error: option '--opt' is missing its value/);
});

test('keyValues(): --opt numbers are plain decimals too; anything else stays a string', () => {
  const p = given({}) as Parsed;
  p.values.opt = ['hidden=32', 'rate=1e-3', 'kernels=3,5,7', 'hex=0x10', 'big=Infinity', 'spaced= 5', 'flag=true', 'list=1, 2', 'mixed=1,a'];
  assert.deepEqual(keyValues(p, 'opt', 'help'), {
    hidden: 32, rate: 0.001, kernels: [3, 5, 7], hex: '0x10', big: 'Infinity', spaced: ' 5', flag: true, list: [1, 2], mixed: ['1', 'a'],
  });
  p.values.opt = ['novalue\nnext'];
  assert.throws(() => keyValues(p, 'opt', 'help'), (err: Error) => err instanceof UsageError && err.message === "--opt expects key=value, got 'novalue\\nnext'");
});

/** Asserts one `deltatune: ...` line on stderr, no stack frames, and the exit code. */
function assertOneLine(r: ReturnType<typeof run>, code: number, message: RegExp, what: string): void {
  assert.equal(r.status, code, `${what}: ${r.stderr}`);
  assert.match(r.stderr.trim(), message, what);
  assert.match(r.stderr, /^deltatune: /, what);
  assert.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line, got ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `${what}: no stack trace`);
}

test('a bad DELTATUNE_THREADS: one line naming it and exit code 2, before any command or --help', () => {
  for (const value of ['abc', '0', '1025', ' 4', '4.0', '1e2', '0x10', '-1', '2\n3']) {
    for (const args of [['--help'], ['train', '--help'], ['inspect', 'resnet18']]) {
      const r = run(args, { DELTATUNE_THREADS: value });
      const what = `DELTATUNE_THREADS=${JSON.stringify(value)} deltatune ${args.join(' ')}`;
      assertOneLine(r, 2, /^deltatune: DELTATUNE_THREADS must be a whole number from 1 to 1024, got '/, what);
      assert.equal(r.stdout, '', `${what}: nothing else ran`);
    }
  }
  assertOneLine(run(['--help'], { DELTATUNE_THREADS: 'abc' }), 2, /DELTATUNE_THREADS must be a whole number from 1 to 1024, got 'abc'$/, 'abc');
  assertOneLine(run(['--help'], { DELTATUNE_THREADS: '2\n3' }), 2, /got '2\\n3'$/, 'a newline is shown escaped');
  assertOneLine(run(['--help'], { DELTATUNE_CPU_CACHE_MB: 'lots' }), 2, /DELTATUNE_CPU_CACHE_MB must be a number of MiB from 0 to 1000000000, got 'lots'/, 'cache');
  // Good and empty values are fine.
  for (const value of ['1', '3', '1024', '']) {
    const r = run(['--help'], { DELTATUNE_THREADS: value });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Usage: deltatune <command>/);
  }
});

test('the library keeps its own DELTATUNE_THREADS check for API users, with the same wording', () => {
  const bad = runWithLibrary('console.log("loaded");', { DELTATUNE_THREADS: '0x10' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /RangeError: DELTATUNE_THREADS must be a whole number from 1 to 1024, got '0x10'/);
  const good = runWithLibrary('console.log(lib.getNumThreads(), lib.defaultThreadCount());', { DELTATUNE_THREADS: '3' });
  assert.equal(good.status, 0, good.stderr);
  assert.equal(good.stdout.trim(), '3 3');
});

test('deltatune --help and an unknown command load no command module and no libtorch', { skip: !existsSync('/proc/self/maps') }, () => {
  const probe = (args: string[]) =>
    spawnSync(process.execPath, ['--input-type=module', '-e', `
      import { readFileSync } from 'node:fs';
      process.on('exit', () => console.error(/libtorch/.test(readFileSync('/proc/self/maps', 'utf8')) ? 'libtorch: loaded' : 'libtorch: not loaded'));
      process.argv = [process.argv[0], ${JSON.stringify(CLI)}, ...${JSON.stringify(args)}];
      await import(${JSON.stringify(CLI)});`], { encoding: 'utf8', env: { ...process.env, DELTATUNE_THREADS: '2' } });
  const help = probe(['--help']);
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^Usage: deltatune <command>/);
  assert.match(help.stderr, /libtorch: not loaded/);
  const unknown = probe(['frobnicate']);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /^deltatune: unknown command 'frobnicate' \(see 'deltatune --help'\)$/m);
  assert.match(unknown.stderr, /libtorch: not loaded/);
  // The control: a command does load it.
  const train = probe(['train', '--help']);
  assert.equal(train.status, 0, train.stderr);
  assert.match(train.stderr, /libtorch: loaded/);
});

test('deltatune: bad numeric flags and names of no command are one line and exit code 2', () => {
  const base = ['train', '--model', 'resnet18', '--data', join(ROOT, 'nowhere')];
  const cases: [string[], RegExp][] = [
    [[...base, '--epochs', '0x10'], /^deltatune: --epochs must be an integer ≥ 1, got '0x10' \(see 'deltatune train --help'\)$/],
    [[...base, '--epochs', '1e12'], /--epochs must be an integer ≥ 1 and ≤ 10000, got '1e12'/],
    [[...base, '--lr', '-1'], /--lr must be a number ≥ 0, got '-1'/],
    [[...base, '--lr', 'Infinity'], /--lr must be a number ≥ 0, got 'Infinity'/],
    [[...base, '--batch', '1_000'], /--batch must be an integer ≥ 1 and ≤ 65536, got '1_000'/],
    [[...base, '--seed', '4294967296'], /--seed must be an integer ≥ 0 and ≤ 2147483647, got '4294967296'/],
    [[...base, '--workers', ' 5'], /--workers must be an integer ≥ 1 and ≤ 256, got ' 5'/],
    [['toString'], /^deltatune: unknown command 'toString' \(see 'deltatune --help'\)$/],
    [['__proto__'], /unknown command '__proto__'/],
  ];
  for (const [args, message] of cases) assertOneLine(run(args), 2, message, args.join(' '));
});

test('deltatune --version prints the package version; a bare deltatune prints the help and exits 0', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    const r = run([flag]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), pkg.version);
  }
  const bare = run([]);
  assert.equal(bare.status, 0);
  assert.match(bare.stdout, /^Usage: deltatune <command>/);
});
