// Containers whose children are named by position ('0', '1', ...) or by key, as torch.nn's.
import type { Tensor } from '../engine/index.js';
import { Module } from './module.js';
import { pipe } from './release.js';

type AnyModule = Module<any, any>;

/** Runs its children in order, each on the previous one's output. */
export class Sequential extends Module<[Tensor], Tensor> {
  constructor(...modules: AnyModule[]) {
    super();
    modules.forEach((m, i) => this.registerModule(String(i), m));
  }

  get length(): number {
    return this._modules.size;
  }

  at(index: number): AnyModule {
    const m = this._modules.get(String(index < 0 ? this._modules.size + index : index));
    if (!m) throw new RangeError(`Sequential: no module at index ${index} (length ${this._modules.size})`);
    return m;
  }

  append(m: AnyModule): this {
    this.registerModule(String(this._modules.size), m);
    return this;
  }

  forward(x: Tensor): Tensor {
    return pipe(x, ...([...this._modules.values()].filter(Boolean) as Module<[Tensor], Tensor>[]));
  }
}

/** Holds modules by position; it has no forward of its own. */
export class ModuleList<M extends AnyModule = AnyModule> extends Module<never[], never> {
  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.append(m);
  }

  get length(): number {
    return this._modules.size;
  }

  at(index: number): M {
    const m = this._modules.get(String(index < 0 ? this._modules.size + index : index));
    if (!m) throw new RangeError(`ModuleList: no module at index ${index} (length ${this._modules.size})`);
    return m as M;
  }

  append(m: M): this {
    this.registerModule(String(this._modules.size), m);
    return this;
  }

  [Symbol.iterator](): Iterator<M> {
    return ([...this._modules.values()].filter(Boolean) as M[])[Symbol.iterator]();
  }

  forward(): never {
    throw new Error('ModuleList has no forward: iterate over its modules');
  }
}

/** Holds modules by name; it has no forward of its own. */
export class ModuleDict<M extends AnyModule = AnyModule> extends Module<never[], never> {
  constructor(modules: Record<string, M> = {}) {
    super();
    for (const [k, m] of Object.entries(modules)) this.registerModule(k, m);
  }

  get(key: string): M {
    const m = this._modules.get(key);
    if (!m) throw new RangeError(`ModuleDict: no module '${key}' (keys: ${[...this._modules.keys()].join(', ')})`);
    return m as M;
  }

  set(key: string, m: M): void {
    this.registerModule(key, m);
  }

  keys(): string[] {
    return [...this._modules.keys()];
  }

  forward(): never {
    throw new Error('ModuleDict has no forward: look modules up by key');
  }
}
