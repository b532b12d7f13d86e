// LoRA deltas in Hugging Face PEFT's on-disk layout, so they move between deltatune and PEFT for
// torchvision/timm-named models: adapter_config.json + adapter_model.safetensors with keys
// `base_model.model.<module path>.lora_A.weight` / `.lora_B.weight`, and the trained head under
// `modules_to_save` (saved, as PEFT does, as `base_model.model.<head path>.weight`). Packed
// attention projections are written as PEFT adapts them (see savePeftLora).
import { mkdirSync } from 'node:fs';
import { finite, readJsonFile, z } from '../io/json.js';
import { join } from 'node:path';
import { noGrad, tidy, type Tensor } from '../engine/index.js';
import { cat, zeros } from '../ops/index.js';
import type { Conv2d, Linear } from '../nn/layers.js';
import { MultiheadAttention } from '../nn/attention.js';
import { SLOTS } from '../nn/slots.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { VisionModel } from '../models/base.js';
import { applyDelta, matchModules, moduleMatcher, type Delta } from './core/index.js';
import { PackedLora, PackedQVLora, type LoraConfig } from './lora.js';

const PREFIX = 'base_model.model.';

/** One adapted module's factors as PEFT stores them: A [r, in, ...], B [out, r, ...]. */
interface PeftPair {
  A: Tensor;
  B: Tensor;
}

/** `t` with `extra` zero slices appended along `dim` (pads a LoRA factor to a larger rank). */
function padRank(t: Tensor, dim: number, extra: number): Tensor {
  if (extra === 0) return t;
  const shape = [...t.shape];
  shape[dim] = extra;
  return cat([t, zeros(shape, { dtype: t.dtype })], dim);
}

/**
 * Writes an attached LoRA delta in PEFT's layout, for every family.
 *
 * Packed attention projections: PEFT has no q/v-only LoRA. To PEFT, Swin's `qkv` is a plain Linear
 * and torchvision ViT's `self_attention` an nn.MultiheadAttention (its LoRA layer, PEFT ≥ 0.12, puts
 * one B·A on the whole [3E, E] in_proj_weight, plus a LoRA on out_proj). So a q/v pair (A_q, B_q,
 * A_v, B_v of rank r) is written as one update of rank 2r on the whole projection: A = [A_q; A_v],
 * B = [[B_q, 0]; [0, 0]; [0, B_v]], zero rows for k, which is B·A exactly. PEFT's config has one `r`,
 * so every other target is zero-padded to rank 2r as well (extra A rows and B columns of zeros, the
 * same product) and lora_alpha doubles, keeping alpha / r, hence the scaling, as trained. This loads
 * in any PEFT version without rank_pattern. out_proj of a MultiheadAttention gets zero A and B
 * (PEFT creates that LoRA anyway; written out, PEFT reports no missing keys). fan_in_fan_out stays
 * false: nn.Linear weights are [out, in], as here. One limit is torchvision's, not the layout's:
 * its Swin passes `attn.qkv.weight` (and `attn.proj.weight`) to F.linear instead of calling the
 * module, so PEFT's LoRA there acts only once merged (merge_and_unload); ViT's attention is fine,
 * PEFT's MultiheadAttention layer merges around each forward.
 */
