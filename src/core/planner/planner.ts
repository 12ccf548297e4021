// The planner: from a device's profile and the run's settings, the part of the model it trains, how long it trains,
// and when its lease expires. Pure and deterministic, so the coordinator, the simulator and tests run the same
// decisions; the only memory between calls is PlannerState, plain data the caller keeps with the run.
//
//   1. Plan: the largest submodel on the ladder (width 1, 1/2, 1/4, 1/8 by default) whose training memory fits the
//      device's budget. Width slices are HeteroFL's (Diao et al., ICLR 2021) when static and FedRolex's (Alam et al.,
//      NeurIPS 2022) when rolling; depth plans roll over blocks instead (FedBRB, 2024). A device that fits nothing is
//      refused with PlannerError('device-too-small').
//   2. Recipe: as many local steps as fit the run's time budget at the device's speed on that submodel, clamped.
//      Devices therefore take different numbers of steps; FedNova (Wang et al., "Tackling the Objective
//      Inconsistency Problem in Heterogeneous Federated Optimization", NeurIPS 2020) normalises each update by its
//      steps so fast devices do not pull the model towards their own objective: run such populations with the
//      'fednova' strategy, which reads the localSteps every update reports.
//   3. Deadline: download, training and upload time of the plan at the device's speed and bandwidth, with a margin.
//
// With LoRA tiers (PlannerConfig.lora) step 1 picks a rank instead of a submodel: every device adapts the whole frozen
// model, and the largest rank whose tier the device qualifies for (its memory threshold, and the memory of the frozen
// model plus adapters) is its plan. Heterogeneous ranks aggregate exactly by FLoRA stacking (src/core/lora.ts).
import type { ModelSpec } from '../model-spec.ts';
import type { DeviceProfile, Plan, Recipe } from '../protocol/schemas.ts';
import { loraParameterCount } from '../lora.ts';
import { parameterCount, parameterShapes } from '../submodel/shapes.ts';
import { submodelSpec } from '../submodel/submodel.ts';
import { forwardMacsPerExample, trainingMemory, type MemoryModel } from './cost.ts';
import { checkCoverage } from './coverage-check.ts';
import { PlannerError } from './errors.ts';
import { rollingCycle, rollingWindow } from './rolling.ts';

/** Which submodels devices that cannot hold the whole model get. */
export type SubmodelPolicy =
  /** FedRolex rolling width windows. */
  | 'rolling'
  /** HeteroFL static width slices (the first units of every dimension). */
  | 'static'
  /** Rolling windows of transformer blocks (GPT only). */
  | 'depth'
  /** None: devices that cannot hold the whole model get no lease (the "exclude small devices" baseline). */
  | 'none';

export interface PlannerConfig {
  readonly spec: ModelSpec;
  /** Seconds of local training one lease should take on any device. */
  readonly leaseSeconds: number;
  /** The run's recipe; the planner sets localSteps (and lowers batchSize for devices too slow for minSteps). */
  readonly recipe: Recipe;
  readonly submodels?: SubmodelPolicy;
  /** Fractions of width (or of blocks, for 'depth') to try, largest first. Defaults to 1, 1/2, 1/4, 1/8. */
  readonly ladder?: readonly number[];
  /** Defaults: optimizer moments from recipe.optimizer (AdamW 2, SGD 0), safety factor 1.5. */
  readonly memory?: MemoryModel;
  /** Bounds on local steps. Defaults: 1 and 10,000. */
  readonly minSteps?: number;
  readonly maxSteps?: number;
  /** Units (blocks, for 'depth') the rolling window moves per lease of a tier. Defaults to 1, FedRolex's step. */
  readonly rollingStride?: number;
  /** Width plans ask for HeteroFL's scaler (MLPs only). */
  readonly scaler?: boolean;
  readonly network?: NetworkModel;
  /** LoRA leases instead of (sub)models: ranks by tier (src/core/planner/settings.ts resolves and checks them). */
  readonly lora?: LoraPlanner;
}

