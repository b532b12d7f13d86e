// Swin Transformer v1: Swin-T/S/B (patch 4, window 7, 224×224).
// Paper: Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows"
// (ICCV 2021), https://arxiv.org/abs/2103.14030.
// Reference code and checkpoint names: torchvision 0.14 models/swin_transformer.py (maps stay NHWC
// [B, H, W, C] from the patch embedding to the final norm). A remap loads timm's layouts: current
// timm (patch_embed / layers.i.{downsample,blocks.j} / norm / head.fc, downsampling at the start of
// stage i ≥ 1) and the original Microsoft / timm < 0.9 one (downsampling at the end of stage i,
// head, persistent relative_position_index [N, N] and attn_mask buffers).
// Weights: torchvision Swin_{T,S,B}_Weights (BSD-3-Clause code) or timm swin_*_patch4_window7_224
// (Microsoft's weights, MIT); check each weights file's own terms.
import { Tensor, noGrad } from '../engine/index.js';
import { Module } from '../nn/module.js';
import { Sequential } from '../nn/containers.js';
import { AdaptiveAvgPool2d, Conv2d, DropPath, Flatten, GELU, LayerNorm, Linear } from '../nn/layers.js';
import { MLP, PatchMerging, ShiftedWindowAttention, relativePositionIndex } from '../nn/attention.js';
import { type BlockInfo, type ModelConfig, VisionModel } from './base.js';
import { IMAGENET_PREPROCESS, Permute, initTruncNormal } from './common.js';
import { registerModel } from './registry.js';
import { pipe } from '../nn/release.js';
import { residualBlock } from './taps.js';

/** torchvision's SwinTransformerBlock: pre-norm shifted-window attention and MLP, each residual. */
export class SwinTransformerBlock extends Module {
  declare norm1: LayerNorm;
  declare attn: ShiftedWindowAttention;
  declare stochastic_depth: DropPath;
  declare norm2: LayerNorm;
  declare mlp: MLP;

  constructor(
    dim: number,
    numHeads: number,
    windowSize: [number, number],
    shiftSize: [number, number],
    options: { mlpRatio?: number; dropout?: number; attentionDropout?: number; stochasticDepth?: number } = {},
  ) {
    super();
    const dropout = options.dropout ?? 0;
    this.norm1 = new LayerNorm(dim, { eps: 1e-5 });
    this.attn = new ShiftedWindowAttention(dim, windowSize, shiftSize, numHeads, { attentionDropout: options.attentionDropout ?? 0, dropout });
    this.stochastic_depth = new DropPath(options.stochasticDepth ?? 0);
    this.norm2 = new LayerNorm(dim, { eps: 1e-5 });
    this.mlp = new MLP(dim, [Math.trunc(dim * (options.mlpRatio ?? 4)), dim], { activation: () => new GELU(), dropout }).initXavier();
  }

  forward(x: Tensor): Tensor {
    return residualBlock(this, x, (t) => pipe(t, this.norm1, this.attn, this.stochastic_depth), (t) => pipe(t, this.norm2, this.mlp, this.stochastic_depth));
  }
}

/** A Swin v1 architecture (torchvision's SwinTransformer arguments). */
export interface SwinSettings {
  patchSize: number;
  embedDim: number;
  depths: number[];
  numHeads: number[];
  windowSize: number;
  mlpRatio?: number;
  dropout?: number;
  attentionDropout?: number;
}

/**
 * torchvision's SwinTransformer: `features` = [patch embedding (conv, permute to NHWC, norm),
 * stage 0, merge, stage 1, merge, stage 2, merge, stage 3], then `norm`, average pool and `head`.
 * forwardFeatures returns the last stage's NHWC map (before `norm`); forwardHead applies `norm`,
 * pooling and `head`.
 */
export class SwinTransformer extends VisionModel {
  declare features: Sequential;
  declare norm: LayerNorm;
  declare permute: Permute;
  declare avgpool: AdaptiveAvgPool2d;
  declare flatten: Flatten;
  declare head: Linear;
  readonly settings: Readonly<SwinSettings>;
  readonly blockInfo: BlockInfo[] = [];

