// DiLoCo outer step: Douillard, Feng, Rusu, Chhaparia, Donchev, Kuncoro, Ranzato, Szlam, Shen, "DiLoCo: Distributed
// Low-Communication Training of Language Models", 2023, Algorithm 1. The outer gradient is
//   Delta_outer = (1/k) sum_i (theta_old - theta_i) = -(mean client delta)
// and the outer optimizer is Nesterov momentum exactly as PyTorch's SGD(nesterov=True, dampening=0):
//   b <- mu * b + g;   step = g + mu * b;   theta <- theta - lr * step
// with the paper's lr = 0.7, mu = 0.9. Workers are averaged uniformly (they run the same number of inner steps on
// equal batches); `weighting: 'examples'` weighs them by examples instead.

import { averagingStrategy, weighBy, type Weighting } from './averaging.ts';
import { checkNumber, slot, type ServerOptimizer, type Strategy } from './types.ts';

export interface NesterovConfig {
  readonly lr?: number;
  readonly momentum?: number;
}

/** Nesterov outer optimizer; slot `momentum` is PyTorch's momentum_buffer, in outer-gradient (theta_old - theta_new)
 * direction, so a checkpoint can be compared with a PyTorch run. */
export function serverNesterov({ lr = 0.7, momentum = 0.9 }: NesterovConfig = {}): ServerOptimizer {
  checkNumber('outer learning rate', lr, 0);
  checkNumber('outer momentum', momentum, 0, 1, false);
  return {
    name: 'nesterov',
    initSlots: (size) => ({ momentum: new Float32Array(size) }),
    step(params, slots, { mean, mass }) {
      const b = slot(slots, 'momentum');
      for (let i = 0; i < params.length; i++) {
        if (mass !== null && mass[i] === 0) continue;
        const g = -mean[i]!;
        const bi = momentum * b[i]! + g;
        b[i] = bi;
        params[i] = params[i]! - lr * (g + momentum * bi);
      }
    },
  };
}

export interface DiLoCoConfig extends NesterovConfig {
  readonly weighting?: Weighting;
}

export function diloco({ weighting = 'uniform', ...nesterov }: DiLoCoConfig = {}): Strategy {
  return averagingStrategy({ name: 'diloco', optimizer: serverNesterov(nesterov), weigh: weighBy(weighting) });
}
