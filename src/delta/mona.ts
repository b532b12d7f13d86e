// Mona as a delta method (mona.md): a Mona module after each block — two per transformer block
// (after the attention residual add and after the MLP residual add), one after each CNN block's
// output (the map form). Only the Mona modules and the head train; frozen BatchNorm runs in eval
// mode. Not mergeable: Mona applies a GeLU between its projections.
import type { Tensor } from '../engine/index.js';
import { release } from '../nn/release.js';
import { SLOTS } from '../nn/slots.js';
import type { VisionModel } from '../models/base.js';
import { check, option, registerMethod } from './core/index.js';
import { MONA_DEFAULT_HIDDEN, MONA_DEFAULT_KERNELS, MONA_DEFAULT_MERGED, Mona, MonaMap, checkKernels } from './mona-module.js';

export interface MonaConfig {
  /**
   * The bottleneck width: a number for every module (the paper's 64 by default), or 'capped' for
   * min(64, channels) per module — on thin maps (MobileNetV2's 16–32-channel stages) a width-64
   * bottleneck is wider than the block it adapts, at the network's highest resolutions.
   */
  hidden: number | 'capped';
  kernels: number[];
  scaledNorm: boolean;
  dropout: number;
  /** Merged-kernel fast path (identical math); the default is the faster one here. */
  merged: boolean;
  /**
   * Fold the scaled LayerNorm into project1 (identical math): null = the module form's default
   * (folded on CNN maps with C ≥ 4·hidden, where it is as fast and keeps less; literal on thinner
   * maps and on tokens, where it is faster).
   */
  foldNorm: boolean | null;
  /** Stage indices that get modules (all by default). */
  stages: number[] | null;
  /** Only the last this-many blocks get modules (finer than `stages`; null = no limit). */
  lastBlocks: number | null;
}

registerMethod<MonaConfig>({
  name: 'mona',
  description: 'Mona: multi-cognitive visual adapters (multi-scale depthwise convs) after every block',
  kinds: ['cnn', 'transformer'],
  // As in the reference code its up-projection is not zero (mona.md): close to the identity at init, not exactly.
  identityAtInit: false,
  defaultLr: 2e-3,
  options: {
    hidden: {
      doc: "bottleneck width: a number, or 'capped' for min(64, channels) per module",
      default: MONA_DEFAULT_HIDDEN,
      parse(value) {
        if (value === 'capped' || (Number.isInteger(value) && (value as number) > 0 && (value as number) <= 1 << 20)) return value as number | 'capped';
        throw new Error(`mona: 'hidden' must be a positive integer or 'capped' (min(64, channels) per module), got ${JSON.stringify(value)}`);
      },
    },
    kernels: {
      doc: 'depthwise filter sizes, odd (the multi-cognitive scales)',
      default: [...MONA_DEFAULT_KERNELS],
      // A single kernel (as `--opt kernels=3` gives) is a list of one.
      parse: (value) => checkKernels(typeof value === 'number' ? [value] : value, 'mona'),
    },
    scaledNorm: option.boolean('the scaled LayerNorm in front (s1·LN(x) + s2·x)', true),
    dropout: option.number('dropout before the up-projection while training', 0.1, 0, 0.999),
    merged: option.boolean('run the filter bank as one merged depthwise kernel (identical math)', MONA_DEFAULT_MERGED),
    foldNorm: {
      doc: 'fold the scaled LayerNorm into the down-projection (identical math); null: by map width',
      default: null,
      parse: (value, key) => (value === null ? null : check.boolean(value, key, 'mona')),
    },
    stages: {
      doc: 'stage indices that get modules; null: all',
      default: null,
      parse(value) {
        // A single stage (as `--opt stages=3` gives) is a list of one; the range is checked against the model.
        const list = typeof value === 'number' ? [value] : value;
        if (list === null) return null;
        if (!Array.isArray(list) || list.length === 0 || !list.every((s) => Number.isInteger(s) && s >= 0)) {
          throw new Error(`mona: 'stages' must list stage indices (integers from 0), got ${JSON.stringify(value)}`);
        }
        return [...(list as number[])];
      },
    },
    lastBlocks: {
      doc: 'only the last this-many blocks get modules; null: no limit',
      default: null,
      parse: (value, key) => (value === null ? null : check.positiveInt(value, key, 'mona')),
    },
  },
  validate(config, model) {
    const stageCount = Math.max(...model.blocks().map((b) => b.stage)) + 1;
    if (config.stages && !config.stages.every((s) => s < stageCount)) {
      throw new Error(`mona: 'stages' must list stage indices in 0..${stageCount - 1} for ${model.config.name}, got ${JSON.stringify(config.stages)}`);
    }
  },
  install(model: VisionModel, config, b) {
    const { stages: _stages, lastBlocks, foldNorm, hidden, ...rest } = config;
    const blocks = model.blocks();
    for (const [i, blk] of blocks.entries()) {
      if (config.stages && !config.stages.includes(blk.stage)) continue;
      if (lastBlocks !== null && i < blocks.length - lastBlocks) continue;
      const options = {
        ...rest,
        hidden: hidden === 'capped' ? Math.min(MONA_DEFAULT_HIDDEN, blk.channels) : hidden,
        ...(foldNorm === null ? {} : { foldNorm }),
      };
      if (blk.layout === 'nchw') {
        const mona = new MonaMap(blk.channels, options);
        b.addOutputModule(blk.name, 'mona', mona, (out) => {
          const y = mona.call(out);
          if (y !== out) release(out);
          return y;
        });
      } else {
        // Swin keeps NHWC maps; ViT has tokens with the class token first.
        const seq = { ...options, skipTokens: blk.layout === 'tokens' ? 1 : 0 };
        b.addModule(blk.name, SLOTS.postAttn, new Mona(blk.channels, seq));
        b.addModule(blk.name, SLOTS.postMlp, new Mona(blk.channels, seq));
      }
    }
  },
  mergeRefusal: 'Mona applies a GeLU between its projections, so it cannot be folded into the base weights',
});
