// Delta files: `delta.safetensors` (only the delta's tensors) + `delta.json` (method, config, base
// model and a sha256 fingerprint of its weights file, library version). Also LoRA deltas in
// Hugging Face PEFT's layout (adapter_config.json + adapter_model.safetensors).
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { noGrad, type Tensor } from '../engine/index.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { VisionModel } from '../models/base.js';
import { applyDelta, type Delta } from './core.js';

const FORMAT = 'deltatune.delta';
const FORMAT_VERSION = 1;

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
  /** Class names, index = label (when the trainer knew them). */
  classes?: string[];
  /** How images were prepared for this delta (image size, normalisation), for predict and eval. */
  preprocess?: Record<string, unknown>;
  tensors: number;
  bytes: number;
  createdAt: string;
}

function libraryVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
    dir = dirname(dir);
  }
  return 'unknown';
}

const hashCache = new Map<string, { mtimeMs: number; size: number; sha256: string }>();

/** sha256 of a file, streamed in 8 MiB chunks and cached by path, size and mtime. */
export function fileSha256(path: string): string {
  const st = statSync(path);
  const cached = hashCache.get(path);
  if (cached && cached.mtimeMs === st.mtimeMs && cached.size === st.size) return cached.sha256;
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
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
  classes?: readonly string[];
  preprocess?: Record<string, unknown>;
}

/** Writes the delta to `dir` (created if needed) as delta.safetensors + delta.json, atomically. */
export function saveDelta(delta: Delta, dir: string, options: SaveDeltaOptions = {}): DeltaManifest {
  const state = delta.stateDict();
  mkdirSync(dir, { recursive: true });
  const summary = delta.summary();
  const manifest: DeltaManifest = {
    format: FORMAT,
    formatVersion: FORMAT_VERSION,
    library: libraryVersion(),
    method: delta.method,
    config: Object.fromEntries(Object.entries(delta.config).filter(([k]) => k !== 'numClasses')),
    model: delta.model.config.name,
    numClasses: delta.head.outFeatures,
    base: baseFingerprint(delta.model),
    ...(options.classes ? { classes: [...options.classes] } : {}),
    ...(options.preprocess ? { preprocess: options.preprocess } : {}),
    tensors: state.size,
    bytes: summary.bytes,
    createdAt: new Date().toISOString(),
  };
  saveSafetensors(join(dir, 'delta.safetensors'), state, { format: FORMAT, method: delta.method, model: manifest.model });
  writeFileAtomic(join(dir, 'delta.json'), Buffer.from(JSON.stringify(manifest, null, 2) + '\n'));
  return manifest;
}

export function readDeltaManifest(dir: string): DeltaManifest {
  const path = join(dir, 'delta.json');
  let manifest: DeltaManifest;
  try {
    manifest = JSON.parse(readFileSync(path, 'utf8')) as DeltaManifest;
  } catch (err) {
    throw new Error(`${path}: cannot read the delta manifest: ${(err as Error).message}`);
  }
  if (manifest.format !== FORMAT) throw new Error(`${path}: not a deltatune delta (format '${String(manifest.format)}')`);
  if (manifest.formatVersion > FORMAT_VERSION) {
    throw new Error(`${path}: delta format version ${manifest.formatVersion} is newer than this deltatune reads (${FORMAT_VERSION}); upgrade deltatune`);
  }
  return manifest;
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
    delta = applyDelta(model, { method: manifest.method, numClasses: manifest.numClasses, ...manifest.config });
    delta.loadStateDict(tensors, join(dir, 'delta.safetensors'));
    return delta;
  } catch (err) {
    delta?.dispose();
    throw err;
  } finally {
    noGrad(() => tensors.forEach((t: Tensor) => t.dispose()));
  }
}
