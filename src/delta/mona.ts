// Mona as a delta method (mona.md): a Mona module after each block — two per transformer block
// (after the attention residual add and after the MLP residual add), one after each CNN block's
// output (the map form). Only the Mona modules and the head train; frozen BatchNorm runs in eval
// mode. Not mergeable: Mona applies a GeLU between its projections.
import { SLOTS } from '../nn/slots.js';
import type { Tensor } from '../engine/index.js';
import { release } from '../nn/release.js';
import type { VisionModel } from '../models/base.js';
import { check, registerMethod } from './core.js';
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

function monaHidden(value: unknown): number | 'capped' {
  if (value === undefined) return MONA_DEFAULT_HIDDEN;
  if (value === 'capped' || (Number.isInteger(value) && (value as number) > 0)) return value as number | 'capped';
  throw new Error(`mona: 'hidden' must be a positive integer or 'capped' (min(64, channels) per module), got ${JSON.stringify(value)}`);
}

registerMethod<MonaConfig>({
  name: 'mona',
  description: 'Mona: multi-cognitive visual adapters (multi-scale depthwise convs) after every block',
  configure(raw, model) {
    check.keys(raw, ['hidden', 'kernels', 'scaledNorm', 'dropout', 'merged', 'foldNorm', 'stages', 'lastBlocks'], 'mona');
    // A single stage or kernel (as `--opt stages=3` gives) is a list of one.
    if (typeof raw.stages === 'number') raw = { ...raw, stages: [raw.stages] };
    if (typeof raw.kernels === 'number') raw = { ...raw, kernels: [raw.kernels] };
    const stageCount = Math.max(...model.blocks().map((b) => b.stage)) + 1;
    let stages: number[] | null = null;
    if (raw.stages !== undefined && raw.stages !== null) {
      if (!Array.isArray(raw.stages) || raw.stages.length === 0 || !raw.stages.every((s) => Number.isInteger(s) && s >= 0 && s < stageCount)) {
        throw new Error(`mona: 'stages' must list stage indices in 0..${stageCount - 1} for ${model.config.name}, got ${JSON.stringify(raw.stages)}`);
      }
      stages = [...(raw.stages as number[])];
    }
    return {
      hidden: monaHidden(raw.hidden),
      kernels: raw.kernels === undefined ? [...MONA_DEFAULT_KERNELS] : checkKernels(raw.kernels, 'mona'),
      scaledNorm: raw.scaledNorm === undefined ? true : check.boolean(raw.scaledNorm, 'scaledNorm', 'mona'),
      dropout: raw.dropout === undefined ? 0.1 : check.number(raw.dropout, 'dropout', 'mona', 0, 0.999),
      merged: raw.merged === undefined ? MONA_DEFAULT_MERGED : check.boolean(raw.merged, 'merged', 'mona'),
      foldNorm: raw.foldNorm === undefined || raw.foldNorm === null ? null : check.boolean(raw.foldNorm, 'foldNorm', 'mona'),
      stages,
      lastBlocks: raw.lastBlocks === undefined || raw.lastBlocks === null ? null : check.positiveInt(raw.lastBlocks, 'lastBlocks', 'mona'),
    };
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
