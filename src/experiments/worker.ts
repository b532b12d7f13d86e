// One run of an experiment grid, in its own process: `node worker.js '<TuneOptions JSON>'`.
// Prints one JSON line: {"ok":true} or {"ok":false,"error":"..."}.
import '../index.js';
import { tune, type TuneOptions } from '../train/run.js';

const options = JSON.parse(process.argv[2] ?? 'null') as (TuneOptions & { resume?: boolean }) | null;
if (!options) {
  console.log(JSON.stringify({ ok: false, error: 'worker: no options given' }));
  process.exit(2);
}
const { resume, ...tuneOptions } = options;
tune(tuneOptions, { resume: resume === true }).then(
  () => {
    console.log(JSON.stringify({ ok: true }));
    process.exit(0);
  },
  (err: unknown) => {
    console.log(JSON.stringify({ ok: false, error: (err instanceof Error ? err.message : String(err)).split('\n')[0] }));
    process.exit(1);
  },
);
