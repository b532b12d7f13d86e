// Hostile inputs through the command line: for each command that reads a file, a FIFO, a symlink to
// /dev/zero, a text file in disguise and an inflated size; each run must exit 1 (2 for a bad flag)
// with one line naming the culprit, within 30 s and 1 GiB, leaving every file as it was. The
// hostile suite (test/hostile) covers the readers themselves at scale; this is the CLI around them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { applyDelta, createModel, saveDelta, saveStateDict } from '../../src/index.js';
import { ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const LIMIT_MS = 30_000;
const LIMIT_BYTES = 2 ** 30;

interface Outcome {
  code: number | null;
  stderr: string;
  peakBytes: number;
  ms: number;
}

/** Runs the CLI in a child watched from outside: killed past 30 s or 1 GiB resident. */
function runBounded(args: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, DELTATUNE_THREADS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let peak = 0;
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.resume();
    const poll = setInterval(() => {
      try {
        const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0);
        peak = Math.max(peak, kb * 1024);
        if (peak > LIMIT_BYTES) child.kill('SIGKILL');
      } catch {
        // exited between polls
      }
    }, 20);
    const timer = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS);
    child.on('exit', (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      resolve({ code, stderr, peakBytes: peak, ms: performance.now() - t0 });
    });
  });
}

function hashTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p, { throwIfNoEntry: false });
      if (!st) continue; // a dangling link
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out.set(p, createHash('sha256').update(readFileSync(p)).digest('hex'));
    }
  };
  walk(root);
  return out;
}

let dir = '';
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'deltatune-hostile-cli-'));
  // A real delta on a small base, images, and the hostile files.
  // Initialised: uninitialised memory may hold NaN, which the delta's reader rightly refuses.
  const model = createModel('resnet18', { numClasses: 3 });
  saveStateDict(join(dir, 'base.safetensors'), model.stateDict());
  model.dispose();
  const base = createModel('resnet18', { weights: join(dir, 'base.safetensors') });
  const delta = applyDelta(base, { method: 'lora', numClasses: 3 });
  saveDelta(delta, join(dir, 'delta'), { classes: ['a', 'b', 'c'], preprocess: { size: 32, train: false } });
  delta.dispose();
  base.dispose();
  mkdirSync(join(dir, 'img', 'a'), { recursive: true });
  writeFileSync(join(dir, 'img', 'a', 'ok.png'), await sharp({ create: { width: 32, height: 32, channels: 3, background: '#808080' } }).png().toBuffer());
  execFileSync('mkfifo', [join(dir, 'fifo.safetensors')]);
  symlinkSync('/dev/zero', join(dir, 'zero.png'));
  symlinkSync('/dev/zero', join(dir, 'zero.pth'));
  writeFileSync(join(dir, 'notes.safetensors'), 'these are my notes, not weights\n');
  writeFileSync(join(dir, 'huge-label.csv'), `path,label\n${join(dir, 'img', 'a', 'ok.png')},20000000\n`);
  cpSync(join(dir, 'delta'), join(dir, 'delta-bad'), { recursive: true });
  const manifest = JSON.parse(readFileSync(join(dir, 'delta-bad', 'delta.json'), 'utf8'));
  manifest.classes = [null, 'b', 'c'];
  writeFileSync(join(dir, 'delta-bad', 'delta.json'), JSON.stringify(manifest));
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('every reading command refuses hostile files promptly, in one line naming them, and changes nothing', async () => {
  const p = (name: string) => join(dir, name);
  const cases: [string[], string, number][] = [
    [['inspect', p('fifo.safetensors')], p('fifo.safetensors'), 1],
    [['inspect', p('zero.pth')], p('zero.pth'), 1],
    [['inspect', p('notes.safetensors')], p('notes.safetensors'), 1],
    [['weights', 'convert', p('fifo.safetensors'), p('out.safetensors')], p('fifo.safetensors'), 1],
    [['weights', 'convert', p('zero.pth'), p('out.safetensors')], p('zero.pth'), 1],
    [['weights', 'convert', p('notes.safetensors'), p('out.safetensors')], p('notes.safetensors'), 1],
    [['predict', '--delta', p('delta'), p('zero.png')], p('zero.png'), 1],
    [['predict', '--delta', p('delta'), '--weights', p('fifo.safetensors'), p('img/a/ok.png')], p('fifo.safetensors'), 1],
    [['eval', '--delta', p('delta-bad'), '--data', p('img')], p('delta-bad'), 1],
    [['merge', '--delta', p('delta-bad'), '--out', p('merged.safetensors')], p('delta-bad'), 1],
    [['eval', '--delta', p('delta'), '--data', p('huge-label.csv')], p('huge-label.csv'), 1],
    [['train', '--model', 'resnet18', '--data', p('huge-label.csv'), '--out', p('run')], p('huge-label.csv'), 1],
    [['train', '--model', 'resnet18', '--data', p('img'), '--epochs', '1e12', '--out', p('run')], '--epochs', 2],
  ];
  const before = hashTree(dir);
  for (const [args, culprit, code] of cases) {
    const o = await runBounded(args);
    const what = `deltatune ${args.join(' ')}`;
    assert.ok(o.ms < LIMIT_MS, `${what}: finished within 30 s (${o.ms.toFixed(0)} ms)`);
    assert.ok(o.peakBytes < LIMIT_BYTES, `${what}: stayed under 1 GiB (${(o.peakBytes / 2 ** 20).toFixed(0)} MiB)`);
    assert.equal(o.code, code, `${what}: exit code (${o.stderr})`);
    const lines = o.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${what}: one line (${o.stderr})`);
    assert.ok(lines[0]!.startsWith('deltatune: ') && lines[0]!.includes(culprit), `${what}: names ${culprit} (${o.stderr})`);
  }
  assert.deepEqual(hashTree(dir), before, 'no file changed, none was added');
});
