// Data-parallel building blocks: libtorch's c10d stores and ProcessGroupGloo.
export { Store, DEFAULT_TIMEOUT_MS, type StoreOptions } from './store.js';
export { ProcessGroup, type ProcessGroupOptions, type ReduceOp, type GlooDevice } from './process-group.js';
export { initProcessGroup, type InitProcessGroupOptions } from './init.js';
