"""Helpers shared by the oracle scripts: they print JSON that test/helpers.ts reads."""
import base64
import json
import sys

import torch

torch.set_num_threads(1)


def arr(t):
    """A tensor as {dtype, shape, data: base64 little-endian bytes}."""
    t = t.detach().contiguous().cpu()
    name = {torch.float32: 'float32', torch.float64: 'float64', torch.int64: 'int64',
            torch.int32: 'int32', torch.uint8: 'uint8', torch.bool: 'bool'}[t.dtype]
    return {'dtype': name, 'shape': list(t.shape), 'data': base64.b64encode(t.numpy().tobytes()).decode()}


def emit(obj):
    json.dump(obj, sys.stdout)
