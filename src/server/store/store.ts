// Persistence behind interfaces, so strategies and the coordinator never see an engine. The embedded default is
// SQLite (metadata, WAL) plus content-addressed files (weights, update blobs); a scale-out deployment implements the
// same two interfaces on Postgres and S3-compatible storage.
//
// The coordinator's durability rests on three transactions, each one call here:
//   acceptUpdate  - the lease is consumed and the update recorded together (after its blob is durable): "accepted"
//   commitVersion - a new version, the updates folded into it, and the run's head move together
//   createLease   - a lease exists only once recorded
// Anything not committed by one of them never happened, which is what makes recovery after kill -9 exact.
import type { IssuedPlans } from '../../core/planner/planner.ts';

export type { IssuedPlans };

/** Immutable bytes stored under the sha256 (lowercase hex) of their content. */
/** A device whose delta is inside a secure round's sum. */
export interface SecureMember {
  leaseId: string;
  deviceId: string;
  examples: number;
  bytes: number;
}

export interface BlobStore {
  /** Stores bytes durably (written, fsynced, renamed into place) and returns their hash. Idempotent. */
  put(bytes: Uint8Array): Promise<string>;
  /** The bytes, verified against their hash. Throws BlobNotFoundError or CorruptBlobError. */
  get(hash: string): Promise<Uint8Array>;
  has(hash: string): Promise<boolean>;
  /** Removes a blob; a missing blob is not an error. */
  delete(hash: string): Promise<void>;
}

export type RunStatus = 'active' | 'paused';

export interface RunRecord {
  id: string;
  name: string;
  /** The validated run config, as JSON text (the coordinator parses it). */
  config: string;
  /** sha256 hex of the run's join token; the token itself is never stored. */
  joinTokenHash: string;
  status: RunStatus;
  /** The newest committed version. */
  head: number;
  createdAt: number;
}

export interface VersionRecord {
  runId: string;
  version: number;
  parent: number | null;
  /** Blob hash of the weights (safetensors). */
  paramsHash: string;
  /** Blob hash of the strategy's server state (optimizer slots, safetensors), or null when it has none. */
  stateHash: string | null;
  createdAt: number;
  /** Number of updates folded into this version. */
  updates: number;
  /** Evaluation and aggregation metrics; filled in after commit as they become known. */
  metrics: Record<string, number>;
  /** A version that grew the model: its GrowthRecord (src/core/growth/spec.ts) as JSON text (version lineage). */
  growth?: string;
  /**
   * Runs with a downlink codec (src/core/codecs/downlink.ts): the blob hash and size of the encoded step from the
   * parent, which a device holding the parent adds to rebuild this version. Absent for other versions.
   */
  downlinkHash?: string;
  downlinkBytes?: number;
}

export interface DeviceRecord {
  id: string;
  runId: string;
  tokenHash: string;
  /** DeviceProfile as JSON text. */
  profile: string;
  registeredAt: number;
  lastSeen: number;
}

export type LeaseStatus = 'open' | 'used' | 'expired';

export interface LeaseRecord {
  id: string;
  runId: string;
  deviceId: string;
  baseVersion: number;
  /** The Lease as sent to the device (plan, recipe), as JSON text. */
  body: string;
  issuedAt: number;
  deadline: number;
  status: LeaseStatus;
}

export interface UpdateRecord {
  /** Acceptance order within the whole store; recovery re-folds pending updates in this order. */
  seq: number;
  runId: string;
  leaseId: string;
  deviceId: string;
  baseVersion: number;
  blobHash: string;
  numExamples: number;
  localSteps: number;
  /** Device-reported metrics (train loss, seconds), JSON text. */
  metrics: string;
  bytes: number;
  acceptedAt: number;
  /** The version this update was folded into, or null while pending. */
  foldedInto: number | null;
}

export type NewUpdate = Omit<UpdateRecord, 'seq' | 'foldedInto'>;

/** One weights download as served: a 200 with its body (a 304 moves no weights and is never recorded). */
export interface NewDownload {
  runId: string;
  version: number;
  /** The device that asked, when it authenticated; null for an anonymous download (counted for the run and version). */
  deviceId: string | null;
  bytes: number;
  at: number;
}

/** Bytes moved for a run: up = accepted update bodies, down = weights bodies served. */
export interface TrafficTotals {
  bytesUp: number;
  bytesDown: number;
  /** Accepted updates and served downloads. */
  updates: number;
  downloads: number;
}

/** Bytes of one version: up = updates folded into it; down = its weights served. */
export interface VersionTraffic extends TrafficTotals {
  version: number;
}

/** What one device has done in a run (its contribution and its traffic). */
export interface DeviceActivity {
  deviceId: string;
  /** DeviceProfile as JSON text. */
  profile: string;
  registeredAt: number;
  lastSeen: number;
  /** When the newest of its open leases was issued (null without one). */
  lastLeaseAt: number | null;
  lastUpdateAt: number | null;
  /** Leases open and not past their deadline at `now`. */
  openLeases: number;
  /** Accepted updates, the examples they trained on, and the training seconds they reported (metric trainSeconds). */
  updates: number;
  examples: number;
  computeSeconds: number;
  bytesUp: number;
  bytesDown: number;
  downloads: number;
}

