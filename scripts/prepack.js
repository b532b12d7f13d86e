// npm's `prepack` (and, with --clean, `postpack`): readies what `files` in package.json ships.
//   1. dist/src compiled fresh from src/ (tsconfig.build.json: the library and CLI only). With
//      DELTATUNE_PACK_REUSE_DIST=1 an up-to-date dist/src is kept (every src/*.ts has a newer .js,
//      and no .js is left from a deleted source); it is compiled when it is not.
//   2. prebuilds/linux-x64-libtorch1.13/deltatune_native.node: the addon scripts/setup.sh built in
//      native/build, which must be built against Debian's libtorch (not LIBTORCH) and newer than
//      native/src. scripts/install.js uses it in an installed package when it loads there.
// --clean removes prebuilds/ again, so the clone keeps no copy.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const prebuilds = join(root, 'prebuilds');
const fail = (message) => {
  console.error(`prepack: ${message}`);
  process.exit(1);
};

if (process.argv.includes('--clean')) {
  rmSync(prebuilds, { recursive: true, force: true });
  process.exit(0);
}

const walk = (dir) =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });

/** Why dist/src does not match src/, or undefined when it does. */
function distProblem() {
  const dist = join(root, 'dist', 'src');
  if (!existsSync(dist)) return 'no dist/src';
  for (const ts of walk(join(root, 'src')).filter((f) => f.endsWith('.ts'))) {
    const js = join(dist, relative(join(root, 'src'), ts)).replace(/\.ts$/, '.js');
    if (!existsSync(js) || statSync(js).mtimeMs < statSync(ts).mtimeMs) return `${relative(root, js)} is older than its source`;
  }
  for (const js of walk(dist).filter((f) => f.endsWith('.js'))) {
    const ts = join(root, 'src', relative(dist, js)).replace(/\.js$/, '.ts');
    if (!existsSync(ts)) return `${relative(root, js)} has no source`;
  }
  return undefined;
}

const stale = process.env.DELTATUNE_PACK_REUSE_DIST ? distProblem() : 'prepack compiles';
if (stale) {
  console.error(`prepack: compiling TypeScript into dist/src (${stale})`);
  rmSync(join(root, 'dist', 'src'), { recursive: true, force: true });
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
  if (r.status !== 0) fail('tsc failed');
}

const built = join(root, 'native', 'build', 'Release', 'deltatune_native.node');
if (!existsSync(built)) fail('no native/build/Release/deltatune_native.node: run `npm run setup` first');
const against = existsSync(join(root, 'native', 'build', '.libtorch'))
  ? readFileSync(join(root, 'native', 'build', '.libtorch'), 'utf8').trim()
  : '?';
if (against !== 'debian') fail(`the addon in native/build was built against ${against}, not Debian's libtorch: run \`npm run setup\` without LIBTORCH`);
const sources = [join(root, 'native', 'binding.gyp'), ...walk(join(root, 'native', 'src'))];
const newer = sources.find((f) => statSync(f).mtimeMs > statSync(built).mtimeMs);
if (newer) fail(`${relative(root, newer)} is newer than the built addon: run \`npm run setup\` first`);
const target = join(prebuilds, 'linux-x64-libtorch1.13');
rmSync(prebuilds, { recursive: true, force: true });
mkdirSync(target, { recursive: true });
copyFileSync(built, join(target, 'deltatune_native.node'));
