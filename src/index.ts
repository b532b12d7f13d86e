// The public API of deltatune (re-exports only).
export * from './engine/index.js';
export * from './ops/index.js';
export * from './dist/index.js';
export * from './nn/index.js';
export * from './io/index.js';
export * from './hub/index.js';
export * from './models/index.js';
export * from './delta/index.js';
export * from './data/index.js';
export * from './train/index.js';
export * from './export/index.js';
