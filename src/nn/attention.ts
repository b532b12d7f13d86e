// Attention layers with the parameter names, shapes and numerics of torch.nn.MultiheadAttention
// (as torchvision's ViT uses it) and of torchvision 0.14's Swin Transformer v1 blocks
// (models/swin_transformer.py: ShiftedWindowAttention, PatchMerging; ops/misc.py: MLP).
import { Tensor, callOp, isGradEnabled, noGrad } from '../engine/index.js';
import { dropout, empty, indexSelect, linear, matmul, pad, roll, softmax, tensor, truncNormal_, xavierUniform_, zero_ } from '../ops/index.js';
import { Module } from './module.js';
import { release } from './release.js';
import { Parameter } from './parameter.js';
import { Sequential } from './containers.js';
import { Dropout, LayerNorm, Linear, ReLU } from './layers.js';
import { constantParameter } from './init.js';
import { SLOTS } from './slots.js';

type AnyModule = Module<any, any>;

function positiveInt(value: number, what: string): number {
  if (!Number.isInteger(value) || value <= 0) throw new RangeError(`${what} must be a positive integer, got ${value}`);
  return value;
}

function probability(p: number, what: string): number {
  if (!(p >= 0 && p < 1)) throw new RangeError(`${what} must be in [0, 1), got ${p}`);
  return p;
}

const shapeOf = (x: Tensor) => `[${x.shape.join(',')}]`;

/** True when `m` is a plain Linear with no hooks, so its weight may be used directly by a fused kernel. */
function isPlainLinear(m: AnyModule): m is Linear {
  return Object.getPrototypeOf(m) === Linear.prototype && !m.hasHooks();
}

// ---------------------------------------------------------------------------------------------
// MLP

export interface MLPOptions {
  /** Makes the activation after each hidden Linear (default ReLU, as torchvision.ops.MLP). */
  activation?: () => AnyModule;
  /** Makes a norm layer for a hidden width, placed between the Linear and the activation. */
  norm?: (width: number) => AnyModule;
  bias?: boolean;
  dropout?: number;
}

/**
 * torchvision.ops.MLP: a Sequential of [Linear, (norm), activation, Dropout] per hidden width and
 * a final [Linear, Dropout], so with one hidden width the Linears are children '0' and '3'
 * (Swin's `mlp.0` / `mlp.3`, ViT's MLPBlock likewise).
 */
export class MLP extends Sequential {
  constructor(inChannels: number, hiddenChannels: readonly number[], options: MLPOptions = {}) {
    super();
    positiveInt(inChannels, 'MLP: inChannels');
    if (!Array.isArray(hiddenChannels) || hiddenChannels.length === 0) throw new RangeError('MLP: hiddenChannels must list at least one width');
    const p = options.dropout ?? 0;
    if (!(p >= 0 && p <= 1)) throw new RangeError(`MLP: dropout must be in [0, 1], got ${p}`);
    const bias = options.bias ?? true;
    const activation = options.activation ?? (() => new ReLU());
    let inDim = inChannels;
    hiddenChannels.forEach((width, i) => {
      positiveInt(width, `MLP: hiddenChannels[${i}]`);
      this.append(new Linear(inDim, width, { bias }));
      if (i < hiddenChannels.length - 1) {
        if (options.norm) this.append(options.norm(width));
        this.append(activation());
      }
      this.append(new Dropout(p));
      inDim = width;
    });
  }

  /** torchvision's MLPBlock / Swin MLP initialisation: xavier-uniform weights, N(0, 1e-6) biases. */
  initXavier(): this {
    for (const m of this.children()) {
      if (m instanceof Linear) {
        xavierUniform_(m.weight);
        if (m.bias) m.bias.normal_(0, 1e-6);
      }
    }
    return this;
  }
}

// ---------------------------------------------------------------------------------------------
// MultiheadAttention

export interface MultiheadAttentionOptions {
  /** Dropout on the attention weights, in training only (torch's `dropout`). */
  dropout?: number;
  bias?: boolean;
  /** Inputs are [batch, sequence, embed] (true, torchvision's ViT) or [sequence, batch, embed]. */
  batchFirst?: boolean;
}

