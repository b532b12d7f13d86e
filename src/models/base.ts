// The surface every backbone offers to the trainer and the delta methods.
import type { Tensor } from '../engine/index.js';
import type { Step } from '../nn/release.js';
import { Module } from '../nn/module.js';
import { initHead, replaceLinear } from './common.js';

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

/** Convolutional backbones and vision transformers take different delta methods. */
export type ModelKind = 'cnn' | 'transformer';
export const MODEL_KINDS: readonly ModelKind[] = ['cnn', 'transformer'];

/**
 * How a fresh classifier starts (torchvision's choice per family): Linear's own default, a
 * normal or truncated normal of the given std with zero bias, or all zeros.
 */
export type HeadInit = { type: 'default' } | { type: 'normal' | 'truncNormal'; std: number } | { type: 'zeros' };

/**
 * Static facts about a model family member: what it is, its input and normalisation, its head,
 * where delta methods attach by default, and weight provenance. Other layers read these instead
 * of switching on the family's name.
 */
export interface ModelConfig {
  /** Registry name, e.g. 'resnet50'. */
  name: string;
  family: string;
  kind: ModelKind;
  /** The layout training uses by default (channels-last runs oneDNN's convolutions without reorders). */
  memoryFormat: 'channelsLast' | 'contiguous';
  /** How a new classifier (resetClassifier, a delta's own head for other classes) is initialised. */
  headInit: HeadInit;
  /**
   * Per delta method, the modules it adapts on this family when the user names none: a
   * full-match regular expression or a list of module names (e.g. `{ lora: 'layer\\d\\.\\d+\\.conv\\d' }`).
   */
  defaultTargets: Readonly<Record<string, string | readonly string[]>>;
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
  /** The weights name it was loaded by ('resnet50.IMAGENET1K_V2', 'hf-hub:timm/...'; set by createModel). */
  weightsName?: string;
  /**
   * Evaluation crop as a fraction of the resized side (timm's crop_pct; torchvision's crop/resize).
   * Set from named weights; unset means the data layer's default 0.875.
   */
  cropPct?: number;
  /** The resize interpolation the weights were trained with; recorded, not applied. */
  interpolation?: string;
  /** Class names in class-index order, when the weights publish them (cleared by resetClassifier). */
  classNames?: readonly string[];
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

  /** Replaces the classifier with a freshly initialised one (config.headInit) for `numClasses` outputs. */
  resetClassifier(numClasses: number): void {
    replaceLinear(this, this.config.classifier, numClasses, (l) => initHead(l, this.config.headInit));
    this.config.numClasses = numClasses;
    delete this.config.classNames; // they named the old head's outputs
  }

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
