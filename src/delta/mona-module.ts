// Mona ("Multi-cognitive visual adapter"): the module itself, as the spec (docs/mona.md §1) and the
// authors' released code define it. Paper: Yin et al., "5%>100%: Breaking Performance Shackles of
// Full Fine-Tuning on Visual Recognition Tasks" (CVPR 2025, arXiv 2408.08345; earlier 2311.15010).
//
//   u = LN(x)·s1 + x·s2                     scaled LayerNorm (s1 = `gamma`, s2 = `gammax`)
//   z = project1(u)                         Linear C → d
//   a = Z + mean_k DWConv_k(Z)              `adapter_conv` (MonaOp) on Z = z as a [B,d,H,W] map
//   p = a + projector(a)                    1×1 conv d → d
//   out = x + project2(Dropout(GELU(p)))    Linear d → C
//
// Attribute names follow the reference code (Mona: project1, project2, dropout, adapter_conv, norm,
// gamma, gammax; MonaOp: conv1, conv2, conv3, projector), so one module's state-dict keys are
//   gamma, gammax, project1.weight, project1.bias, project2.weight, project2.bias,
//   adapter_conv.conv1.weight, adapter_conv.conv1.bias, ... adapter_conv.conv3.bias,
//   adapter_conv.projector.weight, adapter_conv.projector.bias, norm.weight, norm.bias
// (the reference's order). Generalisations and deviations:
//  - `kernels` generalises the fixed 3/5/7: one depthwise conv per listed size, named conv1..convN in
//    list order (the reference hard-codes three).
//  - `hidden` generalises the reference's fixed 64.
//  - `scaledNorm: false` drops the scaled LayerNorm: u = x and there are NO norm/gamma/gammax
//    parameters at all (the ablation's "without the scaled LayerNorm").
//  - Computation (not parameters) differs from the reference's literal code, with the same math:
//    s1 is folded into the LayerNorm affine (LN(x)·s1 = x̂·(w·s1) + b·s1, so the LN output is not
//    kept for backward), the projections run as 1×1 convs over the channels-last map (below), and
//    with `merged` the depthwise convs and both inner residuals run as two convs (see MonaOp).
//
// Two forms share the parameters (identical names and shapes, so a sequence-form module's state
// dict loads into a map-form one and back):
//  - Mona: tokens [B,N,C] with the map size [H,W] (Swin/ViT), or an NHWC map [B,H,W,C] (torchvision's
//    Swin keeps stage maps NHWC). `skipTokens` passes leading tokens (ViT's class token) through.
//  - MonaMap: an NCHW map [B,C,H,W] (CNNs); output NCHW-contiguous like the input.
// Both run the same branch on the NHWC view of the map (a free permute/view): layer_norm over the
// contiguous channel axis, then the projections as 1×1 convs over the channels-last map with the
// Linear weights viewed as [out,in,1,1] (measured faster than the GEMM on the token matrix, and
// faster than an NCHW channel-LN by mean/variance plus NCHW 1×1 convs). So project1/project2 are
// Linear layers (weights [d,C] and [C,d], as the reference), never conv weights [d,C,1,1]; the
// element counts equal a 1×1-conv formulation's, and the keys are the same in both forms.
//
// Memory: each forward releases its temporaries at once (nn/release); what autograd keeps per
// module is x (shared with the caller), u [..,C], and z, a, p, the dropout mask and h [..,d] — the
// LayerNorm output, the conv outputs of the plain path and the residual sums are not kept.
import type { Tensor } from '../engine/index.js';
import { Module } from '../nn/module.js';
import { Parameter } from '../nn/parameter.js';
import { Conv2d, Dropout, LayerNorm, Linear } from '../nn/layers.js';
import { constantParameter, shouldInitialise } from '../nn/init.js';
import { release } from '../nn/release.js';
import { add, cat, conv2d, eye, gelu, layerNorm, monaFoldedProject, pad, stack, tensor, truncNormal_, vectorNorm, zero_ } from '../ops/index.js';
import { noGrad } from '../engine/index.js';

// --- configuration -------------------------------------------------------------------------------

