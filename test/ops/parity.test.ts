// Op parity against PyTorch. test/oracle/ops.py runs every case of its table through torch and
// records inputs, outputs, a random gradient for each differentiable output and the resulting
// input gradients; the `cases` table below mirrors it name for name with deltatune's API. The
// tail of the file holds the checks an oracle cannot make (random draws, dropout, initialisers).
//
// Conventions shared with ops.py: a case returns a tensor or an array of tensors; every output
// that requires grad is a backward root with the oracle's gradient (gradOut[i]), all roots at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dt from '../../src/index.js';
import { Tensor, backward, isFloating, tidy } from '../../src/index.js';
import { assertClose, fromOracle, runOracle, type OracleArray } from '../helpers.js';

interface OracleCase {
  inputs: Record<string, OracleArray>;
  requiresGrad: string[];
  outputs: OracleArray[];
  gradOut: (OracleArray | null)[] | null;
  grads: Record<string, OracleArray | null>;
}

/** Every input name ops.py uses; reading any other name from a case's inputs throws. */
type Name = 'a' | 'b' | 'c' | 'hi' | 'i' | 'idx' | 'j' | 'lo' | 'm' | 'n' | 'p' | 'rm' | 'rv' | 't' | 'w' | 'x' | 'y' | 'z';
type In = Readonly<Record<Name, Tensor>>;
type Run = (i: In) => Tensor | readonly Tensor[];
interface Spec {
  run: Run;
  /** Output tolerances (default rtol 1e-5, atol 1e-5); integer and bool outputs are always exact. */
  rtol?: number;
  atol?: number;
  /** Input-gradient tolerances (default: the output ones). */
  gradRtol?: number;
  gradAtol?: number;
}

const RTOL = 1e-5;
const ATOL = 1e-5;

const vi = (r: dt.ValuesIndices): Tensor[] => [r.values, r.indices];
const cmp = (op: 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge'): Record<string, Run> => ({
  [op]: (i) => dt[op](i.x, i.y),
  [`${op}_scalar`]: (i) => dt[op](i.x, 1),
});

