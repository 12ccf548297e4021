// Which coordinates of a flat parameter vector an update speaks for. Partial plans (width slices, rolling windows,
// blocks) train only part of the model; the server must average each coordinate over only the updates that trained
// it. Coverage is a sorted list of disjoint half-open [start, end) ranges rather than a per-coordinate mask because
// the plans that produce it cut contiguous runs: a width slice of a row-major [rows, cols] tensor is one range per
// row, a block is one range per tensor, so the list stays tiny next to the model.

export class CoverageError extends Error {
  override readonly name = 'CoverageError';
}

/** Disjoint, non-adjacent, non-empty ranges in increasing order, flattened as [start0, end0, start1, end1, ...]. */
export interface Coverage {
  /** Length of the vector the ranges index into. */
  readonly length: number;
  readonly ranges: Uint32Array;
}

/** Builds a coverage from ranges in any order; overlapping or touching ranges are merged, empty ones dropped. */
export function coverageFromRanges(length: number, ranges: Iterable<readonly [number, number]>): Coverage {
  checkLength(length);
  const sorted = [...ranges].filter(([s, e]) => {
    if (!Number.isInteger(s) || !Number.isInteger(e) || s < 0 || e > length || s > e) {
      throw new CoverageError(`range [${s}, ${e}) is not within [0, ${length})`);
    }
    return e > s;
  });
  sorted.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [s, e] of sorted) {
    const last = out.length - 1;
    if (last > 0 && s <= out[last]!) out[last] = Math.max(out[last]!, e);
    else out.push(s, e);
  }
  return { length, ranges: Uint32Array.from(out) };
}

/** Coverage of the nonzero entries of a mask, one range per run. */
export function coverageFromMask(mask: Uint8Array): Coverage {
  checkLength(mask.length);
  const out: number[] = [];
  let i = 0;
  while (i < mask.length) {
    if (mask[i] === 0) {
      i++;
      continue;
    }
    const start = i;
    while (i < mask.length && mask[i] !== 0) i++;
    out.push(start, i);
  }
  return { length: mask.length, ranges: Uint32Array.from(out) };
}

/** The inverse of coverageFromMask: 1 where covered, 0 elsewhere. */
export function coverageMask(coverage: Coverage): Uint8Array {
  const mask = new Uint8Array(coverage.length);
  forEachRange(coverage, (start, end) => mask.fill(1, start, end));
  return mask;
}

export function forEachRange(coverage: Coverage, fn: (start: number, end: number) => void): void {
  const r = coverage.ranges;
  for (let k = 0; k < r.length; k += 2) fn(r[k]!, r[k + 1]!);
}

/** Number of covered coordinates. */
export function coveredCount(coverage: Coverage): number {
  let n = 0;
  forEachRange(coverage, (start, end) => (n += end - start));
  return n;
}

/**
 * Checks a coverage that arrived from outside (a device) against the vector length it must index: ranges must be
 * pairs, in bounds, non-empty, increasing and disjoint. Code that builds coverage with the helpers above already
 * satisfies this.
 */
export function validateCoverage(coverage: Coverage, length: number): void {
  if (coverage.length !== length) {
    throw new CoverageError(`coverage is over ${coverage.length} coordinates, the vector has ${length}`);
  }
  const r = coverage.ranges;
  if (r.length % 2 !== 0) throw new CoverageError(`coverage ranges must come in [start, end) pairs, got ${r.length} numbers`);
  let prevEnd = -1;
  for (let k = 0; k < r.length; k += 2) {
    const s = r[k]!;
    const e = r[k + 1]!;
    if (s >= e || e > length) throw new CoverageError(`coverage range [${s}, ${e}) is empty or beyond ${length}`);
    if (s <= prevEnd) throw new CoverageError(`coverage range [${s}, ${e}) overlaps, touches or precedes the one before`);
    prevEnd = e;
  }
}

function checkLength(length: number): void {
  // Uint32 ranges: vectors up to 2^32 - 1 coordinates, past the largest typed array a JS engine will allocate anyway.
  if (!Number.isInteger(length) || length < 0 || length > 0xffffffff) {
    throw new CoverageError(`coverage length must be an integer in [0, 2^32), got ${length}`);
  }
}
