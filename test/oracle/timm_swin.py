"""torchvision Swin v1 state dicts -> timm's key layouts, for testing deltatune's timm remap.

Key names follow timm's own source (huggingface/pytorch-image-models, timm/models/swin_transformer.py):
  * layout 'new' (timm >= 0.9, the hf-hub `timm/swin_*` weights):
      patch_embed.{proj,norm}.*                     <- features.0.{0,2}.*
      layers.i.blocks.j.{norm1,attn.qkv,attn.proj,attn.relative_position_bias_table,norm2}.*
                                                    <- features.{2i+1}.j.<same>
      layers.i.blocks.j.mlp.{fc1,fc2}.*             <- features.{2i+1}.j.mlp.{0,3}.*
      layers.i.downsample.{norm,reduction}.* (i>=1) <- features.{2i}.* (merging at the START of stage i)
      norm.*, head.fc.*                             <- norm.*, head.*
    relative_position_index and attn_mask are non-persistent buffers there: not in the state dict.
  * layout 'old' (Microsoft's original checkpoints / timm < 0.9): the same block names, but
      layers.i.downsample.* (i < last)              <- features.{2i+2}.* (merging at the END of stage i)
      head.*                                        <- head.*
    plus the persistent buffers layers.i.blocks.j.attn.relative_position_index [N, N] (torchvision
    keeps it flat, [N*N]) and, for shifted blocks whose map is larger than the window,
    layers.i.blocks.j.attn_mask [nW, N, N] (timm's precomputed shifted-window mask).
"""
import torch


def _window_partition(x, ws):
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, c)


def _timm_attn_mask(h, w, ws, shift):
    """Old timm's SwinTransformerBlock attn_mask (computed in __init__ for input_resolution h x w)."""
    img_mask = torch.zeros((1, h, w, 1))
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img_mask[:, hs, wsl, :] = cnt
            cnt += 1
    mask_windows = _window_partition(img_mask, ws).view(-1, ws * ws)
    attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
    return attn_mask.masked_fill(attn_mask != 0, float(-100.0)).masked_fill(attn_mask == 0, float(0.0))


def to_timm(state_dict, layout='new', img_size=224, patch_size=4):
    """A torchvision swin_{t,s,b} state dict renamed (and reshaped) to timm's layout ('new' or 'old')."""
    assert layout in ('new', 'old'), layout
    out = {}
    grid = img_size // patch_size
    for k, v in state_dict.items():
        p = k.split('.')
        if p[0] == 'features':
            idx = int(p[1])
            if idx == 0:
                out[f"patch_embed.{ {'0': 'proj', '2': 'norm'}[p[2]] }.{'.'.join(p[3:])}"] = v
            elif idx % 2 == 1:
                stage, block, rest = (idx - 1) // 2, int(p[2]), '.'.join(p[3:])
                prefix = f'layers.{stage}.blocks.{block}'
                if rest == 'attn.relative_position_index':
                    if layout == 'old':
                        n = int(round(v.numel() ** 0.5))
                        out[f'{prefix}.attn.relative_position_index'] = v.reshape(n, n).clone()
                        table = state_dict[f'features.{idx}.{block}.attn.relative_position_bias_table']
                        ws = (int(round(table.shape[0] ** 0.5)) + 1) // 2
                        res = grid // 2 ** stage
                        if block % 2 == 1 and res > ws:
                            out[f'{prefix}.attn_mask'] = _timm_attn_mask(res, res, ws, ws // 2)
                    continue
                rest = rest.replace('mlp.0.', 'mlp.fc1.').replace('mlp.3.', 'mlp.fc2.')
                out[f'{prefix}.{rest}'] = v
            else:
                stage = idx // 2 if layout == 'new' else idx // 2 - 1
                out[f"layers.{stage}.downsample.{'.'.join(p[2:])}"] = v
        elif p[0] == 'norm':
            out[k] = v
        elif p[0] == 'head':
            out[f"head.fc.{p[1]}" if layout == 'new' else k] = v
        else:
            raise KeyError(k)
    return out
