// The coordinator's HTTP API (v1) as zod schemas: the one contract between devices, the dashboard and the server.
// Request bodies are parsed with these on the server; responses are typed with them on the client.
import { z } from 'zod';
import { SecAggConfigSchema } from '../secagg/config.ts';
import { CodecSpec } from '../codecs/spec.ts';
import { ZoSettings } from '../zo/settings.ts';

const id = z.string().min(1).max(128).regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only');
export const RunId = id;
export const DeviceId = id;
export const LeaseId = id;

/** What a device reports about itself when it registers, and refreshes on heartbeats. */
export const DeviceProfile = z.object({
  /** Memory the device may spend on training, in MiB. */
  memoryMiB: z.number().positive().max(1 << 24),
  /** Measured training throughput on this run's model, in examples per second. */
  examplesPerSecond: z.number().positive().max(1e9),
  /** Measured or declared bandwidth, in Mbit/s. */
  uplinkMbps: z.number().positive().max(1e6).optional(),
  downlinkMbps: z.number().positive().max(1e6).optional(),
  /** Free-form platform label, e.g. "node 20 linux x64" or a browser's user agent; for dashboards only. */
  platform: z.string().max(200).optional(),
  /** Which shard of the run's data this device holds, where the task is sharded (simulated populations). */
  shard: z.number().int().min(0).optional(),
}).strict();
export type DeviceProfile = z.infer<typeof DeviceProfile>;

export const RegisterRequest = z.object({ profile: DeviceProfile }).strict();
export const RegisterResponse = z.object({ deviceId: DeviceId, deviceToken: z.string() });
export type RegisterResponse = z.infer<typeof RegisterResponse>;

export const HeartbeatRequest = z.object({ profile: DeviceProfile.optional() }).strict();

/**
 * Which part of the model a lease trains (src/core/submodel/submodel.ts cuts and merges it; src/core/planner picks it):
 * - full: the whole model;
 * - width: every hidden dimension cut to ceil(ratio * n) units (GPT: whole heads), a window of units that starts at
 *   (offset + i * shift) mod n in the i-th dimension: offset = shift = 0 is HeteroFL's static slice (Diao et al.,
 *   ICLR 2021), a moving offset FedRolex's rolling window (Alam et al., NeurIPS 2022);
 * - depth: `count` transformer blocks from `start` (wrapping around, kept in model order), the rest skipped;
 * - lora: the whole model frozen at the lease's base version, and low-rank adapters (Hu et al. 2021) trained on the
 *   `targets` weight matrices: W + (alpha / rank) A B with A [in, rank], B [rank, out]. The upload holds only the
 *   adapters (`P.lora_A`, `P.lora_B` for target `P.weight`; src/core/lora.ts), and the coordinator folds their product.
 */
export const Plan = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('full') }),
  z.object({
    kind: z.literal('width'),
    ratio: z.number().gt(0).max(1),
    offset: z.number().int().min(0).max(2 ** 31).default(0),
    /** Absent means 0 (FedRolex: every dimension's window starts at the same offset). */
    shift: z.number().int().min(0).max(2 ** 31).optional(),
    /** HeteroFL's scaler: the submodel rescales what its narrowed layers sum over (MLPs; see widthSubSpec). */
    scaler: z.boolean().optional(),
  }).strict(),
  z.object({ kind: z.literal('depth'), start: z.number().int().min(0).max(2 ** 31), count: z.number().int().min(1).max(2 ** 31) }).strict(),
  z.object({
    kind: z.literal('lora'),
    rank: z.number().int().min(1).max(65_536),
    alpha: z.number().positive().max(1e6),
    /** Names of the adapted weight matrices (2-D parameters named `*.weight`), in the model's order. */
    targets: z.array(z.string().min(1).max(256)).min(1).max(100_000),
  }).strict(),
]);
export type Plan = z.infer<typeof Plan>;

/** How a device trains inside a lease. */
export const Recipe = z.object({
  localSteps: z.number().int().min(1).max(100_000).default(20),
  batchSize: z.number().int().min(1).max(65_536).default(16),
  lr: z.number().positive().default(2e-3),
  optimizer: z.enum(['adamw', 'sgd']).default('adamw'),
  /** FedProx proximal coefficient (0: plain local training). */
  proximalMu: z.number().min(0).default(0),
  clipGradNorm: z.number().positive().optional(),
  /**
   * Zeroth-order training (MeZO; FedKSeed's seed pool; src/core/zo): the device runs forward passes only, with
   * `localSteps` two-sided perturbation steps at `lr`, and uploads (seed index, projected gradient) pairs that the
   * coordinator replays into the delta. Absent: first-order training with `optimizer`. The lease's codec does not apply.
   */
  zo: ZoSettings.optional(),
});
export type Recipe = z.infer<typeof Recipe>;

export const Lease = z.object({
  leaseId: LeaseId,
  runId: RunId,
  baseVersion: z.number().int().min(0),
  /** Content hash (sha256 hex) of the base version's weights: devices cache weights by it. */
  baseHash: z.string().regex(/^[0-9a-f]{64}$/),
  plan: Plan,
  recipe: Recipe,
  /** Milliseconds since the epoch (the coordinator's clock) after which the coordinator rejects the update. */
  deadline: z.number().int(),
  /** The same deadline as milliseconds from when the lease was issued, for devices whose clocks are off. */
  ttlMs: z.number().int().min(0),
  /**
   * The codec the update must be encoded with (src/core/codecs); the coordinator refuses any other. Absent: dense
   * fp32 safetensors, which is all a device that predates codecs sends.
   */
  codec: CodecSpec.optional(),
  /**
   * A seat in a secure-aggregation round (runs in aggregation mode 'secure'): the update is not uploaded but sent
   * masked through the round's session as client `clientId` (src/device/secure-upload.ts).
   */
  secure: z.object({ sessionId: z.string().min(1).max(200), clientId: z.number().int().min(1), config: SecAggConfigSchema }).optional(),
});
export type Lease = z.infer<typeof Lease>;

/** A lease, or why there is none right now and when to ask again. */
export const LeaseResponse = z.union([
  z.object({ lease: Lease }),
  z.object({ lease: z.null(), reason: z.string(), retryAfterMs: z.number().int().min(0) }),
]);
export type LeaseResponse = z.infer<typeof LeaseResponse>;

export const UpdateAccepted = z.object({ accepted: z.literal(true), updateId: z.number().int(), runVersion: z.number().int() });
export type UpdateAccepted = z.infer<typeof UpdateAccepted>;

export const VersionInfo = z.object({
  runId: RunId,
  version: z.number().int().min(0),
  parent: z.number().int().min(0).nullable(),
  hash: z.string(),
  createdAt: z.number().int(),
  updates: z.number().int().min(0),
  metrics: z.record(z.string(), z.number()),
});
export type VersionInfo = z.infer<typeof VersionInfo>;
