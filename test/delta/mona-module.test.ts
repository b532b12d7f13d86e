// Mona module: parity with an independent PyTorch Mona (test/oracle/mona.py) for the token, NHWC,
// ViT (skipped class/register tokens) and NCHW forms, custom kernel lists and without the scaled
// LayerNorm — outputs and the gradients of the input and of every parameter, in both the plain and
// the merged depthwise computation; merged == plain; the spec's initialisation and parameter count;
// clear configuration and shape errors; no leaked tensor handles.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, memoryStats, noGrad, randn, tidy } from '../../src/index.js';
import {
  MONA_DEFAULT_MERGED, Mona, MonaMap, MonaOp, monaParameterCount, type MonaBase,
} from '../../src/delta/mona-module.js';
import { assertClose, fromOracle, runOracle, type OracleArray } from '../helpers.js';

interface OracleCase {
  name: string;
  channels: number;
  hidden: number;
  kernels: number[];
  scaledNorm: boolean;
  params: Record<string, OracleArray>;
  grads: Record<string, OracleArray>;
  x: OracleArray;
  g: OracleArray;
  out: OracleArray;
  dx: OracleArray;
  hw?: [number, number];
  skip?: number;
}
const oracle = runOracle<{ cases: OracleCase[] }>('mona');

// The module runs in float32; the oracle's values are exact (float64 from the same float32 inputs).
// Tolerance: 1e-5 relative, plus 1e-5 × the tensor's largest magnitude (at least 1) absolute.
// A plain 1e-5 absolute bound is not meaningful here: with random weights the gradients reach
// ~100, and PyTorch's own float32 result differs from float64 by up to ~3e-5 there (sums over
// tokens with cancellation), so an element near 0 in such a tensor carries that absolute rounding.
function close(actual: Tensor, expected: Tensor, what: string): void {
  const scale = Math.max(1, expected.abs().max().item());
  assertClose(actual, expected, { rtol: 1e-5, atol: 1e-5 * scale, what });
}

/** The oracle's attribute names → the module's (the reference code's) names. */
function ourName(ref: string): string {
  const dw = /^dw\.(\d+)\.(weight|bias)$/.exec(ref);
  if (dw) return `adapter_conv.conv${Number(dw[1]) + 1}.${dw[2]}`;
  const map: Record<string, string> = {
    'down.weight': 'project1.weight', 'down.bias': 'project1.bias', 'up.weight': 'project2.weight', 'up.bias': 'project2.bias',
    'pw.weight': 'adapter_conv.projector.weight', 'pw.bias': 'adapter_conv.projector.bias',
    'ln.weight': 'norm.weight', 'ln.bias': 'norm.bias', s1: 'gamma', s2: 'gammax',
  };
  const name = map[ref];
  if (!name) throw new Error(`unmapped oracle parameter ${ref}`);
  return name;
}

type AnyMona = MonaBase<any>;

function build(c: OracleCase, merged: boolean, foldNorm = false): { m: AnyMona; run: (m: AnyMona, x: Tensor) => Tensor } {
  const options = { hidden: c.hidden, kernels: c.kernels, scaledNorm: c.scaledNorm, merged, foldNorm };
  if (c.name.startsWith('nchw') || c.name === 'default-hidden') {
    return { m: new MonaMap(c.channels, options), run: (m, x) => (m as MonaMap).call(x) };
  }
  const m = new Mona(c.channels, { ...options, skipTokens: c.skip ?? 0 });
  // vit-cls gives no hw: its 16 patch tokens are taken as a 4×4 map.
  return { m, run: (mm, x) => (mm as Mona).call(x, c.hw) };
}

function loadOracle(m: AnyMona, c: OracleCase): void {
  const state = new Map(Object.entries(c.params).map(([k, v]) => [ourName(k), fromOracle(v)]));
  m.loadStateDict(state);
  state.forEach((t) => t.dispose());
}

