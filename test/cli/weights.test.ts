// `deltatune weights convert`: a PyTorch .pth becomes a safetensors file with identical tensors;
// bad calls print one clear line and exit non-zero.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadStateDict } from '../../src/io/index.js';
import { all, noGrad } from '../../src/index.js';
import { ROOT, runOracle } from '../helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
const models = runOracle<Record<string, { pth: string; safetensors: string }>>('models');

test('weights convert: .pth to .safetensors with identical tensors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'deltatune-cli-'));
  try {
    const out = join(dir, 'r18.safetensors');
    const r = run('weights', 'convert', models.resnet18!.pth, out);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /converted 122 tensors \(44\.\d MiB\) from .*resnet18\.pth to .*r18\.safetensors/);
    const a = loadStateDict(models.resnet18!.pth);
    const b = loadStateDict(out);
    try {
      assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
      for (const [k, t] of a) assert.ok(noGrad(() => all(t.eq(b.get(k)!)).item()) === 1, `${k} differs`);
    } finally {
      noGrad(() => [...a.values(), ...b.values()].forEach((t) => t.dispose()));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad calls: one clear line, non-zero exit, nothing written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'deltatune-cli-'));
  try {
    const cases: [string[], number, RegExp][] = [
      [['frobnicate'], 2, /unknown command 'frobnicate'/],
      [['weights', 'convert', 'only-one'], 2, /expects exactly two paths/],
      [['weights', 'convert', models.resnet18!.pth, join(dir, 'x.bin')], 2, /must end in \.safetensors/],
      [['weights', 'convert', join(dir, 'missing.pth'), join(dir, 'y.safetensors')], 1, /missing\.pth/],
    ];
    const garbage = join(dir, 'garbage.pth');
    writeFileSync(garbage, 'PK\x03\x04 not really a zip');
    cases.push([['weights', 'convert', garbage, join(dir, 'z.safetensors')], 1, /garbage\.pth/]);
    for (const [args, code, message] of cases) {
      const r = run(...args);
      assert.equal(r.status, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /^deltatune: /);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
    assert.equal(existsSync(join(dir, 'y.safetensors')) || existsSync(join(dir, 'z.safetensors')), false);
    const help = run('weights', '--help');
    assert.equal(help.status, 0);
    assert.match(help.stdout, /deltatune weights convert/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
