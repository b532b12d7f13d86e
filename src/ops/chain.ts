// Method forms of the functional ops (x.add(y).relu()), installed on Tensor's prototype.
// Each method is the functional op with the tensor as its first argument.
import { Tensor } from '../engine/tensor.js';
import * as pw from './pointwise.js';
import * as sh from './shape.js';
import * as rd from './reduce.js';
import * as la from './linalg.js';
import * as act from './activation.js';
import * as init from './init.js';

const methods = {
  add: pw.add, sub: pw.sub, mul: pw.mul, div: pw.div, pow: pw.pow, remainder: pw.remainder,
  maximum: pw.maximum, minimum: pw.minimum, addcmul: pw.addcmul, addcdiv: pw.addcdiv, lerp: pw.lerp,
  eq: pw.eq, ne: pw.ne, lt: pw.lt, le: pw.le, gt: pw.gt, ge: pw.ge, clamp: pw.clamp,
  neg: pw.neg, abs: pw.abs, sign: pw.sign, exp: pw.exp, log: pw.log, sqrt: pw.sqrt, rsqrt: pw.rsqrt,
  square: pw.square, reciprocal: pw.reciprocal, erf: pw.erf, floor: pw.floor, round: pw.round,
  add_: pw.add_, sub_: pw.sub_, mul_: pw.mul_, div_: pw.div_, addcmul_: pw.addcmul_, addcdiv_: pw.addcdiv_,
  lerp_: pw.lerp_, clamp_: pw.clamp_, sqrt_: pw.sqrt_,
  zero_: init.zero_, fill_: init.fill_, copy_: init.copy_, uniform_: init.uniform_, normal_: init.normal_,
  reshape: sh.reshape, view: sh.view, flatten: sh.flatten, unflatten: sh.unflatten, permute: sh.permute,
  transpose: sh.transpose, squeeze: sh.squeeze, unsqueeze: sh.unsqueeze, expand: sh.expand, expandAs: sh.expandAs,
  repeat: sh.repeat, split: sh.split, chunk: sh.chunk, narrow: sh.narrow, select: sh.select,
  indexSelect: sh.indexSelect, gather: sh.gather, roll: sh.roll, flip: sh.flip,
  sum: rd.sum, mean: rd.mean, max: rd.max, min: rd.min, argmax: rd.argmax, argmin: rd.argmin,
  variance: rd.variance, std: rd.std, topk: rd.topk, sort: rd.sort, norm: rd.norm,
  matmul: la.matmul,
  relu: act.relu, gelu: act.gelu, silu: act.silu, sigmoid: act.sigmoid, tanh: act.tanh,
  softmax: act.softmax, logSoftmax: act.logSoftmax,
};

type Methods = typeof methods;
type AsMethod<F> = F extends (self: Tensor, ...args: infer A) => infer R ? (...args: A) => R : never;
type TensorMethods = { [K in keyof Methods]: AsMethod<Methods[K]> };

declare module '../engine/tensor.js' {
  // eslint-disable-next-line @typescript-eslint/no-empty-interface
  interface Tensor extends TensorMethods {}
}

for (const [name, fn] of Object.entries(methods) as [string, (self: Tensor, ...args: unknown[]) => unknown][]) {
  Object.defineProperty(Tensor.prototype, name, {
    value: function (this: Tensor, ...args: unknown[]) {
      return fn(this, ...args);
    },
    writable: true,
    configurable: true,
  });
}
