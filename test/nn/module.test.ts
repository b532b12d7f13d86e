// Module: registration by assignment gives torch's dotted names; state dicts, loading reports,
// modes, hooks, freezing, and layers that compute what torch.nn computes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BatchNorm2d, Conv2d, DropPath, Dropout, GroupNorm, LayerNorm, Linear, Module, ModuleDict, ModuleList, Parameter, ReLU,
  Sequential, Tensor, keep, memoryStats, ones, randn, tidy, zeros, mean, Identity, pipe, release, ReLU6, noGrad, tensor,
} from '../../src/index.js';
import { assertClose, fromOracle, runOracle, type OracleArray } from '../helpers.js';

interface NnOracle {
  keys: [string, number[]][];
  params: Record<string, OracleArray>;
  x: OracleArray;
  trainOut: OracleArray;
  runningMean: OracleArray;
  runningVar: OracleArray;
  numBatches: number;
  evalOut: OracleArray;
  cumulative: { inputs: OracleArray[]; mean: OracleArray; var: OracleArray };
}
const oracle = runOracle<NnOracle>('nn');

class Net extends Module {
  declare stem: Sequential;
  declare blocks: ModuleList;
  declare head: ModuleDict;
  declare scale: Tensor;
  constructor() {
    super();
    this.stem = new Sequential(new Conv2d(3, 8, 3, { stride: 2, padding: 1, bias: false }), new BatchNorm2d(8), new ReLU());
    this.blocks = new ModuleList([new Conv2d(8, 8, 3, { padding: 1, groups: 8 }), new GroupNorm(4, 8)]);
    this.head = new ModuleDict({ norm: new LayerNorm(8), fc: new Linear(8, 5) });
    this.registerBuffer('scale', ones([1]));
  }
  forward(x: Tensor): Tensor {
    let h = this.stem.call(x);
    for (const m of this.blocks) h = m.call(h) as Tensor;
    h = mean(h, [2, 3]);
    return this.head.get('fc').call(this.head.get('norm').call(h) as Tensor).mul(this.scale) as Tensor;
  }
}

test('dotted names, order and shapes equal torch.nn for nested containers and buffers', () => {
  const net = new Net();
  assert.deepEqual([...net.stateDict()].map(([k, t]) => [k, [...t.shape]]), oracle.keys);
  assert.deepEqual(net.namedParameters().map(([k]) => k), oracle.keys.map(([k]) => k).filter((k) => !/running|num_batches|scale/.test(k)));
  net.dispose();
});

test('train/eval outputs and batch-norm running statistics match torch', () => {
  const net = new Net();
  const params = new Map(Object.entries(oracle.params).map(([k, v]) => [k, fromOracle(v)]));
  net.loadStateDict(params);
  tidy(() => {
    const x = fromOracle(oracle.x);
    net.train();
    net.call(x);
    assertClose(net.call(x.mul(2)), fromOracle(oracle.trainOut), { atol: 1e-5, what: 'train output' });
    const bn = net.stem.at(1) as BatchNorm2d;
    assertClose(bn.running_mean!, fromOracle(oracle.runningMean), { atol: 1e-6, what: 'running_mean' });
    assertClose(bn.running_var!, fromOracle(oracle.runningVar), { atol: 1e-5, what: 'running_var' });
    assert.equal(bn.num_batches_tracked!.item(), oracle.numBatches);
    net.eval();
    assertClose(net.call(x), fromOracle(oracle.evalOut), { atol: 1e-5, what: 'eval output' });
  });
  params.forEach((t) => t.dispose());
  net.dispose();
});

test('BatchNorm2d with momentum null keeps a cumulative average', () => {
  const bn = new BatchNorm2d(3, { momentum: null });
  tidy(() => {
    for (const input of oracle.cumulative.inputs) bn.call(fromOracle(input));
  });
  assertClose(bn.running_mean!, fromOracle(oracle.cumulative.mean), { atol: 1e-5 });
  assertClose(bn.running_var!, fromOracle(oracle.cumulative.var), { atol: 1e-5 });
  bn.dispose();
});

