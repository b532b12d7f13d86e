// A Parameter is a Tensor that a Module trains: it requires grad by default and lives outside
// every scope until its module is disposed.
import { Tensor, keep } from '../engine/index.js';

export class Parameter extends Tensor {
  /** Takes over `data` (which must not be used afterwards) as a trainable tensor. */
  constructor(data: Tensor, requiresGrad = true) {
    super(data._takeHandle());
    keep(this);
    if (requiresGrad) this.requiresGrad = true;
  }

  override toString(): string {
    return this.isDisposed ? 'Parameter(disposed)' : super.toString().replace(/^Tensor/, 'Parameter');
  }
}
