// Data specs (src/data/spec.ts): what --data and --val-data name, opened into a training and a
// validation set: a folder with a train/val split, a plain folder split by seed, a .csv list, a
// built-in set; and the errors for a spec that is none of these or whose classes disagree.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as lib from '../../src/index.js';
import { BUILTIN_DATA, absoluteDataSpec, openData, openOne } from '../../src/data/spec.js';
import { CsvList, ImageFolder } from '../../src/data/index.js';
import { makeFolder, tempDir } from './fixtures.js';

const { dir, cleanup } = tempDir('spec');
after(cleanup);

test("the library's entry exports the data layer's openData and absoluteDataSpec", () => {
  assert.equal(lib.openData, openData);
  assert.equal(lib.absoluteDataSpec, absoluteDataSpec);
});

test('openData: a folder with train/ and val/ inside uses them as the split', async () => {
  const root = join(dir, 'split');
  await makeFolder(join(root, 'train'), ['cat', 'dog'], 3);
  await makeFolder(join(root, 'val'), ['cat', 'dog'], 2);
  const s = openData({ data: root });
  assert.ok(s.train instanceof ImageFolder && s.val instanceof ImageFolder);
  assert.deepEqual([s.train.length, s.val.length], [6, 4]);
  assert.deepEqual(s.classes, ['cat', 'dog']);
  assert.equal(s.arrays, false);
  assert.ok(s.val.source(0).startsWith(join(root, 'val')));
});

test('openData: a plain folder is split by seed (stratified, reproducible); valSplit 0 keeps it whole', async () => {
  const root = join(dir, 'plain');
  await makeFolder(root, ['a', 'b'], 5);
  const s = openData({ data: root, valSplit: 0.2, seed: 3 });
  assert.deepEqual([s.train.length, s.val!.length], [8, 2]);
  assert.deepEqual(s.classes, ['a', 'b']);
  const again = openData({ data: root, valSplit: 0.2, seed: 3 });
  assert.deepEqual([0, 1].map((i) => again.val!.source(i)), [0, 1].map((i) => s.val!.source(i)));
  const whole = openData({ data: root, valSplit: 0 });
  assert.equal(whole.train.length, 10);
  assert.equal(whole.val, null);
  assert.throws(() => openData({ data: root, valSplit: 1 }), /valSplit must be in \[0, 1\), got 1/);
});

test('openData: a .csv list, with a separate --val-data list', () => {
  const csv = join(dir, 'train.csv');
  const valCsv = join(dir, 'val.csv');
  writeFileSync(csv, 'path,label\na.png,cat\nb.png,dog\nc.png,cat\nd.png,dog\n');
  writeFileSync(valCsv, 'path,label\ne.png,dog\nf.png,cat\n');
  const s = openData({ data: csv, valData: valCsv });
  assert.ok(s.train instanceof CsvList && s.val instanceof CsvList);
  assert.deepEqual([s.train.length, s.val.length], [4, 2]);
  assert.deepEqual(s.classes, ['cat', 'dog']);
  assert.equal(s.train.source(0), join(dir, 'a.png'));
});

test('openData and openOne: a spec that is nothing, a file that is not a .csv, and classes that differ are named', async () => {
  const nowhere = join(dir, 'nowhere');
  assert.throws(() => openData({ data: nowhere }), (e: Error) => e.message.startsWith(`data '${nowhere}' is not a file, a folder, or one of fashion-mnist`));
  const txt = join(dir, 'list.txt');
  writeFileSync(txt, 'x');
  assert.throws(() => openOne(txt, 'val-data'), /^Error: val-data '.*list\.txt' is a file but not a \.csv list; give a folder/);
  const other = join(dir, 'other');
  mkdirSync(other);
  await makeFolder(other, ['a', 'c'], 1);
  assert.throws(() => openData({ data: join(dir, 'plain'), valData: other }), /the validation set's classes \(a, c\) differ from the training set's \(a, b\)/);
});

test('absoluteDataSpec: built-in names stay, paths become absolute', () => {
  for (const name of BUILTIN_DATA) assert.equal(absoluteDataSpec(name), name);
  assert.equal(absoluteDataSpec('some/folder'), resolve('some/folder'));
  assert.equal(absoluteDataSpec('/abs/list.csv'), '/abs/list.csv');
});
