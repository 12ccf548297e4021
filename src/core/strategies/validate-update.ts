// The gate between a hostile device and the server's accumulator: an update that passes here cannot poison an
// aggregate with NaN, index outside the model, or carry a nonsensical weight. Strategies call it from fold, before
// touching the accumulator, so a rejected update leaves nothing half-applied.

import { CoverageError, validateCoverage } from '../coverage.ts';
import { allFinite, firstNonFinite } from '../update-math.ts';
import type { ClientUpdate } from './types.ts';

// Deltas known to hold only finite numbers because whoever created them scanned them first (decodeUpdate does, while
// computing the norm). validateUpdate skips its scan for these: the scan is validation's one pass over the whole
// model, and on the server path it would otherwise run three times per update (decode, submit, fold). Weak, so it
// keeps nothing alive; keyed by the array, so a delta nobody vouched for is always scanned.
const vouched = new WeakSet<Float32Array>();

/**
 * Records that every element of `delta` is finite, so validateUpdate need not scan it. Only for code that has just
 * scanned an array it created and hands on unmodified: writing to `delta` afterwards would void the promise.
 */
export function vouchFinite(delta: Float32Array): void {
  vouched.add(delta);
}

export type UpdateProblem = 'shape' | 'non-finite' | 'examples' | 'local-steps' | 'base-version' | 'coverage';

export class InvalidUpdateError extends Error {
  override readonly name = 'InvalidUpdateError';
  constructor(
    readonly problem: UpdateProblem,
    message: string,
  ) {
    super(message);
  }
}

/** Throws InvalidUpdateError unless `update` fits a model of `size` coordinates and its numbers make sense. */
export function validateUpdate(update: ClientUpdate, size: number): void {
  const { delta, numExamples, localSteps, baseVersion, coverage } = update;
  if (delta.length !== size) {
    throw new InvalidUpdateError('shape', `update delta has ${delta.length} values, the model has ${size}`);
  }
  if (!vouched.has(delta) && !allFinite(delta)) {
    throw new InvalidUpdateError('non-finite', `update delta has a non-finite value at index ${firstNonFinite(delta)}`);
  }
  if (!(Number.isFinite(numExamples) && numExamples > 0)) {
    throw new InvalidUpdateError('examples', `numExamples must be a positive finite number, got ${numExamples}`);
  }
  if (localSteps !== undefined && !(Number.isInteger(localSteps) && localSteps > 0)) {
    throw new InvalidUpdateError('local-steps', `localSteps must be a positive integer, got ${localSteps}`);
  }
  if (baseVersion !== undefined && !(Number.isInteger(baseVersion) && baseVersion >= 0)) {
    throw new InvalidUpdateError('base-version', `baseVersion must be a non-negative integer, got ${baseVersion}`);
  }
  if (coverage !== undefined) {
    try {
      validateCoverage(coverage, size);
    } catch (e) {
      if (e instanceof CoverageError) throw new InvalidUpdateError('coverage', `update coverage: ${e.message}`);
      throw e;
    }
  }
}
