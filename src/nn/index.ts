export { Module, type StateDict, type LoadReport, type LoadOptions } from './module.js';
export { Parameter } from './parameter.js';
export * from './layers.js';
export * from './containers.js';
export * from './attention.js';
export { defaultWeight, defaultBias, constantParameter, withoutInitialisation, shouldInitialise } from './init.js';
export { release, pipe, type Step } from './release.js';
export { SLOTS, BLOCK_SLOTS, type Slot, type BlockSlot } from './slots.js';
