// LoRA deltas in Hugging Face PEFT's on-disk layout, so they move between deltatune and PEFT for
// torchvision/timm-named models: adapter_config.json + adapter_model.safetensors with keys
// `base_model.model.<module path>.lora_A.weight` / `.lora_B.weight`, and the trained head under
// `modules_to_save` (saved, as PEFT does, as `base_model.model.<head path>.weight`).
import { mkdirSync } from 'node:fs';
import { finite, readJsonFile, z } from '../io/json.js';
import { join } from 'node:path';
import { noGrad, type Tensor } from '../engine/index.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { VisionModel } from '../models/base.js';
import { applyDelta, matchModules, moduleMatcher, type Delta } from './core/index.js';
import { PackedQVLora, type LoraConfig } from './lora.js';

const PREFIX = 'base_model.model.';

/** Writes an attached LoRA delta in PEFT's layout. Packed q/v projections have no PEFT equivalent. */
export function savePeftLora(delta: Delta, dir: string): void {
  if (delta.method !== 'lora') throw new Error(`savePeftLora: the delta is '${delta.method}', not 'lora'`);
  const packed = delta.addedModules.filter(([, m]) => m instanceof PackedQVLora).map(([n]) => n);
  if (packed.length) {
    throw new Error(`savePeftLora: LoRA on packed q/v projections (${packed.slice(0, 3).join(', ')}${packed.length > 3 ? ', ...' : ''}) has no PEFT layout; use saveDelta`);
  }
  const config = delta.config as unknown as LoraConfig;
  const state = delta.stateDict();
  const head = delta.model.config.classifier;
  const tensors = new Map<string, Tensor>();
  const targets = new Set<string>();
  for (const [name, t] of state) {
    const m = /^(.*)\.(lora_[AB])\.weight$/.exec(name);
    if (m) {
      targets.add(m[1]!);
      tensors.set(`${PREFIX}${name}`, t);
    } else if (name.startsWith(`${head}.`)) {
      tensors.set(`${PREFIX}${name}`, t);
    } else {
      throw new Error(`savePeftLora: '${name}' is neither a LoRA weight nor the head`);
    }
  }
  const peftConfig = {
    peft_type: 'LORA',
    task_type: null,
    base_model_name_or_path: delta.model.config.name,
    r: config.rank,
    lora_alpha: config.alpha,
    lora_dropout: config.dropout,
    target_modules: [...targets].sort(),
    modules_to_save: [head],
    bias: 'none',
    fan_in_fan_out: false,
    init_lora_weights: true,
    inference_mode: true,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    revision: null,
  };
  mkdirSync(dir, { recursive: true });
  saveSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  writeFileAtomic(join(dir, 'adapter_config.json'), Buffer.from(JSON.stringify(peftConfig, null, 2) + '\n'));
}

const emptyPattern = (key: string) =>
  z.record(z.string(), z.unknown()).nullable().optional().refine((v) => !v || Object.keys(v).length === 0, `per-module '${key}' is not supported`);

/** The adapter_config.json fields this reader uses, as PEFT writes them; other fields are kept and ignored. */
export const peftConfigSchema = z.looseObject({
  peft_type: z.literal('LORA', { error: (i) => `is '${String(i.input)}'; only LORA adapters are supported` }),
  r: z.number().int().min(1).max(1 << 16),
  lora_alpha: finite().refine((v) => v > 0 && v <= 1e6, 'must be in (0, 1e6]'),
  lora_dropout: finite().refine((v) => v >= 0 && v < 1, 'must be in [0, 1)').nullable().optional().transform((v) => v ?? undefined),
  target_modules: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)], { error: 'must be a regular expression or a non-empty list of module names' }),
  exclude_modules: z.union([z.string().min(1), z.array(z.string().min(1))], { error: 'must be a regular expression or a list of module names' }).nullable().optional(),
  bias: z.enum(['none'], { error: (i) => `'${String(i.input)}' is not supported (only 'none')` }).optional(),
  // Variants that change the math: loading them as plain LoRA would give other outputs without a word.
  use_dora: z.literal(false, { error: 'DoRA adapters are not supported (only plain LoRA)' }).nullable().optional(),
  use_rslora: z.literal(false, { error: 'rank-stabilised LoRA (scaling alpha/sqrt(r)) is not supported' }).nullable().optional(),
  lora_bias: z.literal(false, { error: 'LoRA with a bias on B is not supported' }).nullable().optional(),
  fan_in_fan_out: z.literal(false, { error: 'fan_in_fan_out (transposed Conv1D weights) does not apply to these models' }).nullable().optional(),
  layers_to_transform: z.null({ error: 'per-layer selection (layers_to_transform) is not supported' }).optional(),
  rank_pattern: emptyPattern('rank_pattern'),
  alpha_pattern: emptyPattern('alpha_pattern'),
});

