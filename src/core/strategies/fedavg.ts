// FedAvg: McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient Learning of Deep Networks from
// Decentralized Data", AISTATS 2017, Algorithm 1. The server sets
//   w_{t+1} = sum_k (n_k / n) w^k_{t+1}   i.e.   w_{t+1} = w_t + sum_k (n_k / n) Delta_k,   Delta_k = w^k_{t+1} - w_t,
// with n = sum of n_k over the clients that reported. serverLr scales the averaged delta (Reddi et al. 2021 write
// FedAvg as server SGD with learning rate eta on the pseudo-gradient); serverLr = 1 is the paper's rule.

import { averagingStrategy, weighBy, type Weighting } from './averaging.ts';
import { checkNumber, type ServerOptimizer, type Strategy } from './types.ts';

/** Plain server SGD on the pseudo-gradient: x += lr * mean. Uncovered coordinates have mean 0 and stay put. */
export function serverSgd(lr = 1): ServerOptimizer {
  checkNumber('server learning rate', lr, 0);
  return {
    name: 'sgd',
    initSlots: () => ({}),
    step(params, _slots, { mean }) {
      for (let i = 0; i < params.length; i++) params[i] = params[i]! + lr * mean[i]!;
    },
  };
}

export interface FedAvgConfig {
  readonly serverLr?: number;
  readonly weighting?: Weighting;
}

export function fedAvg({ serverLr = 1, weighting = 'examples' }: FedAvgConfig = {}): Strategy {
  return averagingStrategy({ name: 'fedavg', optimizer: serverSgd(serverLr), weigh: weighBy(weighting) });
}
