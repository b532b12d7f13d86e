// The hostile-input suite, quick form: a deterministic sample of ~40 generated cases per reader
// (weights, images, manifests, CSV lists), each run in a worker process with a 1 GiB memory cap
// and a 30 s limit. Every case must end without a crash, hang, excess memory, changed input file,
// silently wrong result or unclear message. `npm run bench:hostile` runs 1,000 per reader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeCase, sampleIds, type CaseSpec } from './generate.js';
import { failureLines, resultLine, runHostile, table, tally } from './harness.js';

const SEED = 20261204;
const PER_READER = 40;

test(`hostile inputs: ${PER_READER} generated cases per reader fail cleanly or load exactly`, { timeout: 600_000 }, async (t) => {
  const ids = sampleIds(PER_READER, SEED);
  const run = await runHostile({ ids, seed: SEED, workers: 2 }, (id) => describeCase(id, SEED));
  const counts = tally(run.outcomes);
  t.diagnostic(`${counts.cases} cases in ${run.seconds.toFixed(1)} s (${run.restarts} worker restarts); ${counts.accepted} accepted, ${counts.rejected} refused`);
  const failures = failureLines(run.outcomes);
  if (failures.length) for (const line of table(run.outcomes).split('\n')) t.diagnostic(line);
  for (const line of failures) t.diagnostic(line);
  t.diagnostic(resultLine(run.outcomes));
  assert.deepEqual(run.baselineChanged, [], 'the shared baseline files are unchanged');
  const bad = (['crash', 'hang', 'overmem', 'files_changed', 'silent_wrong', 'unclear', 'harness_error'] as const).filter((k) => counts[k] > 0);
  assert.equal(
    bad.length, 0,
    `${bad.map((k) => `${k}=${counts[k]}`).join(' ')} (false_reject=${counts.false_reject}); failing cases:\n${failures.slice(0, 80).join('\n')}`,
  );
});

test('the harness sees each kind of failure and carries on in a fresh worker', { timeout: 300_000 }, async () => {
  const kinds = ['hang', 'segv', 'abort', 'throw-later', 'overmem', 'write'];
  // Each misbehaving case is followed by a real one, which a fresh worker must run normally.
  const ids = kinds.flatMap((k) => [`selftest:${k}`, 'weights:8']);
  const describe = (id: string): CaseSpec =>
    id.startsWith('selftest:') ? { id, reader: 'weights', category: 'harness self-test', name: id.slice(9), expect: 'either' } : describeCase(id, SEED);
  const run = await runHostile({ ids, seed: SEED, workers: 1, timeoutMs: 4000 }, describe);
  const got = Object.fromEntries(run.outcomes.filter((o) => o.id.startsWith('selftest:')).map((o) => [o.spec.name, o.filesChanged.length ? 'files_changed' : o.status]));
  assert.deepEqual(got, { hang: 'hang', segv: 'crash', abort: 'crash', 'throw-later': 'crash', overmem: 'overmem', write: 'files_changed' });
  for (const o of run.outcomes.filter((x) => x.id === 'weights:8')) assert.equal(o.status, 'ok', `the case after a failure runs normally: ${o.detail}`);
  assert.equal(run.restarts, 5, 'one fresh worker after each of the five deaths');
});
