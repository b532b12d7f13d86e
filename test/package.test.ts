// The npm package as a user gets it: `npm pack` (prepack reusing a fresh dist/src and copying in
// the prebuilt addon), the tarball installed into an empty project, then from that project an ESM
// import of createModel/applyDelta with one forward pass, a strict type-check of a .ts file under
// moduleResolution nodenext, and `npx deltatune --help/--version`. Then the failure paths: the
// install script without libtorch (LIBTORCH at an empty folder, prebuilt disabled) prints the
// apt-get command, exits 1 and leaves no addon; importing with no addon is one line naming the fix.
// npm's dependencies come from its cache (--prefer-offline) or the registry. 40 s on an idle 2-core
// machine, 85 s on a busy one (npm install and the type-check take most of it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

const APT = 'apt-get install -y --no-install-recommends libtorch-dev libgloo-dev libopenblas0-pthread';
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

// The outer `npm test` exports npm_* variables (npm_config_local_prefix among them, which would
// point an inner npm at this repository); children start from a clean npm environment.
const cleanEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k))),
  DELTATUNE_THREADS: '1',
  ...extra,
});

function run(cmd: string, args: string[], cwd: string, timeoutMs: number, env: Record<string, string> = {}): SpawnSyncReturns<string> {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { cwd, env: cleanEnv(env), encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  const s = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(`# ${cmd === process.execPath ? 'node' : cmd} ${args.join(' ').slice(0, 80)}: ${s} s, exit ${r.status ?? r.signal}`);
  if (r.error) throw r.error;
  return r;
}

const ok = (r: SpawnSyncReturns<string>, what: string) =>
  assert.equal(r.status, 0, `${what} failed (exit ${r.status ?? r.signal}):\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);

const builtAgainst = () => {
  try {
    return readFileSync(join(ROOT, 'native', 'build', '.libtorch'), 'utf8').trim();
  } catch {
    return 'nothing';
  }
};
// prepack ships only an addon built against Debian's libtorch; a LIBTORCH build has no package.
const skip = builtAgainst() === 'debian' ? false : `native/build holds a build against ${builtAgainst()}, not Debian's libtorch`;

let tmp = '';
let project = '';
let installed = '';
let tarball = '';
let packedFiles: string[] = [];
let installLog = '';

before(() => {
  if (skip) return;
  tmp = mkdtempSync(join(tmpdir(), 'deltatune-package-'));
  const packed = run('npm', ['pack', '--pack-destination', tmp, '--json', '--loglevel=error'], ROOT, 180_000, { DELTATUNE_PACK_REUSE_DIST: '1' });
  ok(packed, 'npm pack');
  const info = (JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[])[0]!;
  tarball = join(tmp, info.filename);
  packedFiles = info.files.map((f) => f.path);
  project = join(tmp, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }, null, 2));
  const install = run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts'], project, 600_000);
  ok(install, 'npm install of the tarball');
  installLog = install.stdout + install.stderr;
  installed = join(project, 'node_modules', 'deltatune');
});

after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('the tarball holds the library, CLI, native sources, install script and prebuilt addon, and nothing else', { skip }, () => {
  for (const f of [
    'package.json', 'LICENSE', 'README.md', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/experiments/index.js',
    'dist/src/cli/main.js', 'dist/src/data/decode-worker.js', 'scripts/install.js', 'native/binding.gyp', 'native/src/addon.cc',
    'prebuilds/linux-x64-libtorch1.13/deltatune_native.node',
  ]) {
    assert.ok(packedFiles.includes(f), `${f} is missing from the tarball`);
  }
  const stray = packedFiles.filter(
    (f) => !/^(dist\/src\/|native\/src\/|prebuilds\/linux-x64-libtorch1\.13\/)/.test(f) &&
      !['package.json', 'LICENSE', 'README.md', 'scripts/install.js', 'native/binding.gyp'].includes(f),
  );
  assert.deepEqual(stray, []);
  assert.deepEqual(packedFiles.filter((f) => f.endsWith('.map')), []);
  assert.ok(!existsSync(join(ROOT, 'prebuilds')), 'postpack leaves no prebuilds/ in the clone');
  const license = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
  assert.match(license, /^MIT License/);
  assert.match(license, /deltatune authors/);
});

test('npm ran the install script (or reported skipping it), and the import works either way', { skip }, () => {
  const ran = installLog.includes("deltatune: using the prebuilt native addon (linux-x64, Debian's libtorch 1.13)");
  const skipped = /install-scripts|allowScripts/.test(installLog) && installLog.includes('deltatune@');
  console.log(`# deltatune's install script ${ran ? 'ran' : 'did not run'}${/allowScripts/.test(installLog) ? ' (npm printed its allowScripts notice)' : ''}`);
  assert.ok(ran || skipped, `neither the install script's line nor npm's notice in:\n${installLog}`);
  assert.ok(!existsSync(join(installed, 'native', 'build')), 'the prebuilt addon is used: nothing is compiled');
  writeFileSync(
    join(project, 'smoke.mjs'),
    `import { createModel, applyDelta, randn, tidy } from 'deltatune';
const model = createModel('vit_tiny_p4_32', { numClasses: 10 });
const delta = applyDelta(model, { method: 'lora', numClasses: 3 });
model.eval();
const shape = tidy(() => model.call(randn([2, 3, 32, 32])).shape);
console.log(JSON.stringify({ method: delta.method, shape }));
`,
  );
  const r = run(process.execPath, ['smoke.mjs'], project, 120_000);
  ok(r, 'the ESM smoke script');
  assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').at(-1)!), { method: 'lora', shape: [2, 3] });
});