test('loadStateDict reports missing, unexpected and mis-shaped keys; strict throws listing them', () => {
  const lin = new Linear(3, 2);
  assert.throws(() => lin.loadStateDict({ weight: zeros([2, 3]) }), /missing: bias/);
  assert.throws(() => lin.loadStateDict({ weight: zeros([2, 4]), bias: zeros([2]) }, { strict: false }), /mis-shaped: weight \(checkpoint \[2,4\], model \[2,3\]\)/);
  const report = lin.loadStateDict({ weight: ones([2, 3]), extra: zeros([1]) }, { strict: false });
  assert.deepEqual(report, { missing: ['bias'], unexpected: ['extra'], mismatched: [] });
  assert.deepEqual(lin.weight.toNumbers(), [1, 1, 1, 1, 1, 1]);
  // Loading converts dtype and keeps the same Parameter objects (optimizers hold them).
  const w = lin.weight;
  lin.loadStateDict({ weight: zeros([2, 3], { dtype: 'float64' }), bias: zeros([2]) });
  assert.equal(lin.weight, w);
  assert.equal(w.dtype, 'float32');
  lin.dispose();
});

test('assignment rules: parameters need Parameter, buffers take tensors, deletion unregisters', () => {
  const lin = new Linear(2, 2);
  assert.throws(() => ((lin as unknown as { weight: Tensor }).weight = zeros([2, 2])), /is a parameter: assign a Parameter/);
  lin.bias = null;
  assert.deepEqual([...lin.stateDict().keys()], ['weight']);
  lin.registerBuffer('stat', zeros([2]), false);
  assert.deepEqual([...lin.stateDict().keys()], ['weight'], 'non-persistent buffer stays out of the state dict');
  assert.deepEqual(lin.namedBuffers().map(([k]) => k), ['stat']);
  delete (lin as unknown as Record<string, unknown>).stat;
  assert.deepEqual(lin.namedBuffers(), []);
  assert.throws(() => lin.registerBuffer('a.b', zeros([1])), /invalid attribute name 'a.b'/);
  lin.dispose();
});

test('a shared parameter is listed once; freezing and counts', () => {
  const a = new Linear(4, 4);
  const seq = new Sequential(a, new ReLU(), a);
  assert.equal(seq.parameters().length, 2);
  assert.equal(seq.numParameters(), 20);
  seq.requiresGrad_(false);
  assert.equal(seq.numParameters({ trainableOnly: true }), 0);
  a.bias!.requiresGrad = true;
  assert.deepEqual(seq.trainableParameters(), [a.bias]);
  a.dispose();
});

test('train/eval propagate; Dropout and DropPath are identity in eval and random in train', () => {
  const seq = new Sequential(new Dropout(0.5), new DropPath(0.5));
  seq.eval();
  assert.equal(seq.at(1).training, false);
  tidy(() => {
    const x = ones([64, 8]);
    assert.equal(seq.call(x), x);
    seq.train();
    const y = seq.call(x).toNumbers();
    assert.ok(y.some((v) => v === 0) && y.some((v) => v > 1), 'some zeroed, survivors scaled');
    // DropPath drops whole samples: each row is all zero or all equal.
    const dp = new DropPath(0.5).call(x).toNumbers();
    for (let r = 0; r < 64; r++) assert.equal(new Set(dp.slice(r * 8, r * 8 + 8)).size, 1);
  });
});

test('forward hooks see and may replace outputs; pre-hooks may replace inputs; removers work', () => {
  const lin = new Linear(2, 2);
  const seen: number[][] = [];
  const remove = lin.registerForwardHook((_m, _inputs, out) => void seen.push([...(out as Tensor).shape]));
  const removeReplace = lin.registerForwardHook((_m, _inputs, out) => (out as Tensor).mul(0));
  const removePre = lin.registerForwardPreHook((_m, [x]) => [(x as Tensor).add(1)]);
  tidy(() => {
    assert.ok(lin.call(zeros([3, 2])).toNumbers().every((v) => v === 0), 'the replacing hook zeroed the output');
    remove();
    removeReplace();
    removePre();
    assert.notDeepEqual(lin.call(ones([1, 2])).toNumbers(), [0, 0]);
  });
  assert.deepEqual(seen, [[3, 2]]);
  lin.dispose();
});

