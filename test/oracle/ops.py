"""Op parity oracle: one table of cases, each run through PyTorch with its inputs and gradients.

Prints {caseName: {inputs, requiresGrad, outputs, gradOut, grads}} for test/ops/parity.test.ts,
whose table mirrors this one name for name. Conventions shared with the TS side:
  * a case is `case(name, fn, grad=None, **inputs)`: `inputs` maps a name to a generator, `fn` is
    called with the generated tensors as keyword arguments and returns a tensor or a tuple/list;
  * every floating input requires grad unless `grad` lists the ones that do;
  * each output that requires grad gets a random gradient (gradOut[i]; null for the others) and
    backward runs from all of them at once; grads holds each grad-requiring input's .grad (or null);
  * inputs are recorded before fn runs (fn may update some in place, e.g. batch-norm running stats).
Each case is seeded from its own name, so adding a case does not change the others.
Run with /usr/bin/python3 (Debian's, which has torch) from the repository root.
"""
import os
import sys
import warnings
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import arr, emit  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

warnings.filterwarnings('ignore')
torch.manual_seed(0)

CASES = {}


def case(name, fn, grad=None, **inputs):
    if name in CASES:
        raise KeyError(f'duplicate case {name}')
    CASES[name] = (fn, inputs, grad)


# --- input generators (called after the case's seed is set) -------------------------------------
def N(*s, scale=1.0):
    """float32 standard normal (times scale)."""
    return lambda: torch.randn(s) * scale


def U(lo, hi, *s):
    """float32 uniform in [lo, hi)."""
    return lambda: torch.empty(s).uniform_(lo, hi)


def P(*s):
    """float32 positive, away from 0: uniform in [0.5, 2)."""
    return U(0.5, 2.0, *s)


def R(lo, hi, *s):
    """int64 uniform in [lo, hi)."""
    return lambda: torch.randint(lo, hi, s)


def I(hi, *s):
    """int64 class indices in [0, hi)."""
    return R(0, hi, *s)


def IF(hi, *s):
    """integer-valued float32 in [0, hi): comparisons see ties."""
    return lambda: torch.randint(0, hi, s).float()


def B(*s):
    """bool mask, about half true."""
    return lambda: torch.rand(s) < 0.5


def K(v, dtype=torch.float32):
    """a constant."""
    return lambda: torch.tensor(v, dtype=dtype)


def KI(v):
    return K(v, torch.int64)


def UNIQ(rows, n, k):
    """int64 [rows, k]: k distinct column indices per row (scatter without write conflicts)."""
    return lambda: torch.rand(rows, n).argsort(1)[:, :k]


def SOFT(*s):
    """float32 rows of class probabilities along dim 1."""
    return lambda: torch.randn(s).softmax(1)


# ================================================================================================
# creation (no inputs)
case('zeros', lambda: torch.zeros(2, 3))
case('zeros_int64', lambda: torch.zeros(2, 2, dtype=torch.int64))
case('zeros_0d', lambda: torch.zeros(()))
case('ones', lambda: torch.ones(3, 1))
case('ones_empty', lambda: torch.ones(0, 3))
case('full', lambda: torch.full((2, 2), 1.5))
case('full_0d', lambda: torch.full((), -3.0))
case('full_int32', lambda: torch.full((3,), 7, dtype=torch.int32))
case('full_bool', lambda: torch.full((2, 2), True))
case('arange_end', lambda: torch.arange(5))
case('arange_start_step', lambda: torch.arange(2, 11, 3))
case('arange_negative_step', lambda: torch.arange(5, 0, -2))
case('arange_float_step', lambda: torch.arange(0, 1, 0.1))
case('arange_float_start', lambda: torch.arange(0.5, 3))
case('arange_float_dtype', lambda: torch.arange(4, dtype=torch.float32))
case('arange_empty', lambda: torch.arange(3, 3))
case('linspace', lambda: torch.linspace(-1, 1, 5))
case('linspace_one', lambda: torch.linspace(2, 3, 1))
case('linspace_fraction', lambda: torch.linspace(0.1, 0.7, 7))
case('eye', lambda: torch.eye(3))
case('eye_rect', lambda: torch.eye(2, 4))
case('tensor_nested', lambda: torch.tensor([[1, 2, 3], [4, 5, 6]], dtype=torch.float32))
case('tensor_0d', lambda: torch.tensor(2.5))
case('tensor_bool', lambda: torch.tensor([[True, False], [False, True]]))
case('tensor_bigint', lambda: torch.tensor([1, -2 ** 40, 3]))
case('tensor_int32', lambda: torch.tensor([1, -2, 3], dtype=torch.int32))
case('tensor_float64', lambda: torch.tensor([0.1, 0.2], dtype=torch.float64))
case('tensor_empty', lambda: torch.tensor([], dtype=torch.float32))

