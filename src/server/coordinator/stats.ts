// The dashboard's read model of one run: versions with their held-out metrics, devices online by tier, leases in
// flight, the staleness histogram of accepted updates, bytes moved, and what each device contributed. Built from a
// handful of aggregate queries (src/server/store) on request, never kept up to date in memory: a run's hot path
// (leases, uploads) pays nothing for it. `buildRunStats` is the pure part, so it is tested on hand-made input.
import type { DeviceProfile } from '../../core/protocol/schemas.ts';
import { PlannerError } from '../../core/planner/errors.ts';
import { tierFor, type PlannerConfig, type Tier } from '../../core/planner/planner.ts';
import type {
  DeviceActivity, LeaseTraffic, MetadataStore, StalenessCount, TrafficTotals, VersionRecord, VersionTraffic,
} from '../store/store.ts';

/** A device counts as online when it was heard from (heartbeat, lease, upload) this recently, or holds an open lease. */
export const ONLINE_WINDOW_MS = 5 * 60_000;

/** Version metrics named `heldOutLoss/<id>` hold the held-out loss on one slice of the task's held-out data (Task.slices). */
export const SLICE_LOSS = 'heldOutLoss/';

export interface VersionPoint {
  version: number;
  createdAt: number;
  /** Updates folded into this version. */
  updates: number;
  /** Held-out metrics, once the evaluator has run on this version. */
  loss?: number;
  accuracy?: number;
  perplexity?: number;
  /** Differentially private runs: epsilon spent up to and including this version (at the run's delta). */
  epsilon?: number;
  /** Tasks with held-out slices (a continual task's eras): held-out loss on each slice, by slice id. */
  slices?: Record<string, number>;
  bytesUp: number;
  bytesDown: number;
}

export interface TierCount {
  tier: string;
  devices: number;
  online: number;
}

export interface DeviceContribution {
  deviceId: string;
  tier: string;
  platform?: string;
  online: boolean;
  /** The last time the device was heard from (heartbeat, lease or upload). */
  lastActive: number;
  openLeases: number;
  updates: number;
  examples: number;
  computeSeconds: number;
  bytesUp: number;
  bytesDown: number;
}

/**
 * Forgetting on one held-out slice, as far as the evaluated versions show it: the current loss minus the best loss any
 * version reached (Chaudhry et al. 2018's "best past minus current", for a loss). The coordinator does not know when a
 * slice's data arrived, so the best is over all versions; an untrained start is never a slice's best anyway.
 */
export interface SliceForgetting {
  slice: string;
  best: number;
  bestVersion: number;
  current: number;
  currentVersion: number;
  /** current - best (>= 0; 0 when the newest evaluation is the best). */
  forgetting: number;
}

export interface RunStats {
  runId: string;
  /** When these statistics were computed (ms since the epoch). */
  at: number;
  head: number;
  totals: TrafficTotals & {
    examples: number;
    computeSeconds: number;
    devices: number;
    devicesOnline: number;
    leasesInFlight: number;
  };
  /** Oldest first; the newest `versions` of the run. */
  versions: VersionPoint[];
  /** Smallest devices first. */
  tiers: TierCount[];
  /** Leases open and not past their deadline, newest first. */
  leases: LeaseTraffic[];
  staleness: StalenessCount[];
  /** Most accepted updates first. */
  devices: DeviceContribution[];
  /** Per held-out slice, in the order the slices first appear; empty for tasks without slices. */
  forgetting: SliceForgetting[];
}

export interface StatsInput {
  runId: string;
  now: number;
  head: number;
  /** Any order; returned oldest first. */
  versions: readonly VersionRecord[];
  traffic: readonly VersionTraffic[];
  totals: TrafficTotals;
  devices: readonly DeviceActivity[];
  leases: readonly LeaseTraffic[];
  staleness: readonly StalenessCount[];
  tierOf: (profile: DeviceProfile) => string;
  /** How many devices the contribution table keeps (tiers and totals count all of `devices`). */
  deviceRows: number;
}

