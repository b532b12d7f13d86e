"""Real weights files for the hub tests (test/hub/*.test.ts), written into the folder argv[1]:
a torchvision ResNet-18 (10 classes) saved by torch.save under its torch.hub-style name
(resnet18-<sha256 prefix>.pth), the same state dict as a timm-style Hugging Face repo's
model.safetensors, and its config.json (timm's pretrained_cfg with a non-ImageNet mean/std/size).
Prints their paths, sizes and sha256s, and the head's bias to check what loaded."""
import hashlib
import json
import os
import sys

import torch
import torchvision

from common import emit, save_safetensors

out = sys.argv[1]
torch.manual_seed(0)
state = torchvision.models.resnet18(num_classes=10).state_dict()


def describe(path):
    with open(path, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return {'path': path, 'size': os.path.getsize(path), 'sha256': digest}


tmp = os.path.join(out, 'resnet18.pth')
torch.save(state, tmp)
digest = describe(tmp)['sha256']
pth = os.path.join(out, f'resnet18-{digest[:8]}.pth')
os.rename(tmp, pth)

st = os.path.join(out, 'model.safetensors')
save_safetensors(state, st)

config = {
    'architecture': 'resnet18',
    'num_classes': 10,
    'num_features': 512,
    'pretrained_cfg': {
        'tag': 'test_in10', 'input_size': [3, 160, 160], 'interpolation': 'bicubic', 'crop_pct': 0.95,
        'mean': [0.5, 0.4, 0.3], 'std': [0.2, 0.25, 0.3], 'num_classes': 10, 'first_conv': 'conv1', 'classifier': 'fc',
    },
    'label_names': [f'class_{i}' for i in range(10)],
}
cfg = os.path.join(out, 'config.json')
with open(cfg, 'w') as f:
    json.dump(config, f, indent=2)

emit({'pth': describe(pth), 'safetensors': describe(st), 'config': cfg, 'fcBias': state['fc.bias'].tolist()})