# ================================================================================================
# binary arithmetic
case('add', lambda x, y: x + y, x=N(2, 3), y=N(3))
case('add_alpha', lambda x, y: torch.add(x, y, alpha=2.5), x=N(2, 3), y=N(2, 1))
case('add_scalar', lambda x: x + 1.5, x=N(2, 3))
case('add_int_scalar', lambda x: x + 2, x=N(4))
case('add_0d', lambda x, y: x + y, x=N(2, 3), y=N())
case('add_0d_0d', lambda x, y: x + y, x=N(), y=N())
case('add_noncontig', lambda x, y: x.t() + y, x=N(3, 2), y=N(2, 3))
case('add_empty', lambda x, y: x + y, x=N(0, 3), y=N(3))
case('add_size1_dims', lambda x, y: x + y, x=N(1, 3, 1), y=N(2, 1, 4))
case('add_int64', lambda a, b: a + b, a=R(-50, 50, 5), b=R(-50, 50, 5))
case('add_promote', lambda a, x: a + x, a=R(-5, 5, 4), x=N(4))
case('sub', lambda x, y: x - y, x=N(4, 1, 3), y=N(2, 1))
case('sub_alpha_scalar', lambda x: torch.sub(x, 2, alpha=3), x=N(3))
case('mul', lambda x, y: x * y, x=N(2, 3, 4), y=N(3, 1))
case('mul_scalar', lambda x: x * -0.5, x=N(2, 3))
case('mul_int_scalar', lambda a: a * 3, a=R(-5, 5, 4))
case('div', lambda x, y: x / y, x=N(2, 3), y=P(3))
case('div_scalar', lambda x: x / 4, x=N(5))
case('div_trunc', lambda x, y: torch.div(x, y, rounding_mode='trunc'), x=U(-10, 10, 3, 4), y=P(4))
case('div_floor', lambda x, y: torch.div(x, y, rounding_mode='floor'), x=U(-10, 10, 3, 4), y=U(-3, -0.5, 3, 1))
case('div_floor_scalar', lambda x: torch.div(x, 3, rounding_mode='floor'), x=U(-10, 10, 6))
case('div_trunc_scalar', lambda x: torch.div(x, -1.5, rounding_mode='trunc'), x=U(-10, 10, 6))
case('div_int_true', lambda a, b: a / b, a=R(-20, 20, 6), b=KI([3, -3, 4, -4, 7, 2]))
case('div_int_trunc', lambda a, b: torch.div(a, b, rounding_mode='trunc'), a=R(-20, 20, 6), b=KI([3, -3, 4, -4, 7, 2]))
case('div_int_floor', lambda a, b: torch.div(a, b, rounding_mode='floor'), a=R(-20, 20, 6), b=KI([3, -3, 4, -4, 7, 2]))
case('pow_tensor_tensor', lambda x, y: torch.pow(x, y), x=P(2, 3), y=N(3))
case('pow_tensor_int', lambda x: x ** 3, x=N(2, 3))
case('pow_tensor_float', lambda x: x ** 0.5, x=P(5))
case('pow_tensor_negative', lambda x: x ** -2, x=P(5))
case('pow_scalar_tensor', lambda x: torch.pow(2, x), x=N(2, 3))
case('pow_float_scalar_tensor', lambda x: torch.pow(1.5, x), x=N(4))
case('pow_int64', lambda a: a ** 2, a=R(-5, 5, 5))
case('remainder', lambda x, y: torch.remainder(x, y), x=U(-5, 5, 3, 4), y=P(4))
case('remainder_negative_scalar', lambda x: torch.remainder(x, -1.5), x=U(-5, 5, 6))
case('remainder_int64', lambda a: torch.remainder(a, 3), a=R(-10, 10, 8))
case('maximum', lambda x, y: torch.maximum(x, y), x=N(2, 3), y=N(3))
case('minimum', lambda x, y: torch.minimum(x, y), x=N(2, 1), y=N(1, 4))
case('addcmul', lambda x, y, z: torch.addcmul(x, y, z, value=0.5), x=N(3), y=N(2, 3), z=N(2, 1))
case('addcmul_default', lambda x, y, z: torch.addcmul(x, y, z), x=N(2, 3), y=N(2, 3), z=N(2, 3))
case('addcdiv', lambda x, y, z: torch.addcdiv(x, y, z, value=-2), x=N(2, 3), y=N(2, 3), z=P(3))
case('addcdiv_default', lambda x, y, z: torch.addcdiv(x, y, z), x=N(2, 3), y=N(2, 3), z=P(2, 3))
case('lerp_scalar', lambda x, y: torch.lerp(x, y, 0.3), x=N(2, 3), y=N(3))
case('lerp_tensor', lambda x, y, w: torch.lerp(x, y, w), x=N(2, 3), y=N(2, 3), w=U(0, 1, 3))

# ================================================================================================
# comparisons and logic
for _op in ['eq', 'ne', 'lt', 'le', 'gt', 'ge']:
    case(_op, lambda x, y, op=_op: getattr(torch, op)(x, y), grad=[], x=IF(3, 3, 4), y=IF(3, 4))
    case(_op + '_scalar', lambda x, op=_op: getattr(torch, op)(x, 1), grad=[], x=IF(3, 3, 4))
case('lt_int64', lambda a, b: a < b, a=R(0, 3, 5), b=R(0, 3, 5))
case('gt_float_scalar', lambda x: x > 0.25, grad=[], x=N(6))
case('logical_and', lambda m, n: torch.logical_and(m, n), m=B(3, 4), n=B(4))
case('logical_or', lambda m, n: torch.logical_or(m, n), m=B(3, 4), n=B(3, 4))
case('logical_not', lambda m: torch.logical_not(m), m=B(5))
case('all', lambda m: m.all(), m=B(3, 4))
case('any', lambda m: m.any(), m=B(3, 4))
case('isnan', lambda x: torch.isnan(x), grad=[], x=K([1.0, float('nan'), float('inf'), -float('inf')]))
case('isfinite', lambda x: torch.isfinite(x), grad=[], x=K([1.0, float('nan'), float('inf'), -float('inf')]))

# where (every overload)
case('where', lambda c, x, y: torch.where(c, x, y), c=B(2, 3), x=N(2, 3), y=N(3))
case('where_broadcast_condition', lambda c, x, y: torch.where(c, x, y), c=B(3, 1), x=N(1, 4), y=N(3, 4))
case('where_tensor_scalar', lambda c, x: torch.where(c, x, 0.5), c=B(2, 3), x=N(2, 3))
case('where_scalar_tensor', lambda c, y: torch.where(c, -1, y), c=B(2, 3), y=N(3))
case('where_scalar_scalar', lambda c: torch.where(c, 1.5, -2.5), c=B(2, 3))
case('where_scalar_scalar_int', lambda c: torch.where(c, 1, 0), c=B(4))
case('where_0d', lambda c, x, y: torch.where(c, x, y), c=B(), x=N(2, 3), y=N())

# clamp
case('clamp', lambda x: torch.clamp(x, -0.5, 0.5), x=N(3, 4))
case('clamp_min', lambda x: torch.clamp(x, min=0), x=N(3, 4))
case('clamp_max', lambda x: torch.clamp(x, max=0.2), x=N(3, 4))
case('clamp_tensor', lambda x, lo, hi: torch.clamp(x, lo, hi), x=N(3, 4), lo=U(-1, -0.1, 4), hi=U(0.1, 1, 3, 1))
case('clamp_tensor_min', lambda x, lo: torch.clamp(x, min=lo), x=N(3, 4), lo=N(4))
case('clamp_tensor_max', lambda x, hi: torch.clamp(x, max=hi), x=N(3, 4), hi=N(3, 1))
case('clamp_int64', lambda a: torch.clamp(a, 0, 3), a=R(-5, 8, 6))