export const MONA_DEFAULT_KERNELS: readonly number[] = Object.freeze([3, 5, 7]);
export const MONA_DEFAULT_HIDDEN = 64;
/**
 * Whether MonaOp runs merged by default: merged is the faster form forward+backward, channels-last
 * (its layout inside Mona) and NCHW alike, and so is a whole Mona with it
 * (docs/performance.md#mona-merged-depthwise-kernels).
 */
export const MONA_DEFAULT_MERGED = true;

export interface MonaOpOptions {
  /** Depthwise kernel sizes: odd integers ≥ 1, repeats allowed (default [3, 5, 7]). */
  kernels?: readonly number[];
  /**
   * true: each step, build ONE depthwise kernel of size max(kernels) (the mean of the kernels
   * zero-padded to that size, plus 1 at the centre for the residual Z) and the mean of the biases,
   * run a single conv, then the 1×1 projector as one conv with weight W + I (its residual folded
   * in). false: the reference's literal computation (one conv per kernel, mean, add; 1×1 conv, add).
   * Same outputs and gradients to float32 rounding; merged is faster forward+backward (one conv
   * instead of one per kernel; docs/performance.md#mona-merged-depthwise-kernels).
   * In merged mode the conv submodules' weights are used directly (their forward hooks do not run).
   */
  merged?: boolean;
}

export interface MonaOptions extends MonaOpOptions {
  /** Hidden width d (default 64). */
  hidden?: number;
  /** The scaled LayerNorm u = LN(x)·s1 + x·s2 (default true); false: u = x, no norm/gamma/gammax. */
  scaledNorm?: boolean;
  /** Dropout after GELU, in training (default 0.1). */
  dropout?: number;
  /** LayerNorm epsilon (default 1e-5, nn.LayerNorm's, as the reference). */
  eps?: number;
  /**
   * Fold the scaled LayerNorm into project1 (see MonaBase.foldedProject1; same math): the C-wide
   * LayerNorm output is neither made nor kept, at the price of a 2d-wide instead of d-wide first
   * projection, so it pays where C is large against d. Default: for MonaMap, true when C ≥ 4d
   * (ResNet-50: a lower training peak than the literal form at the same speed, and faster in
   * NCHW), false below (MobileNetV2's 16–320 channels: the wider projection makes folded modules
   * slower); for Mona (tokens) false (Swin-T steps are slower folded: its first stage has
   * C = 96 < 2d). Figures: docs/performance.md#mona-folded-layernorm.
   */
  foldNorm?: boolean;
}

export interface MonaSequenceOptions extends MonaOptions {
  /** Leading tokens passed through unchanged (1 for ViT's class token, more with register tokens); default 0. */
  skipTokens?: number;
  /**
   * Map size [H, W] of the (non-skipped) tokens when `forward` is called without one. Without
   * either, a square map is assumed (and a non-square token count is an error).
   */
  grid?: readonly [number, number];
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

/** Validates a kernel list, naming every bad entry. */
export function checkKernels(kernels: unknown, who = 'Mona'): number[] {
  if (!Array.isArray(kernels) || kernels.length === 0) {
    throw new RangeError(`${who}: kernels must be a non-empty list of odd sizes ≥ 1 (e.g. [3, 5, 7]), got ${JSON.stringify(kernels)}`);
  }
  const problems: string[] = [];
  kernels.forEach((k, i) => {
    if (typeof k !== 'number' || !Number.isInteger(k)) problems.push(`kernels[${i}] = ${JSON.stringify(k)} is not an integer`);
    else if (k < 1) problems.push(`kernels[${i}] = ${k} is not ≥ 1`);
    else if (k % 2 === 0) problems.push(`kernels[${i}] = ${k} is even ('same' padding needs an odd size)`);
  });
  if (problems.length) throw new RangeError(`${who}: kernels must be odd integers ≥ 1; ${problems.join('; ')} (got [${kernels.join(', ')}])`);
  return [...(kernels as number[])];
}

function checkOptions(channels: number, o: MonaOptions, who: string): void {
  if (!isPositiveInt(channels)) throw new RangeError(`${who}: channels must be a positive integer, got ${String(channels)}`);
  if (o.hidden !== undefined && !isPositiveInt(o.hidden)) throw new RangeError(`${who}: hidden must be a positive integer, got ${String(o.hidden)}`);
  if (o.dropout !== undefined && !(typeof o.dropout === 'number' && o.dropout >= 0 && o.dropout < 1)) {
    throw new RangeError(`${who}: dropout must be in [0, 1), got ${String(o.dropout)}`);
  }
  if (o.eps !== undefined && !(typeof o.eps === 'number' && o.eps > 0)) throw new RangeError(`${who}: eps must be > 0, got ${String(o.eps)}`);
}

const shapeStr = (t: Tensor) => `[${t.shape.join(',')}]`;

// --- MonaOp --------------------------------------------------------------------------------------

/**
 * The multi-scale depthwise core on a [B,d,H,W] map: a = Z + mean_k DWConv_k(Z), p = a + Conv1x1(a).
 * Children conv1..convN (depthwise, weight [d,1,k,k], bias [d], PyTorch's default init) and
 * `projector` (1×1, weight [d,d,1,1], bias [d]).
 */
export class MonaOp extends Module {
  declare projector: Conv2d;
  readonly channels: number;
  readonly kernels: readonly number[];
  /** Runs the depthwise convs as one merged conv (see MonaOpOptions.merged); may be changed at any time. */
  merged: boolean;

