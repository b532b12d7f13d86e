// `deltatune serve` as a function: one base model, many deltas over it, behind fastify.
//
// Threads: this one parses HTTP and schedules; image decoding runs in the data layer's decode
// worker (sharp on libuv's pool); inference runs on its own thread (engine-worker.ts), which holds
// the model. This module does not need the engine, so the HTTP thread never blocks on libtorch.
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import sharp from 'sharp';
import { decodeFile, decodeGroup } from '../data/decode-pool.js';
import { Engine } from './engine.js';
import type { DeltaInfo, Top } from './engine-worker.js';
import { ServerMetrics } from './metrics.js';
import { Scheduler } from './scheduler.js';

export interface ServeOptions {
  /** The base model's registry name (e.g. 'mobilenet_v2'). */
  model: string;
  /** The base weights (a file); deltas are checked against its fingerprint. */
  weights?: string;
  /** Deltas to load at start: a run folder, a delta folder, or `name=path`. */
  deltas?: string[];
  /** Bearer token for PUT/DELETE /v1/deltas (hot loading is off without one). */
  adminToken?: string;
  /** Bearer token for predictions (open without one). */
  predictToken?: string;
  /** Images per engine batch (default 16). */
  maxBatch?: number;
  /**
   * The batch sizes the engine runs at (TensorFlow Serving's allowed_batch_sizes): a batch is
   * zero-padded up to the next; the largest is maxBatch. Default: the powers of two below maxBatch,
   * and maxBatch. A batch size that keeps changing makes libtorch's convolutions several times slower.
   */
  batchSizes?: number[];
  /** How long an image may wait for others of its delta (default 5 ms). */
  maxWaitMs?: number;
  /** Images decoding, queued or running at once; beyond it, 503 (default 256). */
  maxQueue?: number;
  /** A predict request answers within this or gets 503 (default 30 s). */
  requestTimeoutMs?: number;
  /** Largest request body (default 16 MiB). */
  maxBodyBytes?: number;
  /** Largest image, in pixels (default 40 M). */
  maxImagePixels?: number;
  /** Images in one multipart request (default 32). */
  maxImagesPerRequest?: number;
  /** Default top-k (default 5; a request may ask ?top=K). */
  topK?: number;
  /** Inference threads (default: every core). */
  threads?: number;
  /** Log each request as JSON lines on stdout (fastify's logger; default off). */
  logRequests?: boolean;
}

export interface DeltaServer {
  app: FastifyInstance;
  /** Listens on host:port (default 127.0.0.1:8080; port 0 picks one); resolves to the base URL. */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops taking requests, answers those in flight, then frees the model. */
  close(): Promise<void>;
  deltas(): DeltaInfo[];
}

class HttpError extends Error {
  constructor(readonly statusCode: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

/** `name=path` or a path; a run's best/ or last/ is named after the run folder. */
export function parseDeltaSpec(spec: string): { name: string; path: string } {
  const eq = spec.indexOf('=');
  const named = eq > 0 && !existsSync(spec);
  const path = resolveDeltaFolder(named ? spec.slice(eq + 1) : spec);
  const leaf = basename(path);
  const name = named ? spec.slice(0, eq) : leaf === 'best' || leaf === 'last' ? basename(dirname(path)) : leaf;
  checkName(name, `delta '${spec}'`);
  return { name, path };
}

function resolveDeltaFolder(path: string): string {
  if (!existsSync(path)) throw new Error(`delta ${path}: no such file or folder`);
  if (!statSync(path).isDirectory()) {
    if (basename(path) === 'delta.json' || basename(path) === 'delta.safetensors') return resolve(dirname(path));
    throw new Error(`delta ${path}: not a delta (give a delta folder, its delta.json, or a run folder)`);
  }
  if (existsSync(join(path, 'delta.json'))) return resolve(path);
  for (const which of ['best', 'last']) if (existsSync(join(path, which, 'delta.json'))) return resolve(path, which);
  throw new Error(`delta ${path}: neither a delta folder (no delta.json) nor a run folder with a saved delta (no best/ or last/)`);
}

function powersOfTwoBelow(n: number): number[] {
  const out: number[] = [];
  for (let p = 1; p < n; p *= 2) out.push(p);
  return out;
}

function checkName(name: string, what: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name)) {
    throw new HttpError(400, `${what}: the name '${name}' must be 1-128 letters, digits, '.', '_' or '-' (not starting with '.', '_' or '-')`);
  }
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const given = /^Bearer (.+)$/.exec(header ?? '')?.[1] ?? '';
  // Compared as digests: equal length, constant time.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(token).digest();
  return given !== '' && timingSafeEqual(a, b);
}