# ================================================================================================
# unary math
_UNARY = {
    'abs': (torch.abs, N(3, 4)),
    'neg': (torch.neg, N(3, 4)),
    'exp': (torch.exp, N(3, 4)),
    'log': (torch.log, P(3, 4)),
    'log1p': (torch.log1p, U(-0.5, 2, 3, 4)),
    'sqrt': (torch.sqrt, P(3, 4)),
    'rsqrt': (torch.rsqrt, P(3, 4)),
    'square': (torch.square, N(3, 4)),
    'reciprocal': (torch.reciprocal, P(3, 4)),
    'reciprocal_negative': (torch.reciprocal, U(-2, -0.5, 5)),
    'erf': (torch.erf, N(3, 4)),
    'erfinv': (torch.erfinv, U(-0.9, 0.9, 3, 4)),
    'sin': (torch.sin, N(3, 4, scale=3)),
    'cos': (torch.cos, N(3, 4, scale=3)),
    'floor': (torch.floor, N(3, 4, scale=3)),
    'ceil': (torch.ceil, N(3, 4, scale=3)),
    'round': (torch.round, N(3, 4, scale=3)),
    'round_half_even': (torch.round, K([0.5, 1.5, 2.5, -0.5, -1.5, 0.49, 2.51])),
    'sign': (torch.sign, K([-2.0, 0.0, 3.5, -0.1])),
}
for _name, (_f, _gen) in _UNARY.items():
    case(_name, lambda x, f=_f: f(x), x=_gen)
case('exp_0d', lambda x: torch.exp(x), x=N())
case('abs_empty', lambda x: torch.abs(x), x=N(0, 2))
case('sin_noncontig', lambda x: torch.sin(x.t()), x=N(4, 3))
case('sqrt_narrow', lambda x: torch.sqrt(x.narrow(1, 1, 2)), x=P(3, 4))
case('abs_int64', lambda a: torch.abs(a), a=R(-5, 5, 6))

# ================================================================================================
# matrix products (small sizes: float32 sums of at most a few dozen terms)
case('matmul_1d_1d', lambda x, y: x @ y, x=N(5), y=N(5))
case('matmul_1d_2d', lambda x, y: x @ y, x=N(4), y=N(4, 3))
case('matmul_2d_1d', lambda x, y: x @ y, x=N(3, 4), y=N(4))
case('matmul_2d', lambda x, y: x @ y, x=N(3, 4), y=N(4, 5))
case('matmul_batched', lambda x, y: x @ y, x=N(2, 3, 4), y=N(2, 4, 5))
case('matmul_broadcast', lambda x, y: x @ y, x=N(2, 1, 3, 4), y=N(5, 4, 2))
case('matmul_batched_1d', lambda x, y: x @ y, x=N(2, 3, 4), y=N(4))
case('matmul_noncontig', lambda x, y: x.t() @ y.t(), x=N(4, 3), y=N(5, 4))
case('matmul_large', lambda x, y: x @ y, x=N(64, 256), y=N(256, 32))
case('matmul_empty', lambda x, y: x @ y, x=N(3, 0), y=N(0, 2))
case('matmul_size1', lambda x, y: x @ y, x=N(1, 4), y=N(4, 1))
case('mm', lambda x, y: torch.mm(x, y), x=N(3, 4), y=N(4, 2))
case('mm_noncontig', lambda x, y: torch.mm(x, y.t()), x=N(3, 4), y=N(2, 4))
case('bmm', lambda x, y: torch.bmm(x, y), x=N(2, 3, 4), y=N(2, 4, 5))
case('bmm_noncontig', lambda x, y: torch.bmm(x, y.transpose(1, 2)), x=N(2, 3, 4), y=N(2, 5, 4))
case('linear', lambda x, w, b: F.linear(x, w, b), x=N(2, 3, 4), w=N(5, 4), b=N(5))
case('linear_nobias', lambda x, w: F.linear(x, w), x=N(3, 4), w=N(2, 4))
case('linear_1d', lambda x, w, b: F.linear(x, w, b), x=N(4), w=N(3, 4), b=N(3))
case('linear_noncontig_weight', lambda x, w, b: F.linear(x, w.t(), b), x=N(1, 4), w=N(4, 5), b=N(5))

# ================================================================================================
# convolution and pooling
case('conv2d', lambda x, w, b: F.conv2d(x, w, b), x=N(2, 3, 7, 7), w=N(4, 3, 3, 3), b=N(4))
case('conv2d_stride_padding', lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), x=N(2, 3, 7, 7), w=N(4, 3, 3, 3), b=N(4))
case('conv2d_pairs', lambda x, w: F.conv2d(x, w, stride=(2, 1), padding=(1, 2)), x=N(1, 3, 6, 7), w=N(2, 3, 3, 2))
case('conv2d_same', lambda x, w, b: F.conv2d(x, w, b, padding='same', dilation=2), x=N(1, 2, 7, 6), w=N(3, 2, 3, 3), b=N(3))
case('conv2d_same_even_kernel', lambda x, w: F.conv2d(x, w, padding='same'), x=N(1, 2, 5, 6), w=N(2, 2, 2, 4))
case('conv2d_valid', lambda x, w: F.conv2d(x, w, padding='valid'), x=N(1, 2, 5, 5), w=N(3, 2, 3, 3))
case('conv2d_dilation', lambda x, w, b: F.conv2d(x, w, b, padding=1, dilation=(2, 1)), x=N(1, 2, 7, 6), w=N(3, 2, 3, 3), b=N(3))
case('conv2d_groups', lambda x, w, b: F.conv2d(x, w, b, padding=1, groups=2), x=N(2, 4, 5, 5), w=N(6, 2, 3, 3), b=N(6))
case('conv2d_depthwise', lambda x, w, b: F.conv2d(x, w, b, padding=1, groups=4), x=N(2, 4, 6, 6), w=N(4, 1, 3, 3), b=N(4))
case('conv2d_channels_last', lambda x, w, b: F.conv2d(x.contiguous(memory_format=torch.channels_last), w, b, padding=1),
     x=N(2, 3, 6, 6), w=N(4, 3, 3, 3), b=N(4))
