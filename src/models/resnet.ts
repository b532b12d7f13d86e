// ResNet-18/34/50/101.
// Paper: He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016).
// Reference code and checkpoint names: torchvision 0.14 models/resnet.py (ResNet v1.5: the stride
// sits on the 3×3 convolution of a Bottleneck). timm's ResNet uses the same names.
// Weights: torchvision ResNet*_Weights (BSD-3-Clause code; ImageNet weights have their own terms).
import type { Tensor } from '../engine/index.js';
import { Module } from '../nn/module.js';
import { Sequential } from '../nn/containers.js';
import { BatchNorm2d, Conv2d, Linear, MaxPool2d, ReLU } from '../nn/layers.js';
import { adaptiveAvgPool2d, relu_ } from '../ops/index.js';
import { pipe, release, type Step } from '../nn/release.js';
import { type BlockInfo, type ModelConfig, VisionModel } from './base.js';
import { IMAGENET_PREPROCESS, checkImage, initConvNets } from './common.js';
import { registerModel } from './registry.js';

class BasicBlock extends Module {
  static readonly expansion = 1;
  declare conv1: Conv2d;
  declare bn1: BatchNorm2d;
  declare relu: ReLU;
  declare conv2: Conv2d;
  declare bn2: BatchNorm2d;
  declare downsample: Sequential | null;

  constructor(inplanes: number, planes: number, stride: number, downsample: Sequential | null) {
    super();
    this.conv1 = new Conv2d(inplanes, planes, 3, { stride, padding: 1, bias: false });
    this.bn1 = new BatchNorm2d(planes);
    this.relu = new ReLU(true);
    this.conv2 = new Conv2d(planes, planes, 3, { padding: 1, bias: false });
    this.bn2 = new BatchNorm2d(planes);
    this.registerModule('downsample', downsample);
  }

  forward(x: Tensor): Tensor {
    const out = pipe(x, this.conv1, this.bn1, relu_, this.conv2, this.bn2);
    return residualRelu(out, x, this.downsample);
  }
}

class Bottleneck extends Module {
  static readonly expansion = 4;
  declare conv1: Conv2d;
  declare bn1: BatchNorm2d;
  declare conv2: Conv2d;
  declare bn2: BatchNorm2d;
  declare conv3: Conv2d;
  declare bn3: BatchNorm2d;
  declare relu: ReLU;
  declare downsample: Sequential | null;

  constructor(inplanes: number, planes: number, stride: number, downsample: Sequential | null) {
    super();
    this.conv1 = new Conv2d(inplanes, planes, 1, { bias: false });
    this.bn1 = new BatchNorm2d(planes);
    this.conv2 = new Conv2d(planes, planes, 3, { stride, padding: 1, bias: false });
    this.bn2 = new BatchNorm2d(planes);
    this.conv3 = new Conv2d(planes, planes * 4, 1, { bias: false });
    this.bn3 = new BatchNorm2d(planes * 4);
    this.relu = new ReLU(true);
    this.registerModule('downsample', downsample);
  }

  forward(x: Tensor): Tensor {
    const out = pipe(x, this.conv1, this.bn1, relu_, this.conv2, this.bn2, relu_, this.conv3, this.bn3);
    return residualRelu(out, x, this.downsample);
  }
}

/** relu(out + shortcut(x)) in place on `out`, as torchvision (`out += identity; relu(out)`). */
function residualRelu(out: Tensor, x: Tensor, downsample: Sequential | null): Tensor {
  const identity = downsample ? downsample.call(x) : x;
  out.add_(identity);
  if (identity !== x) release(identity);
  return relu_(out);
}

type BlockClass = typeof BasicBlock | typeof Bottleneck;

export class ResNet extends VisionModel {
  declare conv1: Conv2d;
  declare bn1: BatchNorm2d;
  declare relu: ReLU;
  declare maxpool: MaxPool2d;
  declare layer1: Sequential;
  declare layer2: Sequential;
  declare layer3: Sequential;
  declare layer4: Sequential;
  declare fc: Linear;

