// The method registry: each delta method registers its facts (what it applies to, whether it
// merges, whether it starts as the identity, the learning rate it trains well with) and a typed
// option schema with one line of documentation per option. Tools, tests and docs read these facts
// instead of keeping their own lists.
import type { ModelKind, VisionModel } from '../../models/base.js';
import type { Delta } from './delta.js';
import type { DeltaBuilder } from './builder.js';

/** Options every method accepts. */
export interface CommonOptions {
  /** Output classes of the delta's own head (default: the model's). */
  numClasses?: number;
}

/** One option of a method: how a given value is checked, what it means, and its default. */
export interface OptionSpec<T> {
  /** One line for help texts and the README. */
  doc: string;
  /** Validates a user value; errors name the method, the key and the valid range. */
  parse(value: unknown, key: string, method: string): T;
  /**
   * The value when the option is not given: fixed, or chosen from the model and the options filled
   * before it (schema order), e.g. LoRA's alpha from its rank.
   */
  default: T | ((model: VisionModel, filled: Readonly<Record<string, unknown>>) => T);
  /** How the default reads in help when it depends on the model or another option (e.g. '8 on CNNs, 64 on transformers'). */
  defaultText?: string;
}

/** A method's options: exactly the keys of its config, each with its spec. */
export type OptionSchema<C extends object> = { [K in keyof C]-?: OptionSpec<C[K]> };

/** A delta-tuning method: one file, one registry line. */
export interface MethodSpec<C extends object = object> {
  name: string;
  /** One line for help texts. */
  description: string;
  /** The model kinds it applies to; applyDelta refuses others with a message naming the alternatives. */
  kinds: readonly ModelKind[];
  /** True when a freshly applied delta leaves the model's outputs unchanged (to float rounding). */
  identityAtInit: boolean;
  /** The AdamW learning rate it trains well with on small transfer tasks (compare and the demo use it). */
  defaultLr: number;
  options: OptionSchema<C>;
  /** Checks the options against the model once defaults are filled (e.g. stage indices in range). */
  validate?(config: C, model: VisionModel): void;
  /** Installs the method's modules and marks what trains, through the builder. */
  install(model: VisionModel, config: C, builder: DeltaBuilder): void;
  /** Folds the delta into the base weights; methods without it cannot merge, for `mergeRefusal`'s reason. */
  merge?: (model: VisionModel, config: C, delta: Delta) => void;
  mergeRefusal?: string;
}

/** What is known about a method, as data (for help, docs, tests and experiment tools). */
export interface MethodFacts {
  name: string;
  description: string;
  kinds: readonly ModelKind[];
  mergeable: boolean;
  identityAtInit: boolean;
  defaultLr: number;
  options: { name: string; doc: string; default: string }[];
}

const methods = new Map<string, MethodSpec<any>>();

export function registerMethod<C extends object>(spec: MethodSpec<C>): void {
  if (methods.has(spec.name)) throw new Error(`registerMethod: '${spec.name}' is already registered`);
  if (spec.kinds.length === 0) throw new Error(`registerMethod('${spec.name}'): 'kinds' lists no model kind`);
  if (!(spec.defaultLr > 0)) throw new Error(`registerMethod('${spec.name}'): defaultLr must be positive`);
  if (!spec.merge && !spec.mergeRefusal) throw new Error(`registerMethod('${spec.name}'): give merge, or mergeRefusal saying why it cannot merge`);
  methods.set(spec.name, spec);
}

/** Registered method names, by name, or in registration order (baselines first, as delta/index.ts imports them). */
export function listMethods(order: 'name' | 'registration' = 'name'): string[] {
  const names = [...methods.keys()];
  return order === 'name' ? names.sort() : names;
}

export function methodSpec(name: string): MethodSpec<any> {
  const spec = methods.get(name);
  if (!spec) throw new Error(`unknown delta method '${name}'; available: ${listMethods().join(', ')}`);
  return spec;
}

export function methodFacts(name: string): MethodFacts {
  const spec = methodSpec(name);
  return {
    name: spec.name,
    description: spec.description,
    kinds: spec.kinds,
    mergeable: spec.merge !== undefined,
    identityAtInit: spec.identityAtInit,
    defaultLr: spec.defaultLr,
    options: Object.entries<OptionSpec<unknown>>(spec.options).map(([key, o]) => ({ name: key, doc: o.doc, default: o.defaultText ?? describeDefault(o.default) })),
  };
}

function describeDefault(value: unknown): string {
  if (typeof value === 'function') return 'depends on the model';
  return JSON.stringify(value);
}

/** Methods that apply to a model kind, sorted. */
export function methodsFor(kind: ModelKind): string[] {
  return listMethods().filter((m) => methods.get(m)!.kinds.includes(kind));
}