  constructor(channels: number, options: MonaOpOptions = {}) {
    super();
    if (!isPositiveInt(channels)) throw new RangeError(`MonaOp: channels must be a positive integer, got ${String(channels)}`);
    this.channels = channels;
    this.kernels = Object.freeze(checkKernels(options.kernels ?? MONA_DEFAULT_KERNELS, 'MonaOp'));
    this.merged = options.merged ?? MONA_DEFAULT_MERGED;
    this.kernels.forEach((k, i) => {
      this.registerModule(`conv${i + 1}`, new Conv2d(channels, channels, k, { padding: (k - 1) / 2, groups: channels }));
    });
    this.projector = new Conv2d(channels, channels, 1);
  }

  /** The depthwise convs conv1..convN, in kernel-list order. */
  get convs(): Conv2d[] {
    return this.kernels.map((_, i) => this.getChild<Conv2d>(`conv${i + 1}`)!);
  }

  /**
   * The merged depthwise kernel [d,1,m,m] (m = max kernel) and bias [d]: the means of the kernels
   * zero-padded to m×m and of the biases, built with differentiable ops. With `identity`, 1 is added
   * at each kernel's centre, so one conv computes Z + mean_k DWConv_k(Z).
   */
  mergedKernel(options: { identity?: boolean } = {}): { weight: Tensor; bias: Tensor } {
    const convs = this.convs;
    const n = convs.length;
    const m = Math.max(...this.kernels);
    const padded = convs.map((c, i) => {
      const q = (m - this.kernels[i]!) / 2;
      return q > 0 ? pad(c.weight, [q, q, q, q]) : c.weight;
    });
    let sum: Tensor;
    if (n === 1) sum = padded[0]!;
    else {
      sum = padded[0]!.add(padded[1]!);
      for (let i = 2; i < n; i++) sum.add_(padded[i]!);
      release(...padded);
    }
    let weight: Tensor;
    if (options.identity) {
      const centre = new Float32Array(m * m);
      centre[(m * m - 1) / 2] = 1;
      const delta = tensor(centre, { shape: [1, 1, m, m], dtype: sum.dtype, device: sum.device });
      weight = add(delta, sum, 1 / n);
      release(delta);
    } else {
      weight = sum.mul(1 / n);
    }
    release(sum);
    const biases = convs.map((c) => c.bias!);
    let bias: Tensor;
    if (n === 1) bias = biases[0]!;
    else {
      const stacked = stack(biases, 0);
      bias = stacked.mean(0);
      release(stacked);
    }
    return { weight, bias };
  }

