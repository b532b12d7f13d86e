// Bad input gives a clear JS error naming the op and shapes, and the process goes on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { callOp, conv2d, crossEntropy, indexSelect, matmul, ones, randn, sqrt, tensor, zeros, sum, opSchema, transpose } from '../../src/index.js';

test('mismatched shapes name the op and both shapes', () => {
  assert.throws(() => tensor([1, 2, 3]).add(tensor([1, 2])), (e: Error) => {
    assert.match(e.message, /aten::add\.Tensor\(self=float32\[3\], other=float32\[2\]\)/);
    assert.match(e.message, /must match the size/);
    return true;
  });
  assert.throws(() => matmul(zeros([2, 3]), zeros([4, 5])), /aten::matmul.*float32\[2,3\].*float32\[4,5\].*cannot be multiplied/s);
  assert.throws(() => conv2d(zeros([1, 3, 8, 8]), zeros([4, 2, 3, 3])), /aten::conv2d.*expected input\[1, 3, 8, 8\] to have 2 channels/);
  assert.throws(() => conv2d(zeros([3, 8, 8, 1, 1]), zeros([4, 3, 3, 3])), /aten::conv2d/);
});

test('wrong dtypes are refused with the op name', () => {
  assert.throws(() => crossEntropy(randn([4, 3]), tensor([0, 1, 2, 1])), /aten::cross_entropy_loss.*(Long|Float|expected scalar type)/s);
  assert.throws(() => indexSelect(randn([4, 3]), 0, tensor([0.5])), /aten::index_select\(self=float32\[4,3\], dim=0, index=float32\[1\]\).*int32 or int64/s);
});

test('out-of-range dims and indices', () => {
  assert.throws(() => sum(zeros([2, 3]), 5), /aten::sum.*Dimension out of range/s);
  assert.throws(() => transpose(zeros([2, 3]), 0, 2), /Dimension out of range/);
  assert.throws(() => indexSelect(zeros([2, 3]), 0, tensor([7], { dtype: 'int64' })), /out of range|INDICES element is out of data bounds/);
});

test('arguments of the wrong JS type name the argument', () => {
  assert.throws(() => callOp('aten::add.Tensor', [zeros([1]), 'x' as never]), /aten::add\.Tensor: argument 'other' \(Tensor\) expects a tensor/);
  assert.throws(() => callOp('aten::sum.dim_IntList', [zeros([1]), [0.5]]), /argument 'dim'.*expects an integer/);
  assert.throws(() => callOp('aten::conv2d', [zeros([1, 1, 3, 3])]), /argument 'weight'.*not optional/);
  assert.throws(() => callOp('aten::relu', [zeros([1]), zeros([1]), 3]), /takes 1 arguments, got 3/);
  assert.throws(() => callOp('aten::no_such_op', []), /resolveOp aten::no_such_op/);
  assert.match(opSchema('aten::conv2d'), /int\[2\] stride=1/);
});

test('non-finite values: ops that forbid them say so', () => {
  const bad = tensor([Number.NaN, 1]);
  // multinomial refuses NaN probabilities; sqrt of a negative is NaN by IEEE rules, not an error.
  assert.throws(() => callOp('aten::multinomial', [bad, 1]), /aten::multinomial.*(inf|nan|invalid)/is);
  assert.ok(Number.isNaN(sqrt(tensor([-1])).item()));
});

test('the process survives a burst of bad calls', () => {
  let errors = 0;
  for (let i = 0; i < 200; i++) {
    try {
      ones([(i % 5) + 2]).add(ones([7]));
    } catch {
      errors++;
    }
  }
  assert.equal(errors, 200);
  assert.deepEqual(ones([2]).add(1).toNumbers(), [2, 2]);
});

test('an impossible allocation is an error, not an abort', () => {
  assert.throws(() => zeros([1e7, 1e7]), /aten::zeros.*(can't allocate|not enough memory|alloc)/is);
  assert.deepEqual(zeros([2]).toNumbers(), [0, 0]);
});
