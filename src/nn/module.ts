// Module: the PyTorch-style container of parameters, buffers and child modules. Assigning a
// Parameter or Module to a property registers it under that name, so dotted names
// (`layer1.0.conv1.weight`) are exactly the ones torchvision checkpoints use.
import { Tensor, keep, noGrad } from '../engine/index.js';
import { Parameter } from './parameter.js';

export type StateDict = Map<string, Tensor>;

export interface LoadReport {
  missing: string[];
  unexpected: string[];
  mismatched: { key: string; expected: readonly number[]; got: readonly number[] }[];
}

export interface LoadOptions {
  /** Refuse missing and unexpected keys (default true). Shape mismatches are always refused. */
  strict?: boolean;
  /** Where the state dict came from, for error messages (a file path, 'timm', ...). */
  source?: string;
}

type Hook = (module: Module<any, any>, inputs: unknown[], output: unknown) => unknown;
type PreHook = (module: Module<any, any>, inputs: unknown[]) => unknown[] | void;

// Module internals are plain (non-private) fields: instances are Proxies, and private fields do
// not survive a Proxy.
export abstract class Module<In extends unknown[] = [Tensor], Out = Tensor> {
  /** @internal */ declare _parameters: Map<string, Parameter | null>;
  /** @internal */ declare _buffers: Map<string, Tensor | null>;
  /** @internal */ declare _nonPersistent: Set<string>;
  /** @internal */ declare _modules: Map<string, Module<any, any> | null>;
  /** @internal */ declare _hooks: Hook[];
  /** @internal */ declare _preHooks: PreHook[];
  declare training: boolean;

  constructor() {
    const internals = {
      _parameters: new Map(), _buffers: new Map(), _nonPersistent: new Set(), _modules: new Map(), _hooks: [], _preHooks: [],
    };
    for (const [k, v] of Object.entries(internals)) Object.defineProperty(this, k, { value: v, enumerable: false, writable: false });
    Object.defineProperty(this, 'training', { value: true, enumerable: false, writable: true });
    return new Proxy(this, { set: registerOnSet, defineProperty: registerOnDefine, deleteProperty: unregister });
  }

  /** The computation; call modules through `call` so hooks run. */
  abstract forward(...args: In): Out;

  /** Runs pre-hooks, `forward`, then hooks (a hook may replace the output). */
  call(...args: In): Out {
    if (this._preHooks.length === 0 && this._hooks.length === 0) return this.forward(...args);
    let inputs: unknown[] = args;
    for (const h of this._preHooks) inputs = h(this, inputs) ?? inputs;
    let out: unknown = this.forward(...(inputs as In));
    for (const h of this._hooks) {
      const replaced = h(this, inputs, out);
      if (replaced !== undefined) out = replaced;
    }
    return out as Out;
  }

  /** Adds a hook run after forward; returns a function that removes it. */
  registerForwardHook(hook: Hook): () => void {
    this._hooks.push(hook);
    return () => removeFrom(this._hooks, hook);
  }

  /** Adds a hook run before forward (it may return replacement inputs); returns its remover. */
  registerForwardPreHook(hook: PreHook): () => void {
    this._preHooks.push(hook);
    return () => removeFrom(this._preHooks, hook);
  }

  /** Registers a buffer: state saved in the state dict (unless not persistent) but not trained. */
  registerBuffer(name: string, tensor: Tensor | null, persistent = true): void {
    checkName(this, name);
    if (this._parameters.has(name) || this._modules.has(name)) throw new TypeError(`registerBuffer: '${name}' is already a parameter or module`);
    if (tensor) keep(tensor);
    this._buffers.set(name, tensor);
    if (persistent) this._nonPersistent.delete(name);
    else this._nonPersistent.add(name);
    Reflect.set(this, name, tensor);
  }

  registerParameter(name: string, param: Parameter | null): void {
    checkName(this, name);
    (this as unknown as Record<string, unknown>)[name] = param;
    if (param === null) this._parameters.set(name, null);
  }

  registerModule(name: string, module: Module<any, any> | null): void {
    checkName(this, name);
    (this as unknown as Record<string, unknown>)[name] = module;
    if (module === null) this._modules.set(name, null);
  }