test('layer defaults follow torch: kaiming-uniform(a=√5) weight bounds, bias bounds, norms at 1/0', () => {
  const conv = new Conv2d(16, 32, 3);
  const bound = 1 / Math.sqrt(16 * 9); // kaiming_uniform with a=√5 gives bound = 1/√fan_in
  const w = conv.weight.toNumbers();
  assert.ok(Math.max(...w.map(Math.abs)) <= bound && Math.max(...w.map(Math.abs)) > bound * 0.95);
  assert.ok(Math.max(...conv.bias!.toNumbers().map(Math.abs)) <= bound);
  const ln = new LayerNorm(5);
  assert.deepEqual(ln.weight!.toNumbers(), [1, 1, 1, 1, 1]);
  assert.deepEqual(ln.bias!.toNumbers(), [0, 0, 0, 0, 0]);
  assert.throws(() => new Conv2d(6, 4, 3, { groups: 4 }), /divisible by groups/);
  assert.throws(() => new GroupNorm(3, 8), /divisible by numGroups/);
  assert.throws(() => new BatchNorm2d(4).call(zeros([2, 4])), /expected a 4-d \[N,C,H,W\] input/);
  conv.dispose();
  ln.dispose();
});

test('Sequential frees its intermediates as it goes; a kept activation survives', () => {
  const seq = new Sequential(new Linear(8, 8), new ReLU(), new Linear(8, 8), new Identity());
  tidy(() => {
    const x = randn([4, 8]);
    const before = memoryStats().liveHandles;
    const y = seq.call(x);
    // Only the output is left: Linear, ReLU and Linear outputs were released on the way.
    assert.equal(memoryStats().liveHandles, before + 1);
    assert.equal(x.isDisposed, false);
    assert.equal(y.isDisposed, false);
  });
  let stored: Tensor | undefined;
  const remove = seq.at(0).registerForwardHook((_m, _i, out) => void (stored = keep(out as Tensor)));
  tidy(() => seq.call(randn([4, 8])));
  assert.equal(stored!.isDisposed, false, 'a hook that keeps an activation keeps it');
  stored!.dispose();
  remove();
  // pipe/release never free tensors outside a scope (parameters, kept tensors).
  const p = new Parameter(zeros([2]));
  release(p);
  assert.equal(p.isDisposed, false);
  assert.equal(pipe(p, (t) => t), p);
  p.dispose();
  seq.dispose();
});

test('ReLU6(inplace) overwrites its input only when autograd does not record it, with the same values and gradient', () => {
  tidy(() => {
    const relu6 = new ReLU6(true);
    const x = tensor([-1, 3, 7]);
    const out = noGrad(() => relu6.call(x));
    assert.equal(out, x, 'in place under noGrad');
    assert.deepEqual(Array.from(x.toArray() as Float32Array), [0, 3, 6]);
    const leaf = tensor([-1, 3, 7]).requiresGrad_();
    const h = leaf.mul(1);
    const y = relu6.call(h);
    assert.notEqual(y, h, 'a new tensor when recorded: libtorch would clone the input for backward');
    assert.deepEqual(Array.from(h.toArray() as Float32Array), [-1, 3, 7]);
    y.sum().backward();
    assert.deepEqual(Array.from(leaf.grad!.toArray() as Float32Array), [0, 1, 0]);
  });
});

test('dispose frees every parameter and buffer', () => {
  const before = memoryStats().liveHandles;
  const net = new Net();
  net.dispose();
  assert.equal(memoryStats().liveHandles, before);
});

test('BatchNorm2d refuses to train on one value per channel, as torch does, and keeps its statistics', () => {
  const bn = new BatchNorm2d(3);
  bn.train();
  const x = randn([1, 3, 1, 1]);
  assert.throws(() => bn.call(x), /batchNorm: expected more than 1 value per channel when training, got input size \[1, 3, 1, 1\]/);
  assert.equal(tidy(() => bn.running_var!.sub(1).abs().max().item()), 0, 'running_var untouched');
  bn.eval();
  assert.deepEqual([...bn.call(x).shape], [1, 3, 1, 1], 'evaluation uses the running statistics');
  x.dispose();
  bn.dispose();
});