case('conv2d_depthwise_channels_last',
     lambda x, w: F.conv2d(x.contiguous(memory_format=torch.channels_last), w, stride=2, padding=1, groups=4),
     x=N(2, 4, 7, 7), w=N(4, 1, 3, 3))
case('conv2d_1x1_spatial', lambda x, w, b: F.conv2d(x, w, b), x=N(1, 3, 1, 1), w=N(2, 3, 1, 1), b=N(2))
case('conv2d_noncontig', lambda x, w: F.conv2d(x.transpose(2, 3), w, padding=1), x=N(1, 2, 5, 6), w=N(3, 2, 3, 3))
case('conv2d_empty_batch', lambda x, w, b: F.conv2d(x, w, b, padding=1), x=N(0, 3, 5, 5), w=N(4, 3, 3, 3), b=N(4))
case('conv_transpose2d', lambda x, w, b: F.conv_transpose2d(x, w, b), x=N(1, 3, 4, 4), w=N(3, 2, 3, 3), b=N(2))
case('conv_transpose2d_stride', lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
     x=N(2, 3, 4, 5), w=N(3, 4, 3, 3), b=N(4))
case('conv_transpose2d_groups', lambda x, w: F.conv_transpose2d(x, w, stride=(2, 1), padding=(0, 1), groups=2),
     x=N(1, 4, 3, 3), w=N(4, 3, 3, 3))
case('conv_transpose2d_dilation', lambda x, w: F.conv_transpose2d(x, w, stride=2, output_padding=1, dilation=2),
     x=N(1, 2, 3, 3), w=N(2, 2, 3, 3))
case('conv_transpose2d_channels_last', lambda x, w, b: F.conv_transpose2d(x.contiguous(memory_format=torch.channels_last), w, b, stride=2),
     x=N(2, 3, 3, 4), w=N(3, 2, 2, 2), b=N(2))
case('max_pool2d', lambda x: F.max_pool2d(x, 2), x=N(2, 3, 6, 6))
case('max_pool2d_stride_padding', lambda x: F.max_pool2d(x, 3, stride=2, padding=1), x=N(1, 2, 7, 7))
case('max_pool2d_ceil', lambda x: F.max_pool2d(x, 3, stride=2, ceil_mode=True), x=N(1, 2, 8, 8))
case('max_pool2d_pairs', lambda x: F.max_pool2d(x, (2, 3), stride=(1, 2)), x=N(1, 2, 5, 7))
case('max_pool2d_dilation', lambda x: F.max_pool2d(x, 2, stride=1, dilation=2), x=N(1, 2, 5, 5))
case('max_pool2d_noncontig', lambda x: F.max_pool2d(x.transpose(2, 3), 2), x=N(1, 2, 4, 6))
case('max_pool2d_channels_last', lambda x: F.max_pool2d(x.contiguous(memory_format=torch.channels_last), 3, stride=2, padding=1),
     x=N(2, 3, 6, 6))
case('avg_pool2d', lambda x: F.avg_pool2d(x, 2), x=N(2, 3, 6, 6))
case('avg_pool2d_exclude_pad', lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False), x=N(1, 2, 7, 7))
case('avg_pool2d_include_pad', lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), x=N(1, 2, 7, 7))
case('avg_pool2d_ceil', lambda x: F.avg_pool2d(x, 2, ceil_mode=True), x=N(1, 2, 5, 5))
case('avg_pool2d_divisor', lambda x: F.avg_pool2d(x, 2, divisor_override=3), x=N(1, 2, 4, 4))
case('avg_pool2d_channels_last', lambda x: F.avg_pool2d(x.contiguous(memory_format=torch.channels_last), 2), x=N(2, 3, 4, 6))
case('adaptive_avg_pool2d_1', lambda x: F.adaptive_avg_pool2d(x, 1), x=N(2, 3, 5, 7))
case('adaptive_avg_pool2d_nondivisible', lambda x: F.adaptive_avg_pool2d(x, (3, 2)), x=N(2, 3, 7, 5))
case('adaptive_avg_pool2d_up', lambda x: F.adaptive_avg_pool2d(x, 5), x=N(1, 2, 3, 3))
case('adaptive_avg_pool2d_channels_last', lambda x: F.adaptive_avg_pool2d(x.contiguous(memory_format=torch.channels_last), (2, 3)),
     x=N(2, 3, 5, 7))
case('adaptive_max_pool2d', lambda x: F.adaptive_max_pool2d(x, (2, 3)), x=N(1, 2, 5, 7))

# ================================================================================================
# normalisation
case('batch_norm_train',
     lambda x, rm, rv, w, b: (F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.2), rm, rv),
     grad=['x', 'w', 'b'], x=N(4, 3, 5, 5), rm=N(3, scale=0.1), rv=P(3), w=N(3), b=N(3))
case('batch_norm_train_2d_noaffine', lambda x, rm, rv: (F.batch_norm(x, rm, rv, training=True), rm, rv),
     grad=['x'], x=N(8, 4), rm=N(4, scale=0.1), rv=P(4))
case('batch_norm_train_no_stats', lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, eps=1e-3),
     x=N(4, 3, 2, 2), w=N(3), b=N(3))
case('batch_norm_eval', lambda x, rm, rv, w, b: (F.batch_norm(x, rm, rv, w, b, training=False), rm, rv),
     grad=['x', 'w', 'b'], x=N(4, 3, 5, 5), rm=N(3, scale=0.1), rv=P(3), w=N(3), b=N(3))