for (const [merged, foldNorm] of [[false, false], [true, false], [true, true], [false, true]] as const) {
  const label = `${merged ? 'merged' : 'plain'}${foldNorm ? ', folded LayerNorm' : ''}`;
  test(`oracle parity (${label}): outputs and gradients of input and every parameter`, () => {
    for (const c of oracle.cases) {
      const { m, run } = build(c, merged, foldNorm);
      loadOracle(m, c);
      m.eval();
      tidy(() => {
        const x = fromOracle(c.x);
        x.requiresGrad = true;
        const out = run(m, x);
        close(out, fromOracle(c.out), `${c.name}: output`);
        out.mul(fromOracle(c.g)).sum().backward();
        close(x.grad!, fromOracle(c.dx), `${c.name}: input gradient`);
        const params = new Map(m.namedParameters());
        assert.equal(params.size, Object.keys(c.grads).length, `${c.name}: parameter count`);
        for (const [ref, g] of Object.entries(c.grads)) {
          close(params.get(ourName(ref))!.grad!, fromOracle(g), `${c.name}: grad of ${ourName(ref)}`);
        }
      });
      m.dispose();
    }
  });
}

test('merged and plain give the same outputs and gradients for several kernel sets', () => {
  for (const kernels of [[3, 5, 7], [1, 3], [5], [3, 3, 3], [7, 1, 5, 3], [1], [9, 3]]) {
    const m = new Mona(10, { hidden: 6, kernels, dropout: 0 });
    noGrad(() => {
      for (const p of m.parameters()) p.copy_(randn(p.shape).mul(0.5));
    });
    const x = randn([2, 7 * 8, 10]);
    const [plain, fused] = [false, true].map((merged) => {
      m.merged = merged;
      return tidy(() => {
        const xi = x.detach();
        xi.requiresGrad = true;
        m.zeroGrad();
        const out = m.call(xi, [7, 8]);
        out.mul(out).sum().backward();
        return [out, xi.grad!, ...m.parameters().map((p) => p.grad!)];
      });
    });
    const names = ['output', 'input grad', ...m.namedParameters().map(([k]) => `grad ${k}`)];
    plain!.forEach((t, i) => close(fused![i]!, t, `kernels [${kernels}]: ${names[i]}`));
    [...plain!, ...fused!, x].forEach((t) => t.dispose());
    m.dispose();
  }
});

test('folded LayerNorm: falls back to the LayerNorm as written where |mean| ≫ std (no precision lost)', () => {
  // σ² = E[x²] − μ² cancels when |μ| ≫ σ; past |μ| = 100σ the folded path must not be used.
  const m = new MonaMap(16, { hidden: 4, dropout: 0 });
  noGrad(() => {
    for (const p of m.parameters()) p.copy_(randn(p.shape).mul(0.3));
    m.norm!.weight!.add_(1);
  });
  for (const offset of [0, 5, 1000]) {
    tidy(() => {
      const x = randn([2, 16, 3, 3]).add(offset);
      const [written, folded] = [false, true].map((fold) => {
        m.foldNorm = fold;
        m.zeroGrad();
        const xi = x.detach();
        xi.requiresGrad = true;
        const out = m.call(xi);
        out.mul(out.detach().sub(x)).sum().backward();
        return [out.sub(x), xi.grad!, m.gamma!.grad!.clone()];
      });
      ['branch output', 'input grad', 'grad gamma'].forEach((what, i) => close(folded![i]!, written![i]!, `offset ${offset}: ${what}`));
    });
  }
  m.dispose();
});

