// The main job until `deltatune demo` lands: trains a tiny conv net from scratch on generated
// images (three classes of oriented stripes under heavy noise) and prints the loss falling.
import {
  Tensor, adaptiveAvgPool2d, arange, batchNorm, conv2d, crossEntropy, engineInfo, getNumThreads, keep, kaimingUniform_,
  linear, manualSeed, noGrad, ones, randint, randn, relu, sin, tensor, tidy, zeros,
} from '../src/index.js';
import { AdamW } from '../src/train/optim.js';

const SIZE = 24;
const CLASSES = ['horizontal', 'vertical', 'diagonal'];
const ANGLES = [0, Math.PI / 2, Math.PI / 4];

/** Stripes at 0°, 90° or 45° with random frequency and phase, plus Gaussian noise. */
function makeBatch(n: number): { x: Tensor; y: Tensor } {
  return tidy(() => {
    const y = randint(0, CLASSES.length, [n]);
    const angles = Float64Array.from(y.toArray() as BigInt64Array, (c) => ANGLES[Number(c)]!);
    const cosA = tensor(Float32Array.from(angles, Math.cos), { shape: [n, 1, 1] });
    const sinA = tensor(Float32Array.from(angles, Math.sin), { shape: [n, 1, 1] });
    const coords = arange(SIZE, undefined, 1, { dtype: 'float32' });
    const proj = coords.view([1, SIZE, 1]).mul(cosA).add(coords.view([1, 1, SIZE]).mul(sinA));
    const freq = randn([n, 1, 1]).mul(0.1).add(0.6);
    const phase = randn([n, 1, 1]).mul(3);
    const img = sin(proj.mul(freq).add(phase)).unsqueeze(1);
    const x = img.expand([n, 3, SIZE, SIZE]).add(randn([n, 3, SIZE, SIZE]).mul(1.0));
    return { x, y };
  });
}

function parameter(shape: number[]): Tensor {
  const t = keep(zeros(shape));
  kaimingUniform_(t, { a: Math.sqrt(5) });
  return t.requiresGrad_();
}

manualSeed(7);
const net = {
  c1: parameter([16, 3, 3, 3]),
  bnW: keep(ones([16])).requiresGrad_(),
  bnB: keep(zeros([16])).requiresGrad_(),
  bnMean: keep(zeros([16])),
  bnVar: keep(ones([16])),
  c2: parameter([32, 16, 3, 3]),
  fc: parameter([CLASSES.length, 32]),
  fcB: keep(zeros([CLASSES.length])).requiresGrad_(),
};
const forward = (x: Tensor, training: boolean) => {
  let h = conv2d(x, net.c1, null, { padding: 1 });
  h = relu(batchNorm(h, net.bnMean, net.bnVar, { weight: net.bnW, bias: net.bnB, training }));
  h = relu(conv2d(h, net.c2, null, { stride: 2, padding: 1 }));
  return linear(adaptiveAvgPool2d(h, 1).flatten(1), net.fc, net.fcB);
};
const params = [net.c1, net.bnW, net.bnB, net.c2, net.fc, net.fcB];
const opt = new AdamW(params, { lr: 1e-2, weightDecay: 1e-4 });

console.log(`deltatune engine: libtorch on ${getNumThreads()} threads, BLAS ${engineInfo().blas.split(', ').pop()}`);
console.log(`task: classify ${SIZE}x${SIZE} noisy stripes as ${CLASSES.join(' / ')}; a ${params.reduce((s, p) => s + p.numel, 0)}-parameter conv net`);
const test = keep(makeBatch(512));
const accuracy = () =>
  tidy(() => noGrad(() => forward(test.x, false).argmax(1).eq(test.y).to('float32').mean().item()));

console.log(`accuracy before training: ${(accuracy() * 100).toFixed(1)}% (chance 33.3%)`);
const started = performance.now();
let running = 0;
for (let step = 1; step <= 300; step++) {
  const loss = tidy(() => {
    const { x, y } = makeBatch(32);
    opt.zeroGrad();
    const l = crossEntropy(forward(x, true), y);
    l.backward();
    opt.step();
    return l.item();
  });
  running = step === 1 ? loss : 0.9 * running + 0.1 * loss;
  if (step === 1 || step % 50 === 0) console.log(`step ${String(step).padStart(3)}  loss ${running.toFixed(4)}`);
}
const seconds = (performance.now() - started) / 1000;
console.log(`accuracy after training:  ${(accuracy() * 100).toFixed(1)}% on 512 held-out images (${seconds.toFixed(1)} s)`);
