// The registries as data: method facts and option schemas, model facts, listModels' wildcards,
// `exclude`, the dry run (library and CLI), the README's method table, and frozen-backbone
// execution as stand-in modules swapped into the tree (no redefined forward or train).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BatchNorm2d, Conv2d, FoldedBatchNorm2d, FoldedConv2d, FrozenBatchNorm2d, MODEL_KINDS, applyDelta, createModel, keep, listMethods, listModels,
  loadPeftLora, methodFacts, methodSpec, modelConfig, noGrad, planDelta, randn, savePeftLora, withoutInitialisation, type VisionModel,
} from '../../src/index.js';
import { ROOT, assertClose } from '../helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, DELTATUNE_THREADS: '2' } });
const resnet = () => createModel('resnet18', { numClasses: 4 });

test('every method states its facts and documents every option', () => {
  for (const name of listMethods()) {
    const facts = methodFacts(name);
    const spec = methodSpec(name);
    assert.ok(facts.kinds.length > 0 && facts.kinds.every((k) => MODEL_KINDS.includes(k)), `${name}: kinds`);
    assert.equal(facts.mergeable, spec.merge !== undefined, `${name}: mergeable follows merge`);
    if (!facts.mergeable) assert.match(spec.mergeRefusal ?? '', /\w/, `${name}: says why it cannot merge`);
    assert.ok(facts.defaultLr > 0 && facts.defaultLr < 1, `${name}: defaultLr`);
    for (const o of facts.options) {
      assert.ok(o.doc.length > 10, `${name}.${o.name}: a one-line doc`);
      assert.ok(o.default.length > 0, `${name}.${o.name}: a default`);
    }
  }
  // Every option can be given explicitly with its default's value (the schema accepts its own defaults).
  const model = resnet();
  try {
    for (const name of listMethods().filter((m) => methodFacts(m).kinds.includes('cnn'))) {
      const defaults = applyDelta(model, { method: name, numClasses: 4 });
      const config = { ...defaults.config };
      defaults.dispose();
      const again = applyDelta(model, { method: name, ...config });
      assert.deepEqual(again.config, config, `${name}: explicit defaults give the same config`);
      again.dispose();
    }
  } finally {
    model.dispose();
  }
});

test('models state their facts; listModels takes wildcards as timm does', () => {
  for (const name of listModels()) {
    const c = modelConfig(name);
    assert.ok(MODEL_KINDS.includes(c.kind), `${name}: kind`);
    assert.ok(c.memoryFormat === 'channelsLast' || c.memoryFormat === 'contiguous', `${name}: memoryFormat`);
    assert.equal(typeof c.headInit.type, 'string', `${name}: headInit`);
    assert.ok(c.defaultTargets.lora !== undefined, `${name}: LoRA's default targets`);
  }
  assert.deepEqual(listModels('resnet*'), ['resnet101', 'resnet18', 'resnet34', 'resnet50']);
  assert.deepEqual(listModels(['swin_?', 'vit*'], { exclude: '*_b*' }), ['swin_s', 'swin_t', 'vit_tiny_p4_32']);
  assert.deepEqual(listModels('no_such_*'), []);
  assert.deepEqual(listModels('resnet1.1'), [], 'a dot is literal, not a regex wildcard');
  // MobileNetV2's LoRA targets are data: every 1×1 dense convolution inside an inverted residual.
  const m = withoutInitialisation(() => createModel('mobilenet_v2'));
  try {
    const plan = planDelta(m, { method: 'lora' });
    const dense1x1 = [...m.namedModules()]
      .filter(([n, c]) => /^features\.\d+\.conv\./.test(n) && c instanceof Conv2d && (c.options.groups ?? 1) === 1 && c.kernelSize.join() === '1,1')
      .map(([n]) => n);
    assert.deepEqual([...new Set(plan.added.map((a) => a.owner))], dense1x1);
  } finally {
    m.dispose();
  }
});