  constructor(config: ModelConfig, settings: SwinSettings, numClasses: number, stochasticDepth: number) {
    super({ ...config, numClasses });
    const { patchSize, embedDim, depths, numHeads, windowSize } = settings;
    if (depths.length === 0 || depths.length !== numHeads.length) {
      throw new RangeError(`SwinTransformer: depths (${depths.length}) and numHeads (${numHeads.length}) must list one entry per stage`);
    }
    if (!(stochasticDepth >= 0 && stochasticDepth < 1)) throw new RangeError(`${config.name}: dropPath must be in [0, 1), got ${stochasticDepth}`);
    this.settings = { ...settings };
    const features = new Sequential(
      new Sequential(new Conv2d(3, embedDim, patchSize, { stride: patchSize }), new Permute([0, 2, 3, 1]), new LayerNorm(embedDim, { eps: 1e-5 })),
    );
    const total = depths.reduce((a, b) => a + b, 0);
    let blockId = 0;
    depths.forEach((depth, stage) => {
      const dim = embedDim * 2 ** stage;
      const seq = new Sequential();
      for (let j = 0; j < depth; j++) {
        // torchvision: the rate grows linearly over all blocks, from 0 to stochasticDepth.
        const sd = total > 1 ? (stochasticDepth * blockId) / (total - 1) : 0;
        const shift = j % 2 === 0 ? 0 : Math.floor(windowSize / 2);
        this.blockInfo.push({ name: `features.${features.length}.${j}`, stage, channels: dim, reduction: patchSize * 2 ** stage, layout: 'nhwc' });
        seq.append(new SwinTransformerBlock(dim, numHeads[stage]!, [windowSize, windowSize], [shift, shift], {
          mlpRatio: settings.mlpRatio, dropout: settings.dropout, attentionDropout: settings.attentionDropout, stochasticDepth: sd,
        }));
        blockId++;
      }
      features.append(seq);
      if (stage < depths.length - 1) features.append(new PatchMerging(dim));
    });
    this.features = features;
    const numFeatures = embedDim * 2 ** (depths.length - 1);
    this.norm = new LayerNorm(numFeatures, { eps: 1e-5 });
    this.permute = new Permute([0, 3, 1, 2]);
    this.avgpool = new AdaptiveAvgPool2d(1);
    this.flatten = new Flatten(1);
    this.head = new Linear(numFeatures, numClasses);
    // torchvision: every Linear (MLPs included) trunc-normal std 0.02 with zero bias; the patch
    // embedding keeps Conv2d's default initialisation.
    this.apply((m) => {
      if (m instanceof Linear) initTruncNormal(m);
    });
  }

  forwardFeatures(x: Tensor): Tensor {
    const p = this.settings.patchSize;
    if (x.ndim !== 4 || x.shape[1] !== 3) {
      throw new RangeError(`${this.config.name}: expected images as a [N, 3, H, W] tensor, got shape [${x.shape.join(',')}]`);
    }
    if (x.shape[2]! < p || x.shape[3]! < p) {
      throw new RangeError(`${this.config.name}: images must be at least ${p}×${p} (the patch size), got ${x.shape[2]}×${x.shape[3]}`);
    }
    return this.features.call(x);
  }

  forwardHead(features: Tensor): Tensor {
    const pooled = this.avgpool.call(this.permute.call(this.norm.call(features)));
    return this.head.call(this.flatten.call(pooled));
  }

  blocks(): BlockInfo[] {
    return this.blockInfo.map((b) => ({ ...b }));
  }
}

// ---------------------------------------------------------------------------------------------
// timm checkpoints

const stripPrefix = (k: string) => k.replace(/^(module\.|_orig_mod\.)+/, '');

/**
 * timm Swin keys → torchvision's. Handles both timm layouts: current timm (downsampling as
 * `layers.i.downsample`, i ≥ 1, at the start of stage i; `head.fc`; no buffers) and the original
 * Microsoft / older timm one (`layers.i.downsample` at the end of stage i; `head`; persistent
 * `relative_position_index` [N, N] and `attn_mask`). timm-only buffers (`attn_mask`) are dropped;
 * torchvision's persistent `relative_position_index` [N·N] is reshaped from timm's or, when the
 * checkpoint has none, rebuilt from the window size implied by the bias table. Tensors that are
 * replaced or dropped are disposed; the rest move to the returned map unchanged.
 */
