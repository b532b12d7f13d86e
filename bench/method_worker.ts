// Worker of `npm run bench:methods`, in one of two modes:
//   memory <model> <method> [optionsJson]  one configuration alone in this process (so its peak
//       resident memory is its own): five AdamW steps; prints one JSON line.
//   time <model> <configsJson> [rounds]  every configuration built side by side in this process,
//       then rounds of one training step each, alternating the order, so drift in machine speed
//       hits all of them alike; prints one JSON line with every step time.
// Both use channels-last weights and input (oneDNN's faster layout, for full fine-tuning and the
// methods alike) and batch 8 at 224×224, unless the options say otherwise.
import { AdamW, applyDelta, crossEntropy, keep, manualSeed, peakRssMiB, randint, randn, tidy, type Tensor } from '../src/index.js';
import { createModel } from '../src/models/index.js';

interface Config { method: string; options?: Record<string, unknown> }

function build(modelName: string, config: Config, x: Tensor, y: Tensor) {
  const { channelsLast = true, ...deltaOptions } = (config.options ?? {}) as Record<string, unknown> & { channelsLast?: boolean };
  manualSeed(0);
  const model = createModel(modelName);
  const delta = applyDelta(model, { method: config.method, numClasses: 10, ...deltaOptions });
  if (channelsLast) model.toMemoryFormat('channelsLast');
  const opt = new AdamW(delta.trainableParameters(), { lr: 1e-4 });
  model.train();
  const input = channelsLast ? x : x.contiguous();
  const step = () =>
    tidy(() => {
      opt.zeroGrad();
      crossEntropy(model.call(input), y).backward();
      opt.step();
    });
  return { step, summary: delta.summary() };
}

const [mode, modelName, ...rest] = process.argv.slice(2);
const x = keep(randn([8, 3, 224, 224]).contiguous('channelsLast'));
const y = keep(randint(0, 10, [8]));

if (mode === 'memory') {
  const [method, optionsJson = '{}'] = rest;
  const { step, summary } = build(modelName!, { method: method!, options: JSON.parse(optionsJson) }, x, y);
  for (let i = 0; i < 5; i++) step();
  console.log(JSON.stringify({ peakRssMiB: peakRssMiB(), trainablePct: summary.percent, trainable: summary.trainable, deltaBytes: summary.bytes }));
} else if (mode === 'time') {
  const [configsJson, roundsArg = '5'] = rest;
  const configs = JSON.parse(configsJson!) as Config[];
  // A method that does not apply to this model (e.g. adapter on a CNN) is reported, not timed.
  const errors: (string | null)[] = configs.map(() => null);
  const built = configs.map((c, i) => {
    try {
      return build(modelName!, c, x, y);
    } catch (err) {
      errors[i] = (err as Error).message;
      return null;
    }
  });
  const live = [...built.keys()].filter((i) => built[i]);
  for (const i of live) {
    built[i]!.step();
    built[i]!.step();
  }
  const times = configs.map(() => [] as number[]);
  for (let r = 0; r < Number(roundsArg); r++) {
    for (const i of r % 2 ? [...live].reverse() : live) {
      const t0 = performance.now();
      built[i]!.step();
      times[i]!.push(performance.now() - t0);
    }
  }
  console.log(JSON.stringify({ times, errors }));
} else {
  throw new Error(`method_worker: mode must be 'memory' or 'time', got '${String(mode)}'`);
}
