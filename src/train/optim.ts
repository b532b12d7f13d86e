// Optimizers with PyTorch's update rules (torch.optim.AdamW in its foreach form, SGD), built on
// in-place ops under noGrad so parameters stay the same leaf tensors.
import { Tensor, noGrad, tidy, keep } from '../engine/index.js';
import { callOp } from '../engine/tensor.js';
import { zeros } from '../ops/creation.js';

export interface ParamGroup {
  params: Tensor[];
  /** Overrides the optimizer's weight decay for this group (0 for norms, biases, position tables). */
  weightDecay?: number;
  lr?: number;
}

function groupsOf(params: Tensor[] | ParamGroup[]): ParamGroup[] {
  if (params.length === 0) return [];
  return params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : (params as ParamGroup[]);
}

function checkTrainable(groups: ParamGroup[], what: string): void {
  for (const g of groups) {
    for (const p of g.params) {
      if (!p.requiresGrad) throw new TypeError(`${what}: parameter ${p} does not require grad; pass only trainable parameters`);
    }
  }
}

export abstract class Optimizer {
  readonly groups: ParamGroup[];
  lr: number;

  constructor(params: Tensor[] | ParamGroup[], lr: number, what: string) {
    if (!(lr >= 0)) throw new RangeError(`${what}: lr must be a non-negative number, got ${lr}`);
    this.groups = groupsOf(params);
    this.lr = lr;
    checkTrainable(this.groups, what);
  }

  /** Drops every parameter's gradient (set to none, as PyTorch 2's default). */
  zeroGrad(): void {
    for (const g of this.groups) for (const p of g.params) p.zeroGrad();
  }

  /** Applies one update from the parameters' current gradients; parameters without a gradient are skipped. */
  step(): void {
    noGrad(() => {
      for (const group of this.groups) {
        const params: Tensor[] = [];
        const grads: Tensor[] = [];
        for (const p of group.params) {
          const grad = p.grad;
          if (grad === null) continue;
          params.push(p);
          grads.push(grad);
        }
        try {
          this.updateGroup(params, grads, group.lr ?? this.lr, group);
        } finally {
          for (const g of grads) g.dispose();
        }
      }
    });
  }

  /** Updates a group's parameters that have gradients (grads[i] belongs to params[i]); runs under noGrad. */
  protected abstract updateGroup(params: Tensor[], grads: Tensor[], lr: number, group: ParamGroup): void;

  /** Parameters in group order: the index of each is its key in stateDict(). */
  protected orderedParams(): Tensor[] {
    return this.groups.flatMap((g) => g.params);
  }

  /**
   * The optimizer's state by parameter index (`<i>.<slot>`) plus per-parameter step counts, for
   * checkpoints that resume exactly. The tensors are the live state: copy before mutating.
   */
  abstract stateDict(): { tensors: Map<string, Tensor>; steps: Record<string, number> };

  /** Restores state written by stateDict() for the same parameters in the same order (values are copied). */
  abstract loadStateDict(state: { tensors: Map<string, Tensor>; steps: Record<string, number> }, source?: string): void;

  /** Frees the optimizer's state tensors. */
  abstract dispose(): void;
}

/** A copy of a loaded state tensor, checked against its parameter. */
function stateTensor(tensors: Map<string, Tensor>, key: string, like: Tensor, source: string): Tensor {
  const t = checkedState(tensors, key, like, source);
  return keep(noGrad(() => t.to(like.dtype).clone()));
}

function checkedState(tensors: Map<string, Tensor>, key: string, like: Tensor, source: string): Tensor {
  const t = tensors.get(key);
  if (!t) throw new Error(`${source}: optimizer state '${key}' is missing`);
  if (t.shape.join(',') !== like.shape.join(',')) {
    throw new Error(`${source}: optimizer state '${key}' has shape [${t.shape.join(',')}], the parameter has [${like.shape.join(',')}]`);
  }
  return t;
}

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

interface AdamState {
  step: number;
  /** Views into the group's flat moment buffers (see AdamW.#flatOf). */
  expAvg: Tensor;
  expAvgSq: Tensor;
}

/** A group's moments, one flat buffer each, in parameter order (each parameter's part in logical order). */
interface FlatMoments {
  expAvg: Tensor;
  expAvgSq: Tensor;
}

/** AdamW (decoupled weight decay), as torch.optim.AdamW with its defaults. */
export class AdamW extends Optimizer {
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly state = new Map<Tensor, AdamState>();
  readonly #flat = new Map<ParamGroup, FlatMoments>();

