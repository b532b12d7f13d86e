// Tensor basics: data in and out for every dtype, metadata, conversions, channels-last, devices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tensor, zeros, arange, cudaAvailable, engineInfo, getNumThreads, setNumThreads, manualSeed, randn, defaultThreadCount } from '../../src/index.js';
import { availableParallelism } from 'node:os';

test('typed arrays round-trip for every dtype with one copy each way', () => {
  const cases: [ArrayBufferView, string][] = [
    [new Float32Array([1.5, -2, 3]), 'float32'],
    [new Float64Array([1e-300, 2, -3]), 'float64'],
    [new Int32Array([-7, 0, 2147483647]), 'int32'],
    [new BigInt64Array([-(2n ** 62n), 0n, 9007199254740993n]), 'int64'],
    [new Uint8Array([0, 128, 255]), 'uint8'],
  ];
  for (const [data, dtype] of cases) {
    const t = tensor(data);
    assert.equal(t.dtype, dtype);
    assert.deepEqual([...t.shape], [3]);
    const back = t.toArray();
    assert.equal(back.constructor, data.constructor);
    assert.deepEqual(back, data);
    // The tensor owns its memory: changing the source afterwards does not change it.
    (data as unknown as number[])[0] = typeof (data as unknown as bigint[])[0] === 'bigint' ? (5n as never) : (5 as never);
    assert.deepEqual(t.toArray(), back);
  }
});

test('bool and bfloat16 tensors', () => {
  const b = tensor([true, false, true]);
  assert.equal(b.dtype, 'bool');
  assert.deepEqual(b.toNumbers(), [1, 0, 1]);
  const bf = tensor([1, 2.5, -3]).to('bfloat16');
  assert.equal(bf.dtype, 'bfloat16');
  assert.deepEqual(bf.toNumbers(), [1, 2.5, -3]);
  // bfloat16 arithmetic runs on CPU in this libtorch.
  assert.deepEqual(bf.add(bf).toNumbers(), [2, 5, -6]);
});

test('nested arrays infer shape; ragged arrays and bad shapes are refused', () => {
  const t = tensor([[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual([...t.shape], [2, 3]);
  assert.deepEqual(t.toNumbers(), [1, 2, 3, 4, 5, 6]);
  assert.throws(() => tensor([[1, 2], [3]]), /ragged/);
  assert.throws(() => tensor(new Float32Array(6), { shape: [4, 2] }), /needs 32 bytes but the data has 24/);
  assert.throws(() => zeros([2, -1]), /invalid shape/);
  assert.throws(() => zeros([1.5]), /invalid shape/);
});

test('views share memory; strides and contiguity are reported', () => {
  const a = arange(6, undefined, 1, { dtype: 'float32' }).reshape([2, 3]);
  const t = a.transpose(0, 1);
  assert.ok(t.sharesMemoryWith(a));
  assert.deepEqual(t.strides, [1, 3]);
  assert.equal(t.isContiguous(), false);
  const c = t.contiguous();
  assert.equal(c.isContiguous(), true);
  assert.deepEqual(c.toNumbers(), [0, 3, 1, 4, 2, 5]);
  assert.equal(a.size(-1), 3);
  assert.throws(() => a.size(2), /dimension out of range/);
});

test('channels-last memory format keeps values and changes strides', () => {
  const x = randn([2, 3, 4, 5]);
  const cl = x.contiguous('channelsLast');
  assert.equal(cl.isContiguous('channelsLast'), true);
  assert.equal(cl.isContiguous(), false);
  assert.deepEqual(cl.strides, [60, 1, 15, 3]);
  assert.deepEqual(cl.toNumbers(), x.toNumbers());
});

test('dtype conversion and item()', () => {
  const t = tensor([1.7, -2.2]);
  assert.deepEqual(t.to('int64').toArray(), new BigInt64Array([1n, -2n]));
  assert.equal(tensor([3.5]).item(), 3.5);
  assert.throws(() => t.item(), /only a one-element tensor/);
  assert.throws(() => t.to('float128' as never), /unknown device 'float128'/);
});

test('cuda fails clearly when libtorch has no CUDA', () => {
  if (cudaAvailable()) {
    assert.equal(zeros([2]).cuda().device, 'cuda:0');
    return;
  }
  assert.throws(() => zeros([2]).cuda(), /built without CUDA/);
  assert.throws(() => zeros([2], { device: 'cuda' }), /built without CUDA/);
  assert.throws(() => zeros([2], { device: 'tpu' }), /unknown device 'tpu'/);
});

test('threads default to every core and can be set', () => {
  assert.equal(defaultThreadCount(), process.env.DELTATUNE_THREADS ? Number(process.env.DELTATUNE_THREADS) : availableParallelism());
  const before = getNumThreads();
  setNumThreads(1);
  assert.equal(getNumThreads(), 1);
  setNumThreads(before);
  assert.equal(getNumThreads(), before);
  assert.throws(() => setNumThreads(0), /at least 1/);
});

test('manualSeed makes random draws repeatable', () => {
  manualSeed(1234);
  const a = randn([16]).toNumbers();
  manualSeed(1234);
  const b = randn([16]).toNumbers();
  assert.deepEqual(a, b);
  assert.notDeepEqual(randn([16]).toNumbers(), a);
  assert.throws(() => manualSeed(-1), /non-negative integer/);
});

test('engine reports its BLAS and build', () => {
  const info = engineInfo();
  assert.match(info.config, /PyTorch built with/);
  assert.equal(typeof info.cuda, 'boolean');
  // On Debian, set-up switches libblas.so.3 to OpenBLAS; the reference BLAS would be listed here.
  if (process.platform === 'linux' && !process.env.LIBTORCH) assert.match(info.blas, /openblas/);
});

test('toString describes the tensor', () => {
  const t = zeros([2, 3], { requiresGrad: true });
  assert.equal(String(t), 'Tensor(float32[2,3], requiresGrad)');
  assert.ok(t instanceof Tensor);
  t.dispose();
  assert.equal(String(t), 'Tensor(disposed)');
});
