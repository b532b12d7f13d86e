// AdamW and SGD follow torch.optim's trajectories step for step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tidy, memoryStats, randn, zeros, conv2d, manualSeed } from '../../src/index.js';
import { AdamW, SGD, type Optimizer } from '../../src/train/optim.js';
import { assertClose, fromOracle, runOracle, type OracleArray } from '../helpers.js';

interface Golden {
  init: Record<'w' | 'b' | 'x' | 'target', OracleArray>;
  steps: number;
  results: Record<string, { w: OracleArray; b: OracleArray }>;
  late_bias: { w: OracleArray; b: OracleArray };
}
const golden = runOracle<Golden>('optim');
const ADAMW = { lr: 0.05, betas: [0.8, 0.95] as [number, number], eps: 1e-6, weightDecay: 0.1 };

/** The oracle's parameters, fresh. */
function oracleParams(): { w: Tensor; b: Tensor } {
  return { w: fromOracle(golden.init.w).requiresGrad_(), b: fromOracle(golden.init.b).requiresGrad_() };
}

/** `steps` optimizer steps on the oracle's loss; the bias joins the loss from step `biasFrom` on. */
function trainOnOracle(opt: Optimizer, w: Tensor, b: Tensor, steps: number, biasFrom = 0): void {
  const x = fromOracle(golden.init.x);
  const target = fromOracle(golden.init.target);
  for (let i = 0; i < steps; i++) {
    opt.zeroGrad();
    tidy(() => (i >= biasFrom ? x.matmul(w).add(b) : x.matmul(w)).sub(target).pow(2).mean().backward());
    opt.step();
  }
  opt.zeroGrad();
  x.dispose();
  target.dispose();
}

const makers: Record<string, (ps: Tensor[]) => Optimizer> = {
  adamw: (ps) => new AdamW(ps, ADAMW),
  adamw_default: (ps) => new AdamW(ps),
  sgd: (ps) => new SGD(ps, { lr: 0.1 }),
  sgd_momentum_wd: (ps) => new SGD(ps, { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 }),
  sgd_nesterov: (ps) => new SGD(ps, { lr: 0.05, momentum: 0.9, nesterov: true }),
};

test('every oracle optimizer config has a TS counterpart', () => {
  assert.deepEqual(Object.keys(makers).sort(), Object.keys(golden.results).sort());
});

for (const [name, make] of Object.entries(makers)) {
  test(`${name} matches torch.optim after ${golden.steps} steps`, () => {
    const { w, b } = oracleParams();
    const opt = make([w, b]);
    const before = memoryStats().liveHandles;
    trainOnOracle(opt, w, b, golden.steps);
    tidy(() => {
      assertClose(w, fromOracle(golden.results[name]!.w), { rtol: 1e-5, atol: 1e-6, what: `${name} w` });
      assertClose(b, fromOracle(golden.results[name]!.b), { rtol: 1e-5, atol: 1e-6, what: `${name} b` });
    });
    opt.dispose();
    // Optimizer state and per-step temporaries are all released.
    assert.equal(memoryStats().liveHandles, before);
  });
}

test('AdamW with one tensor per group (a linear probe: the head weight alone in the decayed group) matches torch.optim', () => {
  // A lone tensor flattens to a view of itself; the update must still land exactly once.
  const { w, b } = oracleParams();
  const opt = new AdamW([{ params: [w] }, { params: [b] }], ADAMW);
  trainOnOracle(opt, w, b, golden.steps);
  tidy(() => {
    assertClose(w, fromOracle(golden.results.adamw!.w), { rtol: 1e-5, atol: 1e-6, what: 'one-tensor group w' });
    assertClose(b, fromOracle(golden.results.adamw!.b), { rtol: 1e-5, atol: 1e-6, what: 'one-tensor group b' });
  });
  opt.dispose();
});

