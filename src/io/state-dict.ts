// State dicts (parameter name → tensor) from whatever checkpoint layout people actually save.
import { Tensor } from '../engine/tensor.js';
import { isFloating } from '../engine/dtype.js';
import { noGrad } from '../engine/autograd.js';
import { tidy } from '../engine/scope.js';
import { isfinite } from '../ops/pointwise.js';
import { all } from '../ops/reduce.js';
import { kind } from './pickle.js';
import { collectTensors, loadPth } from './pth.js';
import { loadSafetensors, saveSafetensors } from './safetensors.js';
import { fileSource } from './source.js';

/** Where training scripts commonly nest the weights, most common first. */
const NESTED_KEYS = ['state_dict', 'model', 'model_state_dict', 'module'];
/** Prefixes added by DataParallel/DistributedDataParallel ('module.') and torch.compile ('_orig_mod.'). */
const WRAPPER_PREFIXES = ['module.', '_orig_mod.'];

/**
 * Loads a state dict from a PyTorch checkpoint (zip `.pth`/`.pt`, detected by its 'PK' magic)
 * or a safetensors file (anything else). For `.pth` files the weights may be the top-level dict
 * or sit under 'state_dict', 'model', 'model_state_dict' or 'module'; tensors elsewhere in the
 * checkpoint (optimizer state, ...) are freed. Wrapper prefixes 'module.' and '_orig_mod.' are
 * removed when every key carries them.
 */
export function loadStateDict(path: string): Map<string, Tensor> {
  const src = fileSource(path);
  let magic: Uint8Array;
  const size = src.size;
  try {
    magic = src.readAt(0, Math.min(9, src.size)).slice();
  } finally {
    src.close();
  }
  // A zip starts 'PK\x03\x04'; a pickle (a legacy checkpoint, which loadPth explains) with the PROTO
  // opcode 0x80. safetensors starts with an 8-byte little-endian header length, then the header's
  // '{' — and that length may begin with 0x80 or spell 'PK', so a '{' at byte 8 with a length that
  // fits the file decides first (a zip's byte 8 is its compression method, 0 or 8; a pickle's is
  // part of its magic number).
  const isPth = (magic[0] === 0x50 && magic[1] === 0x4b && magic[2] === 3 && magic[3] === 4) || magic[0] === 0x80;
  if (magic.length >= 9 && magic[8] === 0x7b && (Buffer.from(magic).readBigUInt64LE(0) + 8n <= BigInt(size) || !isPth)) {
    return stripWrapperPrefixes(loadSafetensors(path).tensors);
  }
  if (!isPth) {
    const start = Buffer.from(magic).toString('latin1');
    throw new Error(
      `${path}: neither a PyTorch checkpoint (.pth/.pt: a zip or a pickle) nor a safetensors file (it starts with '${start.replace(/[^\x20-\x7e]/g, '.')}'` +
        `${/^[\x20-\x7e\s]+$/.test(start) ? ', which looks like text' : ''})`,
    );
  }
  const checkpoint = loadPth(path);
  let dict: Map<string, Tensor>;
  try {
    dict = extractStateDict(checkpoint, path);
  } catch (err) {
    for (const t of collectTensors(checkpoint)) t.dispose();
    throw err;
  }
  const kept = new Set(dict.values());
  for (const t of collectTensors(checkpoint)) if (!kept.has(t)) t.dispose();
  return stripWrapperPrefixes(dict);
}

/** The name of the first floating-point tensor holding NaN or ±inf, or null when all are finite. */
export function firstNonFinite(stateDict: Map<string, Tensor> | Record<string, Tensor>): string | null {
  const entries = stateDict instanceof Map ? [...stateDict] : Object.entries(stateDict);
  for (const [name, t] of entries) {
    if (!isFloating(t.dtype)) continue;
    if (!noGrad(() => tidy(() => all(isfinite(t)).item()))) return name;
  }
  return null;
}

/** Throws naming `what` and the tensor when a state dict holds NaN or ±inf (a diverged or tampered model). */
export function checkFinite(stateDict: Map<string, Tensor> | Record<string, Tensor>, what: string): void {
  const bad = firstNonFinite(stateDict);
  if (bad !== null) throw new Error(`${what}: tensor '${bad}' holds NaN or infinite values; nothing was written`);
}

/** Writes a state dict as safetensors (atomically; see `saveSafetensors`). */
export function saveStateDict(
  path: string,
  stateDict: Map<string, Tensor> | Record<string, Tensor>,
  metadata?: Record<string, string>,
  onProgress?: (written: number, total: number) => void,
): void {
  saveSafetensors(path, stateDict, metadata, onProgress);
}

/**
 * The state dict inside an unpickled checkpoint (see `loadStateDict` for the layouts searched).
 * An Error names the file, the offending entry and the checkpoint's top-level keys.
 */
export function extractStateDict(checkpoint: unknown, name = '<buffer>'): Map<string, Tensor> {
  if (!(checkpoint instanceof Map)) throw new Error(`${name}: the checkpoint is a ${kind(checkpoint)}, not a dict of tensors`);
  const topKeys = [...checkpoint.keys()].map(String).join(', ');
  const problem = (dict: Map<unknown, unknown>): string | null => {
    for (const [k, v] of dict) {
      if (typeof k !== 'string') return `key ${String(k)} is a ${kind(k)}, not a string`;
      if (!(v instanceof Tensor)) return `'${k}' holds a ${kind(v)}, not a tensor`;
    }
    return null;
  };
  const topProblem = problem(checkpoint);
  if (topProblem === null) return checkpoint as Map<string, Tensor>;
  for (const key of NESTED_KEYS) {
    const inner = checkpoint.get(key);
    if (!(inner instanceof Map)) continue;
    const innerProblem = problem(inner);
    if (innerProblem !== null) throw new Error(`${name}: the state dict under '${key}' is not all tensors: ${innerProblem} (top-level keys: ${topKeys})`);
    return inner as Map<string, Tensor>;
  }
  throw new Error(
    `${name}: no state dict found: ${topProblem}, and none of ${NESTED_KEYS.map((k) => `'${k}'`).join(', ')} holds a dict ` +
      `(top-level keys: ${topKeys})`,
  );
}

// Only when every key has the prefix: a model may legitimately own a sub-module named 'module'.
// Removing a prefix shared by all keys cannot make two keys equal.
function stripWrapperPrefixes(dict: Map<string, Tensor>): Map<string, Tensor> {
  let entries = [...dict];
  for (;;) {
    const prefix = WRAPPER_PREFIXES.find((p) => entries.length > 0 && entries.every(([k]) => k.startsWith(p)));
    if (!prefix) return new Map(entries);
    entries = entries.map(([k, t]) => [k.slice(prefix.length), t]);
  }
}