/** Why `method` does not apply to `model`, or null when it does. */
export function inapplicableReason(method: string, model: { name: string; kind: ModelKind }): string | null {
  const spec = methodSpec(method);
  if (spec.kinds.includes(model.kind)) return null;
  const kinds = spec.kinds.map((k) => (k === 'cnn' ? 'CNNs' : 'transformers')).join(' and ');
  const plural = model.kind === 'cnn' ? 'CNNs' : 'transformers';
  return `${method}: applies to ${kinds}; ${model.name} is a ${model.kind === 'cnn' ? 'CNN' : 'transformer'}. For ${plural} use ${methodsFor(model.kind).join(', ')}.`;
}

/** Validates a user's raw options against the method's schema and fills the defaults. */
export function configureMethod<C extends object>(spec: MethodSpec<C>, raw: Record<string, unknown>, model: VisionModel): C {
  const known = Object.keys(spec.options);
  const unknown = Object.keys(raw).filter((k) => !known.includes(k));
  if (unknown.length) throw new Error(`${spec.name}: unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')}; valid: ${known.join(', ') || '(none)'}`);
  const config: Record<string, unknown> = {};
  for (const [key, option] of Object.entries<OptionSpec<unknown>>(spec.options)) {
    const given = raw[key];
    if (given !== undefined) config[key] = option.parse(given, key, spec.name);
    else config[key] = typeof option.default === 'function' ? (option.default as (m: VisionModel, f: Record<string, unknown>) => unknown)(model, config) : structuredClone(option.default);
  }
  spec.validate?.(config as C, model);
  return config as C;
}

// ---------------------------------------------------------------------------------------------
// Option types: each error names the method, the key and the valid range.

/** Validation helpers for method configs: each error names the key and the valid range. */
export const check = {
  positiveInt(value: unknown, key: string, method: string): number {
    // The cap keeps a typo (or a tampered file) from asking for a layer of astronomical width.
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0 || value > 1 << 20) {
      throw new Error(`${method}: '${key}' must be a positive integer ≤ ${1 << 20}, got ${JSON.stringify(value)}`);
    }
    return value;
  },
  number(value: unknown, key: string, method: string, min = -Infinity, max = Infinity): number {
    if (typeof value !== 'number' || !Number.isFinite(value) || !(value >= min && value <= max)) throw new Error(`${method}: '${key}' must be a number in [${min}, ${max}], got ${JSON.stringify(value)}`);
    return value;
  },
  boolean(value: unknown, key: string, method: string): boolean {
    if (typeof value !== 'boolean') throw new Error(`${method}: '${key}' must be true or false, got ${JSON.stringify(value)}`);
    return value;
  },
  targets(value: unknown, key: string, method: string): string | string[] {
    if (typeof value === 'string' || (Array.isArray(value) && value.every((v) => typeof v === 'string'))) return value as string | string[];
    throw new Error(`${method}: '${key}' must be a regular expression string or a list of module names, got ${JSON.stringify(value)}`);
  },
};

type Default<T> = T | ((model: VisionModel, filled: Readonly<Record<string, unknown>>) => T);

/** Option specs for the common value types. */
export const option = {
  positiveInt: (doc: string, value: Default<number>, defaultText?: string): OptionSpec<number> => ({ doc, default: value, defaultText, parse: check.positiveInt }),
  number: (doc: string, value: Default<number>, min = -Infinity, max = Infinity, defaultText?: string): OptionSpec<number> => ({
    doc, default: value, defaultText, parse: (v, k, m) => check.number(v, k, m, min, max),
  }),
  /** One of a few strings. */
  choice: <T extends string>(doc: string, values: readonly T[], value: T): OptionSpec<T> => ({
    doc, default: value, parse: (v, k, m) => {
      if (typeof v !== 'string' || !values.includes(v as T)) throw new Error(`${m}: '${k}' must be one of ${values.map((x) => `'${x}'`).join(', ')}, got ${JSON.stringify(v)}`);
      return v as T;
    },
  }),
  boolean: (doc: string, value: boolean): OptionSpec<boolean> => ({ doc, default: value, parse: check.boolean }),
  /** Module targets (PEFT's rules: a full-match regular expression, or names and dotted suffixes); null = the method's own rule. */
  targets: <T extends string | string[] | null>(doc: string, value: Default<T>, defaultText?: string): OptionSpec<T> => ({
    doc, default: value, defaultText, parse: (v, k, m) => (v === null && value === null ? null : check.targets(v, k, m)) as T,
  }),
  /** Modules to leave out of the targets (same forms as targets); null = none. */
  exclude: (): OptionSpec<string | string[] | null> => ({
    doc: 'modules left out of the targets: a full-match regular expression or a list of names/suffixes (PEFT exclude_modules)',
    default: null,
    parse: (v, k, m) => (v === null ? null : check.targets(v, k, m)),
  }),
};
