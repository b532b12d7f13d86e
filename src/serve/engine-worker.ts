// The server's inference thread: it alone loads the engine, holds the one base model and every
// delta over it, and runs the batches the scheduler sends. Forward passes are synchronous libtorch
// calls; here they block this thread, never the HTTP event loop.
import { parentPort, workerData } from 'node:worker_threads';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { cpuMemoryStats, memoryStats, noGrad, setNumThreads, tidy } from '../engine/index.js';
import { imagesFromBytes, normalizeImages } from '../data/loader.js';
import { topClasses } from '../train/tuned.js';
import { createModel } from '../models/index.js';
import type { VisionModel } from '../models/base.js';
import { loadDelta, readDeltaManifest, type Delta } from '../delta/index.js';
import { resolveTransform, type ResolvedTransform, type TransformOptions } from '../data/transforms.js';

export interface EngineInit {
  model: string;
  weights?: string;
  threads?: number;
  /**
   * The batch sizes the model runs at, ascending; a batch is zero-padded up to the next one. libtorch's
   * CPU convolutions are several times slower when the batch size keeps changing among many values
   * (their per-shape kernels and weight layouts are re-made), so a few fixed sizes run faster even
   * with the padding (docs: README, Serving deltas).
   */
  batchSizes: number[];
}

/** What the server knows of a loaded delta (plain data: it crosses threads). */
export interface DeltaInfo {
  name: string;
  path: string;
  method: string;
  classes: string[];
  transform: ResolvedTransform;
  trainableParameters: number;
  fileBytes: number;
}

export type EngineRequest =
  | { id: number; type: 'load'; name: string; path: string; ignoreBaseMismatch?: boolean }
  | { id: number; type: 'unload'; name: string }
  | { id: number; type: 'run'; delta: string; pixels: Uint8Array; count: number; topK: number }
  | { id: number; type: 'stats' };

export interface Top {
  label: string;
  index: number;
  probability: number;
}

export type EngineReply =
  | { id: number; ok: true; info?: DeltaInfo; results?: Top[][]; computeMs?: number; switched?: boolean; stats?: EngineStats }
  | { id: number; ok: false; error: string };

export interface EngineStats {
  rssBytes: number;
  deltas: number;
  /** Native tensors alive on the inference thread: constant between batches unless something leaks. */
  liveTensors: number;
  /** The inference thread's JavaScript heap in use. */
  heapBytes: number;
  /** Tensor memory in use, and freed but kept by the caching allocator for the next batch. */
  tensorBytes: number;
  cachedTensorBytes: number;
}

interface Loaded {
  info: DeltaInfo;
  delta: Delta;
}

function init(options: EngineInit): VisionModel {
  if (options.threads) setNumThreads(options.threads);
  const model = createModel(options.model, options.weights ? { weights: options.weights } : {});
  return model.eval();
}

if (parentPort) {
  const port = parentPort;
  let model: VisionModel;
  try {
    model = init(workerData as EngineInit);
    port.postMessage({ id: -1, ok: true });
  } catch (err) {
    port.postMessage({ id: -1, ok: false, error: (err as Error).message });
    throw err;
  }
  const { batchSizes } = workerData as EngineInit;
  const deltas = new Map<string, Loaded>();
  let active: Loaded | null = null;

  const activate = (next: Loaded): boolean => {
    if (active === next) return false;
    active?.delta.detach();
    active = null;
    next.delta.attach();
    model.eval();
    active = next;
    return true;
  };

  const load = (name: string, path: string, ignoreBaseMismatch: boolean): DeltaInfo => {
    const manifest = readDeltaManifest(path);
    const transform = resolveTransform({ ...(manifest.preprocess as unknown as TransformOptions), train: false }, `${join(path, 'delta.json')}: field 'preprocess'`);
    // loadDelta attaches what it loads: the active delta steps aside and comes back after.
    const previous = active;
    previous?.delta.detach();
    active = null;
    let delta: Delta;
    let trainableParameters = 0;
    try {
      delta = loadDelta(model, path, { ignoreBaseMismatch });
      // Counted while attached: a detached delta does not list its parameters.
      trainableParameters = delta.trainableParameters().reduce((n, p) => n + p.numel, 0);
      delta.detach();
    } finally {
      if (previous) {
        previous.delta.attach();
        active = previous;
      }
      model.eval();
    }
    const old = deltas.get(name);
    if (old) {
      if (active === old) {
        old.delta.detach();
        active = null;
      }
      old.delta.dispose();
    }
    const info: DeltaInfo = {
      name, path, method: manifest.method, classes: manifest.classes, transform,
      trainableParameters,
      fileBytes: statSync(join(path, 'delta.safetensors')).size + statSync(join(path, 'delta.json')).size,
    };
    deltas.set(name, { info, delta });
    return info;
  };

  const unload = (name: string): void => {
    const d = deltas.get(name);
    if (!d) throw new Error(`no delta named '${name}' is loaded`);
    if (active === d) {
      d.delta.detach();
      active = null;
      model.eval();
    }
    d.delta.dispose();
    deltas.delete(name);
  };

  const run = (name: string, pixels: Uint8Array, count: number, topK: number): { results: Top[][]; switched: boolean } => {
    const d = deltas.get(name);
    if (!d) throw new Error(`no delta named '${name}' is loaded`);
    const switched = activate(d);
    const { size, mean, std } = d.info.transform;
    const k = Math.min(topK, d.info.classes.length);
    const padded = batchSizes.find((b) => b >= count) ?? count;
    let input = pixels;
    if (padded > count) {
      input = new Uint8Array(padded * size * size * 3);
      input.set(pixels);
    }
    // As the data loader prepares a batch and predictFiles reads it; padded rows are not returned.
    const results = noGrad(() =>
      tidy(() => topClasses(model.forward(normalizeImages(imagesFromBytes(input, padded, size), mean, std).contiguous()), k, d.info.classes, count)),
    );
    return { results, switched };
  };

  const tensorMemory = () => {
    const m = cpuMemoryStats();
    return { tensorBytes: m.liveBytes, cachedTensorBytes: m.cachedBytes };
  };

  port.on('message', (msg: EngineRequest) => {
    let reply: EngineReply;
    try {
      if (msg.type === 'load') reply = { id: msg.id, ok: true, info: load(msg.name, msg.path, msg.ignoreBaseMismatch ?? false) };
      else if (msg.type === 'unload') {
        unload(msg.name);
        reply = { id: msg.id, ok: true };
      } else if (msg.type === 'run') {
        const t0 = performance.now();
        const { results, switched } = run(msg.delta, msg.pixels, msg.count, msg.topK);
        reply = { id: msg.id, ok: true, results, switched, computeMs: performance.now() - t0 };
      } else reply = { id: msg.id, ok: true, stats: { rssBytes: process.memoryUsage.rss(), deltas: deltas.size, liveTensors: memoryStats().liveHandles, heapBytes: process.memoryUsage().heapUsed, ...tensorMemory() } };
    } catch (err) {
      reply = { id: msg.id, ok: false, error: (err as Error).message };
    }
    port.postMessage(reply);
  });
}
