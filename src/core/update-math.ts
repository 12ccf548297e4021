// Vector math on flat parameter vectors: the inner loops of update encoding, validation and server folding. Every
// function is a plain loop over typed arrays with no allocation inside the loop, because these run once per
// coordinate of a model for every update the server receives. Reductions accumulate in float64 (JS numbers) so that
// norms and dot products of million-element vectors do not drift.

import { ShapeError } from './tensor.ts';

export function assertSameLength(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  if (a.length !== b.length) throw new ShapeError(`${what}: lengths differ (${a.length} vs ${b.length})`);
}

/** next - base, written into `out` (a new vector unless given). */
export function delta(next: Float32Array, base: Float32Array, out = new Float32Array(next.length)): Float32Array {
  assertSameLength(next, base, 'delta');
  assertSameLength(next, out, 'delta output');
  for (let i = 0; i < next.length; i++) out[i] = next[i]! - base[i]!;
  return out;
}

/** y += a * x, in place: the weighted accumulate that folds an update into a running sum. */
export function axpy(y: Float32Array, a: number, x: Float32Array): void {
  assertSameLength(y, x, 'axpy');
  for (let i = 0; i < y.length; i++) y[i] = y[i]! + a * x[i]!;
}

/** x *= a, in place. */
export function scale(x: Float32Array, a: number): void {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! * a;
}

export function dot(a: Float32Array, b: Float32Array): number {
  assertSameLength(a, b, 'dot');
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export function l2Norm(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s);
}

/**
 * Scales x in place so its L2 norm is at most maxNorm, and returns the factor applied (1 when already within the
 * bound). The factor is what DP accounting and adaptive clipping need to know.
 */
export function clipToNorm(x: Float32Array, maxNorm: number): number {
  if (!(maxNorm >= 0)) throw new RangeError(`clip norm must be a non-negative number, got ${maxNorm}`);
  const norm = l2Norm(x);
  if (norm <= maxNorm) return 1;
  const factor = maxNorm / norm;
  scale(x, factor);
  return factor;
}

/** True when no element is NaN or infinite. */
export function allFinite(x: Float32Array): boolean {
  // x * 0 is 0 for finite x and NaN for NaN and +-Infinity, so one NaN poisons the sum: no branch per element.
  let probe = 0;
  for (let i = 0; i < x.length; i++) probe += x[i]! * 0;
  return probe === 0;
}

/** Index of the first NaN or infinite element, or -1; for error messages after allFinite says no. */
export function firstNonFinite(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) return i;
  return -1;
}
