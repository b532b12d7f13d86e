// ConvNeXt-T/S/B.
// Paper: Liu et al., "A ConvNet for the 2020s" (CVPR 2022).
// Reference code and checkpoint names: torchvision 0.14 models/convnext.py; a remap loads timm's
// layout (stem / stages.i.blocks.j.{conv_dw,norm,mlp.fc1,mlp.fc2,gamma} / head.{norm,fc}).
// Weights: torchvision ConvNeXt_*_Weights or timm convnext_* (check each file's own licence).
import { Tensor, noGrad } from '../engine/index.js';
import { Module } from '../nn/module.js';
import { Sequential } from '../nn/containers.js';
import { Conv2d, DropPath, Flatten, GELU, LayerNorm, LayerNorm2d, Linear } from '../nn/layers.js';
import { Parameter } from '../nn/parameter.js';
import { adaptiveAvgPool2d, full } from '../ops/index.js';
import { pipe, type Step } from '../nn/release.js';
import { type BlockInfo, type ModelConfig, VisionModel } from './base.js';
import { IMAGENET_PREPROCESS, Permute, checkImage, initTruncNormal } from './common.js';
import { registerModel } from './registry.js';

class CNBlock extends Module {
  declare block: Sequential;
  declare layer_scale: Parameter;
  declare stochastic_depth: DropPath;

  constructor(dim: number, layerScale: number, dropPath: number) {
    super();
    this.block = new Sequential(
      new Conv2d(dim, dim, 7, { padding: 3, groups: dim }),
      new Permute([0, 2, 3, 1]),
      new LayerNorm(dim, { eps: 1e-6 }),
      new Linear(dim, 4 * dim),
      new GELU(),
      new Linear(4 * dim, dim),
      new Permute([0, 3, 1, 2]),
    );
    this.layer_scale = new Parameter(full([dim, 1, 1], layerScale));
    this.stochastic_depth = new DropPath(dropPath);
  }

  forward(x: Tensor): Tensor {
    const branch = pipe(x, this.block, (t) => this.layer_scale.mul(t), this.stochastic_depth);
    return branch.add_(x);
  }
}

type Setting = [inChannels: number, outChannels: number | null, layers: number];

export class ConvNeXt extends VisionModel {
  declare features: Sequential;
  declare avgpool: Module;
  declare classifier: Sequential;
  readonly blockInfo: BlockInfo[] = [];

  constructor(config: ModelConfig, settings: Setting[], numClasses: number, dropPath: number) {
    super({ ...config, numClasses });
    const features = new Sequential(
      new Sequential(new Conv2d(3, settings[0]![0], 4, { stride: 4 }), new LayerNorm2d(settings[0]![0], { eps: 1e-6 })),
    );
    const total = settings.reduce((s, [, , n]) => s + n, 0);
    let blockId = 0;
    settings.forEach(([inC, outC, n], stage) => {
      const seq = new Sequential();
      for (let i = 0; i < n; i++) {
        const sd = (dropPath * blockId) / (total - 1);
        this.blockInfo.push({ name: `features.${features.length}.${i}`, stage, channels: inC, reduction: 4 * 2 ** stage, layout: 'nchw' });
        seq.append(new CNBlock(inC, 1e-6, sd));
        blockId++;
      }
      features.append(seq);
      if (outC !== null) features.append(new Sequential(new LayerNorm2d(inC, { eps: 1e-6 }), new Conv2d(inC, outC, 2, { stride: 2 })));
    });
    this.features = features;
    const last = settings.at(-1)![0];
    this.classifier = new Sequential(new LayerNorm2d(last, { eps: 1e-6 }), new Flatten(1), new Linear(last, numClasses));
    initTruncNormal(this);
  }

  forwardFeatures(x: Tensor): Tensor {
    checkImage(x, this.config.name);
    return this.features.call(x);
  }

  forwardHead(features: Tensor): Tensor {
    return pipe(features, (t) => adaptiveAvgPool2d(t, 1), this.classifier);
  }

  override featureSteps(): [string, Step][] {
    const steps: [string, Step][] = [];
    for (let i = 0; i < this.features.length; i++) {
      const stage = this.features.at(i) as Sequential;
      // Block stages step per block (so a prefix can end mid-stage); stem and downsampling whole.
      const blocks = stage.length > 0 && stage.at(0)!.constructor.name === 'CNBlock';
      if (blocks) for (let j = 0; j < stage.length; j++) steps.push([`features.${i}.${j}`, stage.at(j) as Step]);
      else steps.push([`features.${i}`, stage as Step]);
    }
    return steps;
  }