test('merged kernel: the mean of the zero-padded kernels and of the biases', () => {
  const op = new MonaOp(4, { kernels: [1, 3, 5] });
  tidy(() => {
    const { weight, bias } = op.mergedKernel();
    assert.deepEqual([...weight.shape], [4, 1, 5, 5]);
    const [w1, w3, w5] = op.convs.map((c) => c.weight.toNumbers());
    const wm = weight.toNumbers();
    for (let ch = 0; ch < 4; ch++) {
      for (let i = 0; i < 5; i++) {
        for (let j = 0; j < 5; j++) {
          let expect = w5![ch * 25 + i * 5 + j]!;
          if (i >= 1 && i <= 3 && j >= 1 && j <= 3) expect += w3![ch * 9 + (i - 1) * 3 + (j - 1)]!;
          if (i === 2 && j === 2) expect += w1![ch]!;
          assert.ok(Math.abs(wm[ch * 25 + i * 5 + j]! - expect / 3) < 1e-7, `merged weight [${ch},${i},${j}]`);
        }
      }
    }
    const bs = op.convs.map((c) => c.bias!.toNumbers());
    assertClose(bias, bs[0]!.map((_, i) => (bs[0]![i]! + bs[1]![i]! + bs[2]![i]!) / 3), { atol: 1e-7 });
  });
  op.dispose();
});

test('state-dict keys follow the reference code; map and sequence forms share them', () => {
  const m = new Mona(8, { hidden: 4 });
  const keys = [...m.stateDict()].map(([k, t]) => `${k} [${t.shape.join(',')}]`);
  assert.deepEqual(keys, [
    'gamma [8]', 'gammax [8]', 'project1.weight [4,8]', 'project1.bias [4]', 'project2.weight [8,4]', 'project2.bias [8]',
    'adapter_conv.conv1.weight [4,1,3,3]', 'adapter_conv.conv1.bias [4]', 'adapter_conv.conv2.weight [4,1,5,5]', 'adapter_conv.conv2.bias [4]',
    'adapter_conv.conv3.weight [4,1,7,7]', 'adapter_conv.conv3.bias [4]', 'adapter_conv.projector.weight [4,4,1,1]', 'adapter_conv.projector.bias [4]',
    'norm.weight [8]', 'norm.bias [8]',
  ]);
  const bare = new Mona(8, { hidden: 4, kernels: [1, 3], scaledNorm: false });
  assert.deepEqual([...bare.stateDict().keys()], [
    'project1.weight', 'project1.bias', 'project2.weight', 'project2.bias', 'adapter_conv.conv1.weight', 'adapter_conv.conv1.bias',
    'adapter_conv.conv2.weight', 'adapter_conv.conv2.bias', 'adapter_conv.projector.weight', 'adapter_conv.projector.bias',
  ]);
  // The same weights give the same function in both forms.
  const map = new MonaMap(8, { hidden: 4 }).eval();
  m.eval();
  noGrad(() => {
    for (const p of m.parameters()) p.copy_(randn(p.shape));
  });
  map.loadStateDict(m.stateDict());
  tidy(() => {
    const x = randn([2, 8, 5, 3]);
    const viaMap = map.call(x);
    assert.ok(viaMap.isContiguous(), 'MonaMap keeps NCHW-contiguous output');
    const viaTokens = m.call(x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2]);
    close(viaMap, viaTokens, 'map form vs NHWC form');
  });
  [m, bare, map].forEach((mod) => mod.dispose());
});