  constructor(params: Tensor[] | ParamGroup[], options: AdamWOptions = {}) {
    super(params, options.lr ?? 1e-3, 'AdamW');
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 1e-2;
    const [b1, b2] = this.betas;
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) throw new RangeError(`AdamW: betas must be in [0, 1), got [${this.betas.join(', ')}]`);
  }

  /**
   * torch.optim.AdamW's update, elementwise the same. When every tensor of the group has a gradient
   * and the same step count (the usual case), the update runs once over the whole group flattened:
   * libtorch 1.13's CPU _foreach_* ops loop over the tensors, and a scalar multiply costs five ops
   * per tensor there, so a delta of many small tensors (Mona: 66 on MobileNetV2) ran thousands of
   * tiny ops a step (docs/performance.md#adamw-over-a-flattened-group). Otherwise the stages run as
   * _foreach_* calls on the moment views, one call per step count.
   */
  protected updateGroup(params: Tensor[], grads: Tensor[], lr: number, group: ParamGroup): void {
    if (params.length === 0) return;
    const wd = group.weightDecay ?? this.weightDecay;
    const flat = this.#flatOf(group);
    const states = params.map((p) => this.state.get(p)!);
    for (const s of states) s.step += 1;
    const step = states[0]!.step;
    if (params.length === group.params.length && states.every((s) => s.step === step)) {
      tidy(() => this.#applyFlat(flat, params, grads, step, lr, wd));
      return;
    }
    const byStep = new Map<number, { params: Tensor[]; grads: Tensor[]; avgs: Tensor[]; squares: Tensor[] }>();
    params.forEach((p, i) => {
      const s = states[i]!;
      let bucket = byStep.get(s.step);
      if (!bucket) byStep.set(s.step, (bucket = { params: [], grads: [], avgs: [], squares: [] }));
      bucket.params.push(p);
      bucket.grads.push(grads[i]!);
      bucket.avgs.push(s.expAvg);
      bucket.squares.push(s.expAvgSq);
    });
    for (const [s, b] of byStep) tidy(() => this.#apply(b.params, b.grads, b.avgs, b.squares, s, lr, wd));
  }

  /** The group's flat moments, made (zeros, step 0) at its first update or state load. */
  #flatOf(group: ParamGroup): FlatMoments {
    let flat = this.#flat.get(group);
    if (flat) return flat;
    const dtype = group.params[0]!.dtype;
    const odd = group.params.find((p) => p.dtype !== dtype);
    if (odd) throw new TypeError(`AdamW: a parameter group mixes ${dtype} and ${odd.dtype} parameters; give each dtype its own group`);
    const total = group.params.reduce((n, p) => n + p.numel, 0);
    flat = { expAvg: keep(zeros([total], { dtype })), expAvgSq: keep(zeros([total], { dtype })) };
    const avgViews = keep(callOp('aten::unflatten_dense_tensors', [flat.expAvg, group.params]) as Tensor[]);
    const squareViews = keep(callOp('aten::unflatten_dense_tensors', [flat.expAvgSq, group.params]) as Tensor[]);
    group.params.forEach((p, i) => this.state.set(p, { step: 0, expAvg: avgViews[i]!, expAvgSq: squareViews[i]! }));
    this.#flat.set(group, flat);
    return flat;
  }

  /** One update of a whole group as a few ops over flat copies; the parameters get the results back. */
  #applyFlat(flat: FlatMoments, params: Tensor[], grads: Tensor[], step: number, lr: number, wd: number): void {
    const [beta1, beta2] = this.betas;
    const g = callOp('aten::flatten_dense_tensors', [grads]) as Tensor;
    const p = callOp('aten::flatten_dense_tensors', [params]) as Tensor;
    if (wd !== 0) p.mul_(1 - lr * wd);
    flat.expAvg.mul_(beta1).add_(g, 1 - beta1);
    flat.expAvgSq.mul_(beta2);
    callOp('aten::addcmul_', [flat.expAvgSq, g, g, 1 - beta2]);
    const denom = flat.expAvgSq.sqrt().div_(Math.sqrt(1 - beta2 ** step)).add_(this.eps);
    callOp('aten::addcdiv_', [p, flat.expAvg, denom, -lr / (1 - beta1 ** step)]);
    // flatten_dense_tensors returns a lone contiguous tensor as a view of itself: updated in place already.
    if (p.sharesMemoryWith(params[0]!)) return;
    // Assigned as 0 + x, two foreach calls instead of a copy_ per tensor (exact but for the sign of zero).
    callOp('aten::_foreach_zero_', [params]);
    callOp('aten::_foreach_add_.List', [params, callOp('aten::unflatten_dense_tensors', [p, params]) as Tensor[], 1]);
  }

  /** The update of tensors that share a step count, each stage one native call over the lists. */
  #apply(params: Tensor[], grads: Tensor[], avgs: Tensor[], squares: Tensor[], step: number, lr: number, wd: number): void {
    const [beta1, beta2] = this.betas;
    if (wd !== 0) callOp('aten::_foreach_mul_.Scalar', [params, 1 - lr * wd]);
    callOp('aten::_foreach_mul_.Scalar', [avgs, beta1]);
    callOp('aten::_foreach_add_.List', [avgs, grads, 1 - beta1]);
    callOp('aten::_foreach_mul_.Scalar', [squares, beta2]);
    callOp('aten::_foreach_addcmul_.Scalar', [squares, grads, grads, 1 - beta2]);
    const biasCorrection1 = 1 - beta1 ** step;
    const biasCorrection2Sqrt = Math.sqrt(1 - beta2 ** step);
    const denoms = callOp('aten::_foreach_sqrt', [squares]) as Tensor[];
    callOp('aten::_foreach_div_.Scalar', [denoms, biasCorrection2Sqrt]);
    callOp('aten::_foreach_add_.Scalar', [denoms, this.eps]);
    callOp('aten::_foreach_addcdiv_.Scalar', [params, avgs, denoms, -lr / biasCorrection1]);
  }

  stateDict(): { tensors: Map<string, Tensor>; steps: Record<string, number> } {
    const tensors = new Map<string, Tensor>();
    const steps: Record<string, number> = {};
    this.orderedParams().forEach((p, i) => {
      const s = this.state.get(p);
      if (!s || s.step === 0) return;
      tensors.set(`${i}.exp_avg`, s.expAvg);
      tensors.set(`${i}.exp_avg_sq`, s.expAvgSq);
      steps[i] = s.step;
    });
    return { tensors, steps };
  }

  loadStateDict(state: { tensors: Map<string, Tensor>; steps: Record<string, number> }, source = 'AdamW state'): void {
    const params = this.orderedParams();
    for (const key of Object.keys(state.steps)) {
      if (!(Number(key) < params.length)) throw new Error(`${source}: optimizer state for parameter ${key}, but only ${params.length} parameters train`);
    }
    // Checked in full before anything is overwritten.
    const loaded = params.map((p, i) => {
      const step = state.steps[i];
      if (step === undefined) return null;
      return { step, expAvg: checkedState(state.tensors, `${i}.exp_avg`, p, source), expAvgSq: checkedState(state.tensors, `${i}.exp_avg_sq`, p, source) };
    });
    this.dispose();
    for (const g of this.groups) if (g.params.length > 0) this.#flatOf(g);
    noGrad(() => {
      params.forEach((p, i) => {
        const from = loaded[i];
        if (!from) return;
        const s = this.state.get(p)!;
        s.step = from.step;
        s.expAvg.copy_(from.expAvg);
        s.expAvgSq.copy_(from.expAvgSq);
      });
    });
  }

  dispose(): void {
    for (const s of this.state.values()) {
      s.expAvg.dispose();
      s.expAvgSq.dispose();
    }
    this.state.clear();
    for (const f of this.#flat.values()) {
      f.expAvg.dispose();
      f.expAvgSq.dispose();
    }
    this.#flat.clear();
  }
}

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
}

