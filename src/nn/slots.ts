// The injection contract between backbones and delta methods: the names of the optional child
// modules a block runs when present. Models run them (models/taps.ts, MultiheadAttention) and
// methods add them (delta/); both import these names rather than repeating the strings.
//
// In a pre-norm transformer block (Swin, ViT):
//
//   a = attnBranch(x);   a = attn_adapter?(a)          Houlsby adapter, before the residual add
//   h = x + a;           h = post_attn?(h)              Mona's first module
//   m = mlpBranch(h);    m = mlp_adapter?(m)            Houlsby adapter
//                        m = m + mlp_parallel?(h)       AdaptFormer, beside the MLP
//   y = h + m;           y = post_mlp?(y)               Mona's second module
//
// and in MultiheadAttention, in_proj_delta?(x) is added to the packed q/k/v projection (LoRA on
// q and v, since torch keeps the three in one in_proj_weight).
//
// The slots are ordinary child modules (so their parameters get dotted names such as
// `features.1.0.post_attn.project1.weight`), absent in the base model.
export const SLOTS = {
  attnAdapter: 'attn_adapter',
  postAttn: 'post_attn',
  mlpAdapter: 'mlp_adapter',
  mlpParallel: 'mlp_parallel',
  postMlp: 'post_mlp',
  inProjDelta: 'in_proj_delta',
} as const;

export type Slot = (typeof SLOTS)[keyof typeof SLOTS];

/** The slots of a pre-norm transformer block, in the order they run. */
export const BLOCK_SLOTS = [SLOTS.attnAdapter, SLOTS.postAttn, SLOTS.mlpAdapter, SLOTS.mlpParallel, SLOTS.postMlp] as const;
export type BlockSlot = (typeof BLOCK_SLOTS)[number];
