// Weights by name: torchvision's published weights ('resnet50.IMAGENET1K_V2', or 'IMAGENET1K_V2' /
// 'DEFAULT' with the model known) and timm's on the Hugging Face hub ('hf-hub:timm/convnext_tiny.fb_in22k',
// or bare 'convnext_tiny.fb_in22k'), where each comes from and where it sits in the cache.
// The hub layer knows model names only as strings: models/ reads it, never the other way round.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { readJsonFile, z } from '../io/json.js';
import type { TorchvisionWeights, WeightsConfig, WeightsPreprocess } from './catalog-types.js';
import { TORCHVISION_WEIGHTS } from './torchvision-weights.js';
import { IMAGENET_CLASSES } from './imagenet-classes.js';

export const DEFAULT_TORCHVISION_URL = 'https://download.pytorch.org/models';
export const DEFAULT_HF_URL = 'https://huggingface.co';

/**
 * timm architectures whose checkpoints load into a zoo model: ResNet has torchvision's key names
 * already (src/models/resnet.ts), ConvNeXt and Swin have a `timm` remap (convnext.ts, swin.ts).
 */
export const TIMM_ARCHITECTURES: Readonly<Record<string, string>> = {
  resnet18: 'resnet18',
  resnet34: 'resnet34',
  resnet50: 'resnet50',
  resnet101: 'resnet101',
  convnext_tiny: 'convnext_tiny',
  convnext_small: 'convnext_small',
  convnext_base: 'convnext_base',
  swin_tiny_patch4_window7_224: 'swin_t',
  swin_small_patch4_window7_224: 'swin_s',
  swin_base_patch4_window7_224: 'swin_b',
};

/** timm architectures that look like a zoo model but whose layout no remap handles, with what to use instead. */
const TIMM_REFUSED: Readonly<Record<string, string>> = {
  vit_base_patch16_224: "vit_b_16 has no remap of timm's ViT layout (src/models/vit.ts); use vit_b_16.IMAGENET1K_V1",
  mobilenetv2_100: "mobilenet_v2 has no remap of timm's MobileNetV2 layout (src/models/mobilenet.ts); use mobilenet_v2.IMAGENET1K_V2",
};

export type WeightsSource =
  | { kind: 'torchvision'; name: string; model: string; entry: TorchvisionWeights }
  | { kind: 'hf'; name: string; repo: string; revision: string; file: string };

/** The hub cache: `DELTATUNE_CACHE`/hub, else `$XDG_CACHE_HOME`/deltatune/hub, else ~/.cache/deltatune/hub. */
export function hubCacheDir(override?: string): string {
  if (override) return override;
  const root = process.env.DELTATUNE_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'deltatune');
  return join(root, 'hub');
}

/** Base URLs: an explicit mirror, else DELTATUNE_TORCHVISION_URL / DELTATUNE_HUB_URL, else the public hosts. */
export function baseUrl(kind: WeightsSource['kind'], mirror?: string): string {
  const env = kind === 'torchvision' ? process.env.DELTATUNE_TORCHVISION_URL : process.env.DELTATUNE_HUB_URL;
  const base = mirror || env || (kind === 'torchvision' ? DEFAULT_TORCHVISION_URL : DEFAULT_HF_URL);
  if (!/^https?:\/\/[^/]/.test(base)) {
    const what = mirror ? '--mirror' : kind === 'torchvision' ? 'DELTATUNE_TORCHVISION_URL' : 'DELTATUNE_HUB_URL';
    throw new Error(`${what} must be an http:// or https:// URL, got '${base}'`);
  }
  return base.replace(/\/+$/, '');
}

const REGISTERED: TorchvisionWeights[] = [];

/** torchvision's published weights, then any added by registerWeights. */
export function knownWeights(): readonly TorchvisionWeights[] {
  return [...TORCHVISION_WEIGHTS, ...REGISTERED];
}

/**
 * Adds weights of one's own to the names resolved like torchvision's (a private mirror's, a test's):
 * 'MODEL.TAG' with an upper-case tag, a file named '…-<sha256 prefix>.<ext>' as torch.hub's are.
 */
