// The simulator's config file (`tessera sim <config.json>`), validated with zod so every mistake is reported with its
// path in the file. Strategies and recipes use the same schemas as run configs (core), so a strategy that works in
// the simulator is written the same way for the live coordinator.
import { z } from 'zod';
import { DownlinkCodecSpec } from '../core/codecs/downlink.ts';
import { CodecSpec, isSparse } from '../core/codecs/spec.ts';
import { PlannerSettings } from '../core/planner/settings.ts';
import { ModelSpec } from '../core/model-spec.ts';
import { Recipe } from '../core/protocol/schemas.ts';
import { StrategyConfig } from '../core/strategies/config.ts';
import { TASK_NAMES } from '../device/tasks/registry.node.ts';
import { PopulationConfig } from './population.ts';
import { AttackConfig } from './attack.ts';

export const SIM_MODES = ['full', 'fast'] as const;
export type SimMode = (typeof SIM_MODES)[number];

export const SimAggregation = z.discriminatedUnion('mode', [
  /** FedBuff (Nguyen et al. 2022): updates fold as they arrive; at most `concurrency` leases are out at once. */
  z.object({
    mode: z.literal('async'),
    strategy: StrategyConfig,
    concurrency: z.number().int().min(1).default(100),
  }).strict(),
  /**
   * Synchronous rounds as in Bonawitz et al., "Towards Federated Learning at Scale" (SysML 2019): a round starts once
   * `cohort` devices are waiting and leases to ceil(cohort * overSelection) of them; it closes as soon as `cohort`
   * updates arrived (the stragglers are dropped) or at the deadline with at least `minUpdates` (else it is extended
   * by another deadline, as the coordinator extends it: updates already in it were acknowledged).
   */
  z.object({
    mode: z.literal('sync'),
    strategy: StrategyConfig,
    cohort: z.number().int().min(1),
    overSelection: z.number().min(1).default(1.3),
    roundSeconds: z.number().positive().default(600),
    minUpdates: z.number().int().min(1).default(1),
  }).strict().refine((a) => a.minUpdates <= a.cohort, { message: 'minUpdates must not exceed the cohort', path: ['minUpdates'] }),
]);
export type SimAggregation = z.infer<typeof SimAggregation>;

