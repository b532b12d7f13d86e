// Bottleneck adapters, as the Mona paper's reference code defines its baselines (hidden width 64):
//   adapter (Houlsby et al., ICML 2019): y + Up(Dropout(GELU(Down(y)))) on the attention-branch and
//     MLP-branch outputs of every transformer block, before each residual add;
//   adaptformer (Chen et al., NeurIPS 2022): beside the MLP, x + MLP(LN2(x)) + s·Up(Dropout(GELU(Down(x)))), s = 0.1;
//   conv-adapter (Chen et al., "Conv-Adapter", 2022): beside each 3×3 convolution of a CNN, a grouped
//     k×k conv to a narrow width, ReLU, a 1×1 conv back and a per-channel scale.
// Up projections start at zero, so the model is unchanged at init. None of them merges: the
// nonlinearity sits between the adapter and the base weights.
import type { Tensor } from '../engine/index.js';
import { Module } from '../nn/module.js';
import { Conv2d, Dropout, Linear } from '../nn/layers.js';
import { Parameter } from '../nn/parameter.js';
import { release } from '../nn/release.js';
import { SLOTS } from '../nn/slots.js';
import { gelu, relu, ones, zero_ } from '../ops/index.js';
import type { VisionModel } from '../models/base.js';
import { excludeFrom, matchModules, option, registerMethod, type DeltaBuilder, type OptionSchema } from './core/index.js';

/** Down → GELU → Dropout → Up, scaled; optionally adds its input (Houlsby's residual). */
export class BottleneckAdapter extends Module {
  declare down_proj: Linear;
  declare up_proj: Linear;
  declare dropout: Dropout;

  constructor(channels: number, hidden: number, dropout: number, readonly scale: number, readonly residual: boolean) {
    super();
    this.down_proj = new Linear(channels, hidden);
    this.up_proj = new Linear(hidden, channels);
    zero_(this.up_proj.weight);
    zero_(this.up_proj.bias!);
    this.dropout = new Dropout(dropout);
  }

  forward(x: Tensor): Tensor {
    const d = this.down_proj.call(x);
    const g = gelu(d);
    release(d);
    const h = this.dropout.call(g);
    if (h !== g) release(g);
    let u = this.up_proj.call(h);
    release(h);
    if (this.scale !== 1) u = u.mul_(this.scale);
    if (!this.residual) return u;
    const out = u.add_(x);
    return out;
  }
}

function transformerBlocks(model: VisionModel, method: string): { name: string; channels: number }[] {
  const blocks = model.blocks().filter((b) => b.layout === 'nhwc' || b.layout === 'tokens');
  if (blocks.length === 0) {
    throw new Error(`${method}: applies to transformer blocks (swin, vit); ${model.config.name} is a CNN. For CNNs use mona, conv-adapter, lora or ssf.`);
  }
  return blocks;
}

interface AdapterConfig {
  hidden: number;
  dropout: number;
}

const adapterOptions: OptionSchema<AdapterConfig> = {
  hidden: option.positiveInt('bottleneck width of each adapter', 64),
  dropout: option.number('dropout inside the bottleneck while training', 0.1, 0, 0.999),
};

const refusal = 'its adapters apply a nonlinearity (GELU/ReLU) after the base weights, so they cannot be folded into them';

registerMethod<AdapterConfig>({
  name: 'adapter',
  description: 'Houlsby adapter on the attention and MLP branch outputs of each transformer block',
  kinds: ['transformer'],
  identityAtInit: true,
  defaultLr: 2e-3,
  options: adapterOptions,
  install(model, config, b: DeltaBuilder) {
    for (const blk of transformerBlocks(model, 'adapter')) {
      b.addModule(blk.name, SLOTS.attnAdapter, new BottleneckAdapter(blk.channels, config.hidden, config.dropout, 1, true));
      b.addModule(blk.name, SLOTS.mlpAdapter, new BottleneckAdapter(blk.channels, config.hidden, config.dropout, 1, true));
    }
  },
  mergeRefusal: refusal,
});

