// FedAsync: Xie, Koyejo, Gupta, "Asynchronous Federated Optimization", 2019, Algorithm 1. Every arriving update
// makes a new version at once by mixing the client's model into the global one:
//   x_t = (1 - alpha_t) * x_{t-1} + alpha_t * x_new,   alpha_t = alpha * s(t - tau)
// where x_new = x_tau + Delta is the client's model (trained from version tau) and s a staleness function. Unlike the
// averaging strategies there is nothing to accumulate, so this is one pure step function rather than a Strategy. The
// caller supplies x_tau, the params of the update's base version (the current params when it is not stale). With
// partial coverage only covered coordinates are mixed.

import { forEachRange } from '../coverage.ts';
import { assertSameLength } from '../update-math.ts';
import { checkStaleness, stalenessWeight, type Staleness } from './staleness.ts';
import { checkNumber, type ClientUpdate, type ServerState } from './types.ts';
import { InvalidUpdateError, validateUpdate } from './validate-update.ts';

export interface FedAsyncConfig {
  /** Mixing weight alpha in (0, 1]. */
  readonly alpha: number;
  /** Defaults to polynomial with a = 0.5. */
  readonly staleness?: Staleness;
}

export function fedAsyncStep(
  current: ServerState,
  baseParams: Float32Array,
  update: ClientUpdate,
  config: FedAsyncConfig,
): ServerState {
  const { alpha, staleness = { kind: 'polynomial', a: 0.5 } } = config;
  checkNumber('FedAsync alpha', alpha, Number.MIN_VALUE, 1);
  checkStaleness(staleness);
  validateUpdate(update, current.params.length);
  assertSameLength(baseParams, current.params, 'FedAsync base params');
  const { baseVersion, delta } = update;
  if (baseVersion === undefined || baseVersion > current.version) {
    throw new InvalidUpdateError('base-version', `FedAsync needs a base version <= ${current.version}, got ${baseVersion}`);
  }
  const a = alpha * stalenessWeight(staleness, current.version - baseVersion);
  const params = current.params.slice();
  const mix = (start: number, end: number): void => {
    for (let i = start; i < end; i++) params[i] = (1 - a) * params[i]! + a * (baseParams[i]! + delta[i]!);
  };
  if (update.coverage === undefined) mix(0, params.length);
  else forEachRange(update.coverage, mix);
  return { version: current.version + 1, params, slots: current.slots };
}
