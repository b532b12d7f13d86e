// The surface every backbone offers to the trainer and the delta methods.
import type { Tensor } from '../engine/index.js';
import type { Step } from '../nn/release.js';
import { Module } from '../nn/module.js';

/**
 * How a block's output is laid out: an NCHW feature map (CNNs), an NHWC map (torchvision's Swin),
 * or a token sequence [B, 1 + H·W, C] with a class token first (ViT).
 */
export type BlockLayout = 'nchw' | 'nhwc' | 'tokens';

/** One residual block whose output delta methods may adapt (Mona goes after each one). */
export interface BlockInfo {
  /** Dotted module name, e.g. 'layer2.1' or 'features.3.0'. */
  name: string;
  /** Stage index, from 0. */
  stage: number;
  /** Channels of the block's output. */
  channels: number;
  /** Input size / output spatial size (4 for the first ResNet stage, 32 for the last). */
  reduction: number;
  layout: BlockLayout;
}

/** Static facts about a model family member: input, normalisation, head and weight provenance. */
export interface ModelConfig {
  /** Registry name, e.g. 'resnet50'. */
  name: string;
  family: string;
  /** [channels, height, width] the weights were trained at. */
  inputSize: [number, number, number];
  mean: [number, number, number];
  std: [number, number, number];
  numClasses: number;
  /** Dotted name of the first convolution (or patch embedding). */
  firstConv: string;
  /** Dotted name of the classifier layer (a Linear). */
  classifier: string;
  /** Where compatible weights come from and under what licence. */
  weightSource: string;
  license: string;
  paper: string;
  /** The weights file this instance was loaded from (set by createModel). */
  weightsFile?: string;
}

export abstract class VisionModel extends Module<[Tensor], Tensor> {
  declare readonly config: ModelConfig;

  constructor(config: ModelConfig) {
    super();
    Object.defineProperty(this, 'config', { value: { ...config }, enumerable: false, writable: false });
  }

  /** Backbone features before pooling (shape per family). */
  abstract forwardFeatures(x: Tensor): Tensor;

  /** Pooling, any final norm, and the classifier: features → logits. */
  abstract forwardHead(features: Tensor): Tensor;

  /** The residual blocks, in forward order, with their output layout and size. */
  abstract blocks(): BlockInfo[];

  /** Replaces the classifier with a freshly initialised one for `numClasses` outputs. */
  abstract resetClassifier(numClasses: number): void;

  forward(x: Tensor): Tensor {
    return this.forwardHead(this.forwardFeatures(x));
  }

  /**
   * forwardFeatures as named steps (module names where a step is a module), for families whose
   * backbone is a plain sequence; null otherwise. Running them in order equals forwardFeatures,
   * so a frozen prefix can be computed once and cached while only the rest trains.
   */
  featureSteps(): [string, Step][] | null {
    return null;
  }

  /**
   * Convolutions directly followed by a BatchNorm, as [conv, batchNorm] module names. A frozen
   * pair in eval mode is one affine map, which delta-tuning folds into the convolution.
   */
  convBatchNormPairs(): [string, string][] {
    return [];
  }
}
