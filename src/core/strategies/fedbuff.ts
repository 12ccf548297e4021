// FedBuff: Nguyen, Malik, Zhan, Yousefpour, Rabbat, Malek, Huba, "Federated Learning with Buffered Asynchronous
// Aggregation", AISTATS 2022, Algorithm 1. Client updates are folded into a buffer as they arrive, each scaled by a
// staleness factor s(t - tau_i) (the paper uses s = 1 / sqrt(1 + staleness), i.e. polynomial with a = 0.5, the
// default here); once K updates are in, the server steps and clears the buffer:
//   Delta_bar <- Delta_bar + s(t - tau_i) * Delta_i   (per arriving update)
//   Delta_bar <- Delta_bar / K;   w <- w + eta_g * Delta_bar   (when k = K; the paper's Delta is w - w_client, so its
//                                                               w - eta_g Delta_bar is this with the sign flipped)
// Updates are not weighted by example counts (Algorithm 1 sums them unweighted).
// `normalize: 'count'` divides by K as in the paper, so stale buffers take shorter steps; `normalize: 'weight'`
// divides by the sum of staleness factors instead, giving a staleness-weighted mean whose step size does not shrink
// with staleness. With partial coverage, each coordinate is divided by the count (or weight) of the updates that
// covered it. The server optimizer is pluggable: plain SGD (the paper) or FedAdam/FedAvgM/... on Delta_bar.

import { averagingStrategy } from './averaging.ts';
import { serverSgd } from './fedavg.ts';
import { checkStaleness, stalenessWeight, type Staleness } from './staleness.ts';
import { StrategyError, type ServerOptimizer, type Strategy } from './types.ts';
import { InvalidUpdateError } from './validate-update.ts';

export interface FedBuffConfig {
  /** K: updates per server step. */
  readonly bufferSize: number;
  readonly staleness?: Staleness;
  readonly normalize?: 'count' | 'weight';
  /** Defaults to serverSgd(1). */
  readonly optimizer?: ServerOptimizer;
}

export function fedBuff({
  bufferSize,
  staleness = { kind: 'polynomial', a: 0.5 },
  normalize = 'count',
  optimizer = serverSgd(1),
}: FedBuffConfig): Strategy {
  if (!(Number.isInteger(bufferSize) && bufferSize >= 1)) {
    throw new StrategyError(`FedBuff buffer size K must be a positive integer, got ${bufferSize}`);
  }
  checkStaleness(staleness);
  return averagingStrategy({
    name: 'fedbuff',
    optimizer,
    bufferSize,
    weigh(update, state) {
      const { baseVersion } = update;
      if (baseVersion === undefined) throw new InvalidUpdateError('base-version', "FedBuff needs the update's baseVersion");
      if (baseVersion > state.version) {
        throw new InvalidUpdateError('base-version', `update claims base version ${baseVersion}, server is at ${state.version}`);
      }
      const s = stalenessWeight(staleness, state.version - baseVersion);
      return { weight: s, mass: normalize === 'count' ? 1 : s };
    },
  });
}