export interface LoraPlanner {
  /** The adapted weight matrices, named. */
  readonly targets: readonly string[];
  /** Largest rank first. */
  readonly tiers: ReadonlyArray<{ readonly rank: number; readonly alpha: number; readonly minMemoryMiB: number }>;
}

export interface NetworkModel {
  /** Assumed bandwidth in Mbit/s where a profile declares none. Defaults to 10. */
  readonly defaultMbps?: number;
  /** Bytes per parameter downloaded (float32 weights: 4) and uploaded (4; 2 with an fp16 codec, 1 with int8). */
  readonly downloadBytesPerParam?: number;
  readonly uploadBytesPerParam?: number;
  /** 'plan': the device fetches only its submodel; 'full': it fetches the whole base version and cuts it itself. */
  readonly download?: 'plan' | 'full';
  /** The deadline is margin * (download + train + upload) + slackSeconds. Defaults: 2 and 30 s. */
  readonly margin?: number;
  readonly slackSeconds?: number;
}

/** The planner's memory across leases: how many rolling leases each tier has had. JSON-safe; keep it with the run. */
export interface PlannerState {
  readonly rolling: Readonly<Record<string, number>>;
}

export const initialPlannerState: PlannerState = { rolling: {} };

/** How many leases a run has issued with one plan shape (the rolling position aside): what a store can count. */
export interface IssuedPlans {
  readonly kind: Plan['kind'];
  /** A width plan's ratio. */
  readonly ratio?: number;
  /** A depth plan's block count. */
  readonly count?: number;
  readonly leases: number;
}

/**
 * The planner state after a run's issued leases: each rolling counter is the number of leases its tier was given, so a
 * coordinator that restarts continues every rolling window where it stopped instead of at offset 0, which would
 * train the first window twice as often as the others after every restart.
 */
export function plannerStateFromIssued(issued: Iterable<IssuedPlans>): PlannerState {
  const rolling: Record<string, number> = {};
  for (const i of issued) {
    const tier: Tier | undefined = i.kind === 'width' && i.ratio !== undefined ? { kind: 'width', ratio: i.ratio }
      : i.kind === 'depth' && i.count !== undefined ? { kind: 'depth', count: i.count } : undefined;
    if (tier === undefined) continue;
    const key = tierKey(tier);
    rolling[key] = (rolling[key] ?? 0) + i.leases;
  }
  return { rolling };
}

export interface LeasePlan {
  readonly plan: Plan;
  readonly recipe: Recipe;
  /** Seconds from issue after which the update is no longer accepted. */
  readonly deadlineSeconds: number;
  /** What the decision was based on, for logs, dashboards and the simulator's cost model. */
  readonly estimate: {
    readonly params: number;
    readonly memoryMiB: number;
    /** The device's speed on the submodel, scaled from its measured speed on the run's model by arithmetic. */
    readonly examplesPerSecond: number;
    readonly downloadSeconds: number;
    readonly trainSeconds: number;
    readonly uploadSeconds: number;
  };
  /** The state to plan the next lease with. */
  readonly state: PlannerState;
}

export const DEFAULT_LADDER: readonly number[] = [1, 1 / 2, 1 / 4, 1 / 8];

/** A rung of the ladder before the rolling position is chosen: what a device of some memory can train. */
export type Tier =
  | { readonly kind: 'full' }
  | { readonly kind: 'width'; readonly ratio: number }
  | { readonly kind: 'depth'; readonly count: number }
  | { readonly kind: 'lora'; readonly rank: number; readonly alpha: number; readonly minMemoryMiB: number };

