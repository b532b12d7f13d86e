// profileOps: libtorch's operator profiler around a function — per-operator counts and times,
// optionally keyed by input shapes; the function's result comes back; a throwing function leaves
// the profiler stopped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dt from '../../src/index.js';

test('profileOps counts the operators a function runs, with and without shapes', () => {
  dt.tidy(() => {
    const x = dt.randn([3, 4]);
    const { result, ops } = dt.profileOps(() => {
      const y = x.add(x);
      y.add_(1);
      return y.add(y);
    });
    assert.deepEqual(result.shape, [3, 4], 'the result of the function');
    const add = ops.find((o) => o.name === 'aten::add');
    assert.ok(add, `aten::add listed among ${ops.map((o) => o.name).join(', ')}`);
    assert.equal(add.count, 2);
    assert.ok(add.totalUs >= add.selfUs && add.selfUs >= 0);
    for (let i = 1; i < ops.length; i++) assert.ok(ops[i - 1]!.selfUs >= ops[i]!.selfUs, 'largest self time first');
    const shaped = dt.profileOps(() => x.mul(x), { shapes: true }).ops;
    assert.ok(shaped.some((o) => o.name === 'aten::mul [3,4][3,4]'), `keyed by shapes: ${shaped.map((o) => o.name).join(', ')}`);
  });
});

test('profileOps stops the profiler when the function throws', () => {
  assert.throws(() => dt.profileOps(() => {
    throw new Error('boom');
  }), /boom/);
  // A second run works: the first one's profiler was stopped.
  const { ops } = dt.profileOps(() => dt.tidy(() => { dt.zeros([2]).add(1); }));
  assert.ok(ops.some((o) => o.name === 'aten::add'));
});