case('layer_norm', lambda x, w, b: F.layer_norm(x, (6,), w, b), x=N(2, 5, 6), w=N(6), b=N(6))
case('layer_norm_noaffine', lambda x: F.layer_norm(x, (5, 6)), x=N(2, 5, 6))
case('layer_norm_weight_eps', lambda x, w: F.layer_norm(x, (4,), w, None, 1e-3), x=N(3, 4), w=N(4))
case('group_norm', lambda x, w, b: F.group_norm(x, 3, w, b), x=N(2, 6, 4, 4), w=N(6), b=N(6))
case('group_norm_noaffine_noncontig', lambda x: F.group_norm(x.transpose(2, 3), 2), x=N(2, 4, 3, 5))
case('group_norm_per_channel', lambda x, w, b: F.group_norm(x, 4, w, b), x=N(2, 4, 3, 3), w=N(4), b=N(4))
case('layer_norm_noncontig', lambda x, w, b: F.layer_norm(x.transpose(0, 1), (3,), w, b), x=N(3, 4), w=N(3), b=N(3))

# ================================================================================================
# activations
case('relu', lambda x: F.relu(x), x=N(3, 4))
case('relu_0d', lambda x: F.relu(x), x=N())
case('relu6', lambda x: F.relu6(x), x=U(-8, 8, 3, 4))
case('leaky_relu', lambda x: F.leaky_relu(x), x=N(3, 4))
case('leaky_relu_slope', lambda x: F.leaky_relu(x, 0.2), x=N(3, 4))
case('gelu', lambda x: F.gelu(x), x=N(3, 4, scale=2))
case('gelu_tanh', lambda x: F.gelu(x, approximate='tanh'), x=N(3, 4, scale=2))
case('silu', lambda x: F.silu(x), x=N(3, 4, scale=2))
case('hardswish', lambda x: F.hardswish(x), x=U(-4, 4, 3, 4))
case('sigmoid', lambda x: torch.sigmoid(x), x=N(3, 4, scale=2))
case('tanh', lambda x: torch.tanh(x), x=N(3, 4))
case('softmax', lambda x: F.softmax(x, -1), x=N(3, 5))
case('softmax_dim0', lambda x: F.softmax(x, 0), x=N(3, 5))
case('softmax_noncontig', lambda x: F.softmax(x.transpose(0, 1), 1), x=N(4, 3, 5))
case('log_softmax', lambda x: F.log_softmax(x, 1), x=N(2, 4, 3))
case('softmax_empty', lambda x: F.softmax(x, -1), x=N(0, 3))
case('softmax_0d', lambda x: F.softmax(x, 0), x=N())
case('gelu_empty', lambda x: F.gelu(x), x=N(2, 0))

# ================================================================================================
# losses
case('cross_entropy', lambda x, t: F.cross_entropy(x, t), x=N(4, 5), t=I(5, 4))
case('cross_entropy_sum', lambda x, t: F.cross_entropy(x, t, reduction='sum'), x=N(4, 5), t=I(5, 4))
case('cross_entropy_none', lambda x, t: F.cross_entropy(x, t, reduction='none'), x=N(4, 5), t=I(5, 4))
case('cross_entropy_weight', lambda x, t, w: F.cross_entropy(x, t, weight=w), grad=['x'], x=N(6, 5), t=I(5, 6), w=P(5))
case('cross_entropy_smoothing', lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1), x=N(4, 5), t=I(5, 4))
case('cross_entropy_smoothing_weight_sum',
     lambda x, t, w: F.cross_entropy(x, t, weight=w, reduction='sum', label_smoothing=0.2),
     grad=['x'], x=N(6, 5), t=I(5, 6), w=P(5))
case('cross_entropy_ignore_index', lambda x, t: F.cross_entropy(x, t, ignore_index=1), x=N(6, 5), t=KI([0, 1, 2, 1, 4, 3]))
case('cross_entropy_ignore_default', lambda x, t: F.cross_entropy(x, t), x=N(6, 5), t=KI([0, -100, 2, 4, -100, 3]))
case('cross_entropy_ignore_smoothing_weight',
     lambda x, t, w: F.cross_entropy(x, t, weight=w, ignore_index=1, label_smoothing=0.1),
     grad=['x'], x=N(6, 5), t=KI([0, 1, 2, 1, 4, 3]), w=P(5))
case('cross_entropy_probs', lambda x, p: F.cross_entropy(x, p), x=N(4, 5), p=SOFT(4, 5))
case('cross_entropy_probs_smoothing_none', lambda x, p: F.cross_entropy(x, p, label_smoothing=0.1, reduction='none'),
     x=N(4, 5), p=SOFT(4, 5))
case('cross_entropy_probs_weight', lambda x, p, w: F.cross_entropy(x, p, weight=w), grad=['x', 'p'],
     x=N(4, 5), p=SOFT(4, 5), w=P(5))
case('cross_entropy_spatial', lambda x, t: F.cross_entropy(x, t), x=N(2, 3, 4, 4), t=I(3, 2, 4, 4))
case('cross_entropy_unbatched', lambda x, t: F.cross_entropy(x, t), x=N(5), t=KI(2))
case('cross_entropy_noncontig', lambda x, t: F.cross_entropy(x.t(), t), x=N(5, 4), t=I(5, 4))
case('cross_entropy_empty_sum', lambda x, t: F.cross_entropy(x, t, reduction='sum'), x=N(0, 5), t=I(5, 0))
case('nll_loss', lambda x, t: F.nll_loss(F.log_softmax(x, 1), t), x=N(4, 5), t=I(5, 4))
case('nll_loss_weight_sum', lambda x, t, w: F.nll_loss(F.log_softmax(x, 1), t, weight=w, reduction='sum'),
     grad=['x'], x=N(6, 5), t=I(5, 6), w=P(5))
case('nll_loss_ignore_none', lambda x, t: F.nll_loss(F.log_softmax(x, 1), t, ignore_index=0, reduction='none'),
     x=N(6, 5), t=KI([0, 1, 0, 3, 4, 2]))
case('nll_loss_spatial', lambda x, t: F.nll_loss(F.log_softmax(x, 1), t), x=N(2, 3, 4, 4), t=I(3, 2, 4, 4))
case('mse_loss', lambda x, y: F.mse_loss(x, y), x=N(3, 4), y=N(3, 4))
case('mse_loss_sum', lambda x, y: F.mse_loss(x, y, reduction='sum'), x=N(3, 4), y=N(3, 4))
case('mse_loss_none', lambda x, y: F.mse_loss(x, y, reduction='none'), x=N(3, 4), y=N(3, 4))
case('mse_loss_0d', lambda x, y: F.mse_loss(x, y), x=N(), y=N())

