// Views, reshapes, joins, splits and indexing.
import { Tensor, callOp, callTensorOp as T } from '../engine/tensor.js';

export const reshape = (a: Tensor, shape: readonly number[]): Tensor => T('aten::reshape', [a, shape]);
/** A view with a new shape; fails (use reshape) when the memory layout does not allow one. */
export const view = (a: Tensor, shape: readonly number[]): Tensor => T('aten::view', [a, shape]);
export const flatten = (a: Tensor, startDim = 0, endDim = -1): Tensor => T('aten::flatten.using_ints', [a, startDim, endDim]);
export const unflatten = (a: Tensor, dim: number, sizes: readonly number[]): Tensor => T('aten::unflatten.int', [a, dim, sizes]);
export const permute = (a: Tensor, dims: readonly number[]): Tensor => T('aten::permute', [a, dims]);
export const transpose = (a: Tensor, dim0: number, dim1: number): Tensor => T('aten::transpose.int', [a, dim0, dim1]);
export const squeeze = (a: Tensor, dim?: number): Tensor => (dim === undefined ? T('aten::squeeze', [a]) : T('aten::squeeze.dim', [a, dim]));
export const unsqueeze = (a: Tensor, dim: number): Tensor => T('aten::unsqueeze', [a, dim]);
/** Broadcasts singleton dimensions to `shape` without copying (-1 keeps a size). */
export const expand = (a: Tensor, shape: readonly number[]): Tensor => T('aten::expand', [a, shape]);
export const expandAs = (a: Tensor, other: Tensor): Tensor => T('aten::expand_as', [a, other]);
/** Tiles the tensor `repeats[i]` times along each dimension (copies). */
export const repeat = (a: Tensor, repeats: readonly number[]): Tensor => T('aten::repeat', [a, repeats]);

function checkList(tensors: readonly Tensor[], what: string): void {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new TypeError(`${what}: needs a non-empty array of tensors`);
}
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  checkList(tensors, 'cat');
  return T('aten::cat', [tensors, dim]);
}
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  checkList(tensors, 'stack');
  return T('aten::stack', [tensors, dim]);
}
/** Splits into pieces of `size` (the last may be smaller), or into the listed sizes. */
export function split(a: Tensor, sizeOrSections: number | readonly number[], dim = 0): Tensor[] {
  if (typeof sizeOrSections === 'number') return callOp('aten::split.Tensor', [a, sizeOrSections, dim]) as Tensor[];
  return callOp('aten::split_with_sizes', [a, sizeOrSections, dim]) as Tensor[];
}
export const chunk = (a: Tensor, chunks: number, dim = 0): Tensor[] => callOp('aten::chunk', [a, chunks, dim]) as Tensor[];
/** `length` elements from `start` along `dim` (a view). */
export const narrow = (a: Tensor, dim: number, start: number, length: number): Tensor => T('aten::narrow', [a, dim, start, length]);
export const select = (a: Tensor, dim: number, index: number): Tensor => T('aten::select.int', [a, dim, index]);
export const indexSelect = (a: Tensor, dim: number, index: Tensor): Tensor => T('aten::index_select', [a, dim, index]);
export const gather = (a: Tensor, dim: number, index: Tensor): Tensor => T('aten::gather', [a, dim, index]);
/** Out-of-place scatter: a copy of `a` with `src` (tensor or number) written at `index` along `dim`. */
export function scatter(a: Tensor, dim: number, index: Tensor, src: Tensor | number): Tensor {
  return T(`aten::scatter.${src instanceof Tensor ? 'src' : 'value'}`, [a, dim, index, src]);
}
/** Out-of-place scatter-add. */
export const scatterAdd = (a: Tensor, dim: number, index: Tensor, src: Tensor): Tensor => T('aten::scatter_add', [a, dim, index, src]);
/** Advanced indexing with one index tensor (or null to keep) per leading dimension. */
export const index = (a: Tensor, indices: readonly (Tensor | null)[]): Tensor => T('aten::index.Tensor', [a, indices]);
export const maskedFill = (a: Tensor, mask: Tensor, value: number): Tensor => T('aten::masked_fill.Scalar', [a, mask, value]);
/** Cyclic shift along dims (Swin's shifted windows). */
export function roll(a: Tensor, shifts: number | readonly number[], dims: number | readonly number[] = []): Tensor {
  return T('aten::roll', [a, typeof shifts === 'number' ? [shifts] : shifts, typeof dims === 'number' ? [dims] : dims]);
}
export const flip = (a: Tensor, dims: readonly number[]): Tensor => T('aten::flip', [a, dims]);
export const tril = (a: Tensor, diagonal = 0): Tensor => T('aten::tril', [a, diagonal]);
export const triu = (a: Tensor, diagonal = 0): Tensor => T('aten::triu', [a, diagonal]);