  forward(z: Tensor): Tensor {
    if (z.ndim !== 4 || z.size(1) !== this.channels) {
      throw new RangeError(`MonaOp: expected a [B,${this.channels},H,W] map, got shape ${shapeStr(z)}`);
    }
    const d = this.channels;
    let a: Tensor;
    if (this.merged) {
      // a = Z + mean_k DWConv_k(Z) as ONE depthwise conv: the identity is folded into the kernel.
      const { weight, bias } = this.mergedKernel({ identity: true });
      const m = weight.size(-1);
      a = conv2d(z, weight, bias, { padding: (m - 1) / 2, groups: d });
      release(weight, bias);
    } else {
      let sum: Tensor | null = null;
      for (const conv of this.convs) {
        const c = conv.call(z);
        if (sum === null) sum = c;
        else {
          sum.add_(c); // conv backward needs its input and weight, not its output
          release(c);
        }
      }
      a = add(z, sum!, 1 / this.kernels.length);
      release(sum);
    }
    // p = a + Conv1x1(a); merged: as one 1×1 conv with the identity folded into its weight.
    let p: Tensor;
    if (this.merged) {
      const id = eye(d, d, { dtype: a.dtype, device: a.device });
      const idMap = id.view([d, d, 1, 1]);
      const wp = this.projector.weight.add(idMap);
      release(id, idMap);
      p = conv2d(a, wp, this.projector.bias);
      release(wp);
    } else {
      p = this.projector.call(a).add_(a);
    }
    release(a);
    return p;
  }

  override extraRepr(): string {
    return `${this.channels}, kernels=[${this.kernels.join(',')}], merged=${this.merged}`;
  }
}

// --- Mona (shared parameters and branch) ------------------------------------------------------

/** Parameters and the residual branch shared by the sequence and map forms. */
export abstract class MonaBase<In extends unknown[]> extends Module<In, Tensor> {
  declare project1: Linear;
  declare project2: Linear;
  declare dropout: Dropout;
  declare adapter_conv: MonaOp;
  declare norm: LayerNorm | undefined;
  declare gamma: Parameter | undefined;
  declare gammax: Parameter | undefined;
  readonly channels: number;
  readonly hidden: number;
  readonly scaledNorm: boolean;
  /** Runs the scaled LayerNorm folded into project1 (MonaOptions.foldNorm); may be changed at any time. */
  foldNorm: boolean;

  constructor(channels: number, options: MonaOptions, who: string, foldByDefault: boolean) {
    super();
    checkOptions(channels, options, who);
    const d = options.hidden ?? MONA_DEFAULT_HIDDEN;
    const kernels = checkKernels(options.kernels ?? MONA_DEFAULT_KERNELS, who);
    this.channels = channels;
    this.hidden = d;
    this.scaledNorm = options.scaledNorm ?? true;
    this.foldNorm = options.foldNorm ?? foldByDefault;
    // Registration order = the reference's, so state-dict keys come out in its order.
    this.project1 = new Linear(channels, d);
    this.project2 = new Linear(d, channels);
    this.dropout = new Dropout(options.dropout ?? 0.1);
    this.adapter_conv = new MonaOp(d, { kernels, merged: options.merged });
    if (this.scaledNorm) {
      this.norm = new LayerNorm(channels, { eps: options.eps ?? 1e-5 });
      this.gamma = constantParameter([channels], 1e-6);
      this.gammax = constantParameter([channels], 1);
    }
    if (shouldInitialise()) {
      for (const lin of [this.project1, this.project2]) {
        truncNormal_(lin.weight, 0, 0.02);
        zero_(lin.bias!);
      }
    }
  }

  /** Whether the depthwise convs run merged (forwards to adapter_conv.merged). */
  get merged(): boolean {
    return this.adapter_conv.merged;
  }
  set merged(flag: boolean) {
    this.adapter_conv.merged = flag;
  }

