// The public API of deltatune (re-exports only).
export * from './engine/index.js';
export * from './ops/index.js';
export * from './train/optim.js';
