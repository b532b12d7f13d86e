// Model registry: names → factories with their configs, and createModel, which builds a model
// and loads a weights file (torchvision or timm names) into it.
import { Tensor, noGrad } from '../engine/index.js';
import { loadStateDict } from '../io/state-dict.js';
import { MODEL_KINDS, type ModelConfig, type VisionModel } from './base.js';
import { withoutInitialisation } from '../nn/init.js';
import { cachedWeights, isWeightsName, weightsLocation, type WeightsConfig } from '../hub/index.js';

export interface ModelFactoryOptions {
  numClasses: number;
  /** Stochastic-depth rate where the family has one. */
  dropPath?: number;
}

/** Renames a foreign checkpoint's keys (e.g. timm's) to this family's torchvision names. */
export type KeyRemap = (state: Map<string, Tensor>) => Map<string, Tensor>;

interface Entry {
  factory: (options: ModelFactoryOptions) => VisionModel;
  config: ModelConfig;
  /** Named remaps of foreign checkpoint layouts, tried when torchvision names do not match. */
  remaps: Record<string, { detect: (keys: string[]) => boolean; remap: KeyRemap }>;
}

const registry = new Map<string, Entry>();

export function registerModel(
  config: ModelConfig,
  factory: (options: ModelFactoryOptions) => VisionModel,
  remaps: Entry['remaps'] = {},
): void {
  if (registry.has(config.name)) throw new Error(`registerModel: '${config.name}' is already registered`);
  if (!MODEL_KINDS.includes(config.kind)) throw new Error(`registerModel('${config.name}'): kind must be one of ${MODEL_KINDS.join(', ')}, got ${JSON.stringify(config.kind)}`);
  if (config.memoryFormat !== 'channelsLast' && config.memoryFormat !== 'contiguous') {
    throw new Error(`registerModel('${config.name}'): memoryFormat must be 'channelsLast' or 'contiguous', got ${JSON.stringify(config.memoryFormat)}`);
  }
  if (typeof config.headInit?.type !== 'string' || typeof config.defaultTargets !== 'object' || config.defaultTargets === null) {
    throw new Error(`registerModel('${config.name}'): the config needs headInit and defaultTargets (see ModelConfig)`);
  }
  registry.set(config.name, { factory, config, remaps });
}

/**
 * Registered model names, sorted; as timm's list_models, `filter` keeps the names matching any of
 * its shell-style wildcard patterns ('resnet*', 'swin_?', '*vit*') and `exclude` drops matches.
 */
export function listModels(filter?: string | readonly string[], options: { exclude?: string | readonly string[] } = {}): string[] {
  const keep = patterns(filter);
  const drop = patterns(options.exclude);
  return [...registry.keys()].filter((n) => (keep.length === 0 || keep.some((re) => re.test(n))) && !drop.some((re) => re.test(n))).sort();
}

function patterns(p: string | readonly string[] | undefined): RegExp[] {
  const list = p === undefined ? [] : typeof p === 'string' ? [p] : p;
  return list.map((glob) => new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`));
}

export function modelConfig(name: string): ModelConfig {
  return { ...entry(name).config };
}

function entry(name: string): Entry {
  const e = registry.get(name);
  if (!e) throw new Error(`unknown model '${name}'; available: ${listModels().join(', ')}`);
  return e;
}

export interface CreateModelOptions {
  /** Output classes; defaults to the checkpoint's (or the config's 1000). */
  numClasses?: number;
  /**
   * A weights file (.safetensors, .pth or .pt; torchvision or timm key names), or a weights name
   * whose file is already in the hub cache: 'resnet50.IMAGENET1K_V2' (or 'IMAGENET1K_V2',
   * 'DEFAULT'), 'hf-hub:timm/convnext_tiny.fb_in22k', 'convnext_tiny.fb_in22k'. createModel never
   * downloads: `await resolveWeights(name)` (or `deltatune weights fetch NAME`) first. Named weights
   * set the config's mean, std, input size, crop and class names.
   */
  weights?: string;
  /** The hub cache to look names up in (default hubCacheDir()). */
  cacheDir?: string;
  /** Which key layout the file uses; 'auto' (default) detects it. */
  weightsFormat?: 'auto' | 'torchvision' | string;
  dropPath?: number;
}

/** Builds a registered model, optionally loading a weights file and resizing the head. */
export function createModel(name: string, options: CreateModelOptions = {}): VisionModel {
  const e = entry(name);
  if (options.weights === undefined) {
    return e.factory({ numClasses: options.numClasses ?? e.config.numClasses, dropPath: options.dropPath });
  }
  let path = options.weights;
  let named: { name: string; config: WeightsConfig } | null = null;
  if (isWeightsName(options.weights)) {
    const found = cachedWeights(options.weights, { model: name, cacheDir: options.cacheDir });
    if (!found) {
      const { path: where } = weightsLocation(options.weights, { model: name, cacheDir: options.cacheDir });
      throw new Error(`createModel('${name}'): weights '${options.weights}' are not in the cache (${where}); fetch them first: deltatune weights fetch ${options.weights}`);
    }
    path = found.path;
    named = { name: found.name!, config: found.config };
  }
  let state = loadStateDict(path);
  try {
    state = remapKeys(name, e, state, options.weightsFormat ?? 'auto');
    const headKey = `${e.config.classifier}.weight`;
    const head = state.get(headKey);
    const checkpointClasses = head ? head.shape[0]! : e.config.numClasses;
    const numClasses = options.numClasses ?? checkpointClasses;
    // Build with the checkpoint's head so every key loads strictly, then swap the head if asked.
    // Random initialisation would be overwritten by the strict load, so it is skipped.
    const model = withoutInitialisation(() => e.factory({ numClasses: checkpointClasses, dropPath: options.dropPath }));
    try {
      model.loadStateDict(state, { strict: true, source: path });
      model.config.weightsFile = path;
      if (named) Object.assign(model.config, configWithWeights(model.config, named.name, named.config));
      if (numClasses !== checkpointClasses) model.resetClassifier(numClasses);
    } catch (err) {
      model.dispose();
      throw err;
    }
    return model;
  } finally {
    noGrad(() => {
      for (const t of state.values()) t.dispose();
    });
  }
}

/**
 * A config with what named weights bring (timm's pretrained_cfg idea): their input size, mean,
 * std, crop and interpolation, and their class names when they name `config.numClasses` outputs.
 */
export function configWithWeights(config: ModelConfig, name: string, w: WeightsConfig): ModelConfig {
  const out: ModelConfig = { ...config, weightsName: name };
  const p = w.preprocess;
  if (p) {
    out.inputSize = [...p.inputSize];
    out.mean = [...p.mean];
    out.std = [...p.std];
    if (p.cropPct !== undefined) out.cropPct = p.cropPct;
    if (p.interpolation !== undefined) out.interpolation = p.interpolation;
  }
  if (w.classNames && w.classNames.length === config.numClasses) out.classNames = w.classNames;
  return out;
}

function remapKeys(name: string, e: Entry, state: Map<string, Tensor>, format: string): Map<string, Tensor> {
  if (format === 'torchvision') return state;
  if (format !== 'auto') {
    const r = e.remaps[format];
    if (!r) throw new Error(`createModel('${name}'): unknown weightsFormat '${format}'; known: torchvision, ${Object.keys(e.remaps).join(', ') || '(none)'}`);
    return r.remap(state);
  }
  const keys = [...state.keys()];
  for (const r of Object.values(e.remaps)) if (r.detect(keys)) return r.remap(state);
  return state;
}
