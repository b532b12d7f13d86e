// Delta files: `delta.safetensors` (only the delta's tensors) + `delta.json` (method, config, base
// model and a sha256 fingerprint of its weights file, library version). Also LoRA deltas in
// Hugging Face PEFT's layout (adapter_config.json + adapter_model.safetensors).
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, readSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { noGrad, type Tensor } from '../engine/index.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { finite, finiteJson, readJsonFile, validate, z } from '../io/json.js';
import { INPUT_LIMITS, openRegularFile } from '../io/read.js';
import type { VisionModel } from '../models/base.js';
import { packageVersion } from '../version.js';
import { applyDelta, listMethods, type Delta } from './core/index.js';

const FORMAT = 'deltatune.delta';
const FORMAT_VERSION = 1;

const SHA256 = /^[0-9a-f]{64}$/;

/**
 * delta.json as it must be: every field typed, numbers finite, and the fields that must agree do
 * (classes vs numClasses, a fingerprint vs a weights file name). Unknown extra fields are kept.
 */
export const deltaManifestSchema = z
  .looseObject({
    format: z.literal(FORMAT, { error: `must be '${FORMAT}'` }),
    formatVersion: z.number().int().min(1).max(FORMAT_VERSION, { error: `is newer than this deltatune reads (${FORMAT_VERSION}); upgrade deltatune` }),
    library: z.string(),
    method: z.string().refine((m) => listMethods().includes(m), { error: (i) => `unknown method '${String(i.input)}' (known: ${listMethods().join(', ')})` }),
    config: z.record(z.string(), finiteJson),
    model: z.string().min(1),
    numClasses: z.number().int().min(1).max(INPUT_LIMITS.classes),
    base: z.object({
      weightsFile: z.string().min(1).nullable(),
      path: z.string().min(1).nullable().optional(),
      sha256: z.string().regex(SHA256, 'must be 64 lowercase hex digits').nullable(),
    }, { error: 'is required: the base weights (file name and sha256, or nulls for a random init)' }).refine((b) => (b.weightsFile === null) === (b.sha256 === null), {
      error: 'weightsFile and sha256 must both be set (pretrained base) or both be null (random init)',
    }),
    classes: z.array(z.string().min(1, 'a class name must not be empty'), { error: 'is required: one name per output class' }).max(INPUT_LIMITS.classes),
    preprocess: z.record(z.string(), finiteJson, {
      error: 'is required: how images were prepared; without it predictions would use a guessed transform. A delta saved through saveDelta() without options by an earlier deltatune lacks it: add e.g. "preprocess": {"size": 224, "train": false}',
    }),
    tensors: z.number().int().min(0),
    bytes: finite(),
    createdAt: z.string(),
  })
  .superRefine((m, ctx) => {
    if (m.classes.length !== m.numClasses) {
      ctx.addIssue({ code: 'custom', path: ['classes'], message: `lists ${m.classes.length} names but numClasses is ${m.numClasses}` });
    }
    const seen = new Set<string>();
    m.classes.forEach((c, i) => {
      if (seen.has(c)) ctx.addIssue({ code: 'custom', path: ['classes', i], message: `'${c}' appears twice` });
      seen.add(c);
    });
  });

export interface DeltaManifest {
  format: typeof FORMAT;
  formatVersion: number;
  library: string;
  method: string;
  config: Record<string, unknown>;
  model: string;
  numClasses: number;
  /** The base weights: file name, where it was when the delta was saved (a hint), and its sha256. */
  base: { weightsFile: string | null; path?: string | null; sha256: string | null };
  /** Class names, index = label. */
  classes: string[];
  /** How images were prepared for this delta (image size, normalisation), for predict and eval. */
  preprocess: Record<string, unknown>;
  tensors: number;
  bytes: number;
  createdAt: string;
}

const hashCache = new Map<string, { mtimeMs: number; size: number; sha256: string }>();

