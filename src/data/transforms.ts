// Transform options (torchvision/timm conventions) and the per-sample random parameters they
// imply. The pixel work itself happens in sharp (files) or libtorch (in-memory arrays): see
// pipeline.ts and loader.ts. Everything random here is drawn from an Rng the caller seeds.
import { type Rng, roundHalfEven } from './random.js';

export interface TransformOptions {
  /** Square output side. */
  size: number;
  /** Random augmentation on/off: false ignores randomResizedCrop, hflip and colorJitter. */
  train: boolean;
  /**
   * torchvision RandomResizedCrop: a crop of random area fraction `scale` and aspect ratio
   * `ratio` (log-uniform), 10 attempts then a centre fallback, resized to size×size.
   * Train default { scale: [0.08, 1], ratio: [3/4, 4/3] }; false = no random crop.
   */
  randomResizedCrop?: { scale: [number, number]; ratio: [number, number] } | false;
  /** Horizontal flip probability; train default 0.5, eval 0. */
  hflip?: number;
  /**
   * torchvision ColorJitter factors (default off): brightness, contrast, saturation drawn from
   * [max(0, 1-x), 1+x], hue from [-x, x] (x ≤ 0.5), applied in a random order.
   */
  colorJitter?: { brightness?: number; contrast?: number; saturation?: number; hue?: number } | false;
  /**
   * Without a random crop: resize the shorter side to floor(size / cropPct), then take the centre
   * size×size (timm's crop_pct; 0.875 gives torchvision's Resize(256) + CenterCrop(224)).
   * In-memory ArrayDatasets (MNIST-like) ignore it and resize the whole image to size×size,
   * so small digits are never cut.
   */
  cropPct?: number;
  /** Normalisation mean per RGB channel (default ImageNet's). */
  mean?: [number, number, number];
  std?: [number, number, number];
}

export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];
const DEFAULT_RRC = { scale: [0.08, 1] as [number, number], ratio: [3 / 4, 4 / 3] as [number, number] };

/** Training transform: RandomResizedCrop + flip 0.5, ImageNet normalisation, then overrides. */
export function trainTransform(size: number, overrides: Partial<TransformOptions> = {}): TransformOptions {
  const t: TransformOptions = {
    size, train: true, randomResizedCrop: { scale: [...DEFAULT_RRC.scale], ratio: [...DEFAULT_RRC.ratio] },
    hflip: 0.5, colorJitter: false, cropPct: 0.875, mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD],
    ...overrides,
  };
  resolveTransform(t, 'trainTransform');
  return t;
}

/** Evaluation transform: resize + centre crop (cropPct), no randomness, then overrides. */
export function evalTransform(size: number, overrides: Partial<TransformOptions> = {}): TransformOptions {
  const t: TransformOptions = {
    size, train: false, randomResizedCrop: false, hflip: 0, colorJitter: false, cropPct: 0.875,
    mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD], ...overrides,
  };
  resolveTransform(t, 'evalTransform');
  return t;
}

export interface Jitter {
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

/** Transform options with defaults filled in and values checked. */
export interface ResolvedTransform {
  size: number;
  train: boolean;
  rrc: { scale: [number, number]; ratio: [number, number] } | null;
  hflip: number;
  jitter: Jitter | null;
  cropPct: number;
  mean: [number, number, number];
  std: [number, number, number];
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const fmt = (v: unknown): string => (typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));

function pair(v: unknown, what: string, ok: (a: number, b: number) => boolean, rule: string): [number, number] {
  if (!Array.isArray(v) || v.length !== 2 || !isNum(v[0]) || !isNum(v[1]) || !ok(v[0], v[1])) {
    throw new RangeError(`${what} must be [min, max] with ${rule}, got ${fmt(v)}`);
  }
  return [v[0], v[1]];
}

function triple(v: unknown, what: string, positive: boolean): [number, number, number] {
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => isNum(x) && (!positive || x > 0))) {
    throw new RangeError(`${what} must be 3 ${positive ? 'positive ' : ''}numbers (R, G, B), got ${fmt(v)}`);
  }
  return [v[0], v[1], v[2]];
}

function checkCropPct(v: unknown, what: string): number {
  const cropPct = v ?? 0.875;
  if (!isNum(cropPct) || cropPct <= 0 || cropPct > 1) throw new RangeError(`${what}.cropPct must be in (0, 1], got ${fmt(cropPct)}`);
  return cropPct;
}

