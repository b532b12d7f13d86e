// Model zoo: importing this registers every family.
import './resnet.js';
import './mobilenet.js';
import './convnext.js';
import './swin.js';
import './vit.js';

export { VisionModel, MODEL_KINDS, type BlockInfo, type BlockLayout, type HeadInit, type ModelConfig, type ModelKind } from './base.js';
export { IMAGENET_PREPROCESS } from './common.js';
export { configWithWeights, createModel, listModels, modelConfig, registerModel, type CreateModelOptions, type KeyRemap } from './registry.js';
export { ResNet } from './resnet.js';
export { MobileNetV2 } from './mobilenet.js';
export { ConvNeXt, convnextFromTimm } from './convnext.js';
export { SwinTransformer, SwinTransformerBlock, swinFromTimm } from './swin.js';
export { VisionTransformer, EncoderBlock, Encoder } from './vit.js';
