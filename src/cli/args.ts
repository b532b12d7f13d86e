// Flag parsing shared by the sub-commands: node's parseArgs (strict), with every mistake turned
// into a one-line UsageError that names the flag.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export function parse(argv: string[], options: Options, help: string, allowPositionals = false): Parsed | null {
  let parsed: Parsed;
  try {
    parsed = parseArgs({ args: joinNegativeValues(argv, options), options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true }) as Parsed;
  } catch (err) {
    // parseArgs' messages are long, several lines, and mention internals; keep the first sentence,
    // which names the flag (and for a value that starts with a dash, how to pass one).
    let message = (err as Error).message.split('\n')[0]!.split('. ')[0]!.replace(/\.$/, '').replace(/^Unknown option/, 'unknown option');
    const ambiguous = /^Option '(--[^']+)' argument is ambiguous$/.exec(message);
    if (ambiguous) message = `option '${ambiguous[1]}' is missing its value (one that starts with a dash is written ${ambiguous[1]}=-VALUE)`;
    throw new UsageError(message, help);
  }
  if (parsed.values.help) {
    console.log(help);
    return null;
  }
  return parsed;
}

/**
 * `--lr -1` as `--lr=-1`: parseArgs refuses a value that starts with a dash as ambiguous, which
 * hides the real message (`--lr must be a number ≥ 0, got '-1'`). Only for string options, only
 * for a next token that starts like a negative number, and not after `--`.
 */
function joinNegativeValues(argv: readonly string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const name = arg.startsWith('--') && !arg.includes('=') ? arg.slice(2) : undefined;
    if (name !== undefined && Object.hasOwn(options, name) && options[name]!.type === 'string' && i + 1 < argv.length) {
      const next = argv[++i]!;
      // Any other next token is this option's value (or parseArgs' error about it), never an option of its own.
      if (/^-\.?\d/.test(next)) out.push(`${arg}=${next}`);
      else out.push(arg, next);
      continue;
    }
    out.push(arg);
  }
  return out;
}

/** The object without its undefined values (so defaults further down apply and nothing prints as undefined). */
export function drop<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export function str(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function required(p: Parsed, name: string, help: string): string {
  const v = str(p, name);
  if (v === undefined || v === '') throw new UsageError(`--${name} is required`, help);
  return v;
}

/** A flag's (or variable's) value as it appears in a message: one line (control characters escaped), at most 40 characters. */
export function shown(raw: string): string {
  return JSON.stringify(raw.length > 40 ? `${raw.slice(0, 40)}…` : raw).slice(1, -1);
}

/** Plain decimal numbers: optional sign, digits, optional fraction, optional exponent ('1e-3'). */
export const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * The most a numeric flag takes, whatever its command says (a command's own `max` may only be
 * lower): counts that would otherwise run for ages or allocate without bound. Flags not listed are
 * bounded by |value| ≤ GENERIC_CAP.
 */
export const FLAG_CAPS: Readonly<Record<string, number>> = {
  epochs: 10_000,
  'pretrain-epochs': 10_000,
  'warmup-epochs': 10_000,
  batch: 65_536,
  'image-size': 4096,
  workers: 256,
  accumulate: 65_536,
  'checkpoint-every': 1e9,
  patience: 10_000,
  'top-k': 1_000_000,
  // Also the bound of each item of compare's --seeds list.
  seed: 2 ** 31 - 1,
  'nproc-per-node': 1024,
  nnodes: 65_536,
  'node-rank': 65_535,
  'master-port': 65_535,
  opset: 17,
  port: 65_535,
  'max-batch': 4096,
  'max-wait-ms': 60_000,
  'max-queue': 1_000_000,
  'request-timeout-ms': 3_600_000,
  'max-body-bytes': 2 ** 31,
  'max-image-pixels': 1e9,
  'max-images-per-request': 1024,
  threads: 1024,
};
export const GENERIC_CAP = 1e15;

/**
 * A numeric flag: a plain decimal number (no hex, binary, separators, spaces or Infinity), an integer
 * when asked, within [min, max] and within the flag's cap (FLAG_CAPS, else ±GENERIC_CAP). The message
 * names the flag, the bounds the command set (and a cap when that is what the value broke) and the value.
 */
export function num(p: Parsed, name: string, help: string, check: { integer?: boolean; min?: number; max?: number } = {}): number | undefined {
  const raw = str(p, name);
  if (raw === undefined) return undefined;
  const v = DECIMAL.test(raw) ? Number(raw) : NaN;
  const { integer = false } = check;
  const min = Math.max(check.min ?? -GENERIC_CAP, -GENERIC_CAP);
  const max = Math.min(check.max ?? Infinity, FLAG_CAPS[name] ?? GENERIC_CAP);
  if (!Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
    const bounds = [
      ...(check.min !== undefined || v < min ? [`≥ ${min}`] : []),
      ...(check.max !== undefined || v > max ? [`≤ ${max}`] : []),
    ];
    throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'}${bounds.length ? ` ${bounds.join(' and ')}` : ''}, got '${shown(raw)}'`, help);
  }
  return v;
}

export function choice<T extends string>(p: Parsed, name: string, choices: readonly T[], help: string): T | undefined {
  const raw = str(p, name);
  if (raw === undefined) return undefined;
  if (!choices.includes(raw as T)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got '${shown(raw)}'`, help);
  return raw as T;
}

/** `--memory-format auto|channels-last|contiguous` as TuneOptions.channelsLast (undefined: the model's default). */
export function memoryFormat(p: Parsed, help: string): boolean | undefined {
  const format = choice(p, 'memory-format', ['auto', 'channels-last', 'contiguous'] as const, help);
  return format === undefined || format === 'auto' ? undefined : format === 'channels-last';
}

/** `--opt key=value` pairs: numbers, booleans, and comma lists of numbers become typed values. */
export function keyValues(p: Parsed, name: string, help: string): Record<string, unknown> {
  const raw = p.values[name];
  const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? [raw] : [];
  const out: Record<string, unknown> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`--${name} expects key=value, got '${shown(item)}'`, help);
    const key = item.slice(0, eq);
    const value = item.slice(eq + 1);
    out[key] = typed(value);
  }
  return out;
}

/** A number when `s` is a plain decimal (as num() takes them; '0x10' and 'Infinity' stay strings). */
function decimal(s: string): number | undefined {
  const v = DECIMAL.test(s) ? Number(s) : NaN;
  return Number.isFinite(v) ? v : undefined;
}

function typed(value: string): unknown {
  if (value === 'true' || value === 'false') return value === 'true';
  const v = decimal(value);
  if (v !== undefined) return v;
  if (value.includes(',')) {
    const parts = value.split(',').map((s) => s.trim());
    return parts.every((s) => decimal(s) !== undefined) ? parts.map(Number) : parts;
  }
  if (value.startsWith('[') || value.startsWith('{')) {
    try {
      return JSON.parse(value);
    } catch {
      /* a plain string after all */
    }
  }
  return value;
}

/** --quiet, else --progress auto|bar|lines (default auto), for commands whose output is not JSON lines of progress. */
export function progressMode(p: Parsed, help: string): 'auto' | 'bar' | 'lines' | 'quiet' {
  if (p.values.quiet === true) {
    if (p.values.progress !== undefined) throw new UsageError('--quiet and --progress contradict each other; give one', help);
    return 'quiet';
  }
  return choice(p, 'progress', ['auto', 'bar', 'lines'] as const, help) ?? 'auto';
}
