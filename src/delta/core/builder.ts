// What a method's `install` uses to change a model reversibly: add child modules, hooks, output
// adapters, stand-in modules, and mark base parameters as trained. Every change is a step the
// Delta attaches and detaches, so several deltas can share one base.
import type { Tensor } from '../../engine/index.js';
import { Module } from '../../nn/module.js';
import type { VisionModel } from '../../models/base.js';

/** One reversible change to the model. */
export interface Step {
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

/**
 * A module standing in for another in the model tree (as PEFT replaces target layers): it holds
 * the original's parameters, buffers, children and hooks under the same names, so dotted names,
 * state dicts and parameter counts do not change, and computes its own forward. The original's
 * other attributes (a convolution's channels, a norm's eps) read through, as PEFT's layers
 * forward attribute access to their base layer, so code that inspects the tree keeps working.
 */
export abstract class StandIn<M extends Module<any, any> = Module<any, any>> extends Module {
  declare readonly original: M;

  constructor(original: M) {
    super();
    Object.defineProperty(this, 'original', { value: original, enumerable: false });
    this.adoptMembers(original);
    for (const key of Reflect.ownKeys(original)) {
      if (typeof key !== 'string' || key in this) continue;
      Object.defineProperty(this, key, { get: () => (original as unknown as Record<string, unknown>)[key], enumerable: false, configurable: true });
    }
  }
}

/** A stand-in whose forward is a function (used by methods that recompute a layer's weight). */
class ForwardStandIn extends StandIn {
  constructor(original: Module<any, any>, readonly fn: (x: Tensor) => Tensor) {
    super(original);
  }
  forward(x: Tensor): Tensor {
    return this.fn(x);
  }
}

/** Puts `replacement` where the module at `path` is, returning the module it replaced. */
export function replaceAt(model: Module<any, any>, path: string, replacement: Module<any, any>): Module<any, any> {
  const dot = path.lastIndexOf('.');
  const owner = model.getSubmodule(dot < 0 ? '' : path.slice(0, dot));
  return owner.replaceChild(path.slice(dot + 1), replacement);
}

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
    if (owner.hasMember(name)) {
      throw new Error(`${ownerPath || 'model'} already has a '${name}': is another delta attached? Detach it first.`);
    }
    this.added.push([ownerPath ? `${ownerPath}.${name}` : name, module]);
    this.steps.push({
      attach: () => owner.registerModule(name, module),
      detach: () => owner.removeChild(name),
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

  /**
   * Runs `forward` in place of the module at `path`'s own, through a stand-in swapped into the
   * tree while the delta is attached (names, parameters, children and hooks stay as they were).
   */
  replaceForward(path: string, forward: (x: Tensor) => Tensor): void {
    let original: Module<any, any> | null = null;
    this.steps.push({
      attach: () => {
        // Made at attach time so it adopts the children and hooks added by earlier steps.
        const current = this.model.getSubmodule(path);
        original = current;
        replaceAt(this.model, path, new ForwardStandIn(current, forward));
      },
      detach: () => {
        if (original) replaceAt(this.model, path, original);
        original = null;
      },
    });
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