// Tolerances: rtol 1e-5, atol 1e-5 by default (float32 ε ≈ 6e-8; both sides run the same
// libtorch 1.13, and with one thread the outputs and gradients agree to 1e-6 relative everywhere;
// deltatune uses every core, which reorders some sums, e.g. conv weight gradients, by ~2e-6
// relative). Only two cases are looser, both for the same reason: the rounding error of a long
// float32 sum scales with the magnitude of its terms/partial sums, not with the (possibly small)
// result, so an element that nearly cancels needs an absolute allowance:
//  * sum_large: 64 000 N(0,1) terms, partial sums up to ~√n = 250, so a reordering moves the
//    result by up to ~250·ε·log n ≈ 1e-4 (observed 1e-5);
//  * matmul_large: K = 256 products of N(0,1) numbers per element (|out| ~ 16); the input
//    gradients sum 32..64 such products; BLAS blocking depends on the thread count.
const cases: Record<string, Run | Spec> = {
  // --- creation ------------------------------------------------------------------------------
  zeros: () => dt.zeros([2, 3]),
  zeros_int64: () => dt.zeros([2, 2], { dtype: 'int64' }),
  zeros_0d: () => dt.zeros([]),
  ones: () => dt.ones([3, 1]),
  ones_empty: () => dt.ones([0, 3]),
  full: () => dt.full([2, 2], 1.5),
  full_0d: () => dt.full([], -3),
  full_int32: () => dt.full([3], 7, { dtype: 'int32' }),
  full_bool: () => dt.full([2, 2], true),
  arange_end: () => dt.arange(5),
  arange_start_step: () => dt.arange(2, 11, 3),
  arange_negative_step: () => dt.arange(5, 0, -2),
  arange_float_step: () => dt.arange(0, 1, 0.1),
  arange_float_start: () => dt.arange(0.5, 3),
  arange_float_dtype: () => dt.arange(4, undefined, 1, { dtype: 'float32' }),
  arange_empty: () => dt.arange(3, 3),
  linspace: () => dt.linspace(-1, 1, 5),
  linspace_one: () => dt.linspace(2, 3, 1),
  linspace_fraction: () => dt.linspace(0.1, 0.7, 7),
  eye: () => dt.eye(3),
  eye_rect: () => dt.eye(2, 4),
  tensor_nested: () => dt.tensor([[1, 2, 3], [4, 5, 6]]),
  tensor_0d: () => dt.tensor(2.5),
  tensor_bool: () => dt.tensor([[true, false], [false, true]]),
  tensor_bigint: () => dt.tensor([1n, -(2n ** 40n), 3n]),
  tensor_int32: () => dt.tensor([1, -2, 3], { dtype: 'int32' }),
  tensor_float64: () => dt.tensor([0.1, 0.2], { dtype: 'float64' }),
  tensor_empty: () => dt.tensor([]),

  // --- binary arithmetic ---------------------------------------------------------------------
  add: (i) => dt.add(i.x, i.y),
  add_alpha: (i) => dt.add(i.x, i.y, 2.5),
  add_scalar: (i) => dt.add(i.x, 1.5),
  add_int_scalar: (i) => dt.add(i.x, 2),
  add_0d: (i) => dt.add(i.x, i.y),
  add_0d_0d: (i) => dt.add(i.x, i.y),
  add_noncontig: (i) => i.x.transpose(0, 1).add(i.y),
  add_empty: (i) => dt.add(i.x, i.y),
  add_size1_dims: (i) => dt.add(i.x, i.y),
  add_int64: (i) => dt.add(i.a, i.b),
  add_promote: (i) => dt.add(i.a, i.x),
  sub: (i) => dt.sub(i.x, i.y),
  sub_alpha_scalar: (i) => dt.sub(i.x, 2, 3),
  mul: (i) => dt.mul(i.x, i.y),
  mul_scalar: (i) => dt.mul(i.x, -0.5),
  mul_int_scalar: (i) => dt.mul(i.a, 3),
  div: (i) => dt.div(i.x, i.y),
  div_scalar: (i) => dt.div(i.x, 4),
  div_trunc: (i) => dt.div(i.x, i.y, 'trunc'),
  div_floor: (i) => dt.div(i.x, i.y, 'floor'),
  div_floor_scalar: (i) => dt.div(i.x, 3, 'floor'),
  div_trunc_scalar: (i) => dt.div(i.x, -1.5, 'trunc'),
  div_int_true: (i) => dt.div(i.a, i.b),
  div_int_trunc: (i) => dt.div(i.a, i.b, 'trunc'),
  div_int_floor: (i) => dt.div(i.a, i.b, 'floor'),
  pow_tensor_tensor: (i) => dt.pow(i.x, i.y),
  pow_tensor_int: (i) => dt.pow(i.x, 3),
  pow_tensor_float: (i) => dt.pow(i.x, 0.5),
  pow_tensor_negative: (i) => dt.pow(i.x, -2),
  pow_scalar_tensor: (i) => dt.pow(2, i.x),
  pow_float_scalar_tensor: (i) => dt.pow(1.5, i.x),
  pow_int64: (i) => dt.pow(i.a, 2),
  remainder: (i) => dt.remainder(i.x, i.y),
  remainder_negative_scalar: (i) => dt.remainder(i.x, -1.5),
  remainder_int64: (i) => dt.remainder(i.a, 3),
  maximum: (i) => dt.maximum(i.x, i.y),
  minimum: (i) => dt.minimum(i.x, i.y),
  addcmul: (i) => dt.addcmul(i.x, i.y, i.z, 0.5),
  addcmul_default: (i) => dt.addcmul(i.x, i.y, i.z),
  addcdiv: (i) => dt.addcdiv(i.x, i.y, i.z, -2),
  addcdiv_default: (i) => dt.addcdiv(i.x, i.y, i.z),
  lerp_scalar: (i) => dt.lerp(i.x, i.y, 0.3),
  lerp_tensor: (i) => dt.lerp(i.x, i.y, i.w),

  // --- comparisons, logic, where, clamp ------------------------------------------------------
  ...cmp('eq'), ...cmp('ne'), ...cmp('lt'), ...cmp('le'), ...cmp('gt'), ...cmp('ge'),
  lt_int64: (i) => dt.lt(i.a, i.b),
  gt_float_scalar: (i) => dt.gt(i.x, 0.25),
  logical_and: (i) => dt.logicalAnd(i.m, i.n),
  logical_or: (i) => dt.logicalOr(i.m, i.n),
  logical_not: (i) => dt.logicalNot(i.m),
  all: (i) => dt.all(i.m),
  any: (i) => dt.any(i.m),
  isnan: (i) => dt.isnan(i.x),
  isfinite: (i) => dt.isfinite(i.x),
  where: (i) => dt.where(i.c, i.x, i.y),
  where_broadcast_condition: (i) => dt.where(i.c, i.x, i.y),
  where_tensor_scalar: (i) => dt.where(i.c, i.x, 0.5),
  where_scalar_tensor: (i) => dt.where(i.c, -1, i.y),
  where_scalar_scalar: (i) => dt.where(i.c, 1.5, -2.5),
  where_scalar_scalar_int: (i) => dt.where(i.c, 1, 0),
  where_0d: (i) => dt.where(i.c, i.x, i.y),
  clamp: (i) => dt.clamp(i.x, -0.5, 0.5),
  clamp_min: (i) => dt.clamp(i.x, 0),
  clamp_max: (i) => dt.clamp(i.x, null, 0.2),
  clamp_tensor: (i) => dt.clamp(i.x, i.lo, i.hi),
  clamp_tensor_min: (i) => dt.clamp(i.x, i.lo),
  clamp_tensor_max: (i) => dt.clamp(i.x, null, i.hi),
  clamp_int64: (i) => dt.clamp(i.a, 0, 3),

  // --- unary math ----------------------------------------------------------------------------
  abs: (i) => dt.abs(i.x),
  neg: (i) => dt.neg(i.x),
  exp: (i) => dt.exp(i.x),
  log: (i) => dt.log(i.x),
  log1p: (i) => dt.log1p(i.x),
  sqrt: (i) => dt.sqrt(i.x),
  rsqrt: (i) => dt.rsqrt(i.x),
  square: (i) => dt.square(i.x),
  reciprocal: (i) => dt.reciprocal(i.x),
  reciprocal_negative: (i) => dt.reciprocal(i.x),
  erf: (i) => dt.erf(i.x),
  erfinv: (i) => dt.erfinv(i.x),
  sin: (i) => dt.sin(i.x),
  cos: (i) => dt.cos(i.x),
  floor: (i) => dt.floor(i.x),
  ceil: (i) => dt.ceil(i.x),
  round: (i) => dt.round(i.x),
  round_half_even: (i) => dt.round(i.x),
  sign: (i) => dt.sign(i.x),
  exp_0d: (i) => dt.exp(i.x),
  abs_empty: (i) => dt.abs(i.x),
  sin_noncontig: (i) => dt.sin(i.x.transpose(0, 1)),
  sqrt_narrow: (i) => dt.sqrt(i.x.narrow(1, 1, 2)),
  abs_int64: (i) => dt.abs(i.a),

  // --- matrix products -----------------------------------------------------------------------
  matmul_1d_1d: (i) => dt.matmul(i.x, i.y),
  matmul_1d_2d: (i) => dt.matmul(i.x, i.y),
  matmul_2d_1d: (i) => dt.matmul(i.x, i.y),
  matmul_2d: (i) => dt.matmul(i.x, i.y),
  matmul_batched: (i) => dt.matmul(i.x, i.y),
  matmul_broadcast: (i) => dt.matmul(i.x, i.y),
  matmul_batched_1d: (i) => dt.matmul(i.x, i.y),
  matmul_noncontig: (i) => dt.matmul(i.x.transpose(0, 1), i.y.transpose(0, 1)),
  matmul_large: { run: (i) => dt.matmul(i.x, i.y), atol: 1e-4 }, // see the tolerance note above
  matmul_empty: (i) => dt.matmul(i.x, i.y),
  matmul_size1: (i) => dt.matmul(i.x, i.y),
  mm: (i) => dt.mm(i.x, i.y),
  mm_noncontig: (i) => dt.mm(i.x, i.y.transpose(0, 1)),
  bmm: (i) => dt.bmm(i.x, i.y),
  bmm_noncontig: (i) => dt.bmm(i.x, i.y.transpose(1, 2)),
  linear: (i) => dt.linear(i.x, i.w, i.b),
  linear_nobias: (i) => dt.linear(i.x, i.w),
  linear_1d: (i) => dt.linear(i.x, i.w, i.b),
  linear_noncontig_weight: (i) => dt.linear(i.x, i.w.transpose(0, 1), i.b),

  // --- convolution and pooling ---------------------------------------------------------------
  conv2d: (i) => dt.conv2d(i.x, i.w, i.b),
  conv2d_stride_padding: (i) => dt.conv2d(i.x, i.w, i.b, { stride: 2, padding: 1 }),
  conv2d_pairs: (i) => dt.conv2d(i.x, i.w, null, { stride: [2, 1], padding: [1, 2] }),
  conv2d_same: (i) => dt.conv2d(i.x, i.w, i.b, { padding: 'same', dilation: 2 }),
  conv2d_same_even_kernel: (i) => dt.conv2d(i.x, i.w, null, { padding: 'same' }),
  conv2d_valid: (i) => dt.conv2d(i.x, i.w, null, { padding: 'valid' }),
  conv2d_dilation: (i) => dt.conv2d(i.x, i.w, i.b, { padding: 1, dilation: [2, 1] }),
  conv2d_groups: (i) => dt.conv2d(i.x, i.w, i.b, { padding: 1, groups: 2 }),
  conv2d_depthwise: (i) => dt.conv2d(i.x, i.w, i.b, { padding: 1, groups: 4 }),
  conv2d_channels_last: (i) => dt.conv2d(i.x.contiguous('channelsLast'), i.w, i.b, { padding: 1 }),
  conv2d_depthwise_channels_last: (i) => dt.conv2d(i.x.contiguous('channelsLast'), i.w, null, { stride: 2, padding: 1, groups: 4 }),
  conv2d_1x1_spatial: (i) => dt.conv2d(i.x, i.w, i.b),
  conv2d_noncontig: (i) => dt.conv2d(i.x.transpose(2, 3), i.w, null, { padding: 1 }),
  conv2d_empty_batch: (i) => dt.conv2d(i.x, i.w, i.b, { padding: 1 }),
  conv_transpose2d: (i) => dt.convTranspose2d(i.x, i.w, i.b),
  conv_transpose2d_stride: (i) => dt.convTranspose2d(i.x, i.w, i.b, { stride: 2, padding: 1, outputPadding: 1 }),
  conv_transpose2d_groups: (i) => dt.convTranspose2d(i.x, i.w, null, { stride: [2, 1], padding: [0, 1], groups: 2 }),
  conv_transpose2d_dilation: (i) => dt.convTranspose2d(i.x, i.w, null, { stride: 2, outputPadding: 1, dilation: 2 }),
  conv_transpose2d_channels_last: (i) => dt.convTranspose2d(i.x.contiguous('channelsLast'), i.w, i.b, { stride: 2 }),
  max_pool2d: (i) => dt.maxPool2d(i.x, 2),
  max_pool2d_stride_padding: (i) => dt.maxPool2d(i.x, 3, { stride: 2, padding: 1 }),
  max_pool2d_ceil: (i) => dt.maxPool2d(i.x, 3, { stride: 2, ceilMode: true }),
  max_pool2d_pairs: (i) => dt.maxPool2d(i.x, [2, 3], { stride: [1, 2] }),
  max_pool2d_dilation: (i) => dt.maxPool2d(i.x, 2, { stride: 1, dilation: 2 }),
  max_pool2d_noncontig: (i) => dt.maxPool2d(i.x.transpose(2, 3), 2),
  max_pool2d_channels_last: (i) => dt.maxPool2d(i.x.contiguous('channelsLast'), 3, { stride: 2, padding: 1 }),
  avg_pool2d: (i) => dt.avgPool2d(i.x, 2),
  avg_pool2d_exclude_pad: (i) => dt.avgPool2d(i.x, 3, { stride: 2, padding: 1, countIncludePad: false }),
  avg_pool2d_include_pad: (i) => dt.avgPool2d(i.x, 3, { stride: 2, padding: 1 }),
  avg_pool2d_ceil: (i) => dt.avgPool2d(i.x, 2, { ceilMode: true }),
  avg_pool2d_divisor: (i) => dt.avgPool2d(i.x, 2, { divisorOverride: 3 }),
  avg_pool2d_channels_last: (i) => dt.avgPool2d(i.x.contiguous('channelsLast'), 2),
  adaptive_avg_pool2d_1: (i) => dt.adaptiveAvgPool2d(i.x, 1),
  adaptive_avg_pool2d_nondivisible: (i) => dt.adaptiveAvgPool2d(i.x, [3, 2]),
  adaptive_avg_pool2d_up: (i) => dt.adaptiveAvgPool2d(i.x, 5),
  adaptive_avg_pool2d_channels_last: (i) => dt.adaptiveAvgPool2d(i.x.contiguous('channelsLast'), [2, 3]),
  adaptive_max_pool2d: (i) => dt.adaptiveMaxPool2d(i.x, [2, 3]),

  // --- normalisation -------------------------------------------------------------------------
  batch_norm_train: (i) => [dt.batchNorm(i.x, i.rm, i.rv, { weight: i.w, bias: i.b, training: true, momentum: 0.2 }), i.rm, i.rv],
  batch_norm_train_2d_noaffine: (i) => [dt.batchNorm(i.x, i.rm, i.rv, { training: true }), i.rm, i.rv],
  batch_norm_train_no_stats: (i) => dt.batchNorm(i.x, null, null, { weight: i.w, bias: i.b, training: true, eps: 1e-3 }),
  batch_norm_eval: (i) => [dt.batchNorm(i.x, i.rm, i.rv, { weight: i.w, bias: i.b, training: false }), i.rm, i.rv],
  layer_norm: (i) => dt.layerNorm(i.x, [6], i.w, i.b),
  layer_norm_noaffine: (i) => dt.layerNorm(i.x, [5, 6]),
  layer_norm_weight_eps: (i) => dt.layerNorm(i.x, [4], i.w, null, 1e-3),
  group_norm: (i) => dt.groupNorm(i.x, 3, i.w, i.b),
  group_norm_noaffine_noncontig: (i) => dt.groupNorm(i.x.transpose(2, 3), 2),
  group_norm_per_channel: (i) => dt.groupNorm(i.x, 4, i.w, i.b),
  layer_norm_noncontig: (i) => dt.layerNorm(i.x.transpose(0, 1), [3], i.w, i.b),

  // --- activations ---------------------------------------------------------------------------
  relu: (i) => dt.relu(i.x),
  relu_0d: (i) => dt.relu(i.x),
  relu6: (i) => dt.relu6(i.x),
  leaky_relu: (i) => dt.leakyRelu(i.x),
  leaky_relu_slope: (i) => dt.leakyRelu(i.x, 0.2),
  gelu: (i) => dt.gelu(i.x),
  gelu_tanh: (i) => dt.gelu(i.x, 'tanh'),
  silu: (i) => dt.silu(i.x),
  hardswish: (i) => dt.hardswish(i.x),
  sigmoid: (i) => dt.sigmoid(i.x),
  tanh: (i) => dt.tanh(i.x),
  softmax: (i) => dt.softmax(i.x, -1),
  softmax_dim0: (i) => dt.softmax(i.x, 0),
  softmax_noncontig: (i) => dt.softmax(i.x.transpose(0, 1), 1),
  log_softmax: (i) => dt.logSoftmax(i.x, 1),
  softmax_empty: (i) => dt.softmax(i.x, -1),
  softmax_0d: (i) => dt.softmax(i.x, 0),
  gelu_empty: (i) => dt.gelu(i.x),

  // --- losses --------------------------------------------------------------------------------
  cross_entropy: (i) => dt.crossEntropy(i.x, i.t),
  cross_entropy_sum: (i) => dt.crossEntropy(i.x, i.t, { reduction: 'sum' }),
  cross_entropy_none: (i) => dt.crossEntropy(i.x, i.t, { reduction: 'none' }),
  cross_entropy_weight: (i) => dt.crossEntropy(i.x, i.t, { weight: i.w }),
  cross_entropy_smoothing: (i) => dt.crossEntropy(i.x, i.t, { labelSmoothing: 0.1 }),
  cross_entropy_smoothing_weight_sum: (i) => dt.crossEntropy(i.x, i.t, { weight: i.w, reduction: 'sum', labelSmoothing: 0.2 }),
  cross_entropy_ignore_index: (i) => dt.crossEntropy(i.x, i.t, { ignoreIndex: 1 }),
  cross_entropy_ignore_default: (i) => dt.crossEntropy(i.x, i.t),
  cross_entropy_ignore_smoothing_weight: (i) => dt.crossEntropy(i.x, i.t, { weight: i.w, ignoreIndex: 1, labelSmoothing: 0.1 }),
  cross_entropy_probs: (i) => dt.crossEntropy(i.x, i.p),
  cross_entropy_probs_smoothing_none: (i) => dt.crossEntropy(i.x, i.p, { labelSmoothing: 0.1, reduction: 'none' }),
  cross_entropy_probs_weight: (i) => dt.crossEntropy(i.x, i.p, { weight: i.w }),
  cross_entropy_spatial: (i) => dt.crossEntropy(i.x, i.t),
  cross_entropy_unbatched: (i) => dt.crossEntropy(i.x, i.t),
  cross_entropy_noncontig: (i) => dt.crossEntropy(i.x.transpose(0, 1), i.t),
  cross_entropy_empty_sum: (i) => dt.crossEntropy(i.x, i.t, { reduction: 'sum' }),
  nll_loss: (i) => dt.nllLoss(dt.logSoftmax(i.x, 1), i.t),
  nll_loss_weight_sum: (i) => dt.nllLoss(dt.logSoftmax(i.x, 1), i.t, { weight: i.w, reduction: 'sum' }),
  nll_loss_ignore_none: (i) => dt.nllLoss(dt.logSoftmax(i.x, 1), i.t, { ignoreIndex: 0, reduction: 'none' }),
  nll_loss_spatial: (i) => dt.nllLoss(dt.logSoftmax(i.x, 1), i.t),
  mse_loss: (i) => dt.mseLoss(i.x, i.y),
  mse_loss_sum: (i) => dt.mseLoss(i.x, i.y, { reduction: 'sum' }),
  mse_loss_none: (i) => dt.mseLoss(i.x, i.y, { reduction: 'none' }),
  mse_loss_0d: (i) => dt.mseLoss(i.x, i.y),

  // --- reductions, sorting -------------------------------------------------------------------
  sum: (i) => dt.sum(i.x),
  sum_dim: (i) => dt.sum(i.x, 1),
  sum_dims_keepdim: (i) => dt.sum(i.x, [0, 2], { keepdim: true }),
  sum_negative_dim: (i) => dt.sum(i.x, -1),
  sum_noncontig: (i) => dt.sum(i.x.transpose(0, 1), 1),
  sum_empty: (i) => dt.sum(i.x),
  sum_empty_dim: (i) => dt.sum(i.x, 0),
  sum_0d: (i) => dt.sum(i.x),
  sum_large: { run: (i) => dt.sum(i.x), atol: 1e-4 }, // see the tolerance note above
  sum_int64: (i) => dt.sum(i.a),
  mean: (i) => dt.mean(i.x),
  mean_dim: (i) => dt.mean(i.x, 0),
  mean_dims_keepdim: (i) => dt.mean(i.x, [1, 2], { keepdim: true }),
  mean_large: (i) => dt.mean(i.x),
  max: (i) => dt.max(i.x),
  min: (i) => dt.min(i.x),
  max_dim: (i) => vi(dt.maxDim(i.x, 1)),
  max_dim_keepdim: (i) => vi(dt.maxDim(i.x, 0, { keepdim: true })),
  min_dim: (i) => vi(dt.minDim(i.x, -1)),
  min_dim_keepdim: (i) => vi(dt.minDim(i.x, 1, { keepdim: true })),
  max_dim_size1: (i) => vi(dt.maxDim(i.x, 1)),
  argmax: (i) => dt.argmax(i.x),
  argmax_dim: (i) => dt.argmax(i.x, 1),
  argmax_dim_keepdim: (i) => dt.argmax(i.x, 0, { keepdim: true }),
  argmin: (i) => dt.argmin(i.x),
  argmin_dim: (i) => dt.argmin(i.x, -1),
  var: (i) => dt.variance(i.x),
  var_dim_c0: (i) => dt.variance(i.x, 1, { correction: 0 }),
  var_dims_keepdim: (i) => dt.variance(i.x, [0, 2], { keepdim: true }),
  vector_norm_dim_keepdim: (i) => dt.vectorNorm(i.x, 2, -1, { keepdim: true }),
  std: (i) => dt.std(i.x),
  std_c0: (i) => dt.std(i.x, undefined, { correction: 0 }),
  std_dim_keepdim_c0: (i) => dt.std(i.x, -1, { correction: 0, keepdim: true }),
  var_single_c1: (i) => dt.variance(i.x, 0),
  logsumexp: (i) => dt.logsumexp(i.x, 1),
  logsumexp_dims_keepdim: (i) => dt.logsumexp(i.x, [0, 1], { keepdim: true }),
  norm: (i) => dt.norm(i.x),
  norm_p1_dim: (i) => dt.norm(i.x, 1, 1),
  norm_p3_keepdim: (i) => dt.norm(i.x, 3, 0, { keepdim: true }),
  norm_dims: (i) => dt.norm(i.x, 2, [1, 2]),
  norm_empty: (i) => dt.norm(i.x),
  topk: (i) => vi(dt.topk(i.x, 3)),
  topk_smallest_dim0: (i) => vi(dt.topk(i.x, 2, { dim: 0, largest: false })),
  sort_descending: (i) => vi(dt.sort(i.x, { descending: true })),
  sort_dim0: (i) => vi(dt.sort(i.x, { dim: 0 })),
  sort_stable_int64: (i) => vi(dt.sort(i.a, { stable: true })),
  argsort: (i) => dt.argsort(i.x, { dim: 1 }),
  argsort_descending: (i) => dt.argsort(i.x, { dim: 0, descending: true }),
  argsort_default_dim: (i) => dt.argsort(i.x),
  cumsum: (i) => dt.cumsum(i.x, 1),
  cumsum_noncontig: (i) => dt.cumsum(i.x.transpose(0, 1), 0),
  cumsum_int64: (i) => dt.cumsum(i.a, 0),

  // --- shape, joins, indexing ----------------------------------------------------------------
  reshape: (i) => dt.reshape(i.x, [4, -1]),
  reshape_noncontig: (i) => i.x.transpose(0, 1).reshape([-1]),
  reshape_0d: (i) => dt.reshape(i.x, [1, 1]),
  reshape_empty: (i) => dt.reshape(i.x, [3, 0, 2]),
  view: (i) => dt.view(i.x, [6, 4]),
  flatten: (i) => dt.flatten(i.x),
  flatten_range: (i) => dt.flatten(i.x, 1, 2),
  flatten_0d: (i) => dt.flatten(i.x),
  unflatten: (i) => dt.unflatten(i.x, 1, [2, 3]),
  unflatten_infer: (i) => dt.unflatten(i.x, -1, [-1, 2]),
  permute: (i) => dt.permute(i.x, [2, 0, 1]),
  transpose: (i) => dt.transpose(i.x, 1, 2),
  transpose_negative: (i) => dt.transpose(i.x, -1, 0),
  squeeze: (i) => dt.squeeze(i.x),
  squeeze_dim: (i) => dt.squeeze(i.x, 2),
  squeeze_dim_not_one: (i) => dt.squeeze(i.x, 1),
  unsqueeze: (i) => dt.unsqueeze(i.x, 0),
  unsqueeze_last: (i) => dt.unsqueeze(i.x, -1),
  unsqueeze_0d: (i) => dt.unsqueeze(i.x, 0),
  expand: (i) => dt.expand(i.x, [2, 3, 4]),
  expand_keep: (i) => dt.expand(i.x, [-1, 5]),
  expand_0d: (i) => dt.expand(i.x, [2, 3]),
  expand_as: (i) => dt.expandAs(i.x, i.y),
  repeat: (i) => dt.repeat(i.x, [2, 1, 3]),
  repeat_zero: (i) => dt.repeat(i.x, [0, 2]),
  cat: (i) => dt.cat([i.x, i.y, i.z]),
  cat_dim1_noncontig: (i) => dt.cat([i.x.transpose(0, 1), i.y], 1),
  cat_empty: (i) => dt.cat([i.x, i.y], 0),
  cat_negative_dim: (i) => dt.cat([i.x, i.y], -1),
  stack: (i) => dt.stack([i.x, i.y]),
  stack_last: (i) => dt.stack([i.x, i.y, i.z], -1),
  stack_0d: (i) => dt.stack([i.x, i.y]),
  split_size: (i) => dt.split(i.x, 2),
  split_sections: (i) => dt.split(i.x, [1, 3, 2], 1),
  chunk: (i) => dt.chunk(i.x, 3, 1),
  chunk_default_dim_uneven: (i) => dt.chunk(i.x, 4),
  narrow: (i) => dt.narrow(i.x, 1, 1, 2),
  narrow_empty: (i) => dt.narrow(i.x, 0, 1, 0),
  select: (i) => dt.select(i.x, 1, -1),
  select_to_0d: (i) => dt.select(i.x, 0, 1),
  index_select: (i) => dt.indexSelect(i.x, 0, i.idx),
  index_select_dim1: (i) => dt.indexSelect(i.x, 1, i.idx),
  index_select_empty: (i) => dt.indexSelect(i.x, 0, i.idx),
  gather: (i) => dt.gather(i.x, 1, i.idx),
  gather_dim0: (i) => dt.gather(i.x, 0, i.idx),
  scatter_src: (i) => dt.scatter(i.x, 1, i.idx, i.y),
  scatter_value: (i) => dt.scatter(i.x, 1, i.idx, 2.5),
  scatter_add: (i) => dt.scatterAdd(i.x, 0, i.idx, i.y),
  index: (i) => dt.index(i.x, [i.idx]),
  index_second_dim: (i) => dt.index(i.x, [null, i.idx]),
  index_two: (i) => dt.index(i.x, [i.i, i.j]),
  index_bool: (i) => dt.index(i.x, [i.m]),
  masked_fill: (i) => dt.maskedFill(i.x, i.m, -1.5),
  roll_swin: (i) => dt.roll(i.x, [-3, -3], [1, 2]),
  roll_swin_reverse: (i) => dt.roll(i.x, [3, 3], [1, 2]),
  roll_flat: (i) => dt.roll(i.x, 2),
  roll_one_dim: (i) => dt.roll(i.x, -1, 0),
  flip: (i) => dt.flip(i.x, [0, 2]),
  tril: (i) => dt.tril(i.x),
  tril_batched_negative: (i) => dt.tril(i.x, -1),
  triu: (i) => dt.triu(i.x, 1),
  triu_negative: (i) => dt.triu(i.x, -2),
  triu_default: (i) => dt.triu(i.x),

  // --- padding, resampling, one-hot ----------------------------------------------------------
  pad_constant: (i) => dt.pad(i.x, [1, 2], 'constant', 0.5),
  pad_constant_2d: (i) => dt.pad(i.x, [1, 0, 2, 1], 'constant', -1),
  pad_constant_negative: (i) => dt.pad(i.x, [-1, 2]),
  pad_constant_3dims: (i) => dt.pad(i.x, [1, 1, 0, 2, 1, 0]),
  pad_reflect: (i) => dt.pad(i.x, [2, 1, 1, 2], 'reflect'),
  pad_reflect_1d: (i) => dt.pad(i.x, [2, 2], 'reflect'),
  pad_replicate: (i) => dt.pad(i.x, [1, 1, 2, 0], 'replicate'),
  pad_circular: (i) => dt.pad(i.x, [2, 1, 1, 1], 'circular'),
  pad_reflect_noncontig: (i) => dt.pad(i.x.transpose(2, 3), [1, 2, 2, 1], 'reflect'),
  interpolate_nearest_size: (i) => dt.interpolate(i.x, { size: [7, 3] }),
  interpolate_nearest_scale: (i) => dt.interpolate(i.x, { scaleFactor: 2 }),
  interpolate_nearest_scale_fraction: (i) => dt.interpolate(i.x, { scaleFactor: 1.5 }),
  interpolate_bilinear_size: (i) => dt.interpolate(i.x, { size: [6, 8], mode: 'bilinear', alignCorners: false }),
  interpolate_bilinear_align: (i) => dt.interpolate(i.x, { size: [6, 8], mode: 'bilinear', alignCorners: true }),
  interpolate_bilinear_scale: (i) => dt.interpolate(i.x, { scaleFactor: [2, 0.5], mode: 'bilinear' }),
  interpolate_bilinear_scale_align: (i) => dt.interpolate(i.x, { scaleFactor: 1.5, mode: 'bilinear', alignCorners: true }),
  interpolate_bilinear_size_int: (i) => dt.interpolate(i.x, { size: 5, mode: 'bilinear' }),
  interpolate_bilinear_channels_last: (i) => dt.interpolate(i.x.contiguous('channelsLast'), { size: [5, 7], mode: 'bilinear' }),
  interpolate_nearest_noncontig: (i) => dt.interpolate(i.x.transpose(2, 3), { scaleFactor: 2 }),
  one_hot: (i) => dt.oneHot(i.t, 5),
  one_hot_infer: (i) => dt.oneHot(i.t),
  one_hot_2d: (i) => dt.oneHot(i.t, 3),
  one_hot_empty: (i) => dt.oneHot(i.t, 3),

  // --- in-place ops on a copy ----------------------------------------------------------------
  add_inplace: (i) => i.x.clone().add_(i.y, 2),
  add_inplace_scalar: (i) => i.x.clone().add_(0.5),
  sub_inplace: (i) => i.x.clone().sub_(i.y),
  mul_inplace: (i) => i.x.clone().mul_(i.y),
  mul_inplace_scalar: (i) => i.x.clone().mul_(3),
  div_inplace: (i) => i.x.clone().div_(i.y),
  addcmul_inplace: (i) => i.x.clone().addcmul_(i.y, i.z, 0.5),
  addcdiv_inplace: (i) => i.x.clone().addcdiv_(i.y, i.z, -1),
  lerp_inplace_scalar: (i) => i.x.clone().lerp_(i.y, 0.25),
  lerp_inplace_tensor: (i) => i.x.clone().lerp_(i.y, i.w),
  clamp_inplace: (i) => i.x.clone().clamp_(-0.5, 0.5),
  clamp_inplace_min: (i) => i.x.clone().clamp_(0),
  clamp_inplace_max: (i) => i.x.clone().clamp_(null, 0.1),
  sqrt_inplace: (i) => i.x.clone().sqrt_(),
  relu_inplace: (i) => dt.relu_(i.x.clone()),

  // --- tensor methods ------------------------------------------------------------------------
  clone: (i) => i.x.clone(),
  contiguous_noncontig: (i) => i.x.transpose(0, 1).contiguous(),
  channels_last_roundtrip: (i) => i.x.contiguous('channelsLast').mul(2),
  to_float64: (i) => i.x.to('float64'),
  to_int64: (i) => i.x.mul(3).to('int64'),
  detach: (i) => i.x.detach().mul(i.y),
};

