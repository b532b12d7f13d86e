// Building blocks shared by the model families.
import type { Tensor } from '../engine/index.js';
import { Module } from '../nn/module.js';
import { Sequential } from '../nn/containers.js';
import { BatchNorm2d, Conv2d, Linear, type Conv2dLayerOptions } from '../nn/layers.js';
import { kaimingNormal_, normal_, truncNormal_, zero_, fill_ } from '../ops/init.js';
import { shouldInitialise } from '../nn/init.js';
import type { HeadInit, ModelConfig } from './base.js';

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

/**
 * Swaps the Linear at dotted `path` (below `root`) for a fresh one with `numClasses` outputs,
 * initialised by `init`, freeing the old.
 */
export function replaceLinear(root: Module<any, any>, path: string, numClasses: number, init?: (l: Linear) => void): Linear {
  const dot = path.lastIndexOf('.');
  const owner = root.getSubmodule(dot < 0 ? '' : path.slice(0, dot));
  const name = path.slice(dot + 1);
  const old = owner.getChild(name);
  if (!(old instanceof Linear)) throw new Error(`resetClassifier: '${path}' is not a Linear layer`);
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new RangeError(`resetClassifier: numClasses must be a positive integer, got ${numClasses}`);
  const fresh = new Linear(old.inFeatures, numClasses, { bias: old.bias !== null });
  init?.(fresh);
  owner.registerModule(name, fresh);
  old.dispose();
  return fresh;
}

/** Initialises a fresh classifier as the family's config says. */
export function initHead(head: Linear, init: HeadInit): void {
  if (init.type === 'default') return; // Linear's constructor already drew PyTorch's default
  if (init.type === 'normal') normal_(head.weight, 0, init.std);
  else if (init.type === 'truncNormal') truncNormal_(head.weight, 0, init.std);
  else zero_(head.weight);
  if (head.bias) zero_(head.bias);
}

/** Inputs must be [N, 3, H, W] float tensors; say so before a convolution error would. */
export function checkImage(x: Tensor, model: string): void {
  if (x.ndim !== 4 || x.shape[1] !== 3) {
    throw new RangeError(`${model}: expected images as a [N, 3, H, W] tensor, got shape [${x.shape.join(',')}]`);
  }
}

/** ImageNet's input size and normalisation, which every torchvision classifier here was trained with. */
export const IMAGENET_PREPROCESS: Pick<ModelConfig, 'inputSize' | 'mean' | 'std'> = {
  inputSize: [3, 224, 224],
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
};