export const SimConfig = z.object({
  name: z.string().min(1).max(100).default('sim'),
  seed: z.number().int().default(0),
  /** full: real local training on real data; fast: a cost model with a synthetic quadratic objective, for scale. */
  mode: z.enum(SIM_MODES).default('fast'),
  /** Full mode: the task (real data and model). */
  task: z.object({
    name: z.enum(TASK_NAMES),
    /** Overrides the task's model (must fit the data: same inputs and classes, or vocabulary). */
    model: ModelSpec.optional(),
    /**
     * Fashion-MNIST: Dirichlet label-skew shards (default 10). Shakespeare (char or BPE): one shard per speaking role
     * by default, or the roles dealt round-robin into this many shards. Not for sotu (a shard is a president).
     */
    shards: z.number().int().min(1).optional(),
    /** Fashion-MNIST only: Dirichlet concentration; smaller is more skewed. */
    alpha: z.number().positive().default(0.5),
    /**
     * Start from these weights instead of a random init: a safetensors file holding exactly the model's tensors (a
     * version's weights file, or model.safetensors of `tessera export`), e.g. a pretrained base to fine-tune. A path
     * relative to the working directory.
     */
    init: z.string().min(1).max(4096).optional(),
  }).strict().optional(),
  /** Fast mode: the cost model and its synthetic objective (see fast-backend.ts). */
  fast: z.object({
    /** Length of the synthetic parameter vector the real strategies fold. */
    dimension: z.number().int().min(1).max(1 << 16).default(32),
    /** Nominal model size in parameters: what bytes and memory are computed from. */
    parameters: z.number().int().min(1).default(5_000_000),
    /** Number of distinct client optima (non-IID data shards). */
    shards: z.number().int().min(1).max(1 << 20).default(100),
    /** Standard deviation of the shard optima around the global one: the degree of non-IID-ness. */
    clientSpread: z.number().min(0).default(1),
    /** Local SGD learning rate on the quadratic. */
    localLr: z.number().gt(0).max(1).default(0.01),
    /** Standard deviation of stochastic-gradient noise per step and coordinate. */
    gradientNoise: z.number().min(0).default(0.5),
    /**
     * The nominal model, for LoRA leases (planner.lora): its shapes give each tier's adapter count and memory, and its
     * parameter count replaces `parameters`. Nothing of it is trained: the objective stays the quadratic.
     */
    model: ModelSpec.optional(),
  }).strict().prefault({}),
  population: PopulationConfig,
  aggregation: SimAggregation.prefault({ mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 10 } }),
  recipe: Recipe.prefault({}),
  plans: z.object({
    /** full: every device gets the full model (those that cannot hold it fail out of memory); exclude-small: devices
     *  whose memory budget is below the model's need get no leases. */
    policy: z.enum(['full', 'exclude-small']).default('full'),
    /** Memory a full-model lease needs on a device, MiB; default: 16 bytes per parameter (weights, gradients and two
     *  Adam moments in float32) plus overheadMiB. */
    memoryMiB: z.number().positive().optional(),
    overheadMiB: z.number().min(0).default(32),
    /** Leases expire this long after they are issued (the coordinator's lease.seconds); none when absent. */
    leaseSeconds: z.number().positive().optional(),
  }).strict().prefault({}),
  /**
   * Heterogeneity-aware planning with the real planner (src/core/planner), written as in a run config: when present,
   * it decides every lease's plan (full model or a submodel that fits the device), local steps and deadline, and
   * `plans` is ignored. Full mode only for submodels (they are cut from a real model); LoRA tiers (planner.lora) run
   * in both modes, in fast mode on the nominal model `fast.model`.
   */
  planner: PlannerSettings.optional(),
  network: z.object({
    bytesPerParamDown: z.number().positive().default(4),
    bytesPerParamUp: z.number().positive().default(4),
    /**
     * The update codec (src/core/codecs), as in a run config: every upload is encoded and decoded with it (top-k with
     * error feedback kept per device) and charged its exact encoded size instead of bytesPerParamUp. Absent: dense.
     */
    codec: CodecSpec.optional(),
    /**
     * Downlink deltas (docs/api.md, "Weights deltas"): a device that holds an older version downloads the entries
     * changed since, when that is smaller than the full weights. Full mode, full-model downloads only.
     */
    weightDeltas: z.boolean().default(false),
    /**
     * The run's downlink codec (src/core/codecs/downlink.ts, as a run config's downlinkCodec): every version is its
     * parent plus the compressed step, with the server's error feedback, so devices train from the compressed
     * versions; a device holding an older version downloads the chain of encoded steps when that is smaller than the
     * file (or the sparse delta). Full mode only.
     */
    downlinkCodec: DownlinkCodecSpec.optional(),
    /** Fixed latency per lease (check-in, lease and upload round trips together). */
    rttSeconds: z.number().min(0).default(0.3),
    /** How long a device whose lease failed (dropout, out of memory, refused update) waits before checking in again. */
    retrySeconds: z.number().min(0).default(300),
  }).strict().prefault({}),
  eval: z.object({
    /** Evaluate every n-th version (version 0 always). */
    everyVersions: z.number().int().min(1).default(1),
    /** Full mode: held-out batches per evaluation and their size. */
    batches: z.number().int().min(1).default(10),
    batchSize: z.number().int().min(1).default(100),
  }).strict().prefault({}),
  /** When to stop: the first limit reached. */
  stop: z.object({
    hours: z.number().positive().optional(),
    versions: z.number().int().min(1).optional(),
    leases: z.number().int().min(1).optional(),
  }).strict().refine((s) => s.hours !== undefined || s.versions !== undefined || s.leases !== undefined, {
    message: 'give at least one of hours, versions, leases',
  }),
  /** A quality to reach: the results report the virtual time and bytes it took. */
  target: z.object({
    metric: z.string().min(1),
    value: z.number(),
    /** Whether smaller is better (loss) or larger (accuracy); default from the metric's name. */
    goal: z.enum(['min', 'max']).optional(),
  }).strict().optional(),
  /** Attacker devices (src/sim/attack.ts): a fraction of the population uploads poisoned updates. Absent: none. */
  attack: AttackConfig.optional(),
  record: z.object({
    /** How many folds to log individually (staleness and the weight the strategy applied); the rest are counted. */
    folds: z.number().int().min(0).default(1000),
  }).strict().prefault({}),
}).strict().superRefine((c, ctx) => {
  if (c.task?.name === 'sotu' && c.task.shards !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['task', 'shards'], message: 'sotu shards are its presidents, in era order: they cannot be regrouped' });
  }
  if (c.mode === 'full' && c.task === undefined) {
    ctx.addIssue({ code: 'custom', path: ['task'], message: 'full mode needs a task (e.g. { "name": "fashion-mlp" })' });
  }
  if (c.aggregation.mode === 'async' && !selfTriggering(c.aggregation.strategy)) {
    ctx.addIssue({
      code: 'custom', path: ['aggregation', 'strategy', 'kind'],
      message: `async mode needs a strategy that decides when to step on its own (fedbuff, robust, dp around fedbuff); '${c.aggregation.strategy.kind}' needs sync rounds`,
    });
  }
  if (c.mode === 'fast' && c.network.downlinkCodec !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['network', 'downlinkCodec'], message: 'the downlink codec compresses real model versions: use full mode' });
  }
  if (c.mode === 'fast' && c.planner !== undefined && c.planner.lora === undefined) {
    ctx.addIssue({ code: 'custom', path: ['planner'], message: 'the planner cuts submodels from a real model: use full mode, or plans.policy in fast mode (fast mode plans LoRA tiers only, planner.lora)' });
  }
  if (c.mode === 'fast' && c.planner?.lora !== undefined && c.fast.model === undefined) {
    ctx.addIssue({ code: 'custom', path: ['fast', 'model'], message: 'LoRA tiers (planner.lora) in fast mode need the nominal model whose matrices they adapt, e.g. { "kind": "gpt", ... }' });
  }
  if (c.planner?.lora !== undefined) loraProblems(c, ctx);
  if (c.mode === 'fast' && c.population.referenceExamplesPerSecond === 'measure') {
    ctx.addIssue({
      code: 'custom', path: ['population', 'referenceExamplesPerSecond'],
      message: 'fast mode has no real model to time: give the reference throughput in examples/s',
    });
  }
});
export type SimConfig = z.infer<typeof SimConfig>;