test('AdamW matches torch.optim when tensors start at different steps (a gradient appears late)', () => {
  const { w, b } = oracleParams();
  const opt = new AdamW([w, b], ADAMW);
  const before = memoryStats().liveHandles;
  trainOnOracle(opt, w, b, golden.steps, 3);
  assert.deepEqual(opt.stateDict().steps, { 0: golden.steps, 1: golden.steps - 3 });
  tidy(() => {
    assertClose(w, fromOracle(golden.late_bias.w), { rtol: 1e-5, atol: 1e-6, what: 'late-bias w' });
    assertClose(b, fromOracle(golden.late_bias.b), { rtol: 1e-5, atol: 1e-6, what: 'late-bias b' });
  });
  opt.dispose();
  assert.equal(memoryStats().liveHandles, before);
});

test('AdamW: the whole-group update and the per-tensor one agree, channels-last parameters included', () => {
  // A parameter that never gets a gradient sends every step of the second optimizer down the
  // per-tensor path; the first always takes the flat one.
  const run = (withIdle: boolean): number[][] =>
    tidy(() => {
      manualSeed(0);
      const w = randn([4, 3, 2, 2]).contiguous('channelsLast').requiresGrad_();
      const b = randn([4]).requiresGrad_();
      const idle = zeros([3]).requiresGrad_();
      const x = randn([2, 3, 5, 5]).contiguous('channelsLast');
      const opt = new AdamW(withIdle ? [w, b, idle] : [w, b], { lr: 0.05, weightDecay: 0.1 });
      for (let i = 0; i < 5; i++) {
        opt.zeroGrad();
        tidy(() => conv2d(x, w, b).pow(2).mean().backward());
        opt.step();
      }
      assert.ok(w.isContiguous('channelsLast'), 'the parameter keeps its memory format');
      const state = opt.stateDict();
      const out = [w, b, state.tensors.get('0.exp_avg_sq')!].map((t) => Array.from(t.toArray() as Float32Array));
      opt.dispose();
      return out;
    });
  const [flat, perTensor] = [run(false), run(true)];
  flat.forEach((values, k) => values.forEach((v, i) => assert.ok(Math.abs(v - perTensor[k]![i]!) <= 1e-6 * Math.max(1, Math.abs(v)), `tensor ${k} element ${i}: ${v} vs ${perTensor[k]![i]}`)));
});

test('AdamW state survives a save and load into a new optimizer', () => {
  const { w, b } = oracleParams();
  const opt = new AdamW([w, b], ADAMW);
  trainOnOracle(opt, w, b, 4);
  const saved = opt.stateDict();
  const copies = new Map([...saved.tensors].map(([k, t]) => [k, t.clone()]));
  const resumed = new AdamW([w, b], ADAMW);
  resumed.loadStateDict({ tensors: copies, steps: saved.steps });
  opt.dispose();
  trainOnOracle(resumed, w, b, golden.steps - 4);
  tidy(() => {
    assertClose(w, fromOracle(golden.results.adamw!.w), { rtol: 1e-5, atol: 1e-6, what: 'resumed w' });
    assertClose(b, fromOracle(golden.results.adamw!.b), { rtol: 1e-5, atol: 1e-6, what: 'resumed b' });
  });
  const bad = new Map(copies);
  bad.set('1.exp_avg', zeros([5]));
  assert.throws(() => resumed.loadStateDict({ tensors: bad, steps: saved.steps }), /'1.exp_avg' has shape \[5\], the parameter has \[3\]/);
  // A refused load leaves the state as it was.
  assert.deepEqual(resumed.stateDict().steps, { 0: golden.steps, 1: golden.steps });
  resumed.dispose();
  copies.forEach((t) => t.dispose());
  bad.get('1.exp_avg')!.dispose();
});

test('optimizers refuse frozen parameters and bad settings', () => {
  const frozen = fromOracle(golden.init.b);
  assert.throws(() => new AdamW([frozen]), /does not require grad/);
  const p = fromOracle(golden.init.b).requiresGrad_();
  assert.throws(() => new AdamW([p], { betas: [1.2, 0.9] }), /betas/);
  assert.throws(() => new SGD([p], { lr: -1 }), /lr must be/);
  assert.throws(() => new SGD([p], { lr: 0.1, nesterov: true }), /nesterov/);
});
