// One configuration of `npm run bench:methods` in its own process, so its peak memory is its own:
// builds the model, applies the method, runs warm-up and timed AdamW steps, prints one JSON line.
import { AdamW, applyDelta, crossEntropy, keep, manualSeed, peakRssMiB, randint, randn, tidy, noGrad, type Tensor } from '../src/index.js';
import { createModel } from '../src/models/index.js';

const [modelName, method, optionsJson = '{}'] = process.argv.slice(2);
const options = JSON.parse(optionsJson) as Record<string, unknown> & { channelsLast?: boolean; steps?: number; batch?: number };
const { channelsLast = false, steps = 3, batch = 8, ...deltaOptions } = options;

manualSeed(0);
const model = createModel(modelName!);
const delta = applyDelta(model, { method: method!, numClasses: 10, ...deltaOptions });
if (channelsLast) {
  // Weights and input in NHWC: oneDNN's preferred layout for convolutions.
  noGrad(() => {
    for (const t of [...model.parameters(), ...model.buffers()]) {
      if (t.ndim !== 4) continue;
      const cl = t.contiguous('channelsLast');
      if (cl !== t) {
        t.setData(cl);
        cl.dispose();
      }
    }
  });
}
const opt = new AdamW(delta.trainableParameters(), { lr: 1e-4 });
let x: Tensor = keep(randn([batch, 3, 224, 224]));
if (channelsLast) x = keep(x.contiguous('channelsLast'));
const y = keep(randint(0, 10, [batch]));
model.train();
const step = () =>
  tidy(() => {
    opt.zeroGrad();
    crossEntropy(model.call(x), y).backward();
    opt.step();
  });
step();
step();
const times: number[] = [];
for (let i = 0; i < steps; i++) {
  const t0 = performance.now();
  step();
  times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
const s = delta.summary();
console.log(JSON.stringify({
  model: modelName, method, options: deltaOptions, channelsLast,
  msPerStep: times[times.length >> 1], peakRssMiB: peakRssMiB(),
  trainablePct: s.percent, trainable: s.trainable, deltaBytes: s.bytes,
}));
