// Delta-tuning methods: importing this registers every method.
import './selection.js';
import './lora.js';
import './ssf.js';
import './adapters.js';
import './filter-atom.js';
import './mona.js';

export { applyDelta, attachedDelta, listMethods, matchModules, methodSpec, registerMethod, Delta, DeltaBuilder, FROZEN_PRECISIONS, type FrozenPrecision, type DeltaOptions, type DeltaSummary, type MethodSpec, type OutputAdapter } from './core.js';
export { saveDelta, loadDelta, readDeltaManifest, fileSha256, type DeltaManifest, type LoadDeltaOptions } from './files.js';
export { PackedQVLora, type LoraConfig } from './lora.js';
export { ScaleShift } from './ssf.js';
export { BottleneckAdapter, ConvAdapter } from './adapters.js';
export { savePeftLora, loadPeftLora } from './peft.js';
export { FilterAtoms } from './filter-atom.js';
export { Mona, MonaMap, MonaOp, monaParameterCount } from './mona-module.js';
export { type MonaConfig } from './mona.js';
