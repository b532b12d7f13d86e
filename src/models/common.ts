// Building blocks shared by the model families.
import type { Tensor } from '../engine/index.js';
import { Module } from '../nn/module.js';
import { Sequential } from '../nn/containers.js';
import { BatchNorm2d, Conv2d, Linear, type Conv2dLayerOptions } from '../nn/layers.js';
import { kaimingNormal_, normal_, truncNormal_, zero_, fill_ } from '../ops/init.js';
import { shouldInitialise } from '../nn/init.js';

/** torchvision's Conv2dNormActivation: Sequential(conv, norm, [activation]) named 0, 1, 2. */
export function convNormAct(
  inChannels: number,
  outChannels: number,
  kernelSize: number,
  options: Conv2dLayerOptions & { norm?: Module<any, any> | null; activation?: Module<any, any> | null } = {},
): Sequential {
  const { norm, activation, ...conv } = options;
  const padding = conv.padding ?? Math.floor((kernelSize - 1) / 2) * ((typeof conv.dilation === 'number' ? conv.dilation : 1) || 1);
  // As torchvision: BatchNorm unless told otherwise (null: none), and a conv bias only without a norm.
  const normLayer = norm === undefined ? new BatchNorm2d(outChannels) : norm;
  const layers: Module<any, any>[] = [new Conv2d(inChannels, outChannels, kernelSize, { ...conv, padding, bias: conv.bias ?? normLayer === null })];
  if (normLayer) layers.push(normLayer);
  if (activation) layers.push(activation);
  return new Sequential(...layers);
}

/** torchvision's Permute module (parameter-free, kept so indices inside Sequentials match). */
export class Permute extends Module {
  constructor(readonly dims: number[]) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.permute(this.dims);
  }
}

/** ResNet / MobileNet initialisation: kaiming-normal (fan_out, relu) convs, unit norms. */
export function initConvNets(model: Module<any, any>, linearStd?: number): void {
  if (!shouldInitialise()) return;
  model.apply((m) => {
    if (m instanceof Conv2d) {
      kaimingNormal_(m.weight, { mode: 'fanOut', nonlinearity: 'relu' });
      if (m.bias) zero_(m.bias);
    } else if (m instanceof BatchNorm2d) {
      if (m.weight) fill_(m.weight, 1);
      if (m.bias) zero_(m.bias);
    } else if (m instanceof Linear && linearStd !== undefined) {
      normal_(m.weight, 0, linearStd);
      if (m.bias) zero_(m.bias);
    }
  });
}

/** ConvNeXt / Swin initialisation of convolutions and linears: truncated normal std 0.02, zero bias. */
export function initTruncNormal(model: Module<any, any>, std = 0.02): void {
  if (!shouldInitialise()) return;
  model.apply((m) => {
    if (m instanceof Conv2d || m instanceof Linear) {
      truncNormal_(m.weight, 0, std);
      if (m.bias) zero_(m.bias);
    }
  });
}

/** Swaps a Linear head for a fresh one with `numClasses` outputs, freeing the old. */
export function replaceLinear(owner: Module<any, any>, name: string, numClasses: number, init?: (l: Linear) => void): Linear {
  const old = owner._modules.get(name);
  if (!(old instanceof Linear)) throw new Error(`resetClassifier: '${name}' is not a Linear layer`);
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new RangeError(`resetClassifier: numClasses must be a positive integer, got ${numClasses}`);
  const fresh = new Linear(old.inFeatures, numClasses, { bias: old.bias !== null });
  init?.(fresh);
  owner.registerModule(name, fresh);
  old.dispose();
  return fresh;
}
