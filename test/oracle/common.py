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


_ST_DTYPES = {torch.float32: 'F32', torch.float64: 'F64', torch.float16: 'F16', torch.bfloat16: 'BF16',
              torch.int64: 'I64', torch.int32: 'I32', torch.int16: 'I16', torch.int8: 'I8',
              torch.uint8: 'U8', torch.bool: 'BOOL'}


def save_safetensors(tensors, path, metadata=None):
    """Writes the safetensors format by hand (the safetensors package is not in Debian 12)."""
    import struct
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        data = t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {'dtype': _ST_DTYPES[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        header['__metadata__'] = metadata
    raw = json.dumps(header, separators=(',', ':')).encode()
    raw += b' ' * (-len(raw) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(raw)))
        f.write(raw)
        for c in chunks:
            f.write(c)
