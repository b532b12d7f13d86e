"""torch.nn layers on fixed inputs, for test/nn/layers.test.ts: state-dict names and shapes,
outputs in train and eval mode, and batch-norm running statistics after training steps."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import arr, emit  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

torch.manual_seed(0)


class Net(nn.Module):
    """Exercises registration order and nesting: the names the TS side must reproduce."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.ModuleList([nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.GroupNorm(4, 8)])
        self.head = nn.ModuleDict({'norm': nn.LayerNorm(8), 'fc': nn.Linear(8, 5)})
        self.register_buffer('scale', torch.ones(1))

    def forward(self, x):
        h = self.stem(x)
        for m in self.blocks:
            h = m(h)
        h = h.mean((2, 3))
        return self.head['fc'](self.head['norm'](h)) * self.scale


net = Net()
with torch.no_grad():
    for name, p in net.named_parameters():
        p.copy_(torch.randn(p.shape) * 0.5)
x = torch.randn(4, 3, 10, 10)
out = {'keys': [[k, list(v.shape)] for k, v in net.state_dict().items()],
       'params': {k: arr(v) for k, v in net.state_dict().items()}, 'x': arr(x)}
net.train()
y1 = net(x)
y2 = net(x * 2)
out['trainOut'] = arr(y2)
out['runningMean'] = arr(net.stem[1].running_mean)
out['runningVar'] = arr(net.stem[1].running_var)
out['numBatches'] = int(net.stem[1].num_batches_tracked)
net.eval()
out['evalOut'] = arr(net(x))

# BatchNorm with momentum=None: cumulative moving average.
bn = nn.BatchNorm2d(3, momentum=None)
inputs = [torch.randn(2, 3, 4, 4) + i for i in range(3)]
for t in inputs:
    bn(t)
out['cumulative'] = {'inputs': [arr(t) for t in inputs], 'mean': arr(bn.running_mean), 'var': arr(bn.running_var)}
emit(out)
