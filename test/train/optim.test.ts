// AdamW and SGD follow torch.optim's trajectories step for step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tidy, memoryStats } from '../../src/index.js';
import { AdamW, SGD, type Optimizer } from '../../src/train/optim.js';
import { assertClose, fromOracle, runOracle, type OracleArray } from '../helpers.js';

interface Golden {
  init: Record<'w' | 'b' | 'x' | 'target', OracleArray>;
  steps: number;
  results: Record<string, { w: OracleArray; b: OracleArray }>;
}
const golden = runOracle<Golden>('optim');

const makers: Record<string, (ps: Tensor[]) => Optimizer> = {
  adamw: (ps) => new AdamW(ps, { lr: 0.05, betas: [0.8, 0.95], eps: 1e-6, weightDecay: 0.1 }),
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
    const x = fromOracle(golden.init.x);
    const target = fromOracle(golden.init.target);
    const w = fromOracle(golden.init.w).requiresGrad_();
    const b = fromOracle(golden.init.b).requiresGrad_();
    const opt = make([w, b]);
    const before = memoryStats().liveHandles;
    for (let i = 0; i < golden.steps; i++) {
      opt.zeroGrad();
      tidy(() => x.matmul(w).add(b).sub(target).pow(2).mean().backward());
      opt.step();
    }
    opt.zeroGrad();
    tidy(() => {
      assertClose(w, fromOracle(golden.results[name]!.w), { rtol: 1e-5, atol: 1e-6, what: `${name} w` });
      assertClose(b, fromOracle(golden.results[name]!.b), { rtol: 1e-5, atol: 1e-6, what: `${name} b` });
    });
    opt.dispose();
    // Optimizer state and per-step temporaries are all released.
    assert.equal(memoryStats().liveHandles, before);
  });
}

test('optimizers refuse frozen parameters and bad settings', () => {
  const frozen = fromOracle(golden.init.b);
  assert.throws(() => new AdamW([frozen]), /does not require grad/);
  const p = fromOracle(golden.init.b).requiresGrad_();
  assert.throws(() => new AdamW([p], { betas: [1.2, 0.9] }), /betas/);
  assert.throws(() => new SGD([p], { lr: -1 }), /lr must be/);
  assert.throws(() => new SGD([p], { lr: 0.1, nesterov: true }), /nesterov/);
});