  /** Whether forward hooks or pre-hooks are registered on this module (not its children). */
  hasHooks(): boolean {
    return this._hooks.length > 0 || this._preHooks.length > 0;
  }

  /** Forward hooks registered on this module. */
  forwardHookCount(): number {
    return this._hooks.length;
  }

  /** Forward pre-hooks registered on this module. */
  forwardPreHookCount(): number {
    return this._preHooks.length;
  }

  /** Whether `name` is a parameter, buffer or child module of this module. */
  hasMember(name: string): boolean {
    return this._parameters.has(name) || this._buffers.has(name) || this._modules.has(name);
  }

  /** The direct child `name`, or undefined (no throw, unlike getSubmodule). */
  getChild<M extends Module<any, any> = Module<any, any>>(name: string): M | undefined {
    return (this._modules.get(name) ?? undefined) as M | undefined;
  }

  /**
   * Puts `replacement` where the child `name` is (same name, same position) and returns the old
   * child, whose tensors are not freed: a module swapped in place, as PEFT replaces target layers.
   */
  replaceChild(name: string, replacement: Module<any, any>): Module<any, any> {
    const old = this._modules.get(name);
    if (!old) throw new Error(`replaceChild: ${this.constructor.name} has no child module '${name}'`);
    this.registerModule(name, replacement);
    return old;
  }

  /** Removes the child module `name` (added by a delta); its tensors are not freed. */
  removeChild(name: string): void {
    if (!this._modules.has(name)) throw new Error(`removeChild: ${this.constructor.name} has no child module '${name}'`);
    delete (this as unknown as Record<string, unknown>)[name];
  }

  /**
   * Registers `original`'s own parameters, buffers, children and hooks on this module (the same
   * objects, in the same order), so this one can stand in for it in place: dotted names, state
   * dict, parameter counts and hooks stay as they were. The original is left untouched.
   */
  adoptMembers(original: Module<any, any>): void {
    for (const [name, p] of original._parameters) {
      if (p) this.registerParameter(name, p);
      else this._parameters.set(name, null);
    }
    for (const [name, b] of original._buffers) this.registerBuffer(name, b, !original._nonPersistent.has(name));
    for (const [name, m] of original._modules) {
      if (m) this.registerModule(name, m);
      else this._modules.set(name, null);
    }
    this._hooks.push(...original._hooks);
    this._preHooks.push(...original._preHooks);
    this.training = original.training;
  }

  // --- traversal --------------------------------------------------------------------------

  *namedChildren(): Generator<[string, Module<any, any>]> {
    for (const [name, m] of this._modules) if (m) yield [name, m];
  }

  children(): Module<any, any>[] {
    return [...this.namedChildren()].map(([, m]) => m);
  }

  /** This module and every descendant, with dotted names ('' for this one); each module once. */
  *namedModules(prefix = '', seen = new Set<Module<any, any>>()): Generator<[string, Module<any, any>]> {
    if (seen.has(this)) return;
    seen.add(this);
    yield [prefix, this];
    for (const [name, m] of this.namedChildren()) yield* m.namedModules(prefix ? `${prefix}.${name}` : name, seen);
  }

  modules(): Module<any, any>[] {
    return [...this.namedModules()].map(([, m]) => m);
  }

