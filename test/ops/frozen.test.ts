// The frozen-backbone fast paths of conv2d and batchNorm: with frozen parameters and an input that
// needs a gradient, they compute the same outputs and input gradients as the aten ops, while their
// autograd nodes do not keep the input. "Not kept" is checked through libtorch's version counter:
// modifying a saved tensor in place before backward is an error, so backward succeeding after the
// input was overwritten proves the node did not save it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dt from '../../src/index.js';
import { Tensor, tidy } from '../../src/index.js';
import { assertClose } from '../helpers.js';

interface ConvCase { c: number; o: number; k: number; stride: number; padding: number; groups: number; dilation: number; channelsLast: boolean; bias: boolean }

const convCases: ConvCase[] = [
  { c: 8, o: 16, k: 3, stride: 2, padding: 1, groups: 1, dilation: 1, channelsLast: true, bias: true },
  { c: 8, o: 8, k: 7, stride: 1, padding: 3, groups: 8, dilation: 1, channelsLast: true, bias: true },
  { c: 8, o: 8, k: 5, stride: 2, padding: 2, groups: 8, dilation: 1, channelsLast: false, bias: false },
  { c: 6, o: 4, k: 3, stride: 1, padding: 2, groups: 2, dilation: 2, channelsLast: false, bias: false },
  { c: 3, o: 4, k: 1, stride: 1, padding: 0, groups: 1, dilation: 1, channelsLast: false, bias: true },
];

test('conv2d with a frozen weight: the same output and input gradient as aten::conv2d, bit for bit', () => {
  dt.manualSeed(1);
  for (const k of convCases) {
    tidy(() => {
      let x = dt.randn([2, k.c, 13, 11]);
      if (k.channelsLast) x = x.contiguous('channelsLast');
      const w = dt.randn([k.o, k.c / k.groups, k.k, k.k]);
      const b = k.bias ? dt.randn([k.o]) : null;
      const options = { stride: k.stride, padding: k.padding, groups: k.groups, dilation: k.dilation };
      const run = (frozen: boolean): Tensor[] => {
        const xi = x.detach().requiresGrad_(true);
        const wi = frozen ? w : w.detach().requiresGrad_(true);
        const y = dt.conv2d(xi, wi, b, options);
        y.mul(y).sum().backward();
        return [y, xi.grad!];
      };
      const [y1, g1] = run(true);
      const [y2, g2] = run(false);
      const what = JSON.stringify(k);
      assert.deepEqual(y1!.toNumbers(), y2!.toNumbers(), `${what}: output`);
      assert.deepEqual(g1!.toNumbers(), g2!.toNumbers(), `${what}: input gradient`);
      assert.equal(g1!.isContiguous('channelsLast'), k.channelsLast, `${what}: the gradient keeps the input's layout`);
    });
  }
});

test('conv2d with a frozen weight does not keep its input for backward; a trainable weight does', () => {
  tidy(() => {
    const w = dt.randn([4, 3, 3, 3]);
    for (const frozen of [true, false]) {
      const x = dt.randn([2, 3, 8, 8]).requiresGrad_(true);
      const h = x.mul(2); // a non-leaf input that can be overwritten
      const y = dt.conv2d(h, frozen ? w : w.detach().requiresGrad_(true), null, { padding: 1 });
      h.fill_(0);
      if (frozen) {
        y.sum().backward();
        assert.ok(x.grad, 'frozen: backward ran although the input was overwritten');
      } else {
        assert.throws(() => y.sum().backward(), /modified by an inplace operation/, 'trainable: the input was saved');
      }
    }
  });
});

test('batchNorm in evaluation with frozen affine parameters: aten::batch_norm outputs, gradient input·α, input not kept', () => {
  dt.manualSeed(2);
  for (const channelsLast of [true, false]) {
    for (const affine of [true, false]) {
      tidy(() => {
        let x = dt.randn([4, 16, 9, 7]).mul(3).add(1);
        if (channelsLast) x = x.contiguous('channelsLast');
        const mean = dt.randn([16]);
        const variance = dt.rand([16]).add(0.1);
        const weight = affine ? dt.randn([16]) : null;
        const bias = affine ? dt.randn([16]) : null;
        const options = { weight, bias, training: false, eps: 1e-5 };
        const reference = dt.batchNorm(x, mean, variance, options); // no grad needed: the aten op
        const xi = x.detach().requiresGrad_(true);
        const h = xi.mul(1);
        const y = dt.batchNorm(h, mean, variance, options);
        const what = `channelsLast ${channelsLast}, affine ${affine}`;
        assertClose(y, reference, { rtol: 1e-6, atol: 1e-6, what: `${what}: output` });
        assert.equal(y.isContiguous('channelsLast'), channelsLast, `${what}: layout kept`);
        h.fill_(0); // the input is not saved, so backward still works
        const g = dt.randn(x.shape);
        y.backward(g);
        const alpha = dt.rsqrt(variance.add(1e-5));
        const expected = g.mul((weight ? alpha.mul(weight) : alpha).view([1, 16, 1, 1]));
        assertClose(xi.grad!, expected, { rtol: 1e-6, atol: 1e-6, what: `${what}: input gradient` });
      });
    }
  }
});

test('the aten paths stay in use when a parameter trains (BatchNorm tuning) or nothing needs a gradient', () => {
  tidy(() => {
    const x = dt.randn([2, 4, 5, 5]).requiresGrad_(true);
    const weight = dt.randn([4]).requiresGrad_(true);
    const y = dt.batchNorm(x, dt.zeros([4]), dt.ones([4]), { weight, bias: null, training: false });
    y.sum().backward();
    assert.ok(weight.grad, 'a trainable BatchNorm weight still gets its gradient');
    const w = dt.randn([3, 4, 1, 1]).requiresGrad_(true);
    dt.conv2d(x, w).sum().backward();
    assert.ok(w.grad, 'a trainable conv weight still gets its gradient');
  });
});