test('a TypeScript project type-checks against the package (nodenext, strict, lib check on)', { skip }, () => {
  writeFileSync(
    join(project, 'use.ts'),
    `import { createModel, applyDelta, randn, tidy, type Delta, type Tensor } from 'deltatune';
import { compareMethods } from 'deltatune/experiments';
import pkg from 'deltatune/package.json' with { type: 'json' };
const model = createModel('vit_tiny_p4_32', { numClasses: 10 });
const delta: Delta = applyDelta(model, { method: 'lora', numClasses: 3 });
const shape: readonly number[] = tidy(() => (model.call(randn([1, 3, 32, 32])) as Tensor).shape);
const version: string = pkg.version;
// @ts-expect-error: an unknown option of createModel is a type error
createModel('resnet18', { numClases: 3 });
export { delta, shape, compareMethods, version };
`,
  );
  // A Node project with @types/node (here the repository's copy); the declarations use Buffer,
  // NodeJS.* and Symbol.dispose (lib ESNext.Disposable).
  const tsconfig = {
    compilerOptions: {
      target: 'ES2022', lib: ['ES2023', 'ESNext.Disposable'], module: 'nodenext', moduleResolution: 'nodenext',
      resolveJsonModule: true, strict: true, noEmit: true, skipLibCheck: false,
      types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')],
    },
    files: ['use.ts'],
  };
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
  ok(run(process.execPath, [TSC, '-p', 'tsconfig.json'], project, 180_000), 'tsc in the consumer project');
});

test('npx deltatune --help and --version', { skip }, () => {
  const help = run('npx', ['--no', '--', 'deltatune', '--help'], project, 60_000);
  ok(help, 'npx deltatune --help');
  assert.match(help.stdout, /^Usage: deltatune <command>/);
  const version = run('npx', ['--no', '--', 'deltatune', '--version'], project, 60_000);
  ok(version, 'npx deltatune --version');
  assert.equal(version.stdout.trim(), VERSION);
});

test('without libtorch the install script prints the apt-get command, exits 1 and leaves no addon', { skip }, () => {
  const empty = join(tmp, 'empty-libtorch');
  mkdirSync(empty);
  const r = run('npx', ['--no', '--', 'deltatune-build'], project, 60_000, { LIBTORCH: empty, DELTATUNE_NO_PREBUILT: '1' });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.ok(r.stderr.includes(`\n  ${APT}\n`), r.stderr);
  assert.match(r.stderr, /LIBTORCH=\/path\/to\/libtorch npx deltatune-build/);
  assert.match(r.stderr, new RegExp(`LIBTORCH=${empty} is not an unpacked libtorch`));
  assert.ok(!existsSync(join(installed, 'native', 'build')), 'no native/build left behind');
  const nodes = readdirSync(installed, { recursive: true }).map(String).filter((f) => f.endsWith('.node'));
  assert.deepEqual(nodes, ['prebuilds/linux-x64-libtorch1.13/deltatune_native.node'], 'only the shipped prebuilt addon');
});

test('with no addon, importing deltatune (and the CLI) fails with one line naming the fix', { skip }, () => {
  const prebuilds = join(installed, 'prebuilds');
  renameSync(prebuilds, `${prebuilds}.off`);
  try {
    writeFileSync(join(project, 'bare.mjs'), `import('deltatune').then(() => console.log('loaded'), (e) => { console.error(e.message); process.exit(3); });\n`);
    const r = run(process.execPath, ['bare.mjs'], project, 60_000);
    assert.equal(r.status, 3, r.stdout + r.stderr);
    assert.equal(r.stderr, 'deltatune: the native addon is not built; run: npx deltatune-build (or: npm rebuild deltatune)\n');
    const cli = run('npx', ['--no', '--', 'deltatune', 'inspect', 'resnet18'], project, 60_000);
    assert.equal(cli.status, 1);
    assert.equal(cli.stderr, 'deltatune: the native addon is not built; run: npx deltatune-build (or: npm rebuild deltatune)\n');
    const bad = run(process.execPath, ['bare.mjs'], project, 60_000, { DELTATUNE_ADDON: join(tmp, 'nowhere.node') });
    assert.equal(bad.stderr, `deltatune: DELTATUNE_ADDON=${join(tmp, 'nowhere.node')} does not exist\n`);
  } finally {
    renameSync(`${prebuilds}.off`, prebuilds);
  }
});

test('in the clone the install script does nothing (scripts/setup.sh builds the addon)', () => {
  const addon = join(ROOT, 'native', 'build', 'Release', 'deltatune_native.node');
  const before = existsSync(addon) ? statSync(addon).mtimeMs : undefined;
  const r = run(process.execPath, [join(ROOT, 'scripts', 'install.js')], ROOT, 30_000, { npm_lifecycle_event: 'install', DELTATUNE_NO_PREBUILT: '1' });
  ok(r, 'scripts/install.js in the clone');
  assert.equal(r.stdout + r.stderr, '');
  assert.equal(existsSync(addon) ? statSync(addon).mtimeMs : undefined, before);
});
