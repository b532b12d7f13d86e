// Matrix products.
import { Tensor, callTensorOp as T } from '../engine/tensor.js';

/** NumPy-style matrix product with broadcasting over batch dimensions. */
export const matmul = (a: Tensor, b: Tensor): Tensor => T('aten::matmul', [a, b]);
export const mm = (a: Tensor, b: Tensor): Tensor => T('aten::mm', [a, b]);
/** Batched product of [B,n,m] and [B,m,p]. */
export const bmm = (a: Tensor, b: Tensor): Tensor => T('aten::bmm', [a, b]);
/** x·Wᵀ + b with PyTorch's weight layout [out, in]. */
export const linear = (input: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor => T('aten::linear', [input, weight, bias]);
