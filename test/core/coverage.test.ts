import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CoverageError,
  coverageFromMask,
  coverageFromRanges,
  coverageMask,
  coveredCount,
  forEachRange,
  validateCoverage,
  type Coverage,
} from '../../src/core/coverage.ts';

const pairs = (c: Coverage): [number, number][] => {
  const out: [number, number][] = [];
  forEachRange(c, (s, e) => out.push([s, e]));
  return out;
};

test('coverageFromRanges sorts, merges overlapping and touching ranges, drops empty ones', () => {
  const c = coverageFromRanges(10, [
    [6, 8],
    [0, 2],
    [1, 3],
    [3, 4],
    [5, 5],
  ]);
  assert.deepEqual(pairs(c), [
    [0, 4],
    [6, 8],
  ]);
  assert.equal(coveredCount(c), 6);
  validateCoverage(c, 10);
});

test('mask round trip', () => {
  const mask = Uint8Array.from([0, 1, 1, 0, 0, 1, 0, 1]);
  const c = coverageFromMask(mask);
  assert.deepEqual(pairs(c), [
    [1, 3],
    [5, 6],
    [7, 8],
  ]);
  assert.deepEqual([...coverageMask(c)], [...mask]);
  assert.deepEqual(pairs(coverageFromMask(new Uint8Array(3))), []);
});

test('a width slice of a row-major matrix is one range per row', () => {
  // Columns [0, 2) of a 3x4 matrix stored at offset 10.
  const c = coverageFromRanges(
    22,
    [0, 1, 2].map((r) => [10 + 4 * r, 10 + 4 * r + 2] as const),
  );
  assert.deepEqual(pairs(c), [
    [10, 12],
    [14, 16],
    [18, 20],
  ]);
});

test('bad ranges are CoverageErrors', () => {
  assert.throws(() => coverageFromRanges(4, [[2, 5]]), CoverageError);
  assert.throws(() => coverageFromRanges(4, [[3, 1]]), CoverageError);
  assert.throws(() => coverageFromRanges(-1, []), CoverageError);
  const raw = (length: number, ...r: number[]): Coverage => ({ length, ranges: Uint32Array.from(r) });
  assert.throws(() => validateCoverage(raw(8, 0, 2), 9), /8 coordinates/);
  assert.throws(() => validateCoverage(raw(8, 0, 2, 4), 8), /pairs/);
  assert.throws(() => validateCoverage(raw(8, 2, 2), 8), /empty/);
  assert.throws(() => validateCoverage(raw(8, 4, 9), 8), /beyond/);
  assert.throws(() => validateCoverage(raw(8, 4, 6, 1, 2), 8), /overlaps/);
  assert.throws(() => validateCoverage(raw(8, 0, 4, 4, 6), 8), /touches/);
});
