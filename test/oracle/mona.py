"""Reference values for the Mona module (test/delta/mona-module.test.ts).

An independent, plain-PyTorch Mona written from docs/mona.md (not a port of the TypeScript):

    u = LN(x) * s1 + x * s2;  z = Linear_down(u);  Z = z as a (B, d, H, W) map
    a = Z + mean_k DWConv_k(Z);  p = a + Conv1x1(a);  out = x + Linear_up(Dropout(GELU(p)))

with its own attribute names (`down`, `up`, `dw.<i>`, `pw`, `ln`, `s1`, `s2`); the test maps them to
the module's (project1, project2, adapter_conv.conv<i+1>, adapter_conv.projector, norm, gamma,
gammax). The map form (NCHW) is computed differently on purpose: the channel LayerNorm by explicit
mean/variance over dim 1 and the projections as 1x1 convolutions. Weights are random (not the
spec's near-identity init) so every term matters. Dropout is off (eval) for parity. For every case
the script emits the float32 weights, input and a random cotangent `g`, and — computed in float64
from those — the output and the gradients of sum(out * g) with respect to the input and every
parameter.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import arr, emit


class RefMona(nn.Module):
    def __init__(self, c, d, kernels, scaled_norm):
        super().__init__()
        self.c, self.d, self.kernels, self.scaled_norm = c, d, list(kernels), scaled_norm
        self.down = nn.Linear(c, d)
        self.up = nn.Linear(d, c)
        self.dw = nn.ModuleList([nn.Conv2d(d, d, k, padding=k // 2, groups=d) for k in kernels])
        self.pw = nn.Conv2d(d, d, 1)
        if scaled_norm:
            self.ln = nn.LayerNorm(c)
            self.s1 = nn.Parameter(torch.full((c,), 1e-6))
            self.s2 = nn.Parameter(torch.ones(c))

    def randomise(self):
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn_like(p) * (0.5 if p.dim() > 1 else 0.3))
            if self.scaled_norm:
                self.ln.weight.add_(1.0)
                self.s2.add_(1.0)

    def core(self, z_map):
        """a = Z + mean_k DWConv_k(Z); p = a + Conv1x1(a) on a (B, d, H, W) map."""
        conv_sum = sum(conv(z_map) for conv in self.dw)
        a = z_map + conv_sum / len(self.dw)
        return a + self.pw(a)

    def tokens(self, x, hw):
        """x (B, N, C), N = H*W row-major."""
        b, n, c = x.shape
        h, w = hw
        assert h * w == n
        u = self.ln(x) * self.s1 + x * self.s2 if self.scaled_norm else x
        z = self.down(u)
        z_map = z.transpose(1, 2).reshape(b, self.d, h, w)
        p = self.core(z_map)
        t = p.reshape(b, self.d, n).transpose(1, 2)
        return x + self.up(F.dropout(F.gelu(t), 0.1, self.training))

    def nhwc(self, x):
        b, h, w, c = x.shape
        return self.tokens(x.reshape(b, h * w, c), (h, w)).reshape(b, h, w, c)

    def vit(self, x, skip, hw):
        head, rest = x[:, :skip], x[:, skip:]
        return torch.cat([head, self.tokens(rest, hw)], dim=1)

    def nchw(self, x):
        """Independent route: channel LN by hand, projections as 1x1 convs on NCHW."""
        if self.scaled_norm:
            mu = x.mean(dim=1, keepdim=True)
            var = ((x - mu) ** 2).mean(dim=1, keepdim=True)
            ln = (x - mu) / torch.sqrt(var + self.ln.eps)
            ln = ln * self.ln.weight[None, :, None, None] + self.ln.bias[None, :, None, None]
            u = ln * self.s1[None, :, None, None] + x * self.s2[None, :, None, None]
        else:
            u = x
        z = F.conv2d(u, self.down.weight[:, :, None, None], self.down.bias)
        p = self.core(z)
        h = F.dropout(F.gelu(p), 0.1, self.training)
        return x + F.conv2d(h, self.up.weight[:, :, None, None], self.up.bias)


def case(name, c, d, kernels, scaled_norm, shape, run, **extra):
    torch.manual_seed(sum(map(ord, name)))
    m = RefMona(c, d, kernels, scaled_norm)
    m.randomise()
    m.eval()
    x = torch.randn(*shape)
    params = {k: arr(v) for k, v in m.named_parameters()}
    # The reference values are computed in float64 from the float32 weights and inputs, so they
    # carry no float32 rounding of their own: the test measures only the module's rounding.
    m.double()
    x64 = x.double().requires_grad_(True)
    out = run(m, x64)
    g = torch.randn(out.shape)
    (out * g.double()).sum().backward()
    return {
        'name': name, 'channels': c, 'hidden': d, 'kernels': list(kernels), 'scaledNorm': scaled_norm,
        'params': params, 'grads': {k: arr(v.grad) for k, v in m.named_parameters()},
        'x': arr(x), 'g': arr(g), 'out': arr(out), 'dx': arr(x64.grad), **extra,
    }


cases = [
    case('tokens', 12, 8, [3, 5, 7], True, (2, 30, 12), lambda m, x: m.tokens(x, (5, 6)), hw=[5, 6]),
    case('nhwc', 12, 8, [3, 5, 7], True, (2, 5, 6, 12), lambda m, x: m.nhwc(x)),
    case('vit-cls', 12, 8, [3, 5, 7], True, (2, 1 + 16, 12), lambda m, x: m.vit(x, 1, (4, 4)), skip=1),
    case('vit-registers', 10, 8, [3, 5], True, (2, 3 + 12, 10), lambda m, x: m.vit(x, 3, (3, 4)), skip=3, hw=[3, 4]),
    case('nchw', 12, 8, [3, 5, 7], True, (2, 12, 5, 6), lambda m, x: m.nchw(x)),
    case('kernels-1-3', 12, 8, [1, 3], True, (2, 20, 12), lambda m, x: m.tokens(x, (4, 5)), hw=[4, 5]),
    case('kernel-5', 12, 8, [5], True, (2, 5, 6, 12), lambda m, x: m.nhwc(x)),
    case('no-scaled-norm', 12, 8, [3, 5, 7], False, (2, 30, 12), lambda m, x: m.tokens(x, (6, 5)), hw=[6, 5]),
    case('nchw-no-scaled-norm-1-3', 12, 8, [1, 3], False, (2, 12, 4, 7), lambda m, x: m.nchw(x)),
    case('default-hidden', 16, 64, [3, 5, 7], True, (1, 16, 7, 6), lambda m, x: m.nchw(x)),
]

emit({'cases': cases, 'torch': torch.__version__})
