import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ShapeError } from '../../src/core/tensor.ts';
import { allFinite, axpy, clipToNorm, delta, dot, firstNonFinite, l2Norm, scale } from '../../src/core/update-math.ts';

const f = (...xs: number[]): Float32Array => Float32Array.from(xs);

test('delta is new minus base, into a new vector or a given one', () => {
  assert.deepEqual([...delta(f(3, 5, -1), f(1, 1, 1))], [2, 4, -2]);
  const out = new Float32Array(2);
  assert.equal(delta(f(1, 2), f(0, 0), out), out);
  assert.deepEqual([...out], [1, 2]);
});

test('axpy accumulates a weighted vector in place; scale multiplies in place', () => {
  const y = f(1, 1, 1);
  axpy(y, 2, f(1, 2, 3));
  assert.deepEqual([...y], [3, 5, 7]);
  scale(y, 0.5);
  assert.deepEqual([...y], [1.5, 2.5, 3.5]);
});

test('dot and l2Norm accumulate in float64', () => {
  assert.equal(dot(f(1, 2, 3), f(4, 5, 6)), 32);
  assert.equal(l2Norm(f(3, 4)), 5);
  // 2^24 + 1 is not a float32, so a float32 running sum of one million 1s and a 2^24 would lose the ones.
  const big = new Float32Array(1_000_001).fill(1);
  big[0] = 2 ** 24;
  assert.equal(dot(big, new Float32Array(big.length).fill(1)), 2 ** 24 + 1_000_000);
});

test('clipToNorm scales down to the bound and reports the factor', () => {
  const x = f(3, 4);
  assert.equal(clipToNorm(x, 10), 1);
  assert.deepEqual([...x], [3, 4]);
  assert.equal(clipToNorm(x, 1), 0.2);
  assert.ok(Math.abs(l2Norm(x) - 1) < 1e-6);
  assert.throws(() => clipToNorm(x, -1), RangeError);
});

test('allFinite catches NaN and infinities anywhere', () => {
  assert.equal(allFinite(f(0, 1, -2)), true);
  assert.equal(allFinite(new Float32Array(0)), true);
  for (const bad of [NaN, Infinity, -Infinity]) {
    assert.equal(allFinite(f(1, bad, 2)), false);
    assert.equal(firstNonFinite(f(1, 2, bad)), 2);
  }
});

test('length mismatches are ShapeErrors', () => {
  assert.throws(() => delta(f(1, 2), f(1)), ShapeError);
  assert.throws(() => axpy(f(1, 2), 1, f(1)), ShapeError);
  assert.throws(() => dot(f(1), f(1, 2)), ShapeError);
});
