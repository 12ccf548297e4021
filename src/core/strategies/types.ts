// The shapes every server strategy shares. A strategy turns client updates into new global versions in three moves:
//
//   let acc = strategy.begin(state);              // O(model) memory, allocated once
//   strategy.fold(acc, update, state);            // per arriving update, in place; the update can then be dropped
//   if (strategy.ready(acc)) state = strategy.apply(state, acc);   // or when the caller closes a round
//
// so server memory never grows with the number of updates (DESIGN: fold as they arrive). Strategies hold no hidden
// state: everything that must survive a restart is in ServerState, which is plain numbers and typed arrays and can be
// checkpointed as-is (each optimizer slot is a flat vector in the parameter layout).

import type { Coverage } from '../coverage.ts';
import type { Accumulator } from './accumulator.ts';

/** What a device returns for a lease, decoded into the global flat layout. */
export interface ClientUpdate {
  /** client_params - base_params, over the whole flat vector; coordinates outside `coverage` are ignored. */
  readonly delta: Float32Array;
  /** Training examples behind the update: the FedAvg weight. */
  readonly numExamples: number;
  /** Local optimizer steps taken (FedNova's tau_i). */
  readonly localSteps?: number;
  /** Server version the client started from; staleness = current version - baseVersion (FedBuff, FedAsync). */
  readonly baseVersion?: number;
  /** Coordinates the update trained; absent means all of them. */
  readonly coverage?: Coverage;
}

/** Server optimizer state: named vectors in the parameter layout (e.g. FedAdam's m and v). */
export type OptimizerSlots = Readonly<Record<string, Float32Array>>;

/** One immutable global version. `apply` returns a new one and never mutates its input. */
export interface ServerState {
  /** Number of server steps taken to reach these params; 0 for the initial params. */
  readonly version: number;
  readonly params: Float32Array;
  readonly slots: OptimizerSlots;
}

/**
 * The aggregated pseudo-gradient handed to a server optimizer: mean[i] is the averaged client delta (the direction
 * the clients moved, not its negation) and is meaningful only where mass[i] > 0. mass is null when every folded
 * update covered every coordinate, i.e. all coordinates are covered.
 */
export interface PseudoGradient {
  readonly mean: Float32Array;
  readonly mass: Float32Array | null;
}

/**
 * How the server moves params along a pseudo-gradient (SGD, momentum, Adam, Nesterov, ...). `step` updates params and
 * slots in place (the strategy hands it fresh copies) and must leave every coordinate with mass 0 untouched, params
 * and slots alike: a coordinate no client trained this step neither moves nor decays its optimizer state.
 */
export interface ServerOptimizer {
  readonly name: string;
  initSlots(size: number): Record<string, Float32Array>;
  /** `step` is the 1-based index of this server step, for optimizers with step-dependent terms. */
  step(params: Float32Array, slots: OptimizerSlots, grad: PseudoGradient, step: number): void;
}

export interface Strategy {
  readonly name: string;
  init(params: Float32Array): ServerState;
  /** A fresh, empty accumulator for the next server step from `state`. */
  begin(state: ServerState): Accumulator;
  /**
   * Validates `update` (shape, finiteness, counts, coverage; throws InvalidUpdateError and leaves `acc` untouched)
   * and folds it into `acc` in place. `state` is the current version, against which staleness is measured.
   */
  fold(acc: Accumulator, update: ClientUpdate, state: ServerState): void;
  /** True when the strategy's own trigger fires (FedBuff: K updates buffered). Round-based strategies never fire on
   * their own and return false: the caller closes the round and calls apply. */
  ready(acc: Accumulator): boolean;
  /** The next version. Spends `acc` (its sum is turned into the mean in place to avoid a model-sized copy). */
  apply(state: ServerState, acc: Accumulator): ServerState;
}

/** Misuse of a strategy or a bad configuration (not a bad client update: that is InvalidUpdateError). */
export class StrategyError extends Error {
  override readonly name = 'StrategyError';
}

/** Reads an optimizer slot that must exist, e.g. after restoring a checkpoint written by another strategy. */
export function slot(slots: OptimizerSlots, name: string): Float32Array {
  const s = slots[name];
  if (s === undefined) throw new StrategyError(`server optimizer state has no slot '${name}'`);
  return s;
}

/** Throws unless `value` is a finite number within [min, max] (inclusive unless stated); for config checks. */
export function checkNumber(what: string, value: number, min: number, max = Infinity, maxInclusive = true): number {
  const ok = Number.isFinite(value) && value >= min && (maxInclusive ? value <= max : value < max);
  if (!ok) throw new StrategyError(`${what} must be in [${min}, ${max}${maxInclusive ? ']' : ')'}, got ${value}`);
  return value;
}
