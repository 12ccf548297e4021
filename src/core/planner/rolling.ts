// The rolling schedule: which window a width plan trains on the c-th lease of its tier. FedRolex (Alam et al.,
// NeurIPS 2022, eq. 3) starts every dimension's window at the round index mod n, stepping by one unit a round, so over
// n rounds each unit is trained exactly k times. We step by `stride` units a lease (stride = 1 is FedRolex) and, after
// every full sweep of the offset, move the window of alternate dimensions by k more units (the plan's `shift`, see
// src/core/submodel/width.ts): with one shared offset a weight joining units that lie k or more apart in adjacent
// dimensions is never trained, and stepping the shift by k brings every such pair into one window once per cycle.
// Within a sweep the shift is fixed, so each sweep alone still trains every unit evenly.
import { keptUnits, widthStructure } from '../submodel/width.ts';
import type { ModelSpec } from '../model-spec.ts';
import { PlannerError } from './errors.ts';

export interface RollingWindow {
  readonly offset: number;
  readonly shift: number;
}

/** Offsets are taken modulo the least common multiple of the dimensions' sizes: one sweep moves every window round. */
export function sweepLength(spec: ModelSpec): number {
  const sizes = widthStructure(spec).families.map((f) => f.size);
  const m = sizes.reduce((a, b) => lcm(a, b), 1);
  if (!Number.isSafeInteger(m) || m > 2 ** 31) throw new PlannerError('invalid-config', `the model's hidden sizes ${sizes.join(', ')} have no usable common period for rolling windows`);
  return m;
}

/** The window of the c-th rolling lease (c = 0, 1, ...) at this ratio. */
export function rollingWindow(spec: ModelSpec, ratio: number, counter: number, stride = 1): RollingWindow {
  checkStride(stride);
  if (!(Number.isSafeInteger(counter) && counter >= 0)) throw new PlannerError('invalid-config', `rolling counter must be a non-negative integer, got ${counter}`);
  const m = sweepLength(spec);
  const k = shiftStep(spec, ratio);
  const pos = counter * stride;
  const sweep = Math.floor(pos / m);
  return { offset: pos % m, shift: (sweep % m) * k % m };
}

/** Number of leases after which the schedule repeats itself: (offset, shift) runs through all its values once. */
export function rollingCycle(spec: ModelSpec, ratio: number, stride = 1): number {
  checkStride(stride);
  const m = sweepLength(spec);
  const k = shiftStep(spec, ratio);
  // The pair (offset, shift) is a function of pos mod (m * m / gcd(k, m)); pos = counter * stride.
  const period = m * (m / gcd(k, m));
  return period / gcd(stride, period);
}

/** The shift advances by the smallest window over the dimensions, so pairs of units at any distance meet. */
function shiftStep(spec: ModelSpec, ratio: number): number {
  return Math.min(...widthStructure(spec).families.map((f) => keptUnits(ratio, f.size)));
}

function checkStride(stride: number): void {
  if (!(Number.isSafeInteger(stride) && stride >= 1)) throw new PlannerError('invalid-config', `rolling stride must be a positive integer, got ${stride}`);
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

function lcm(a: number, b: number): number {
  return (a / gcd(a, b)) * b;
}