export function buildRunStats(input: StatsInput): RunStats {
  const traffic = new Map(input.traffic.map((t) => [t.version, t]));
  const versions = [...input.versions].sort((a, b) => a.version - b.version).map((v): VersionPoint => {
    const t = traffic.get(v.version);
    const point: VersionPoint = {
      version: v.version, createdAt: v.createdAt, updates: v.updates, bytesUp: t?.bytesUp ?? 0, bytesDown: t?.bytesDown ?? 0,
    };
    if (v.metrics.heldOutLoss !== undefined) point.loss = v.metrics.heldOutLoss;
    if (v.metrics.heldOutAccuracy !== undefined) point.accuracy = v.metrics.heldOutAccuracy;
    if (v.metrics.heldOutPerplexity !== undefined) point.perplexity = v.metrics.heldOutPerplexity;
    if (v.metrics.epsilon !== undefined) point.epsilon = v.metrics.epsilon;
    const slices = Object.entries(v.metrics).filter(([k]) => k.startsWith(SLICE_LOSS)).map(([k, loss]) => [k.slice(SLICE_LOSS.length), loss] as const);
    if (slices.length > 0) point.slices = Object.fromEntries(slices);
    return point;
  });

  const tiers = new Map<string, TierCount>();
  // Tiers are listed smallest first: by the least memory any of their devices has (unknown last).
  const tierMemory = new Map<string, number>();
  let examples = 0;
  let computeSeconds = 0;
  const devices = input.devices.map((d): DeviceContribution => {
    const profile = parseProfile(d.profile);
    const tier = profile === undefined ? 'unknown' : input.tierOf(profile);
    const lastActive = Math.max(d.lastSeen, d.lastLeaseAt ?? 0, d.lastUpdateAt ?? 0);
    const online = d.openLeases > 0 || input.now - lastActive <= ONLINE_WINDOW_MS;
    const count = tiers.get(tier) ?? { tier, devices: 0, online: 0 };
    count.devices++;
    if (online) count.online++;
    tiers.set(tier, count);
    tierMemory.set(tier, Math.min(tierMemory.get(tier) ?? Infinity, profile?.memoryMiB ?? Infinity));
    examples += d.examples;
    computeSeconds += d.computeSeconds;
    const row: DeviceContribution = {
      deviceId: d.deviceId, tier, online, lastActive, openLeases: d.openLeases, updates: d.updates, examples: d.examples,
      computeSeconds: d.computeSeconds, bytesUp: d.bytesUp, bytesDown: d.bytesDown,
    };
    if (profile?.platform !== undefined) row.platform = profile.platform;
    return row;
  });
  const tierList = [...tiers.values()].sort((a, b) => tierMemory.get(a.tier)! - tierMemory.get(b.tier)! || a.tier.localeCompare(b.tier));

  return {
    runId: input.runId,
    at: input.now,
    head: input.head,
    totals: {
      ...input.totals, examples, computeSeconds, devices: devices.length,
      devicesOnline: devices.filter((d) => d.online).length, leasesInFlight: input.leases.length,
    },
    versions,
    tiers: tierList,
    leases: [...input.leases],
    staleness: [...input.staleness],
    devices: devices.slice(0, input.deviceRows),
    forgetting: sliceForgetting(versions),
  };
}

/** Forgetting per slice over the versions' slice losses (oldest first); slices in the order they first appear. */
export function sliceForgetting(versions: readonly VersionPoint[]): SliceForgetting[] {
  const out = new Map<string, SliceForgetting>();
  for (const v of versions) {
    for (const [slice, loss] of Object.entries(v.slices ?? {})) {
      const f = out.get(slice);
      if (f === undefined) {
        out.set(slice, { slice, best: loss, bestVersion: v.version, current: loss, currentVersion: v.version, forgetting: 0 });
        continue;
      }
      if (loss <= f.best) [f.best, f.bestVersion] = [loss, v.version];
      [f.current, f.currentVersion] = [loss, v.version];
      f.forgetting = f.current - f.best;
    }
  }
  return [...out.values()];
}

export interface LoadStatsOptions {
  runId: string;
  now: number;
  head: number;
  tierOf: (profile: DeviceProfile) => string;
  /** Newest versions to include (default 1000). */
  versions?: number;
  /** Rows of the contribution table (default 200). */
  deviceRows?: number;
}

/** Devices beyond this many (by accepted updates) are left out of the tier counts too: the read stays bounded. */
export const MAX_DEVICES_COUNTED = 10_000;
const MAX_LEASES_LISTED = 500;

export async function loadRunStats(store: MetadataStore, o: LoadStatsOptions): Promise<RunStats> {
  const versions = await store.listVersions(o.runId, o.versions ?? 1000);
  const from = versions.length === 0 ? 0 : Math.min(...versions.map((v) => v.version));
  const [traffic, totals, devices, leases, staleness] = await Promise.all([
    store.versionTraffic(o.runId, from, o.head),
    store.trafficTotals(o.runId),
    store.deviceActivity(o.runId, o.now, MAX_DEVICES_COUNTED),
    store.leaseTraffic(o.runId, MAX_LEASES_LISTED, o.now),
    store.stalenessCounts(o.runId, o.head),
  ]);
  return buildRunStats({
    runId: o.runId, now: o.now, head: o.head, versions, traffic, totals, devices, leases, staleness, tierOf: o.tierOf,
    deviceRows: o.deviceRows ?? 200,
  });
}

/**
 * A device's tier: in a run with a planner, the planner's own rung for its memory (what it trains: "full",
 * "width 1/2", "depth 3", or "too small"); otherwise a memory class, the quantity the planner sizes plans by.
 */
export function deviceTier(profile: Pick<DeviceProfile, 'memoryMiB'>, planner?: PlannerConfig): string {
  if (planner !== undefined) {
    try {
      return tierLabel(tierFor(profile.memoryMiB, planner));
    } catch (e) {
      if (e instanceof PlannerError) return 'too small';
      throw e;
    }
  }
  const gib = profile.memoryMiB / 1024;
  if (gib < 1) return 'memory < 1 GiB';
  if (gib < 4) return 'memory 1–4 GiB';
  if (gib < 16) return 'memory 4–16 GiB';
  return 'memory ≥ 16 GiB';
}

function tierLabel(tier: Tier): string {
  switch (tier.kind) {
    case 'full': return 'full';
    case 'width': {
      const n = Math.round(1 / tier.ratio);
      return Math.abs(n * tier.ratio - 1) < 1e-9 ? `width 1/${n}` : `width ${Math.round(tier.ratio * 100)}%`;
    }
    case 'depth': return `depth ${tier.count}`;
    case 'lora': return `LoRA r${tier.rank}`;
  }
}

function parseProfile(text: string): DeviceProfile | undefined {
  try {
    return JSON.parse(text) as DeviceProfile;
  } catch {
    return undefined;
  }
}
