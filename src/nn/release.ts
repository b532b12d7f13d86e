// Early release of temporaries inside forward passes. JS has no reference counting, so a tensor
// made mid-forward would otherwise live until its scope ends, holding every activation of the
// network at once — more memory, colder caches and slower inference than PyTorch, which frees
// each intermediate as soon as it is consumed. (Autograd keeps what backward needs: dropping our
// handle only drops our reference.)
import type { Tensor } from '../engine/index.js';
import type { Module } from './module.js';

/**
 * Disposes temporaries that the caller made and no longer uses. Tensors outside every scope —
 * parameters, buffers, kept tensors — are left alone, so a hook that wants to hold on to an
 * activation calls `keep()` on it.
 */
export function release(...tensors: (Tensor | null | undefined)[]): void {
  for (const t of tensors) if (t && t._scope !== null) t.dispose();
}

export type Step = Module<[Tensor], Tensor> | ((t: Tensor) => Tensor);

/** Applies steps in order, releasing each intermediate once the next step has used it. `x` itself is kept. */
export function pipe(x: Tensor, ...steps: Step[]): Tensor {
  let h = x;
  for (const step of steps) {
    const next = typeof step === 'function' ? step(h) : step.call(h);
    if (h !== x && next !== h) release(h);
    h = next;
  }
  return h;
}
