// What a simulation reports. Plain JSON-ready data: results.json holds everything but the per-device columns, which go
// to devices.json (a million devices make for long arrays). `wall` is the only part that depends on the machine; two
// runs with the same config and seed agree on everything else.

/** One evaluated version. */
export interface VersionRecord {
  version: number;
  /** Virtual hours since the start when the version was published. */
  hours: number;
  /** Cumulative bytes sent to devices (weights) and received from them (updates) up to this version. */
  bytesDown: number;
  bytesUp: number;
  /** Leases started and updates folded so far. */
  leases: number;
  updates: number;
  metrics: Record<string, number>;
}

/** One folded update: its staleness, and the weight the strategy actually applied (read back from the accumulator). */
export interface FoldRecord {
  hours: number;
  device: number;
  /** Server version when the update was folded. */
  version: number;
  baseVersion: number;
  staleness: number;
  /** How much of the delta went into the running sum: (sum after - sum before) / delta at the delta's largest entry. */
  weight: number | null;
  /** What the fold added to the accumulator's divisor. */
  mass: number;
}

/** One virtual hour: devices in a session at its end, and what happened during it. */
export interface HourRecord {
  /** The hour's end, in hours since the start. */
  hour: number;
  online: number;
  leases: number;
  updates: number;
  failures: number;
  /** Server version at the hour's end. */
  version: number;
}

/**
 * Why a lease delivered nothing: its device's session ended; the device dropped out; the lease expired before the
 * upload could land; a sync round closed without it (straggler); the plan did not fit in memory; the strategy refused
 * the update (e.g. non-finite after diverged local training).
 */
export type FailureReason = 'session' | 'dropout' | 'expired' | 'straggler' | 'oom' | 'rejected';
export const FAILURE_REASONS: readonly FailureReason[] = ['session', 'dropout', 'expired', 'straggler', 'oom', 'rejected'];

export interface SimTotals {
  virtualHours: number;
  events: number;
  leases: number;
  /** Updates folded into a version (or into the last, unfinished buffer). */
  completed: number;
  failures: Record<FailureReason, number>;
  /** Leases by plan ("full", "width 1/2", ...). */
  plans: Record<string, number>;
  /** Times a device was offered work and the plan policy had none for it (e.g. too little memory). */
  refusals: number;
  /** Devices that never got a lease because of the plan policy. */
  devicesNeverLeased: number;
  /** Leases still out when the run stopped: leases = completed + failures + inFlightAtEnd. */
  inFlightAtEnd: number;
  versions: number;
  bytesDown: number;
  bytesUp: number;
  /** Device compute time, seconds: in leases whose update was folded, and in leases that failed or were dropped. */
  computeSecondsUseful: number;
  computeSecondsWasted: number;
}

export interface SimResult {
  name: string;
  mode: 'full' | 'fast';
  seed: number;
  aggregation: string;
  population: {
    devices: number;
    referenceExamplesPerSecond: number;
    tiers: Array<Record<string, string | number>>;
  };
  model: { parameters: number; foldedLength: number; memoryMiB: number; downloadBytes: number; uploadBytes: number };
  metrics: readonly string[];
  versions: VersionRecord[];
  folds: FoldRecord[];
  staleness: { folds: number; mean: number; max: number; histogram: number[] } | null;
  /** Sync mode; `extended` counts deadlines that passed below minUpdates (the round went on). */
  rounds: { started: number; closedFull: number; closedAtDeadline: number; extended: number } | null;
  target: { metric: string; value: number; reached: boolean; version?: number; hours?: number; bytes?: number } | null;
  /** Set when a server step produced non-finite parameters; the run stopped there. */
  diverged: { hours: number; version: number; message: string } | null;
  /** Set when no version appeared for STALL_HOURS of virtual time and no hours limit was given; the run stopped there. */
  stalled?: { hours: number; version: number; message: string } | null;
  hourly: HourRecord[];
  totals: SimTotals;
  /** Attacker devices, when the config has an attack: how many, and how many poisoned updates were folded. */
  attack?: { kind: string; scale: number; fraction: number; devices: number; foldedPoisoned: number; foldedHonest: number } | null;
  wall: { seconds: number; eventsPerSecond: number; leasesPerSecond: number; heapMiB: number };
}

/** Per-device columns (index = device). */
export interface DeviceColumns {
  tier: string[];
  examplesPerSecond: number[];
  memoryMiB: number[];
  upMbps: number[];
  downMbps: number[];
  leases: number[];
  completed: number[];
  refusals: number[];
  failures: Record<FailureReason, number[]>;
}