/** Fills defaults (by `train`) and validates; errors name the option and its value. */
export function resolveTransform(t: TransformOptions, what = 'transform'): ResolvedTransform {
  if (!t || typeof t !== 'object') throw new TypeError(`${what} must be transform options (see trainTransform/evalTransform), got ${fmt(t)}`);
  const { size, train } = t;
  if (!Number.isInteger(size) || size < 1 || size > 8192) throw new RangeError(`${what}.size must be an integer in [1, 8192], got ${fmt(size)}`);
  if (typeof train !== 'boolean') throw new TypeError(`${what}.train must be a boolean, got ${fmt(train)}`);

  let rrc: ResolvedTransform['rrc'] = null;
  const r = t.randomResizedCrop === undefined ? (train ? DEFAULT_RRC : false) : t.randomResizedCrop;
  if (r !== false) {
    if (!r || typeof r !== 'object') throw new TypeError(`${what}.randomResizedCrop must be { scale, ratio } or false, got ${fmt(r)}`);
    rrc = {
      scale: pair(r.scale ?? DEFAULT_RRC.scale, `${what}.randomResizedCrop.scale`, (a, b) => a > 0 && a <= b && b <= 1, '0 < min ≤ max ≤ 1'),
      ratio: pair(r.ratio ?? DEFAULT_RRC.ratio, `${what}.randomResizedCrop.ratio`, (a, b) => a > 0 && a <= b, '0 < min ≤ max'),
    };
  }
  const hflip = t.hflip ?? (train ? 0.5 : 0);
  if (!isNum(hflip) || hflip < 0 || hflip > 1) throw new RangeError(`${what}.hflip must be a probability in [0, 1], got ${fmt(hflip)}`);

  let jitter: Jitter | null = null;
  const cj = t.colorJitter ?? false;
  if (cj !== false) {
    if (!cj || typeof cj !== 'object') throw new TypeError(`${what}.colorJitter must be { brightness, contrast, saturation, hue } or false, got ${fmt(cj)}`);
    const j: Jitter = { brightness: 0, contrast: 0, saturation: 0, hue: 0 };
    for (const key of Object.keys(cj)) {
      if (!(key in j)) throw new TypeError(`${what}.colorJitter.${key} is not an option (brightness, contrast, saturation, hue)`);
    }
    for (const key of ['brightness', 'contrast', 'saturation', 'hue'] as const) {
      const v = cj[key] ?? 0;
      const max = key === 'hue' ? 0.5 : Infinity;
      if (!isNum(v) || v < 0 || v > max) throw new RangeError(`${what}.colorJitter.${key} must be a number in [0, ${max === Infinity ? '∞' : max}], got ${fmt(v)}`);
      j[key] = v;
    }
    if (j.brightness || j.contrast || j.saturation || j.hue) jitter = j;
  }
  if (!train && (rrc || hflip > 0 || jitter)) {
    // train: false switches randomness off, so `{ ...trainOptions, train: false }` evaluates.
    // Asking evalTransform() itself for randomness is a mistake worth reporting.
    if (what === 'evalTransform') {
      const on = [rrc && 'randomResizedCrop', hflip > 0 && `hflip ${hflip}`, jitter && 'colorJitter'].filter(Boolean).join(', ');
      throw new RangeError(`evalTransform: ${on} need train: true (an evaluation transform is deterministic)`);
    }
    return { size, train, rrc: null, hflip: 0, jitter: null, cropPct: checkCropPct(t.cropPct, what), mean: triple(t.mean ?? IMAGENET_MEAN, `${what}.mean`, false), std: triple(t.std ?? IMAGENET_STD, `${what}.std`, true) };
  }
  const cropPct = checkCropPct(t.cropPct, what);
  const mean = triple(t.mean ?? IMAGENET_MEAN, `${what}.mean`, false);
  const std = triple(t.std ?? IMAGENET_STD, `${what}.std`, true);
  return { size, train, rrc, hflip, jitter, cropPct, mean, std };
}

export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** torchvision RandomResizedCrop.get_params on a width×height image. */
export function randomResizedCropBox(rng: Rng, width: number, height: number, scale: [number, number], ratio: [number, number]): Box {
  const area = width * height;
  const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])] as const;
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logRatio[0], logRatio[1]));
    const w = roundHalfEven(Math.sqrt(target * aspect));
    const h = roundHalfEven(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.int(height - h + 1);
      const left = rng.int(width - w + 1);
      return { left, top, width: w, height: h };
    }
  }
  // Fallback: the whole image, trimmed to the nearest allowed aspect ratio, centred.
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = roundHalfEven(w / ratio[0]);
  else if (inRatio > ratio[1]) w = roundHalfEven(h * ratio[1]);
  return { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
}

/**
 * The deterministic geometry: shorter side → floor(size / cropPct) (longer side scaled and
 * truncated, as torchvision Resize(int)), then the centre size×size window (CenterCrop rounding).
 */
export function resizeCenterCrop(width: number, height: number, size: number, cropPct: number): { resizeWidth: number; resizeHeight: number; crop: Box } {
  const short = Math.max(size, Math.floor(size / cropPct + 1e-9));
  const [resizeWidth, resizeHeight] = width <= height
    ? [short, Math.max(size, Math.floor((short * height) / width))]
    : [Math.max(size, Math.floor((short * width) / height)), short];
  const crop = {
    left: roundHalfEven((resizeWidth - size) / 2), top: roundHalfEven((resizeHeight - size) / 2), width: size, height: size,
  };
  return { resizeWidth, resizeHeight, crop };
}