  /** Parameters with their dotted names, in registration order; a shared parameter appears once. */
  namedParameters(options: { recurse?: boolean } = {}): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    const seen = new Set<Tensor>();
    const modules = options.recurse === false ? [['', this] as [string, Module<any, any>]] : this.namedModules();
    for (const [prefix, m] of modules) {
      for (const [name, p] of m._parameters) {
        if (!p || seen.has(p)) continue;
        seen.add(p);
        out.push([prefix ? `${prefix}.${name}` : name, p]);
      }
    }
    return out;
  }

  parameters(options: { recurse?: boolean } = {}): Parameter[] {
    return this.namedParameters(options).map(([, p]) => p);
  }

  /** Parameters that currently require grad: what an optimizer should update. */
  trainableParameters(): Parameter[] {
    return this.parameters().filter((p) => p.requiresGrad);
  }

  namedBuffers(options: { recurse?: boolean } = {}): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const modules = options.recurse === false ? [['', this] as [string, Module<any, any>]] : this.namedModules();
    for (const [prefix, m] of modules) {
      for (const [name, b] of m._buffers) if (b) out.push([prefix ? `${prefix}.${name}` : name, b]);
    }
    return out;
  }

  buffers(): Tensor[] {
    return this.namedBuffers().map(([, b]) => b);
  }

  /** The descendant at a dotted path ('layer1.0.conv1'); throws naming the missing part. */
  getSubmodule(path: string): Module<any, any> {
    if (path === '') return this;
    let m: Module<any, any> = this;
    for (const part of path.split('.')) {
      const next = m._modules.get(part);
      if (!next) throw new Error(`getSubmodule('${path}'): no submodule '${part}' in ${m.constructor.name}`);
      m = next;
    }
    return m;
  }

  /** Counts parameter elements (all, or only those requiring grad). */
  numParameters(options: { trainableOnly?: boolean } = {}): number {
    return this.parameters()
      .filter((p) => !options.trainableOnly || p.requiresGrad)
      .reduce((sum, p) => sum + p.numel, 0);
  }

  // --- modes and gradients ----------------------------------------------------------------

  /** Training mode (dropout active, batch norm uses batch statistics) for this module and all below. */
  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Sets requiresGrad on every parameter below (false freezes the module). */
  requiresGrad_(flag = true): this {
    for (const p of this.parameters()) p.requiresGrad = flag;
    return this;
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  /** Calls fn on every module, children first, then this one (as torch's Module.apply). */
  apply(fn: (m: Module<any, any>) => void): this {
    for (const child of this.children()) child.apply(fn);
    fn(this);
    return this;
  }

  /** Converts every floating-point parameter and buffer to `dtype`, in place. */
  toDType(dtype: 'float32' | 'float64' | 'bfloat16' | 'float16'): this {
    noGrad(() => {
      for (const t of [...this.parameters(), ...this.buffers()]) {
        if (!['float32', 'float64', 'bfloat16', 'float16'].includes(t.dtype) || t.dtype === dtype) continue;
        const converted = t.to(dtype);
        t.setData(converted);
        converted.dispose();
      }
    });
    return this;
  }

  /**
   * Lays out every 4-D parameter and buffer in `format`, in place (PyTorch's
   * `module.to(memory_format=...)`): with 'channelsLast' weights and NHWC input, oneDNN runs its
   * convolutions without reordering either. Values, shapes and names are unchanged.
   */
  toMemoryFormat(format: 'channelsLast' | 'contiguous'): this {
    noGrad(() => {
      for (const t of [...this.parameters(), ...this.buffers()]) {
        if (t.ndim !== 4 || t.isContiguous(format)) continue;
        const relaid = t.contiguous(format);
        t.setData(relaid);
        relaid.dispose();
      }
    });
    return this;
  }

  // --- state ------------------------------------------------------------------------------

  /** Parameters and persistent buffers by dotted name (the tensors themselves, not copies). */
  stateDict(): StateDict {
    const out: StateDict = new Map();
    for (const [prefix, m] of this.namedModules()) {
      const key = (name: string) => (prefix ? `${prefix}.${name}` : name);
      for (const [name, p] of m._parameters) if (p) out.set(key(name), p);
      for (const [name, b] of m._buffers) if (b && !m._nonPersistent.has(name)) out.set(key(name), b);
    }
    return out;
  }

  /**
   * Copies values from `state` into this module's parameters and buffers (dtype converted as
   * needed). Reports missing, unexpected and mis-shaped keys; throws with all of them listed
   * when `strict` (default) and any is found, and always for mis-shaped keys.
   */
  loadStateDict(state: Map<string, Tensor> | Record<string, Tensor>, options: LoadOptions = {}): LoadReport {
    const entries = state instanceof Map ? state : new Map(Object.entries(state));
    const own = this.stateDict();
    const report: LoadReport = { missing: [], unexpected: [], mismatched: [] };
    for (const key of own.keys()) if (!entries.has(key)) report.missing.push(key);
    for (const [key, value] of entries) {
      const target = own.get(key);
      if (!target) report.unexpected.push(key);
      else if (!sameShape(target.shape, value.shape)) report.mismatched.push({ key, expected: target.shape, got: value.shape });
    }
    const strict = options.strict ?? true;
    if (report.mismatched.length > 0 || (strict && (report.missing.length > 0 || report.unexpected.length > 0))) {
      throw new Error(describeLoadProblems(this.constructor.name, report, options.source));
    }
    noGrad(() => {
      for (const [key, value] of entries) {
        const target = own.get(key);
        if (target) target.copy_(value);
      }
    });
    return report;
  }

  /** Frees every parameter and buffer below. The module must not be used afterwards. */
  dispose(): void {
    for (const m of this.modules()) {
      for (const p of m._parameters.values()) p?.dispose();
      for (const b of m._buffers.values()) b?.dispose();
    }
  }

  /** Extra text shown after the class name in `toString` (layer sizes). */
  extraRepr(): string {
    return '';
  }

  toString(): string {
    const children = [...this.namedChildren()];
    const head = `${this.constructor.name}(${this.extraRepr()}`;
    if (children.length === 0) return `${head})`;
    const lines = children.map(([name, m]) => `  (${name}): ${String(m).replace(/\n/g, '\n  ')}`);
    return `${head}${this.extraRepr() ? ',' : ''}\n${lines.join('\n')}\n)`;
  }
}