/**
 * torch.nn.MultiheadAttention used as self-attention (query = key = value), the way torchvision's
 * ViT calls it: parameters `in_proj_weight` [3E, E], `in_proj_bias` [3E], `out_proj.{weight,bias}`.
 * Returns the attended values only (need_weights=False).
 *
 * Like torch, inference with no gradient to record (eval mode, no attention dropout, an even
 * number of heads) runs libtorch's fused `_native_multi_head_attention`; otherwise the same math
 * runs as separate ops: q/√d · kᵀ, softmax, dropout, · v, output projection. The output
 * projection is called as a module on that path, so hooks or a delta method wrapping `out_proj`
 * take effect (the fused path is then skipped).
 */
export class MultiheadAttention extends Module {
  declare in_proj_weight: Parameter;
  declare in_proj_bias: Parameter | null;
  declare out_proj: Linear;
  readonly embedDim: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly dropout: number;
  readonly batchFirst: boolean;

  constructor(embedDim: number, numHeads: number, options: MultiheadAttentionOptions = {}) {
    super();
    this.embedDim = positiveInt(embedDim, 'MultiheadAttention: embedDim');
    this.numHeads = positiveInt(numHeads, 'MultiheadAttention: numHeads');
    if (embedDim % numHeads !== 0) throw new RangeError(`MultiheadAttention: embedDim (${embedDim}) must be divisible by numHeads (${numHeads})`);
    this.headDim = embedDim / numHeads;
    this.dropout = probability(options.dropout ?? 0, 'MultiheadAttention: dropout');
    this.batchFirst = options.batchFirst ?? false;
    const bias = options.bias ?? true;
    const w = empty([3 * embedDim, embedDim]);
    xavierUniform_(w);
    this.in_proj_weight = new Parameter(w);
    this.registerParameter('in_proj_bias', bias ? constantParameter([3 * embedDim], 0) : null);
    this.out_proj = new Linear(embedDim, embedDim, { bias });
    if (this.out_proj.bias) zero_(this.out_proj.bias);
  }

  forward(x: Tensor): Tensor {
    if (x.ndim !== 3 || x.shape[2] !== this.embedDim) {
      const layout = this.batchFirst ? '[batch, sequence, embed]' : '[sequence, batch, embed]';
      throw new RangeError(`MultiheadAttention: expected a ${layout} input with embed = ${this.embedDim}, got shape ${shapeOf(x)}`);
    }
    const xb = this.batchFirst ? x : x.transpose(0, 1);
    const out = this.canFuse(xb) ? this.fused(xb) : this.unfused(xb);
    return this.batchFirst ? out : out.transpose(0, 1);
  }

  // torch's fast-path conditions (MultiheadAttention.forward, torch 1.13) for self-attention.
  private canFuse(x: Tensor): boolean {
    if (this.training || this.dropout > 0 || this.numHeads % 2 === 1 || !this.in_proj_bias || !isPlainLinear(this.out_proj)) return false;
    if (this.hasMember(SLOTS.inProjDelta)) return false;
    const op = this.out_proj;
    if (!op.bias || x.dtype !== this.in_proj_weight.dtype) return false;
    if (!isGradEnabled()) return true;
    return ![x, this.in_proj_weight, this.in_proj_bias, op.weight, op.bias].some((t) => t.requiresGrad);
  }

  private fused(x: Tensor): Tensor {
    const op = this.out_proj;
    const [out, weights] = callOp('aten::_native_multi_head_attention', [
      x, x, x, this.embedDim, this.numHeads, this.in_proj_weight, this.in_proj_bias, op.weight, op.bias, null, false, true, null,
    ]) as [Tensor, Tensor | null];
    weights?.dispose();
    return out;
  }

  private unfused(x: Tensor): Tensor {
    const [B, L] = x.shape as [number, number, number];
    const { numHeads: H, headDim: D, embedDim: E } = this;
    // [B, L, 3E] → [3, B, H, L, D]: views, no copy until the matmuls.
    let packed = linear(x, this.in_proj_weight, this.in_proj_bias);
    // The optional slot added to the packed projection ([.., 3E] from x): LoRA on q and v.
    const inProjDelta = this.getChild<Module<[Tensor], Tensor>>(SLOTS.inProjDelta);
    if (inProjDelta) {
      const delta = inProjDelta.call(x);
      packed = packed.add_(delta);
      release(delta);
    }
    const heads = packed.view([B, L, 3, H, D]).permute([2, 0, 3, 1, 4]);
    const q = heads.select(0, 0).div(Math.sqrt(D));
    const k = heads.select(0, 1);
    const v = heads.select(0, 2);
    let attn = softmax(matmul(q, k.transpose(-2, -1)), -1);
    if (this.training && this.dropout > 0) attn = dropout(attn, this.dropout, true);
    const ctx = matmul(attn, v).transpose(1, 2).reshape([B, L, E]);
    return this.out_proj.call(ctx);
  }

