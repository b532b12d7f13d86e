// The main-thread side of decode-worker.ts: one worker thread for the whole process (its own
// JS work is light; pixels are processed on libuv's pool), spawned on first use, which never
// holds the process open unless tasks are pending.
import { Worker } from 'node:worker_threads';
import type { DecodeTask, WorkerReply, WorkerRequest } from './decode-worker.js';

/** The decode worker itself failed (not one image): fatal even with onBadImage 'skip'. */
export class DecodeWorkerError extends Error {}

interface Pending {
  resolve: (pixels: Uint8Array) => void;
  reject: (err: Error) => void;
}

let worker: Worker | null = null;
const pending = new Map<number, Pending>();
let nextId = 0;
let nextGroup = 0;

function settle(id: number): Pending | undefined {
  const p = pending.get(id);
  pending.delete(id);
  // Only pending work may keep the process alive (an abandoned loader must not).
  if (pending.size === 0) worker?.unref();
  return p;
}

function spawn(): Worker {
  const w = new Worker(new URL('./decode-worker.js', import.meta.url));
  w.unref();
  w.on('message', (reply: WorkerReply) => {
    const p = settle(reply.id);
    if (!p) return;
    if ('pixels' in reply) p.resolve(reply.pixels);
    else p.reject(new Error('error' in reply ? reply.error : 'loader iteration was closed'));
  });
  const fail = (err: Error) => {
    // A crashed worker fails what it held; the next task starts a fresh one.
    if (worker !== w) return;
    worker = null;
    const lost = [...pending.values()];
    pending.clear();
    for (const p of lost) p.reject(new DecodeWorkerError(`image decoding worker failed: ${err.message}`, { cause: err }));
  };
  w.on('error', fail);
  w.on('exit', (code) => fail(new Error(`it exited with code ${code}`)));
  return w;
}

/** A fresh id for one loader iteration (the unit of concurrency and cancellation). */
export function decodeGroup(): number {
  return nextGroup++;
}

/**
 * Reads, decodes and transforms one file (or the encoded `bytes` given, which are then moved to
 * the worker, not copied) in the worker; rejects with a message naming task.what.
 */
export function decodeFile(task: Omit<DecodeTask, 'id'>): Promise<Uint8Array> {
  const w = (worker ??= spawn());
  const id = nextId++;
  return new Promise((resolve, reject) => {
    if (pending.size === 0) w.ref();
    pending.set(id, { resolve, reject });
    const transfer = task.bytes && task.bytes.byteLength === task.bytes.buffer.byteLength ? [task.bytes.buffer as ArrayBuffer] : [];
    w.postMessage({ type: 'task', id, ...task } satisfies WorkerRequest, transfer);
  });
}

/** Drops the queued tasks of a group (their promises reject); running ones finish. */
export function cancelGroup(group: number): void {
  worker?.postMessage({ type: 'cancel', group } satisfies WorkerRequest);
}