/** Stochastic gradient descent with momentum and Nesterov, as torch.optim.SGD. */
export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;
  readonly state = new Map<Tensor, Tensor>();

  constructor(params: Tensor[] | ParamGroup[], options: SGDOptions) {
    super(params, options.lr, 'SGD');
    this.momentum = options.momentum ?? 0;
    this.dampening = options.dampening ?? 0;
    this.nesterov = options.nesterov ?? false;
    this.weightDecay = options.weightDecay ?? 0;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new RangeError('SGD: nesterov needs momentum > 0 and dampening 0');
    }
  }

  protected updateGroup(params: Tensor[], grads: Tensor[], lr: number, group: ParamGroup): void {
    params.forEach((p, i) => tidy(() => this.#update(p, grads[i]!, lr, group)));
  }

  #update(p: Tensor, grad: Tensor, lr: number, group: ParamGroup): void {
    const wd = group.weightDecay ?? this.weightDecay;
    let d = wd !== 0 ? grad.add(p, wd) : grad;
    if (this.momentum !== 0) {
      let buf = this.state.get(p);
      if (!buf) {
        buf = keep(d.clone());
        this.state.set(p, buf);
      } else {
        buf.mul_(this.momentum).add_(d, 1 - this.dampening);
      }
      d = this.nesterov ? d.add(buf, this.momentum) : buf;
    }
    p.add_(d, -lr);
  }

  stateDict(): { tensors: Map<string, Tensor>; steps: Record<string, number> } {
    const tensors = new Map<string, Tensor>();
    const steps: Record<string, number> = {};
    this.orderedParams().forEach((p, i) => {
      const buf = this.state.get(p);
      if (!buf) return;
      tensors.set(`${i}.momentum_buffer`, buf);
      steps[i] = 1;
    });
    return { tensors, steps };
  }

  loadStateDict(state: { tensors: Map<string, Tensor>; steps: Record<string, number> }, source = 'SGD state'): void {
    const params = this.orderedParams();
    for (const key of Object.keys(state.steps)) {
      if (!(Number(key) < params.length)) throw new Error(`${source}: optimizer state for parameter ${key}, but only ${params.length} parameters train`);
    }
    this.dispose();
    params.forEach((p, i) => {
      if (state.steps[i] === undefined) return;
      this.state.set(p, stateTensor(state.tensors, `${i}.momentum_buffer`, p, source));
    });
  }

  dispose(): void {
    for (const b of this.state.values()) b.dispose();
    this.state.clear();
  }
}
