// Methods that add nothing: they choose which base parameters train. Merging is free (the
// trained values are already in the base).
import { BatchNorm2d, GroupNorm, LayerNorm } from '../nn/layers.js';
import type { VisionModel } from '../models/base.js';
import { option, registerMethod, type DeltaBuilder } from './core/index.js';

/** Base parameter names, without the classifier (each delta brings its own head). */
export function backboneParameters(model: VisionModel): string[] {
  const head = `${model.config.classifier}.`;
  return model.namedParameters().map(([n]) => n).filter((n) => !n.startsWith(head));
}

const noMergeWork = () => {};

registerMethod<{ trainBatchNormStats: boolean }>({
  name: 'full',
  description: 'full fine-tuning: every parameter trains',
  kinds: ['cnn', 'transformer'],
  identityAtInit: true,
  defaultLr: 1e-3,
  options: {
    // As in ordinary fine-tuning; off keeps them frozen, for backbones whose BatchNorm was folded away.
    trainBatchNormStats: option.boolean('BatchNorm running statistics update while training (as in ordinary fine-tuning)', true),
  },
  install(model, config, b: DeltaBuilder) {
    b.trainBase(backboneParameters(model));
    if (config.trainBatchNormStats) b.trainBatchNormStatistics();
  },
  merge: noMergeWork,
});

registerMethod<object>({
  name: 'fixed',
  description: 'linear probe: only the head trains',
  kinds: ['cnn', 'transformer'],
  identityAtInit: true,
  defaultLr: 1e-2,
  options: {},
  install() {},
  merge: noMergeWork,
});

registerMethod<{ includePositionBias: boolean }>({
  name: 'bitfit',
  description: "BitFit: every backbone parameter whose name contains 'bias'",
  kinds: ['cnn', 'transformer'],
  identityAtInit: true,
  defaultLr: 5e-3,
  options: {
    // The reference's substring match also catches it: on by default, explicit here.
    includePositionBias: option.boolean("also Swin's relative_position_bias_table (the reference's substring match catches it)", true),
  },
  install(model, config, b) {
    const names = backboneParameters(model).filter((n) => n.includes('bias') && (config.includePositionBias || !n.includes('relative_position_bias')));
    if (names.length === 0) throw new Error(`bitfit: ${model.config.name} has no bias parameters in its backbone`);
    b.trainBase(names);
  },
  merge: noMergeWork,
});

registerMethod<object>({
  name: 'normtuning',
  description: "NormTuning: every norm layer's parameters (names containing 'norm', and BatchNorm/LayerNorm/GroupNorm affine)",
  kinds: ['cnn', 'transformer'],
  identityAtInit: true,
  defaultLr: 5e-3,
  options: {},
  install(model, _config, b) {
    const head = `${model.config.classifier}.`;
    const names = new Set(backboneParameters(model).filter((n) => n.includes('norm')));
    for (const [prefix, m] of model.namedModules()) {
      if (!(m instanceof BatchNorm2d || m instanceof LayerNorm || m instanceof GroupNorm)) continue;
      for (const [n] of m.namedParameters({ recurse: false })) {
        const full = prefix ? `${prefix}.${n}` : n;
        if (!full.startsWith(head)) names.add(full);
      }
    }
    b.trainBase(names);
  },
  merge: noMergeWork,
});

registerMethod<{ blocks: number }>({
  name: 'partial',
  description: 'Partial-k: only the last k blocks (default 1) and the head train',
  kinds: ['cnn', 'transformer'],
  identityAtInit: true,
  defaultLr: 1e-3,
  options: {
    blocks: option.positiveInt('how many of the last residual blocks train', 1),
  },
  validate({ blocks }, model) {
    const available = model.blocks().length;
    if (blocks > available) throw new Error(`partial: 'blocks' is ${blocks} but ${model.config.name} has ${available} blocks`);
  },
  install(model, config, b) {
    const chosen = model.blocks().slice(-config.blocks).map((blk) => `${blk.name}.`);
    b.trainBase(backboneParameters(model).filter((n) => chosen.some((c) => n.startsWith(c))));
  },
  merge: noMergeWork,
});