  /**
   * project2(Dropout(GELU(MonaOp(project1(u))))) for an NHWC map `x` [B,H,W,C] (any strides).
   * Returns [B,C,H,W] (channels-last strides when libtorch's oneDNN convs ran, so its NHWC permute
   * is contiguous).
   */
  protected branch(x: Tensor): Tensor {
    const c = this.channels;
    const d = this.hidden;
    const z = (this.foldNorm && this.scaledNorm ? this.foldedProject1(x) : null) ?? this.literalProject1(x);
    const p = this.adapter_conv.call(z);
    release(z);
    // GELU and dropout on the NHWC view when p is channels-last: element-wise kernels run several
    // times faster over memory in order (docs/performance.md#mona-element-wise-ops-and-sums).
    const nhwc = p.isContiguous('channelsLast');
    const pView = nhwc ? p.permute([0, 2, 3, 1]) : p;
    const g = gelu(pView);
    release(pView);
    if (pView !== p) release(p);
    const dropped = this.dropout.call(g);
    if (dropped !== g) release(g);
    const h = nhwc ? dropped.permute([0, 3, 1, 2]) : dropped;
    if (h !== dropped) release(dropped);
    const w2 = this.project2.weight.view([c, d, 1, 1]);
    const out = conv2d(h, w2, this.project2.bias);
    release(h, w2);
    return out;
  }

  /** z = project1(LN(x)·s1 + x·s2) as written, for an NHWC map x; z is a [B,d,H,W] map. */
  private literalProject1(x: Tensor): Tensor {
    const c = this.channels;
    const d = this.hidden;
    let u = x;
    if (this.scaledNorm) {
      // LN(x)·s1 = x̂·(w·s1) + b·s1: layer_norm's backward recomputes x̂ from x, so the LN output
      // is never stored; then u += x·s2 in place (layer_norm does not need its output).
      const norm = this.norm!;
      const lw = norm.weight!.mul(this.gamma!);
      const lb = norm.bias!.mul(this.gamma!);
      u = layerNorm(x, [c], lw, lb, norm.eps).addcmul_(x, this.gammax!);
      release(lw, lb);
    }
    // The projections run as 1×1 convs on the channels-last map, with the Linear weights viewed
    // as [out,in,1,1]: oneDNN runs them faster than the same GEMM on the token matrix, and every
    // layout change (tokens ↔ NHWC ↔ channels-last NCHW) is a free view.
    const uMap = u.permute([0, 3, 1, 2]);
    if (u !== x) release(u);
    const w1 = this.project1.weight.view([d, c, 1, 1]);
    const z = conv2d(uMap, w1, this.project1.bias);
    release(uMap, w1);
    return z;
  }

  /**
   * The same z with the scaled LayerNorm folded into project1, so no C-wide tensor is made or kept
   * (x itself is what backward keeps). With x̂ = (x − μ)·ρ (μ, ρ = 1/√(σ²+eps) per position),
   * a = w·s1 and W = project1.weight:
   *   W(x̂·a + b·s1 + x·s2) + b1 = ρ·(W·diag(a)x − μ·W·a) + W·diag(s2)x + (W(b·s1) + b1)
   * so ONE 1×1 conv of x with the 2d stacked weights [W·diag(a); W·diag(s2)] plus per-position
   * scalars gives z (the native op mona_folded_project, whose backward differentiates through μ
   * and σ²). The stacked weights, W·a and the shift are built from the parameters with
   * differentiable ops each step.
   */
  private foldedProject1(x: Tensor): Tensor | null {
    const c = this.channels;
    const d = this.hidden;
    const norm = this.norm!;
    const stats = noGrad(() => {
      // Per position: μ = mean(x), σ² = ‖x‖²/C − μ² (two fast reductions; libtorch's var_mean over
      // the channel axis is far slower here: docs/performance.md#mona-folded-layernorm).
      const mu = x.mean([-1], { keepdim: true }); // [B,H,W,1]
      const l2 = vectorNorm(x, 2, -1, { keepdim: true });
      const muSquare = mu.square();
      const v = l2.mul_(l2).div_(c).sub_(muSquare);
      // σ² as a difference loses precision when |μ| ≫ σ: past |μ| = 100σ (a relative error in σ²
      // above ~1e-3 in float32), use the LayerNorm as written for this call.
      const excess = muSquare.sub(v, 1e4); // μ² − 10⁴·σ² ≥ 0 somewhere
      const worst = excess.max();
      const imprecise = worst.item() >= 0;
      release(muSquare, excess, worst); // v is l2, updated in place
      if (imprecise) {
        release(mu, v);
        return null;
      }
      const meanMap = mu.permute([0, 3, 1, 2]); // [B,1,H,W]
      const varMap = v.permute([0, 3, 1, 2]);
      release(mu, v);
      return { meanMap, varMap };
    });
    if (!stats) return null;
    const w = this.project1.weight;
    const a = norm.weight!.mul(this.gamma!);
    const wa = w.mul(a);
    const ws = w.mul(this.gammax!);
    const stacked = cat([wa, ws], 0);
    const wcat = stacked.view([2 * d, c, 1, 1]);
    const rowSums = wa.sum(1);
    const bs = norm.bias!.mul(this.gamma!);
    const wbs = w.mul(bs);
    const shift = wbs.sum(1).add_(this.project1.bias!);
    release(a, wa, ws, stacked, bs, wbs);
    const xMap = x.permute([0, 3, 1, 2]);
    const z = monaFoldedProject(xMap, wcat, rowSums, shift, stats.meanMap, stats.varMap, norm.eps);
    release(xMap, wcat, rowSums, shift, stats.meanMap, stats.varMap);
    return z;
  }

