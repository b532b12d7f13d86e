// Typed functional ops, like torch / torch.nn.functional. Importing this installs Tensor methods.
import './chain.js';

export * from './creation.js';
export * from './pointwise.js';
export * from './shape.js';
export * from './reduce.js';
export * from './linalg.js';
export * from './conv.js';
export * from './activation.js';
export * from './norm.js';
export * from './loss.js';
export * from './resize.js';
export * from './init.js';
export * from './fused.js';
