// Deterministic release: dispose, tidy, keep, explicit scopes, and the live-handle count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Scope, keep, memoryStats, ones, tidy, zeros, tensor, Tensor } from '../../src/index.js';

// Collect garbage first so handles that earlier tests left to the GC backstop don't skew counts.
const live = () => {
  globalThis.gc?.();
  return memoryStats().liveHandles;
};

test('dispose frees the handle, is idempotent, and use after dispose is a clear error', () => {
  const before = live();
  const t = ones([4]);
  assert.equal(live(), before + 1);
  t.dispose();
  t.dispose();
  assert.equal(live(), before);
  assert.equal(t.isDisposed, true);
  assert.throws(() => t.add(1), /already disposed/);
  assert.throws(() => t.shape, /already disposed/);
});

test('using-declaration style disposal via Symbol.dispose', () => {
  const before = live();
  {
    const t = ones([2]);
    t[Symbol.dispose]();
  }
  assert.equal(live(), before);
});

test('tidy frees intermediates and keeps what it returns', () => {
  const before = live();
  const result = tidy(() => {
    const a = ones([8]);
    const b = a.mul(3);
    const c = b.add(1);
    return { c, pair: [a.sum(), c.mean()] as const };
  });
  assert.equal(live(), before + 3);
  assert.deepEqual(result.c.toNumbers(), Array(8).fill(4));
  assert.equal(result.pair[0].item(), 8);
  result.c.dispose();
  result.pair[0].dispose();
  result.pair[1].dispose();
  assert.equal(live(), before);
});

test('nested tidy moves results to the outer scope, which then frees them', () => {
  const before = live();
  const outer = tidy(() => {
    const inner = tidy(() => ones([2]).add(1));
    assert.equal(inner.isDisposed, false);
    return inner.mul(2);
  });
  assert.equal(live(), before + 1);
  outer.dispose();
  assert.equal(live(), before);
});

test('keep takes a tensor out of every scope', () => {
  const before = live();
  let kept: Tensor | undefined;
  tidy(() => {
    kept = keep(zeros([3]));
    zeros([3]);
  });
  assert.equal(kept!.isDisposed, false);
  assert.equal(live(), before + 1);
  kept!.dispose();
});

test('tidy frees everything when fn throws', () => {
  const before = live();
  assert.throws(() =>
    tidy(() => {
      ones([2]);
      tensor([1, 2]).add(tensor([1, 2, 3]));
    }),
  );
  assert.equal(live(), before);
});

test('tidy refuses async functions without leaking', () => {
  const before = live();
  assert.throws(() => tidy((async () => ones([1])) as never), /returned a Promise/);
  assert.equal(live(), before);
});

test('in-place ops return the same Tensor object and do not add handles', () => {
  const t = zeros([3]);
  const before = live();
  const r = t.add_(2);
  assert.equal(r, t);
  assert.equal(live(), before);
  assert.deepEqual(t.toNumbers(), [2, 2, 2]);
  t.dispose();
});

test('explicit Scope for async code ends with try/finally', async () => {
  const before = live();
  let survivor: Tensor | undefined;
  for (let step = 0; step < 3; step++) {
    await new Promise((r) => setImmediate(r));
    const scope = new Scope();
    try {
      const x = ones([4]).mul(step);
      survivor?.dispose();
      survivor = x.sum();
      scope.end(survivor);
    } finally {
      scope.end();
    }
  }
  assert.equal(survivor!.item(), 8);
  assert.equal(live(), before + 1);
  survivor!.dispose();
  assert.equal(live(), before);
});

test('scopes must end innermost first', () => {
  const outer = new Scope();
  const inner = new Scope();
  assert.throws(() => outer.end(), /reverse order/);
  inner.end();
  outer.end();
});

test('the GC backstop frees forgotten tensors', { skip: typeof globalThis.gc !== 'function' && 'run node with --expose-gc' }, async () => {
  const before = live();
  for (let i = 0; i < 100; i++) ones([1024]);
  assert.equal(memoryStats().liveHandles, before + 100);
  for (let i = 0; i < 10 && live() > before; i++) await new Promise((r) => setImmediate(r));
  assert.equal(live(), before);
});

test('native bytes are reported to V8 for tensors left to the GC, not for scoped temporaries', () => {
  const external = () => memoryStats().externalBytes;
  const MiB = 2 ** 20;
  const base = external();
  tidy(() => {
    zeros([16 * MiB]); // 64 MiB, freed deterministically by the scope
    assert.ok(external() - base < 8 * MiB, 'a scoped temporary is not reported');
  });
  const loose = zeros([16 * MiB]);
  assert.ok(external() - base >= 63 * MiB, 'an unscoped tensor is reported');
  loose.dispose();
  assert.ok(external() - base < 8 * MiB, 'disposal takes the report back');
  const kept = tidy(() => keep(zeros([16 * MiB])));
  assert.ok(external() - base >= 63 * MiB, 'a kept tensor is reported');
  kept.dispose();
});
