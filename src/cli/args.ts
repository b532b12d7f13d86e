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
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true }) as Parsed;
  } catch (err) {
    // parseArgs' messages are long and mention internals; keep the part that names the flag.
    const message = (err as Error).message.split('. ')[0]!.replace(/^Unknown option/, 'unknown option');
    throw new UsageError(message, help);
  }
  if (parsed.values.help) {
    console.log(help);
    return null;
  }
  return parsed;
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

export function num(p: Parsed, name: string, help: string, check: { integer?: boolean; min?: number; max?: number } = {}): number | undefined {
  const raw = str(p, name);
  if (raw === undefined) return undefined;
  const v = Number(raw);
  const { integer = false, min = -Infinity, max = Infinity } = check;
  if (raw.trim() === '' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
    const range = `${min === -Infinity ? '' : `≥ ${min}`}${min !== -Infinity && max !== Infinity ? ' and ' : ''}${max === Infinity ? '' : `≤ ${max}`}`;
    throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'}${range ? ` ${range}` : ''}, got '${raw}'`, help);
  }
  return v;
}

export function choice<T extends string>(p: Parsed, name: string, choices: readonly T[], help: string): T | undefined {
  const raw = str(p, name);
  if (raw === undefined) return undefined;
  if (!choices.includes(raw as T)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got '${raw}'`, help);
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
    if (eq <= 0) throw new UsageError(`--${name} expects key=value, got '${item}'`, help);
    const key = item.slice(0, eq);
    const value = item.slice(eq + 1);
    out[key] = typed(value);
  }
  return out;
}

function typed(value: string): unknown {
  if (value === 'true' || value === 'false') return value === 'true';
  if (value !== '' && Number.isFinite(Number(value))) return Number(value);
  if (value.includes(',')) {
    const parts = value.split(',').map((s) => s.trim());
    return parts.every((s) => s !== '' && Number.isFinite(Number(s))) ? parts.map(Number) : parts;
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