export function swinFromTimm(state: Map<string, Tensor>): Map<string, Tensor> {
  const keys = [...state.keys()].map(stripPrefix);
  // Only the old layout downsamples at the end of stage 0; fall back on its head name.
  const old = keys.some((k) => k.startsWith('layers.0.downsample.')) || (keys.includes('head.weight') && !keys.includes('head.fc.weight'));
  const stageIndex = (i: string) => 2 * Number(i) + 1;
  const mergeIndex = (i: string) => (old ? 2 * Number(i) + 2 : 2 * Number(i));
  const blockParts: Record<string, string> = { 'mlp.fc1': 'mlp.0', 'mlp.fc2': 'mlp.3' };
  const rules: [RegExp, (m: RegExpMatchArray) => string][] = [
    [/^patch_embed\.proj\.(.+)$/, (m) => `features.0.0.${m[1]}`],
    [/^patch_embed\.norm\.(.+)$/, (m) => `features.0.2.${m[1]}`],
    [/^layers\.(\d+)\.downsample\.(norm|reduction)\.(.+)$/, (m) => `features.${mergeIndex(m[1]!)}.${m[2]}.${m[3]}`],
    [/^layers\.(\d+)\.blocks\.(\d+)\.(mlp\.fc[12])\.(.+)$/, (m) => `features.${stageIndex(m[1]!)}.${m[2]}.${blockParts[m[3]!]}.${m[4]}`],
    [/^layers\.(\d+)\.blocks\.(\d+)\.(.+)$/, (m) => `features.${stageIndex(m[1]!)}.${m[2]}.${m[3]}`],
    [/^norm\.(.+)$/, (m) => `norm.${m[1]}`],
    [/^head\.fc\.(.+)$/, (m) => `head.${m[1]}`],
    [/^head\.(weight|bias)$/, (m) => `head.${m[1]}`],
  ];
  const out = new Map<string, Tensor>();
  const replaced: Tensor[] = [];
  const created: Tensor[] = [];
  try {
    noGrad(() => {
      for (const [rawKey, value] of state) {
        const key = stripPrefix(rawKey);
        if (key.endsWith('.attn_mask')) {
          replaced.push(value); // timm's cached shifted-window mask: torchvision builds it in forward
          continue;
        }
        const rule = rules.find(([re]) => re.test(key));
        const name = rule ? rule[1](key.match(rule[0])!) : key; // unknown keys stay: strict loading names them
        if (name.endsWith('.attn.relative_position_index') && value.ndim !== 1) {
          const flat = value.reshape([-1]); // timm [N, N] → torchvision [N·N]
          created.push(flat);
          replaced.push(value);
          out.set(name, flat);
        } else {
          out.set(name, value);
        }
      }
      // Current timm does not save relative_position_index; torchvision's state dict has it.
      for (const [name, table] of [...out]) {
        if (!name.endsWith('.attn.relative_position_bias_table')) continue;
        const indexName = name.replace(/relative_position_bias_table$/, 'relative_position_index');
        if (out.has(indexName)) continue;
        const window = (Math.sqrt(table.shape[0]!) + 1) / 2;
        if (!Number.isInteger(window)) {
          throw new Error(`swinFromTimm: ${name} has ${table.shape[0]} rows, not (2w−1)² for a square window w; cannot rebuild relative_position_index`);
        }
        const index = relativePositionIndex(window, window);
        created.push(index);
        out.set(indexName, index);
      }
    });
  } catch (err) {
    for (const t of created) t.dispose(); // the caller still owns (and frees) the input tensors
    throw err;
  }
  for (const t of replaced) t.dispose();
  return out;
}

const timmRemap = { timm: { detect: (keys: string[]) => keys.some((k) => stripPrefix(k).startsWith('layers.')), remap: swinFromTimm } };

// ---------------------------------------------------------------------------------------------
// Registered variants

const variants: [name: string, timmName: string, settings: SwinSettings, defaultDropPath: number][] = [
  ['swin_t', 'swin_tiny_patch4_window7_224', { patchSize: 4, embedDim: 96, depths: [2, 2, 6, 2], numHeads: [3, 6, 12, 24], windowSize: 7 }, 0.2],
  ['swin_s', 'swin_small_patch4_window7_224', { patchSize: 4, embedDim: 96, depths: [2, 2, 18, 2], numHeads: [3, 6, 12, 24], windowSize: 7 }, 0.3],
  ['swin_b', 'swin_base_patch4_window7_224', { patchSize: 4, embedDim: 128, depths: [2, 2, 18, 2], numHeads: [4, 8, 16, 32], windowSize: 7 }, 0.5],
];

for (const [name, timmName, settings, defaultDropPath] of variants) {
  const config: ModelConfig = {
    name, family: 'swin', kind: 'transformer', memoryFormat: 'contiguous', headInit: { type: 'truncNormal', std: 0.02 },
    // LoRA: the packed q/k/v projection of each window attention (q and v get the update).
    defaultTargets: { lora: String.raw`features\.\d+\.\d+\.attn\.qkv` },
    ...IMAGENET_PREPROCESS,
    numClasses: 1000, firstConv: 'features.0.0', classifier: 'head',
    weightSource: `torchvision Swin_${name.slice(-1).toUpperCase()}_Weights / timm ${timmName}`,
    license: "BSD-3-Clause (torchvision code); check the weights' own terms",
    paper: 'Liu et al., Swin Transformer: Hierarchical Vision Transformer using Shifted Windows, ICCV 2021',
  };
  registerModel(config, ({ numClasses, dropPath }) => new SwinTransformer(config, settings, numClasses, dropPath ?? defaultDropPath), timmRemap);
}
