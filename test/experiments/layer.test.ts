// The experiments layer (src/experiments/index.ts, 'deltatune/experiments'): its entry exports the
// layer's API, loads Vega and Vega-Lite only when a report is written, and is not part of the
// library's main entry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as layer from '../../src/experiments/index.js';
import * as lib from '../../src/index.js';
import { ROOT } from '../helpers.js';

test("the layer's entry exports the runner, the experiments, the report and the files", () => {
  for (const name of ['runGrid', 'readRun', 'compareMethods', 'ablateScales', 'parseScaleSets', 'summariseRuns', 'markdownTable', 'writeReport', 'readResults', 'readRunSummary', 'demoBackbone', 'computeStudy']) {
    assert.equal(typeof (layer as Record<string, unknown>)[name], 'function', name);
  }
  assert.ok(!('compareMethods' in lib) && !('writeReport' in lib), "'deltatune' itself does not export the experiments layer");
});

test('package.json maps deltatune/experiments to the compiled layer entry', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, { default: string; types: string }> };
  assert.equal(pkg.exports['.']!.default, './dist/src/index.js');
  assert.equal(pkg.exports['./experiments']!.default, './dist/src/experiments/index.js');
  assert.equal(pkg.exports['./experiments']!.types, './dist/src/experiments/index.d.ts');
});

test('importing the layer loads neither vega nor vega-lite; writing a report does', () => {
  // A resolve hook that refuses vega and vega-lite: the import must succeed without them, and writeReport must need them.
  const hook = `export async function resolve(s, c, next) { if (s === 'vega' || s === 'vega-lite') throw new Error('blocked ' + s); return next(s, c); }`;
  const register = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});`;
  const entry = JSON.stringify(join(ROOT, 'dist', 'src', 'experiments', 'index.js'));
  const out = mkdtempSync(join(tmpdir(), 'deltatune-layer-'));
  try {
    const body = `
      const x = await import(${entry});
      console.log('imported', typeof x.compareMethods);
      const results = { kind: 'compare', title: 't', backbone: 'b', dataset: 'd', budget: 'e', commands: [], runs: [] };
      await x.writeReport(results, ${JSON.stringify(out)}).then(() => console.log('rendered'), (e) => console.log('report: ' + e.message));`;
    const r = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, '--input-type=module', '-e', body], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^imported function$/m);
    assert.match(r.stdout, /^report: blocked vega/m);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