test('initialisation follows the spec', () => {
  const c = 96;
  const m = new Mona(c);
  const values = (t: Tensor) => t.toNumbers();
  assert.ok(values(m.norm!.weight!).every((v) => v === 1) && values(m.norm!.bias!).every((v) => v === 0), 'LN weight 1, bias 0');
  assert.ok(values(m.gamma!).every((v) => Math.abs(v - 1e-6) < 1e-12), 's1 = 1e-6');
  assert.ok(values(m.gammax!).every((v) => v === 1), 's2 = 1');
  for (const lin of [m.project1, m.project2]) {
    assert.ok(values(lin.bias!).every((v) => v === 0), 'linear bias 0');
    const w = values(lin.weight);
    const sd = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
    assert.ok(Math.abs(sd - 0.02) < 0.002, `linear weight std ${sd} ≈ 0.02`);
    assert.ok(w.every((v) => Math.abs(v) <= 2), 'truncated');
    assert.ok(w.some((v) => v !== 0), 'the up-projection is not zero');
  }
  // PyTorch's Conv2d default: kaiming-uniform(a=√5) → |w| ≤ 1/√fan_in, bias |b| ≤ 1/√fan_in.
  for (const conv of [...m.adapter_conv.convs, m.adapter_conv.projector]) {
    const bound = 1 / Math.sqrt(conv.weight.shape.slice(1).reduce((a, b) => a * b, 1));
    const w = values(conv.weight);
    assert.ok(w.every((v) => Math.abs(v) <= bound) && Math.max(...w.map(Math.abs)) > 0.8 * bound, 'conv weight kaiming-uniform');
    assert.ok(values(conv.bias!).every((v) => Math.abs(v) <= bound), 'conv bias uniform');
  }
  assert.equal(m.dropout.p, 0.1);
  assert.equal(m.merged, MONA_DEFAULT_MERGED);
  assert.deepEqual(m.adapter_conv.kernels, [3, 5, 7]);
  assert.equal(m.hidden, 64);
  m.dispose();
  // The folded LayerNorm is the map form's default where C ≥ 4·hidden (as fast there, less memory),
  // not on thin maps nor in the token form.
  const mods = [new MonaMap(256), new MonaMap(255), new MonaMap(64, { hidden: 16 }), new Mona(512), new MonaMap(8, { foldNorm: true }), new MonaMap(512, { foldNorm: false })];
  assert.deepEqual(mods.map((m) => m.foldNorm), [true, false, true, false, true, false]);
  mods.forEach((m) => m.dispose());
});

test('parameter count: 133·C + 9728 per module (d = 64, K = [3,5,7]), both forms; Swin-L totals 5,267,712', () => {
  for (const c of [96, 128, 192, 256, 384, 768, 1536]) {
    for (const m of [new Mona(c), new MonaMap(c)]) {
      assert.equal(m.numParameters(), 133 * c + 9728, `${m.constructor.name}(${c})`);
      m.dispose();
    }
    assert.equal(monaParameterCount(c), 133 * c + 9728);
  }
  const swinL = [[2, 192], [2, 384], [18, 768], [2, 1536]].reduce((s, [depth, c]) => s + 2 * depth! * monaParameterCount(c!), 0);
  assert.equal(swinL, 5_267_712);
  for (const options of [{ hidden: 32, kernels: [1, 3] }, { kernels: [5], scaledNorm: false }, { hidden: 8, kernels: [3, 3, 3] }]) {
    const m = new MonaMap(40, options);
    assert.equal(m.numParameters(), monaParameterCount(40, options), JSON.stringify(options));
    m.dispose();
  }
  const bare = new Mona(40, { scaledNorm: false });
  assert.equal(bare.numParameters(), 133 * 40 + 9728 - 4 * 40, 'no scaled LayerNorm: no norm/gamma/gammax');
  assert.equal(bare.norm, undefined);
  bare.dispose();
});

test('bad configurations fail with clear errors', () => {
  const bad: [() => unknown, RegExp][] = [
    [() => new Mona(8, { kernels: [3, 4] }), /kernels\[1\] = 4 is even/],
    [() => new Mona(8, { kernels: [0, 3] }), /kernels\[0\] = 0 is not ≥ 1/],
    [() => new Mona(8, { kernels: [-3] }), /kernels\[0\] = -3 is not ≥ 1/],
    [() => new Mona(8, { kernels: [2.5, 6, -1] }), /kernels\[0\] = 2\.5 is not an integer; kernels\[1\] = 6 is even .*; kernels\[2\] = -1 is not ≥ 1/],
    [() => new Mona(8, { kernels: [] }), /kernels must be a non-empty list/],
    [() => new MonaMap(8, { hidden: 0 }), /MonaMap: hidden must be a positive integer, got 0/],
    [() => new Mona(8, { hidden: -4 }), /hidden must be a positive integer, got -4/],
    [() => new Mona(8, { hidden: 2.5 }), /hidden must be a positive integer/],
    [() => new Mona(0), /channels must be a positive integer/],
    [() => new Mona(8, { dropout: 1 }), /dropout must be in \[0, 1\)/],
    [() => new Mona(8, { skipTokens: -1 }), /skipTokens must be a non-negative integer/],
    [() => new MonaOp(8, { kernels: [3, 8] }), /MonaOp: kernels must be odd integers ≥ 1; kernels\[1\] = 8 is even/],
  ];
  for (const [fn, re] of bad) assert.throws(fn, re);
});

