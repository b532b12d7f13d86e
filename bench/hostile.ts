// Hostile-input benchmark (`npm run bench:hostile`): ≥ 1,000 generated cases per reader — weights
// (safetensors, .pth), images (the predict path), manifests (delta.json, adapter_config.json,
// config.json) and CSV lists — run on two worker processes with a 1 GiB memory cap and 30 s per
// case. Prints a per-category table, writes the failing categories with an example message each
// to /tmp/hostile-report.txt, and ends with the RESULT line.
//   HOSTILE_CASES=n   cases per reader (default 1000)    HOSTILE_SEED=s   generator seed (default 1)
//   HOSTILE_FIXED=1   only the hand-written cases        HOSTILE_IDS=weights:3,csv:10   just these
//   HOSTILE_VERBOSE=1 print every case's outcome
import { benchIds, describeCase, fixedCount, READERS } from '../test/hostile/generate.js';
import { failureLines, failureReport, leakLines, resultLine, runHostile, slowestLines, table, tally, writeReport } from '../test/hostile/harness.js';

const PER_READER = Number(process.env.HOSTILE_CASES ?? 1000);
const SEED = Number(process.env.HOSTILE_SEED ?? 1);
const REPORT = process.env.HOSTILE_REPORT ?? '/tmp/hostile-report.txt';

const ids = process.env.HOSTILE_IDS
  ? process.env.HOSTILE_IDS.split(',')
  : process.env.HOSTILE_FIXED
    ? READERS.flatMap((r) => Array.from({ length: fixedCount(r) }, (_, i) => `${r}:${i}`))
    : benchIds(PER_READER);
console.log(`hostile inputs: ${ids.length} cases (${PER_READER} per reader; fixed cases ${READERS.map((r) => `${r} ${fixedCount(r)}`).join(', ')}), seed ${SEED}, 2 workers, 1 GiB and 30 s per case`);
let last = performance.now();
const run = await runHostile(
  {
    ids, seed: SEED, workers: 2,
    log: (line) => console.error(line),
    onCase: (o, done, total) => {
      if (process.env.HOSTILE_VERBOSE) console.error(`  ${o.id} ${o.status}${o.falseReject ? '+false_reject' : ''}${o.filesChanged.length ? '+files_changed' : ''} ${o.spec.reader}/${o.spec.name} [${o.spec.expect}] ${o.ms.toFixed(0)} ms: ${o.detail.slice(0, 300)}`);
      else if (o.status === 'hang' || o.status === 'overmem' || o.status === 'crash') console.error(`  ${o.status}: ${o.spec.reader}/${o.spec.name}`);
      if (performance.now() - last > 15_000 || done === total) {
        last = performance.now();
        console.error(`  ${done}/${total} cases`);
      }
    },
  },
  (id) => describeCase(id, SEED),
);
const counts = tally(run.outcomes);
console.log(`\n${counts.cases} cases in ${run.seconds.toFixed(0)} s, ${run.restarts} worker restarts\n`);
console.log(table(run.outcomes));
const failures = failureLines(run.outcomes);
if (failures.length) {
  console.log(`\nfailing cases (${failures.length}; first 60):`);
  for (const line of failures.slice(0, 60)) console.log(`  ${line.slice(0, 300)}`);
}
console.log('\nslowest cases:');
for (const line of slowestLines(run.outcomes)) console.log(`  ${line}`);
const leaks = leakLines(run.outcomes);
if (leaks.length) {
  console.log(`\ncases that left libtorch tensors alive (${run.outcomes.filter((o) => o.leaked > 0).length}):`);
  for (const line of leaks) console.log(`  ${line}`);
}
if (run.baselineChanged.length) console.log(`\nshared baseline files changed: ${run.baselineChanged.join(', ')}`);
const result = resultLine(run.outcomes);
writeReport(REPORT, failureReport(run.outcomes, `hostile-input bench, ${new Date().toISOString()}, seed ${SEED}, ${counts.cases} cases in ${run.seconds.toFixed(0)} s\n${result}\nfalse_reject=${counts.false_reject} unclear=${counts.unclear} harness_error=${counts.harness_error}`));
console.log(`\nfailing categories with an example each: ${REPORT}`);
console.log(result);
