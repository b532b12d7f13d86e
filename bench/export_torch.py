"""PyTorch eager side of `npm run bench:export`: a worker answering timed commands on stdin.

argv[1] is the thread count (torch.set_num_threads). Prints {"ready": ...}, then one JSON line per
command line:

  build <key> <arch> <classes> <mona 0|1> <weights.safetensors>
                           torchvision <arch> (mobilenet_v2 or resnet50) with <classes> outputs,
                           with a reference Mona module after each inverted-residual block's output
                           when mona is 1 (as deltatune places it: src/delta/mona.ts), every tensor
                           loaded from the safetensors file deltatune wrote (strict: every key of
                           the model and nothing else; BatchNorm's num_batches_tracked excepted);
                           channels-last, eval -> {"ok": true, "tensors": n}
  data <path>              the input images bench/export.ts wrote (a JSON header line, then
                           n*3*H*W float32), kept channels-last -> {"n": n}
  logits <key> <batch>     the first <batch> images' logits -> {"logits": [...]} (row-major)
  fwd <key> <batch> <n>    n timed forwards of the first <batch> images under inference_mode
                           -> {"ms": [...]}
  quit
"""
import json
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

threads = int(sys.argv[1])
torch.set_num_threads(threads)
torch.manual_seed(0)

_DTYPES = {'F32': torch.float32, 'F16': torch.float16, 'F64': torch.float64, 'I64': torch.int64}


def load_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == '__metadata__':
            continue
        a, b = e['data_offsets']
        out[name] = torch.frombuffer(bytearray(data[a:b]), dtype=_DTYPES[e['dtype']]).reshape(e['shape']).clone()
    return out


class MonaOp(nn.Module):
    """a = Z + mean_k DWConv_k(Z); p = a + Conv1x1(a) (the reference code's MonaOp, as test/oracle/mona.py)."""

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
    """Mona on an NCHW map written as the reference code does it on tokens (the NHWC view of the
    map is the token matrix): x + project2(Dropout(GELU(MonaOp(project1(s1·LN(x) + s2·x))))).
    deltatune's parameter names (project1, project2, adapter_conv.conv<i>/projector, norm, gamma
    = s1, gammax = s2); hidden 64, kernels 3/5/7."""

    def __init__(self, c, d=64):
        super().__init__()
        self.project1 = nn.Linear(c, d)
        self.project2 = nn.Linear(d, c)
        self.dropout = nn.Dropout(0.1)
        self.adapter_conv = MonaOp(d)
        self.norm = nn.LayerNorm(c)
        self.gamma = nn.Parameter(torch.full((c,), 1e-6))
        self.gammax = nn.Parameter(torch.ones(c))

    def forward(self, x):
        t = x.permute(0, 2, 3, 1)  # NHWC view (contiguous for a channels-last map)
        u = self.norm(t) * self.gamma + t * self.gammax
        z = self.project1(u).permute(0, 3, 1, 2)
        p = self.adapter_conv(z).permute(0, 2, 3, 1)
        h = self.project2(self.dropout(F.gelu(p)))
        return x + h.permute(0, 3, 1, 2)


def make_model(arch, classes, mona):
    model = getattr(torchvision.models, arch)(num_classes=classes)
    if mona:
        if arch != 'mobilenet_v2':
            raise ValueError('the reference Mona is placed on mobilenet_v2 only here')
        for blk in list(model.features)[1:-1]:  # the 17 inverted residuals (features.1..17)
            blk.mona = Mona(blk.out_channels)
            blk.register_forward_hook(lambda m, inputs, out: m.mona(out))
    return model


def load_into(model, path):
    state = load_safetensors(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in state if k in own and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        raise ValueError(f'{path}: missing {missing[:5]}, unexpected {unexpected[:5]}, mis-shaped {shapes[:5]}')
    model.load_state_dict(state, strict=False)
    return len(state)


def read_images(path):
    with open(path, 'rb') as f:
        raw = f.read()
    nl = raw.index(b'\n')
    header = json.loads(raw[:nl])
    n, shape = header['n'], header['shape']
    x = torch.frombuffer(bytearray(raw[nl + 1:]), dtype=torch.float32, count=n * shape[0] * shape[1] * shape[2])
    return x.reshape(n, *shape).clone()


models = {}
state = {}


def forward(key, batch):
    with torch.inference_mode():
        return models[key](state['inputs'][batch])


print(json.dumps({'ready': True, 'threads': torch.get_num_threads(), 'torch': torch.__version__}), flush=True)
for line in sys.stdin:
    cmd, *args = line.split()
    try:
        if cmd == 'build':
            key, arch, classes, mona, path = args
            model = make_model(arch, int(classes), mona == '1')
            n = load_into(model, path)
            models[key] = model.to(memory_format=torch.channels_last).eval()
            reply = {'ok': True, 'tensors': n}
        elif cmd == 'data':
            x = read_images(args[0])
            # One channels-last tensor per batch size, made before timing (deltatune's loader hands over channels-last batches too).
            state['inputs'] = {b: x[:b].contiguous(memory_format=torch.channels_last) for b in (1, x.shape[0])}
            reply = {'n': x.shape[0]}
        elif cmd == 'logits':
            reply = {'logits': forward(args[0], int(args[1])).flatten().tolist()}
        elif cmd == 'fwd':
            key, batch, n = args[0], int(args[1]), int(args[2])
            ms = []
            for _ in range(n):
                t0 = time.perf_counter()
                forward(key, batch)
                ms.append((time.perf_counter() - t0) * 1e3)
            reply = {'ms': ms}
        elif cmd == 'quit':
            break
        else:
            reply = {'error': f'unknown command {cmd}'}
    except Exception as err:  # noqa: BLE001 - reported to the bench, which stops with it
        reply = {'error': f'{type(err).__name__}: {err}'}
    print(json.dumps(reply), flush=True)
