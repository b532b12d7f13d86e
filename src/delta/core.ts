// The shared machinery of delta-tuning: one method interface and registry, target matching over
// module names, structural freezing (frozen BatchNorm in eval mode), a per-delta head, reversible
// installation (so several deltas can share one base), the delta's own state dict, and merging.
// Shaped after Hugging Face PEFT (tuners_utils: targets are full-match regexes or name suffixes).
import { Tensor, keep, noGrad } from '../engine/index.js';
import { isFloating } from '../engine/dtype.js';
import { firstNonFinite } from '../io/state-dict.js';
import { Module } from '../nn/module.js';
import { BatchNorm2d, Conv2d, Linear } from '../nn/layers.js';
import { conv2d } from '../ops/conv.js';
import { batchNormAffine } from '../ops/norm.js';
import { Parameter } from '../nn/parameter.js';
import { normal_, truncNormal_, zero_ } from '../ops/init.js';
import type { VisionModel } from '../models/base.js';

/** Options every method accepts. */
export interface CommonOptions {
  /** Output classes of the delta's own head (default: the model's). */
  numClasses?: number;
}

/** A delta-tuning method: one file, one registry line. */
export interface MethodSpec<C extends object = object> {
  name: string;
  /** One line for help texts. */
  description: string;
  /** Validates a user config and fills per-family defaults; errors name the key and valid choices. */
  configure(raw: Record<string, unknown>, model: VisionModel): C;
  /** Installs the method's modules and marks what trains, through the builder. */
  install(model: VisionModel, config: C, builder: DeltaBuilder): void;
  /** Folds the delta into the base weights, or says why that is impossible. */
  merge?: (model: VisionModel, config: C, delta: Delta) => void;
  mergeRefusal?: string;
}

const methods = new Map<string, MethodSpec<any>>();

export function registerMethod<C extends object>(spec: MethodSpec<C>): void {
  if (methods.has(spec.name)) throw new Error(`registerMethod: '${spec.name}' is already registered`);
  methods.set(spec.name, spec);
}

export function listMethods(): string[] {
  return [...methods.keys()].sort();
}

export function methodSpec(name: string): MethodSpec<any> {
  const spec = methods.get(name);
  if (!spec) throw new Error(`unknown delta method '${name}'; available: ${listMethods().join(', ')}`);
  return spec;
}

// ---------------------------------------------------------------------------------------------
// Target matching

/**
 * Module names a pattern selects: a string is a full-match regular expression; a list holds exact
 * names or dotted suffixes (PEFT's rules). Throws listing real names when nothing matches.
 */
