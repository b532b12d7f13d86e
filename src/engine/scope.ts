// Deterministic lifetime for native tensors. libtorch memory is invisible to V8's heap, so
// waiting for the GC would let a training loop hold gigabytes: every tensor made inside a
// scope is freed when the scope ends, except what the scope returns or what `keep` claims.
// Scopes are synchronous and strictly nested (a stack), like TensorFlow.js `tidy` and
// TorchSharp's DisposeScope; async code opens a `Scope` around each synchronous section.

/** What a scope can own. Tensor implements it. */
export interface Trackable {
  dispose(): void;
  /** @internal the scope that will dispose this object, if any */
  _scope: Scope | null;
  /** @internal called when the object leaves every scope alive: from now on the GC may free it */
  _unscoped(): void;
}

let current: Scope | null = null;

export class Scope {
  readonly #owned = new Set<Trackable>();
  readonly #parent: Scope | null;
  #open = true;

  /** Opens a scope and makes it the current one. Close it with `end()`, in a `finally`. */
  constructor() {
    this.#parent = current;
    current = this;
  }

  /** Number of objects this scope will dispose when it ends. */
  get size(): number {
    return this.#owned.size;
  }

  /** @internal */
  _adopt(t: Trackable): void {
    if (t._scope) t._scope.#owned.delete(t);
    t._scope = this;
    this.#owned.add(t);
  }

  /** @internal */
  _release(t: Trackable): void {
    this.#owned.delete(t);
    t._scope = null;
  }

  /** @internal taken out of this scope alive (kept, or surviving the outermost scope) */
  _escape(t: Trackable): void {
    this._release(t);
    t._unscoped();
  }

  /**
   * Ends the scope: disposes everything it owns except `survivors` (tensors, or arrays and plain
   * objects holding them), which move to the enclosing scope.
   */
  end(survivors?: unknown): void {
    if (!this.#open) return;
    if (current !== this) {
      throw new Error('Scope.end(): scopes must end in the reverse order they began (an inner scope is still open)');
    }
    this.#open = false;
    current = this.#parent;
    if (survivors !== undefined) {
      visitTrackables(survivors, (t) => {
        if (t._scope === this) {
          if (this.#parent) this.#parent._adopt(t);
          else this._escape(t);
        }
      });
    }
    for (const t of this.#owned) {
      t._scope = null;
      t.dispose();
    }
    this.#owned.clear();
  }

  [Symbol.dispose](): void {
    this.end();
  }
}

/** @internal called by every new Tensor */
export function trackInCurrentScope(t: Trackable): void {
  if (current) current._adopt(t);
  else t._unscoped();
}

/**
 * Runs `fn` in a new scope: every tensor created inside is disposed when it returns, except the
 * tensors in its result (a tensor, or arrays/objects of them), which move to the enclosing scope.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Scope();
  let result: T;
  try {
    result = fn();
  } catch (err) {
    scope.end();
    throw err;
  }
  if (result instanceof Promise) {
    scope.end();
    throw new TypeError(
      'tidy(fn): fn returned a Promise. Scopes are synchronous; in async code open a `new Scope()` ' +
        'around each synchronous section and call `end()` in a finally block.',
    );
  }
  scope.end(result);
  return result;
}

/** Takes tensors out of every scope: they live until disposed explicitly (or garbage-collected). */
export function keep<T>(value: T): T {
  visitTrackables(value, (t) => {
    if (t._scope) t._scope._escape(t);
  });
  return value;
}

function isTrackable(v: unknown): v is Trackable {
  return typeof v === 'object' && v !== null && '_scope' in v && typeof (v as Trackable)._unscoped === 'function';
}

function visitTrackables(value: unknown, visit: (t: Trackable) => void, depth = 0): void {
  if (depth > 8 || value === null || typeof value !== 'object') return;
  if (isTrackable(value)) return visit(value);
  if (Array.isArray(value)) {
    for (const v of value) visitTrackables(v, visit, depth + 1);
  } else if (value instanceof Map) {
    for (const v of value.values()) visitTrackables(v, visit, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) visitTrackables(v, visit, depth + 1);
  }
}