/** One lease and the bytes it moved: its base weights served while it was open, and its update. */
export interface LeaseTraffic {
  leaseId: string;
  deviceId: string;
  baseVersion: number;
  issuedAt: number;
  deadline: number;
  status: LeaseStatus;
  bytesUp: number;
  bytesDown: number;
}

export interface StalenessCount {
  /** Versions committed between an update's base and the version it was (or will be) folded into, minus one. */
  staleness: number;
  updates: number;
}

export interface MetadataStore {
  createRun(run: RunRecord, initial: VersionRecord): Promise<void>;
  getRun(id: string): Promise<RunRecord | undefined>;
  listRuns(): Promise<RunRecord[]>;
  setRunStatus(id: string, status: RunStatus): Promise<void>;

  registerDevice(device: DeviceRecord): Promise<void>;
  getDevice(runId: string, id: string): Promise<DeviceRecord | undefined>;
  touchDevice(runId: string, id: string, at: number, profile?: string): Promise<void>;
  countDevices(runId: string): Promise<number>;

  createLease(lease: LeaseRecord): Promise<void>;
  getLease(runId: string, id: string): Promise<LeaseRecord | undefined>;
  /** Marks open leases past their deadline as expired; returns how many. */
  expireLeases(runId: string, now: number): Promise<number>;
  countOpenLeases(runId: string): Promise<number>;
  /** Every lease the run has issued, counted by plan shape (kind, width ratio, depth block count). */
  countIssuedPlans(runId: string): Promise<IssuedPlans[]>;

  /**
   * In one transaction: checks the lease is open, not past its deadline and the device's, marks it used, and records
   * the update. Throws LeaseStateError (with the lease's actual state) otherwise, changing nothing.
   */
  acceptUpdate(update: NewUpdate, now: number): Promise<UpdateRecord>;
  /**
   * A secure-aggregation round's sum, in one transaction: every member lease (open or past its deadline: the round
   * waited for its masked input before that deadline, and unmasking comes after) is marked used, each member's device
   * is credited with one update of its examples and bytes, and one update row records the sum under `sum.leaseId`
   * (one of the members'). Throws LeaseStateError, changing nothing, when a lease is missing, another device's, or
   * already used.
   */
  acceptSecureSum(sum: NewUpdate, members: readonly SecureMember[], now: number): Promise<UpdateRecord>;
  /** Updates not yet folded into a version, in acceptance order. */
  pendingUpdates(runId: string): Promise<UpdateRecord[]>;
  /** In one transaction: records the version, marks `folded` updates as folded into it, and moves the run's head. */
  commitVersion(version: VersionRecord, folded: readonly number[]): Promise<void>;
  /**
   * Model growth, in one transaction: records the grown version (with its lineage) as the new head, replaces the
   * run's config (its model spec changed) and expires every open lease (their updates have the old shape). Refuses
   * while acknowledged updates are pending (they must be folded into the old shape first), changing nothing.
   */
  commitGrowth(version: VersionRecord & { growth: string }, config: string): Promise<{ expiredLeases: number }>;
  /** The newest version that grew the model, with its lineage JSON; undefined when the model never grew. */
  latestGrowth(runId: string): Promise<{ version: number; growth: string } | undefined>;
  getVersion(runId: string, version: number): Promise<VersionRecord | undefined>;
  /** Newest first, at most `limit`. */
  listVersions(runId: string, limit: number): Promise<VersionRecord[]>;
  /** Merges metrics into a committed version's metrics. */
  setVersionMetrics(runId: string, version: number, metrics: Record<string, number>): Promise<void>;

  // Byte accounting and the dashboard's read model (src/server/coordinator/stats.ts). Reads are aggregate queries.
  /** Records a served download, attributed to the device's open lease on that version if it has one. */
  recordDownload(download: NewDownload): Promise<{ leaseId: string | null }>;
  trafficTotals(runId: string): Promise<TrafficTotals>;
  /** Versions in [from, to] that moved any bytes, oldest first. */
  versionTraffic(runId: string, from: number, to: number): Promise<VersionTraffic[]>;
  /** Devices, most accepted updates first, at most `limit`; `now` decides which leases are still open. */
  deviceActivity(runId: string, now: number, limit: number): Promise<DeviceActivity[]>;
  /** Leases newest first, at most `limit`; with `openAt`, only those open and not past their deadline then. */
  leaseTraffic(runId: string, limit: number, openAt?: number): Promise<LeaseTraffic[]>;
  /** Accepted updates counted by staleness; pending updates count against `head`, the version they will follow. */
  stalenessCounts(runId: string, head: number): Promise<StalenessCount[]>;

  close(): Promise<void>;
}

export class StoreError extends Error {
  override readonly name: string = 'StoreError';
}
export class BlobNotFoundError extends StoreError {
  override readonly name = 'BlobNotFoundError';
}
/** A blob whose content does not hash to its name: a torn write or bit rot. Never served or loaded. */
export class CorruptBlobError extends StoreError {
  override readonly name = 'CorruptBlobError';
}
export class LeaseStateError extends StoreError {
  override readonly name = 'LeaseStateError';
  constructor(readonly state: LeaseStatus | 'missing' | 'past-deadline' | 'wrong-device', message: string) {
    super(message);
  }
}
