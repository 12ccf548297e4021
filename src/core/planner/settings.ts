// The planner's settings as they appear in run configs and simulator configs: one schema, so a setting tried in
// `tessera sim` means the same thing on a live coordinator.
import { z } from 'zod';
import type { ModelSpec } from '../model-spec.ts';
import type { Recipe } from '../protocol/schemas.ts';
import { PlannerError } from './errors.ts';
import { defaultLoraTargets, LoraError, loraPlanShapes } from '../lora.ts';
import { parameterShapes } from '../submodel/shapes.ts';
import type { LoraPlanner, NetworkModel, PlannerConfig } from './planner.ts';

/** One LoRA tier: devices with at least `minMemoryMiB` for training, and room for the frozen model, get this rank. */
export const LoraTier = z.object({
  rank: z.number().int().min(1).max(65_536),
  /** Scale numerator, W + (alpha / rank) A B. Default: 2 * rank (scale 2, as src/train/lora.ts). */
  alpha: z.number().positive().max(1e6).optional(),
  minMemoryMiB: z.number().min(0).default(0),
}).strict();

/**
 * LoRA leases (Hu et al. 2021) instead of full models or submodels: every device trains adapters of its tier's rank
 * on the frozen base version and uploads only them; the coordinator folds their products (FLoRA stacking, exact;
 * src/core/lora.ts). Heterogeneous ranks: a device gets the largest rank whose tier it qualifies for.
 */
export const LoraSettings = z.object({
  /** Adapted weight matrices by name (2-D `*.weight` parameters). Default: a GPT's attention and MLP matrices. */
  targets: z.array(z.string().min(1).max(256)).min(1).max(100_000).optional(),
  tiers: z.array(LoraTier).min(1).max(64),
}).strict();
export type LoraSettings = z.infer<typeof LoraSettings>;

export const PlannerSettings = z.object({
  /** How devices too small for the model take part: rolling width windows (FedRolex), static slices (HeteroFL),
   * a subset of blocks, or not at all ('none': they get no lease). */
  submodels: z.enum(['rolling', 'static', 'depth', 'none']).default('rolling'),
  /** Seconds of local training a lease should take on any device. */
  leaseSeconds: z.number().positive().default(60),
  minSteps: z.number().int().min(1).default(1),
  maxSteps: z.number().int().min(1).default(10_000),
  /** 'full': devices fetch the whole base version and cut their submodel (live devices do); 'plan': only their part. */
  download: z.enum(['full', 'plan']).default('full'),
  /** Width submodels use HeteroFL's scaler (MLP models only; see widthSubSpec in src/core/submodel/width.ts). */
  scaler: z.boolean().default(false),
  /** LoRA leases with ranks by device tier (replaces `submodels`: every device adapts the whole frozen model). */
  lora: LoraSettings.optional(),
}).strict();
export type PlannerSettings = z.infer<typeof PlannerSettings>;

/**
 * The planner's configuration for a run of `spec` trained with `recipe`, from its settings. Throws
 * PlannerError('invalid-config') for settings the model cannot have, so a run or simulation with them is refused
 * up front rather than at its first small device.
 */
export function plannerConfig(settings: PlannerSettings, spec: ModelSpec, recipe: Recipe, network: NetworkModel = {}): PlannerConfig {
  if (settings.scaler && spec.kind !== 'mlp') {
    throw new PlannerError('invalid-config', `planner.scaler: the HeteroFL scaler is implemented for MLPs only, not a ${spec.kind}`);
  }
  return {
    spec, leaseSeconds: settings.leaseSeconds, recipe, submodels: settings.submodels,
    minSteps: settings.minSteps, maxSteps: settings.maxSteps, scaler: settings.scaler,
    network: { ...network, download: settings.download },
    ...(settings.lora === undefined ? {} : { lora: loraConfig(settings.lora, spec, recipe) }),
  };
}

/**
 * The LoRA tiers resolved against the model: targets named (the default ones when absent) and checked to be weight
 * matrices of `spec`, every rank within 1..min(in, out) of every target, largest rank first.
 */
function loraConfig(settings: LoraSettings, spec: ModelSpec, recipe: Recipe): LoraPlanner {
  const bad = (msg: string): never => {
    throw new PlannerError('invalid-config', msg);
  };
  if (recipe.zo !== undefined) bad('planner.lora: LoRA leases train adapters with gradients; a zeroth-order recipe (recipe.zo) cannot train them');
  const shapes = parameterShapes(spec);
  const targets = settings.targets ?? defaultLoraTargets(shapes, spec.kind === 'gpt');
  if (targets.length === 0) bad(`planner.lora.targets: the ${spec.kind} has no weight matrix to adapt by default; name the targets`);
  const tiers = settings.tiers.map((t, i) => {
    const tier = { rank: t.rank, alpha: t.alpha ?? 2 * t.rank, minMemoryMiB: t.minMemoryMiB };
    try {
      loraPlanShapes(shapes, { ...tier, targets });
    } catch (e) {
      if (!(e instanceof LoraError)) throw e;
      const where = /not a parameter|weight matrix|listed twice/.test(e.message) ? 'planner.lora.targets' : `planner.lora.tiers.${i}.rank`;
      bad(`${where}: ${e.message}`);
    }
    return tier;
  });
  tiers.sort((a, b) => b.rank - a.rank || b.minMemoryMiB - a.minMemoryMiB);
  return { targets, tiers };
}
