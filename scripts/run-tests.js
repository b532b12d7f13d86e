#!/usr/bin/env node
// Runs the compiled test suite with node's test runner (its summary closes the output).
// Usage: node scripts/run-tests.js [filter substring...]
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const testDir = join(root, 'dist', 'test');
const filters = process.argv.slice(2);

function collect(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return collect(path);
    return name.endsWith('.test.js') ? [path] : [];
  });
}

// Only compiled files whose TypeScript source still exists: dist/ may hold tests since deleted.
const hasSource = (f) => existsSync(join(root, f.slice(join(root, 'dist').length + 1).replace(/\.js$/, '.ts')));
const files = collect(testDir)
  .filter(hasSource)
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error(`no test files found under ${testDir}${filters.length ? ` matching ${filters.join(', ')}` : ''}`);
  process.exit(1);
}
// Test processes share the cores: give libtorch all of them only when files run one at a time.
const result = spawnSync(process.execPath, ['--expose-gc', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: { ...process.env },
});
process.exit(result.status ?? 1);
