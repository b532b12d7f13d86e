// Reductions, sorting and top-k.
import { Tensor, callOp, callTensorOp as T } from '../engine/tensor.js';

export interface ReduceOptions {
  keepdim?: boolean;
}

type Dims = number | readonly number[];
const dimList = (dim: Dims): readonly number[] => (typeof dim === 'number' ? [dim] : dim);

/** Sum of all elements, or over `dim`. */
export function sum(a: Tensor, dim?: Dims, options: ReduceOptions = {}): Tensor {
  if (dim === undefined) return T('aten::sum', [a]);
  return T('aten::sum.dim_IntList', [a, dimList(dim), options.keepdim ?? false]);
}
export function mean(a: Tensor, dim?: Dims, options: ReduceOptions = {}): Tensor {
  if (dim === undefined) return T('aten::mean', [a]);
  return T('aten::mean.dim', [a, dimList(dim), options.keepdim ?? false]);
}

export interface ValuesIndices {
  values: Tensor;
  indices: Tensor;
}

function valuesIndices(result: unknown): ValuesIndices {
  const [values, indices] = result as [Tensor, Tensor];
  return { values, indices };
}

/** Largest element overall. */
export const max = (a: Tensor): Tensor => T('aten::max', [a]);
export const min = (a: Tensor): Tensor => T('aten::min', [a]);
/** Largest elements along `dim` and where they are. */
export const maxDim = (a: Tensor, dim: number, options: ReduceOptions = {}): ValuesIndices =>
  valuesIndices(callOp('aten::max.dim', [a, dim, options.keepdim ?? false]));
export const minDim = (a: Tensor, dim: number, options: ReduceOptions = {}): ValuesIndices =>
  valuesIndices(callOp('aten::min.dim', [a, dim, options.keepdim ?? false]));
export const argmax = (a: Tensor, dim?: number, options: ReduceOptions = {}): Tensor =>
  T('aten::argmax', [a, dim ?? null, options.keepdim ?? false]);
export const argmin = (a: Tensor, dim?: number, options: ReduceOptions = {}): Tensor =>
  T('aten::argmin', [a, dim ?? null, options.keepdim ?? false]);

export interface VarianceOptions extends ReduceOptions {
  /** Bessel's correction: 1 (default) for the sample variance, 0 for the population variance. */
  correction?: number;
}
export const variance = (a: Tensor, dim?: Dims, options: VarianceOptions = {}): Tensor =>
  T('aten::var.correction', [a, dim === undefined ? null : dimList(dim), options.correction ?? 1, options.keepdim ?? false]);
export const std = (a: Tensor, dim?: Dims, options: VarianceOptions = {}): Tensor =>
  T('aten::std.correction', [a, dim === undefined ? null : dimList(dim), options.correction ?? 1, options.keepdim ?? false]);
/** The vector p-norm over all elements or `dim` (torch.linalg.vector_norm). */
export const vectorNorm = (a: Tensor, ord = 2, dim?: Dims, options: ReduceOptions = {}): Tensor =>
  T('aten::linalg_vector_norm', [a, ord, dim === undefined ? null : dimList(dim), options.keepdim ?? false, null]);
export const logsumexp = (a: Tensor, dim: Dims, options: ReduceOptions = {}): Tensor =>
  T('aten::logsumexp', [a, dimList(dim), options.keepdim ?? false]);
export const all = (a: Tensor): Tensor => T('aten::all', [a]);
export const any = (a: Tensor): Tensor => T('aten::any', [a]);
/** p-norm over all elements or `dim` (p = 2 by default). */
export const norm = (a: Tensor, p = 2, dim?: Dims, options: ReduceOptions = {}): Tensor =>
  dim === undefined ? T('aten::norm.Scalar', [a, p]) : T('aten::norm.ScalarOpt_dim', [a, p, dimList(dim), options.keepdim ?? false]);

/** The k largest (or smallest) elements along `dim` (last by default), sorted. */
export function topk(a: Tensor, k: number, options: { dim?: number; largest?: boolean; sorted?: boolean } = {}): ValuesIndices {
  return valuesIndices(callOp('aten::topk', [a, k, options.dim ?? -1, options.largest ?? true, options.sorted ?? true]));
}
export function sort(a: Tensor, options: { dim?: number; descending?: boolean; stable?: boolean } = {}): ValuesIndices {
  return valuesIndices(callOp('aten::sort.stable', [a, options.stable ?? false, options.dim ?? -1, options.descending ?? false]));
}
export const argsort = (a: Tensor, options: { dim?: number; descending?: boolean } = {}): Tensor =>
  T('aten::argsort', [a, options.dim ?? -1, options.descending ?? false]);
export const cumsum = (a: Tensor, dim: number): Tensor => T('aten::cumsum', [a, dim]);