/** The random choices of one ColorJitter call (torchvision's get_params). */
export interface ColourPlan {
  /** Indices into [brightness, contrast, saturation, hue]: the order they apply in. */
  order: number[];
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

export function sampleColour(rng: Rng, j: Jitter): ColourPlan {
  const order = rng.shuffle([0, 1, 2, 3]);
  const factor = (x: number) => (x > 0 ? rng.uniform(Math.max(0, 1 - x), 1 + x) : 1);
  const brightness = factor(j.brightness);
  const contrast = factor(j.contrast);
  const saturation = factor(j.saturation);
  const hue = j.hue > 0 ? rng.uniform(-j.hue, j.hue) : 0;
  return { order, brightness, contrast, saturation, hue };
}

/** Whether composing the plan needs the image's mean colour (only contrast does). */
export const needsMean = (p: ColourPlan): boolean => p.contrast !== 1;

// torchvision's rgb_to_grayscale weights.
const GRAY = [0.299, 0.587, 0.114] as const;

/**
 * A colour plan as one affine map of RGB (0..255): out = M·rgb + t, with M row-major 3×3.
 * Brightness scales; contrast blends with the mean grey level (of the image as transformed by
 * the ops before it, hence `mean`, the image's mean RGB); saturation blends with the pixel's
 * grey level; hue rotates colours about the grey axis (equal to torchvision's HSV hue shift at
 * multiples of 120°, close elsewhere). Unlike torchvision, values are clamped once at the end
 * rather than after each op.
 */
export function composeColour(plan: ColourPlan, mean: readonly number[] | null): { m: number[]; t: number[] } {
  let m = [1, 0, 0, 0, 1, 0, 0, 0, 1];
  let t = [0, 0, 0];
  const apply = (a: number[], b: readonly number[]) => {
    const m2 = new Array<number>(9).fill(0);
    const t2 = [b[0]!, b[1]!, b[2]!];
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 3; c++) {
        for (let k = 0; k < 3; k++) m2[r * 3 + c]! += a[r * 3 + k]! * m[k * 3 + c]!;
        t2[r]! += a[r * 3 + c]! * t[c]!;
      }
    }
    m = m2;
    t = t2;
  };
  for (const op of plan.order) {
    if (op === 0 && plan.brightness !== 1) {
      const b = plan.brightness;
      apply([b, 0, 0, 0, b, 0, 0, 0, b], [0, 0, 0]);
    } else if (op === 1 && plan.contrast !== 1) {
      if (!mean) throw new Error('composeColour: contrast needs the image mean');
      const c = plan.contrast;
      // Mean grey of the image as transformed so far: grey(M·μ + t).
      let grey = 0;
      for (let r = 0; r < 3; r++) grey += GRAY[r]! * (m[r * 3]! * mean[0]! + m[r * 3 + 1]! * mean[1]! + m[r * 3 + 2]! * mean[2]! + t[r]!);
      const shift = (1 - c) * grey;
      apply([c, 0, 0, 0, c, 0, 0, 0, c], [shift, shift, shift]);
    } else if (op === 2 && plan.saturation !== 1) {
      const s = plan.saturation;
      const a: number[] = [];
      for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) a.push((r === c ? s : 0) + (1 - s) * GRAY[c]!);
      apply(a, [0, 0, 0]);
    } else if (op === 3 && plan.hue !== 0) {
      // Rodrigues rotation by 2π·hue about (1,1,1)/√3; positive turns red towards green.
      const th = 2 * Math.PI * plan.hue;
      const cos = Math.cos(th);
      const sin = Math.sin(th) / Math.sqrt(3);
      const o = (1 - cos) / 3;
      apply([cos + o, o - sin, o + sin, o + sin, cos + o, o - sin, o - sin, o + sin, cos + o], [0, 0, 0]);
    }
  }
  return { m, t };
}

/** The random choices for one sample: crop box (RandomResizedCrop), flip, colour jitter. */
export interface Augment {
  box: Box | null;
  flip: boolean;
  colour: ColourPlan | null;
}

/** Draws one sample's augmentation in torchvision's order (crop, flip, jitter). */
export function sampleAugment(t: ResolvedTransform, width: number, height: number, rng: Rng): Augment {
  const box = t.train && t.rrc ? randomResizedCropBox(rng, width, height, t.rrc.scale, t.rrc.ratio) : null;
  const flip = t.train && t.hflip > 0 ? rng.float() < t.hflip : false;
  const colour = t.train && t.jitter ? sampleColour(rng, t.jitter) : null;
  return { box, flip, colour };
}
