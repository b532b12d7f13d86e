// Autograd through the engine: gradients, retain_graph, no-grad scopes, in-place updates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backward, enableGrad, isGradEnabled, noGrad, ones, tensor, zeros } from '../../src/index.js';
import { assertClose } from '../helpers.js';

test('backward of a scalar fills leaf gradients', () => {
  const x = tensor([1, 2, 3], { requiresGrad: true });
  const y = x.mul(x).sum(); // dy/dx = 2x
  y.backward();
  assertClose(x.grad!, [2, 4, 6]);
  assert.equal(x.isLeaf, true);
  assert.equal(y.isLeaf, false);
});

test('backward with an explicit gradient for a non-scalar output', () => {
  const x = tensor([1, 2, 3], { requiresGrad: true });
  const y = x.mul(3);
  y.backward(tensor([1, 0.5, 0]));
  assertClose(x.grad!, [3, 1.5, 0]);
  assert.throws(() => x.mul(3).backward(), /grad can be implicitly created only for scalar outputs/);
  assert.throws(() => x.mul(3).backward(tensor([1, 2])), /Mismatch in shape|shape/);
});

test('gradients accumulate; zeroGrad drops them', () => {
  const x = tensor([1, 2], { requiresGrad: true });
  x.sum().backward();
  x.mul(2).sum().backward();
  assertClose(x.grad!, [3, 3]);
  x.zeroGrad();
  assert.equal(x.grad, null);
  x.grad = tensor([5, 5]);
  assertClose(x.grad!, [5, 5]);
  assert.throws(() => (x.grad = tensor([1, 2, 3])), /does not match tensor shape/);
});

test('retainGraph allows a second backward; without it the graph is freed', () => {
  const x = tensor([2], { requiresGrad: true });
  const y = x.exp().sum();
  y.backward(null, { retainGraph: true });
  y.backward();
  assertClose(x.grad!, [2 * Math.exp(2)], { rtol: 1e-6 });
  const z = x.exp().sum();
  z.backward();
  assert.throws(() => z.backward(), /second time|already been freed/);
});

test('multi-root backward', () => {
  const x = tensor([1, 2], { requiresGrad: true });
  backward([x.sum(), x.mul(x).sum()]);
  assertClose(x.grad!, [3, 5]);
});

test('noGrad records nothing and restores the mode, even on throw', () => {
  const x = tensor([1, 2], { requiresGrad: true });
  assert.equal(isGradEnabled(), true);
  const y = noGrad(() => x.mul(2));
  assert.equal(y.requiresGrad, false);
  assert.throws(() => noGrad(() => {
    throw new Error('boom');
  }), /boom/);
  assert.equal(isGradEnabled(), true);
  const z = noGrad(() => enableGrad(() => x.mul(2)));
  assert.equal(z.requiresGrad, true);
});

test('detach cuts the graph', () => {
  const x = tensor([1, 2], { requiresGrad: true });
  const d = x.mul(2).detach();
  assert.equal(d.requiresGrad, false);
});

test('in-place parameter update under noGrad (an SGD step) keeps the leaf trainable', () => {
  const w = tensor([1, -1], { requiresGrad: true });
  w.mul(w).sum().backward();
  noGrad(() => w.sub_(w.grad!, 0.1));
  assertClose(w, [0.8, -0.8]);
  assert.equal(w.requiresGrad, true);
  assert.equal(w.isLeaf, true);
  // Outside noGrad, an in-place change of a leaf that requires grad is refused, not crashed.
  assert.throws(() => w.add_(1), /leaf Variable that requires grad/);
});

test('requiresGrad on an integer tensor is a clear error', () => {
  assert.throws(() => tensor([1, 2], { dtype: 'int64', requiresGrad: true }), /floating point|only Tensors of floating point/);
  assert.throws(() => {
    zeros([2]).requiresGrad = true;
    ones([2], { dtype: 'int32' }).requiresGrad_();
  }, /floating point/);
});
