// Filter-atom tuning (after Li et al., "Parameter-Efficient Fine-Tuning via Filter Atoms"): each
// k×k kernel is written as frozen channel coefficients × spatial atoms, W = α · D, with the atoms D
// the right singular vectors of the kernel matrix [out·in, k·k] (a complete basis, so α · D = W
// exactly). Only a change to the atoms, ΔD [k·k, k·k], trains — zero at init, so the model is
// unchanged — and the kernel used is α · (D + ΔD). Mergeable: the merged kernel replaces W.
import { Tensor, callOp, noGrad, tidy } from '../engine/index.js';
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/layers.js';
import { Parameter } from '../nn/parameter.js';
import { conv2d, zeros } from '../ops/index.js';
import type { VisionModel } from '../models/base.js';
import { excludeFrom, matchModules, option, registerMethod } from './core/index.js';

export class FilterAtoms extends Module {
  declare atom_delta: Parameter;
  declare coefficients: Tensor;
  declare atoms: Tensor;
  declare readonly conv: Conv2d;

  constructor(conv: Conv2d) {
    super();
    // A reference, not a child: the conv belongs to the base model.
    Object.defineProperty(this, 'conv', { value: conv, enumerable: false });
    const [kh, kw] = conv.kernelSize;
    const k2 = kh * kw;
    // tidy frees every intermediate (the detach and reshape views included); the two results are kept.
    const { coefficients, atoms } = tidy(() =>
      noGrad(() => {
        // In float64, so that α · D reproduces W to float32 rounding.
        const w2d = conv.weight.detach().reshape([-1, k2]).to('float64');
        const [, , vh] = callOp('aten::linalg_svd', [w2d, false]) as [Tensor, Tensor, Tensor];
        // W = (W Dᵀ) D for orthonormal D = Vh (k² × k²).
        const coeff = w2d.matmul(vh.transpose(0, 1));
        const dtype = conv.weight.dtype;
        return { coefficients: coeff.to(dtype), atoms: vh.to(dtype) };
      }),
    );
    // Derived from the base weights at install: not saved, recomputed when a delta is loaded.
    this.registerBuffer('coefficients', coefficients, false);
    this.registerBuffer('atoms', atoms, false);
    this.atom_delta = new Parameter(zeros([k2, k2]));
  }

  /** The kernel α · (D + ΔD) in the conv's weight shape. */
  kernel(): Tensor {
    const atoms = this.atoms.add(this.atom_delta);
    const w = this.coefficients.matmul(atoms).view([...this.conv.weight.shape]);
    atoms.dispose();
    return w;
  }

  forward(x: Tensor): Tensor {
    const w = this.kernel();
    const out = conv2d(x, w, this.conv.bias, this.conv.options);
    w.dispose();
    return out;
  }
}

registerMethod<{ targets: string | string[] | null; exclude: string | string[] | null }>({
  name: 'filter-atom',
  description: 'filter-atom tuning: a zero-initialised change to the spatial atoms of each k×k convolution (mergeable)',
  kinds: ['cnn'],
  identityAtInit: true,
  defaultLr: 2e-3,
  options: {
    targets: option.targets<string | string[] | null>('convolutions to tune (k×k, k > 1)', null, 'every k×k convolution but the first'),
    exclude: option.exclude(),
  },
  install(model: VisionModel, config, b) {
    const candidates = config.targets === null ? [...model.namedModules()] : matchModules(model, config.targets, 'filter-atom');
    const eligible = candidates.filter(([name, m]) => {
      if (!(m instanceof Conv2d) || (m.kernelSize[0] === 1 && m.kernelSize[1] === 1)) return false;
      return config.targets !== null || name !== model.config.firstConv;
    }) as [string, Conv2d][];
    if (eligible.length === 0) throw new Error(`filter-atom: ${model.config.name} has no k×k (k > 1) convolution to tune; it applies to CNNs`);
    for (const [name, m] of excludeFrom(eligible, config.exclude, 'filter-atom') as [string, Conv2d][]) {
      const fa = new FilterAtoms(m);
      b.addModule(name, 'filter_atoms', fa);
      // The convolution runs with the kernel rebuilt from its atoms while the delta is attached.
      b.replaceForward(name, (x: Tensor) => fa.forward(x));
    }
  },
  merge(_model, _config, delta) {
    for (const [, module] of delta.addedModules) {
      if (!(module instanceof FilterAtoms)) continue;
      const w = module.kernel();
      module.conv.weight.copy_(w);
      w.dispose();
    }
  },
});
