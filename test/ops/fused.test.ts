// Ops with hand-written backward passes (native/src/fused.cc) against the aten ops they stand for.
// conv2d routes a conv whose bias trains, or whose wide depthwise kernel trains, to
// deltatune::trainable_conv2d (bias gradient as a sum; a depthwise weight gradient from 3-column
// bands): outputs and the gradients of input, weight and bias must equal aten::conv2d's for square
// and rectangular kernels, both layouts, maps narrower than the kernel, other paddings, strides and
// dense convs, and each gradient alone. mona_folded_project is checked by Mona's oracle parity tests
// (test/delta/mona-module.test.ts, "folded LayerNorm").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dt from '../../src/index.js';
import { Tensor, tidy } from '../../src/index.js';
import { callTensorOp as T } from '../../src/engine/tensor.js';
import { assertClose } from '../helpers.js';

function close(actual: Tensor, expected: Tensor, what: string): void {
  const scale = Math.max(1, expected.abs().max().item());
  assertClose(actual, expected, { rtol: 1e-5, atol: 2e-6 * scale, what });
}

interface Case { c: number; o: number; kh: number; kw: number; groups: number; stride: number; padding: [number, number]; w: number }
const same = (kh: number, kw: number): [number, number] => [(kh - 1) / 2, (kw - 1) / 2];
const depthwise = (kh: number, kw: number, w = 12): Case => ({ c: 6, o: 6, kh, kw, groups: 6, stride: 1, padding: same(kh, kw), w });
const cases: Case[] = [
  ...([[1, 1], [3, 3], [5, 5], [7, 7], [9, 9], [11, 11], [3, 7], [7, 3], [1, 5], [5, 1], [3, 9]] as const).map(([kh, kw]) => depthwise(kh, kw)),
  depthwise(7, 7, 5), // narrower than the kernel: aten's weight gradient
  depthwise(9, 9, 9),
  { c: 6, o: 6, kh: 7, kw: 7, groups: 6, stride: 1, padding: [1, 2], w: 12 }, // not 'same'
  { c: 6, o: 6, kh: 5, kw: 5, groups: 6, stride: 2, padding: [2, 2], w: 12 }, // strided
  { c: 4, o: 8, kh: 5, kw: 5, groups: 2, stride: 1, padding: [2, 2], w: 12 }, // grouped, not depthwise
  { c: 5, o: 7, kh: 3, kw: 3, groups: 1, stride: 1, padding: [1, 1], w: 12 }, // dense with a bias
  { c: 5, o: 7, kh: 1, kw: 1, groups: 1, stride: 1, padding: [0, 0], w: 12 },
];

test('conv2d with a trainable bias or wide depthwise kernel: the same output and gradients as aten::conv2d', () => {
  dt.manualSeed(3);
  for (const k of cases) {
    for (const channelsLast of [true, false]) {
      for (const withBias of [true, false]) {
        tidy(() => {
          let x = dt.randn([2, k.c, 9, k.w]);
          if (channelsLast) x = x.contiguous('channelsLast');
          const w = dt.randn([k.o, k.c / k.groups, k.kh, k.kw]);
          const b = withBias ? dt.randn([k.o]) : null;
          const g = dt.randnLike(dt.noGrad(() => T('aten::conv2d', [x, w, b, [k.stride, k.stride], k.padding, [1, 1], k.groups])));
          const run = (ours: boolean): Tensor[] => {
            const xi = x.detach().requiresGrad_(true);
            const wi = w.detach().requiresGrad_(true);
            const bi = b ? b.detach().requiresGrad_(true) : null;
            const options = { stride: k.stride, padding: k.padding, groups: k.groups };
            const y = ours ? dt.conv2d(xi, wi, bi, options) : T('aten::conv2d', [xi, wi, bi, [k.stride, k.stride], k.padding, [1, 1], k.groups]);
            y.backward(g);
            return [y, xi.grad!, wi.grad!, ...(bi ? [bi.grad!] : [])];
          };
          const expected = run(false);
          const actual = run(true);
          const label = `${JSON.stringify(k)} ${channelsLast ? 'channels-last' : 'NCHW'} ${withBias ? 'bias' : 'no bias'}`;
          ['output', 'input grad', 'weight grad', 'bias grad'].slice(0, expected.length).forEach((what, i) => close(actual[i]!, expected[i]!, `${label}: ${what}`));
        });
      }
    }
  }
});

test('conv2d routes only a trainable bias or wide depthwise kernel to trainable_conv2d', () => {
  tidy(() => {
    const x = dt.randn([2, 4, 8, 8]).contiguous('channelsLast');
    const used = (fn: () => void) => dt.profileOps(fn).ops.some((o) => o.name === 'deltatune::trainable_conv2d');
    const dw = dt.randn([4, 1, 7, 7]).requiresGrad_(true);
    const dense = dt.randn([4, 4, 3, 3]).requiresGrad_(true);
    const bias = dt.randn([4]).requiresGrad_(true);
    assert.ok(used(() => dt.conv2d(x, dw, null, { padding: 3, groups: 4 })), 'wide depthwise kernel that trains');
    assert.ok(used(() => dt.conv2d(x, dense, bias, { padding: 1 })), 'bias that trains');
    assert.ok(!used(() => dt.conv2d(x, dense, null, { padding: 1 })), 'dense weight without bias: aten');
    assert.ok(!used(() => dt.noGrad(() => dt.conv2d(x, dw, bias, { padding: 3, groups: 4 }))), 'no autograd: aten');
  });
});

test('trainable_conv2d: each gradient alone', () => {
  tidy(() => {
    const x = dt.randn([2, 4, 8, 8]).contiguous('channelsLast');
    const w = dt.randn([4, 1, 7, 7]);
    const b = dt.randn([4]);
    const reference = (xi: Tensor, wi: Tensor, bi: Tensor) => T('aten::conv2d', [xi, wi, bi, [1, 1], [3, 3], [1, 1], 4]);
    const ours = (xi: Tensor, wi: Tensor, bi: Tensor) => dt.conv2d(xi, wi, bi, { padding: 3, groups: 4 });
    for (const trains of ['input', 'weight', 'bias'] as const) {
      const grads = [ours, reference].map((f) => {
        const xi = trains === 'input' ? x.detach().requiresGrad_(true) : x;
        const wi = trains === 'weight' ? w.detach().requiresGrad_(true) : w;
        const bi = trains === 'bias' ? b.detach().requiresGrad_(true) : b;
        // Routing needs a trainable weight or bias; with only the input training, add a bias that trains.
        const extra = trains === 'input' ? dt.zeros([4]).requiresGrad_(true) : null;
        f(xi, wi, extra ? bi.add(extra) : bi).sum().backward();
        return { input: xi, weight: wi, bias: bi }[trains].grad!;
      });
      close(grads[0]!, grads[1]!, `${trains} gradient alone`);
    }
  });
});
