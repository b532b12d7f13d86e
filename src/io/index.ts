// Checkpoint input/output: safetensors (read/write), PyTorch .pth (read), atomic writes.
export { writeFileAtomic } from './atomic.js';
export {
  loadSafetensors, parseSafetensors, inspectSafetensors, saveSafetensors,
  type SafetensorsFile, type SafetensorsHeader, type SafetensorsEntry, type LoadSafetensorsOptions,
} from './safetensors.js';
export { loadPth, parsePth } from './pth.js';
export { loadStateDict, saveStateDict, extractStateDict, checkFinite, firstNonFinite } from './state-dict.js';
export { openRegularFile, readRegularFile, readRegularFileAsync, readTextFile, describeFileType, InputFileError, INPUT_LIMITS } from './read.js';
export { checkOutputFile, checkNotPseudoFilesystem, OutputFolder, OutputRefusedError, type OutputFileOptions } from './output.js';
export { readJsonFile, MAX_JSON_DEPTH } from './json.js';