function removeFrom<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}

function checkName(m: Module<any, any>, name: string): void {
  if (typeof name !== 'string' || name === '' || name.includes('.')) {
    throw new TypeError(`${m.constructor.name}: invalid attribute name '${String(name)}' (non-empty, no dots)`);
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function describeLoadProblems(name: string, r: LoadReport, source?: string): string {
  const list = (keys: string[]) => (keys.length > 12 ? `${keys.slice(0, 12).join(', ')}, ... (${keys.length} in all)` : keys.join(', '));
  const parts = [`Error loading a state dict${source ? ` from ${source}` : ''} into ${name}:`];
  if (r.mismatched.length) {
    parts.push(`  mis-shaped: ${r.mismatched.slice(0, 12).map((m) => `${m.key} (checkpoint [${m.got.join(',')}], model [${m.expected.join(',')}])`).join('; ')}`);
  }
  if (r.missing.length) parts.push(`  missing: ${list(r.missing)}`);
  if (r.unexpected.length) parts.push(`  unexpected: ${list(r.unexpected)}`);
  return parts.join('\n');
}

// --- registration through property assignment -------------------------------------------------

function register(target: Module<any, any>, key: string, value: unknown): void {
  if (value instanceof Parameter) {
    target._buffers.delete(key);
    target._modules.delete(key);
    target._parameters.set(key, value);
  } else if (value instanceof Module) {
    target._parameters.delete(key);
    target._buffers.delete(key);
    target._modules.set(key, value);
  } else if (target._parameters.has(key)) {
    if (value !== null) {
      throw new TypeError(`${target.constructor.name}.${key} is a parameter: assign a Parameter (new Parameter(tensor)) or null`);
    }
    target._parameters.set(key, null);
  } else if (target._buffers.has(key)) {
    if (value !== null && !(value instanceof Tensor)) throw new TypeError(`${target.constructor.name}.${key} is a buffer: assign a Tensor or null`);
    if (value) keep(value);
    target._buffers.set(key, value as Tensor | null);
  } else if (target._modules.has(key)) {
    if (value !== null) throw new TypeError(`${target.constructor.name}.${key} is a submodule: assign a Module or null`);
    target._modules.set(key, null);
  }
}

function registerOnSet(target: Module<any, any>, key: string | symbol, value: unknown): boolean {
  if (typeof key === 'string') register(target, key, value);
  return Reflect.set(target, key, value);
}

function registerOnDefine(target: Module<any, any>, key: string | symbol, desc: PropertyDescriptor): boolean {
  if (typeof key === 'string' && 'value' in desc && desc.enumerable !== false) register(target, key, desc.value);
  return Reflect.defineProperty(target, key, desc);
}

function unregister(target: Module<any, any>, key: string | symbol): boolean {
  if (typeof key === 'string') {
    target._parameters.delete(key);
    target._buffers.delete(key);
    target._modules.delete(key);
  }
  return Reflect.deleteProperty(target, key);
}
