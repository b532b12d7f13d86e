// Worker thread that reads, decodes and augments image files for every DataLoader of the
// process (see decode-pool.ts). Each file takes several async steps (read, header, pipeline);
// run from the main thread, every step would wait for the synchronous training step to end.
// Here they chain on this thread's own event loop, while the pixel work itself still runs on
// libuv's shared thread pool.
import { parentPort } from 'node:worker_threads';
import { readImageFile, reason, withPixelCount } from './image.js';
import { transformSample } from './pipeline.js';
import { Rng, STREAM } from './random.js';
import type { ResolvedTransform } from './transforms.js';

export interface DecodeTask {
  id: number;
  /** One loader iteration: the unit of concurrency limits and cancellation. */
  group: number;
  /** Files of this group processed at once. */
  concurrency: number;
  path: string;
  /** The encoded image itself (an upload), instead of reading `path`. */
  bytes?: Uint8Array;
  /** Names the sample in errors. */
  what: string;
  transform: ResolvedTransform;
  seed: number;
  epoch: number;
  index: number;
}

export type WorkerRequest = ({ type: 'task' } & DecodeTask) | { type: 'cancel'; group: number };

export type WorkerReply =
  | { id: number; pixels: Uint8Array }
  | { id: number; error: string }
  | { id: number; cancelled: true };

// Every failure here, a file that is not a regular one (a FIFO, /dev/zero, a directory, also
// behind a symlink: refused at open, never waited on), one over INPUT_LIMITS.imageBytes or an
// image over INPUT_LIMITS.imagePixels included, is a bad image: the loader's onBadImage decides.
async function handle(task: DecodeTask): Promise<WorkerReply> {
  let bytes: Buffer;
  try {
    bytes = task.bytes ? Buffer.from(task.bytes.buffer, task.bytes.byteOffset, task.bytes.byteLength) : await readImageFile(task.path, task.what);
  } catch (err) {
    return { id: task.id, error: reason(err) };
  }
  try {
    const rng = new Rng(STREAM.sample, task.seed, task.epoch, task.index);
    return { id: task.id, pixels: await transformSample({ encoded: bytes }, task.transform, rng, task.what) };
  } catch (err) {
    return { id: task.id, error: reason(err instanceof Error ? await withPixelCount(err, bytes, task.what) : err) };
  }
}

if (parentPort) {
  const port = parentPort;
  const queue: DecodeTask[] = [];
  const active = new Map<number, number>();

  // Starts every queued task whose group is below its concurrency, oldest first.
  const pump = (): void => {
    for (let k = 0; k < queue.length; k++) {
      const task = queue[k]!;
      const running = active.get(task.group) ?? 0;
      if (running >= task.concurrency) continue;
      queue.splice(k--, 1);
      active.set(task.group, running + 1);
      void handle(task).then((reply) => {
        const left = active.get(task.group)! - 1;
        if (left === 0) active.delete(task.group);
        else active.set(task.group, left);
        port.postMessage(reply);
        pump();
      });
    }
  };

  port.on('message', (msg: WorkerRequest) => {
    if (msg.type === 'task') {
      const { type: _, ...task } = msg;
      queue.push(task);
      pump();
    } else {
      // Abandoned iteration: answer its queued tasks at once, without work.
      for (let k = queue.length - 1; k >= 0; k--) {
        if (queue[k]!.group === msg.group) port.postMessage({ id: queue.splice(k, 1)[0]!.id, cancelled: true } satisfies WorkerReply);
      }
    }
  });
}
