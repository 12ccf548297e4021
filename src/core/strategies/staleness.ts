// Staleness functions from FedAsync: Xie, Koyejo, Gupta, "Asynchronous Federated Optimization", 2019, Section 5.2.
// s(t - tau) down-weights an update trained from version tau that arrives when the server is at version t:
//   constant:   s = 1
//   polynomial: s_a(t - tau) = (t - tau + 1)^(-a)
//   hinge:      s_{a,b}(t - tau) = 1 if t - tau <= b, else 1 / (a (t - tau - b) + 1)
// Configs are plain data so a run's config file can name one.

import { checkNumber, StrategyError } from './types.ts';

export type Staleness =
  | { readonly kind: 'constant' }
  | { readonly kind: 'polynomial'; readonly a: number }
  | { readonly kind: 'hinge'; readonly a: number; readonly b: number };

/** Checks a staleness config (e.g. one read from a run config) and returns it. */
export function checkStaleness(fn: Staleness): Staleness {
  if (fn.kind === 'polynomial') checkNumber('polynomial staleness exponent a', fn.a, 0);
  else if (fn.kind === 'hinge') {
    checkNumber('hinge staleness slope a', fn.a, 0);
    checkNumber('hinge staleness threshold b', fn.b, 0);
  } else if (fn.kind !== 'constant') {
    throw new StrategyError(`unknown staleness function ${JSON.stringify((fn as { kind: unknown }).kind)}`);
  }
  return fn;
}

/** s(staleness) for staleness = server version - update's base version, a non-negative integer. */
export function stalenessWeight(fn: Staleness, staleness: number): number {
  if (!(Number.isInteger(staleness) && staleness >= 0)) {
    throw new StrategyError(`staleness must be a non-negative integer, got ${staleness}`);
  }
  switch (fn.kind) {
    case 'constant':
      return 1;
    case 'polynomial':
      return (staleness + 1) ** -fn.a;
    case 'hinge':
      return staleness <= fn.b ? 1 : 1 / (fn.a * (staleness - fn.b) + 1);
  }
}