  override extraRepr(): string {
    return `${this.channels}, hidden=${this.hidden}, kernels=[${this.adapter_conv.kernels.join(',')}], ` +
      `scaledNorm=${this.scaledNorm}, dropout=${this.dropout.p}, merged=${this.merged}`;
  }
}

// --- sequence / NHWC form ------------------------------------------------------------------------

/**
 * Mona on tokens (Swin, ViT). forward(x, hw?):
 *  - x [B,T,C]: tokens; the last T − skipTokens form an H×W map in row-major order. hw = [H, W]
 *    (else the `grid` option, else a square map). Leading skipped tokens pass through unchanged.
 *  - x [B,H,W,C]: an NHWC map (torchvision's Swin); hw is not needed (if given, it must match).
 * Returns the same shape as x.
 */
export class Mona extends MonaBase<[x: Tensor, hw?: readonly [number, number]]> {
  readonly skipTokens: number;
  readonly grid: readonly [number, number] | undefined;

  constructor(channels: number, options: MonaSequenceOptions = {}) {
    super(channels, options, 'Mona', false);
    const skip = options.skipTokens ?? 0;
    if (!(Number.isInteger(skip) && skip >= 0)) throw new RangeError(`Mona: skipTokens must be a non-negative integer, got ${String(skip)}`);
    if (options.grid !== undefined && !(Array.isArray(options.grid) && options.grid.length === 2 && options.grid.every(isPositiveInt))) {
      throw new RangeError(`Mona: grid must be [H, W] with positive integers, got ${JSON.stringify(options.grid)}`);
    }
    this.skipTokens = skip;
    this.grid = options.grid ? [options.grid[0], options.grid[1]] : undefined;
  }

  forward(x: Tensor, hw?: readonly [number, number]): Tensor {
    const c = this.channels;
    if ((x.ndim !== 3 && x.ndim !== 4) || x.size(-1) !== c) {
      throw new RangeError(`Mona: expected tokens [B,N,${c}] or an NHWC map [B,H,W,${c}], got shape ${shapeStr(x)}`);
    }
    if (x.ndim === 4) {
      const [, h, w] = x.shape as [number, number, number, number];
      if (hw && (hw[0] !== h || hw[1] !== w)) throw new RangeError(`Mona: hw [${hw.join(',')}] does not match the NHWC map ${shapeStr(x)}`);
      if (this.skipTokens) throw new RangeError(`Mona: skipTokens (${this.skipTokens}) needs token input [B,N,C], got an NHWC map ${shapeStr(x)}`);
      return this.addBranch(x, x);
    }
    const [b, t] = x.shape as [number, number, number];
    const s = this.skipTokens;
    const n = t - s;
    if (n <= 0) throw new RangeError(`Mona: ${t} tokens leave none after skipping ${s}`);
    const [h, w] = resolveGrid(hw ?? this.grid, n, s);
    const patches = s ? x.narrow(1, s, n) : x;
    const map = patches.reshape([b, h, w, c]); // a view, also of the narrowed tokens
    const out = this.addBranch(map, patches);
    release(map);
    if (!s) return out;
    const head = x.narrow(1, 0, s);
    const joined = cat([head, out], 1);
    release(head, patches, out);
    return joined;
  }

