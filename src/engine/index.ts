export { Tensor, callOp, callTensorOp, opSchema, type OpArg } from './tensor.js';
export { type DType, type MemoryFormat, type TypedArray, DTYPES, isFloating } from './dtype.js';
export { Scope, tidy, keep } from './scope.js';
export { noGrad, enableGrad, isGradEnabled, backward } from './autograd.js';
export type { CpuMemoryStats, OpProfile } from './native.js';
export { setNumThreads, getNumThreads, manualSeed, cudaAvailable, engineInfo, memoryStats, cpuMemoryStats, emptyCpuCache, peakRssMiB, profileOps, defaultThreadCount, cpuHasNativeBfloat16 } from './runtime.js';
