// Composite ops with hand-written backward passes (native/src/fused.cc), made of ATen ops: the same
// math as the obvious composition, with less work or memory in training. (conv2d routes convs
// whose bias or wide depthwise kernel trains to trainable_conv2d there by itself.)
import { Tensor, callTensorOp as T } from '../engine/tensor.js';

/**
 * z = ρ·(Y1 − μ·r) + Y2 + c with [Y1; Y2] = conv1x1(x, wcat) (wcat [2d,C,1,1]) and ρ = (var + eps)^−½:
 * Mona's scaled LayerNorm folded into its first projection (see MonaBase.foldedProject1). `mean` and
 * `var` [N,1,H,W] are x's statistics over channels, computed without autograd; the op's backward
 * differentiates through them. x [N,C,H,W] (channels-last is fastest); returns [N,d,H,W].
 */
export function monaFoldedProject(x: Tensor, wcat: Tensor, r: Tensor, c: Tensor, mean: Tensor, variance: Tensor, eps: number): Tensor {
  return T('deltatune::mona_folded_project', [x, wcat, r, c, mean, variance, eps]);
}