# ================================================================================================
# reductions, sorting
case('sum', lambda x: x.sum(), x=N(3, 4))
case('sum_dim', lambda x: x.sum(1), x=N(3, 4))
case('sum_dims_keepdim', lambda x: x.sum((0, 2), keepdim=True), x=N(2, 3, 4))
case('sum_negative_dim', lambda x: x.sum(-1), x=N(2, 3, 4))
case('sum_noncontig', lambda x: x.t().sum(1), x=N(4, 3))
case('sum_empty', lambda x: x.sum(), x=N(0, 3))
case('sum_empty_dim', lambda x: x.sum(0), x=N(0, 3))
case('sum_0d', lambda x: x.sum(), x=N())
case('sum_large', lambda x: x.sum(), x=N(64, 1000))
case('sum_int64', lambda a: a.sum(), a=R(-100, 100, 10))
case('mean', lambda x: x.mean(), x=N(3, 4))
case('mean_dim', lambda x: x.mean(0), x=N(3, 4))
case('mean_dims_keepdim', lambda x: x.mean((1, 2), keepdim=True), x=N(2, 3, 4))
case('mean_large', lambda x: x.mean(), x=N(64, 1000))
case('max', lambda x: x.max(), x=N(3, 4))
case('min', lambda x: x.min(), x=N(3, 4))
case('max_dim', lambda x: torch.max(x, 1), x=N(3, 5))
case('max_dim_keepdim', lambda x: torch.max(x, 0, keepdim=True), x=N(3, 5))
case('min_dim', lambda x: torch.min(x, -1), x=N(3, 5))
case('min_dim_keepdim', lambda x: torch.min(x, 1, keepdim=True), x=N(2, 3, 4))
case('max_dim_size1', lambda x: torch.max(x, 1), x=N(3, 1))
case('argmax', lambda x: x.argmax(), x=N(3, 4))
case('argmax_dim', lambda x: x.argmax(1), x=N(3, 4))
case('argmax_dim_keepdim', lambda x: x.argmax(0, keepdim=True), x=N(3, 4))
case('argmin', lambda x: x.argmin(), x=N(3, 4))
case('argmin_dim', lambda x: x.argmin(-1), x=N(2, 3, 4))
case('var', lambda x: x.var(), x=N(3, 4))
case('var_dim_c0', lambda x: torch.var(x, 1, correction=0), x=N(3, 4))
case('var_dims_keepdim', lambda x: torch.var(x, (0, 2), keepdim=True), x=N(2, 3, 4))
case('vector_norm_dim_keepdim', lambda x: torch.linalg.vector_norm(x, 2, -1, keepdim=True), x=N(3, 4))
case('std', lambda x: x.std(), x=N(3, 4))
case('std_c0', lambda x: torch.std(x, None, correction=0), x=N(3, 4))
case('std_dim_keepdim_c0', lambda x: torch.std(x, -1, correction=0, keepdim=True), x=N(2, 3, 4))
case('var_single_c1', lambda x: torch.var(x, 0), x=N(1, 3))
case('logsumexp', lambda x: torch.logsumexp(x, 1), x=N(3, 5))
case('logsumexp_dims_keepdim', lambda x: torch.logsumexp(x, (0, 1), keepdim=True), x=N(2, 3, 4))
case('norm', lambda x: torch.linalg.vector_norm(x, 2), x=N(3, 4))
case('norm_p1_dim', lambda x: torch.linalg.vector_norm(x, 1, dim=1), x=N(3, 4))
case('norm_p3_keepdim', lambda x: torch.linalg.vector_norm(x, 3, dim=0, keepdim=True), x=N(3, 4))
case('norm_dims', lambda x: torch.linalg.vector_norm(x, 2, dim=(1, 2)), x=N(2, 3, 4))
case('norm_empty', lambda x: torch.linalg.vector_norm(x, 2), x=N(0, 3))
case('topk', lambda x: torch.topk(x, 3), x=N(4, 6))
case('topk_smallest_dim0', lambda x: torch.topk(x, 2, dim=0, largest=False), x=N(5, 3))
case('sort_descending', lambda x: torch.sort(x, descending=True), x=N(3, 5))
case('sort_dim0', lambda x: torch.sort(x, dim=0), x=N(4, 3))
case('sort_stable_int64', lambda a: torch.sort(a, stable=True), a=R(0, 4, 12))
case('argsort', lambda x: torch.argsort(x, 1), x=N(3, 5))
case('argsort_descending', lambda x: torch.argsort(x, dim=0, descending=True), x=N(4, 3))
case('argsort_default_dim', lambda x: torch.argsort(x), x=N(3, 5))
case('cumsum', lambda x: torch.cumsum(x, 1), x=N(3, 5))
case('cumsum_noncontig', lambda x: torch.cumsum(x.t(), 0), x=N(3, 5))
case('cumsum_int64', lambda a: torch.cumsum(a, 0), a=R(-5, 5, 7))

