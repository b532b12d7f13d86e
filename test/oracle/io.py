"""Fixtures for test/io, made by PyTorch itself.

Without arguments: prints JSON holding torch.save checkpoints, the same tensors as safetensors
written by hand (Debian has no safetensors package), variants (deflated, byteorder, legacy,
TorchScript) and hostile pickles, every file as base64, plus the expected tensor bytes.

`io.py read FILE`: reads a safetensors file with json/struct/torch.frombuffer only and prints
its tensors, so the tests can check that files deltatune writes are what PyTorch reads.
"""
import base64
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from collections import OrderedDict
from io import BytesIO

import torch

torch.set_num_threads(1)

# The hostile pickles would create this file if anything ever ran them.
MARKER = '/tmp/deltatune-io-test-pwned'
DTYPES = {torch.float32: 'F32', torch.float64: 'F64', torch.float16: 'F16', torch.bfloat16: 'BF16',
          torch.int64: 'I64', torch.int32: 'I32', torch.int16: 'I16', torch.int8: 'I8',
          torch.uint8: 'U8', torch.bool: 'BOOL'}
NAMES = {torch.float32: 'float32', torch.float64: 'float64', torch.float16: 'float16',
         torch.bfloat16: 'bfloat16', torch.int64: 'int64', torch.int32: 'int32', torch.int16: 'int16',
         torch.int8: 'int8', torch.uint8: 'uint8', torch.bool: 'bool'}


def b64(data):
    return base64.b64encode(data).decode()


def raw(t):
    """Little-endian element bytes of t's values in contiguous order."""
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def describe(t):
    return {'dtype': NAMES[t.dtype], 'shape': list(t.shape), 'stride': list(t.stride()),
            'offset': t.storage_offset(), 'requiresGrad': t.requires_grad, 'data': b64(raw(t))}


def saved(obj, **kwargs):
    buf = BytesIO()
    torch.save(obj, buf, **kwargs)
    return buf.getvalue()


