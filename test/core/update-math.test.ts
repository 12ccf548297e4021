import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ShapeError } from '../../src/core/tensor.ts';
import {
  allFinite, axpy, clipToNorm, createSumVector, delta, dot, firstNonFinite, l2Norm, scale, sumOfSquares,
} from '../../src/core/update-math.ts';

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

/** Deterministic values of mixed sign and magnitude, so float64 vs float32 rounding differences would show. */
function noise(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    out[i] = ((s / 2 ** 31) - 0.5) * 10 ** ((i % 7) - 3);
  }
  return out;
}

test('SIMD fold and the plain loop give bit-identical sums, over whole vectors and ranges', () => {
  const bits = (x: Float32Array) => new Uint32Array(x.slice().buffer);
  const weights = [1, Math.SQRT1_2, -3.5, 1e-3, 64];
  // Lengths around the SIMD threshold and the staging size, including tails that are not a multiple of 4 or 8.
  for (const n of [4095, 4096, 8192 + 13, 3 * 8192 + 7]) {
    const simd = createSumVector(n);
    const plain = createSumVector(n, { simd: false });
    assert.equal(simd.simd, n >= 4096, `Node 20 has WebAssembly SIMD; vectors under 4096 floats skip it (n = ${n})`);
    assert.equal(plain.simd, false);
    const x = noise(n, n);
    const reference = new Float32Array(n);
    for (const a of weights) {
      simd.addScaled(a, x);
      plain.addScaled(a, x);
      for (let i = 0; i < n; i++) reference[i] = reference[i]! + a * x[i]!;
    }
    assert.deepEqual(bits(plain.data), bits(reference), `n = ${n}`);
    assert.deepEqual(bits(simd.data), bits(reference), `n = ${n}`);
    for (const [start, end] of [[1, 5], [3, n - 2], [8190, Math.min(n, 8203)], [0, 0]] as const) {
      simd.addScaled(0.3, x, start, end);
      plain.addScaled(0.3, x, start, end);
    }
    assert.deepEqual(bits(simd.data), bits(plain.data), `n = ${n}, ranges`);
  }
});

test('SIMD fold with weight 1 equals the float64 expression rounded once', () => {
  const n = 10_000;
  const v = createSumVector(n);
  const y = noise(n, 7);
  const x = noise(n, 8);
  v.addScaled(1, y);
  v.addScaled(1, x);
  for (let i = 0; i < n; i++) assert.equal(v.data[i], Math.fround(Math.fround(0 + y[i]!) + x[i]!), `index ${i}`);
});

test('addScaled refuses a vector of another length', () => {
  assert.throws(() => createSumVector(5000).addScaled(1, new Float32Array(4999)), ShapeError);
  assert.throws(() => createSumVector(3, { simd: false }).addScaled(1, new Float32Array(2)), ShapeError);
});

test('sumOfSquares is the squared norm in float64, and NaN or infinite exactly when an element is', () => {
  for (const n of [0, 3, 4096, 8192 * 2 + 5]) {
    const x = noise(n, 3);
    let sequential = 0;
    for (let i = 0; i < n; i++) sequential += x[i]! * x[i]!;
    const got = sumOfSquares(x);
    assert.ok(Math.abs(got - sequential) <= 1e-12 * sequential, `n = ${n}: ${got} vs ${sequential}`);
    assert.equal(allFinite(x), true);
    // A huge float32 squared stays finite in float64.
    if (n > 0) {
      const big = x.slice();
      big[n - 1] = 3.4e38;
      assert.equal(allFinite(big), true);
    }
    for (const at of n === 0 ? [] : [0, Math.floor(n / 2), n - 1]) {
      for (const bad of [NaN, Infinity, -Infinity]) {
        const y = x.slice();
        y[at] = bad;
        assert.equal(Number.isFinite(sumOfSquares(y)), false, `n = ${n}, ${bad} at ${at}`);
        assert.equal(allFinite(y), false);
        assert.equal(firstNonFinite(y), at);
      }
    }
  }
});