export function registerWeights(w: TorchvisionWeights): void {
  if (!/^[a-z0-9_]+\.[A-Z0-9_]+$/.test(w.name) || !w.name.startsWith(`${w.model}.`)) {
    throw new Error(`registerWeights: name '${w.name}' must be '${w.model}.TAG' with an upper-case TAG`);
  }
  const hash = /-([a-f0-9]{8,})\.[a-z]+$/.exec(w.file)?.[1];
  if (hash !== w.sha256Prefix || /[/\\]/.test(w.file)) {
    throw new Error(`registerWeights('${w.name}'): file '${w.file}' must be a bare file name ending in '-${w.sha256Prefix}.<ext>' (its sha256 prefix)`);
  }
  if (knownWeights().some((k) => k.name === w.name)) throw new Error(`registerWeights: '${w.name}' is already known`);
  REGISTERED.push({ ...w });
}

const WEIGHTS_FILE = /\.(pth|pt|safetensors|bin|ckpt)$/i;

/**
 * Whether `weights` is a name rather than a file: an existing file always wins; 'hf-hub:…' is a
 * name; anything with a path separator or a checkpoint extension is a path.
 */
export function isWeightsName(weights: string): boolean {
  if (weights.startsWith('hf-hub:')) return true;
  if (/[/\\]/.test(weights) || WEIGHTS_FILE.test(weights)) return false;
  return !existsSync(weights);
}

