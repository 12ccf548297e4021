// Which work each simulated device gets: the hook the planner (src/core/planner) plugs into. The engine asks
// `assignPlan(device, now)` whenever it is about to lease to a device; the answer fixes what the device downloads,
// how long it trains, how much memory it needs and what it uploads. Three policies: the real planner
// (src/core/planner, adapted by plannerPlans), and two baselines for issue 4's report: everyone gets the full model
// (devices that cannot hold it fail out of memory), or devices below the model's memory need are excluded.
import { PlannerError } from '../core/planner/errors.ts';
import { initialPlannerState, plan, type PlannerConfig, type PlannerState } from '../core/planner/planner.ts';
import type { Plan } from '../core/protocol/schemas.ts';
import { parameterCount } from '../core/submodel/shapes.ts';

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
  /** The plan as a coordinator would send it. */
  readonly plan: Plan;
  readonly localSteps: number;
  readonly batchSize: number;
  /** Parameters the device downloads, trains and uploads: all of them for a full plan, the adapters for a LoRA plan. */
  readonly parameters: number;
  /** Memory the plan needs on the device, MiB; a device with less fails the lease out of memory. */
  readonly memoryMiB: number;
  /** Parameters downloaded, when not `parameters` (a device that fetches the whole base and cuts its submodel). */
  readonly downloadParameters?: number;
  /** The device's training speed on this plan, when not its speed on the full model (a submodel is cheaper). */
  readonly examplesPerSecond?: number;
  /** The lease expires this long after it is issued: an update arriving later is refused. None when absent. */
  readonly deadlineSeconds?: number;
}

/** null: no work for this device now (it is not leased until its next session). */
export type AssignPlan = (device: SimDevice, now: number) => SimPlan | null;

export type PlanPolicy = 'full' | 'exclude-small';

/** The built-in policies for a model of `parameters` parameters needing `memoryMiB` to train. */
export function fullModelPlans(
  policy: PlanPolicy, model: { parameters: number; memoryMiB: number }, recipe: { localSteps: number; batchSize: number },
  leaseSeconds?: number,
): AssignPlan {
  // One frozen plan shared by every lease: the engine never mutates it, and 1,000,000 leases allocate nothing here.
  const plan: SimPlan = Object.freeze({
    plan: Object.freeze({ kind: 'full' as const }),
    localSteps: recipe.localSteps,
    batchSize: recipe.batchSize,
    parameters: model.parameters,
    memoryMiB: model.memoryMiB,
    ...(leaseSeconds === undefined ? {} : { deadlineSeconds: leaseSeconds }),
  });
  if (policy === 'full') return () => plan;
  return (device) => (device.memoryMiB >= model.memoryMiB ? plan : null);
}

/** The default memory need of a full-model lease: float32 weights, gradients and two Adam moments, plus overhead. */
export function fullModelMemoryMiB(parameters: number, overheadMiB: number): number {
  return (parameters * 16) / 2 ** 20 + overheadMiB;
}

/**
 * The heterogeneity-aware planner (src/core/planner), the same one the live coordinator runs: each device gets the
 * largest submodel that fits its memory (or the full model), local steps that fit the time budget at its speed, and
 * a deadline from its speed and bandwidth. Devices that fit nothing are refused. The planner's state (rolling
 * positions) lives in this closure, as the coordinator keeps it with the run.
 */
export function plannerPlans(config: PlannerConfig): AssignPlan {
  let state: PlannerState = initialPlannerState;
  return (device) => {
    let decided;
    try {
      decided = plan({
        memoryMiB: device.memoryMiB, examplesPerSecond: device.examplesPerSecond,
        uplinkMbps: device.upMbps, downlinkMbps: device.downMbps, shard: device.shard,
      }, config, state);
    } catch (e) {
      if (e instanceof PlannerError && e.code === 'device-too-small') return null;
      throw e;
    }
    state = decided.state;
    const { estimate } = decided;
    const net = config.network ?? {};
    return {
      plan: decided.plan,
      localSteps: decided.recipe.localSteps,
      batchSize: decided.recipe.batchSize,
      parameters: estimate.params,
      memoryMiB: estimate.memoryMiB,
      examplesPerSecond: estimate.examplesPerSecond,
      // A LoRA device fetches the whole base to adapt it, whatever the download setting (the planner times it so).
      downloadParameters: (net.download ?? 'plan') === 'full' || decided.plan.kind === 'lora' ? parameterCount(config.spec) : estimate.params,
      deadlineSeconds: decided.deadlineSeconds,
    };
  };
}

/** A short label for a plan, for counts in reports: "full", "width 1/2", "depth 2". */
export function planLabel(p: Plan): string {
  switch (p.kind) {
    case 'full': return 'full';
    case 'width': return `width ${Number.isInteger(1 / p.ratio) ? `1/${1 / p.ratio}` : p.ratio}`;
    case 'depth': return `depth ${p.count}`;
    case 'lora': return `lora r${p.rank}`;
  }
}
