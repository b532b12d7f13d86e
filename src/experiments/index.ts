// The experiments layer: the application layer above train/. It runs grids of delta-tuning runs
// (variants × seeds, each run in its own process through train's tune()) under one budget, reuses
// finished runs, and writes reports (markdown table, plots, HTML page); it also makes the demo's
// pretrained backbone and holds the compute study's tasks. The `compare` and `ablate-scales` CLI
// commands and `deltatune demo` are built on it.
//
// It is not part of the library's main entry ('deltatune'): import it as 'deltatune/experiments'.
// Vega and Vega-Lite, which draw the plots, load only when a report is written.
export { runGrid, readRun, type ExperimentBase, type GridOptions, type Variant } from './runner.js';
export { compareMethods, ablateScales, parseScaleSets, SCALE_SETS, type ExperimentOptions } from './compare.js';
export {
  summariseRuns, markdownTable, writeReport,
  type EpochPoint, type RunRecord, type ExperimentResults, type ReportRow,
} from './report.js';
export { readResults, readRunSummary, checkExperimentFolder, resultsSchema, runSummarySchema } from './files.js';
export { demoBackbone, demoTransfer, defaultCacheDir, DEMO_MODEL, DEMO_SIZE, type BackboneOptions } from './backbone.js';
export { computeStudy, COMPUTE_TASKS, type ComputeStudy, type ComputeTask } from './compute-tasks.js';