// ---------------------------------------------------------------------------------------------

const oracle = runOracle<Record<string, OracleCase>>('ops');

function spec(c: Run | Spec): Spec {
  return typeof c === 'function' ? { run: c } : c;
}

/** Same dtype, shape and values; exact for integer and bool tensors. */
function expectTensor(actual: Tensor, expected: Tensor, what: string, rtol: number, atol: number): void {
  assert.equal(actual.dtype, expected.dtype, `${what}: dtype`);
  assert.deepEqual([...actual.shape], [...expected.shape], `${what}: shape`);
  if (isFloating(expected.dtype)) {
    assertClose(actual, expected, { rtol, atol, what });
  } else {
    assert.deepEqual(Array.from(actual.toArray() as ArrayLike<unknown>), Array.from(expected.toArray() as ArrayLike<unknown>), `${what}: values`);
  }
}

function runCase(name: string, s: Spec, c: OracleCase): void {
  const rtol = s.rtol ?? RTOL;
  const atol = s.atol ?? ATOL;
  const inputs: Record<string, Tensor> = {};
  for (const [key, value] of Object.entries(c.inputs)) {
    const t = fromOracle(value);
    if (c.requiresGrad.includes(key)) t.requiresGrad = true;
    inputs[key] = t;
  }
  const view = new Proxy(inputs, {
    get(target, key) {
      if (typeof key !== 'string' || !(key in target)) throw new Error(`case ${name}: the oracle gives no input '${String(key)}'`);
      return target[key];
    },
  }) as unknown as In;

  const result = s.run(view);
  const outs = result instanceof Tensor ? [result] : [...result];
  assert.equal(outs.length, c.outputs.length, 'number of outputs');
  outs.forEach((out, k) => expectTensor(out, fromOracle(c.outputs[k]!), `output ${k}`, rtol, atol));

  const roots: Tensor[] = [];
  const grads: Tensor[] = [];
  outs.forEach((out, k) => {
    const g = c.gradOut?.[k] ?? null;
    assert.equal(out.requiresGrad, g !== null, `output ${k}: requiresGrad`);
    if (g !== null) {
      roots.push(out);
      grads.push(fromOracle(g));
    }
  });
  if (roots.length > 0) backward(roots, grads);
  for (const [key, expected] of Object.entries(c.grads)) {
    const actual = inputs[key]!.grad;
    if (expected === null) {
      assert.equal(actual, null, `grad of ${key}: expected none`);
    } else {
      assert.ok(actual, `grad of ${key}: missing`);
      expectTensor(actual, fromOracle(expected), `grad of ${key}`, s.gradRtol ?? rtol, s.gradAtol ?? atol);
    }
  }
}