registerMethod<AdapterConfig & { scale: number }>({
  name: 'adaptformer',
  description: 'AdaptFormer: a scaled bottleneck beside the MLP of each transformer block',
  kinds: ['transformer'],
  identityAtInit: true,
  defaultLr: 2e-3,
  options: {
    ...adapterOptions,
    scale: option.number("factor on the bottleneck's output before it joins the MLP's", 0.1),
  },
  install(model, config, b) {
    for (const blk of transformerBlocks(model, 'adaptformer')) {
      b.addModule(blk.name, SLOTS.mlpParallel, new BottleneckAdapter(blk.channels, config.hidden, config.dropout, config.scale, false));
    }
  },
  mergeRefusal: refusal,
});

/** Conv-Adapter beside one k×k convolution: scale ⊙ Up1×1(ReLU(DownGroupedConv(x))). */
export class ConvAdapter extends Module {
  declare down: Conv2d;
  declare up: Conv2d;
  declare scale: Parameter;

  constructor(inChannels: number, outChannels: number, hidden: number, kernel: [number, number], stride: unknown, padding: unknown, dilation: unknown) {
    super();
    // Grouped so that each group maps a slice of the input to one hidden channel.
    const groups = gcd(inChannels, hidden);
    this.down = new Conv2d(inChannels, hidden, kernel, { stride: stride as number, padding: padding as number, dilation: dilation as number, groups, bias: false });
    this.up = new Conv2d(hidden, outChannels, 1, { bias: false });
    zero_(this.up.weight);
    this.scale = new Parameter(ones([outChannels, 1, 1]));
  }

  forward(x: Tensor): Tensor {
    const d = this.down.call(x);
    const r = relu(d);
    release(d);
    const u = this.up.call(r);
    release(r);
    return u.mul_(this.scale);
  }
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

registerMethod<{ hidden: number; targets: string | string[] | null; exclude: string | string[] | null }>({
  name: 'conv-adapter',
  description: 'Conv-Adapter: a grouped conv bottleneck beside each k×k (k > 1) convolution of a CNN',
  kinds: ['cnn'],
  identityAtInit: true,
  defaultLr: 2e-3,
  options: {
    hidden: option.positiveInt('bottleneck width (at most the convolution\'s input channels)', 16),
    targets: option.targets<string | string[] | null>('convolutions to adapt', null, 'every dense k×k convolution but the first'),
    exclude: option.exclude(),
  },
  install(model, config, b) {
    const candidates = config.targets === null ? [...model.namedModules()] : matchModules(model, config.targets, 'conv-adapter');
    const eligible = candidates.filter(([name, m]) => {
      if (!(m instanceof Conv2d) || name === model.config.firstConv) return false;
      if (m.kernelSize[0] === 1 && m.kernelSize[1] === 1) return false;
      return (m.options.groups ?? 1) === 1 || config.targets !== null; // depthwise convs: skipped by default
    }) as [string, Conv2d][];
    if (eligible.length === 0) throw new Error(`conv-adapter: ${model.config.name} has no k×k (k > 1) convolution to put an adapter beside; it applies to CNNs`);
    for (const [name, m] of excludeFrom(eligible, config.exclude, 'conv-adapter') as [string, Conv2d][]) {
      const { stride, padding, dilation } = m.options;
      const adapter = new ConvAdapter(m.inChannels, m.outChannels, Math.min(config.hidden, m.inChannels), m.kernelSize, stride, padding, dilation);
      b.addModule(name, 'conv_adapter', adapter);
      b.addHook(name, (_m, [x], out) => {
        const a = adapter.call(x as Tensor);
        const y = (out as Tensor).add_(a);
        release(a);
        return y;
      });
    }
  },
  mergeRefusal: refusal,
});