# ================================================================================================
# shape, joins, indexing
case('reshape', lambda x: x.reshape(4, -1), x=N(2, 3, 4))
case('reshape_noncontig', lambda x: x.t().reshape(-1), x=N(3, 4))
case('reshape_0d', lambda x: x.reshape(1, 1), x=N())
case('reshape_empty', lambda x: x.reshape(3, 0, 2), x=N(0, 6))
case('view', lambda x: x.view(6, 4), x=N(2, 3, 4))
case('flatten', lambda x: x.flatten(), x=N(2, 3, 4))
case('flatten_range', lambda x: x.flatten(1, 2), x=N(2, 3, 4, 5))
case('flatten_0d', lambda x: x.flatten(), x=N())
case('unflatten', lambda x: x.unflatten(1, (2, 3)), x=N(4, 6, 5))
case('unflatten_infer', lambda x: x.unflatten(-1, (-1, 2)), x=N(3, 8))
case('permute', lambda x: x.permute(2, 0, 1), x=N(2, 3, 4))
case('transpose', lambda x: x.transpose(1, 2), x=N(2, 3, 4))
case('transpose_negative', lambda x: x.transpose(-1, 0), x=N(2, 3, 4))
case('squeeze', lambda x: x.squeeze(), x=N(1, 3, 1, 4))
case('squeeze_dim', lambda x: x.squeeze(2), x=N(1, 3, 1, 4))
case('squeeze_dim_not_one', lambda x: x.squeeze(1), x=N(1, 3, 1, 4))
case('unsqueeze', lambda x: x.unsqueeze(0), x=N(3, 4))
case('unsqueeze_last', lambda x: x.unsqueeze(-1), x=N(3, 4))
case('unsqueeze_0d', lambda x: x.unsqueeze(0), x=N())
case('expand', lambda x: x.expand(2, 3, 4), x=N(3, 1))
case('expand_keep', lambda x: x.expand(-1, 5), x=N(3, 1))
case('expand_0d', lambda x: x.expand(2, 3), x=N())
case('expand_as', lambda x, y: x.expand_as(y), grad=['x'], x=N(1, 4), y=N(3, 4))
case('repeat', lambda x: x.repeat(2, 1, 3), x=N(3, 2))
case('repeat_zero', lambda x: x.repeat(0, 2), x=N(2, 3))
case('cat', lambda x, y, z: torch.cat([x, y, z]), x=N(2, 3), y=N(1, 3), z=N(4, 3))
case('cat_dim1_noncontig', lambda x, y: torch.cat([x.t(), y], 1), x=N(3, 2), y=N(2, 4))
case('cat_empty', lambda x, y: torch.cat([x, y], 0), x=N(0, 3), y=N(2, 3))
case('cat_negative_dim', lambda x, y: torch.cat([x, y], -1), x=N(2, 2, 1), y=N(2, 2, 3))
case('stack', lambda x, y: torch.stack([x, y]), x=N(2, 3), y=N(2, 3))
case('stack_last', lambda x, y, z: torch.stack([x, y, z], -1), x=N(2, 3), y=N(2, 3), z=N(2, 3))
case('stack_0d', lambda x, y: torch.stack([x, y]), x=N(), y=N())
case('split_size', lambda x: torch.split(x, 2), x=N(5, 3))
case('split_sections', lambda x: torch.split(x, [1, 3, 2], dim=1), x=N(2, 6))
case('chunk', lambda x: torch.chunk(x, 3, 1), x=N(2, 7))
case('chunk_default_dim_uneven', lambda x: torch.chunk(x, 4), x=N(5, 2))
case('narrow', lambda x: x.narrow(1, 1, 2), x=N(3, 4))
case('narrow_empty', lambda x: x.narrow(0, 1, 0), x=N(3, 4))
case('select', lambda x: x.select(1, -1), x=N(3, 4, 2))
case('select_to_0d', lambda x: x.select(0, 1), x=N(3))
case('index_select', lambda x, idx: torch.index_select(x, 0, idx), x=N(4, 3), idx=KI([2, 0, 2, 3]))
case('index_select_dim1', lambda x, idx: torch.index_select(x, 1, idx), x=N(2, 5, 3), idx=I(5, 4))
case('index_select_empty', lambda x, idx: torch.index_select(x, 0, idx), x=N(4, 3), idx=KI([]))
case('gather', lambda x, idx: torch.gather(x, 1, idx), x=N(3, 5), idx=I(5, 3, 4))
case('gather_dim0', lambda x, idx: torch.gather(x, 0, idx), x=N(4, 3), idx=I(4, 2, 3))
case('scatter_src', lambda x, idx, y: torch.scatter(x, 1, idx, y), x=N(3, 5), idx=UNIQ(3, 5, 2), y=N(3, 2))
case('scatter_value', lambda x, idx: torch.scatter(x, 1, idx, 2.5), x=N(3, 5), idx=UNIQ(3, 5, 3))
case('scatter_add', lambda x, idx, y: torch.scatter_add(x, 0, idx, y), x=N(3, 4), idx=I(3, 5, 4), y=N(5, 4))
case('index', lambda x, idx: x[idx], x=N(5, 3), idx=KI([4, 0, 4]))
case('index_second_dim', lambda x, idx: x[:, idx], x=N(2, 5, 3), idx=I(5, 2, 2))
case('index_two', lambda x, i, j: x[i, j], x=N(4, 5), i=KI([0, 3, 1]), j=KI([[4], [0]]))
case('index_bool', lambda x, m: x[m], x=N(3, 4), m=B(3, 4))
case('masked_fill', lambda x, m: x.masked_fill(m, -1.5), x=N(3, 4), m=B(3, 1))
case('roll_swin', lambda x: torch.roll(x, shifts=(-3, -3), dims=(1, 2)), x=N(2, 8, 8, 4))
case('roll_swin_reverse', lambda x: torch.roll(x, shifts=(3, 3), dims=(1, 2)), x=N(1, 6, 6, 2))
case('roll_flat', lambda x: torch.roll(x, 2), x=N(3, 4))
case('roll_one_dim', lambda x: torch.roll(x, -1, 0), x=N(3, 4))
case('flip', lambda x: torch.flip(x, (0, 2)), x=N(2, 3, 4))
case('tril', lambda x: torch.tril(x), x=N(4, 5))
case('tril_batched_negative', lambda x: torch.tril(x, -1), x=N(2, 4, 5))
case('triu', lambda x: torch.triu(x, 1), x=N(4, 5))
case('triu_negative', lambda x: torch.triu(x, -2), x=N(5, 3))
case('triu_default', lambda x: torch.triu(x), x=N(3, 4))