/** Plans a lease for `profile`. Throws PlannerError('device-too-small') when no submodel fits its memory. */
export function plan(profile: DeviceProfile, run: PlannerConfig, state: PlannerState): LeasePlan {
  checkConfig(run);
  const tier = tierFor(profile.memoryMiB, run);
  const [chosen, next] = placeTier(tier, run, state);
  const sub = submodelSpec(run.spec, chosen);
  // A LoRA device trains and uploads only its adapters, but needs the whole base.
  const params = chosen.kind === 'lora' ? loraParameterCount(parameterShapes(run.spec), chosen) : parameterCount(sub);
  const { batchSize: runBatch } = run.recipe;
  const minSteps = run.minSteps ?? 1;
  const maxSteps = run.maxSteps ?? 10_000;

  // The profile's speed was measured on the run's model; a submodel does proportionally less arithmetic per example.
  const examplesPerSecond = profile.examplesPerSecond * (forwardMacsPerExample(run.spec) / forwardMacsPerExample(sub));
  const budgetExamples = run.leaseSeconds * examplesPerSecond;
  let batchSize = runBatch;
  let localSteps = Math.floor(budgetExamples / batchSize);
  if (localSteps < minSteps) {
    // Too slow for minSteps full batches within the budget: smaller batches rather than an overrun lease.
    batchSize = Math.max(1, Math.min(runBatch, Math.floor(budgetExamples / minSteps)));
    localSteps = minSteps;
  }
  localSteps = Math.min(maxSteps, Math.max(minSteps, localSteps));

  const net = run.network ?? {};
  const down = (profile.downlinkMbps ?? net.defaultMbps ?? 10) * 1e6;
  const up = (profile.uplinkMbps ?? net.defaultMbps ?? 10) * 1e6;
  const downloadParams = (net.download ?? 'plan') === 'full' || chosen.kind === 'lora' ? parameterCount(run.spec) : params;
  const downloadSeconds = (downloadParams * (net.downloadBytesPerParam ?? 4) * 8) / down;
  const uploadSeconds = (params * (net.uploadBytesPerParam ?? 4) * 8) / up;
  const trainSeconds = (localSteps * batchSize) / examplesPerSecond;
  const deadlineSeconds = Math.ceil((net.margin ?? 2) * (downloadSeconds + trainSeconds + uploadSeconds) + (net.slackSeconds ?? 30));

  return {
    plan: chosen,
    recipe: { ...run.recipe, localSteps, batchSize },
    deadlineSeconds,
    estimate: {
      params,
      memoryMiB: tierMemoryMiB(tier, run, batchSize),
      examplesPerSecond,
      downloadSeconds,
      trainSeconds,
      uploadSeconds,
    },
    state: next,
  };
}

/** The largest rung of the ladder whose training memory fits `memoryMiB`, or PlannerError('device-too-small'). */
export function tierFor(memoryMiB: number, run: PlannerConfig): Tier {
  const policy = run.submodels ?? 'rolling';
  const mem = memoryModel(run);
  const batch = run.recipe.batchSize;
  const tiers = tiersOf(run);
  if (run.lora !== undefined) {
    for (const tier of tiers) if (tier.kind === 'lora' && memoryMiB >= tier.minMemoryMiB && tierMemoryMiB(tier, run, batch) <= memoryMiB) return tier;
    const least = Math.min(...tiers.map((t) => Math.max(t.kind === 'lora' ? t.minMemoryMiB : 0, tierMemoryMiB(t, run, batch))));
    throw new PlannerError(
      'device-too-small',
      `a device with ${round(memoryMiB)} MiB for training qualifies for no LoRA tier of this run: the least it takes is ${round(least)} MiB (the frozen model, adapters and activations at batch size ${batch}, or a tier's minMemoryMiB)`,
    );
  }
  for (const tier of tiers) {
    if (trainingMemory(submodelSpec(run.spec, tierPlan(tier)), batch, mem).totalMiB <= memoryMiB) return tier;
  }
  const smallest = tiers[tiers.length - 1]!;
  const need = trainingMemory(submodelSpec(run.spec, tierPlan(smallest)), batch, mem).totalMiB;
  const what = smallest.kind === 'full' ? 'the full model' : smallest.kind === 'width' ? `the width-${fraction(smallest.ratio)} submodel` : smallest.kind === 'depth' ? `${smallest.count} of ${blocksOf(run.spec)} blocks` : `rank ${smallest.rank} adapters`;
  const why = policy === 'none' ? ' (this run gives no submodels)' : ', the smallest plan this run allows';
  throw new PlannerError(
    'device-too-small',
    `a device with ${round(memoryMiB)} MiB for training cannot train ${what}${why}: it needs about ${round(need)} MiB at batch size ${batch}`,
  );
}