test('bad inputs fail with clear errors', () => {
  const m = new Mona(6, { hidden: 4 });
  const map = new MonaMap(6, { hidden: 4 });
  tidy(() => {
    assert.throws(() => m.call(randn([2, 12, 5]), [3, 4]), /Mona: expected tokens \[B,N,6\] or an NHWC map \[B,H,W,6\], got shape \[2,12,5\]/);
    assert.throws(() => m.call(randn([2, 12, 6]), [3, 5]), /hw \[3,5\] gives 15 positions, but the input has 12 tokens/);
    assert.throws(() => m.call(randn([2, 12, 6])), /12 tokens do not form a square map; pass hw/);
    assert.throws(() => m.call(randn([2, 3, 4, 6]), [4, 3]), /does not match the NHWC map/);
    assert.throws(() => map.call(randn([2, 3, 4, 6])), /MonaMap: expected an NCHW map \[B,6,H,W\], got shape \[2,3,4,6\]/);
    assert.throws(() => m.adapter_conv.call(randn([1, 3, 4, 4])), /MonaOp: expected a \[B,4,H,W\] map/);
    const grid = new Mona(6, { hidden: 4, skipTokens: 1, grid: [3, 4] });
    assert.deepEqual([...grid.call(randn([2, 13, 6])).shape], [2, 13, 6], 'grid option gives hw');
    grid.dispose();
  });
  m.dispose();
  map.dispose();
});

test('dropout acts only in training; the class token passes through untouched', () => {
  const m = new Mona(6, { hidden: 4, skipTokens: 1 });
  tidy(() => {
    const x = randn([3, 1 + 9, 6]);
    m.train();
    const a = m.call(x);
    const b = m.call(x);
    assert.ok(a.sub(b).abs().max().item() > 0, 'dropout 0.1 changes training outputs');
    assertClose(a.narrow(1, 0, 1), x.narrow(1, 0, 1), { atol: 0, rtol: 0, what: 'class token' });
    m.eval();
    assertClose(m.call(x), m.call(x), { atol: 0, rtol: 0, what: 'eval is deterministic' });
  });
  m.dispose();
});

test('no tensor handles leak (every form, both paths, training with dropout, backward)', () => {
  const forms: [AnyMona, () => Tensor][] = [
    [new Mona(6, { hidden: 4 }), () => randn([2, 12, 6])],
    [new Mona(6, { hidden: 4 }), () => randn([2, 3, 4, 6])],
    [new Mona(6, { hidden: 4, skipTokens: 2, kernels: [1] }), () => randn([2, 2 + 9, 6])],
    [new Mona(6, { hidden: 4, scaledNorm: false }), () => randn([2, 3, 4, 6])],
    [new MonaMap(6, { hidden: 4, kernels: [5, 3] }), () => randn([2, 6, 3, 4])],
  ];
  const step = (m: AnyMona, input: () => Tensor) =>
    tidy(() => {
      const x = input();
      x.requiresGrad = true;
      const out = x.ndim === 3 && x.size(1) === 12 ? (m as Mona).call(x, [3, 4]) : (m.call as (t: Tensor) => Tensor)(x);
      out.sum().backward();
      return out.sum().item();
    });
  for (const [m, input] of forms) {
    for (const merged of [false, true]) {
      m.merged = merged;
      m.train();
      step(m, input); // creates the parameters' .grad
      const before = memoryStats().liveHandles;
      step(m, input);
      m.eval();
      step(m, input);
      assert.equal(memoryStats().liveHandles, before, `${m.constructor.name} merged=${merged}: leaked handles`);
    }
    m.dispose();
  }
});