test('the oracle and the TS table list the same cases', () => {
  const py = Object.keys(oracle).sort();
  const ts = Object.keys(cases).sort();
  assert.deepEqual(py.filter((n) => !(n in cases)), [], 'oracle cases without a TS implementation');
  assert.deepEqual(ts.filter((n) => !(n in oracle)), [], 'TS cases missing from test/oracle/ops.py');
});

for (const [name, entry] of Object.entries(cases)) {
  const s = spec(entry);
  test(name, () => {
    const c = oracle[name];
    assert.ok(c, `test/oracle/ops.py has no case '${name}'`);
    const before = dt.memoryStats().liveHandles;
    tidy(() => runCase(name, s, c));
    assert.equal(dt.memoryStats().liveHandles, before, 'tensors leaked by the case');
  });
}

// ---------------------------------------------------------------------------------------------
// Checks without an oracle: random draws, dropout masks, initialisers, creation edge cases.

function stats(t: Tensor): { mean: number; std: number; min: number; max: number } {
  const v = t.toNumbers();
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const x of v) {
    sum += x;
    min = Math.min(min, x);
    max = Math.max(max, x);
  }
  const mean = sum / v.length;
  const variance = v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length;
  return { mean, std: Math.sqrt(variance), min, max };
}

/** Φ(x), from libtorch's float64 erf (independent of init.ts's own erf). */
function normalCdf(x: number): number {
  return tidy(() => (1 + dt.erf(dt.tensor([x / Math.SQRT2], { dtype: 'float64' })).item()) / 2);
}

