// The serve scheduler with a stand-in engine: micro-batches per delta, the wait bound, fairness
// between deltas under a flood, and cancellation of queued images.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Engine } from '../../src/serve/engine.js';
import { Scheduler } from '../../src/serve/scheduler.js';

interface Batch {
  delta: string;
  size: number;
  at: number;
}

/** An engine whose batches take `ms` and answer each image with its first byte as the label. */
function fakeEngine(ms: number, log: Batch[]): Engine {
  let attached: string | null = null;
  return {
    run: async (delta: string, pixels: Uint8Array, count: number) => {
      log.push({ delta, size: count, at: performance.now() });
      await new Promise((r) => setTimeout(r, ms));
      const per = pixels.length / count;
      const switched = attached !== delta;
      attached = delta;
      return { results: Array.from({ length: count }, (_, k) => [{ label: String(pixels[k * per]), index: 0, probability: 1 }]), switched, computeMs: ms };
    },
  } as unknown as Engine;
}

const image = (tag: number) => new Uint8Array([tag, 0, 0, 0]);

test('images of one delta run together, up to maxBatch, each answered with its own result', async () => {
  const log: Batch[] = [];
  const scheduler = new Scheduler(fakeEngine(5, log), { maxBatch: 4, maxWaitMs: 20, switchSlackMs: 50 });
  const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => scheduler.submit('a', image(i), 1)));
  assert.deepEqual(answers.map((a) => a[0]!.label), Array.from({ length: 10 }, (_, i) => String(i)));
  assert.deepEqual(log.map((b) => b.size), [4, 4, 2]);
  assert.equal(scheduler.queued, 0);
});

test('a lone image waits maxWaitMs for company, then runs alone', async () => {
  const log: Batch[] = [];
  const scheduler = new Scheduler(fakeEngine(1, log), { maxBatch: 8, maxWaitMs: 60, switchSlackMs: 100 });
  const t0 = performance.now();
  await scheduler.submit('a', image(1), 1);
  assert.equal(log.length, 1);
  assert.ok(log[0]!.at - t0 >= 55, `ran after ${log[0]!.at - t0} ms`);
  assert.ok(log[0]!.at - t0 < 1_000);
});

test('a flooded delta does not starve another: the other runs within the slack', async (t) => {
  const log: Batch[] = [];
  const slack = 40;
  const scheduler = new Scheduler(fakeEngine(10, log), { maxBatch: 4, maxWaitMs: 2, switchSlackMs: slack });
  let flooding = true;
  const flood = (async () => {
    const pending: Promise<unknown>[] = [];
    while (flooding) {
      for (let i = 0; i < 4; i++) pending.push(scheduler.submit('busy', image(1), 1));
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(pending);
  })();
  // A backlog builds (4 images every 5 ms, 4 per 10 ms served): in arrival order the quiet image
  // would wait for all of it.
  await new Promise((r) => setTimeout(r, 300));
  const asked = performance.now();
  await scheduler.submit('quiet', image(2), 1);
  const waited = performance.now() - asked;
  t.diagnostic(`the quiet delta waited ${waited.toFixed(1)} ms behind a flood`);
  flooding = false;
  await flood;
  const quiet = log.findIndex((b) => b.delta === 'quiet');
  assert.ok(quiet > 0, 'the quiet delta ran');
  assert.ok(log.slice(quiet + 1).some((b) => b.delta === 'busy'), 'the flood went on after it');
  // At most the slack, the wait, a batch already running and one more of the attached delta.
  assert.ok(waited < slack + 2 + 2 * 10 + 100, `the quiet delta waited ${waited.toFixed(1)} ms`);
});

test('an aborted image leaves the queue; one already running still completes', async () => {
  const log: Batch[] = [];
  const scheduler = new Scheduler(fakeEngine(30, log), { maxBatch: 1, maxWaitMs: 0, switchSlackMs: 0 });
  const running = scheduler.submit('a', image(1), 1);
  const controller = new AbortController();
  const queued = scheduler.submit('a', image(2), 1, controller.signal);
  assert.equal(scheduler.queued, 1);
  controller.abort(new Error('timed out'));
  await assert.rejects(queued, /timed out/);
  assert.equal(scheduler.queued, 0);
  assert.equal((await running)[0]!.label, '1');
  await scheduler.drain();
  assert.deepEqual(log.map((b) => b.size), [1]);
});