  /** residual + branch(map), shaped as `residual`. */
  private addBranch(map: Tensor, residual: Tensor): Tensor {
    const up = this.branch(map);
    const upNhwc = up.permute([0, 2, 3, 1]);
    release(up);
    // Out of place: an in-place add on this view would make backward copy the gradient (CopySlices),
    // and measured no faster; the projection output is freed right here either way.
    const shaped = upNhwc.reshape(residual.shape);
    const sum = residual.add(shaped);
    release(shaped, upNhwc);
    return sum;
  }
}

function resolveGrid(hw: readonly [number, number] | undefined, n: number, skip: number): [number, number] {
  const tokens = skip ? `${n} tokens (after skipping ${skip})` : `${n} tokens`;
  if (hw) {
    if (!(Array.isArray(hw) && hw.length === 2 && hw.every(isPositiveInt))) throw new RangeError(`Mona: hw must be [H, W] with positive integers, got ${JSON.stringify(hw)}`);
    if (hw[0] * hw[1] !== n) throw new RangeError(`Mona: hw [${hw.join(',')}] gives ${hw[0] * hw[1]} positions, but the input has ${tokens}`);
    return [hw[0], hw[1]];
  }
  const side = Math.round(Math.sqrt(n));
  if (side * side !== n) throw new RangeError(`Mona: ${tokens} do not form a square map; pass hw = [H, W] (or the grid option)`);
  return [side, side];
}

// --- map form (NCHW) -----------------------------------------------------------------------------

/**
 * Mona on an NCHW map [B,C,H,W] (CNNs): LayerNorm over channels at each pixel, projections over
 * channels. Same parameter names and shapes as Mona (project1/project2 are Linear layers); the
 * output is [B,C,H,W], contiguous like an NCHW input.
 */
export class MonaMap extends MonaBase<[x: Tensor]> {
  constructor(channels: number, options: MonaOptions = {}) {
    super(channels, options, 'MonaMap', channels >= 4 * (options.hidden ?? MONA_DEFAULT_HIDDEN));
  }

  forward(x: Tensor): Tensor {
    if (x.ndim !== 4 || x.size(1) !== this.channels) {
      throw new RangeError(`MonaMap: expected an NCHW map [B,${this.channels},H,W], got shape ${shapeStr(x)}`);
    }
    const nhwc = x.permute([0, 2, 3, 1]);
    const up = this.branch(nhwc);
    release(nhwc);
    // The sum must take x's memory format (NCHW-contiguous for an NCHW input). When the branch
    // output already has it (channels-last x), add x into it in place: the projection output is
    // not needed by backward, and an in-place add into a fresh buffer is faster than a new sum
    // (docs/performance.md#mona-element-wise-ops-and-sums).
    const sameLayout = x.isContiguous('channelsLast') ? up.isContiguous('channelsLast') : x.isContiguous() && up.isContiguous();
    if (sameLayout) return up.add_(x);
    const out = x.add(up);
    release(up);
    return out;
  }
}

/** Parameter elements of one module: 2C(LN) + 2C(s1,s2) + 2dC + d + C + d·Σk² + n·d + d² + d. */
export function monaParameterCount(channels: number, options: Pick<MonaOptions, 'hidden' | 'kernels' | 'scaledNorm'> = {}): number {
  const d = options.hidden ?? MONA_DEFAULT_HIDDEN;
  const kernels = checkKernels(options.kernels ?? MONA_DEFAULT_KERNELS);
  const norm = options.scaledNorm === false ? 0 : 4 * channels;
  const dw = kernels.reduce((s, k) => s + d * k * k + d, 0);
  return norm + 2 * d * channels + d + channels + dw + d * d + d;
}