function leakFree(fn: () => void): () => void {
  return () => {
    const before = dt.memoryStats().liveHandles;
    tidy(fn);
    assert.equal(dt.memoryStats().liveHandles, before, 'tensors leaked');
  };
}

test('random: rand/randn/randint/randperm shapes, dtypes and ranges', leakFree(() => {
  dt.manualSeed(1);
  const u = dt.rand([100, 50]);
  assert.equal(u.dtype, 'float32');
  assert.deepEqual([...u.shape], [100, 50]);
  const su = stats(u);
  assert.ok(su.min >= 0 && su.max < 1, `rand in [0, 1): [${su.min}, ${su.max}]`);
  assert.ok(Math.abs(su.mean - 0.5) < 0.02 && Math.abs(su.std - Math.sqrt(1 / 12)) < 0.01, `rand moments ${JSON.stringify(su)}`);
  assert.equal(dt.rand([2], { dtype: 'float64' }).dtype, 'float64');
  assert.deepEqual([...dt.rand([0, 3]).shape], [0, 3]);

  const n = dt.randn([5000]);
  assert.equal(n.dtype, 'float32');
  const sn = stats(n);
  assert.ok(Math.abs(sn.mean) < 0.05 && Math.abs(sn.std - 1) < 0.05, `randn moments ${JSON.stringify(sn)}`);
  assert.deepEqual([...dt.randn([]).shape], []);

  const r = dt.randint(-3, 5, [2000]);
  assert.equal(r.dtype, 'int64');
  const values = new Set(r.toNumbers());
  assert.deepEqual([...values].sort((a, b) => a - b), [-3, -2, -1, 0, 1, 2, 3, 4], 'randint covers [low, high) and nothing else');
  assert.equal(dt.randint(0, 10, [3], { dtype: 'int32' }).dtype, 'int32');
  assert.throws(() => dt.randint(5, 5, [2]), RangeError);

  const p = dt.randperm(10);
  assert.equal(p.dtype, 'int64');
  assert.deepEqual(p.toNumbers().sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

  const like = dt.randnLike(dt.zeros([2, 3], { dtype: 'float64' }));
  assert.equal(like.dtype, 'float64');
  assert.deepEqual([...like.shape], [2, 3]);
}));

test('random: manualSeed makes draws repeatable', leakFree(() => {
  const draw = () => [dt.rand([20]), dt.randn([3, 4]), dt.randint(0, 100, [20]), dt.randperm(20)];
  dt.manualSeed(1234);
  const first = draw();
  const continued = draw();
  dt.manualSeed(1234);
  const second = draw();
  first.forEach((t, k) => assert.deepEqual(second[k]!.toNumbers(), t.toNumbers(), `draw ${k} repeats after manualSeed`));
  assert.notDeepEqual(continued[0]!.toNumbers(), first[0]!.toNumbers(), 'the generator moves on without a reseed');
  dt.manualSeed(1235);
  assert.notDeepEqual(dt.rand([20]).toNumbers(), first[0]!.toNumbers(), 'another seed, other numbers');
  dt.manualSeed(2n ** 40n);
  const big = dt.rand([4]).toNumbers();
  dt.manualSeed(2n ** 40n);
  assert.deepEqual(dt.rand([4]).toNumbers(), big, 'bigint seeds');
  assert.throws(() => dt.manualSeed(-1), RangeError);
  assert.throws(() => dt.manualSeed(1.5), RangeError);
}));

test('creation: like-constructors, scalar, empty, typed-array views', leakFree(() => {
  const base = dt.zeros([2, 3], { dtype: 'int32' });
  for (const [t, fill] of [[dt.zerosLike(base), 0], [dt.onesLike(base), 1], [dt.fullLike(base, 7), 7]] as const) {
    assert.equal(t.dtype, 'int32');
    assert.deepEqual([...t.shape], [2, 3]);
    assert.deepEqual(t.toNumbers(), [fill, fill, fill, fill, fill, fill]);
  }
  assert.equal(dt.onesLike(base, { dtype: 'float64' }).dtype, 'float64');
  const s = dt.scalar(2.5);
  assert.deepEqual([...s.shape], []);
  assert.equal(s.item(), 2.5);
  const e = dt.empty([2, 0, 4], { dtype: 'int64' });
  assert.deepEqual([...e.shape], [2, 0, 4]);
  assert.equal(e.dtype, 'int64');
  // a typed array that views the middle of a bigger buffer: only the viewed elements are copied
  const view = new Float32Array([1, 2, 3, 4, 5, 6]).subarray(2, 5);
  assert.deepEqual(dt.tensor(view).toNumbers(), [3, 4, 5]);
  assert.deepEqual(dt.tensor(new Int32Array([1, 2, 3, 4]), { shape: [2, 2], dtype: 'float32' }).toNumbers(), [1, 2, 3, 4]);
  assert.equal(dt.tensor(new Int32Array([1, 2])).dtype, 'int32');
  assert.deepEqual([...dt.tensor([1, 2, 3, 4], { shape: [2, 2] }).shape], [2, 2]);
  const g = dt.ones([2], { requiresGrad: true });
  assert.ok(g.requiresGrad && g.isLeaf);
  assert.throws(() => dt.zeros([2, -1]), RangeError);
  assert.throws(() => dt.arange(0, 3, 0), RangeError);
}));

test('creation: tensor() rejects ragged and mixed nested arrays', leakFree(() => {
  assert.throws(() => dt.tensor([[1, 2], [3]]), RangeError);
  assert.throws(() => dt.tensor([[1], 2]), RangeError);
  assert.throws(() => dt.tensor([1, true]), TypeError);
}));

test(
  'creation: tensor() rejects a nested array whose first element is a number and a later one an array',
  leakFree(() => {
    assert.throws(() => dt.tensor([1, [2]]), RangeError);
    assert.throws(() => dt.tensor([1, [2, 3]]), RangeError);
    assert.throws(() => dt.tensor([[1], [[2]]]), RangeError);
  }),
);

test('dropout: identity when p = 0 or not training; p = 0.5 zeroes about half and doubles the rest', leakFree(() => {
  dt.manualSeed(7);
  const x = dt.add(dt.rand([100, 100]), 0.5).requiresGrad_();
  assert.deepEqual(dt.dropout(x, 0).toNumbers(), x.toNumbers(), 'p = 0');
  assert.deepEqual(dt.dropout(x, 0.5, false).toNumbers(), x.toNumbers(), 'training = false');
  assert.deepEqual(dt.dropout(x, 0.9, false).toNumbers(), x.toNumbers(), 'training = false, large p');

  const y = dt.dropout(x, 0.5);
  assert.ok(y.requiresGrad);
  const xs = x.toNumbers();
  const ys = y.toNumbers();
  let zeros = 0;
  ys.forEach((v, k) => {
    if (v === 0) zeros++;
    else assert.ok(Math.abs(v - 2 * xs[k]!) <= 1e-6 * Math.abs(v), `element ${k}: ${v} is neither 0 nor 2·${xs[k]}`);
  });
  const fraction = zeros / ys.length;
  assert.ok(fraction > 0.47 && fraction < 0.53, `zeroed fraction ${fraction}`);
  // the gradient is the same mask times 1/(1−p)
  dt.sum(y).backward();
  const g = x.grad!.toNumbers();
  ys.forEach((v, k) => assert.equal(g[k], v === 0 ? 0 : 2, `grad element ${k}`));

  assert.ok(dt.dropout(x, 1).toNumbers().every((v) => v === 0), 'p = 1 zeroes everything');
  assert.throws(() => dt.dropout(x, 1.5), RangeError);
  assert.throws(() => dt.dropout(x, -0.1), RangeError);
}));

test('dropout on a large channels-last map: parallel chunks, the right fraction, seeded, layout kept', leakFree(() => {
  // [4,16,64,65] = 266,240 elements: several 65,536-element chunks, each from its own generator.
  const x = dt.ones([4, 16, 64, 65]).contiguous('channelsLast');
  dt.manualSeed(11);
  const a = dt.dropout(x, 0.1);
  dt.manualSeed(11);
  const b = dt.dropout(x, 0.1);
  dt.manualSeed(12);
  const c = dt.dropout(x, 0.1);
  assert.ok(a.isContiguous('channelsLast'), 'the output keeps the input layout');
  const av = a.toNumbers();
  const scale = 1 / 0.9;
  let kept = 0;
  av.forEach((v, k) => {
    if (v !== 0) {
      kept++;
      assert.ok(Math.abs(v - scale) < 1e-6, `element ${k}: ${v} is neither 0 nor 1/(1−p)`);
    }
  });
  const fraction = kept / av.length;
  assert.ok(Math.abs(fraction - 0.9) < 0.005, `kept fraction ${fraction}`);
  assert.deepEqual(b.toNumbers(), av, 'the same seed gives the same mask');
  assert.notDeepEqual(c.toNumbers(), av, 'another seed gives another mask');
  // Chunks draw from different generators: the first two 65,536-element blocks of memory differ.
  const flat = a.permute([0, 2, 3, 1]).contiguous().view([-1]);
  const first = flat.narrow(0, 0, 65536).toNumbers();
  const second = flat.narrow(0, 65536, 65536).toNumbers();
  assert.notDeepEqual(first, second, 'chunks are not copies of one stream');
}));

test('in-place ops return their receiver; initialisers work on leaves that require grad', leakFree(() => {
  const x = dt.zeros([2, 3]);
  assert.equal(x.add_(1), x);
  assert.equal(x.mul_(3), x);
  assert.equal(x.clamp_(null, 2), x);
  assert.deepEqual(x.toNumbers(), [2, 2, 2, 2, 2, 2]);

  const w = dt.empty([2, 3], { requiresGrad: true });
  assert.equal(dt.fill_(w, 1.5), w);
  assert.deepEqual(w.toNumbers(), [1.5, 1.5, 1.5, 1.5, 1.5, 1.5]);
  assert.ok(w.isLeaf && w.requiresGrad, 'fill_ keeps a leaf a leaf');
  assert.equal(dt.zero_(w), w);
  assert.deepEqual(w.toNumbers(), [0, 0, 0, 0, 0, 0]);
  assert.equal(dt.copy_(w, dt.tensor([1, 2, 3])), w);
  assert.deepEqual(w.toNumbers(), [1, 2, 3, 1, 2, 3], 'copy_ broadcasts its source');
  dt.copy_(w, dt.tensor([[4, 5, 6], [7, 8, 9]], { dtype: 'float64' }));
  assert.deepEqual(w.toNumbers(), [4, 5, 6, 7, 8, 9], 'copy_ converts the dtype');
  assert.equal(w.dtype, 'float32');
  assert.ok(w.isLeaf && w.requiresGrad);
  assert.equal(w.grad, null, 'initialisers record no autograd history');
}));

test('init: kaimingUniform_ / xavierUniform_ stay within their bound with std ≈ bound/√3', leakFree(() => {
  dt.manualSeed(11);
  const check = (t: Tensor, bound: number, what: string) => {
    const s = stats(t);
    assert.ok(s.min >= -bound && s.max <= bound, `${what}: values in [${s.min}, ${s.max}], bound ${bound}`);
    assert.ok(s.max > 0.99 * bound && s.min < -0.99 * bound, `${what}: the draws reach the bound`);
    assert.ok(Math.abs(s.mean) < 0.01 * bound, `${what}: mean ${s.mean}`);
    assert.ok(Math.abs(s.std / (bound / Math.sqrt(3)) - 1) < 0.02, `${what}: std ${s.std}, expected ${bound / Math.sqrt(3)}`);
  };
  // conv weight [out 64, in 32, 3, 3]: fan_in = 32·9 = 288, fan_out = 64·9 = 576
  const w = dt.empty([64, 32, 3, 3], { requiresGrad: true });
  assert.equal(dt.kaimingUniform_(w), w);
  check(w, Math.sqrt(2) * Math.sqrt(3 / 288), 'kaiming default (leaky_relu, a = 0, fan_in)');
  dt.kaimingUniform_(w, { a: Math.sqrt(5) });
  check(w, 1 / Math.sqrt(288), 'kaiming a = √5 (nn.Conv2d default)');
  dt.kaimingUniform_(w, { mode: 'fanOut', nonlinearity: 'relu' });
  check(w, Math.sqrt(2) * Math.sqrt(3 / 576), 'kaiming relu fan_out');
  dt.kaimingUniform_(w, { nonlinearity: 'tanh' });
  check(w, (5 / 3) * Math.sqrt(3 / 288), 'kaiming tanh');
  assert.ok(w.isLeaf && w.requiresGrad);

  const lin = dt.empty([300, 200]);
  assert.equal(dt.xavierUniform_(lin), lin);
  check(lin, Math.sqrt(6 / 500), 'xavier');
  dt.xavierUniform_(lin, 2);
  check(lin, 2 * Math.sqrt(6 / 500), 'xavier gain 2');

  dt.kaimingNormal_(lin);
  const sn = stats(lin);
  assert.ok(Math.abs(sn.std / Math.sqrt(2 / 200) - 1) < 0.02 && Math.abs(sn.mean) < 0.01 * sn.std, `kaimingNormal_ ${JSON.stringify(sn)}`);

  const uni = dt.uniform_(dt.empty([100000]));
  const su = stats(uni);
  assert.ok(su.min >= 0 && su.max < 1 && Math.abs(su.mean - 0.5) < 0.01, `uniform_ defaults ${JSON.stringify(su)}`);
  dt.uniform_(uni, -3, -1);
  const su2 = stats(uni);
  assert.ok(su2.min >= -3 && su2.max < -1 && Math.abs(su2.mean + 2) < 0.01, `uniform_(-3, -1) ${JSON.stringify(su2)}`);
  const sn1 = stats(dt.normal_(uni));
  assert.ok(Math.abs(sn1.mean) < 0.02 && Math.abs(sn1.std - 1) < 0.02, `normal_ defaults ${JSON.stringify(sn1)}`);
  const sn2 = stats(dt.normal_(uni, 3, 0.5));
  assert.ok(Math.abs(sn2.mean - 3) < 0.01 && Math.abs(sn2.std - 0.5) < 0.01, `normal_(3, 0.5) ${JSON.stringify(sn2)}`);

  assert.equal(dt.calculateGain('leaky_relu'), Math.sqrt(2 / (1 + 0.01 ** 2)));
  assert.deepEqual(dt.fans([8, 4]), { fanIn: 4, fanOut: 8 });
  assert.throws(() => dt.kaimingUniform_(dt.empty([5])), RangeError);
}));

test('init: truncNormal_ stays in [a, b] with the truncated normal mean and std', leakFree(() => {
  dt.manualSeed(12);
  const cases: [mean: number, std: number, a: number, b: number][] = [
    [0, 1, -2, 2],
    [0.5, 1, -1, 1.5],
    [0, 0.02, -2, 2],
    [2, 0.5, 1.9, 3],
  ];
  for (const [mu, sigma, a, b] of cases) {
    const t = dt.empty([200, 500], { requiresGrad: true });
    // the first case spells out truncNormal_'s defaults: check that they are those
    const same = mu === 0 && sigma === 1 && a === -2 && b === 2 ? dt.truncNormal_(t) : dt.truncNormal_(t, mu, sigma, a, b);
    assert.equal(same, t);
    const s = stats(t);
    const what = `truncNormal_(mean ${mu}, std ${sigma}, [${a}, ${b}])`;
    assert.ok(s.min >= a && s.max <= b, `${what}: values in [${s.min}, ${s.max}]`);
    const alpha = (a - mu) / sigma;
    const beta = (b - mu) / sigma;
    const pdf = (z: number) => Math.exp(-z * z / 2) / Math.sqrt(2 * Math.PI);
    const z = normalCdf(beta) - normalCdf(alpha);
    const mean = mu + (sigma * (pdf(alpha) - pdf(beta))) / z;
    const std = sigma * Math.sqrt(1 + (alpha * pdf(alpha) - beta * pdf(beta)) / z - ((pdf(alpha) - pdf(beta)) / z) ** 2);
    assert.ok(Math.abs(s.mean - mean) < 0.01 * std, `${what}: mean ${s.mean}, expected ${mean}`);
    assert.ok(Math.abs(s.std / std - 1) < 0.01, `${what}: std ${s.std}, expected ${std}`);
    assert.ok(t.isLeaf && t.grad === null);
  }
  assert.throws(() => dt.truncNormal_(dt.empty([3]), 0, 0), RangeError);
  // init.ts's own erf (for the CDF bounds) against libtorch's float64 erf
  for (let x = -6; x <= 6; x += 0.25) {
    const expected = tidy(() => dt.erf(dt.tensor([x], { dtype: 'float64' })).item());
    assert.ok(Math.abs(dt._erfScalar(x) - expected) < 1e-13, `erf(${x}) = ${dt._erfScalar(x)}, libtorch ${expected}`);
  }
}));

test('conv2d keeps a channels-last input channels-last', leakFree(() => {
  const x = dt.randn([2, 3, 6, 6]).contiguous('channelsLast');
  assert.ok(x.isContiguous('channelsLast') && !x.isContiguous());
  assert.ok(dt.conv2d(x, dt.randn([4, 3, 3, 3]), null, { padding: 1 }).isContiguous('channelsLast'));
  assert.ok(dt.conv2d(x, dt.randn([3, 1, 3, 3]), null, { padding: 1, groups: 3 }).isContiguous('channelsLast'));
}));
