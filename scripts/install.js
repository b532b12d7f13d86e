#!/usr/bin/env node
// Puts deltatune's native addon in place in an installed package. npm runs it as the package's
// `install` script; `npx deltatune-build` and `npm rebuild deltatune` run it again by hand (for when
// npm skipped install scripts, or after installing libtorch). In order:
//   1. the prebuilt addon shipped in the tarball (linux-x64, Debian's libtorch 1.13), if it loads here;
//   2. a node-gyp build against Debian's libtorch-dev, or against LIBTORCH=/path/to/libtorch;
//   3. otherwise: the apt-get command (and the LIBTORCH option), exit code 1, no addon left behind.
// In a clone of the repository (src/ or .git present) it does nothing: scripts/setup.sh builds the
// addon there into native/build, for `npm start` and `npm test`.
//
//   DELTATUNE_NO_PREBUILT=1   skip step 1 (always build)
//   LIBTORCH=/path            skip step 1 and build against an unpacked official libtorch
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(realpathSync(fileURLToPath(import.meta.url))));
const ADDON = 'deltatune_native.node';
const PREBUILT = join(root, 'prebuilds', 'linux-x64-libtorch1.13', ADDON);
const BUILD_DIR = join(root, 'native', 'build');
const BUILT = join(BUILD_DIR, 'Release', ADDON);
const MULTIARCH = 'x86_64-linux-gnu';
const APT = 'apt-get install -y --no-install-recommends libtorch-dev libgloo-dev libopenblas0-pthread';

const say = (line) => console.log(`deltatune: ${line}`);
const fail = (lines) => {
  for (const line of lines) console.error(line.startsWith(' ') ? line : `deltatune: ${line}`);
  process.exit(1);
};