/** Every plan the devices of `profiles` would receive over a full rolling cycle (deduplicated); refused devices give none. */
export function populationPlans(profiles: readonly Pick<DeviceProfile, 'memoryMiB'>[], run: PlannerConfig, horizon = 10_000): Plan[] {
  checkConfig(run);
  const tiers = new Map<string, Tier>();
  for (const p of profiles) {
    try {
      const tier = tierFor(p.memoryMiB, run);
      tiers.set(tierKey(tier), tier);
    } catch (e) {
      if (!(e instanceof PlannerError && e.code === 'device-too-small')) throw e;
    }
  }
  const plans = new Map<string, Plan>();
  for (const tier of tiers.values()) {
    const cycle = tierCycle(tier, run);
    let state = initialPlannerState;
    for (let c = 0; c < Math.min(cycle, horizon); c++) {
      const [p, next] = placeTier(tier, run, state);
      plans.set(JSON.stringify(p), p);
      state = next;
    }
  }
  return [...plans.values()];
}

/**
 * Refuses, with PlannerError('coverage-gap'), a run in which this population would leave some parameters untrained
 * within `horizon` leases per tier: for example static slices where no device can hold the full width.
 */
export function checkPopulation(profiles: readonly Pick<DeviceProfile, 'memoryMiB'>[], run: PlannerConfig, horizon = 10_000): void {
  // LoRA plans all adapt the same targets and freeze the rest by design: there is no gap to find.
  if (run.lora !== undefined) return;
  const plans = populationPlans(profiles, run, horizon);
  checkCoverage(run.spec, plans, ` by these ${profiles.length} devices under the '${run.submodels ?? 'rolling'}' policy`);
}

function tiersOf(run: PlannerConfig): Tier[] {
  if (run.lora !== undefined) return run.lora.tiers.map((t) => ({ kind: 'lora', ...t }));
  const policy = run.submodels ?? 'rolling';
  const ladder = [...new Set([1, ...(run.ladder ?? DEFAULT_LADDER)])].sort((a, b) => b - a);
  if (policy === 'none') return [{ kind: 'full' }];
  if (policy === 'depth') {
    const L = blocksOf(run.spec);
    const counts = [...new Set(ladder.map((f) => Math.max(1, Math.ceil(f * L - 1e-9))))];
    return counts.map((count) => (count === L ? { kind: 'full' } : { kind: 'depth', count }));
  }
  return ladder.map((ratio) => (ratio === 1 ? { kind: 'full' } : { kind: 'width', ratio }));
}

/** The tier's plan at rolling position 0 (its size does not depend on the position). */
function tierPlan(tier: Tier, run?: PlannerConfig): Plan {
  switch (tier.kind) {
    case 'full': return { kind: 'full' };
    case 'width': return { kind: 'width', ratio: tier.ratio, offset: 0 };
    case 'depth': return { kind: 'depth', start: 0, count: tier.count };
    case 'lora': return { kind: 'lora', rank: tier.rank, alpha: tier.alpha, targets: [...(run?.lora?.targets ?? [])] };
  }
}

/**
 * Training memory of a tier in MiB. A LoRA device holds the frozen model once (float32, no gradient, no optimizer
 * moments), the adapters with their gradients and moments, and the whole model's activations (the backward pass runs
 * through every layer to reach the adapters), with the same safety factor as trainingMemory.
 */
function tierMemoryMiB(tier: Tier, run: PlannerConfig, batchSize: number): number {
  const mem = memoryModel(run);
  if (tier.kind !== 'lora') return trainingMemory(submodelSpec(run.spec, tierPlan(tier)), batchSize, mem).totalMiB;
  const full = trainingMemory(run.spec, batchSize, mem);
  const adapters = loraParameterCount(parameterShapes(run.spec), { rank: tier.rank, alpha: tier.alpha, targets: run.lora!.targets });
  const stateBytes = full.params * 4 + adapters * 4 * (2 + (mem.optimizerSlots ?? 2));
  return ((stateBytes + full.activationBytes) * (mem.safetyFactor ?? 1.5)) / (1024 * 1024);
}

