// A ResNet-18 written with the functional ops only (torchvision's architecture, BatchNorm in
// training mode), used by the engine benchmark to measure the engine without the nn layer.
import { Tensor, keep, zeros, ones, kaimingNormal_, uniform_, conv2d, batchNorm, relu, maxPool2d, adaptiveAvgPool2d, linear } from '../src/index.js';

interface BN {
  weight: Tensor;
  bias: Tensor;
  runningMean: Tensor;
  runningVar: Tensor;
}
interface Block {
  conv1: Tensor;
  bn1: BN;
  conv2: Tensor;
  bn2: BN;
  down?: { conv: Tensor; bn: BN };
  stride: number;
}

export interface FunctionalResNet18 {
  params: Tensor[];
  buffers: Tensor[];
  forward(x: Tensor): Tensor;
}

export function functionalResNet18(numClasses: number): FunctionalResNet18 {
  const params: Tensor[] = [];
  const buffers: Tensor[] = [];
  const convW = (out: number, inp: number, k: number) => {
    const w = keep(zeros([out, inp, k, k]));
    kaimingNormal_(w, { mode: 'fanOut', nonlinearity: 'relu' });
    params.push(w.requiresGrad_());
    return w;
  };
  const bn = (c: number): BN => {
    const b: BN = {
      weight: keep(ones([c])).requiresGrad_(),
      bias: keep(zeros([c])).requiresGrad_(),
      runningMean: keep(zeros([c])),
      runningVar: keep(ones([c])),
    };
    params.push(b.weight, b.bias);
    buffers.push(b.runningMean, b.runningVar);
    return b;
  };
  const stem = { conv: convW(64, 3, 7), bn: bn(64) };
  const blocks: Block[] = [];
  let inC = 64;
  for (const [outC, stride] of [[64, 1], [128, 2], [256, 2], [512, 2]] as const) {
    for (let i = 0; i < 2; i++) {
      const s = i === 0 ? stride : 1;
      const block: Block = { conv1: convW(outC, inC, 3), bn1: bn(outC), conv2: convW(outC, outC, 3), bn2: bn(outC), stride: s };
      if (s !== 1 || inC !== outC) block.down = { conv: convW(outC, inC, 1), bn: bn(outC) };
      blocks.push(block);
      inC = outC;
    }
  }
  const fcW = keep(zeros([numClasses, 512]));
  const fcB = keep(zeros([numClasses]));
  const bound = 1 / Math.sqrt(512);
  uniform_(fcW, -bound, bound);
  uniform_(fcB, -bound, bound);
  params.push(fcW.requiresGrad_(), fcB.requiresGrad_());

  const norm = (x: Tensor, b: BN) => batchNorm(x, b.runningMean, b.runningVar, { weight: b.weight, bias: b.bias, training: true });
  return {
    params,
    buffers,
    forward(x: Tensor): Tensor {
      let h = relu(norm(conv2d(x, stem.conv, null, { stride: 2, padding: 3 }), stem.bn));
      h = maxPool2d(h, 3, { stride: 2, padding: 1 });
      for (const b of blocks) {
        let out = relu(norm(conv2d(h, b.conv1, null, { stride: b.stride, padding: 1 }), b.bn1));
        out = norm(conv2d(out, b.conv2, null, { padding: 1 }), b.bn2);
        const identity = b.down ? norm(conv2d(h, b.down.conv, null, { stride: b.stride }), b.down.bn) : h;
        h = relu(out.add(identity));
      }
      return linear(adaptiveAvgPool2d(h, 1).flatten(1), fcW, fcB);
    },
  };
}
