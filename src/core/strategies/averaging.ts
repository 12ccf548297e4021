// The one Strategy implementation behind every averaging rule: validate, weigh, fold into the streaming accumulator,
// then hand the mean to a server optimizer. Paper-specific files only say how an update is weighed and which server
// optimizer steps; this keeps the fold/apply machinery (and its guarantees: constant memory, nothing half-applied,
// input state never mutated) in one place.

import { allFinite, firstNonFinite } from '../update-math.ts';
import { createAccumulator, foldUpdate, takeMean, type Accumulator } from './accumulator.ts';
import { StrategyError, type ClientUpdate, type ServerOptimizer, type ServerState, type Strategy } from './types.ts';
import { validateUpdate } from './validate-update.ts';

/** An update's delta is multiplied by `weight`; `mass` is added to the divisor of every coordinate it covers. */
export interface Weight {
  readonly weight: number;
  readonly mass: number;
}

/** How clients count in an average: by training examples (FedAvg's n_k / n) or one vote each. */
export type Weighting = 'examples' | 'uniform';

export function weighBy(weighting: Weighting): (update: ClientUpdate) => Weight {
  return weighting === 'examples' ? (u) => ({ weight: u.numExamples, mass: u.numExamples }) : () => ({ weight: 1, mass: 1 });
}

export interface AveragingRule {
  readonly name: string;
  readonly optimizer: ServerOptimizer;
  /** Weight of an already validated update; may throw InvalidUpdateError for updates this rule cannot use. */
  weigh(update: ClientUpdate, state: ServerState): Weight;
  /** Multiplies the mean before the optimizer step (FedNova's tau_eff); 1 when absent. */
  meanFactor?(acc: Accumulator): number;
  /** Updates per server step when the rule triggers itself (FedBuff's K); absent for caller-closed rounds. */
  readonly bufferSize?: number;
}

export function averagingStrategy(rule: AveragingRule): Strategy {
  const { optimizer } = rule;
  return {
    name: rule.name,
    init: (params) => ({ version: 0, params: params.slice(), slots: optimizer.initSlots(params.length) }),
    begin: (state) => createAccumulator(state.params.length),
    fold(acc, update, state) {
      if (acc.sum.length !== state.params.length) {
        throw new StrategyError(`accumulator has ${acc.sum.length} coordinates, the model has ${state.params.length}`);
      }
      validateUpdate(update, acc.sum.length);
      const { weight, mass } = rule.weigh(update, state);
      foldUpdate(acc, update, weight, mass);
    },
    ready: (acc) => rule.bufferSize !== undefined && acc.count >= rule.bufferSize,
    apply(state, acc) {
      if (acc.sum.length !== state.params.length) {
        throw new StrategyError(`accumulator has ${acc.sum.length} coordinates, the model has ${state.params.length}`);
      }
      const grad = takeMean(acc, rule.meanFactor?.(acc) ?? 1);
      const params = state.params.slice();
      const slots = Object.fromEntries(Object.entries(state.slots).map(([k, v]) => [k, v.slice()]));
      optimizer.step(params, slots, grad, state.version + 1);
      // Validated finite inputs can still overflow (a huge learning rate); refuse to publish such a version.
      if (!allFinite(params)) {
        throw new StrategyError(`${rule.name} step produced a non-finite parameter at index ${firstNonFinite(params)}`);
      }
      return { version: state.version + 1, params, slots };
    },
  };
}
