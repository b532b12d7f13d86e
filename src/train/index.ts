export * from './optim.js';
export * from './schedule.js';
export * from './metrics.js';
export * from './checkpoint.js';
export * from './progress.js';
export * from './trainer.js';
export * from './tune.js';
export * from './prefix-cache.js';