/** sha256 of a file, streamed in 8 MiB chunks and cached by path, size and mtime. */
export function fileSha256(path: string): string {
  const st = statSync(path);
  const cached = hashCache.get(path);
  if (cached && cached.mtimeMs === st.mtimeMs && cached.size === st.size) return cached.sha256;
  const hash = createHash('sha256');
  const { fd } = openRegularFile(path, 'weights file');
  try {
    const buf = Buffer.allocUnsafe(8 << 20);
    for (let pos = 0; ; ) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
  const sha256 = hash.digest('hex');
  hashCache.set(path, { mtimeMs: st.mtimeMs, size: st.size, sha256 });
  return sha256;
}

function baseFingerprint(model: VisionModel): { weightsFile: string | null; path: string | null; sha256: string | null } {
  const file = model.config.weightsFile;
  return file ? { weightsFile: basename(file), path: resolve(file), sha256: fileSha256(file) } : { weightsFile: null, path: null, sha256: null };
}

export interface SaveDeltaOptions {
  /** Class names, index = label (default '0', '1', ...). */
  classes?: readonly string[];
  /** How images are prepared for this delta (default: the model's evaluation transform at its input size). */
  preprocess?: Record<string, unknown>;
}

/** The model's evaluation transform, for deltas saved without one (mirrors data's evalTransform defaults). */
function defaultPreprocess(model: VisionModel): Record<string, unknown> {
  const c = model.config;
  return { size: c.inputSize[2], train: false, mean: [...c.mean], std: [...c.std] };
}

/** Writes the delta to `dir` (created if needed) as delta.safetensors + delta.json, atomically. */
export function saveDelta(delta: Delta, dir: string, options: SaveDeltaOptions = {}): DeltaManifest {
  const state = delta.stateDict();
  mkdirSync(dir, { recursive: true });
  const summary = delta.summary();
  const manifest: DeltaManifest = validate(deltaManifestSchema, {
    format: FORMAT,
    formatVersion: FORMAT_VERSION,
    library: packageVersion(),
    method: delta.method,
    config: Object.fromEntries(Object.entries(delta.config).filter(([k]) => k !== 'numClasses')),
    model: delta.model.config.name,
    numClasses: delta.head.outFeatures,
    base: baseFingerprint(delta.model),
    classes: options.classes ? [...options.classes] : Array.from({ length: delta.head.outFeatures }, (_, i) => String(i)),
    preprocess: options.preprocess ?? defaultPreprocess(delta.model),
    tensors: state.size,
    bytes: summary.bytes,
    createdAt: new Date().toISOString(),
  }, join(dir, 'delta.json'), 'delta manifest (about to be written)') as DeltaManifest;
  saveSafetensors(join(dir, 'delta.safetensors'), state, { format: FORMAT, method: delta.method, model: manifest.model });
  writeFileAtomic(join(dir, 'delta.json'), Buffer.from(JSON.stringify(manifest, null, 2) + '\n'));
  return manifest;
}

/** Reads and validates `dir`/delta.json; errors name the file and the field at fault. */
export function readDeltaManifest(dir: string): DeltaManifest {
  const path = join(dir, 'delta.json');
  if (!existsSync(path)) {
    throw new Error(existsSync(dir) ? `${dir}: not a delta folder (no delta.json)` : `${dir}: no such delta folder (looked for ${path})`);
  }
  return readJsonFile(path, deltaManifestSchema, 'delta manifest') as DeltaManifest;
}

export interface LoadDeltaOptions {
  /** Load even if the base weights' fingerprint differs from the one the delta was trained on. */
  ignoreBaseMismatch?: boolean;
}

/** Applies a saved delta to `model` (its base) and loads its tensors; returns the attached Delta. */
export function loadDelta(model: VisionModel, dir: string, options: LoadDeltaOptions = {}): Delta {
  const manifest = readDeltaManifest(dir);
  if (manifest.model !== model.config.name) {
    throw new Error(`${dir}: this delta was trained on '${manifest.model}', not '${model.config.name}'`);
  }
  const here = baseFingerprint(model);
  if (!options.ignoreBaseMismatch && manifest.base.sha256 !== here.sha256) {
    throw new Error(
      `${dir}: the delta was trained on base weights ${manifest.base.weightsFile ?? '(random init)'} (sha256 ${manifest.base.sha256 ?? 'none'}), ` +
        `but this model has ${here.weightsFile ?? '(random init)'} (sha256 ${here.sha256 ?? 'none'}). ` +
        'Load the matching base, or pass ignoreBaseMismatch (--ignore-base-mismatch) if you know they agree.',
    );
  }
  const { tensors } = loadSafetensors(join(dir, 'delta.safetensors'));
  let delta: Delta | undefined;
  try {
    try {
      delta = applyDelta(model, { method: manifest.method, numClasses: manifest.numClasses, ...manifest.config });
    } catch (err) {
      throw new Error(`${join(dir, 'delta.json')}: field 'config': ${(err as Error).message}`, { cause: err });
    }
    delta.loadStateDict(tensors, join(dir, 'delta.safetensors'));
    return delta;
  } catch (err) {
    delta?.dispose();
    throw err;
  } finally {
    noGrad(() => tensors.forEach((t: Tensor) => t.dispose()));
  }
}
