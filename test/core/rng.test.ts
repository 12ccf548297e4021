import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/rng.ts';

test('same seed gives the same stream, different seeds differ', () => {
  const a = new Rng(7), b = new Rng(7), c = new Rng(8);
  const xs = Array.from({ length: 5 }, () => a.next());
  assert.deepEqual(xs, Array.from({ length: 5 }, () => b.next()));
  assert.notDeepEqual(xs, Array.from({ length: 5 }, () => c.next()));
});

test('normal and gamma samples have the textbook moments', () => {
  const r = new Rng(1);
  const n = 20000;
  let s = 0, s2 = 0, g = 0;
  for (let i = 0; i < n; i++) { const x = r.normal(); s += x; s2 += x * x; g += r.gamma(0.5); }
  assert.ok(Math.abs(s / n) < 0.03, `normal mean ${s / n}`);
  assert.ok(Math.abs(s2 / n - 1) < 0.05, `normal variance ${s2 / n}`);
  assert.ok(Math.abs(g / n - 0.5) < 0.03, `gamma(0.5) mean ${g / n}`);
});

test('dirichlet samples lie on the simplex', () => {
  const p = new Rng(3).dirichlet(0.3, 10);
  assert.equal(p.length, 10);
  assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-9);
  assert.ok(p.every((x) => x >= 0));
});

test('dirichlet with tiny alpha stays finite and puts almost all mass on one category', () => {
  const r = new Rng(5);
  let meanTop = 0;
  for (let i = 0; i < 200; i++) {
    const p = r.dirichlet(0.001, 10);
    assert.ok(p.every(Number.isFinite), `non-finite sample ${p}`);
    meanTop += Math.max(...p) / 200;
  }
  // E[max] for Dir(0.001) over 10 categories is above 0.99; a broken sampler (uniform-ish or NaN) is far below.
  assert.ok(meanTop > 0.98, `mean largest share ${meanTop}`);
});