export function savePeftLora(delta: Delta, dir: string): void {
  if (delta.method !== 'lora') throw new Error(`savePeftLora: the delta is '${delta.method}', not 'lora'; PEFT's LoRA layout holds LoRA deltas only`);
  const config = delta.config as unknown as LoraConfig;
  const model = delta.model;
  const head = model.config.classifier;
  const r = config.rank;
  const added = delta.addedModules;
  const rank = added.some(([, m]) => m instanceof PackedQVLora) ? 2 * r : r;
  const parentOf = (path: string) => path.slice(0, path.lastIndexOf('.'));
  noGrad(() => tidy(() => {
    const pairs = new Map<string, PeftPair>();
    for (const [path, m] of added) {
      const target = parentOf(path);
      if (m instanceof PackedQVLora) {
        const E = m.embed;
        const zero = zeros([E, r]);
        const B = cat([cat([m.lora_B_q.weight, zero], 1), zeros([E, 2 * r]), cat([zero, m.lora_B_v.weight], 1)], 0);
        pairs.set(target, { A: cat([m.lora_A_q.weight, m.lora_A_v.weight], 0), B });
      } else if (m instanceof PackedLora) {
        pairs.set(target, { A: m.lora_A.weight, B: m.lora_B.weight });
      } else if (path.endsWith('.lora_A')) {
        pairs.set(target, { A: (m as Linear | Conv2d).weight, B: model.getSubmodule(target).getChild<Linear | Conv2d>('lora_B')!.weight });
      } else if (!path.endsWith('.lora_B') && !path.endsWith('.lora_dropout')) {
        throw new Error(`savePeftLora: '${path}' (${m.constructor.name}) is not part of a LoRA PEFT knows`);
      }
    }
    const targets = new Set<string>();
    const tensors = new Map<string, Tensor>();
    const put = (name: string, A: Tensor, B: Tensor) => {
      tensors.set(`${PREFIX}${name}.lora_A.weight`, padRank(A, 0, rank - A.shape[0]!));
      tensors.set(`${PREFIX}${name}.lora_B.weight`, padRank(B, 1, rank - B.shape[1]!));
    };
    for (const [target, pair] of pairs) {
      const parent = target.includes('.') ? model.getSubmodule(parentOf(target)) : null;
      if (parent instanceof MultiheadAttention && target.endsWith('.out_proj')) {
        // PEFT never runs out_proj's forward: its LoRA exists only inside the attention's own LoRA layer.
        if (!pairs.has(parentOf(target))) {
          throw new Error(`savePeftLora: LoRA on '${target}' alone has no PEFT layout (PEFT adapts a MultiheadAttention's out_proj only together with its in_proj); add '${parentOf(target)}' to the targets or use saveDelta`);
        }
        put(`${parentOf(target)}.base_layer.out_proj`, pair.A, pair.B);
        continue;
      }
      targets.add(target);
      put(target, pair.A, pair.B);
      const m = model.getSubmodule(target);
      if (m instanceof MultiheadAttention && !pairs.has(`${target}.out_proj`)) {
        put(`${target}.base_layer.out_proj`, zeros([rank, m.embedDim]), zeros([m.embedDim, rank]));
      }
    }
    for (const [name, t] of delta.stateDict()) if (name.startsWith(`${head}.`)) tensors.set(`${PREFIX}${name}`, t);
    const peftConfig = {
      peft_type: 'LORA',
      task_type: null,
      base_model_name_or_path: model.config.name,
      r: rank,
      lora_alpha: (config.alpha * rank) / r,
      lora_dropout: config.dropout,
      target_modules: [...targets].sort(),
      modules_to_save: [head],
      bias: 'none',
      fan_in_fan_out: false,
      init_lora_weights: true,
      use_rslora: false,
      use_dora: false,
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
  }));
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

/**
 * Reads a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) onto `model`. Packed
 * attention projections are adapted as PEFT does (`packed: 'qkv'`: one B·A on all of q, k and v);
 * a MultiheadAttention's out_proj LoRA (PEFT's `<attention>.base_layer.out_proj`) is loaded too.
 */
export function loadPeftLora(model: VisionModel, dir: string): Delta {
  const configPath = join(dir, 'adapter_config.json');
  const cfg = readJsonFile(configPath, peftConfigSchema, 'PEFT adapter config');
  const { tensors } = loadSafetensors(join(dir, 'adapter_model.safetensors'));
  let delta: Delta | undefined;
  try {
    const state = new Map<string, Tensor>();
    for (const [key, t] of tensors) {
      // PEFT may keep the adapter name in keys (lora_A.default.weight) and modules_to_save wrappers;
      // base_layer is the wrapped module's own segment (an attention's out_proj).
      const name = key
        .replace(/^base_model\.model\./, '')
        .replace(/\.(lora_[AB])\.default\./, '.$1.')
        .replace(/\.modules_to_save\.default\./, '.')
        .replace(/\.base_layer\./g, '.');
      state.set(name, t);
    }
    let targets = peftTargets(model, cfg.target_modules, cfg.exclude_modules ?? null, configPath);
    const attentions = listTargets(model, targets, configPath).filter(([, m]) => m instanceof MultiheadAttention).map(([n]) => n);
    if (attentions.length) {
      const names = listTargets(model, targets, configPath).map(([n]) => n);
      for (const a of attentions) {
        // Our MultiheadAttention takes its in_proj update in a slot; PEFT keeps it on the module itself.
        for (const f of ['lora_A', 'lora_B']) {
          const t = state.get(`${a}.${f}.weight`);
          if (t) {
            state.delete(`${a}.${f}.weight`);
            state.set(`${a}.${SLOTS.inProjDelta}.${f}.weight`, t);
          }
        }
        if (state.has(`${a}.out_proj.lora_A.weight`) && !names.includes(`${a}.out_proj`)) names.push(`${a}.out_proj`);
      }
      targets = names;
    }
    const headWeight = state.get(`${model.config.classifier}.weight`);
    delta = applyPeftConfig(model, configPath, {
      method: 'lora',
      rank: cfg.r,
      alpha: cfg.lora_alpha,
      dropout: cfg.lora_dropout ?? 0,
      targets,
      packed: 'qkv',
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

/** matchModules with errors blamed on the config file. */
function listTargets(model: VisionModel, targets: string | string[], configPath: string): ReturnType<typeof matchModules> {
  try {
    return matchModules(model, targets, 'lora');
  } catch (err) {
    throw new Error(`${configPath}: ${(err as Error).message}`, { cause: err });
  }
}
