// tensor() refuses what it cannot represent: non-numeric elements (named by their index path), and
// for integer dtypes NaN, ±Infinity and values outside the dtype's range, as PyTorch does; JS numbers
// into int64 must be exact (|v| < 2^53). The subtle cases (fractions, the range checked before
// truncation, bool) are compared with PyTorch itself, for nested arrays and typed arrays alike.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { tensor, type DType, type Tensor } from '../../src/index.js';
import { PYTHON } from '../helpers.js';

/** The tensor's dtype and values, disposed. */
function read(t: Tensor): { dtype: DType; values: (number | bigint)[] } {
  try {
    const values = t.dtype === 'int64' ? Array.from(t.toArray() as BigInt64Array) : t.toNumbers();
    return { dtype: t.dtype, values };
  } finally {
    t.dispose();
  }
}

test('non-numeric elements: a TypeError naming the index path and what was found', () => {
  const cases: [unknown, RegExp][] = [
    [[[1, 2], ['3', 4]], /^tensor\(\): element \[1\]\[0\] is a string \('3'\), expected a number, boolean or bigint$/],
    [[[1, 2], [3, null]], /element \[1\]\[1\] is null, expected a number, boolean or bigint/],
    [[1, undefined], /element \[1\] is undefined/],
    // A hole reads as undefined.
    [[1, , 3], /element \[1\] is undefined/],
    [[[[1], [2]], [[3], [{}]]], /element \[1\]\[1\]\[0\] is an object, expected/],
    [[new Map()], /element \[0\] is an object \(Map\)/],
    [[Symbol('s')], /element \[0\] is a symbol \(Symbol\(s\)\)/],
    [[1, () => 1], /element \[1\] is a function/],
    // Typed arrays nested in an array are not flattened (they used to become NaN).
    [[new Float32Array(2), new Float32Array(2)], /element \[0\] is an object \(Float32Array\)/],
    ['abc', /^tensor\(\): the value is a string \('abc'\), expected/],
    [['a very long string that goes on and on'], /is a string \('a very long string that …'\)/],
  ];
  for (const [data, message] of cases) {
    assert.throws(() => tensor(data as number[]), (err: Error) => err instanceof TypeError && message.test(err.message), String(message));
  }
  // The first element's kind decides; a different one later is named with both positions.
  assert.throws(() => tensor([[1, 2], [true, 4]]), /^TypeError: tensor\(\): element \[1\]\[0\] is a boolean but element \[0\]\[0\] is a number/);
  // Ragged data is still a RangeError of its own.
  assert.throws(() => tensor([[1, 2], [3]] as number[][]), /ragged nested array/);
});

