// Delta-tuning methods: importing this registers every method.
// The import order is the registration order: baselines first, Mona last (compare runs them so).
import './selection.js';
import './adapters.js';
import './lora.js';
import './ssf.js';
import './filter-atom.js';
import './mona.js';

export {
  applyDelta, attachedDelta, listMethods, matchModules, excludeFrom, methodSpec, methodFacts, methodsFor, inapplicableReason, registerMethod, option, check,
  planDelta, Delta, DeltaBuilder, StandIn, FrozenBatchNorm2d, FoldedBatchNorm2d, FoldedConv2d, FROZEN_PRECISIONS,
  type FrozenPrecision, type DeltaOptions, type DeltaPlan, type DeltaSummary, type MethodSpec, type MethodFacts, type OptionSpec, type OptionSchema, type OutputAdapter,
} from './core/index.js';
export { saveDelta, loadDelta, readDeltaManifest, fileSha256, type DeltaManifest, type LoadDeltaOptions } from './files.js';
export { PackedLora, PackedQVLora, type LoraConfig } from './lora.js';
export { ScaleShift } from './ssf.js';
export { BottleneckAdapter, ConvAdapter } from './adapters.js';
export { savePeftLora, loadPeftLora } from './peft.js';
export { FilterAtoms } from './filter-atom.js';
export { Mona, MonaMap, MonaOp, monaParameterCount } from './mona-module.js';
export { type MonaConfig } from './mona.js';
