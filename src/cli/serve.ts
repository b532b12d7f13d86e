// `deltatune serve`: the HTTP inference server (src/serve) from the command line; runs until
// SIGTERM or SIGINT, then answers the requests in flight and exits.
import { createServer } from '../serve/index.js';
import { UsageError } from './errors.js';
import { num, parse, required, str } from './args.js';

export const serveHelp = `Usage: deltatune serve --model NAME [--weights FILE] --deltas PATH [PATH ...] [options]

Serves many deltas over one base model in memory: each delta (a run folder, a delta folder, or
NAME=PATH) is checked against the base's fingerprint. Requests for the same delta are batched.

  POST   /v1/predict/{delta}[?top=K]  an image as the body (JPEG, PNG, WebP, ...), or
                                      multipart/form-data with several; answers top-k JSON
  GET    /v1/deltas                   the loaded deltas: method, classes, sizes
  PUT    /v1/deltas/{name}            load or replace a delta: JSON {"path": "<folder on the server>"}
  DELETE /v1/deltas/{name}            unload it (queued requests are answered first)
  GET    /healthz, /readyz, /metrics  liveness, readiness, Prometheus text

  --model NAME                the base model (e.g. mobilenet_v2)
  --weights FILE              its weights (the file the deltas were trained over)
  --deltas PATH ...           deltas to load at start (repeatable; more paths may follow)
  --host H / --port N         where to listen (default 127.0.0.1:8080; 0.0.0.0 for every interface)
  --admin-token T             Bearer token for PUT/DELETE (or DELTATUNE_ADMIN_TOKEN; off without one)
  --predict-token T           Bearer token for predictions and the list (or DELTATUNE_PREDICT_TOKEN;
                              open without one)
  --max-batch N               images per batch (default 16)
  --batch-sizes N,N,...       the sizes batches run at, zero-padded up to the next (default: powers
                              of two, then --max-batch; a batch size that keeps changing makes
                              libtorch's convolutions several times slower)
  --max-wait-ms N             how long an image waits for others of its delta (default 5)
  --max-queue N               images accepted at once; beyond, 503 with Retry-After (default 256)
  --request-timeout-ms N      a request not answered by then gets 503 (default 30000)
  --max-body-bytes N          largest request body, else 413 (default 16777216)
  --max-image-pixels N        largest image, else 400 (default 40000000)
  --max-images-per-request N  images in one multipart request, else 413 (default 32)
  --top-k N                   default k (default 5)
  --threads N                 inference threads (default: every core)
  --log-requests              one JSON line per request on stdout`;

export async function runServe(argv: string[]): Promise<void> {
  const p = parse(argv, {
    model: { type: 'string' }, weights: { type: 'string' }, deltas: { type: 'string', multiple: true }, host: { type: 'string' }, port: { type: 'string' },
    'admin-token': { type: 'string' }, 'predict-token': { type: 'string' }, 'max-batch': { type: 'string' }, 'max-wait-ms': { type: 'string' }, 'batch-sizes': { type: 'string' },
    'max-queue': { type: 'string' }, 'request-timeout-ms': { type: 'string' }, 'max-body-bytes': { type: 'string' }, 'max-image-pixels': { type: 'string' },
    'max-images-per-request': { type: 'string' }, 'top-k': { type: 'string' }, threads: { type: 'string' }, 'log-requests': { type: 'boolean' },
  }, serveHelp, true);
  if (!p) return;
  const model = required(p, 'model', serveHelp);
  const deltas = [...((p.values.deltas as string[] | undefined) ?? []), ...p.positionals];
  if (deltas.length === 0 && p.values['admin-token'] === undefined && !process.env.DELTATUNE_ADMIN_TOKEN) {
    throw new UsageError('give --deltas PATH ... (or --admin-token, to load them later with PUT /v1/deltas/{name})', serveHelp);
  }
  const int = (name: string, min: number) => num(p, name, serveHelp, { integer: true, min });
  const token = (flag: string, env: string): string | undefined => {
    const t = str(p, flag) ?? process.env[env];
    if (t !== undefined && t.length < 16) throw new UsageError(`--${flag} (or ${env}) must be at least 16 characters`, serveHelp);
    return t;
  };
  const maxBatch = int('max-batch', 1);
  const sizesFlag = str(p, 'batch-sizes');
  let batchSizes: number[] | undefined;
  if (sizesFlag !== undefined) {
    batchSizes = sizesFlag.split(',').map((v) => Number(v.trim()));
    const largest = maxBatch ?? 16;
    if (batchSizes.some((b) => !Number.isInteger(b) || b < 1 || b > largest) || batchSizes.length > 64 || new Set(batchSizes).size !== batchSizes.length) {
      throw new UsageError(`--batch-sizes must be distinct whole numbers from 1 to --max-batch (${largest}), comma-separated, got '${sizesFlag.slice(0, 60)}'`, serveHelp);
    }
    if (!batchSizes.includes(largest)) batchSizes.push(largest);
  }
  const port = int('port', 0) ?? 8080;
  const host = str(p, 'host') ?? '127.0.0.1';
  const server = await createServer({
    model, weights: str(p, 'weights'), deltas,
    adminToken: token('admin-token', 'DELTATUNE_ADMIN_TOKEN'), predictToken: token('predict-token', 'DELTATUNE_PREDICT_TOKEN'),
    maxBatch, batchSizes, maxWaitMs: int('max-wait-ms', 0), maxQueue: int('max-queue', 1), requestTimeoutMs: int('request-timeout-ms', 1),
    maxBodyBytes: int('max-body-bytes', 1), maxImagePixels: int('max-image-pixels', 1), maxImagesPerRequest: int('max-images-per-request', 1),
    topK: int('top-k', 1), threads: int('threads', 1), logRequests: p.values['log-requests'] === true,
  });
  let url: string;
  try {
    url = await server.listen(port, host);
  } catch (err) {
    await server.close();
    throw new Error(`cannot listen on ${host}:${port}: ${(err as Error).message}`, { cause: err });
  }
  const list = server.deltas().map((d) => `${d.name} (${d.method}, ${d.classes.length} classes)`).join(', ');
  console.log(`serving ${model} with ${server.deltas().length} delta(s) on ${url}: ${list || 'none yet'}`);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      console.log(`${signal}: answering the requests in flight, then stopping`);
      void server.close().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  console.log('stopped');
}
