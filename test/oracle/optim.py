"""Reference trajectories of torch.optim.AdamW and SGD on a fixed loss, for test/train/optim.test.ts."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from common import arr, emit  # noqa: E402

import torch  # noqa: E402

torch.manual_seed(0)
w0 = torch.randn(4, 3)
b0 = torch.randn(3)
x = torch.randn(5, 4)
target = torch.randn(5, 3)

CONFIGS = {
    'adamw': lambda ps: torch.optim.AdamW(ps, lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
    'adamw_default': lambda ps: torch.optim.AdamW(ps),
    'sgd': lambda ps: torch.optim.SGD(ps, lr=0.1),
    'sgd_momentum_wd': lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
    'sgd_nesterov': lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
}

out = {'init': {'w': arr(w0), 'b': arr(b0), 'x': arr(x), 'target': arr(target)}, 'steps': 7, 'results': {}}
for name, make in CONFIGS.items():
    w = w0.clone().requires_grad_()
    b = b0.clone().requires_grad_()
    opt = make([w, b])
    for _ in range(out['steps']):
        opt.zero_grad()
        loss = ((x @ w + b - target) ** 2).mean()
        loss.backward()
        opt.step()
    out['results'][name] = {'w': arr(w), 'b': arr(b)}

# The bias gets no gradient for the first 3 steps: AdamW keeps per-tensor step counts, so the two
# tensors are then at different steps (deltatune's per-step-count path rather than its flat one).
w = w0.clone().requires_grad_()
b = b0.clone().requires_grad_()
opt = torch.optim.AdamW([w, b], lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)
for i in range(out['steps']):
    opt.zero_grad()
    pred = x @ w + b if i >= 3 else x @ w
    ((pred - target) ** 2).mean().backward()
    opt.step()
out['late_bias'] = {'w': arr(w), 'b': arr(b)}
emit(out)
