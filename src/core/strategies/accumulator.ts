// The streaming accumulator every averaging strategy folds into: a weighted running sum of deltas plus the divisor
// ("mass") each coordinate will be averaged by. Its size is fixed when it is created (one float32 per coordinate, a
// second one only once a partial update arrives), so folding the thousandth update costs no more memory than the
// first. Weight and mass are separate because some rules scale a delta by one number and divide by another: FedBuff
// multiplies by a staleness factor but divides by the update count, FedNova multiplies by p_i / tau_i but divides
// by the sum of p_i.

import { forEachRange } from '../coverage.ts';
import { createSumVector, type SumVector } from '../update-math.ts';
import { StrategyError, type ClientUpdate, type PseudoGradient } from './types.ts';

export interface Accumulator {
  /** Sum over folded updates of weight * delta (only over covered coordinates). */
  readonly sum: Float32Array;
  /** What folds into `sum` (sum === vector.data): WebAssembly SIMD where the runtime has it, bit-identical otherwise. */
  readonly vector: SumVector;
  /** Total mass folded, over all updates. */
  mass: number;
  /**
   * Mass per coordinate, allocated on the first update that carries coverage (seeded with the mass folded so far)
   * and null while every update covered everything, when the scalar `mass` applies to every coordinate.
   */
  coordMass: Float32Array | null;
  /** Number of updates folded. */
  count: number;
  /** Sum of mass * localSteps (FedNova's effective step count, times the total mass). */
  stepsMass: number;
  /** Set by takeMean: the sum has become the mean and the accumulator cannot be folded into again. */
  spent: boolean;
}

export function createAccumulator(size: number): Accumulator {
  const vector = createSumVector(size);
  return { sum: vector.data, vector, mass: 0, coordMass: null, count: 0, stepsMass: 0, spent: false };
}

/**
 * Adds weight * update.delta to the sum and `mass` to the divisor of every coordinate the update covers. The update
 * must already be validated (lengths, coverage, finiteness): this is the hot loop and checks nothing per element.
 */
export function foldUpdate(acc: Accumulator, update: ClientUpdate, weight: number, mass: number): void {
  if (acc.spent) throw new StrategyError('accumulator was already applied; begin a new one');
  const { sum, vector } = acc;
  const d = update.delta;
  if (update.coverage === undefined) {
    vector.addScaled(weight, d);
    if (acc.coordMass !== null) {
      const cm = acc.coordMass;
      for (let i = 0; i < cm.length; i++) cm[i] = cm[i]! + mass;
    }
  } else {
    const cm = (acc.coordMass ??= new Float32Array(sum.length).fill(acc.mass));
    forEachRange(update.coverage, (start, end) => {
      vector.addScaled(weight, d, start, end);
      for (let i = start; i < end; i++) cm[i] = cm[i]! + mass;
    });
  }
  acc.mass += mass;
  acc.count += 1;
  acc.stepsMass += mass * (update.localSteps ?? 0);
}

/**
 * Turns the sum into factor * (sum / mass) per coordinate, in place, and spends the accumulator. Coordinates no
 * update covered get 0 and keep mass 0, which tells the server optimizer to leave them alone.
 */
export function takeMean(acc: Accumulator, factor = 1): PseudoGradient {
  if (acc.spent) throw new StrategyError('accumulator was already applied; begin a new one');
  if (acc.count === 0 || !(acc.mass > 0)) throw new StrategyError('cannot apply an empty aggregation: no update was folded');
  acc.spent = true;
  const { sum, coordMass } = acc;
  if (coordMass === null) {
    const k = factor / acc.mass;
    for (let i = 0; i < sum.length; i++) sum[i] = sum[i]! * k;
  } else {
    for (let i = 0; i < sum.length; i++) {
      const m = coordMass[i]!;
      sum[i] = m > 0 ? (sum[i]! * factor) / m : 0;
    }
  }
  return { mean: sum, mass: coordMass };
}

/** Bytes held by the accumulator's vectors: constant in the number of folded updates. */
export function accumulatorBytes(acc: Accumulator): number {
  return acc.sum.byteLength + (acc.coordMass?.byteLength ?? 0);
}
