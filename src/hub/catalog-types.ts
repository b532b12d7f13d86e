// The shapes of the weights catalog (kept apart from the generated table so the generator only
// writes data).

/** The preprocessing a set of weights was trained and evaluated with (torchvision's transforms, timm's pretrained_cfg). */
export interface WeightsPreprocess {
  /** [channels, height, width] of the network's input (the centre crop). */
  inputSize: [number, number, number];
  /** Shorter side before the centre crop (torchvision's resize_size); timm gives crop_pct instead. */
  resizeSize?: number;
  /** inputSize / resize, timm's crop_pct. */
  cropPct?: number;
  mean: [number, number, number];
  std: [number, number, number];
  /** 'bilinear' | 'bicubic' | ...; recorded, not applied (the decoder resizes with its own kernel). */
  interpolation?: string;
}

/** One of torchvision's published weights (from its weight enums; see scripts/torchvision-weights.py). */
export interface TorchvisionWeights {
  /** 'resnet50.IMAGENET1K_V2': the zoo model, a dot, torchvision's enum member. */
  name: string;
  model: string;
  /** torchvision's enum, e.g. 'ResNet50_Weights.IMAGENET1K_V2'. */
  enum: string;
  /** torchvision's `Weights.DEFAULT` for this model. */
  default: boolean;
  url: string;
  file: string;
  /** The hex digits after the last '-' of the file name: the start of the file's sha256 (torch.hub's check_hash). */
  sha256Prefix: string;
  numParams: number;
  numClasses: number;
  /** ImageNet-1K accuracy (%) from torchvision's meta, where it has it. */
  top1: number | null;
  top5: number | null;
  preprocess: WeightsPreprocess;
  recipe: string | null;
}

/** What a weights file brings to the model's config besides its tensors. */
export interface WeightsConfig {
  preprocess?: WeightsPreprocess;
  numClasses?: number;
  /** Class names in class-index order, where the weights publish them. */
  classNames?: readonly string[];
}