const HF_REPO = /^[A-Za-z0-9][A-Za-z0-9_.-]*\/[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const HF_REVISION = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * What a weights name stands for. `model`, when known, completes torchvision's short forms
 * ('IMAGENET1K_V2', 'DEFAULT', 'ResNet50_Weights.IMAGENET1K_V2'). Throws naming the known names
 * for anything else.
 */
export function parseWeightsName(name: string, model?: string): WeightsSource {
  if (name.startsWith('hf-hub:')) {
    const [repo = '', revision = 'main', ...rest] = name.slice('hf-hub:'.length).split('@');
    if (!HF_REPO.test(repo) || repo.includes('..') || !HF_REVISION.test(revision) || revision.includes('..') || rest.length) {
      throw new Error(`weights '${name}': expected hf-hub:ORG/REPO or hf-hub:ORG/REPO@REVISION (letters, digits, '_', '-', '.')`);
    }
    return { kind: 'hf', name, repo, revision, file: 'model.safetensors' };
  }
  const tv = torchvisionEntry(name, model);
  if (tv) return { kind: 'torchvision', name: tv.name, model: tv.model, entry: tv };
  // timm's 'arch.tag' (lower case tags; torchvision's are upper case).
  const m = /^([a-z0-9_]+)\.([a-z0-9_]+)$/.exec(name);
  if (m && (TIMM_ARCHITECTURES[m[1]!] || TIMM_REFUSED[m[1]!])) {
    timmModel(m[1]!, name);
    return { kind: 'hf', name: `hf-hub:timm/${name}`, repo: `timm/${name}`, revision: 'main', file: 'model.safetensors' };
  }
  const forModel = model ? knownWeights().filter((w) => w.model === model).map((w) => w.name) : [];
  throw new Error(
    `unknown weights '${name}': not a file, and not a known name` +
      (forModel.length ? ` (for ${model}: ${forModel.join(', ')}, or hf-hub:ORG/REPO)` : ` (see 'deltatune weights list'; or hf-hub:ORG/REPO, or a timm name such as convnext_tiny.fb_in22k)`),
  );
}

function torchvisionEntry(name: string, model?: string): TorchvisionWeights | undefined {
  const all = knownWeights();
  const exact = all.find((w) => w.name === name || w.enum === name);
  if (exact) return exact;
  const dot = name.lastIndexOf('.');
  const [owner, member] = dot < 0 ? [model, name] : [name.slice(0, dot), name.slice(dot + 1)];
  if (!owner) return undefined;
  const own = all.filter((w) => w.model === owner || w.enum.startsWith(`${owner}.`));
  return member === 'DEFAULT' ? own.find((w) => w.default) : own.find((w) => w.name.endsWith(`.${member}`));
}

/** The zoo model a timm architecture loads into; throws saying why for one that does not. */
export function timmModel(arch: string, where: string): string {
  const model = TIMM_ARCHITECTURES[arch];
  if (model) return model;
  const why = TIMM_REFUSED[arch];
  throw new Error(
    `${where}: timm architecture '${arch}' ${why ? `cannot be loaded: ${why}` : 'is not one the zoo loads'}; supported: ${Object.keys(TIMM_ARCHITECTURES).join(', ')}`,
  );
}

/** One file to fetch: where from, where to in the cache, and the sha256 (or its prefix) it must have. */
export interface HubFile {
  url: string;
  path: string;
  sha256?: string;
  /** Take the sha256 from the server's X-Linked-Etag / ETag when it gives one (Hugging Face's LFS files). */
  sha256FromEtag?: boolean;
}

/** The files a source needs (HF: config.json first, then the weights) and where they go. */
export function sourceFiles(source: WeightsSource, options: { cacheDir?: string; mirror?: string } = {}): { config?: HubFile; weights: HubFile } {
  const hub = hubCacheDir(options.cacheDir);
  if (source.kind === 'torchvision') {
    const { entry } = source;
    // A mirror (option or DELTATUNE_TORCHVISION_URL) holds the files under their published names.
    const mirrored = options.mirror || process.env.DELTATUNE_TORCHVISION_URL;
    const url = mirrored ? `${baseUrl('torchvision', options.mirror)}/${entry.file}` : entry.url;
    return { weights: { url, path: join(hub, 'torchvision', entry.file), sha256: entry.sha256Prefix } };
  }
  const dir = join(hub, 'hf', ...source.repo.split('/'), source.revision);
  const url = (file: string) => `${baseUrl('hf', options.mirror)}/${source.repo}/resolve/${encodeURIComponent(source.revision)}/${file}`;
  return {
    config: { url: url('config.json'), path: join(dir, 'config.json') },
    weights: { url: url(source.file), path: join(dir, source.file), sha256FromEtag: true },
  };
}

const triple = z.tuple([z.number(), z.number(), z.number()]);
const positive = z.number().int().positive();
const hfConfigSchema = z.looseObject({
  architecture: z.string().min(1).optional(),
  num_classes: positive.optional(),
  label_names: z.array(z.string()).optional(),
  pretrained_cfg: z
    .looseObject({
      input_size: z.tuple([positive, positive, positive]).optional(),
      mean: triple.optional(),
      std: triple.optional(),
      crop_pct: z.number().positive().max(1).optional(),
      interpolation: z.string().optional(),
      num_classes: positive.optional(),
      label_names: z.array(z.string()).optional(),
    })
    .optional(),
});

/** timm's config.json (pretrained_cfg) as a zoo model and the preprocessing and classes of its weights. */
export function readHfConfig(path: string, source: Extract<WeightsSource, { kind: 'hf' }>): { model: string; config: WeightsConfig } {
  const c = readJsonFile(path, hfConfigSchema, 'timm config.json');
  // timm names its repos 'arch.tag'; the config's 'architecture' says it for any repo.
  const arch = c.architecture ?? source.repo.split('/')[1]!.split('.')[0]!;
  const model = timmModel(arch, `${path} (${source.name})`);
  const p = c.pretrained_cfg ?? {};
  const numClasses = c.num_classes ?? p.num_classes;
  const labels = c.label_names ?? p.label_names;
  const preprocess: WeightsPreprocess | undefined =
    p.input_size || p.mean || p.std
      ? {
          inputSize: p.input_size ?? [3, 224, 224],
          mean: p.mean ?? [0.485, 0.456, 0.406], // timm's defaults (IMAGENET_DEFAULT_MEAN/STD)
          std: p.std ?? [0.229, 0.224, 0.225],
          ...(p.crop_pct !== undefined ? { cropPct: p.crop_pct } : {}),
          ...(p.interpolation ? { interpolation: p.interpolation } : {}),
        }
      : undefined;
  return {
    model,
    config: {
      ...(preprocess ? { preprocess } : {}),
      ...(numClasses !== undefined ? { numClasses } : {}),
      ...(labels && (numClasses === undefined || labels.length === numClasses) ? { classNames: labels } : {}),
    },
  };
}

/** The config torchvision's weights bring: their preprocessing, classes and ImageNet's names. */
export function torchvisionConfig(entry: TorchvisionWeights): WeightsConfig {
  const pre = entry.preprocess;
  return {
    preprocess: { ...pre, ...(pre.resizeSize ? { cropPct: pre.inputSize[2] / pre.resizeSize } : {}) },
    numClasses: entry.numClasses,
    ...(entry.numClasses === IMAGENET_CLASSES.length ? { classNames: IMAGENET_CLASSES } : {}),
  };
}