test('integer dtypes: NaN, ±Infinity and out-of-range values are refused, naming element and dtype', () => {
  const cases: [unknown, DType, RegExp][] = [
    [[256], 'uint8', /^tensor\(\): element \[0\] is 256, outside uint8's range \[0, 255\]$/],
    [[0, -1], 'uint8', /element \[1\] is -1, outside uint8's range \[0, 255\]/],
    [[-129], 'int8', /element \[0\] is -129, outside int8's range \[-128, 127\]/],
    [[127.5], 'int8', /element \[0\] is 127\.5, outside int8's range/],
    [[40000], 'int16', /outside int16's range \[-32768, 32767\]/],
    [[[1, 2], [3, NaN]], 'int32', /^tensor\(\): element \[1\]\[1\] is NaN, which int32 cannot hold \(expected a finite number\)$/],
    [[Infinity], 'int64', /element \[0\] is Infinity, which int64 cannot hold/],
    [[-Infinity], 'uint8', /element \[0\] is -Infinity, which uint8 cannot hold/],
    [[2 ** 31], 'int32', /element \[0\] is 2147483648, outside int32's range \[-2147483648, 2147483647\]/],
    [[1e300], 'int64', /element \[0\] is 1e\+300, outside int64's range/],
    [NaN, 'int32', /^tensor\(\): the value is NaN, which int32 cannot hold/],
    // JS numbers past 2^53 are not exact integers: int64 wants bigints there.
    [[2 ** 53], 'int64', /element \[0\] is 9007199254740992, beyond 2\^53 - 1 .* pass bigints for int64 \(e\.g\. 9007199254740992n\)/],
    [[0, -(2 ** 60)], 'int64', /element \[1\] is -1152921504606846976, beyond 2\^53 - 1/],
    // Bigints must fit int64 (they would wrap in a BigInt64Array) and an integer target.
    [[2n ** 63n], 'int64', /element \[0\] is 9223372036854775808n, outside int64's range \[-9223372036854775808, 9223372036854775807\]/],
    [[1n, -(2n ** 63n) - 1n], 'float32', /element \[1\] is -9223372036854775809n, outside int64's range/],
    [[300n], 'uint8', /element \[0\] is 300n, outside uint8's range \[0, 255\]/],
  ];
  for (const [data, dtype, message] of cases) {
    assert.throws(() => tensor(data as number[], { dtype }), (err: Error) => err instanceof RangeError && message.test(err.message), `${String(data)} → ${dtype}: ${String(message)}`);
  }
});

test('integer dtypes: the edges are accepted exactly; bigints, booleans and float/bool dtypes take what PyTorch takes', () => {
  assert.deepEqual(read(tensor([255, 0], { dtype: 'uint8' })), { dtype: 'uint8', values: [255, 0] });
  assert.deepEqual(read(tensor([-128, 127], { dtype: 'int8' })), { dtype: 'int8', values: [-128, 127] });
  assert.deepEqual(read(tensor([-32768, 32767], { dtype: 'int16' })), { dtype: 'int16', values: [-32768, 32767] });
  assert.deepEqual(read(tensor([-(2 ** 31), 2 ** 31 - 1], { dtype: 'int32' })), { dtype: 'int32', values: [-(2 ** 31), 2 ** 31 - 1] });
  assert.deepEqual(read(tensor([2 ** 53 - 1, -(2 ** 53 - 1)], { dtype: 'int64' })), { dtype: 'int64', values: [2n ** 53n - 1n, -(2n ** 53n - 1n)] });
  assert.deepEqual(read(tensor([2n ** 63n - 1n, -(2n ** 63n), 0n])), { dtype: 'int64', values: [2n ** 63n - 1n, -(2n ** 63n), 0n] });
  assert.deepEqual(read(tensor([[255n], [0n]], { dtype: 'uint8' })), { dtype: 'uint8', values: [255, 0] });
  assert.deepEqual(read(tensor([3n, -4n], { dtype: 'float32' })), { dtype: 'float32', values: [3, -4] });
  assert.deepEqual(read(tensor([true, false])), { dtype: 'bool', values: [1, 0] });
  assert.deepEqual(read(tensor([true, false], { dtype: 'int8' })), { dtype: 'int8', values: [1, 0] });
  assert.deepEqual(read(tensor([true, false], { dtype: 'uint8' })), { dtype: 'uint8', values: [1, 0] });
  assert.deepEqual(read(tensor(7, { dtype: 'int32' })), { dtype: 'int32', values: [7] });
  // Float dtypes take any number: beyond their range it is ±Infinity, NaN stays NaN (as torch).
  assert.deepEqual(read(tensor([1e300, NaN, -Infinity], { dtype: 'float32' })), { dtype: 'float32', values: [Infinity, NaN, -Infinity] });
  assert.deepEqual(read(tensor([1e300, NaN])), { dtype: 'float32', values: [Infinity, NaN] });
  // An unknown dtype is named before any element is looked at.
  assert.throws(() => tensor([NaN], { dtype: 'int7' as DType }), /unknown dtype 'int7'/);
  assert.throws(() => tensor(new Float32Array([NaN]), { dtype: 'int7' as DType }), /unknown dtype 'int7'/);
});

test('typed arrays converted to an integer dtype are checked the same way, by flat index', () => {
  const cases: [ArrayBufferView, DType, RegExp][] = [
    [new Float32Array([1, NaN]), 'int32', /^tensor\(\): element \[1\] is NaN, which int32 cannot hold/],
    [new Float32Array([Infinity]), 'int64', /element \[0\] is Infinity, which int64 cannot hold/],
    [new Float64Array([0, 0, 255.5]), 'uint8', /element \[2\] is 255\.5, outside uint8's range/],
    [new Float64Array([2 ** 63]), 'int64', /element \[0\] is 9223372036854775808, outside int64's range/],
    [new Int32Array([1, 300]), 'uint8', /element \[1\] is 300, outside uint8's range \[0, 255\]/],
    [new Int16Array([-1]), 'uint8', /element \[0\] is -1, outside uint8's range/],
    [new Uint8Array([127, 128]), 'int8', /element \[1\] is 128, outside int8's range \[-128, 127\]/],
    [new BigInt64Array([5n, 2n ** 40n]), 'int32', /element \[1\] is 1099511627776n, outside int32's range/],
  ];
  for (const [data, dtype, message] of cases) {
    assert.throws(() => tensor(data, { dtype }), (err: Error) => err instanceof RangeError && message.test(err.message), `${data.constructor.name} → ${dtype}: ${String(message)}`);
  }
  // The array's shape option does not change the index: it is the position in the array.
  assert.throws(() => tensor(new Float32Array([1, 2, 3, NaN]), { dtype: 'int32', shape: [2, 2] }), /element \[3\] is NaN/);
  // Accepted: fractions truncate toward zero, widening needs no check, no conversion needs none,
  // and float and bool targets take anything.
  assert.deepEqual(read(tensor(new Float32Array([2.9, -2.9, -0.5]), { dtype: 'int32' })), { dtype: 'int32', values: [2, -2, 0] });
  assert.deepEqual(read(tensor(new Float64Array([2 ** 62]), { dtype: 'int64' })), { dtype: 'int64', values: [2n ** 62n] });
  assert.deepEqual(read(tensor(new Int8Array([-128, 127]), { dtype: 'int32' })), { dtype: 'int32', values: [-128, 127] });
  assert.deepEqual(read(tensor(new Uint8Array([255]), { dtype: 'int16' })), { dtype: 'int16', values: [255] });
  assert.deepEqual(read(tensor(new Float32Array([NaN, 1e30]))), { dtype: 'float32', values: [NaN, Math.fround(1e30)] });
  assert.deepEqual(read(tensor(new Int32Array([300, 0]), { dtype: 'bool' })), { dtype: 'bool', values: [1, 0] });
  assert.deepEqual(read(tensor(new Float64Array([1e300]), { dtype: 'float32' })), { dtype: 'float32', values: [Infinity] });
});

test('a large typed array is checked in one quick pass', () => {
  const n = 4_000_000;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (i % 251) - 125.5;
  const started = performance.now();
  const t = tensor(data, { dtype: 'int8' });
  const ms = performance.now() - started;
  assert.equal(t.shape[0], n);
  t.dispose();
  // Generous (a loaded machine): the check is a few ns per element, the conversion about the same.
  assert.ok(ms < 2000, `${ms.toFixed(0)} ms for ${n} elements`);
  data[n - 1] = NaN;
  assert.throws(() => tensor(data, { dtype: 'int8' }), new RegExp(`element \\[${n - 1}\\] is NaN`));
});

// JS numbers are doubles, so they are compared with Python floats: torch.tensor([v], dtype=d) either
// raises ("value cannot be converted to type uint8 without overflow") or gives the values.
// Not compared, deliberately different: Python *ints* out of uint8's range wrap (-1 → 255) where
// deltatune refuses; floats beyond int64's range give torch's undefined INT64_MIN where deltatune
// refuses; and whole floats past 2^53 into int64, which deltatune refuses for JS numbers.
const SUBTLE: [(number | string)[], DType][] = [
  [[255, 0], 'uint8'], [[256], 'uint8'], [[-0.5], 'uint8'], [[-1], 'uint8'], [[0.5, 254.9, 255.5], 'uint8'], [[255.5], 'uint8'],
  [['nan'], 'uint8'], [['inf'], 'uint8'],
  [[-128, 127], 'int8'], [[127.5], 'int8'], [[-128.5], 'int8'], [[-0.5, 2.7, -2.7, 127.9], 'int8'], [[127.9], 'int8'], [[128], 'int8'], [[-129], 'int8'],
  [[32767.9], 'int16'], [[-32768, 32767], 'int16'],
  [['nan'], 'int32'], [['-inf'], 'int32'], [[2147483647, -2147483648.9], 'int32'], [[2147483647.5, -2147483648], 'int32'], [[2147483648], 'int32'],
  [[2.7, -2.7, 9007199254740991], 'int64'], [['nan'], 'int64'], [['inf'], 'int64'], [[1e300], 'int64'],
  [[0, 2, -1, 0.5, 'nan', 'inf', '-inf', -0, 1e-300, 1e300], 'bool'],
];
const PY = `
import json, sys, torch
out = []
for values, dtype in json.loads(sys.stdin.read()):
    try:
        out.append(torch.tensor([float(v) for v in values], dtype=getattr(torch, dtype)).tolist())
    except RuntimeError as e:
        out.append('error: ' + str(e).split(chr(10))[0])
print(json.dumps(out))
`;

test('the subtle cases match PyTorch: which values are refused, and what the others become', () => {
  const expected = JSON.parse(execFileSync(PYTHON, ['-c', PY], { input: JSON.stringify(SUBTLE), encoding: 'utf8' })) as (number[] | boolean[] | string)[];
  const js = (v: number | string) => (typeof v === 'number' ? v : Number(v.replace('inf', 'Infinity').replace('nan', 'NaN')));
  SUBTLE.forEach(([raw, dtype], k) => {
    const values = raw.map(js);
    const torch = expected[k]!;
    const what = `[${raw.join(', ')}] → ${dtype}: torch gives ${JSON.stringify(torch)}`;
    for (const [path, make] of [
      ['array', () => tensor(values, { dtype })],
      ['Float64Array', () => tensor(Float64Array.from(values), { dtype })],
    ] as const) {
      if (typeof torch === 'string') {
        assert.match(torch, /cannot be converted to type \w+ without overflow/, what);
        assert.throws(make, new RegExp(`${dtype}`), `${path} ${what}`);
      } else {
        const got = read(make());
        assert.deepEqual(got.values.map(Number), torch.map(Number), `${path} ${what}`);
      }
    }
  });
});
