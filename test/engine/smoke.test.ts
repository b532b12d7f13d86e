import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor } from '../../src/index.js';

test('engine loads and adds', () => {
  const a = tensor([1, 2, 3]);
  assert.deepEqual(a.add(a).toNumbers(), [2, 4, 6]);
});
