// MobileNetV2 (width 1.0).
// Paper: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks" (CVPR 2018).
// Reference code and checkpoint names: torchvision 0.14 models/mobilenetv2.py.
// Weights: torchvision MobileNet_V2_Weights (BSD-3-Clause code; ImageNet weights have their own terms).
import type { Tensor } from '../engine/index.js';
import { Module } from '../nn/module.js';
import { Sequential } from '../nn/containers.js';
import { BatchNorm2d, Conv2d, Dropout, Linear, ReLU6 } from '../nn/layers.js';
import { adaptiveAvgPool2d } from '../ops/index.js';
import { pipe, type Step } from '../nn/release.js';
import { type BlockInfo, type ModelConfig, VisionModel } from './base.js';
import { IMAGENET_PREPROCESS, checkImage, convNormAct, initConvNets } from './common.js';
import { registerModel } from './registry.js';

class InvertedResidual extends Module {
  declare conv: Sequential;
  readonly useResidual: boolean;
  readonly outChannels: number;

  constructor(inp: number, oup: number, stride: number, expandRatio: number) {
    super();
    const hidden = Math.round(inp * expandRatio);
    this.useResidual = stride === 1 && inp === oup;
    this.outChannels = oup;
    const layers: Module<any, any>[] = [];
    if (expandRatio !== 1) layers.push(convNormAct(inp, hidden, 1, { activation: new ReLU6(true) }));
    layers.push(
      convNormAct(hidden, hidden, 3, { stride, groups: hidden, activation: new ReLU6(true) }),
      new Conv2d(hidden, oup, 1, { bias: false }),
      new BatchNorm2d(oup),
    );
    this.conv = new Sequential(...layers);
  }

  forward(x: Tensor): Tensor {
    const out = this.conv.call(x);
    return this.useResidual ? out.add_(x) : out;
  }
}

/** torchvision's _make_divisible: round to a multiple of `divisor`, never below 90% of `v`. */
function makeDivisible(v: number, divisor = 8): number {
  let n = Math.max(divisor, Math.floor((v + divisor / 2) / divisor) * divisor);
  if (n < 0.9 * v) n += divisor;
  return n;
}

const SETTINGS: [number, number, number, number][] = [
  // expansion t, channels c, repeats n, first stride s
  [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1],
];

export class MobileNetV2 extends VisionModel {
  declare features: Sequential;
  declare classifier: Sequential;
  readonly blockInfo: BlockInfo[] = [];

  constructor(config: ModelConfig, numClasses: number, dropout = 0.2) {
    super({ ...config, numClasses });
    let input = makeDivisible(32);
    const last = makeDivisible(1280);
    const features = new Sequential(convNormAct(3, input, 3, { stride: 2, activation: new ReLU6(true) }));
    let reduction = 2;
    SETTINGS.forEach(([t, c, n, s], stage) => {
      const out = makeDivisible(c);
      for (let i = 0; i < n; i++) {
        const stride = i === 0 ? s : 1;
        reduction *= stride;
        this.blockInfo.push({ name: `features.${features.length}`, stage, channels: out, reduction, layout: 'nchw' });
        features.append(new InvertedResidual(input, out, stride, t));
        input = out;
      }
    });
    features.append(convNormAct(input, last, 1, { activation: new ReLU6(true) }));
    this.features = features;
    this.classifier = new Sequential(new Dropout(dropout), new Linear(last, numClasses));
    initConvNets(this, 0.01);
  }

  forwardFeatures(x: Tensor): Tensor {
    checkImage(x, this.config.name);
    return this.features.call(x);
  }

  forwardHead(features: Tensor): Tensor {
    return pipe(features, (t) => adaptiveAvgPool2d(t, 1), (t) => t.flatten(1), this.classifier);
  }

  override featureSteps(): [string, Step][] {
    return Array.from({ length: this.features.length }, (_, i) => [`features.${i}`, this.features.at(i) as Step] as [string, Step]);
  }

  blocks(): BlockInfo[] {
    return this.blockInfo.map((b) => ({ ...b }));
  }

  override convBatchNormPairs(): [string, string][] {
    // Every Sequential whose child i is a Conv2d and child i+1 a BatchNorm2d.
    const pairs: [string, string][] = [];
    for (const [name, m] of this.features.namedModules('features')) {
      if (!(m instanceof Sequential)) continue;
      for (let i = 0; i + 1 < m.length; i++) {
        if (m.at(i) instanceof Conv2d && m.at(i + 1) instanceof BatchNorm2d) pairs.push([`${name}.${i}`, `${name}.${i + 1}`]);
      }
    }
    return pairs;
  }
}

const config: ModelConfig = {
  name: 'mobilenet_v2', family: 'mobilenet_v2', kind: 'cnn', memoryFormat: 'channelsLast', headInit: { type: 'normal', std: 0.01 },
  // LoRA: the 1×1 expand and project convolutions of each inverted residual (features.1 has no
  // expansion); the depthwise 3×3 is grouped, where a rank-r factorisation does not apply.
  defaultTargets: { lora: String.raw`features\.1\.conv\.1|features\.([2-9]|1[0-7])\.conv\.(0\.0|2)` },
  ...IMAGENET_PREPROCESS,
  numClasses: 1000, firstConv: 'features.0.0', classifier: 'classifier.1',
  weightSource: 'torchvision MobileNet_V2_Weights',
  license: 'torchvision code BSD-3-Clause; ImageNet weights carry their own terms',
  paper: 'Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018',
};
registerModel(config, ({ numClasses }) => new MobileNetV2(config, numClasses));