/**
 * What LoRA leases cannot be combined with, as the coordinator refuses it for runs (loraRunProblems in
 * src/server/coordinator/coordinator.ts): top-k codecs (their error feedback carries what was not sent into the next
 * lease, but a LoRA upload is adapters, not a delta, and the next lease's adapters start afresh) and robust rules
 * (they take full-model updates only, and a LoRA update covers only its target matrices).
 */
function loraProblems(c: { network: { codec?: CodecSpec | undefined }; aggregation: SimAggregation }, ctx: z.RefinementCtx): void {
  if (c.network.codec !== undefined && isSparse(c.network.codec)) {
    ctx.addIssue({ code: 'custom', path: ['network', 'codec'], message: 'top-k codecs do not apply to LoRA uploads (adapters, not deltas; see planner.lora): use a value codec such as fp16 or int8' });
  }
  if (c.aggregation.strategy.kind === 'robust') {
    ctx.addIssue({ code: 'custom', path: ['aggregation', 'strategy', 'kind'], message: 'robust rules take full-model updates only, and a LoRA update covers only its target matrices (planner.lora)' });
  }
}

/** Strategies that decide on their own when a version is due (a buffer of K): the ones async mode can run. */
function selfTriggering(s: StrategyConfig): boolean {
  return s.kind === 'fedbuff' || s.kind === 'robust' || (s.kind === 'dp' && s.inner.kind === 'fedbuff');
}
export type SimConfigInput = z.input<typeof SimConfig>;

/** Parses a config, with every problem on its own line, named by its path. */
export function parseSimConfig(json: unknown, source = 'config'): SimConfig {
  const parsed = SimConfig.safeParse(json);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new Error(`${source} is not a valid simulation config:\n${lines.join('\n')}`);
  }
  return parsed.data;
}

/** Whether larger values of `metric` are better, when the config does not say. */
export function metricGoal(metric: string, goal?: 'min' | 'max'): 'min' | 'max' {
  return goal ?? (/acc/i.test(metric) ? 'max' : 'min');
}
