// Vision Transformer ViT-B/16 (224×224).
// Paper: Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at
// Scale" (ICLR 2021), https://arxiv.org/abs/2010.11929.
// Reference code and checkpoint names: torchvision 0.14 models/vision_transformer.py (conv_proj,
// class_token, encoder.{pos_embedding, layers.encoder_layer_i, ln}, heads.head; attention is
// torch.nn.MultiheadAttention with packed in_proj_weight/in_proj_bias).
// Weights: torchvision ViT_B_16_Weights (BSD-3-Clause code; check the weights' own terms).
import { Tensor } from '../engine/index.js';
import { Module } from '../nn/module.js';
import { Sequential } from '../nn/containers.js';
import { Conv2d, Dropout, GELU, LayerNorm, Linear } from '../nn/layers.js';
import { MLP, MultiheadAttention } from '../nn/attention.js';
import { Parameter } from '../nn/parameter.js';
import { cat, empty, normal_, truncNormal_, zero_, zeros } from '../ops/index.js';
import { type BlockInfo, type ModelConfig, VisionModel } from './base.js';
import { IMAGENET_PREPROCESS, initHead } from './common.js';
import { registerModel } from './registry.js';
import { pipe } from '../nn/release.js';
import { residualBlock } from './taps.js';

/** torchvision's EncoderBlock: x + attention(ln_1(x)), then + mlp(ln_2(·)). */
export class EncoderBlock extends Module {
  declare ln_1: LayerNorm;
  declare self_attention: MultiheadAttention;
  declare dropout: Dropout;
  declare ln_2: LayerNorm;
  declare mlp: MLP;

  constructor(numHeads: number, hiddenDim: number, mlpDim: number, dropout: number, attentionDropout: number) {
    super();
    this.ln_1 = new LayerNorm(hiddenDim, { eps: 1e-6 });
    this.self_attention = new MultiheadAttention(hiddenDim, numHeads, { dropout: attentionDropout, batchFirst: true });
    this.dropout = new Dropout(dropout);
    this.ln_2 = new LayerNorm(hiddenDim, { eps: 1e-6 });
    this.mlp = new MLP(hiddenDim, [mlpDim, hiddenDim], { activation: () => new GELU(), dropout }).initXavier();
  }

  forward(input: Tensor): Tensor {
    if (input.ndim !== 3) throw new RangeError(`EncoderBlock: expected (batch, sequence, hidden) tokens, got shape [${input.shape.join(',')}]`);
    return residualBlock(this, input, (t) => pipe(t, this.ln_1, this.self_attention, this.dropout), (t) => pipe(t, this.ln_2, this.mlp));
  }
}

/** torchvision's Encoder: position embedding, dropout, the blocks (encoder_layer_i), final norm. */
export class Encoder extends Module {
  declare pos_embedding: Parameter;
  declare dropout: Dropout;
  declare layers: Sequential;
  declare ln: LayerNorm;

  constructor(seqLength: number, numLayers: number, numHeads: number, hiddenDim: number, mlpDim: number, dropout: number, attentionDropout: number) {
    super();
    const pos = empty([1, seqLength, hiddenDim]);
    normal_(pos, 0, 0.02); // from BERT, as torchvision
    this.pos_embedding = new Parameter(pos);
    this.dropout = new Dropout(dropout);
    const layers = new Sequential();
    for (let i = 0; i < numLayers; i++) {
      layers.registerModule(`encoder_layer_${i}`, new EncoderBlock(numHeads, hiddenDim, mlpDim, dropout, attentionDropout));
    }
    this.layers = layers;
    this.ln = new LayerNorm(hiddenDim, { eps: 1e-6 });
  }

  forward(input: Tensor): Tensor {
    if (input.ndim !== 3) throw new RangeError(`Encoder: expected (batch, sequence, hidden) tokens, got shape [${input.shape.join(',')}]`);
    return this.ln.call(this.layers.call(this.dropout.call(input.add(this.pos_embedding))));
  }
}

/** A ViT architecture (torchvision's VisionTransformer arguments, without the conv stem). */
export interface ViTSettings {
  imageSize: number;
  patchSize: number;
  numLayers: number;
  numHeads: number;
  hiddenDim: number;
  mlpDim: number;
  dropout?: number;
  attentionDropout?: number;
}

/**
 * torchvision's VisionTransformer: a patchifying `conv_proj`, a `class_token` prepended to the
 * patch tokens, the `encoder`, and `heads.head` on the class token. forwardFeatures returns the
 * encoder's normalised tokens [B, 1 + (S/P)², hidden]; forwardHead takes the class token and
 * classifies it. The position embedding has a fixed length, so only `imageSize` inputs work.
 */
export class VisionTransformer extends VisionModel {
  declare conv_proj: Conv2d;
  declare class_token: Parameter;
  declare encoder: Encoder;
  declare heads: Sequential;
  readonly settings: Readonly<ViTSettings>;

