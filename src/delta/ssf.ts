// SSF (Lian et al., "Scaling & Shifting Your Features", NeurIPS 2022): a per-channel scale and
// shift after each norm, and after each linear or convolution that has a bias. Initialised to the
// identity (scale 1, shift 0), so the model is unchanged at init; mergeable into the preceding
// layer's weight and bias. Bias-free convolutions are left out: the norm after them gets its own SSF.
import type { Tensor } from '../engine/index.js';
import { Module } from '../nn/module.js';
import { BatchNorm2d, Conv2d, LayerNorm, LayerNorm2d, Linear } from '../nn/layers.js';
import { Parameter } from '../nn/parameter.js';
import { ones, zeros } from '../ops/index.js';
import type { VisionModel } from '../models/base.js';
import { matchModules, option, registerMethod } from './core/index.js';

/** Holds one layer's scale and shift; `dim` is the channel dimension of its output. */
export class ScaleShift extends Module {
  declare ssf_scale: Parameter;
  declare ssf_shift: Parameter;

  constructor(readonly channels: number, readonly dim: number) {
    super();
    this.ssf_scale = new Parameter(ones([channels]));
    this.ssf_shift = new Parameter(zeros([channels]));
  }

  forward(x: Tensor): Tensor {
    const shape = Array<number>(x.ndim).fill(1);
    const dim = this.dim < 0 ? x.ndim + this.dim : this.dim;
    shape[dim] = this.channels;
    return x.mul(this.ssf_scale.view(shape)).add_(this.ssf_shift.view(shape));
  }
}

function channelsOf(m: Module<any, any>): [channels: number, dim: number] | null {
  if (m instanceof BatchNorm2d) return m.weight ? [m.numFeatures, 1] : null;
  if (m instanceof LayerNorm2d) return m.weight ? [m.normalizedShape[0]!, 1] : null;
  if (m instanceof LayerNorm) return m.weight && m.normalizedShape.length === 1 ? [m.normalizedShape[0]!, -1] : null;
  if (m instanceof Linear) return m.bias ? [m.outFeatures, -1] : null;
  if (m instanceof Conv2d) return m.bias ? [m.outChannels, 1] : null;
  return null;
}

registerMethod<{ targets: string | string[]; exclude: string | string[] | null }>({
  name: 'ssf',
  description: 'SSF: per-channel scale and shift after each norm and biased linear/conv (mergeable)',
  kinds: ['cnn', 'transformer'],
  identityAtInit: true,
  defaultLr: 5e-3,
  options: {
    targets: option.targets<string | string[]>('modules to scale and shift (those that are norms or biased linears/convs)', '.*'),
    exclude: option.exclude(),
  },
  install(model: VisionModel, config, b) {
    let count = 0;
    for (const [name, m] of matchModules(model, config.targets, 'ssf', config.exclude)) {
      if (name === model.config.classifier || name.startsWith(`${model.config.classifier}.`)) continue;
      const c = channelsOf(m);
      if (!c) continue;
      const ss = new ScaleShift(c[0], c[1]);
      b.addModule(name, 'ssf', ss);
      b.addHook(name, (_m, _inputs, out) => ss.call(out as Tensor));
      count++;
    }
    if (count === 0) throw new Error(`ssf: target ${JSON.stringify(config.targets)} selects no norm, biased linear or biased conv in ${model.config.name}`);
  },
  merge(model, _config, delta) {
    for (const [path, module] of delta.addedModules) {
      if (!(module instanceof ScaleShift)) continue;
      const layer = model.getSubmodule(path.slice(0, path.lastIndexOf('.')));
      const weight = (layer as unknown as { weight: Parameter }).weight;
      const bias = (layer as unknown as { bias: Parameter }).bias;
      // y' = s·y + t: scale the output channel of weight and bias, then shift the bias.
      const wShape = Array<number>(weight.ndim).fill(1);
      wShape[0] = module.channels;
      weight.mul_(module.ssf_scale.view(wShape));
      bias.mul_(module.ssf_scale).add_(module.ssf_shift);
    }
  },
});
