// The shared machinery of delta-tuning, in four parts: the method registry and option schemas
// (registry.ts), target matching (targets.ts), the builder methods install through (builder.ts),
// frozen-backbone execution (frozen.ts), and the Delta itself (delta.ts), plus a dry run (plan.ts).
export {
  registerMethod, listMethods, methodSpec, methodFacts, methodsFor, inapplicableReason, configureMethod, check, option,
  type CommonOptions, type MethodSpec, type MethodFacts, type OptionSpec, type OptionSchema,
} from './registry.js';
export { matchModules, excludeFrom, moduleMatcher } from './targets.js';
export { DeltaBuilder, StandIn, type OutputAdapter } from './builder.js';
export { FrozenBatchNorm2d, FoldedBatchNorm2d, FoldedConv2d, FROZEN_PRECISIONS, type FrozenPrecision } from './frozen.js';
export { Delta, applyDelta, attachedDelta, type DeltaOptions, type DeltaSummary } from './delta.js';
export { planDelta, type DeltaPlan } from './plan.js';
