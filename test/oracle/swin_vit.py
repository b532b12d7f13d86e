"""Swin v1 / ViT-B/16 parity oracle for test/models/swin_vit.test.ts.

For swin_t and vit_b_16: the torchvision model built with a fixed seed and randomised further
(norm scales and all biases moved away from 1/0, ViT's zero-initialised class token and head
filled), its state dict saved with torch.save, a fixed [2, 3, 224, 224] input, eval logits (under
no_grad, so ViT's MultiheadAttention takes torch's fused path), and train-mode logits and gradients
of sampled parameters after backward from a seeded random output gradient, with dropout and
stochastic depth switched off. swin_t also gets eval logits on a 200x200 input (padding of the
windows and of odd-sized patch merging) and timm-named copies of its weights in both of timm's
layouts (see timm_swin.py). For swin_s / swin_b: the state-dict keys, shapes and dtypes only.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import arr, emit  # noqa: E402
from timm_swin import to_timm  # noqa: E402

import torch  # noqa: E402
import torchvision  # noqa: E402
from torchvision.ops import StochasticDepth  # noqa: E402

OUT = os.path.join(os.getcwd(), '.cache', 'oracle', 'swin_vit')
os.makedirs(OUT, exist_ok=True)
torch.set_num_threads(2)

GRAD_PARAMS = {
    'swin_t': [
        'features.0.0.weight', 'features.0.2.bias', 'features.1.1.attn.relative_position_bias_table',
        'features.1.1.attn.qkv.weight', 'features.2.reduction.weight', 'features.5.3.mlp.0.bias',
        'features.7.1.norm1.weight', 'norm.weight', 'head.weight',
    ],
    'vit_b_16': [
        'class_token', 'conv_proj.weight', 'encoder.pos_embedding',
        'encoder.layers.encoder_layer_0.self_attention.in_proj_weight',
        'encoder.layers.encoder_layer_0.self_attention.in_proj_bias',
        'encoder.layers.encoder_layer_5.self_attention.out_proj.weight',
        'encoder.layers.encoder_layer_11.mlp.3.weight', 'encoder.ln.weight', 'heads.head.weight',
    ],
}


def randomise(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, t in model.named_parameters():
            if name in ('class_token', 'heads.head.weight'):
                t.copy_(torch.randn(t.shape, generator=g) * 0.02)  # zero-initialised in torchvision
            elif t.dim() == 1 and name.endswith('weight'):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)  # a norm's scale
            elif t.dim() == 1:
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)  # a bias


def keys(sd):
    return [[k, list(v.shape), str(v.dtype).replace('torch.', '')] for k, v in sd.items()]


result = {}
for name in ('swin_s', 'swin_b'):
    torch.manual_seed(0)
    result[name] = {'keys': keys(getattr(torchvision.models, name)().state_dict())}

for name in ('swin_t', 'vit_b_16'):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)()
    randomise(model)
    sd = model.state_dict()
    pth = os.path.join(OUT, f'{name}.pth')
    torch.save(sd, pth)
    x = torch.randn(2, 3, 224, 224)
    model.eval()
    with torch.no_grad():
        logits = model(x)
    entry = {'pth': pth, 'keys': keys(sd), 'input': arr(x), 'logits': arr(logits)}
    if name == 'swin_t':
        x200 = torch.randn(1, 3, 200, 200)
        with torch.no_grad():
            entry['input200'] = arr(x200)
            entry['logits200'] = arr(model(x200))
        for layout in ('new', 'old'):
            path = os.path.join(OUT, f'swin_t_timm_{layout}.pth')
            torch.save(to_timm(sd, layout), path)
            entry[f'timm_{layout}'] = path

    # Train mode with dropout and stochastic depth off, so the step is deterministic.
    model.train()
    for m in model.modules():
        if isinstance(m, (torch.nn.Dropout, StochasticDepth)):
            m.eval()
    train_logits = model(x)
    grad_out = torch.randn(train_logits.shape, generator=torch.Generator().manual_seed(2))
    train_logits.backward(grad_out)
    params = dict(model.named_parameters())
    grads_path = os.path.join(OUT, f'{name}_grads.pth')
    torch.save({n: params[n].grad for n in GRAD_PARAMS[name]}, grads_path)
    entry.update({'trainLogits': arr(train_logits), 'gradOut': arr(grad_out), 'grads': grads_path})
    result[name] = entry
# vit_tiny_p4_32: torchvision's VisionTransformer class at the small configuration deltatune registers.
torch.manual_seed(0)
tiny = torchvision.models.VisionTransformer(image_size=32, patch_size=4, num_layers=6, num_heads=3, hidden_dim=192, mlp_dim=768)
randomise(tiny)
tiny_pth = os.path.join(OUT, 'vit_tiny_p4_32.pth')
torch.save(tiny.state_dict(), tiny_pth)
x32 = torch.randn(2, 3, 32, 32)
tiny.eval()
with torch.no_grad():
    result['vit_tiny_p4_32'] = {'pth': tiny_pth, 'keys': keys(tiny.state_dict()), 'input': arr(x32), 'logits': arr(tiny(x32))}
emit(result)
