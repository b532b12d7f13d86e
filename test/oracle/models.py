"""Model parity oracle: torchvision models with randomised weights, saved as .pth and .safetensors,
with eval logits and train-mode gradients on a fixed input, for test/models/parity.test.ts.

Weights are randomised beyond the default init (batch-norm statistics and affine parameters,
ConvNeXt layer scales) so that every layer visibly affects the logits. A timm-named copy of
convnext_tiny checks the key remap (timm's ResNet already uses torchvision's names).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import arr, emit, save_safetensors  # noqa: E402

import torch  # noqa: E402
import torchvision  # noqa: E402
from torchvision.ops import StochasticDepth  # noqa: E402

OUT = os.path.join(os.getcwd(), '.cache', 'oracle', 'models')
os.makedirs(OUT, exist_ok=True)

# name -> (input size, constructor kwargs that switch off dropout / stochastic depth)
MODELS = {
    'resnet18': (128, {}),
    'resnet34': (96, {}),
    'resnet50': (128, {}),
    'resnet101': (96, {}),
    'mobilenet_v2': (128, {}),
    'convnext_tiny': (128, {}),
    'convnext_small': (96, {}),
    'convnext_base': (96, {}),
}


def randomise(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith('running_mean'):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif name.endswith('layer_scale'):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.1)
            elif t.dtype.is_floating_point and t.dim() == 1:
                # every 1-d weight is a norm's scale: move it away from 1; biases away from 0
                if name.endswith('weight'):
                    t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
                else:
                    t.copy_(torch.randn(t.shape, generator=g) * 0.1)


def to_timm_convnext(sd):
    """torchvision ConvNeXt keys -> timm's (stem, stages.i.{downsample,blocks.j}, head)."""
    out = {}
    n_stages = 4
    for k, v in sd.items():
        p = k.split('.')
        if p[0] == 'features':
            i = int(p[1])
            if i == 0:
                out[f"stem.{p[2]}.{'.'.join(p[3:])}"] = v
            elif i % 2 == 1:
                stage, block, rest = (i - 1) // 2, p[2], p[3:]
                if rest[0] == 'layer_scale':
                    out[f'stages.{stage}.blocks.{block}.gamma'] = v.reshape(-1)
                    continue
                sub = {'0': 'conv_dw', '2': 'norm', '3': 'mlp.fc1', '5': 'mlp.fc2'}[rest[1]]
                out[f"stages.{stage}.blocks.{block}.{sub}.{'.'.join(rest[2:])}"] = v
            else:
                stage = i // 2
                assert stage < n_stages
                out[f"stages.{stage}.downsample.{p[2]}.{'.'.join(p[3:])}"] = v
        elif p[0] == 'classifier':
            out[f"head.{ {'0': 'norm', '2': 'fc'}[p[1]] }.{'.'.join(p[2:])}"] = v
        else:
            raise KeyError(k)
    return out


def sample_params(names):
    """A spread of parameter names: first, last and three in between."""
    idx = sorted({0, len(names) // 4, len(names) // 2, (3 * len(names)) // 4, len(names) - 1})
    return [names[i] for i in idx]


torch.set_num_threads(2)
result = {}
for name, (size, kwargs) in MODELS.items():
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(**kwargs)
    randomise(model)
    sd = model.state_dict()
    pth = os.path.join(OUT, f'{name}.pth')
    st = os.path.join(OUT, f'{name}.safetensors')
    torch.save(sd, pth)
    save_safetensors(sd, st, {'source': 'test/oracle/models.py'})
    x = torch.randn(2, 3, size, size)
    model.eval()
    with torch.no_grad():
        logits = model(x)
    entry = {'pth': pth, 'safetensors': st, 'input': arr(x), 'logits': arr(logits),
             'keys': [[k, list(v.shape)] for k, v in sd.items()]}

    # Train mode: batch statistics, but dropout and stochastic depth off so the step is deterministic.
    model.train()
    for m in model.modules():
        if isinstance(m, (torch.nn.Dropout, StochasticDepth)):
            m.eval()
    train_logits = model(x)
    grad_out = torch.randn(train_logits.shape)
    train_logits.backward(grad_out)
    names = [n for n, _ in model.named_parameters()]
    params = dict(model.named_parameters())
    entry['trainLogits'] = arr(train_logits)
    entry['gradOut'] = arr(grad_out)
    entry['grads'] = {n: arr(params[n].grad) for n in sample_params(names)}
    buffers = [n for n, _ in model.named_buffers() if n.endswith('running_mean')]
    if buffers:
        entry['runningMean'] = {buffers[-1]: arr(dict(model.named_buffers())[buffers[-1]])}
    if name == 'convnext_tiny':
        timm_sd = to_timm_convnext(sd)
        timm_path = os.path.join(OUT, 'convnext_tiny_timm.safetensors')
        save_safetensors(timm_sd, timm_path)
        entry['timm'] = timm_path
    result[name] = entry
emit(result)
