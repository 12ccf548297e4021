// Which work each simulated device gets: the hook the planner (src/core/planner) plugs into. The engine asks
// `assignPlan(device, now)` whenever it is about to lease to a device; the answer fixes what the device downloads,
// how long it trains, how much memory it needs and what it uploads. Until the planner lands, two policies stand in:
// everyone gets the full model (devices that cannot hold it fail out of memory), or devices below the model's memory
// need are excluded, the baseline issue 4's report compares heterogeneity-aware plans against.
import type { Plan } from '../core/protocol/schemas.ts';

/** What the engine tells a planner about a device: its profile, as a live coordinator would know it. */
export interface SimDevice {
  readonly index: number;
  readonly tier: string;
  readonly memoryMiB: number;
  readonly examplesPerSecond: number;
  readonly upMbps: number;
  readonly downMbps: number;
  readonly shard: number;
}

/** One lease's work, as the engine needs it to time and account the lease. */
export interface SimPlan {
  /** The plan as a coordinator would send it (full model, for now). */
  readonly plan: Plan;
  readonly localSteps: number;
  readonly batchSize: number;
  /** Parameters the device downloads, trains and uploads: all of them for a full plan. */
  readonly parameters: number;
  /** Memory the plan needs on the device, MiB; a device with less fails the lease out of memory. */
  readonly memoryMiB: number;
}

/** null: no work for this device now (it is not leased until its next session). */
export type AssignPlan = (device: SimDevice, now: number) => SimPlan | null;

export type PlanPolicy = 'full' | 'exclude-small';

/** The built-in policies for a model of `parameters` parameters needing `memoryMiB` to train. */
export function fullModelPlans(
  policy: PlanPolicy, model: { parameters: number; memoryMiB: number }, recipe: { localSteps: number; batchSize: number },
): AssignPlan {
  // One frozen plan shared by every lease: the engine never mutates it, and 1,000,000 leases allocate nothing here.
  const plan: SimPlan = Object.freeze({
    plan: Object.freeze({ kind: 'full' as const }),
    localSteps: recipe.localSteps,
    batchSize: recipe.batchSize,
    parameters: model.parameters,
    memoryMiB: model.memoryMiB,
  });
  if (policy === 'full') return () => plan;
  return (device) => (device.memoryMiB >= model.memoryMiB ? plan : null);
}

/** The default memory need of a full-model lease: float32 weights, gradients and two Adam moments, plus overhead. */
export function fullModelMemoryMiB(parameters: number, overheadMiB: number): number {
  return (parameters * 16) / 2 ** 20 + overheadMiB;
}
