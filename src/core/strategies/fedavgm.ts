// FedAvgM: Hsu, Qi, Brown, "Measuring the Effects of Non-Identical Data Distribution for Federated Visual
// Classification", 2019, Section 3: server momentum on the averaged update,
//   v <- beta * v + Delta_avg,   w <- w + lr * v
// (the paper writes Delta as w - w_client and w <- w - v with lr 1; here Delta is the client delta, so the signs
// flip together). Note the effective step grows to lr / (1 - beta) on a constant pseudo-gradient.

import { averagingStrategy, weighBy, type Weighting } from './averaging.ts';
import { checkNumber, slot, type ServerOptimizer, type Strategy } from './types.ts';

export interface MomentumConfig {
  readonly lr?: number;
  readonly beta?: number;
}

/** Heavy-ball server momentum; slot `velocity` is v in the client-delta direction. */
export function serverMomentum({ lr = 1, beta = 0.9 }: MomentumConfig = {}): ServerOptimizer {
  checkNumber('server learning rate', lr, 0);
  checkNumber('momentum beta', beta, 0, 1, false);
  return {
    name: 'momentum',
    initSlots: (size) => ({ velocity: new Float32Array(size) }),
    step(params, slots, { mean, mass }) {
      const v = slot(slots, 'velocity');
      for (let i = 0; i < params.length; i++) {
        if (mass !== null && mass[i] === 0) continue;
        const vi = beta * v[i]! + mean[i]!;
        v[i] = vi;
        params[i] = params[i]! + lr * vi;
      }
    },
  };
}

export interface FedAvgMConfig extends MomentumConfig {
  readonly weighting?: Weighting;
}

export function fedAvgM({ weighting = 'examples', ...momentum }: FedAvgMConfig = {}): Strategy {
  return averagingStrategy({ name: 'fedavgm', optimizer: serverMomentum(momentum), weigh: weighBy(weighting) });
}
