// A run's configuration file, validated. Everything a run needs to be recreated lives here; the coordinator stores
// it with the run (with the model spec resolved from the task) so a restart or an upgrade never changes a run.
import { z } from 'zod';
import { DownlinkCodecSpec } from '../../core/codecs/downlink.ts';
import { CodecSpec } from '../../core/codecs/spec.ts';
import { ModelSpec } from '../../core/model-spec.ts';
import { Recipe } from '../../core/protocol/schemas.ts';
import { PlannerSettings } from '../../core/planner/settings.ts';
import { StrategyConfig } from '../../core/strategies/config.ts';
import { TASK_NAMES } from '../../device/tasks/registry.node.ts';

export const Aggregation = z.discriminatedUnion('mode', [
  /** Asynchronous, buffered (FedBuff): no rounds, a version every K updates. */
  z.object({ mode: z.literal('async'), strategy: StrategyConfig }).strict(),
  /**
   * Synchronous rounds as in Bonawitz et al., "Towards Federated Learning at Scale" (SysML 2019): each round leases to
   * ceil(cohort * overSelection) devices, closes when `cohort` updates arrived (stragglers are dropped: their leases
   * expire with the round) or when the round's time is up with at least `minUpdates`.
   */
  z.object({
    mode: z.literal('sync'),
    strategy: StrategyConfig,
    cohort: z.number().int().min(1),
    overSelection: z.number().min(1).default(1.3),
    roundSeconds: z.number().positive().default(120),
    minUpdates: z.number().int().min(1).default(1),
  }).strict(),
  /**
   * Secure aggregation (src/server/coordinator/secure-rounds.ts): rounds of up to `cohort` devices whose updates the
   * coordinator only sees summed, each round one version. `threshold` devices must stay to the end (default: a
   * majority, the least that is safe); every coordinate of a delta is clipped to [-clip, clip] before masking.
   */
  z.object({
    mode: z.literal('secure'),
    strategy: StrategyConfig,
    cohort: z.number().int().min(3).max(1000),
    threshold: z.number().int().min(2).optional(),
    clip: z.number().positive().max(1e6).default(1),
    /** SecAgg+ (Bell et al. 2020): each device masks with `degree` neighbours instead of the whole cohort. */
    graph: z.object({ kind: z.literal('harary'), degree: z.number().int().min(2).max(998) }).strict().optional(),
    /** How long a round waits for its cohort before starting with fewer (at least `threshold`). */
    collectSeconds: z.number().positive().max(86_400).default(60),
    /** How long the key-sharing and unmasking phases wait for slow devices. */
    phaseSeconds: z.number().positive().max(3600).default(30),
  }).strict(),
]);
export type Aggregation = z.infer<typeof Aggregation>;

export const RunConfig = z.object({
  name: z.string().min(1).max(100),
  task: z.enum(TASK_NAMES),
  /** Overrides the task's default model (must fit the task's data: same vocabulary or classes). */
  model: ModelSpec.optional(),
  seed: z.number().int().default(0),
  aggregation: Aggregation.prefault({ mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 4 } }),
  recipe: Recipe.prefault({ clipGradNorm: 1 }),
  lease: z.object({ seconds: z.number().positive().max(7 * 24 * 3600).default(300) }).strict().prefault({}),
  limits: z.object({
    /** Updates with a larger L2 norm are rejected (a poisoning and divergence guard). */
    maxUpdateNorm: z.number().positive().default(100),
    /** Upload size limit; default: the model's fp32 size plus room for the header. */
    maxUpdateBytes: z.number().int().positive().optional(),
  }).strict().prefault({}),
  /**
   * Heterogeneity-aware planning (src/core/planner): when present, each lease's plan (full model or a submodel that
   * fits the device's memory), local steps and deadline come from the device's profile; when absent, every device
   * trains the full model with `recipe` and the lease's deadline is `lease.seconds`.
   */
  planner: PlannerSettings.optional(),
  /**
   * The codec every lease's update must use (src/core/codecs): fp16, bf16, int8/int4 stochastic quantization, top-k
   * with error feedback on the device, or top-k then a value format. Absent: dense fp32 safetensors.
   */
  codec: CodecSpec.optional(),
  /**
   * Compressed downlink (src/core/codecs/downlink.ts): each version is its parent plus the strategy's step encoded
   * with this dense codec (fp16, bf16, int8, int4 or int2), with the coordinator's error feedback, and a device that holds
   * an earlier version downloads the encoded steps since then when they are smaller than the file. Absent: versions
   * are exactly what the strategy computed.
   */
  downlinkCodec: DownlinkCodecSpec.optional(),
  /**
   * Continual runs (data arriving over months): forgetting mitigations (src/core/continual/mitigation.ts), either or
   * both. `anchor` pulls each version toward an anchor version by the proximal operator of (mu / 2) ||theta - a||^2,
   * theta <- (theta + mu a) / (1 + mu); the anchor is the newest version numbered a multiple of `everyVersions` before
   * it (or the version the model last grew at, if later), so it moves on as the run does and a restart finds the same
   * one. `ema` serves an exponential moving average of the versions, theta_ema <- beta theta_ema + (1 - beta) theta,
   * while devices keep training the versions themselves: evaluation and `GET .../served` (and exports) see the average.
   */
  continual: z.object({
    anchor: z.object({
      mu: z.number().positive().max(1e6),
      everyVersions: z.number().int().min(1).max(1_000_000),
    }).strict().optional(),
    ema: z.object({ beta: z.number().gt(0).lt(1) }).strict().optional(),
  }).strict().refine((c) => c.anchor !== undefined || c.ema !== undefined, { message: 'name a mitigation: anchor, ema or both' }).optional(),
  eval: z.object({
    /** Evaluate every n-th version on the task's held-out data (0: never). */
    everyVersions: z.number().int().min(0).default(1),
    batches: z.number().int().min(1).default(10),
    batchSize: z.number().int().min(1).default(32),
  }).strict().prefault({}),
}).strict();
export type RunConfig = z.infer<typeof RunConfig>;
/** A run config as stored: the model spec resolved. */
export type StoredRunConfig = RunConfig & { model: ModelSpec };
