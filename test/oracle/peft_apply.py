"""PEFT-semantics oracle for test/delta/peft.test.ts: applies a PEFT LoRA adapter to a torchvision model.

Usage: peft_apply.py MODEL BASE.safetensors ADAPTER_DIR INPUT.safetensors
Builds the torchvision model MODEL with the classes of the adapter's head, loads the base weights
(strict, torchvision names), merges the adapter the way PEFT's LoRA layers do (written from
peft/tuners/lora/layer.py; PEFT itself is not in Debian): Linear W += s·B@A; Conv2d as PEFT's
Conv2d.get_delta_weight (a 1x1 kernel by matmul, otherwise conv2d(A^T, B)^T); nn.MultiheadAttention
in_proj_weight += s·B@A on the module itself and out_proj from `<module>.base_layer.out_proj`;
modules_to_save replaces the head. s = lora_alpha / r. Prints the eval logits for INPUT's `x`.
"""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import arr, emit  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402

_DTYPES = {'F32': torch.float32, 'F64': torch.float64, 'I64': torch.int64}


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


def build(name, num_classes):
    if name == 'vit_tiny_p4_32':
        return torchvision.models.VisionTransformer(image_size=32, patch_size=4, num_layers=6, num_heads=3, hidden_dim=192, mlp_dim=768, num_classes=num_classes)
    return getattr(torchvision.models, name)(num_classes=num_classes)


def conv_delta(A, B):
    # PEFT's Conv2d.get_delta_weight
    if B.shape[2:4] == (1, 1) and A.shape[2:4] == (1, 1):
        return (B.squeeze(3).squeeze(2) @ A.squeeze(3).squeeze(2)).unsqueeze(2).unsqueeze(3)
    return F.conv2d(A.permute(1, 0, 2, 3), B).permute(1, 0, 2, 3)


def main():
    model_name, base_path, adapter_dir, input_path = sys.argv[1:5]
    with open(os.path.join(adapter_dir, 'adapter_config.json')) as f:
        cfg = json.load(f)
    assert cfg['peft_type'] == 'LORA' and not cfg.get('fan_in_fan_out') and not cfg.get('use_rslora')
    assert not cfg.get('rank_pattern') and not cfg.get('alpha_pattern')
    s = cfg['lora_alpha'] / cfg['r']
    adapter = {k[len('base_model.model.'):]: v for k, v in load_safetensors(os.path.join(adapter_dir, 'adapter_model.safetensors')).items()}
    head = cfg['modules_to_save'][0]
    model = build(model_name, adapter[f'{head}.weight'].shape[0])
    base = load_safetensors(base_path)
    # The base's own head has the adapter's class count here; modules_to_save replaces it below.
    missing, unexpected = model.load_state_dict(base, strict=False)
    assert not unexpected and all(k.endswith('num_batches_tracked') for k in missing), (missing[:5], unexpected[:5])
    modules = dict(model.named_modules())
    used = set()
    with torch.no_grad():
        for target in cfg['target_modules']:
            m = modules[target]
            A, B = adapter[f'{target}.lora_A.weight'], adapter[f'{target}.lora_B.weight']
            used.update({f'{target}.lora_A.weight', f'{target}.lora_B.weight'})
            assert A.shape[0] == cfg['r'] and B.shape[1] == cfg['r'], (target, A.shape, B.shape)
            if isinstance(m, torch.nn.MultiheadAttention):
                m.in_proj_weight += s * (B @ A)
                oA, oB = adapter[f'{target}.base_layer.out_proj.lora_A.weight'], adapter[f'{target}.base_layer.out_proj.lora_B.weight']
                used.update({f'{target}.base_layer.out_proj.lora_A.weight', f'{target}.base_layer.out_proj.lora_B.weight'})
                m.out_proj.weight += s * (oB @ oA)
            elif isinstance(m, torch.nn.Conv2d):
                assert A.shape[2:] == m.weight.shape[2:] and B.shape[2:] == (1, 1), target
                m.weight += s * conv_delta(A, B)
            elif isinstance(m, torch.nn.Linear):
                m.weight += s * (B @ A)
            else:
                raise SystemExit(f'{target}: {type(m).__name__} is not a module PEFT LoRA adapts')
        hm = modules[head]
        hm.weight.copy_(adapter[f'{head}.weight'])
        hm.bias.copy_(adapter[f'{head}.bias'])
        used.update({f'{head}.weight', f'{head}.bias'})
    unused = sorted(set(adapter) - used)
    assert not unused, f'adapter keys PEFT would not load: {unused[:5]}'
    model.eval()
    x = load_safetensors(input_path)['x']
    with torch.no_grad():
        emit({'logits': arr(model(x))})


main()
