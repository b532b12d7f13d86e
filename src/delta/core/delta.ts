// The Delta: a method applied to a model — attachable, detachable, savable, sometimes mergeable —
// and applyDelta, which builds one. While attached, the backbone is frozen (requiresGrad off,
// BatchNorm swapped for frozen stand-ins: frozen.ts) and the delta's own head is the classifier.
import { Tensor, keep, noGrad } from '../../engine/index.js';
import { isFloating } from '../../engine/dtype.js';
import { firstNonFinite } from '../../io/state-dict.js';
import type { Module } from '../../nn/module.js';
import { BatchNorm2d, Linear } from '../../nn/layers.js';
import type { Parameter } from '../../nn/parameter.js';
import type { VisionModel } from '../../models/base.js';
import { initHead } from '../../models/common.js';
import { DeltaBuilder, StandIn, replaceAt, type OutputAdapter, type Step } from './builder.js';
import { FROZEN_PRECISIONS, freezeBackbone, type FrozenBackbone, type FrozenPrecision } from './frozen.js';
import { configureMethod, inapplicableReason, methodSpec, type CommonOptions } from './registry.js';

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
  #frozen: FrozenBackbone | null = null;
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
    if (precision === 'float32') for (const [, f] of this.#frozen?.folded ?? []) f.dropLowPrecision();
    return this.lowPrecisionConvolutions();
  }

  /** Names of the frozen convolutions that run in bfloat16 now (none unless setFrozenPrecision('bfloat16')). */
  lowPrecisionConvolutions(): string[] {
    return this.#frozenPrecision === 'bfloat16' ? (this.#frozen?.folded ?? []).filter(([, f]) => f.bf16Eligible).map(([name]) => name) : [];
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
    // In the reverse order of attach: the frozen stand-ins hold the steps' hooks and children.
    this.#unfreeze();
    for (const s of [...this.#steps].reverse()) s.detach();
    this.#swapValues();
    if (this.#baseHead) swapClassifier(this.model, this.#baseHead);
    this.#baseHead = null;
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
        const owner = m instanceof StandIn ? m.original : m;
        const type = name.startsWith(head) ? 'head' : (added.find(([a]) => name.startsWith(a))?.[1] ?? owner.constructor.name);
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
    // The base's own modules back in place first: merging writes into their weights.
    this.#unfreeze();
    noGrad(() => spec.merge!(this.model, this.config, this));
    // The merged values stay; the delta's modules and hooks go; its head stays as the model's.
    for (const s of [...this.#steps].reverse()) s.detach();
    for (const t of this.#swap.values()) t.dispose();
    this.#swap.clear();
    this.#baseHead?.dispose();
    this.#baseHead = null;
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
    // Frozen BatchNorm keeps its running statistics: stand-ins run it in eval mode even when the
    // model trains, folded into the convolution before it where the delta leaves both alone.
    if (!this.#trainBnStats) this.#frozen = freezeBackbone(model, () => this.#frozenPrecision);
  }

  #unfreeze(): void {
    this.#frozen?.restore();
    this.#frozen = null;
    this.model.requiresGrad_(true);
  }
}

const activeDeltas = new WeakMap<VisionModel, Delta>();

/** Running statistics of every BatchNorm2d, by dotted name. */
function batchNormBuffers(model: VisionModel): [string, Tensor][] {
  const out: [string, Tensor][] = [];
  for (const [prefix, m] of model.namedModules()) {
    if (!(m instanceof BatchNorm2d)) continue;
    for (const [name, b] of m.namedBuffers({ recurse: false })) out.push([prefix ? `${prefix}.${name}` : name, b]);
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
  if (!(model.getSubmodule(path) instanceof Linear)) throw new Error(`${model.config.name}: classifier '${path}' is not a Linear layer`);
  const old = replaceAt(model, path, head) as Linear;
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
    } else {
      initHead(head, model.config.headInit);
    }
  });
  return head;
}

export { FROZEN_PRECISIONS, type FrozenPrecision };

export type DeltaOptions = { method: string } & CommonOptions & Record<string, unknown>;

/**
 * Applies a delta method to a model: freezes the backbone, installs the method's modules, gives
 * the delta its own head (for `numClasses`), and returns the attached Delta.
 */
export function applyDelta(model: VisionModel, options: DeltaOptions): Delta {
  const { method, numClasses, ...raw } = options;
  const spec = methodSpec(method);
  if (attachedDelta(model)) throw new Error(`a '${attachedDelta(model)!.method}' delta is already attached to this model; detach() it first`);
  const refusal = inapplicableReason(method, model.config);
  if (refusal) throw new Error(refusal);
  const classes = numClasses ?? model.config.numClasses;
  if (!Number.isInteger(classes) || classes < 1) throw new RangeError(`applyDelta: numClasses must be a positive integer, got ${String(numClasses)}`);
  const config = configureMethod(spec, raw, model);
  const builder = new DeltaBuilder(model);
  spec.install(model, config, builder);
  const head = makeHead(model, classes);
  const delta = new Delta(model, method, { ...config, numClasses: classes } as Record<string, unknown>, builder, head);
  return delta.attach();
}