  blocks(): BlockInfo[] {
    return this.blockInfo.map((b) => ({ ...b }));
  }
}

/**
 * timm ConvNeXt keys → torchvision's. timm puts the downsampling at the start of stage i
 * (i ≥ 1) where torchvision has it after stage i−1, and keeps layer scale as `gamma` [C] where
 * torchvision has `layer_scale` [C,1,1].
 */
export function convnextFromTimm(state: Map<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  const rules: [RegExp, (m: RegExpMatchArray) => string][] = [
    [/^stem\.0\.(.+)$/, (m) => `features.0.0.${m[1]}`],
    [/^stem\.1\.(.+)$/, (m) => `features.0.1.${m[1]}`],
    [/^stages\.(\d+)\.downsample\.([01])\.(.+)$/, (m) => `features.${2 * Number(m[1])}.${m[2]}.${m[3]}`],
    [/^stages\.(\d+)\.blocks\.(\d+)\.conv_dw\.(.+)$/, (m) => `features.${2 * Number(m[1]) + 1}.${m[2]}.block.0.${m[3]}`],
    [/^stages\.(\d+)\.blocks\.(\d+)\.norm\.(.+)$/, (m) => `features.${2 * Number(m[1]) + 1}.${m[2]}.block.2.${m[3]}`],
    [/^stages\.(\d+)\.blocks\.(\d+)\.mlp\.fc1\.(.+)$/, (m) => `features.${2 * Number(m[1]) + 1}.${m[2]}.block.3.${m[3]}`],
    [/^stages\.(\d+)\.blocks\.(\d+)\.mlp\.fc2\.(.+)$/, (m) => `features.${2 * Number(m[1]) + 1}.${m[2]}.block.5.${m[3]}`],
    [/^stages\.(\d+)\.blocks\.(\d+)\.gamma$/, (m) => `features.${2 * Number(m[1]) + 1}.${m[2]}.layer_scale`],
    [/^head\.norm\.(.+)$/, (m) => `classifier.0.${m[1]}`],
    [/^head\.fc\.(.+)$/, (m) => `classifier.2.${m[1]}`],
  ];
  for (const [key, value] of state) {
    const rule = rules.find(([re]) => re.test(key));
    if (!rule) {
      out.set(key, value); // left as is: strict loading will name it as unexpected
      continue;
    }
    const name = rule[1](key.match(rule[0])!);
    if (name.endsWith('layer_scale')) {
      out.set(name, noGrad(() => value.reshape([-1, 1, 1]).contiguous()));
      value.dispose();
    } else {
      out.set(name, value);
    }
  }
  return out;
}

const timmRemap = { timm: { detect: (keys: string[]) => keys.some((k) => k.startsWith('stages.')), remap: convnextFromTimm } };

const variants: [string, Setting[], number][] = [
  ['convnext_tiny', [[96, 192, 3], [192, 384, 3], [384, 768, 9], [768, null, 3]], 0.1],
  ['convnext_small', [[96, 192, 3], [192, 384, 3], [384, 768, 27], [768, null, 3]], 0.4],
  ['convnext_base', [[128, 256, 3], [256, 512, 3], [512, 1024, 27], [1024, null, 3]], 0.5],
];

for (const [name, settings, defaultDropPath] of variants) {
  const config: ModelConfig = {
    name, family: 'convnext', kind: 'cnn', memoryFormat: 'channelsLast', headInit: { type: 'truncNormal', std: 0.02 },
    // LoRA: each block's two pointwise linears (block.3 expands, block.5 projects).
    defaultTargets: { lora: String.raw`features\.\d+\.\d+\.block\.[35]` },
    ...IMAGENET_PREPROCESS,
    numClasses: 1000, firstConv: 'features.0.0', classifier: 'classifier.2',
    weightSource: `torchvision ConvNeXt_${name.split('_')[1]![0]!.toUpperCase()}${name.split('_')[1]!.slice(1)}_Weights, or timm ${name}`,
    license: 'torchvision code BSD-3-Clause; check each weights file\'s own licence',
    paper: 'Liu et al., A ConvNet for the 2020s, CVPR 2022',
  };
  registerModel(config, ({ numClasses, dropPath }) => new ConvNeXt(config, settings, numClasses, dropPath ?? defaultDropPath), timmRemap);
}