test("targets take an exclude (PEFT's exclude_modules); an exclude that removes nothing or everything is refused", () => {
  const model = resnet();
  try {
    const all = planDelta(model, { method: 'lora' });
    const some = planDelta(model, { method: 'lora', exclude: String.raw`layer1\..*` });
    const owners = new Set(some.added.map((a) => a.owner));
    assert.ok(![...owners].some((o) => o.startsWith('layer1.')) && owners.has('layer2.0.conv1'));
    assert.equal(some.added.length, all.added.length - 4 * 3, 'layer1 has four convolutions, each with lora_A, lora_B, lora_dropout');
    assert.deepEqual(planDelta(model, { method: 'ssf', exclude: ['bn1'] }).added.filter((a) => a.owner.endsWith('bn1')), []);
    assert.ok(planDelta(model, { method: 'conv-adapter', exclude: ['layer4.1.conv2'] }).added.every((a) => a.owner !== 'layer4.1.conv2'));
    assert.throws(() => applyDelta(model, { method: 'lora', exclude: 'nothing\\.like\\.this' }), /lora: exclude "nothing\\\\.like\\\\.this" matches none of the 16 targeted modules \(layer1\.0\.conv1/);
    assert.throws(() => applyDelta(model, { method: 'filter-atom', exclude: '.*' }), /removes every targeted module/);
    assert.throws(() => applyDelta(model, { method: 'lora', exclude: '(' }), /lora: invalid exclude pattern '\('/);
    assert.throws(() => applyDelta(model, { method: 'lora', exclude: 5 }), /lora: 'exclude' must be a regular expression string or a list of module names, got 5/);
  } finally {
    model.dispose();
  }
});

test('a PEFT adapter_config.json with exclude_modules loads the same modules PEFT would adapt', () => {
  const dir = mkdtempSync(join(tmpdir(), 'deltatune-exclude-'));
  const model = resnet();
  const fresh = resnet();
  try {
    noGrad(() => fresh.loadStateDict(model.stateDict()));
    const delta = applyDelta(model, { method: 'lora', targets: String.raw`layer\d\.\d\.conv[12]`, exclude: ['layer1.0.conv1'], numClasses: 4 });
    noGrad(() => delta.trainableParameters().forEach((p) => p.add_(0.01)));
    savePeftLora(delta, dir);
    // As PEFT would write it: the broad targets with an exclude (the saver lists resolved names).
    const configPath = join(dir, 'adapter_config.json');
    const cfg = JSON.parse(readFileSync(configPath, 'utf8'));
    writeFileSync(configPath, JSON.stringify({ ...cfg, target_modules: String.raw`layer\d\.\d\.conv[12]`, exclude_modules: ['layer1.0.conv1', 'not.a.module'] }));
    const loaded = loadPeftLora(fresh, dir);
    const x = keep(randn([1, 3, 32, 32]));
    try {
      model.eval();
      fresh.eval();
      assertClose(noGrad(() => fresh.call(x)), noGrad(() => model.call(x)), { rtol: 1e-6, atol: 1e-6, what: 'PEFT adapter with exclude_modules' });
    } finally {
      x.dispose();
      loaded.dispose();
      delta.dispose();
    }
  } finally {
    model.dispose();
    fresh.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('frozen BatchNorm runs as stand-in modules swapped in place, and detach puts the originals back', () => {
  const model = resnet();
  try {
    const namesBefore = model.stateDict();
    const originals = new Map([...model.namedModules()]);
    const x = keep(randn([2, 3, 32, 32]));
    model.eval();
    const base = keep(noGrad(() => model.call(x)));
    // LoRA hooks the convolutions of the blocks, so their BatchNorms cannot fold: they stand in frozen.
    const delta = applyDelta(model, { method: 'lora' });
    const kinds = (cls: abstract new (...a: never[]) => unknown) => [...model.namedModules()].filter(([, m]) => m instanceof cls).map(([n]) => n);
    assert.deepEqual(kinds(FoldedConv2d), ['conv1', 'layer2.0.downsample.0', 'layer3.0.downsample.0', 'layer4.0.downsample.0']);
    assert.deepEqual(kinds(FoldedBatchNorm2d), ['bn1', 'layer2.0.downsample.1', 'layer3.0.downsample.1', 'layer4.0.downsample.1']);
    assert.equal(kinds(FrozenBatchNorm2d).length, 16);
    assert.deepEqual(kinds(BatchNorm2d), [], 'no BatchNorm runs as itself while the delta is attached');
    assert.deepEqual([...model.stateDict().keys()].filter((k) => !k.includes('lora_')), [...namesBefore.keys()], 'stand-ins keep the names');
    // Nothing is redefined on the model or its modules: training mode leaves the frozen statistics alone.
    assert.equal(Object.hasOwn(model, 'train'), false);
    assert.ok([...model.namedModules()].every(([, m]) => !Object.hasOwn(m, 'forward')));
    const meanBefore = keep(noGrad(() => (originals.get('layer1.0.bn1') as BatchNorm2d).running_mean!.clone()));
    model.train();
    noGrad(() => model.call(x));
    assertClose((originals.get('layer1.0.bn1') as BatchNorm2d).running_mean!, meanBefore, { rtol: 0, atol: 0, what: 'running mean of a frozen BatchNorm' });
    model.eval();
    delta.detach();
    assert.ok([...model.namedModules()].every(([n, m]) => originals.get(n) === m), 'every original module is back in place');
    assertClose(noGrad(() => model.call(x)), base, { rtol: 0, atol: 0, what: 'base after detach' });
    delta.dispose();
    x.dispose();
    base.dispose();
    meanBefore.dispose();
  } finally {
    model.dispose();
  }
});

test('planDelta lists what a method would adapt and leaves the model as it was', () => {
  const model = withoutInitialisation(() => createModel('resnet18')) as VisionModel;
  try {
    const before = [...model.namedModules()];
    const plan = planDelta(model, { method: 'mona', stages: [3], numClasses: 7 });
    assert.deepEqual(plan.added.map((a) => a.name), ['layer4.0.mona', 'layer4.1.mona']);
    assert.deepEqual(plan.added.map((a) => a.owner), ['layer4.0', 'layer4.1']);
    assert.ok(plan.added.every((a) => a.type === 'MonaMap' && a.parameters > 0));
    assert.deepEqual(plan.trainedBase, []);
    assert.deepEqual(plan.head, { path: 'fc', classes: 7, fresh: true });
    assert.equal(plan.config.kernels instanceof Array && plan.config.kernels.join(), '3,5,7');
    assert.ok(plan.percent > 0 && plan.percent < 100);
    const bitfit = planDelta(model, { method: 'bitfit' });
    assert.deepEqual(bitfit.added, []);
    assert.ok(bitfit.trainedBase.length > 0 && bitfit.trainedBase.every((n) => n.includes('bias')));
    assert.deepEqual([...model.namedModules()].map(([n]) => n), before.map(([n]) => n), 'no module left behind');
    assert.equal(model.config.numClasses, 1000);
    assert.ok(model.parameters().every((p) => p.requiresGrad), 'nothing left frozen');
  } finally {
    model.dispose();
  }
});

test('deltatune inspect --model M --method X --dry-run lists what would be adapted; --methods prints the registry', () => {
  const r = cli('inspect', '--model', 'resnet18', '--method', 'lora', '--dry-run', '--opt', 'exclude=layer1.*');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^lora on resnet18 \(dry run\): adds 36 modules, trains 0 base parameters and the head/);
  assert.match(r.stdout, /layer2\.0\.conv1\.lora_A +Conv2d +4,608 +in layer2\.0\.conv1/);
  assert.doesNotMatch(r.stdout, /layer1\.0\.conv1\.lora_A/);
  const json = JSON.parse(cli('inspect', '--model', 'resnet18', '--method', 'bitfit', '--dry-run', '--json').stdout);
  assert.equal(json.method, 'bitfit');
  assert.ok(json.trainedBase.includes('layer1.0.bn1.bias'));
  const bad = cli('inspect', '--model', 'resnet18', '--dry-run');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--dry-run needs --method/);
  const unknown = cli('inspect', '--model', 'resnet9000', '--method', 'lora', '--dry-run');
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /--model: unknown model 'resnet9000'; available: .*resnet18/);
  const transformerOnly = cli('inspect', '--model', 'resnet18', '--method', 'adapter', '--dry-run');
  assert.equal(transformerOnly.status, 1);
  assert.match(transformerOnly.stderr, /adapter: applies to transformers; resnet18 is a CNN\. For CNNs use .*mona/);
  const methods = cli('inspect', '--methods');
  assert.equal(methods.status, 0, methods.stderr);
  for (const m of listMethods()) assert.match(methods.stdout, new RegExp(`^${m}: `, 'm'));
  assert.match(methods.stdout, /--opt rank=\.\.\. +rank r of each update B·A \(default 8 on CNNs, 64 on transformers\)/);
});

test("the README's method table is the registry's (deltatune inspect --methods --markdown)", () => {
  const table = cli('inspect', '--methods', '--markdown');
  assert.equal(table.status, 0, table.stderr);
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  assert.ok(readme.includes(table.stdout.trim()), 'README.md holds the output of `deltatune inspect --methods --markdown`; paste it in again');
});