/** applyDelta with errors (a target that matches nothing, ...) blamed on the config file that asked for it. */
function applyPeftConfig(model: VisionModel, configPath: string, config: Parameters<typeof applyDelta>[1]): Delta {
  try {
    return applyDelta(model, config);
  } catch (err) {
    throw new Error(`${configPath}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The modules a PEFT config adapts: target_modules less exclude_modules. PEFT accepts an
 * exclude that matches nothing, so this does too (unlike the `exclude` option typed by a user).
 */
function peftTargets(model: VisionModel, targets: string | string[], exclude: string | string[] | null, configPath: string): string | string[] {
  if (exclude === null || exclude.length === 0) return targets;
  let matched: string[];
  try {
    matched = matchModules(model, targets, 'lora').map(([n]) => n);
  } catch (err) {
    throw new Error(`${configPath}: ${(err as Error).message}`, { cause: err });
  }
  let isExcluded: (name: string) => boolean;
  try {
    isExcluded = moduleMatcher(exclude, 'lora', 'exclude_modules');
  } catch (err) {
    throw new Error(`${configPath}: ${(err as Error).message}`, { cause: err });
  }
  const kept = matched.filter((n) => !isExcluded(n));
  if (kept.length === 0) throw new Error(`${configPath}: exclude_modules removes every module target_modules selects`);
  return kept;
}

/** Reads a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) onto `model`. */
export function loadPeftLora(model: VisionModel, dir: string): Delta {
  const configPath = join(dir, 'adapter_config.json');
  const cfg = readJsonFile(configPath, peftConfigSchema, 'PEFT adapter config');
  const { tensors } = loadSafetensors(join(dir, 'adapter_model.safetensors'));
  let delta: Delta | undefined;
  try {
    const state = new Map<string, Tensor>();
    for (const [key, t] of tensors) {
      // PEFT may keep the adapter name in keys (lora_A.default.weight) and modules_to_save wrappers.
      const name = key.replace(/^base_model\.model\./, '').replace(/\.(lora_[AB])\.default\./, '.$1.').replace(/\.modules_to_save\.default\./, '.');
      state.set(name, t);
    }
    const headWeight = state.get(`${model.config.classifier}.weight`);
    delta = applyPeftConfig(model, configPath, {
      method: 'lora',
      rank: cfg.r,
      alpha: cfg.lora_alpha,
      dropout: cfg.lora_dropout ?? 0,
      targets: peftTargets(model, cfg.target_modules, cfg.exclude_modules ?? null, configPath),
      ...(headWeight ? { numClasses: headWeight.shape[0] } : {}),
    });
    // A PEFT file without the head keeps this delta's fresh head.
    if (!headWeight) for (const [k, v] of delta.stateDict()) if (k.startsWith(`${model.config.classifier}.`)) state.set(k, v);
    delta.loadStateDict(state, join(dir, 'adapter_model.safetensors'));
    return delta;
  } catch (err) {
    delta?.dispose();
    throw err;
  } finally {
    noGrad(() => tensors.forEach((t) => t.dispose()));
  }
}
