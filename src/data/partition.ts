// Splits a dataset's example indices among simulated clients. Every partitioner returns one ascending Int32Array of
// indices per client, and every index lands in exactly one client; samplers shuffle within a client themselves.
import type { Rng } from '../core/rng.ts';
import { DataError } from './errors.ts';

export interface DirichletOptions {
  /** Redraw the whole partition until every client holds at least this many examples (default 0: no redraw). */
  readonly minSize?: number;
  /** Give up after this many draws (default 1000). */
  readonly maxDraws?: number;
}

/** Per-client sizes and label histograms, for reports and sanity checks. */
export interface PartitionSummary {
  readonly sizes: number[];
  readonly histograms: number[][];
  /**
   * Size-weighted mean total-variation distance between each client's label distribution and the global one:
   * 0 when every client mirrors the global mix, near 1 when each client holds a single class.
   */
  readonly labelSkew: number;
}

/** IID: a seeded shuffle of 0..n-1 dealt into `clients` parts whose sizes differ by at most one. */
export function iid(n: number, clients: number, rng: Rng): Int32Array[] {
  checkCount('clients', clients, 1);
  checkCount('n', n, 0);
  const order = Int32Array.from(rng.shuffle(Array.from({ length: n }, (_, i) => i)));
  const parts: Int32Array[] = [];
  for (let c = 0; c < clients; c++) {
    parts.push(order.slice(Math.floor((c * n) / clients), Math.floor(((c + 1) * n) / clients)).sort());
  }
  return parts;
}

/**
 * Label skew by Dirichlet proportions (Hsu, Qi and Brown 2019, "Measuring the effects of non-identical data
 * distribution for federated visual classification"): for each class, draw p ~ Dir(alpha) over clients and cut that
 * class's shuffled indices at the cumulative proportions. Small alpha gives each client few classes; large alpha
 * approaches IID. `minSize` redraws everything until each client has enough data, as NIID-Bench (Li et al. 2022) does.
 */
export function dirichletLabelSkew(
  labels: ArrayLike<number>,
  numClasses: number,
  clients: number,
  alpha: number,
  rng: Rng,
  options: DirichletOptions = {},
): Int32Array[] {
  checkCount('clients', clients, 1);
  if (!(alpha > 0)) throw new DataError(`Dirichlet alpha must be > 0, got ${alpha}`);
  const { minSize = 0, maxDraws = 1000 } = options;
  const byClass = indicesByClass(labels, numClasses);
  for (let draw = 0; draw < maxDraws; draw++) {
    const parts: number[][] = Array.from({ length: clients }, () => []);
    for (const members of byClass) {
      const shuffled = rng.shuffle([...members]);
      const p = rng.dirichlet(alpha, clients);
      let start = 0;
      let cumulative = 0;
      for (let c = 0; c < clients; c++) {
        cumulative += p[c]!;
        // Floor of the cumulative cut, as numpy's astype(int) in the reference code; the last client takes the rest.
        const end = c === clients - 1 ? shuffled.length : Math.min(shuffled.length, Math.floor(cumulative * shuffled.length));
        for (let i = start; i < end; i++) parts[c]!.push(shuffled[i]!);
        start = end;
      }
    }
    if (parts.every((part) => part.length >= minSize)) return parts.map((part) => Int32Array.from(part).sort());
  }
  throw new DataError(
    `could not give each of ${clients} clients at least ${minSize} examples in ${maxDraws} Dirichlet(${alpha}) draws; ` +
      'lower minSize or the number of clients, or raise alpha',
  );
}

/** Sizes, label histograms and label skew of a partition. */
export function summarizePartition(parts: readonly Int32Array[], labels: ArrayLike<number>, numClasses: number): PartitionSummary {
  const global = new Float64Array(numClasses);
  const histograms = parts.map((part) => {
    const h = new Array<number>(numClasses).fill(0);
    for (const i of part) {
      const y = labelAt(labels, i, numClasses);
      h[y]!++;
      global[y]!++;
    }
    return h;
  });
  const total = parts.reduce((s, part) => s + part.length, 0);
  let skew = 0;
  for (const h of histograms) {
    const size = h.reduce((a, b) => a + b, 0);
    if (size === 0) continue;
    let tv = 0;
    for (let k = 0; k < numClasses; k++) tv += Math.abs(h[k]! / size - global[k]! / total);
    skew += (size / total) * (tv / 2);
  }
  return { sizes: parts.map((part) => part.length), histograms, labelSkew: skew };
}

function indicesByClass(labels: ArrayLike<number>, numClasses: number): number[][] {
  checkCount('numClasses', numClasses, 1);
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < labels.length; i++) byClass[labelAt(labels, i, numClasses)]!.push(i);
  return byClass;
}

function labelAt(labels: ArrayLike<number>, i: number, numClasses: number): number {
  const y = labels[i];
  if (y === undefined || !Number.isInteger(y) || y < 0 || y >= numClasses) {
    throw new DataError(`label at index ${i} is ${y}, expected an integer in [0, ${numClasses})`);
  }
  return y;
}

function checkCount(what: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) throw new DataError(`${what} must be an integer >= ${min}, got ${value}`);
}