# ================================================================================================
# padding, resampling, one-hot
case('pad_constant', lambda x: F.pad(x, (1, 2), value=0.5), x=N(1, 2, 3, 4))
case('pad_constant_2d', lambda x: F.pad(x, (1, 0, 2, 1), value=-1), x=N(1, 2, 3, 4))
case('pad_constant_negative', lambda x: F.pad(x, (-1, 2)), x=N(2, 5))
case('pad_constant_3dims', lambda x: F.pad(x, (1, 1, 0, 2, 1, 0)), x=N(2, 3, 4))
case('pad_reflect', lambda x: F.pad(x, (2, 1, 1, 2), mode='reflect'), x=N(1, 2, 4, 5))
case('pad_reflect_1d', lambda x: F.pad(x, (2, 2), mode='reflect'), x=N(2, 3, 5))
case('pad_replicate', lambda x: F.pad(x, (1, 1, 2, 0), mode='replicate'), x=N(1, 2, 3, 4))
case('pad_circular', lambda x: F.pad(x, (2, 1, 1, 1), mode='circular'), x=N(1, 2, 3, 4))
case('pad_reflect_noncontig', lambda x: F.pad(x.transpose(2, 3), (1, 2, 2, 1), mode='reflect'), x=N(1, 2, 5, 4))
case('interpolate_nearest_size', lambda x: F.interpolate(x, size=(7, 3)), x=N(1, 2, 4, 5))
case('interpolate_nearest_scale', lambda x: F.interpolate(x, scale_factor=2), x=N(1, 2, 3, 4))
case('interpolate_nearest_scale_fraction', lambda x: F.interpolate(x, scale_factor=1.5), x=N(1, 2, 3, 4))
case('interpolate_bilinear_size', lambda x: F.interpolate(x, size=(6, 8), mode='bilinear', align_corners=False), x=N(2, 3, 4, 5))
case('interpolate_bilinear_align', lambda x: F.interpolate(x, size=(6, 8), mode='bilinear', align_corners=True), x=N(2, 3, 4, 5))
case('interpolate_bilinear_scale', lambda x: F.interpolate(x, scale_factor=(2, 0.5), mode='bilinear'), x=N(1, 2, 3, 8))
case('interpolate_bilinear_scale_align', lambda x: F.interpolate(x, scale_factor=1.5, mode='bilinear', align_corners=True),
     x=N(1, 2, 4, 4))
case('interpolate_bilinear_size_int', lambda x: F.interpolate(x, size=5, mode='bilinear'), x=N(1, 1, 3, 4))
case('interpolate_bilinear_channels_last', lambda x: F.interpolate(x.contiguous(memory_format=torch.channels_last), size=(5, 7), mode='bilinear'),
     x=N(2, 3, 4, 4))
case('interpolate_nearest_noncontig', lambda x: F.interpolate(x.transpose(2, 3), scale_factor=2), x=N(1, 2, 3, 4))
case('one_hot', lambda t: F.one_hot(t, 5), t=I(5, 6))
case('one_hot_infer', lambda t: F.one_hot(t), t=KI([0, 3, 1]))
case('one_hot_2d', lambda t: F.one_hot(t, 3), t=I(3, 2, 3))
case('one_hot_empty', lambda t: F.one_hot(t, 3), t=KI([]))

# ================================================================================================
# in-place ops on a copy (autograd runs through them)
case('add_inplace', lambda x, y: x.clone().add_(y, alpha=2), x=N(2, 3), y=N(3))
case('add_inplace_scalar', lambda x: x.clone().add_(0.5), x=N(2, 3))
case('sub_inplace', lambda x, y: x.clone().sub_(y), x=N(2, 3), y=N(2, 1))
case('mul_inplace', lambda x, y: x.clone().mul_(y), x=N(2, 3), y=N(3))
case('mul_inplace_scalar', lambda x: x.clone().mul_(3), x=N(2, 3))
case('div_inplace', lambda x, y: x.clone().div_(y), x=N(2, 3), y=P(2, 3))
case('addcmul_inplace', lambda x, y, z: x.clone().addcmul_(y, z, value=0.5), x=N(2, 3), y=N(2, 3), z=N(3))
case('addcdiv_inplace', lambda x, y, z: x.clone().addcdiv_(y, z, value=-1), x=N(2, 3), y=N(2, 3), z=P(2, 3))
case('lerp_inplace_scalar', lambda x, y: x.clone().lerp_(y, 0.25), x=N(2, 3), y=N(2, 3))
case('lerp_inplace_tensor', lambda x, y, w: x.clone().lerp_(y, w), x=N(2, 3), y=N(2, 3), w=U(0, 1, 2, 3))
case('clamp_inplace', lambda x: x.clone().clamp_(-0.5, 0.5), x=N(3, 4))
case('clamp_inplace_min', lambda x: x.clone().clamp_(min=0), x=N(3, 4))
case('clamp_inplace_max', lambda x: x.clone().clamp_(max=0.1), x=N(3, 4))
case('sqrt_inplace', lambda x: x.clone().sqrt_(), x=P(3, 4))
case('relu_inplace', lambda x: x.clone().relu_(), x=N(3, 4))

# ================================================================================================
# tensor methods: copies, conversions, layout, autograd cut
case('clone', lambda x: x.clone(), x=N(2, 3))
case('contiguous_noncontig', lambda x: x.t().contiguous(), x=N(2, 3))
case('channels_last_roundtrip', lambda x: x.contiguous(memory_format=torch.channels_last) * 2, x=N(2, 3, 2, 2))
case('to_float64', lambda x: x.double(), x=N(2, 3))
case('to_int64', lambda x: (x * 3).to(torch.int64), grad=[], x=N(2, 3))
case('detach', lambda x, y: x.detach() * y, x=N(3), y=N(3))


# ================================================================================================
def run(name, fn, gens, grad):
    torch.manual_seed(zlib.crc32(name.encode()))
    inputs = {k: g() for k, g in gens.items()}
    requires = [k for k, t in inputs.items() if t.is_floating_point()] if grad is None else list(grad)
    for k in requires:
        inputs[k].requires_grad_(True)
    recorded = {k: arr(t) for k, t in inputs.items()}
    out = fn(**inputs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    grad_out = [torch.randn_like(o) if o.requires_grad else None for o in outs]
    recorded_outs = [arr(o) for o in outs]
    roots = [(o, g) for o, g in zip(outs, grad_out) if g is not None]
    if roots:
        torch.autograd.backward([o for o, _ in roots], [g for _, g in roots])
    return {
        'inputs': recorded,
        'requiresGrad': requires,
        'outputs': recorded_outs,
        'gradOut': [None if g is None else arr(g) for g in grad_out] if roots else None,
        'grads': {k: None if inputs[k].grad is None else arr(inputs[k].grad) for k in requires},
    }


if __name__ == '__main__':
    emit({name: run(name, fn, gens, grad) for name, (fn, gens, grad) in CASES.items()})
