// The HTTP inference server: many deltas over one base (deltatune serve).
export { createServer, parseDeltaSpec, type DeltaServer, type ServeOptions, type DeltaInfo, type Top } from './server.js';