function integer(value: string | undefined, what: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new HttpError(400, `${what} must be an integer in [${min}, ${max}], got '${value}'`);
  return n;
}

export async function createServer(options: ServeOptions): Promise<DeltaServer> {
  const o = {
    maxBatch: 16, maxWaitMs: 5, maxQueue: 256, requestTimeoutMs: 30_000, maxBodyBytes: 16 << 20,
    maxImagePixels: 40_000_000, maxImagesPerRequest: 32, topK: 5,
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
  } as ServeOptions & Required<Pick<ServeOptions, 'maxBatch' | 'maxWaitMs' | 'maxQueue' | 'requestTimeoutMs' | 'maxBodyBytes' | 'maxImagePixels' | 'maxImagesPerRequest' | 'topK'>>;
  for (const [key, min] of [['maxBatch', 1], ['maxWaitMs', 0], ['maxQueue', 1], ['requestTimeoutMs', 1], ['maxBodyBytes', 1], ['maxImagePixels', 1], ['maxImagesPerRequest', 1], ['topK', 1]] as const) {
    const v = o[key];
    if (!Number.isInteger(v) || v < min) throw new Error(`createServer: ${key} must be an integer >= ${min}, got ${v}`);
  }
  const batchSizes = o.batchSizes ? [...o.batchSizes].sort((a, b) => a - b) : [...powersOfTwoBelow(o.maxBatch), o.maxBatch];
  if (batchSizes.some((b) => !Number.isInteger(b) || b < 1) || batchSizes.at(-1) !== o.maxBatch || new Set(batchSizes).size !== batchSizes.length) {
    throw new Error(`createServer: batchSizes must be distinct positive integers whose largest is maxBatch (${o.maxBatch}), got [${o.batchSizes?.join(', ')}]`);
  }
  const specs = (o.deltas ?? []).map(parseDeltaSpec);
  const names = new Set<string>();
  for (const s of specs) {
    if (names.has(s.name)) throw new Error(`two deltas are named '${s.name}'; name them with name=path`);
    names.add(s.name);
  }

  const engine = new Engine({ model: o.model, weights: o.weights, threads: o.threads, batchSizes });
  const deltas = new Map<string, DeltaInfo>();
  try {
    await engine.ready;
    for (const s of specs) deltas.set(s.name, await engine.load(s.name, s.path));
  } catch (err) {
    await engine.close();
    throw err;
  }

  const metrics = new ServerMetrics();
  const scheduler = new Scheduler(engine, { maxBatch: o.maxBatch, maxWaitMs: o.maxWaitMs, switchSlackMs: 4 * o.maxWaitMs + 20 }, (e) => {
    metrics.batchSize.observe(e.size);
    metrics.compute.observe(e.computeMs / 1000);
    metrics.images.inc({ delta: e.delta }, e.size);
    if (e.switched) metrics.switches.inc();
  });
  const decodes = decodeGroup();
  const decodeConcurrency = 2 * availableParallelism();
  let inFlight = 0; // images accepted and not yet answered
  let ready = true;
  const unloading = new Set<string>();

  const app = Fastify({ logger: o.logRequests ?? false, bodyLimit: o.maxBodyBytes, return503OnClosing: true });
  await app.register(multipart, { limits: { fileSize: o.maxBodyBytes, files: o.maxImagesPerRequest, fields: 16, parts: o.maxImagesPerRequest + 16 } });
  app.addContentTypeParser(/^(image\/.+|application\/octet-stream)$/, { parseAs: 'buffer', bodyLimit: o.maxBodyBytes }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    let status = err.statusCode ?? 500;
    let message = err.message;
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || err.code === 'FST_REQ_FILE_TOO_LARGE') {
      status = 413;
      message = `the request body is over the server's limit of ${o.maxBodyBytes} bytes (--max-body-bytes)`;
    } else if (err.code === 'FST_FILES_LIMIT' || err.code === 'FST_PARTS_LIMIT') {
      status = 413;
      message = `over ${o.maxImagesPerRequest} images in one request (--max-images-per-request)`;
    } else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      status = 415;
      message = `send an image (image/jpeg, image/png, image/webp, ...) or multipart/form-data with image files; got '${req.headers['content-type'] ?? 'no content type'}'`;
    }
    if (err instanceof HttpError) for (const [k, v] of Object.entries(err.headers)) void reply.header(k, v);
    if (status >= 500 && !(err instanceof HttpError)) req.log.error(err);
    void reply.code(status).send({ error: message, statusCode: status });
  });
  // While shutting down, each answer closes its connection: a keep-alive socket that was busy when
  // close() began would otherwise hold the server open until the client's idle timeout.
  app.addHook('onSend', async (_req, reply) => {
    if (!ready) void reply.header('connection', 'close');
  });
  app.addHook('onResponse', async (req, reply) => {
    metrics.requests.inc({ route: req.routeOptions.url ?? 'unknown', code: String(reply.statusCode) });
  });

  const requireToken = (token: string | undefined, what: string) => async (req: FastifyRequest): Promise<void> => {
    if (token === undefined) return;
    if (!tokenMatches(req.headers.authorization, token)) throw new HttpError(401, `${what} needs 'Authorization: Bearer <token>' with the server's token`, { 'www-authenticate': 'Bearer' });
  };
  const admin = async (req: FastifyRequest): Promise<void> => {
    if (o.adminToken === undefined) throw new HttpError(403, 'hot loading is off: start the server with --admin-token (or DELTATUNE_ADMIN_TOKEN)');
    await requireToken(o.adminToken, 'changing the deltas')(req);
  };

  // The server's paths only go to the admin (PUT's answer), not to whoever may list the deltas.
  const describe = (d: DeltaInfo, withPath = false) => ({
    name: d.name, method: d.method, classes: d.classes, imageSize: d.transform.size,
    trainableParameters: d.trainableParameters, fileBytes: d.fileBytes, ...(withPath ? { path: d.path } : {}),
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    if (!ready) return reply.code(503).send({ status: 'shutting down' });
    return { status: 'ready', deltas: deltas.size };
  });
  app.get('/metrics', async (_req, reply) => {
    const stats = await engine.stats().catch(() => ({ rssBytes: 0, liveTensors: 0, heapBytes: 0, tensorBytes: 0, cachedTensorBytes: 0 }));
    void reply.type('text/plain; version=0.0.4');
    return metrics.text({ ...stats, queueDepth: scheduler.queued, inFlight, deltas: deltas.size, heapBytes: process.memoryUsage().heapUsed + stats.heapBytes });
  });
  app.get('/v1/deltas', { preHandler: requireToken(o.predictToken, 'listing the deltas') }, async () => ({
    model: o.model, deltas: [...deltas.values()].map((d) => describe(d)),
  }));

  app.put<{ Params: { name: string }; Body: { path?: unknown; ignoreBaseMismatch?: unknown } }>('/v1/deltas/:name', { preHandler: admin }, async (req, reply) => {
    const { name } = req.params;
    checkName(name, 'PUT /v1/deltas');
    const path = req.body?.path;
    if (typeof path !== 'string' || path === '') throw new HttpError(400, "send JSON {\"path\": \"<run or delta folder on the server>\"}");
    let folder: string;
    try {
      folder = resolveDeltaFolder(path);
    } catch (err) {
      throw new HttpError(400, (err as Error).message);
    }
    if (unloading.has(name)) throw new HttpError(409, `delta '${name}' is being unloaded; try again`);
    // The inference thread loads between batches: a batch already sent runs on the old version.
    let info: DeltaInfo;
    try {
      info = await engine.load(name, folder, req.body?.ignoreBaseMismatch === true);
    } catch (err) {
      throw new HttpError(400, (err as Error).message);
    }
    const replaced = deltas.has(name);
    deltas.set(name, info);
    return reply.code(replaced ? 200 : 201).send(describe(info, true));
  });

  app.delete<{ Params: { name: string } }>('/v1/deltas/:name', { preHandler: admin }, async (req) => {
    const { name } = req.params;
    if (!deltas.has(name)) throw new HttpError(404, `no delta named '${name}' is loaded`);
    // New requests get 404 at once; those already queued are answered first.
    unloading.add(name);
    deltas.delete(name);
    try {
      await scheduler.drain(name);
      await engine.unload(name);
      scheduler.forget(name);
    } finally {
      unloading.delete(name);
    }
    return { unloaded: name };
  });

  app.post<{ Params: { delta: string }; Querystring: { top?: string } }>('/v1/predict/:delta', { preHandler: requireToken(o.predictToken, 'predicting') }, async (req, reply) => {
    const started = performance.now();
    const info = deltas.get(req.params.delta);
    if (!info) throw new HttpError(404, `no delta named '${req.params.delta}'; loaded: ${[...deltas.keys()].join(', ') || 'none'}`);
    const topK = integer(req.query.top, '?top', 1, info.classes.length, Math.min(o.topK, info.classes.length));
    const images: { source: string; bytes: Buffer }[] = [];
    if (req.isMultipart()) {
      for await (const part of req.parts()) {
        if (part.type !== 'file') continue;
        images.push({ source: part.filename || part.fieldname, bytes: await part.toBuffer() });
      }
    } else if (Buffer.isBuffer(req.body)) {
      images.push({ source: 'body', bytes: req.body });
    } else if (req.body !== undefined) {
      // A body fastify parsed as text or JSON: not an image.
      throw new HttpError(415, `send an image (image/jpeg, image/png, image/webp, ...) or multipart/form-data with image files; got '${req.headers['content-type']}'`);
    }
    if (images.length === 0 || images.some((i) => i.bytes.length === 0)) throw new HttpError(400, 'no image in the request: send the image as the body, or multipart/form-data with image files');
    if (inFlight + images.length > o.maxQueue) {
      metrics.rejected.inc({ reason: 'overloaded' });
      throw new HttpError(503, `the server is at its limit of ${o.maxQueue} queued images (--max-queue); retry shortly`, { 'retry-after': '1' });
    }
    inFlight += images.length;
    // A timer cleared on the way out (not AbortSignal.timeout, whose listeners, and the images
    // they reach, would stay alive for the whole timeout after the answer).
    const timeout = new AbortController();
    let timedOut: (err: Error) => void = () => {};
    const timer = setTimeout(() => {
      metrics.rejected.inc({ reason: 'timeout' });
      const err = new HttpError(503, `the request waited over ${o.requestTimeoutMs} ms (--request-timeout-ms); retry shortly`, { 'retry-after': '1' });
      timeout.abort(err);
      timedOut(err);
    }, o.requestTimeoutMs);
    // A client that hangs up does not keep its images in the queue.
    const onClose = () => {
      if (!reply.raw.writableFinished) timeout.abort(new HttpError(499, 'the client closed the connection'));
    };
    reply.raw.once('close', onClose);
    try {
      const predictions = await Promise.race([
        Promise.all(images.map(async (image, k) => {
          const what = images.length > 1 ? `image ${k + 1} (${image.source})` : 'the image';
          const pixels = await prepare(image.bytes, info, what);
          if (timeout.signal.aborted) throw timeout.signal.reason as Error;
          if (!deltas.has(info.name)) throw new HttpError(404, `delta '${info.name}' was unloaded`);
          return { source: image.source, top: (await scheduler.submit(info.name, pixels, topK, timeout.signal)) as Top[] };
        })),
        new Promise<never>((_, reject) => (timedOut = reject)),
      ]);
      const latencyMs = performance.now() - started;
      metrics.latency.observe(latencyMs / 1000);
      return reply.send({ delta: info.name, model: o.model, method: info.method, predictions: predictions.map((p) => ({ source: p.source, top: p.top.map(({ label, probability }) => ({ label, probability })) })), latencyMs: Math.round(latencyMs * 100) / 100 });
    } finally {
      reply.raw.off('close', onClose);
      clearTimeout(timer);
      inFlight -= images.length;
    }
  });

  /** Decoded, resized and cropped as the delta's eval transform (in the decode worker). */
  async function prepare(bytes: Buffer, info: DeltaInfo, what: string): Promise<Uint8Array> {
    let width: number | undefined;
    let height: number | undefined;
    try {
      ({ width, height } = await sharp(bytes, { limitInputPixels: false }).metadata());
    } catch (err) {
      metrics.rejected.inc({ reason: 'bad_image' });
      throw new HttpError(400, `${what}: cannot decode image: ${(err as Error).message}`);
    }
    if (!width || !height) throw new HttpError(400, `${what}: cannot decode image: no size in its header`);
    if (width * height > o.maxImagePixels) {
      metrics.rejected.inc({ reason: 'too_many_pixels' });
      throw new HttpError(400, `${what}: ${width}x${height} = ${width * height} pixels, over the server's limit of ${o.maxImagePixels} (--max-image-pixels)`);
    }
    try {
      return await decodeFile({ group: decodes, concurrency: decodeConcurrency, path: '', bytes: new Uint8Array(bytes), what, transform: info.transform, seed: 0, epoch: 0, index: 0 });
    } catch (err) {
      metrics.rejected.inc({ reason: 'bad_image' });
      throw new HttpError(400, (err as Error).message);
    }
  }

  let closing: Promise<void> | null = null;
  return {
    app,
    async listen(port = 8080, host = '127.0.0.1') {
      return app.listen({ port, host });
    },
    close() {
      closing ??= (async () => {
        ready = false;
        // Requests in flight end by their timeout; a client that keeps a socket open past that is cut.
        const cut = setTimeout(() => app.server.closeAllConnections(), o.requestTimeoutMs + 1_000);
        try {
          await app.close(); // waits for the requests in flight
        } finally {
          clearTimeout(cut);
        }
        await scheduler.drain();
        await engine.close();
      })();
      return closing;
    },
    deltas: () => [...deltas.values()],
  };
}

export type { DeltaInfo, Top };