  constructor(config: ModelConfig, settings: ViTSettings, numClasses: number) {
    super({ ...config, numClasses });
    const { imageSize, patchSize, hiddenDim } = settings;
    if (imageSize % patchSize !== 0) throw new RangeError(`VisionTransformer: imageSize (${imageSize}) must be divisible by patchSize (${patchSize})`);
    this.settings = { ...settings };
    this.conv_proj = new Conv2d(3, hiddenDim, patchSize, { stride: patchSize });
    this.class_token = new Parameter(zeros([1, 1, hiddenDim]));
    const seqLength = (imageSize / patchSize) ** 2 + 1;
    this.encoder = new Encoder(seqLength, settings.numLayers, settings.numHeads, hiddenDim, settings.mlpDim, settings.dropout ?? 0, settings.attentionDropout ?? 0);
    const heads = new Sequential();
    heads.registerModule('head', new Linear(hiddenDim, numClasses));
    this.heads = heads;
    // torchvision: the patchify stem trunc-normal with std √(1/fan_in), zero bias; a zero head.
    truncNormal_(this.conv_proj.weight, 0, Math.sqrt(1 / (3 * patchSize * patchSize)));
    if (this.conv_proj.bias) zero_(this.conv_proj.bias);
    initHead(heads.getSubmodule('head') as Linear, config.headInit);
  }

  forwardFeatures(x: Tensor): Tensor {
    const { imageSize: s, patchSize: p, hiddenDim } = this.settings;
    if (x.ndim !== 4 || x.shape[1] !== 3) {
      throw new RangeError(`${this.config.name}: expected images as a [N, 3, H, W] tensor, got shape [${x.shape.join(',')}]`);
    }
    if (x.shape[2] !== s || x.shape[3] !== s) {
      throw new RangeError(
        `${this.config.name}: expected ${s}×${s} images (its position embedding covers ${s / p}×${s / p} patches of ${p}), ` +
          `got ${x.shape[2]}×${x.shape[3]}; resize or crop the input to ${s}×${s}`,
      );
    }
    const n = x.shape[0]!;
    const patches = this.conv_proj.call(x).reshape([n, hiddenDim, -1]).permute([0, 2, 1]);
    const tokens = cat([this.class_token.expand([n, -1, -1]), patches], 1);
    return this.encoder.call(tokens);
  }

  forwardHead(features: Tensor): Tensor {
    return this.heads.call(features.select(1, 0));
  }

  blocks(): BlockInfo[] {
    const { numLayers, hiddenDim, patchSize } = this.settings;
    return Array.from({ length: numLayers }, (_, i) => ({
      name: `encoder.layers.encoder_layer_${i}`, stage: 0, channels: hiddenDim, reduction: patchSize, layout: 'tokens' as const,
    }));
  }
}

// ---------------------------------------------------------------------------------------------
// Registered variants

const vitB16: ViTSettings = { imageSize: 224, patchSize: 16, numLayers: 12, numHeads: 12, hiddenDim: 768, mlpDim: 3072 };

const config: ModelConfig = {
  name: 'vit_b_16', family: 'vit', kind: 'transformer', memoryFormat: 'contiguous', headInit: { type: 'zeros' },
  // LoRA: each encoder layer's self-attention (q and v of its packed in-projection).
  defaultTargets: { lora: String.raw`encoder\.layers\.encoder_layer_\d+\.self_attention` },
  ...IMAGENET_PREPROCESS,
  numClasses: 1000, firstConv: 'conv_proj', classifier: 'heads.head',
  weightSource: 'torchvision ViT_B_16_Weights (IMAGENET1K_V1)',
  license: "BSD-3-Clause (torchvision code); check the weights' own terms",
  paper: 'Dosovitskiy et al., An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale, ICLR 2021',
};

registerModel(config, ({ numClasses, dropPath }) => {
  if (dropPath !== undefined && dropPath !== 0) {
    throw new RangeError(`vit_b_16: torchvision's ViT has no stochastic depth; got dropPath ${dropPath} (leave it unset or 0)`);
  }
  return new VisionTransformer(config, vitB16, numClasses);
});

// A small ViT for small images (not a torchvision or timm model; no published weights): ViT-Tiny's
// width (192, 3 heads, MLP 768) at depth 6 over 4×4 patches of a 32×32 image (64 patches + the
// class token). The same class and parameter names as vit_b_16, so every method and tool applies;
// it exists so transformer experiments can pretrain from scratch on a CPU in minutes.
const vitTinyP4: ViTSettings = { imageSize: 32, patchSize: 4, numLayers: 6, numHeads: 3, hiddenDim: 192, mlpDim: 768 };

const tinyConfig: ModelConfig = {
  name: 'vit_tiny_p4_32', family: 'vit', kind: 'transformer', memoryFormat: 'contiguous', headInit: { type: 'zeros' },
  // LoRA: each encoder layer's self-attention (q and v of its packed in-projection).
  defaultTargets: { lora: String.raw`encoder\.layers\.encoder_layer_\d+\.self_attention` },
  ...IMAGENET_PREPROCESS, inputSize: [3, 32, 32],
  numClasses: 1000, firstConv: 'conv_proj', classifier: 'heads.head',
  weightSource: 'none published: train it (e.g. `deltatune train --method full`)',
  license: 'BSD-3-Clause (architecture code after torchvision)',
  paper: 'Dosovitskiy et al., ICLR 2021 (architecture); ViT-Tiny width as in Touvron et al., DeiT, ICML 2021',
};

registerModel(tinyConfig, ({ numClasses, dropPath }) => {
  if (dropPath !== undefined && dropPath !== 0) {
    throw new RangeError(`vit_tiny_p4_32: this ViT has no stochastic depth; got dropPath ${dropPath} (leave it unset or 0)`);
  }
  return new VisionTransformer(tinyConfig, vitTinyP4, numClasses);
});