def safetensors_bytes(tensors, metadata):
    """The safetensors layout written by hand, as the reference implementation does."""
    header, chunks, offset = {'__metadata__': metadata}, [], 0
    for name, t in tensors.items():
        data = raw(t)
        header[name] = {'dtype': DTYPES[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * (-len(text) % 8)
    return struct.pack('<Q', len(text)) + text + b''.join(chunks)


def rezip(data, compression=zipfile.ZIP_STORED, extra=None, replace=None):
    """Copies a torch.save zip, optionally deflated, with entries added or replaced."""
    src, out = zipfile.ZipFile(BytesIO(data)), BytesIO()
    with zipfile.ZipFile(out, 'w', compression) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, (replace or {}).get(info.filename, src.read(info.filename)))
        for name, content in (extra or {}).items():
            dst.writestr(name, content)
    return out.getvalue()


def archive(pickled):
    """A zip laid out like torch.save's around a given data.pkl."""
    out = BytesIO()
    with zipfile.ZipFile(out, 'w') as z:
        z.writestr('archive/data.pkl', pickled)
        z.writestr('archive/version', '3\n')
    return out.getvalue()


class Reduce:
    """Pickles as fn(*args): the shape of every malicious pickle."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def fixtures():
    torch.manual_seed(0)
    base = torch.randn(4, 6)
    tensors = OrderedDict([
        ('f32', torch.randn(3, 4)),
        ('f64', torch.randn(5, dtype=torch.float64)),
        ('f16', torch.randn(2, 3).half()),
        ('bf16', torch.randn(2, 3).bfloat16()),
        ('i64', torch.tensor([-(2 ** 62), 0, 2 ** 53 + 1])),
        ('i32', torch.tensor([-7, 0, 2 ** 31 - 1], dtype=torch.int32)),
        ('i16', torch.tensor([-300, 0, 32767], dtype=torch.int16)),
        ('i8', torch.tensor([-128, 0, 127], dtype=torch.int8)),
        ('u8', torch.tensor([0, 128, 255], dtype=torch.uint8)),
        ('bool', torch.tensor([True, False, True])),
        ('scalar', torch.tensor(3.5)),
        ('empty', torch.zeros(0, 3)),
        ('shared.base', base),
        ('shared.slice', base[1:3, 2:5]),
        ('shared.t', base.t()),
        ('param', torch.nn.Parameter(torch.randn(2, 2))),
    ])
    checkpoint = {
        'epoch': 7,
        'state_dict': tensors,
        'optimizer': {'state': {0: {'momentum_buffer': torch.ones(3)}}, 'param_groups': [{'lr': 0.1, 'params': [0]}]},
        'meta': {'name': 'résumé', 'big': 2 ** 70, 'neg': -5, 'float': 0.25, 'none': None, 'flag': True,
                 'tuple': (1, 'a'), 'set': {1, 2}, 'bytes': b'\x00\xffab', 'size': torch.Size([2, 3])},
    }
    module = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))
    module_sd = module.state_dict()
    wrapped = {'model': OrderedDict(('module.' + k, v) for k, v in module_sd.items()), 'step': 3}
    pth = saved(checkpoint)

    hostile = {
        'posix_system_p2': pickle.dumps({'w': Reduce(os.system, ('touch ' + MARKER,))}, protocol=2),
        'builtins_eval_p2': pickle.dumps(Reduce(eval, ("__import__('os').system('touch %s')" % MARKER,)), protocol=2),
        'builtins_eval_p4': pickle.dumps(Reduce(eval, ("__import__('os').system('touch %s')" % MARKER,)), protocol=4),
        'subprocess_popen': pickle.dumps(Reduce(subprocess.Popen, (['touch', MARKER],)), protocol=4),
        'subprocess_popen_p2': pickle.dumps(Reduce(subprocess.Popen, (['touch', MARKER],)), protocol=2),
    }
    scripted = BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), scripted)
    small = OrderedDict([('a', torch.arange(6.).reshape(2, 3)), ('b', torch.tensor([1, 2], dtype=torch.int32))])
    small['a_t'] = small['a'].t()

    return {
        'expected': {k: describe(v) for k, v in tensors.items()},
        'moduleExpected': {k: describe(v) for k, v in module_sd.items()},
        'files': {
            'checkpoint.pth': b64(pth),
            'checkpoint.safetensors': b64(safetensors_bytes(tensors, {'format': 'pt', 'note': 'by hand'})),
            'module.pth': b64(saved(module_sd)),
            'wrapped.pth': b64(saved(wrapped)),
            'deflated.pth': b64(rezip(pth, zipfile.ZIP_DEFLATED)),
            'little.pth': b64(rezip(pth, extra={'archive/byteorder': 'little'})),
            'big.pth': b64(rezip(pth, extra={'archive/byteorder': 'big'})),
            'legacy.pth': b64(saved(small, _use_new_zipfile_serialization=False)),
            'scripted.pt': b64(scripted.getvalue()),
            'small.pth': b64(saved(small)),
        },
        'hostile': {k: b64(archive(v)) for k, v in hostile.items()},
        'marker': MARKER,
    }


def read_safetensors(path):
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    text = data[8:8 + n]
    header = json.loads(text)
    meta = header.pop('__metadata__', {})
    codes = {v: k for k, v in DTYPES.items()}
    out = {}
    for name, info in header.items():
        begin, end = info['data_offsets']
        chunk = data[8 + n + begin:8 + n + end]
        dtype = codes[info['dtype']]
        t = torch.frombuffer(bytearray(chunk), dtype=dtype) if chunk else torch.empty(0, dtype=dtype)
        t = t.reshape(info['shape'])
        out[name] = {'dtype': NAMES[t.dtype], 'shape': list(t.shape), 'data': b64(raw(t)),
                     'sum': float(t.double().sum()), 'offsets': [begin, end]}
    return {'headerLength': n, 'trailingSpaces': len(text) - len(text.rstrip(b' ')),
            'keys': list(header.keys()), 'metadata': meta, 'tensors': out, 'dataLength': len(data) - 8 - n}


if __name__ == '__main__':
    result = read_safetensors(sys.argv[2]) if sys.argv[1:2] == ['read'] else fixtures()
    json.dump(result, sys.stdout)
