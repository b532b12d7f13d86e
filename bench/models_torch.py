"""PyTorch side of `npm run bench:models`: a worker answering timed commands on stdin.

  use NAME        build torchvision NAME (1000 classes), AdamW, a batch; reply {"ok": true}
  fwd N           N timed eval forwards (no grad)         -> {"ms": [...]}
  train N         N timed full fine-tuning steps (AdamW)  -> {"ms": [...]}
  save PATH       torch.save the current state dict        -> {"ok": true}
  load PATH N     N timed torch.load(PATH)                  -> {"ms": [...]}
  quit
"""
import json
import os
import sys
import time

import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'oracle'))
from common import save_safetensors  # noqa: E402

threads, batch = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
state = {}


def timed(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def fwd():
    with torch.no_grad():
        state['model'](state['x'])


def train():
    opt = state['opt']
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(state['model'](state['x']), state['y'])
    loss.backward()
    opt.step()


print(json.dumps({'ready': True, 'threads': torch.get_num_threads()}), flush=True)
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == 'use':
        state.clear()
        model = getattr(torchvision.models, args[0])()
        state['model'] = model
        state['opt'] = torch.optim.AdamW(model.parameters(), lr=1e-4)
        state['x'] = torch.randn(batch, 3, 224, 224)
        state['y'] = torch.randint(0, 1000, (batch,))
        reply = {'ok': True}
    elif cmd == 'fwd':
        state['model'].eval()
        reply = {'ms': timed(fwd, int(args[0]))}
    elif cmd == 'train':
        state['model'].train()
        reply = {'ms': timed(train, int(args[0]))}
    elif cmd == 'save':
        sd = state['model'].state_dict()
        torch.save(sd, args[0])
        save_safetensors(sd, args[1])
        reply = {'ok': True}
    elif cmd == 'load':
        reply = {'ms': timed(lambda: torch.load(args[0]), int(args[1]))}
    elif cmd == 'quit':
        break
    else:
        reply = {'error': f'unknown command {cmd}'}
    print(json.dumps(reply), flush=True)
