// FedProx: Li, Sahu, Zaheer, Sanjabi, Talwalkar, Smith, "Federated Optimization in Heterogeneous Networks", MLSys
// 2020, Algorithm 2. Each client k approximately minimizes
//   h_k(w; w^t) = F_k(w) + (mu / 2) * ||w - w^t||^2
// so its local gradient gains the proximal term mu * (w - w^t), which pulls the local model back toward the global one
// it started from. The server side is FedAvg's weighted average. The train layer adds these terms to its loss and
// gradient; the strategy carries mu so the coordinator can put it into each lease's recipe.

import { assertSameLength } from '../update-math.ts';
import { fedAvg, type FedAvgConfig } from './fedavg.ts';
import { checkNumber, type Strategy } from './types.ts';

/** (mu / 2) * ||w - wGlobal||^2, accumulated in float64. */
export function proximalLoss(w: Float32Array, wGlobal: Float32Array, mu: number): number {
  assertSameLength(w, wGlobal, 'proximalLoss');
  let s = 0;
  for (let i = 0; i < w.length; i++) {
    const d = w[i]! - wGlobal[i]!;
    s += d * d;
  }
  return 0.5 * mu * s;
}

/** mu * (w - wGlobal), the gradient of proximalLoss, written into `out` (a new vector unless given). */
export function proximalGradient(
  w: Float32Array,
  wGlobal: Float32Array,
  mu: number,
  out = new Float32Array(w.length),
): Float32Array {
  assertSameLength(w, wGlobal, 'proximalGradient');
  assertSameLength(w, out, 'proximalGradient output');
  for (let i = 0; i < w.length; i++) out[i] = mu * (w[i]! - wGlobal[i]!);
  return out;
}

export interface FedProxConfig extends FedAvgConfig {
  readonly mu: number;
}

export function fedProx({ mu, ...fedavg }: FedProxConfig): Strategy & { readonly mu: number } {
  checkNumber('FedProx mu', mu, 0);
  return { ...fedAvg(fedavg), name: 'fedprox', mu };
}
