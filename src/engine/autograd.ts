// Grad-mode scopes and multi-root backward. The tape itself is libtorch's.
import { native } from './native.js';
import type { Tensor } from './tensor.js';

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const previous = native.setGradEnabled(enabled);
  try {
    const result = fn();
    if (result instanceof Promise) {
      throw new TypeError('noGrad/enableGrad: fn must be synchronous (grad mode is process-wide, not per async task)');
    }
    return result;
  } finally {
    native.setGradEnabled(previous);
  }
}

/** Runs `fn` without recording autograd history (evaluation, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/** Runs `fn` with autograd recording on, even inside `noGrad`. */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

/** Back-propagates from several roots at once, like `torch.autograd.backward`. */
export function backward(
  roots: readonly Tensor[],
  gradients: readonly (Tensor | null)[] = [],
  options: { retainGraph?: boolean } = {},
): void {
  if (gradients.length > roots.length) {
    throw new RangeError(`backward: ${gradients.length} gradients given for ${roots.length} roots`);
  }
  native.backward(
    roots.map((r) => r.handle),
    roots.map((_, i) => gradients[i]?.handle ?? null),
    options.retainGraph ?? false,
  );
}
