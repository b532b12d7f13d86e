// PyTorch's default initialisation of convolution and linear layers (reset_parameters).
import type { Tensor } from '../engine/index.js';
import { empty, kaimingUniform_, uniform_, fans } from '../ops/index.js';
import { Parameter } from './parameter.js';

let initialising = true;

/**
 * Builds modules without random initialisation (parameters hold uninitialised memory): for
 * models whose every parameter is about to be overwritten by a checkpoint.
 */
export function withoutInitialisation<T>(build: () => T): T {
  const previous = initialising;
  initialising = false;
  try {
    return build();
  } finally {
    initialising = previous;
  }
}

/** Whether modules being built now should initialise their parameters. */
export function shouldInitialise(): boolean {
  return initialising;
}

/** A weight initialised as nn.Conv2d / nn.Linear do: kaiming-uniform with a = √5. */
export function defaultWeight(shape: number[]): Parameter {
  const w = empty(shape);
  if (initialising) kaimingUniform_(w, { a: Math.sqrt(5) });
  return new Parameter(w);
}

/** The matching bias: uniform in ±1/√fan_in of the weight. */
export function defaultBias(size: number, weightShape: readonly number[]): Parameter {
  const b = empty([size]);
  const { fanIn } = fans(weightShape);
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  if (initialising) uniform_(b, -bound, bound);
  return new Parameter(b);
}

export function constantParameter(shape: number[], value: number): Parameter {
  const t: Tensor = empty(shape);
  t.fill_(value);
  return new Parameter(t);
}
