// FedNova: Wang, Liu, Liang, Joshi, Poor, "Tackling the Objective Inconsistency Problem in Heterogeneous Federated
// Optimization", NeurIPS 2020, eq. (6)-(7). Clients that take more local steps move further; averaging raw deltas
// therefore optimizes a skewed objective. FedNova averages normalized deltas and rescales by an effective step count:
//   d = sum_i p_i * Delta_i / ||a_i||_1,   tau_eff = sum_i p_i * ||a_i||_1,   x <- x + eta * tau_eff * d
// For vanilla local SGD a_i = [1, ..., 1], so ||a_i||_1 = tau_i, the client's local step count (update.localSteps),
// and p_i = n_i / n over the reporting clients. Partial coverage is rejected: tau_eff is defined per whole model.

import { averagingStrategy, weighBy, type Weighting } from './averaging.ts';
import { serverSgd } from './fedavg.ts';
import type { Strategy } from './types.ts';
import { InvalidUpdateError } from './validate-update.ts';

export interface FedNovaConfig {
  readonly serverLr?: number;
  readonly weighting?: Weighting;
}

export function fedNova({ serverLr = 1, weighting = 'examples' }: FedNovaConfig = {}): Strategy {
  const p = weighBy(weighting);
  return averagingStrategy({
    name: 'fednova',
    optimizer: serverSgd(serverLr),
    weigh(update) {
      if (update.localSteps === undefined) {
        throw new InvalidUpdateError('local-steps', "FedNova needs the update's localSteps");
      }
      if (update.coverage !== undefined) {
        throw new InvalidUpdateError('coverage', 'FedNova normalizes whole-model updates; partial coverage is not supported');
      }
      const { mass } = p(update);
      return { weight: mass / update.localSteps, mass };
    },
    // acc.stepsMass = sum_i mass_i * tau_i, so tau_eff = stepsMass / mass.
    meanFactor: (acc) => acc.stepsMass / acc.mass,
  });
}
