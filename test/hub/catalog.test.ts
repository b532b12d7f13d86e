// The weights catalog without a network: the generated torchvision table agrees with the zoo, names
// parse as torchvision and timm users write them, and the cache and mirrors follow the environment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { listModels, modelConfig } from '../../src/models/index.js';
import {
  DEFAULT_TORCHVISION_URL, IMAGENET_CLASSES, TIMM_ARCHITECTURES, baseUrl, createTransferProgress, hubCacheDir, isWeightsName, knownWeights, parseWeightsName,
} from '../../src/hub/index.js';
import { ROOT } from '../helpers.js';

test('every catalog entry is for a registered model, fits its input size, and carries its hash in its file name', () => {
  const zoo = listModels();
  assert.ok(knownWeights().length >= 16);
  for (const w of knownWeights()) {
    assert.ok(zoo.includes(w.model), `${w.name}: model ${w.model} is not registered`);
    assert.equal(w.url, `${DEFAULT_TORCHVISION_URL}/${w.file}`, w.name);
    assert.match(w.file, new RegExp(`-${w.sha256Prefix}\\.pth$`), w.name);
    assert.match(w.sha256Prefix, /^[0-9a-f]{8,}$/);
    assert.deepEqual(w.preprocess.inputSize, modelConfig(w.model).inputSize, `${w.name}: input size`);
    assert.equal(w.numClasses, IMAGENET_CLASSES.length);
  }
  assert.equal(IMAGENET_CLASSES[0], 'tench');
  for (const m of zoo.filter((n) => n !== 'vit_tiny_p4_32')) {
    assert.equal(knownWeights().filter((w) => w.model === m && w.default).length, 1, `${m} has one DEFAULT`);
  }
  for (const [arch, model] of Object.entries(TIMM_ARCHITECTURES)) assert.ok(zoo.includes(model), `timm ${arch} → ${model} is not registered`);
});

test('names as torchvision and timm users write them', () => {
  const tv = (name: string, model?: string) => {
    const s = parseWeightsName(name, model);
    assert.equal(s.kind, 'torchvision', name);
    return s.name;
  };
  assert.equal(tv('resnet50.IMAGENET1K_V2'), 'resnet50.IMAGENET1K_V2');
  assert.equal(tv('IMAGENET1K_V1', 'resnet50'), 'resnet50.IMAGENET1K_V1');
  assert.equal(tv('DEFAULT', 'resnet50'), 'resnet50.IMAGENET1K_V2');
  assert.equal(tv('resnet50.DEFAULT'), 'resnet50.IMAGENET1K_V2');
  assert.equal(tv('ResNet50_Weights.IMAGENET1K_V1'), 'resnet50.IMAGENET1K_V1');
  assert.equal(tv('Swin_T_Weights.DEFAULT'), 'swin_t.IMAGENET1K_V1');
  assert.deepEqual(parseWeightsName('hf-hub:timm/convnext_tiny.fb_in22k'), { kind: 'hf', name: 'hf-hub:timm/convnext_tiny.fb_in22k', repo: 'timm/convnext_tiny.fb_in22k', revision: 'main', file: 'model.safetensors' });
  assert.equal((parseWeightsName('hf-hub:someone/my-model@v1.0') as { revision: string }).revision, 'v1.0');
  assert.equal(parseWeightsName('swin_tiny_patch4_window7_224.ms_in1k').name, 'hf-hub:timm/swin_tiny_patch4_window7_224.ms_in1k');
  for (const bad of ['hf-hub:../../etc', 'hf-hub:timm/x@../y', 'hf-hub:timm', 'hf-hub:a/b/c']) {
    assert.throws(() => parseWeightsName(bad), /expected hf-hub:ORG\/REPO/, bad);
  }
  assert.throws(() => parseWeightsName('vit_base_patch16_224.augreg_in21k'), /timm architecture 'vit_base_patch16_224' cannot be loaded: vit_b_16 has no remap of timm's ViT layout/);
  assert.throws(() => parseWeightsName('imagenet', 'swin_t'), /unknown weights 'imagenet': not a file, and not a known name \(for swin_t: swin_t\.IMAGENET1K_V1, or hf-hub:ORG\/REPO\)/);
  assert.throws(() => parseWeightsName('resnet50.IMAGENET1K_V9'), /unknown weights 'resnet50\.IMAGENET1K_V9'.*deltatune weights list/);
  // Names vs files: an existing file, a path or a checkpoint extension is a file.
  assert.equal(isWeightsName('resnet50.IMAGENET1K_V2'), true);
  assert.equal(isWeightsName('hf-hub:timm/resnet50.a1_in1k'), true);
  assert.equal(isWeightsName('weights/r50'), false);
  assert.equal(isWeightsName('r50.pth'), false);
  process.chdir(ROOT);
  assert.equal(isWeightsName('README.md'), false, 'an existing file is a file');
});

test('the cache and the mirrors follow the environment', () => {
  const saved = { ...process.env };
  try {
    delete process.env.DELTATUNE_CACHE;
    delete process.env.XDG_CACHE_HOME;
    assert.equal(hubCacheDir(), join(homedir(), '.cache', 'deltatune', 'hub'));
    process.env.XDG_CACHE_HOME = '/x/cache';
    assert.equal(hubCacheDir(), '/x/cache/deltatune/hub');
    process.env.DELTATUNE_CACHE = '/y';
    assert.equal(hubCacheDir(), '/y/hub');
    assert.equal(hubCacheDir('/z'), '/z');
    assert.equal(baseUrl('hf'), 'https://huggingface.co');
    process.env.DELTATUNE_HUB_URL = 'http://mirror.local/hf/';
    assert.equal(baseUrl('hf'), 'http://mirror.local/hf');
    assert.equal(baseUrl('hf', 'https://other'), 'https://other');
    process.env.DELTATUNE_TORCHVISION_URL = 'ftp://nope';
    assert.throws(() => baseUrl('torchvision'), /DELTATUNE_TORCHVISION_URL must be an http:\/\/ or https:\/\/ URL, got 'ftp:\/\/nope'/);
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
});

test('transfer progress: plain lines at the start and each quarter, nothing when quiet', () => {
  const lines: string[] = [];
  const stream = { isTTY: false, write: (s: string) => lines.push(s.trimEnd()) } as unknown as NodeJS.WriteStream;
  const p = createTransferProgress('auto', stream);
  p.start('resnet18.IMAGENET1K_V1', 4 * 2 ** 20, 2 ** 20);
  for (let i = 1; i <= 12; i++) p.update(2 ** 20 + i * 2 ** 18);
  p.stop();
  assert.deepEqual(lines, [
    'resnet18.IMAGENET1K_V1: 4.0 MiB (resuming at 1.0 MiB)',
    '  resnet18.IMAGENET1K_V1: 2.0/4.0 MiB',
    '  resnet18.IMAGENET1K_V1: 3.0/4.0 MiB',
    '  resnet18.IMAGENET1K_V1: 4.0/4.0 MiB',
  ]);
  const quiet: string[] = [];
  const q = createTransferProgress('quiet', { isTTY: true, write: (s: string) => quiet.push(s) } as unknown as NodeJS.WriteStream);
  q.start('x', 10, 0);
  q.update(10);
  q.message('hello');
  assert.deepEqual(quiet, []);
});
