// LoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022), as PEFT
// implements it: y = base(x) + (alpha / r) · B(A(dropout(x))), A kaiming-uniform, B zero, so the
// model is unchanged at init. Linear: A, B linears. Conv2d: A a conv with the layer's kernel,
// stride, padding and dilation to r channels, B a 1×1 conv back (PEFT's Conv2d geometry).
// Packed attention projections (torchvision ViT's in_proj, Swin's qkv): LoRA on q and v only by
// default (the LoRA paper's choice); `packed: 'qkv'` adapts the whole projection with one B·A, which
// is what PEFT does to them (so PEFT adapters load as they were trained).
// Parameter names follow PEFT's saved layout: `<module>.lora_A.weight`, `<module>.lora_B.weight`.
import type { Tensor } from '../engine/index.js';
import { Module } from '../nn/module.js';
import { Conv2d, Dropout, Linear } from '../nn/layers.js';
import { MultiheadAttention } from '../nn/attention.js';
import { release } from '../nn/release.js';
import { SLOTS } from '../nn/slots.js';
import { cat, zero_, zeros } from '../ops/index.js';
import type { VisionModel } from '../models/base.js';
import { matchModules, option, registerMethod } from './core/index.js';

export interface LoraConfig {
  rank: number;
  alpha: number;
  dropout: number;
  targets: string | string[];
  exclude: string | string[] | null;
  /** What LoRA updates on a packed [q; k; v] projection: q and v (two rank-r updates) or all of it (one). */
  packed: 'qv' | 'qkv';
}

/** q and v low-rank updates for a packed [q; k; v] projection of width 3E. */
export class PackedQVLora extends Module {
  declare lora_A_q: Linear;
  declare lora_B_q: Linear;
  declare lora_A_v: Linear;
  declare lora_B_v: Linear;
  declare lora_dropout: Dropout;

  constructor(readonly embed: number, rank: number, readonly scaling: number, dropout: number) {
    super();
    this.lora_A_q = new Linear(embed, rank, { bias: false });
    this.lora_B_q = new Linear(rank, embed, { bias: false });
    this.lora_A_v = new Linear(embed, rank, { bias: false });
    this.lora_B_v = new Linear(rank, embed, { bias: false });
    zero_(this.lora_B_q.weight);
    zero_(this.lora_B_v.weight);
    this.lora_dropout = new Dropout(dropout);
  }

  forward(x: Tensor): Tensor {
    const h = this.lora_dropout.call(x);
    const dq = this.lora_B_q.call(this.lora_A_q.call(h)).mul_(this.scaling);
    const dv = this.lora_B_v.call(this.lora_A_v.call(h)).mul_(this.scaling);
    const dk = zeros(dq.shape, { dtype: dq.dtype });
    const out = cat([dq, dk, dv], -1);
    release(dq, dk, dv);
    if (h !== x) release(h);
    return out;
  }

  /** ΔW for the packed [3E, E] weight. */
  deltaWeight(): Tensor {
    const dq = this.lora_B_q.weight.matmul(this.lora_A_q.weight).mul_(this.scaling);
    const dv = this.lora_B_v.weight.matmul(this.lora_A_v.weight).mul_(this.scaling);
    return cat([dq, zeros(dq.shape), dv], 0);
  }
}

/** One rank-r update of a whole packed [q; k; v] in_proj of width 3E (PEFT's LoRA on nn.MultiheadAttention). */
export class PackedLora extends Module {
  declare lora_A: Linear;
  declare lora_B: Linear;
  declare lora_dropout: Dropout;

  constructor(embed: number, rank: number, readonly scaling: number, dropout: number) {
    super();
    this.lora_A = new Linear(embed, rank, { bias: false });
    this.lora_B = new Linear(rank, 3 * embed, { bias: false });
    zero_(this.lora_B.weight);
    this.lora_dropout = new Dropout(dropout);
  }

  forward(x: Tensor): Tensor {
    const h = this.lora_dropout.call(x);
    const a = this.lora_A.call(h);
    const out = this.lora_B.call(a).mul_(this.scaling);
    release(a);
    if (h !== x) release(h);
    return out;
  }

  /** ΔW for the packed [3E, E] weight. */
  deltaWeight(): Tensor {
    return this.lora_B.weight.matmul(this.lora_A.weight).mul_(this.scaling);
  }
}

function isPackedQkv(name: string, m: Module<any, any>): boolean {
  return m instanceof Linear && /(^|\.)qkv$/.test(name) && m.outFeatures % 3 === 0;
}

function defaultTargets(model: VisionModel): string | string[] {
  const targets = model.config.defaultTargets.lora;
  if (targets === undefined) throw new Error(`lora: ${model.config.name} names no default targets (its config's defaultTargets.lora); pass 'targets'`);
  return typeof targets === 'string' ? targets : [...targets];
}