  constructor(config: ModelConfig, block: BlockClass, layers: [number, number, number, number], numClasses: number) {
    super({ ...config, numClasses });
    this.conv1 = new Conv2d(3, 64, 7, { stride: 2, padding: 3, bias: false });
    this.bn1 = new BatchNorm2d(64);
    this.relu = new ReLU(true);
    this.maxpool = new MaxPool2d(3, { stride: 2, padding: 1 });
    let inplanes = 64;
    const makeLayer = (planes: number, blocks: number, stride: number) => {
      const out = planes * block.expansion;
      const down = stride !== 1 || inplanes !== out
        ? new Sequential(new Conv2d(inplanes, out, 1, { stride, bias: false }), new BatchNorm2d(out))
        : null;
      const seq = new Sequential(new block(inplanes, planes, stride, down));
      inplanes = out;
      for (let i = 1; i < blocks; i++) seq.append(new block(inplanes, planes, 1, null));
      return seq;
    };
    this.layer1 = makeLayer(64, layers[0], 1);
    this.layer2 = makeLayer(128, layers[1], 2);
    this.layer3 = makeLayer(256, layers[2], 2);
    this.layer4 = makeLayer(512, layers[3], 2);
    this.fc = new Linear(512 * block.expansion, numClasses);
    initConvNets(this);
  }

  forwardFeatures(x: Tensor): Tensor {
    checkImage(x, this.config.name);
    return pipe(x, this.conv1, this.bn1, relu_, this.maxpool, this.layer1, this.layer2, this.layer3, this.layer4);
  }

  forwardHead(features: Tensor): Tensor {
    return pipe(features, (t) => adaptiveAvgPool2d(t, 1), (t) => t.flatten(1), this.fc);
  }

  override featureSteps(): [string, Step][] {
    const blocks = ([1, 2, 3, 4] as const).flatMap((l) => {
      const layer = this[`layer${l}`];
      return Array.from({ length: layer.length }, (_, i) => [`layer${l}.${i}`, layer.at(i) as Step] as [string, Step]);
    });
    return [['conv1', this.conv1], ['bn1', this.bn1], ['relu', relu_], ['maxpool', this.maxpool], ...blocks];
  }

  blocks(): BlockInfo[] {
    const out: BlockInfo[] = [];
    [this.layer1, this.layer2, this.layer3, this.layer4].forEach((layer, stage) => {
      for (let i = 0; i < layer.length; i++) {
        const b = layer.at(i) as BasicBlock | Bottleneck;
        const channels = b instanceof Bottleneck ? b.conv3.outChannels : b.conv2.outChannels;
        out.push({ name: `layer${stage + 1}.${i}`, stage, channels, reduction: 4 * 2 ** stage, layout: 'nchw' });
      }
    });
    return out;
  }

  override convBatchNormPairs(): [string, string][] {
    const pairs: [string, string][] = [['conv1', 'bn1']];
    for (const b of this.blocks()) {
      const block = this.getSubmodule(b.name) as BasicBlock | Bottleneck;
      const n = block instanceof Bottleneck ? 3 : 2;
      for (let i = 1; i <= n; i++) pairs.push([`${b.name}.conv${i}`, `${b.name}.bn${i}`]);
      if (block.downsample) pairs.push([`${b.name}.downsample.0`, `${b.name}.downsample.1`]);
    }
    return pairs;
  }
}


const variants: [string, BlockClass, [number, number, number, number]][] = [
  ['resnet18', BasicBlock, [2, 2, 2, 2]],
  ['resnet34', BasicBlock, [3, 4, 6, 3]],
  ['resnet50', Bottleneck, [3, 4, 6, 3]],
  ['resnet101', Bottleneck, [3, 4, 23, 3]],
];

for (const [name, block, layers] of variants) {
  const config: ModelConfig = {
    name, family: 'resnet', kind: 'cnn', memoryFormat: 'channelsLast', headInit: { type: 'default' },
    defaultTargets: { lora: String.raw`layer\d\.\d+\.conv\d` },
    ...IMAGENET_PREPROCESS, numClasses: 1000, firstConv: 'conv1', classifier: 'fc',
    weightSource: `torchvision ${name.replace('resnet', 'ResNet')}_Weights, or timm ${name} (same key names)`,
    license: 'torchvision code BSD-3-Clause; ImageNet weights carry their own terms',
    paper: 'He et al., Deep Residual Learning for Image Recognition, CVPR 2016',
  };
  // timm's ResNet already uses torchvision's names, so its checkpoints load without a remap.
  registerModel(config, ({ numClasses }) => new ResNet(config, block, layers, numClasses));
}