export function matchModules(model: Module<any, any>, pattern: string | readonly string[], what: string): [string, Module<any, any>][] {
  const all = [...model.namedModules()].filter(([name]) => name !== '');
  let matched: [string, Module<any, any>][];
  if (typeof pattern === 'string') {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${pattern})$`);
    } catch (err) {
      throw new Error(`${what}: invalid target pattern '${pattern}': ${(err as Error).message}`);
    }
    matched = all.filter(([name]) => re.test(name));
  } else {
    matched = all.filter(([name]) => pattern.some((p) => name === p || name.endsWith(`.${p}`)));
  }
  if (matched.length === 0) {
    const sample = all.slice(0, 40).map(([n, m]) => `${n} (${m.constructor.name})`).join(', ');
    throw new Error(`${what}: target ${JSON.stringify(pattern)} matches no module. Module names look like: ${sample}${all.length > 40 ? ', ...' : ''}`);
  }
  return matched;
}

// ---------------------------------------------------------------------------------------------
// Installation

/** One reversible change to the model. */
interface Step {
  attach(): void;
  detach(): void;
}

/** A module applied to one model module's output only (DeltaBuilder.addOutputModule). */
export interface OutputAdapter {
  /** The module whose output it changes. */
  path: string;
  /** The adapter's own dotted name in the model. */
  module: string;
  apply: (out: Tensor) => Tensor;
}

/** What a method's `install` uses to change the model reversibly. */
export class DeltaBuilder {
  /** @internal */ readonly steps: Step[] = [];
  /** @internal */ readonly added: [string, Module<any, any>][] = [];
  /** @internal */ readonly baseTrainable = new Set<string>();
  /** @internal */ trainBatchNormStats = false;
  /** @internal */ readonly outputAdapters: OutputAdapter[] = [];

  constructor(readonly model: VisionModel) {}

  /** Registers `module` as child `name` of the module at `ownerPath`; its parameters train. */
  addModule(ownerPath: string, name: string, module: Module<any, any>): void {
    const owner = this.model.getSubmodule(ownerPath);
    if (owner._modules.has(name) || owner._parameters.has(name)) {
      throw new Error(`${ownerPath || 'model'} already has a '${name}': is another delta attached? Detach it first.`);
    }
    this.added.push([ownerPath ? `${ownerPath}.${name}` : name, module]);
    this.steps.push({
      attach: () => owner.registerModule(name, module),
      detach: () => void delete (owner as unknown as Record<string, unknown>)[name],
    });
  }

  /** Adds a forward hook to the module at `path` (it may replace the output). */
  addHook(path: string, hook: (module: Module<any, any>, inputs: unknown[], output: unknown) => unknown): void {
    const target = this.model.getSubmodule(path);
    let remove: (() => void) | null = null;
    this.steps.push({
      attach: () => void (remove = target.registerForwardHook(hook)),
      detach: () => {
        remove?.();
        remove = null;
      },
    });
  }

  /**
   * Adds `module` as child `name` of the module at `path` and applies it to that module's output
   * only (`apply(out)` replaces the output). Declaring it so tells a prefix cache that the owner's
   * own computation stays frozen: its output before the adapter can be computed once per image.
   */
  addOutputModule(path: string, name: string, module: Module<any, any>, apply: (out: Tensor) => Tensor): void {
    this.addModule(path, name, module);
    this.addHook(path, (_m, _inputs, out) => apply(out as Tensor));
    this.outputAdapters.push({ path, module: path ? `${path}.${name}` : name, apply });
  }

  /** Marks base parameters as trainable (their values become part of the delta). */
  trainBase(names: Iterable<string>): void {
    for (const n of names) this.baseTrainable.add(n);
  }

  /** Lets BatchNorm update its running statistics (they are saved with the delta). */
  trainBatchNormStatistics(): void {
    this.trainBatchNormStats = true;
  }

  /** Runs a custom reversible change. */
  addStep(attach: () => void, detach: () => void): void {
    this.steps.push({ attach, detach });
  }
}

// ---------------------------------------------------------------------------------------------
// The delta

export interface DeltaSummary {
  method: string;
  model: string;
  trainable: number;
  total: number;
  /** trainable / total × 100 */
  percent: number;
  /** Trainable parameter elements by the class of the module that owns them. */
  byModuleType: Record<string, number>;
  /** Bytes of the delta's tensors as saved (parameters and buffers, no file overhead). */
  bytes: number;
}

/** A method applied to a model: attachable, detachable, savable, sometimes mergeable. */
export class Delta {
  #attached = false;
  /** Merged into its model: the model now owns the head and the folded values. */
  #spent = false;
  #head: Linear;
  #baseHead: Linear | null = null;
  /**
   * For base parameters the delta trains: the values not in the model right now — the base's own
   * while attached (restored on detach), the delta's trained ones while detached.
   */
  #swap = new Map<string, Tensor>();
  readonly #steps: Step[];
  readonly #added: [string, Module<any, any>][];
  readonly #outputAdapters: OutputAdapter[];
  readonly #baseTrainable: string[];
  readonly #trainBnStats: boolean;
  /** BatchNorm running statistics this delta owns (when it trains them). */
  readonly #bnBuffers: string[];
  #trainOverride: ((mode?: boolean) => VisionModel) | null = null;
  #folded: FoldedConv[] = [];
  #frozenPrecision: FrozenPrecision = 'float32';

  /** @internal use applyDelta */
  constructor(
    readonly model: VisionModel,
    readonly method: string,
    readonly config: Record<string, unknown>,
    builder: DeltaBuilder,
    head: Linear,
  ) {
    this.#steps = builder.steps;
    this.#added = builder.added;
    this.#outputAdapters = builder.outputAdapters;
    this.#baseTrainable = [...builder.baseTrainable];
    this.#trainBnStats = builder.trainBatchNormStats;
    this.#bnBuffers = builder.trainBatchNormStats ? batchNormBuffers(model).map(([n]) => n) : [];
    this.#head = head;
  }

  get attached(): boolean {
    return this.#attached;
  }

  /** The classifier this delta trains (its own, swapped in while attached). */
  get head(): Linear {
    return this.#head;
  }

  /** The precision the frozen convolutions run in (see setFrozenPrecision). */
  get frozenPrecision(): FrozenPrecision {
    return this.#frozenPrecision;
  }

  /**
   * Runs the frozen convolutions that pay for it in bfloat16 ('bfloat16'), or all in float32 (the
   * default). Only dense convolutions whose BatchNorm was folded and whose channels give
   * cin·cout/(cin+cout) ≥ 100 switch: on CPUs with AMX or AVX512-BF16 oneDNN runs them several
   * times faster, while on thin or depthwise convolutions the casts to and from bfloat16 cost more
   * than they save. Inputs, outputs, everything else and all trained parameters stay float32;
   * results differ from float32 by bfloat16 rounding (~0.4% per convolution). Returns the names of
   * the convolutions that run in bfloat16. The setting survives detach and attach.
   */
  setFrozenPrecision(precision: FrozenPrecision): string[] {
    if (precision !== 'float32' && precision !== 'bfloat16') {
      throw new Error(`frozen precision must be 'float32' or 'bfloat16', got ${JSON.stringify(precision)}`);
    }
    this.#frozenPrecision = precision;
    if (precision === 'float32') this.#folded.forEach(dropLowPrecision);
    return this.lowPrecisionConvolutions();
  }

  /** Names of the frozen convolutions that run in bfloat16 now (none unless setFrozenPrecision('bfloat16')). */
  lowPrecisionConvolutions(): string[] {
    return this.#frozenPrecision === 'bfloat16' ? this.#folded.filter((f) => f.bf16Eligible).map((f) => f.name) : [];
  }

  /** Installs the delta on its model: adds modules and hooks, swaps in its head and trained values. */
  attach(): this {
    if (this.#attached) return this;
    if (this.#spent) throw new Error(`this '${this.method}' delta was merged into its model; it cannot be attached again`);
    const active = activeDeltas.get(this.model);
    if (active && active !== this) throw new Error(`another '${active.method}' delta is attached to this model; detach it first`);
    this.#baseHead = swapClassifier(this.model, this.#head);
    for (const s of this.#steps) s.attach();
    this.#swapValues();
    this.#freeze();
    this.#attached = true;
    activeDeltas.set(this.model, this);
    return this;
  }

  /** Removes the delta, restoring the base exactly; the delta keeps its values for re-attaching. */
  detach(): this {
    if (!this.#attached) return this;
    for (const s of [...this.#steps].reverse()) s.detach();
    this.#swapValues();
    if (this.#baseHead) swapClassifier(this.model, this.#baseHead);
    this.#baseHead = null;
    this.#unfreeze();
    this.#attached = false;
    activeDeltas.delete(this.model);
    return this;
  }

  // Exchanges the values in the model with the stored ones (on first attach it only stores:
  // the delta starts from the base's values).
  #swapValues(): void {
    if (this.#baseTrainable.length === 0 && this.#bnBuffers.length === 0) return;
    noGrad(() => {
      const params = new Map<string, Tensor>([...this.model.namedParameters(), ...this.model.namedBuffers()]);
      for (const name of [...this.#baseTrainable, ...this.#bnBuffers]) {
        const p = params.get(name);
        if (!p) throw new Error(`delta: the model has no parameter '${name}' any more`);
        const current = keep(p.clone());
        const stored = this.#swap.get(name);
        if (stored) {
          p.copy_(stored);
          stored.dispose();
        }
        this.#swap.set(name, current);
      }
    });
  }

  /** The delta's trainable parameters with their model-level names (attached deltas only). */
  namedTrainableParameters(): [string, Parameter][] {
    this.#requireAttached('namedTrainableParameters');
    return this.model.namedParameters().filter(([, p]) => p.requiresGrad);
  }

  trainableParameters(): Parameter[] {
    return this.namedTrainableParameters().map(([, p]) => p);
  }

  /** Only the delta: trainable parameters and, where the method trains them, BatchNorm statistics. */
  stateDict(): Map<string, Tensor> {
    this.#requireAttached('stateDict');
    const out = new Map<string, Tensor>(this.namedTrainableParameters());
    if (this.#trainBnStats) for (const [name, b] of batchNormBuffers(this.model)) out.set(name, b);
    return out;
  }

  /** Loads values saved by `stateDict` (every key must match). */
  loadStateDict(state: Map<string, Tensor>, source?: string): void {
    this.#requireAttached('loadStateDict');
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !state.has(k));
    const unexpected = [...state.keys()].filter((k) => !own.has(k));
    const mismatched = [...state].filter(([k, t]) => own.has(k) && own.get(k)!.shape.join() !== t.shape.join()).map(([k]) => k);
    if (missing.length || unexpected.length || mismatched.length) {
      const list = (xs: string[]) => (xs.length > 10 ? `${xs.slice(0, 10).join(', ')}, ... (${xs.length})` : xs.join(', '));
      const shapes = (k: string) => `${k} [${state.get(k)!.shape.join(', ')}] vs [${own.get(k)!.shape.join(', ')}]`;
      throw new Error(
        `delta ${source ?? ''} does not fit this '${this.method}' delta on ${this.model.config.name}: ` +
          [
            missing.length ? `missing ${list(missing)}` : '',
            unexpected.length ? `unexpected ${list(unexpected)}` : '',
            mismatched.length ? `mis-shaped ${list(mismatched.map(shapes))}` : '',
          ].filter(Boolean).join('; '),
      );
    }
    const wrongType = [...state].find(([k, t]) => isFloating(own.get(k)!.dtype) !== isFloating(t.dtype));
    if (wrongType) {
      throw new Error(`delta ${source ?? ''}: tensor '${wrongType[0]}' is ${wrongType[1].dtype}, but this delta's '${wrongType[0]}' is ${own.get(wrongType[0])!.dtype}`);
    }
    // A NaN or inf in a delta would spread through every prediction without a word.
    const bad = firstNonFinite(state);
    if (bad !== null) throw new Error(`delta ${source ?? ''}: tensor '${bad}' holds NaN or infinite values`);
    noGrad(() => {
      for (const [k, t] of state) own.get(k)!.copy_(t);
    });
  }

  summary(): DeltaSummary {
    this.#requireAttached('summary');
    const total = this.model.numParameters();
    // Parameters inside a module the delta added count under that module's class (Mona, ScaleShift,
    // ...); the delta's head under 'head'; base parameters it trains under their owner's class.
    const byModuleType: Record<string, number> = {};
    const added = this.#added.map(([n, m]) => [`${n}.`, m.constructor.name] as const);
    const head = `${this.model.config.classifier}.`;
    for (const [prefix, m] of this.model.namedModules()) {
      for (const [local, p] of m.namedParameters({ recurse: false })) {
        if (!p.requiresGrad) continue;
        const name = prefix ? `${prefix}.${local}` : local;
        const type = name.startsWith(head) ? 'head' : (added.find(([a]) => name.startsWith(a))?.[1] ?? m.constructor.name);
        byModuleType[type] = (byModuleType[type] ?? 0) + p.numel;
      }
    }
    const trainable = Object.values(byModuleType).reduce((a, b) => a + b, 0);
    let bytes = 0;
    for (const t of this.stateDict().values()) bytes += t.nbytes;
    return { method: this.method, model: this.model.config.name, trainable, total, percent: (100 * trainable) / total, byModuleType, bytes };
  }

  /**
   * Folds the delta into the base weights where the math allows: afterwards the model is an
   * ordinary model (with this delta's head) computing the same outputs, and the delta is spent.
   */
  merge(): VisionModel {
    this.#requireAttached('merge');
    const spec = methodSpec(this.method);
    if (!spec.merge) throw new Error(`'${this.method}' cannot be merged into the base: ${spec.mergeRefusal ?? 'its modules are not linear in the base weights'}`);
    noGrad(() => spec.merge!(this.model, this.config, this));
    // The merged values stay; the delta's modules and hooks go; its head stays as the model's.
    for (const s of [...this.#steps].reverse()) s.detach();
    for (const t of this.#swap.values()) t.dispose();
    this.#swap.clear();
    this.#baseHead?.dispose();
    this.#baseHead = null;
    this.#unfreeze();
    this.#attached = false;
    this.#spent = true;
    activeDeltas.delete(this.model);
    this.model.requiresGrad_(true);
    return this.model;
  }

  /** Frees the delta's own tensors (detach first). */
  dispose(): void {
    if (this.#attached) this.detach();
    for (const [, m] of this.#added) m.dispose();
    for (const t of this.#swap.values()) t.dispose();
    this.#swap.clear();
    if (!this.#spent) this.#head.dispose();
  }

  /** Modules this delta applies to the output of the module at `path` only, in the order they run. */
  outputAdaptersOf(path: string): OutputAdapter[] {
    return this.#outputAdapters.filter((a) => a.path === path);
  }

  /** @internal added modules by model-level name */
  get addedModules(): [string, Module<any, any>][] {
    return this.#added;
  }

  #requireAttached(what: string): void {
    if (!this.#attached) throw new Error(`${what}: the '${this.method}' delta is detached; attach() it first`);
  }

  #freeze(): void {
    const model = this.model;
    model.requiresGrad_(false);
    const names = new Set(this.#baseTrainable);
    for (const [name, p] of model.namedParameters()) if (names.has(name)) p.requiresGrad = true;
    for (const [, m] of this.#added) m.requiresGrad_(true);
    this.#head.requiresGrad_(true);
    // Frozen BatchNorm keeps its running statistics: it runs in eval mode even when the model trains.
    const trainBn = this.#trainBnStats;
    const original = Module.prototype.train;
    const override = function (this: VisionModel, mode = true): VisionModel {
      original.call(this, mode);
      if (!trainBn) for (const m of this.modules()) if (m instanceof BatchNorm2d) m.training = false;
      return this;
    };
    this.#trainOverride = override;
    Object.defineProperty(model, 'train', { value: override, configurable: true, writable: true, enumerable: false });
    model.train(model.training);
    if (!trainBn) this.#foldFrozenBatchNorm();
  }

  // A frozen BatchNorm in eval mode is a per-channel affine map: fold it into the convolution
  // before it, so the pair runs as one conv and backward keeps no BatchNorm input. Exact math
  // (to float rounding); undone on detach. Pairs that a method hooks or trains are left alone.
  #foldFrozenBatchNorm(): void {
    const touched = (m: Module<any, any>) => m._hooks.length > 0 || m._preHooks.length > 0 || Object.prototype.hasOwnProperty.call(m, 'forward');
    noGrad(() => {
      for (const [convName, bnName] of this.model.convBatchNormPairs()) {
        const conv = this.model.getSubmodule(convName);
        const bn = this.model.getSubmodule(bnName);
        if (!(conv instanceof Conv2d) || !(bn instanceof BatchNorm2d) || !bn.running_mean || !bn.running_var) continue;
        if ([...conv.parameters(), ...bn.parameters()].some((p) => p.requiresGrad) || touched(conv) || touched(bn)) continue;
        const { scale, shift } = batchNormAffine(bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps);
        const scaleMap = scale.view([-1, 1, 1, 1]);
        const weight = keep(conv.weight.mul(scaleMap));
        const bias = keep(conv.bias ? conv.bias.mul(scale).add_(shift) : shift.clone());
        for (const t of [scale, shift, scaleMap]) t.dispose();
        const options = conv.options;
        const [cout, cin] = conv.weight.shape as [number, number];
        const bf16Eligible = (options.groups ?? 1) === 1 && (cin * cout) / (cin + cout) >= BF16_MIN_INTENSITY;
        const entry: FoldedConv = { name: convName, conv, bn, weight, bias, bf16Eligible, low: null };
        const forward = (x: Tensor): Tensor => {
          if (!entry.bf16Eligible || this.#frozenPrecision !== 'bfloat16') return conv2d(x, weightLaidOutFor(entry, x), entry.bias, options);
          entry.low ??= noGrad(() => ({ weight: keep(entry.weight.to('bfloat16')), bias: keep(entry.bias.to('bfloat16')) }));
          return conv2d(x.to('bfloat16'), weightLaidOutFor(entry.low, x), entry.low.bias, options).to(x.dtype);
        };
        Object.defineProperty(conv, 'forward', { value: forward, configurable: true, writable: true, enumerable: false });
        Object.defineProperty(bn, 'forward', { value: (x: Tensor) => x, configurable: true, writable: true, enumerable: false });
        this.#folded.push(entry);
      }
    });
  }

  #unfreeze(): void {
    for (const f of this.#folded) {
      delete (f.conv as unknown as Record<string, unknown>).forward;
      delete (f.bn as unknown as Record<string, unknown>).forward;
      f.weight.dispose();
      f.bias.dispose();
      dropLowPrecision(f);
    }
    this.#folded = [];
    if (this.#trainOverride) delete (this.model as unknown as Record<string, unknown>).train;
    this.#trainOverride = null;
    this.model.requiresGrad_(true);
    this.model.train(this.model.training);
  }
}

const activeDeltas = new WeakMap<VisionModel, Delta>();

/** Running statistics of every BatchNorm2d, by dotted name. */
function batchNormBuffers(model: VisionModel): [string, Tensor][] {
  const out: [string, Tensor][] = [];
  for (const [prefix, m] of model.namedModules()) {
    if (!(m instanceof BatchNorm2d)) continue;
    for (const [name, b] of m._buffers) if (b) out.push([prefix ? `${prefix}.${name}` : name, b]);
  }
  return out;
}

/** The delta attached to a model, if any. */
export function attachedDelta(model: VisionModel): Delta | undefined {
  return activeDeltas.get(model);
}

/** Puts `head` where the model's classifier is and returns the one it replaced. */
function swapClassifier(model: VisionModel, head: Linear): Linear {
  const path = model.config.classifier;
  const dot = path.lastIndexOf('.');
  const owner = model.getSubmodule(dot < 0 ? '' : path.slice(0, dot));
  const name = path.slice(dot + 1);
  const old = owner._modules.get(name);
  if (!(old instanceof Linear)) throw new Error(`${model.config.name}: classifier '${path}' is not a Linear layer`);
  owner.registerModule(name, head);
  model.config.numClasses = head.outFeatures;
  return old;
}

/** A head for the delta: a copy of the model's when the classes match, else a fresh one. */
function makeHead(model: VisionModel, numClasses: number): Linear {
  const current = model.getSubmodule(model.config.classifier);
  if (!(current instanceof Linear)) throw new Error(`${model.config.name}: classifier '${model.config.classifier}' is not a Linear layer`);
  const head = new Linear(current.inFeatures, numClasses, { bias: current.bias !== null });
  noGrad(() => {
    if (numClasses === current.outFeatures) {
      head.weight.copy_(current.weight);
      if (head.bias && current.bias) head.bias.copy_(current.bias);
    } else if (model.config.family === 'resnet') {
      // torchvision's own head initialisations: ResNet keeps Linear's default, MobileNetV2 draws
      // N(0, 0.01), the transformer and ConvNeXt families a truncated normal (std 0.02).
    } else if (model.config.family === 'mobilenet_v2') {
      normal_(head.weight, 0, 0.01);
      if (head.bias) zero_(head.bias);
    } else {
      truncNormal_(head.weight, 0, 0.02);
      if (head.bias) zero_(head.bias);
    }
  });
  return head;
}

export type DeltaOptions = { method: string } & CommonOptions & Record<string, unknown>;

/** The precision of a delta's frozen convolutions (Delta.setFrozenPrecision). */
export type FrozenPrecision = 'float32' | 'bfloat16';
export const FROZEN_PRECISIONS: readonly FrozenPrecision[] = ['float32', 'bfloat16'];

// cin·cout/(cin+cout): a 1×1 convolution's multiply-adds per element it reads or writes, which is
// what the casts cost. MobileNetV2 at 160 px, Mona in its last stages: its 160↔960, 960→320 and
// 320→1280 convolutions (137–256) cut a step's forward and backward by ~20% (41 → 32 ms);
// switching also the 16–96-channel ones (≤ 82) made the prefix slower.
const BF16_MIN_INTENSITY = 100;

interface FoldedConv {
  name: string;
  conv: Conv2d;
  bn: BatchNorm2d;
  weight: Tensor;
  bias: Tensor;
  bf16Eligible: boolean;
  /** The folded weight and bias in bfloat16, made on first use. */
  low: { weight: Tensor; bias: Tensor } | null;
}

function dropLowPrecision(f: FoldedConv): void {
  if (!f.low) return;
  f.low.weight.dispose();
  f.low.bias.dispose();
  f.low = null;
}

/**
 * Applies a delta method to a model: freezes the backbone, installs the method's modules, gives
 * the delta its own head (for `numClasses`), and returns the attached Delta.
 */
export function applyDelta(model: VisionModel, options: DeltaOptions): Delta {
  const { method, numClasses, ...raw } = options;
  const spec = methodSpec(method);
  if (attachedDelta(model)) throw new Error(`a '${attachedDelta(model)!.method}' delta is already attached to this model; detach() it first`);
  const classes = numClasses ?? model.config.numClasses;
  if (!Number.isInteger(classes) || classes < 1) throw new RangeError(`applyDelta: numClasses must be a positive integer, got ${String(numClasses)}`);
  const config = spec.configure(raw, model);
  const builder = new DeltaBuilder(model);
  spec.install(model, config, builder);
  const head = makeHead(model, classes);
  const delta = new Delta(model, method, { ...config, numClasses: classes } as Record<string, unknown>, builder, head);
  return delta.attach();
}

/** Validation helpers for method configs: each error names the key and the valid range. */
export const check = {
  keys(raw: Record<string, unknown>, allowed: readonly string[], method: string): void {
    const unknown = Object.keys(raw).filter((k) => !allowed.includes(k));
    if (unknown.length) throw new Error(`${method}: unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')}; valid: ${allowed.join(', ') || '(none)'}`);
  },
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

/**
 * The folded weight in the input's memory format, converted once and kept: oneDNN otherwise
 * reorders a weight whose layout differs from the input's on every call, forward and backward
 * (ResNet-50 channels-last, batch 8: ~35 ms a training step). The fold is made when the delta is
 * applied, so a model switched to channels-last afterwards would otherwise keep NCHW folded weights.
 */
function weightLaidOutFor(entry: { weight: Tensor }, x: Tensor): Tensor {
  const w = entry.weight;
  if (x.ndim !== 4 || w.ndim !== 4) return w;
  const format = x.isContiguous('channelsLast') && !x.isContiguous() ? 'channelsLast' : 'contiguous';
  if (w.isContiguous(format)) return w;
  const relaid = keep(noGrad(() => w.contiguous(format)));
  w.dispose();
  entry.weight = relaid;
  return relaid;
}
