// Atomic writes: the target is either the old file or the whole new one; temp files never linger.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../../src/io/index.js';

const fresh = () => mkdtempSync(join(tmpdir(), 'deltatune-atomic-'));
const bytes = (s: string) => new TextEncoder().encode(s);

test('writes a new file and replaces an existing one, streaming chunks', () => {
  const dir = fresh();
  const path = join(dir, 'out.bin');
  writeFileAtomic(path, bytes('first'));
  assert.equal(readFileSync(path, 'utf8'), 'first');
  function* chunks() {
    for (let i = 0; i < 100; i++) yield bytes(`${i},`);
  }
  writeFileAtomic(path, chunks());
  assert.equal(readFileSync(path, 'utf8'), Array.from({ length: 100 }, (_, i) => `${i},`).join(''));
  writeFileAtomic(path, []);
  assert.equal(readFileSync(path, 'utf8'), '');
  assert.deepEqual(readdirSync(dir), ['out.bin']);
});

test('a failure mid-write leaves the previous file intact and no temporary file', () => {
  const dir = fresh();
  const path = join(dir, 'ckpt.safetensors');
  writeFileSync(path, 'previous checkpoint');
  const boom = new Error('disk on fire');
  function* failing() {
    yield bytes('partial data that must never be seen');
    throw boom;
  }
  assert.throws(() => writeFileAtomic(path, failing()), (err: Error) => {
    assert.match(err.message, /^cannot write .*ckpt\.safetensors: disk on fire$/);
    assert.equal(err.cause, boom);
    return true;
  });
  assert.equal(readFileSync(path, 'utf8'), 'previous checkpoint');
  assert.deepEqual(readdirSync(dir), ['ckpt.safetensors']);
  // A chunk that is not bytes fails the same way.
  assert.throws(() => writeFileAtomic(path, ['text' as unknown as Uint8Array]), /ckpt\.safetensors: chunks must be Uint8Arrays, got string/);
  assert.equal(readFileSync(path, 'utf8'), 'previous checkpoint');
  assert.deepEqual(readdirSync(dir), ['ckpt.safetensors']);
});

test('errors name the path; an existing file keeps its permissions', () => {
  const dir = fresh();
  assert.throws(() => writeFileAtomic(join(dir, 'missing', 'x.bin'), bytes('x')), /cannot write .*missing\/x\.bin: ENOENT/);
  assert.throws(() => writeFileAtomic(dir, bytes('x')), new RegExp(`cannot write ${dir}: `));
  assert.equal(readdirSync(dir).length, 0);
  const path = join(dir, 'private.bin');
  writeFileSync(path, 'old');
  chmodSync(path, 0o600);
  writeFileAtomic(path, bytes('new'));
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(readFileSync(path, 'utf8'), 'new');
});