/** Loads an addon in a child process; undefined when it works, else the loader's one-line reason. */
function loadProblem(path) {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path)}).buildInfo()`], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status === 0) return undefined;
  if (r.error) return r.error.message;
  const lines = (r.stderr || '').split('\n');
  const line = lines.find((l) => /^\w*Error\b/.test(l)) ?? lines.find((l) => l.trim()) ?? `exit ${r.status ?? r.signal}`;
  return line.replace(/^\w*Error: /, '').trim();
}

const onPath = (name) => (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, name)));

/** npm's own node-gyp (npm sets npm_config_node_gyp for scripts), a local one, or the one npm bundles. */
function findNodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  try {
    candidates.push(createRequire(join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed next to us
  }
  if (process.env.npm_execpath) candidates.push(join(dirname(dirname(process.env.npm_execpath)), 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir || !existsSync(join(dir, 'npm'))) continue;
    try {
      candidates.push(join(dirname(dirname(realpathSync(join(dir, 'npm')))), 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
    } catch {
      // a broken link
    }
  }
  return candidates.find((c) => c && existsSync(c));
}

/** One warning line when Debian's libblas.so.3 is the reference BLAS (libtorch's matrix products ~17x slower). */
function warnBlas() {
  const link = `/usr/lib/${MULTIARCH}/libblas.so.3`;
  let target;
  try {
    target = realpathSync(link);
  } catch {
    return;
  }
  if (target.includes('openblas')) return;
  const openblas = `/usr/lib/${MULTIARCH}/openblas-pthread/libblas.so.3`;
  const fix = existsSync(openblas)
    ? `update-alternatives --set libblas.so.3-${MULTIARCH} ${openblas}`
    : 'apt-get install -y --no-install-recommends libopenblas0-pthread';
  console.warn(`deltatune: warning: libblas.so.3 is ${target}, not OpenBLAS (matrix products ~17x slower); as root run: ${fix}`);
}

async function main() {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    console.log('Usage: deltatune-build\n\nPuts the native addon in place: the prebuilt one when it loads here, else a node-gyp build\n' +
      "against Debian's libtorch-dev or LIBTORCH=/path/to/libtorch. DELTATUNE_NO_PREBUILT=1 always builds.");
    return;
  }
  if (existsSync(join(root, 'src')) || existsSync(join(root, '.git'))) {
    if (process.env.npm_lifecycle_event !== 'install') say('a clone of the repository: the addon is built by `npm run setup` (scripts/setup.sh)');
    return;
  }

  const libtorch = process.env.LIBTORCH || '';
  let prebuiltProblem;
  if (libtorch) prebuiltProblem = `LIBTORCH is set`;
  else if (process.env.DELTATUNE_NO_PREBUILT) prebuiltProblem = 'DELTATUNE_NO_PREBUILT is set';
  else if (process.platform !== 'linux' || process.arch !== 'x64') prebuiltProblem = `no prebuilt addon for ${process.platform}-${process.arch}`;
  else if (!existsSync(PREBUILT)) prebuiltProblem = 'no prebuilt addon in this package';
  else prebuiltProblem = loadProblem(PREBUILT);
  if (!prebuiltProblem) {
    rmSync(BUILD_DIR, { recursive: true, force: true }); // the loader prefers native/build: drop an older build
    say("using the prebuilt native addon (linux-x64, Debian's libtorch 1.13)");
    warnBlas();
    return;
  }

  // 2. Build. Everything it needs is checked first, so a missing piece is one clear message.
  const header = 'include/torch/csrc/api/include/torch/torch.h';
  const torchHeader = libtorch ? join(libtorch, header) : `/usr/${header}`;
  if (!existsSync(torchHeader)) {
    fail([
      libtorch
        ? `LIBTORCH=${libtorch} is not an unpacked libtorch (no ${header} in it), and the prebuilt addon is not used (${prebuiltProblem}).`
        : `libtorch was not found: the prebuilt addon does not load (${prebuiltProblem}) and there is no ${torchHeader} to build against.`,
      "install Debian's libtorch as root, then run `npx deltatune-build` (or `npm rebuild deltatune`):",
      `  ${APT}`,
      'or build against an unpacked official libtorch: LIBTORCH=/path/to/libtorch npx deltatune-build',
    ]);
  }
  // native/src/dist.cc includes ProcessGroupGloo.hpp, which needs the gloo headers (Debian: libgloo-dev).
  const glooHeaders = [libtorch && join(libtorch, 'include', 'gloo', 'context.h'), '/usr/include/gloo/context.h'].filter(Boolean);
  if (!glooHeaders.some((h) => existsSync(h))) {
    fail([
      `the gloo headers were not found (${glooHeaders.join(', ')}), and the prebuilt addon is not used (${prebuiltProblem}); as root run:`,
      `  ${APT}`,
      'then run `npx deltatune-build` (or `npm rebuild deltatune`)',
    ]);
  }
  const tools = ['make', 'python3', process.env.CXX || 'g++'].filter((t) => !onPath(t));
  if (tools.length > 0) {
    fail([
      `building the native addon needs ${tools.join(', ')} (the prebuilt addon is not used: ${prebuiltProblem}); as root run:`,
      '  apt-get install -y --no-install-recommends g++ make python3',
    ]);
  }
  const gyp = findNodeGyp();
  if (!gyp) fail(['node-gyp was not found (npm bundles one; is npm installed?); run: npm install -g node-gyp, then npx deltatune-build']);

  // Build against the headers of the node that runs us, so node-gyp downloads nothing.
  const nodedir = dirname(dirname(realpathSync(process.execPath)));
  const nodedirFlag = existsSync(join(nodedir, 'include', 'node', 'node_api.h')) ? [`--nodedir=${nodedir}`] : [];
  const log = join(root, 'native', 'build.log');
  say(`building the native addon against ${libtorch || "Debian's libtorch"} (${prebuiltProblem}); a few minutes`);
  const cleanUp = () => rmSync(BUILD_DIR, { recursive: true, force: true });
  // Asynchronous, in its own process group: a Ctrl-C or a kill stops the whole build (make, g++)
  // and removes native/build, so no partly built addon is left behind.
  const child = spawn(process.execPath, [gyp, 'rebuild', '--directory', join(root, 'native'), '-j', 'max', ...nodedirFlag, '--loglevel=warn'], {
    cwd: root,
    env: { ...process.env, LIBTORCH: libtorch },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const chunks = [];
  child.stdout.on('data', (c) => chunks.push(c));
  child.stderr.on('data', (c) => chunks.push(c));
  const stop = (signal) => {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    cleanUp();
    console.error(`deltatune: native build stopped by ${signal}; nothing was installed`);
    process.exit(1);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, stop);
  const [code, signal, error] = await new Promise((resolve) => {
    child.on('error', (err) => resolve([null, null, err]));
    child.on('close', (c, sig) => resolve([c, sig, null]));
  });
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.off(s, stop);
  const output = Buffer.concat(chunks).toString('utf8').trimEnd();
  writeFileSync(log, output + '\n'); // next to the sources, as scripts/setup.sh keeps it
  if (code !== 0 || !existsSync(BUILT)) {
    cleanUp();
    console.error(output.split('\n').slice(-30).join('\n'));
    fail([`the native build failed (${error?.message ?? (signal ? `signal ${signal}` : `exit ${code}`)}; full log: ${log})`]);
  }
  const builtProblem = loadProblem(BUILT);
  if (builtProblem) {
    cleanUp();
    fail([`the freshly built addon does not load: ${builtProblem}`]);
  }
  say(`built the native addon against ${libtorch || "Debian's libtorch"}`);
  if (!libtorch) warnBlas();
}

await main();