/** The tier's plan at its next rolling position, and the state after it. */
function placeTier(tier: Tier, run: PlannerConfig, state: PlannerState): [Plan, PlannerState] {
  const [plan, next] = placeWindow(tier, run, state);
  if (plan.kind !== 'width' || run.scaler !== true) return [plan, next];
  if (run.spec.kind !== 'mlp') throw new PlannerError('invalid-config', `the HeteroFL scaler is implemented for MLPs only, not a ${run.spec.kind}`);
  return [{ ...plan, scaler: true }, next];
}

function placeWindow(tier: Tier, run: PlannerConfig, state: PlannerState): [Plan, PlannerState] {
  const policy = run.submodels ?? 'rolling';
  if (tier.kind === 'lora') return [tierPlan(tier, run), state];
  if (tier.kind === 'full' || policy === 'static') return [tierPlan(tier), state];
  const key = tierKey(tier);
  const counter = state.rolling[key] ?? 0;
  const stride = run.rollingStride ?? 1;
  const next: PlannerState = { rolling: { ...state.rolling, [key]: counter + 1 } };
  if (tier.kind === 'depth') return [{ kind: 'depth', start: (counter * stride) % blocksOf(run.spec), count: tier.count }, next];
  const { offset, shift } = rollingWindow(run.spec, tier.ratio, counter, stride);
  return [shift === 0 ? { kind: 'width', ratio: tier.ratio, offset } : { kind: 'width', ratio: tier.ratio, offset, shift }, next];
}

function tierCycle(tier: Tier, run: PlannerConfig): number {
  const policy = run.submodels ?? 'rolling';
  if (tier.kind === 'full' || tier.kind === 'lora' || policy === 'static') return 1;
  if (tier.kind === 'depth') return blocksOf(run.spec);
  return rollingCycle(run.spec, tier.ratio, run.rollingStride ?? 1);
}

function tierKey(tier: Tier): string {
  switch (tier.kind) {
    case 'full': return 'full';
    case 'width': return `width:${tier.ratio}`;
    case 'depth': return `depth:${tier.count}`;
    case 'lora': return `lora:${tier.rank}`;
  }
}

function memoryModel(run: PlannerConfig): MemoryModel {
  return { optimizerSlots: run.recipe.optimizer === 'adamw' ? 2 : 0, ...run.memory };
}

function blocksOf(spec: ModelSpec): number {
  if (spec.kind !== 'gpt') throw new PlannerError('invalid-config', `depth plans need a transformer; a ${spec.kind} has no blocks`);
  return spec.layers;
}

function checkConfig(run: PlannerConfig): void {
  const bad = (msg: string): never => {
    throw new PlannerError('invalid-config', msg);
  };
  if (!(run.leaseSeconds > 0 && Number.isFinite(run.leaseSeconds))) bad(`leaseSeconds must be a positive number, got ${run.leaseSeconds}`);
  const ladder = run.ladder ?? DEFAULT_LADDER;
  if (ladder.length === 0 || !ladder.every((r) => r > 0 && r <= 1)) bad(`ladder ratios must be in (0, 1], got ${ladder.join(', ')}`);
  const min = run.minSteps ?? 1;
  const max = run.maxSteps ?? 10_000;
  if (!(Number.isInteger(min) && Number.isInteger(max) && min >= 1 && max >= min)) bad(`need integers 1 <= minSteps <= maxSteps, got ${min} and ${max}`);
  if (run.submodels === 'depth') blocksOf(run.spec);
}

function fraction(r: number): string {
  const inv = 1 / r;
  return Number.isInteger(inv) ? `1/${inv}` : String(r);
}

function round(x: number): string {
  return x >= 10 ? String(Math.round(x)) : x.toFixed(1);
}