registerMethod<LoraConfig>({
  name: 'lora',
  description: 'LoRA on linears and convolutions (q and v of packed attention projections, or all of q, k, v)',
  kinds: ['cnn', 'transformer'],
  identityAtInit: true,
  // Kept at 2e-3 when alpha's default became the rank: still the best rate measured with scaling 1
  // (docs/results/README.md, "LoRA's alpha").
  defaultLr: 2e-3,
  options: {
    rank: option.positiveInt('rank r of each update B·A', (model) => (model.config.kind === 'transformer' ? 64 : 8), '8 on CNNs, 64 on transformers'),
    // Defaults to the rank, as PEFT's (r=8, lora_alpha=8): a scaling of 1 at every rank.
    alpha: option.number('scale: the update is (alpha / rank)·B·A', (_model, filled) => filled.rank as number, 0, 1e6, "equal to rank: scaling 1, as PEFT's r=8, lora_alpha=8"),
    dropout: option.number("dropout on the update's input while training", 0, 0, 0.999),
    targets: option.targets<string | string[]>('linears, convolutions or attention projections to adapt', defaultTargets, "the model config's defaultTargets.lora"),
    exclude: option.exclude(),
    packed: option.choice("on packed attention projections: 'qv' adapts q and v, 'qkv' the whole projection (PEFT's way)", ['qv', 'qkv'] as const, 'qv'),
  },
  install(model, config, b) {
    const scaling = config.alpha / config.rank;
    for (const [name, m] of matchModules(model, config.targets, 'lora', config.exclude)) {
      if (name === model.config.classifier) continue;
      if (m instanceof MultiheadAttention) {
        const lora = config.packed === 'qkv' ? new PackedLora(m.embedDim, config.rank, scaling, config.dropout) : new PackedQVLora(m.embedDim, config.rank, scaling, config.dropout);
        b.addModule(name, SLOTS.inProjDelta, lora);
      } else if (config.packed === 'qv' && isPackedQkv(name, m)) {
        const lin = m as Linear;
        const lora = new PackedQVLora(lin.inFeatures, config.rank, scaling, config.dropout);
        b.addModule(name, 'lora', lora);
        b.addHook(name, (_m, [x], out) => (out as Tensor).add_(lora.call(x as Tensor)));
      } else if (m instanceof Linear || m instanceof Conv2d) {
        let A: Linear | Conv2d;
        let B: Linear | Conv2d;
        if (m instanceof Linear) {
          A = new Linear(m.inFeatures, config.rank, { bias: false });
          B = new Linear(config.rank, m.outFeatures, { bias: false });
        } else {
          if ((m.options.groups ?? 1) !== 1) {
            throw new Error(`lora: '${name}' is a grouped convolution (groups=${m.options.groups}); LoRA's rank-r factorisation does not apply. Exclude it from 'targets'.`);
          }
          const { stride, padding, dilation } = m.options;
          A = new Conv2d(m.inChannels, config.rank, m.kernelSize, { stride, padding, dilation, bias: false });
          B = new Conv2d(config.rank, m.outChannels, 1, { bias: false });
        }
        zero_(B.weight);
        const drop = new Dropout(config.dropout);
        b.addModule(name, 'lora_A', A);
        b.addModule(name, 'lora_B', B);
        b.addModule(name, 'lora_dropout', drop);
        b.addHook(name, (_m, [x], out) => {
          const h = drop.call(x as Tensor);
          const a = A.call(h);
          const d = B.call(a).mul_(scaling);
          release(a);
          if (h !== x) release(h);
          const y = (out as Tensor).add_(d);
          release(d);
          return y;
        });
      } else {
        throw new Error(`lora: '${name}' is a ${m.constructor.name}; LoRA applies to Linear, Conv2d and packed attention projections`);
      }
    }
  },
  merge(model, config, delta) {
    for (const [path, module] of delta.addedModules) {
      const dot = path.lastIndexOf('.');
      const target = model.getSubmodule(path.slice(0, dot));
      const kind = path.slice(dot + 1);
      if (module instanceof PackedQVLora || module instanceof PackedLora) {
        const weight = target instanceof MultiheadAttention ? target.in_proj_weight : (target as Linear).weight;
        const d = module.deltaWeight();
        weight.add_(d);
        d.dispose();
      } else if (kind === 'lora_A') {
        const A = module as Linear | Conv2d;
        const B = target.getChild<Linear | Conv2d>('lora_B')!;
        const base = target as Linear | Conv2d;
        const scaling = config.alpha / config.rank;
        const rank = config.rank;
        const d = B.weight.reshape([B.weight.size(0), rank]).matmul(A.weight.reshape([rank, -1])).reshape([...base.weight.shape]).mul_(scaling);
        base.weight.add_(d);
        d.dispose();
      }
    }
  },
});