  override extraRepr(): string {
    return `embed=${this.embedDim}, heads=${this.numHeads}${this.dropout ? `, dropout=${this.dropout}` : ''}${this.batchFirst ? ', batchFirst' : ''}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Swin: shifted-window attention and patch merging

/**
 * For each pair of positions in a wh×ww window, the row of the relative-position bias table
 * (2wh−1)(2ww−1) that holds their bias: torchvision's `relative_position_index` (int64, [N·N]).
 */
export function relativePositionIndex(wh: number, ww: number): Tensor {
  const n = wh * ww;
  const out = new BigInt64Array(n * n);
  for (let i = 0; i < n; i++) {
    const hi = Math.floor(i / ww);
    const wi = i % ww;
    for (let j = 0; j < n; j++) {
      const hj = Math.floor(j / ww);
      const wj = j % ww;
      out[i * n + j] = BigInt((hi - hj + wh - 1) * (2 * ww - 1) + (wi - wj + ww - 1));
    }
  }
  return tensor(out, { shape: [n * n] });
}

/** Python's slice(start, end) on a length-`len` axis, as [from, to). */
function pySlice(start: number, end: number | null, len: number): [number, number] {
  // -0 (from negating a zero shift) is Python's 0: `v < 0` is false for it.
  const norm = (v: number) => Math.min(len, Math.max(0, v < 0 ? v + len : v));
  return [norm(start), end === null ? len : norm(end)];
}

/**
 * The shifted-window attention mask [nW, 1, N, N]: 0 between positions of the same region of the
 * cyclically shifted map, −100 across regions (torchvision's construction, slice for slice).
 */
function shiftedWindowMask(pH: number, pW: number, wh: number, ww: number, sh: number, sw: number): Tensor {
  const label = new Int32Array(pH * pW);
  const hSlices: [number, number | null][] = [[0, -wh], [-wh, -sh], [-sh, null]];
  const wSlices: [number, number | null][] = [[0, -ww], [-ww, -sw], [-sw, null]];
  let count = 0;
  for (const [h0, h1] of hSlices) {
    for (const [w0, w1] of wSlices) {
      const [r0, r1] = pySlice(h0, h1, pH);
      const [c0, c1] = pySlice(w0, w1, pW);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) label[r * pW + c] = count;
      count++;
    }
  }
  const nh = pH / wh;
  const nw = pW / ww;
  const n = wh * ww;
  const mask = new Float32Array(nh * nw * n * n);
  const win = new Int32Array(n);
  for (let a = 0; a < nh; a++) {
    for (let b = 0; b < nw; b++) {
      for (let i = 0; i < n; i++) win[i] = label[(a * wh + Math.floor(i / ww)) * pW + b * ww + (i % ww)]!;
      const base = (a * nw + b) * n * n;
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) mask[base + i * n + j] = win[i] === win[j] ? 0 : -100;
    }
  }
  return tensor(mask, { shape: [nh * nw, 1, n, n] });
}

export interface ShiftedWindowAttentionOptions {
  qkvBias?: boolean;
  projBias?: boolean;
  /** Dropout on the attention weights (training only). */
  attentionDropout?: number;
  /** Dropout on the output (training only). */
  dropout?: number;
}

/**
 * torchvision's ShiftedWindowAttention (Swin v1 W-MSA / SW-MSA) on NHWC maps [B, H, W, C]:
 * pads H, W to multiples of the window, cyclically shifts by `shiftSize` (unless the window covers
 * the whole map), attends within each window with a learned relative-position bias, and undoes
 * shift and padding. Parameters: `qkv`, `proj`, `relative_position_bias_table`; persistent buffer
 * `relative_position_index` (as torchvision registers it).
 *
 * The shifted-window mask is a pure function of the padded map size, so it is cached in the
 * non-persistent buffer `attn_mask` (never in the state dict; freed with the module). Bias and mask
 * are summed first ([nW, heads, N, N], small) so the large attention tensor takes one addition.
 * Unlike torchvision 0.14, whose functional form applies attention dropout even in eval mode,
 * dropouts here act only in training (torchvision's defaults are 0, where the two agree).
 */
export class ShiftedWindowAttention extends Module {
  declare qkv: Linear;
  declare proj: Linear;
  declare relative_position_bias_table: Parameter;
  declare relative_position_index: Tensor;
  declare attn_mask: Tensor | null;
  readonly dim: number;
  readonly windowSize: [number, number];
  readonly shiftSize: [number, number];
  readonly numHeads: number;
  readonly attentionDropout: number;
  readonly dropout: number;
  /** @internal (padded H, padded W, shift, dtype, device) the cached mask was made for */
  maskKey = '';

  constructor(dim: number, windowSize: readonly [number, number], shiftSize: readonly [number, number], numHeads: number, options: ShiftedWindowAttentionOptions = {}) {
    super();
    if (windowSize.length !== 2 || shiftSize.length !== 2) throw new RangeError('ShiftedWindowAttention: windowSize and shiftSize must be of length 2');
    this.dim = positiveInt(dim, 'ShiftedWindowAttention: dim');
    this.numHeads = positiveInt(numHeads, 'ShiftedWindowAttention: numHeads');
    if (dim % numHeads !== 0) throw new RangeError(`ShiftedWindowAttention: dim (${dim}) must be divisible by numHeads (${numHeads})`);
    this.windowSize = [positiveInt(windowSize[0], 'ShiftedWindowAttention: windowSize[0]'), positiveInt(windowSize[1], 'ShiftedWindowAttention: windowSize[1]')];
    shiftSize.forEach((s, i) => {
      if (!Number.isInteger(s) || s < 0 || s >= this.windowSize[i]!) throw new RangeError(`ShiftedWindowAttention: shiftSize[${i}] must be an integer in [0, ${this.windowSize[i]}), got ${s}`);
    });
    this.shiftSize = [shiftSize[0], shiftSize[1]];
    this.attentionDropout = probability(options.attentionDropout ?? 0, 'ShiftedWindowAttention: attentionDropout');
    this.dropout = probability(options.dropout ?? 0, 'ShiftedWindowAttention: dropout');
    this.qkv = new Linear(dim, 3 * dim, { bias: options.qkvBias ?? true });
    this.proj = new Linear(dim, dim, { bias: options.projBias ?? true });
    const [wh, ww] = this.windowSize;
    const table = empty([(2 * wh - 1) * (2 * ww - 1), numHeads]);
    truncNormal_(table, 0, 0.02);
    this.relative_position_bias_table = new Parameter(table);
    this.registerBuffer('relative_position_index', relativePositionIndex(wh, ww));
    this.registerBuffer('attn_mask', null, false);
  }

  /** The bias added to every window's attention logits: [1, heads, N, N]. */
  relativePositionBias(): Tensor {
    const n = this.windowSize[0] * this.windowSize[1];
    return indexSelect(this.relative_position_bias_table, 0, this.relative_position_index)
      .view([n, n, -1]).permute([2, 0, 1]).contiguous().unsqueeze(0);
  }

  private maskFor(x: Tensor, pH: number, pW: number, sh: number, sw: number): Tensor {
    const key = `${pH},${pW},${sh},${sw},${x.dtype},${x.device}`;
    if (this.attn_mask && this.maskKey === key) return this.attn_mask;
    const [wh, ww] = this.windowSize;
    const fresh = noGrad(() => {
      let m = shiftedWindowMask(pH, pW, wh, ww, sh, sw);
      for (const target of [x.dtype, x.device]) {
        const converted = m.to(target);
        if (converted !== m) m.dispose();
        m = converted;
      }
      return m;
    });
    const old = this.attn_mask;
    this.attn_mask = fresh;
    this.maskKey = key;
    old?.dispose();
    return fresh;
  }

  forward(x: Tensor): Tensor {
    if (x.ndim !== 4 || x.shape[3] !== this.dim) {
      throw new RangeError(`ShiftedWindowAttention: expected an NHWC map [B, H, W, ${this.dim}], got shape ${shapeOf(x)}`);
    }
    const [B, H, W, C] = x.shape as [number, number, number, number];
    const [wh, ww] = this.windowSize;
    const padR = (ww - (W % ww)) % ww;
    const padB = (wh - (H % wh)) % wh;
    let h = padR || padB ? pad(x, [0, 0, 0, padR, 0, padB]) : x;
    const pH = H + padB;
    const pW = W + padR;
    // A window that covers the whole map needs no shift.
    const sh = wh >= pH ? 0 : this.shiftSize[0];
    const sw = ww >= pW ? 0 : this.shiftSize[1];
    const shifted = sh + sw > 0;
    if (shifted) h = roll(h, [-sh, -sw], [1, 2]);

    // Partition into windows: [B·nW, N, C].
    const nh = pH / wh;
    const nw = pW / ww;
    const nW = nh * nw;
    const n = wh * ww;
    const heads = this.numHeads;
    const hd = C / heads;
    h = h.reshape([B, nh, wh, nw, ww, C]).permute([0, 1, 3, 2, 4, 5]).reshape([B * nW, n, C]);

    const qkv = this.qkv.call(h).reshape([B * nW, n, 3, heads, hd]).permute([2, 0, 3, 1, 4]);
    const q = qkv.select(0, 0).mul(hd ** -0.5);
    const k = qkv.select(0, 1);
    const v = qkv.select(0, 2);
    let attn = matmul(q, k.transpose(-2, -1)); // [B·nW, heads, N, N]
    const bias = this.relativePositionBias();
    if (shifted) {
      const biasMask = bias.add(this.maskFor(x, pH, pW, sh, sw)); // [nW, heads, N, N]
      attn = attn.reshape([B, nW, heads, n, n]).add(biasMask).view([B * nW, heads, n, n]);
    } else {
      attn = attn.add(bias);
    }
    attn = softmax(attn, -1);
    if (this.training && this.attentionDropout > 0) attn = dropout(attn, this.attentionDropout, true);

    let out = matmul(attn, v).transpose(1, 2).reshape([B * nW, n, C]);
    out = this.proj.call(out);
    if (this.training && this.dropout > 0) out = dropout(out, this.dropout, true);

    // Reverse the partition, the shift and the padding.
    out = out.reshape([B, nh, nw, wh, ww, C]).permute([0, 1, 3, 2, 4, 5]).reshape([B, pH, pW, C]);
    if (shifted) out = roll(out, [sh, sw], [1, 2]);
    if (padR || padB) out = out.narrow(1, 0, H).narrow(2, 0, W).contiguous();
    return out;
  }

  override extraRepr(): string {
    return `dim=${this.dim}, window=${this.windowSize.join('x')}, shift=${this.shiftSize.join('x')}, heads=${this.numHeads}`;
  }
}

/**
 * torchvision's Swin v1 PatchMerging on [..., H, W, C]: pads odd H/W with zeros, concatenates each
 * 2×2 neighbourhood's features in the order (0,0), (1,0), (0,1), (1,1) [row, column], then
 * `norm` (LayerNorm 4C) and `reduction` (Linear 4C → 2C, no bias). One reshape/permute copy
 * replaces torchvision's four strided slices and cat (same values, same order).
 */
export class PatchMerging extends Module {
  declare reduction: Linear;
  declare norm: LayerNorm;
  readonly dim: number;

  constructor(dim: number, options: { eps?: number } = {}) {
    super();
    this.dim = positiveInt(dim, 'PatchMerging: dim');
    // Registration order as torchvision's (reduction, then norm): it fixes the state-dict order.
    this.reduction = new Linear(4 * dim, 2 * dim, { bias: false });
    this.norm = new LayerNorm(4 * dim, { eps: options.eps ?? 1e-5 });
  }

  forward(x: Tensor): Tensor {
    if (x.ndim < 3 || x.shape.at(-1) !== this.dim) {
      throw new RangeError(`PatchMerging: expected a [..., H, W, ${this.dim}] map, got shape ${shapeOf(x)}`);
    }
    const lead = x.shape.slice(0, -3);
    let [H, W, C] = x.shape.slice(-3) as [number, number, number];
    let h = x.reshape([-1, H, W, C]);
    if (H % 2 || W % 2) {
      h = pad(h, [0, 0, 0, W % 2, 0, H % 2]);
      H += H % 2;
      W += W % 2;
    }
    const b = h.shape[0]!;
    h = h.reshape([b, H / 2, 2, W / 2, 2, C]).permute([0, 1, 3, 4, 2, 5]).reshape([...lead, H / 2, W / 2, 4 * C]);
    return this.reduction.call(this.norm.call(h));
  }

  override extraRepr(): string {
    return `dim=${this.dim}`;
  }
}
