"""PyTorch side of `npm run bench:engine`: a worker that runs timed steps when asked on stdin.

Protocol: one command per line; one JSON reply per line on stdout.
  steps N      -> {"ms": [t1, ..., tN]}   ResNet-18 training steps (torchvision model, AdamW)
  overhead N   -> {"us": per-call microseconds of a tiny add over N calls}
  quit
"""
import json
import sys
import time

import torch
import torchvision

threads = int(sys.argv[1])
batch = int(sys.argv[2])
size = int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)

model = torchvision.models.resnet18(num_classes=10)
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
x = torch.randn(batch, 3, size, size)
y = torch.randint(0, 10, (batch,))


def step():
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


def overhead(n):
    a = torch.ones(1)
    b = torch.ones(1)
    for _ in range(1000):
        torch.add(a, b)
    t0 = time.perf_counter()
    for _ in range(n):
        torch.add(a, b)
    return (time.perf_counter() - t0) / n * 1e6


print(json.dumps({'ready': True, 'threads': torch.get_num_threads()}), flush=True)
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == 'steps':
        times = []
        for _ in range(int(args[0])):
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
        print(json.dumps({'ms': times}), flush=True)
    elif cmd == 'overhead':
        print(json.dumps({'us': overhead(int(args[0]))}), flush=True)
    elif cmd == 'quit':
        break
