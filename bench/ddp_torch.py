"""PyTorch side of `npm run bench:ddp`: one rank of DistributedDataParallel over Gloo.

argv[1] is JSON: {rank, worldSize, initMethod, timeoutMs, data, perRank, classes} (as bench/ddp_worker.ts).
After joining the group it prints {"ready": ...} and answers one JSON line per stdin line:

  build <method>          torchvision resnet50 at 224, channels-last, 10 classes, AdamW lr 1e-4,
                          wrapped in DDP (defaults: 25 MiB buckets, overlap with backward);
                          'full' trains everything (BatchNorm in train mode), 'mona' freezes the
                          backbone (BatchNorm in eval) and adds a Mona module after each bottleneck
                          block's output, as deltatune places it (src/delta/mona.ts)
  step                    one DDP training step -> {ms, fwdBwdMs, optMs}
  allreduce <numel> <n>   n timed dist.all_reduce of a float32 tensor (barrier before each) -> {ms: [...]}
  quit
"""
import json
import os
import sys
import time
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
import torchvision

args = json.loads(sys.argv[1])
rank, world = args['rank'], args['worldSize']
torch.set_num_threads(1)
dist.init_process_group('gloo', init_method=args['initMethod'], rank=rank, world_size=world,
                        timeout=timedelta(milliseconds=args['timeoutMs']))


def read_data(path):
    """The file bench/ddp.ts writes: a JSON header line, n*C*H*W float32, n int32 labels."""
    with open(path, 'rb') as f:
        raw = f.read()
    nl = raw.index(b'\n')
    header = json.loads(raw[:nl])
    n, shape = header['n'], header['shape']
    per = shape[0] * shape[1] * shape[2]
    body = bytearray(raw[nl + 1:])
    images = torch.frombuffer(body, dtype=torch.float32, count=n * per).reshape(n, *shape).clone()
    labels = torch.frombuffer(body, dtype=torch.int32, count=n, offset=n * per * 4).long().clone()
    return images, labels


class MonaOp(nn.Module):
    """a = Z + mean_k DWConv_k(Z); p = a + Conv1x1(a) (the reference code's MonaOp)."""

    def __init__(self, d, kernels=(3, 5, 7)):
        super().__init__()
        for i, k in enumerate(kernels):
            setattr(self, f'conv{i + 1}', nn.Conv2d(d, d, k, padding=k // 2, groups=d))
        self.n = len(kernels)
        self.projector = nn.Conv2d(d, d, 1)

    def forward(self, z):
        conv_sum = sum(getattr(self, f'conv{i + 1}')(z) for i in range(self.n))
        a = z + conv_sum / self.n
        return a + self.projector(a)


class Mona(nn.Module):
    """Mona on an NCHW map, written as the reference code does it on tokens: the NHWC view of the
    map is the token matrix. Same parameters, names and registration order as deltatune's MonaMap
    (hidden 64, kernels 3/5/7, scaled LayerNorm, dropout 0.1)."""

    def __init__(self, c, d=64, dropout=0.1):
        super().__init__()
        self.project1 = nn.Linear(c, d)
        self.project2 = nn.Linear(d, c)
        self.dropout = nn.Dropout(dropout)
        self.adapter_conv = MonaOp(d)
        self.norm = nn.LayerNorm(c)
        self.gamma = nn.Parameter(torch.full((c,), 1e-6))
        self.gammax = nn.Parameter(torch.ones(c))
        for lin in (self.project1, self.project2):
            nn.init.trunc_normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)

    def forward(self, x):
        t = x.permute(0, 2, 3, 1)  # NHWC view (contiguous for a channels-last map)
        u = self.norm(t) * self.gamma + t * self.gammax
        z = self.project1(u).permute(0, 3, 1, 2)
        p = self.adapter_conv(z).permute(0, 2, 3, 1)
        h = self.project2(self.dropout(F.gelu(p)))
        return x + h.permute(0, 3, 1, 2)


def make_model(method):
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=args['classes'])
    if method == 'mona':
        for p in model.parameters():
            p.requires_grad_(False)
        for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
            for blk in layer:
                blk.mona = Mona(blk.conv3.out_channels)  # registered after the block's own modules
                blk.register_forward_hook(lambda m, inputs, out: m.mona(out))
        model.fc = nn.Linear(model.fc.in_features, args['classes'])  # a new, trainable head
    elif method != 'full':
        raise ValueError(f'method must be full or mona, got {method}')
    model = model.to(memory_format=torch.channels_last)
    model.train()
    if method == 'mona':
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
    return model


state = {}


def build(method):
    state.clear()
    images, labels = read_data(args['data'])
    idx = [rank + i * world for i in range(args['perRank'])]  # global batch 0, this rank's shard
    model = make_model(method)
    ddp = nn.parallel.DistributedDataParallel(model)  # broadcasts rank 0's parameters and buffers
    params = [p for p in model.parameters() if p.requires_grad]
    state.update(
        ddp=ddp, opt=torch.optim.AdamW(params, lr=1e-4),
        x=images[idx].contiguous(memory_format=torch.channels_last), y=labels[idx],
    )
    numel = sum(p.numel() for p in params)
    return {'trainable': numel, 'tensors': len(params), 'bytes': numel * 4}


def step():
    ddp, opt = state['ddp'], state['opt']
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(ddp(state['x']), state['y']).backward()  # gradients averaged during backward
    t1 = time.perf_counter()
    opt.step()
    t2 = time.perf_counter()
    return {'ms': (t2 - t0) * 1e3, 'fwdBwdMs': (t1 - t0) * 1e3, 'optMs': (t2 - t1) * 1e3}


def allreduce(numel, n):
    t = torch.zeros(numel)
    dist.all_reduce(t)  # warm-up
    out = []
    for _ in range(n):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(t)
        out.append((time.perf_counter() - t0) * 1e3)
    return {'ms': out}


def reply(value):
    sys.stdout.write(json.dumps(value) + '\n')
    sys.stdout.flush()


reply({'ready': True, 'rank': rank, 'threads': torch.get_num_threads(), 'torch': torch.__version__})
for line in sys.stdin:
    cmd, *rest = line.split()
    try:
        if cmd == 'build':
            reply(build(rest[0]))
        elif cmd == 'step':
            reply(step())
        elif cmd == 'allreduce':
            reply(allreduce(int(rest[0]), int(rest[1])))
        elif cmd == 'quit':
            break
        else:
            reply({'error': f'unknown command {line.strip()!r}'})
    except Exception as err:  # reported to the driver, which stops the bench
        import traceback
        reply({'error': f'{err}\n{traceback.format_exc()}'})
state.clear()
dist.destroy_process_group()
os._exit(0)
