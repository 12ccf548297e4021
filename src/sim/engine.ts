// The discrete-event simulator: devices come and go on a virtual clock, take leases, train (really, or by a cost
// model), upload, fail; the server folds what arrives with the real strategies (createStrategy) and publishes
// versions. One event queue orders everything; nothing waits on wall time.
//
// Events and what they do:
//   SESSION_START  a device becomes available (idle, charging, on Wi-Fi) inside its daily window: it checks in.
//   SESSION_END    it becomes unavailable; a lease it holds is lost ('session').
//   CHECK_IN       a device that backed off after a failed lease asks again.
//   TRAIN_DONE     a lease's local training ends: the update is computed now (from the lease's base version).
//   ARRIVE         the update's upload ends: the strategy folds it; staleness = current version - base version.
//   LEASE_FAIL     a lease ends early: a dropout, or out of memory when training starts.
//   ROUND_DEADLINE sync mode: the round closes with what it has, or is extended below minUpdates.
// Leases start when the server hands work to a waiting device: at check-in in async mode (while fewer than
// `concurrency` leases are out), at a round's start in sync mode. A lease's timeline is fixed when it starts:
//   start -> rtt + download (bytes / downlink; nothing if the device has this version cached) -> train
//   (steps * batch / examples per second) -> upload (bytes / uplink) -> arrive.
// Its failures are drawn then too (a dropout time; the session's end is known when the session starts), so a lease
// that cannot finish is never trained: the simulation is the same, only faster. Downloaded bytes count when the
// lease starts, uploaded bytes when an update arrives; device compute counts as useful for folded updates and as
// wasted for leases that failed or were dropped as stragglers.
import { Rng } from '../core/rng.ts';
import { compressVersion } from '../core/codecs/downlink.ts';
import { chainDeltaSize } from '../core/codecs/weights-delta.ts';
import { ChangeTracker, compressUpload, DELTA_HEADER_ALLOWANCE, uploadBytes as codedUploadBytes, type Residuals } from './codec.ts';
import type { Coverage } from '../core/coverage.ts';
import { attackRng, attackScale, chooseAttackers, poison } from './attack.ts';
import type { Accumulator } from '../core/strategies/accumulator.ts';
import { createStrategy } from '../core/strategies/config.ts';
import { StrategyError, type ClientUpdate, type ServerState, type Strategy } from '../core/strategies/types.ts';
import { InvalidUpdateError } from '../core/strategies/validate-update.ts';
import { DAY, EventQueue, HOUR, sinceDaily, type SimEvent } from './clock.ts';
import type { SimBackend } from './backend.ts';
import { metricGoal, type SimConfig } from './config.ts';
import { planLabel, type AssignPlan, type SimDevice, type SimPlan } from './plans.ts';
import { summarizePopulation, type Population } from './population.ts';
import {
  FAILURE_REASONS, type DeviceColumns, type FailureReason, type FoldRecord, type HourRecord, type SimResult, type SimTotals,
  type VersionRecord,
} from './results.ts';

const SESSION_START = 0;
const SESSION_END = 1;
const CHECK_IN = 2;
const TRAIN_DONE = 3;
const ARRIVE = 4;
const LEASE_FAIL = 5;
const ROUND_DEADLINE = 6;

// Device states.
const OFFLINE = 0;
/** In a session, waiting for work (in the pool). */
const IDLE = 1;
const LEASED = 2;
/** In a session, waiting out retrySeconds after a failed lease. */
const BACKOFF = 3;
/** In a session, but the plan policy has no work for it until its next session. */
const REFUSED = 4;

/** Virtual hours without a new version after which a run with no hours limit is stopped as stalled. */
const STALL_HOURS = 24 * 30;

const STALENESS_BUCKETS = 1024;

interface Lease {
  readonly id: number;
  readonly device: number;
  readonly baseVersion: number;
  readonly plan: SimPlan;
  readonly trainStart: number;
  readonly trainEnd: number;
  readonly arrive: number;
  readonly computeSec: number;
  readonly uploadBytes: number;
  /** When and why the lease will fail (Infinity and undefined when it will deliver). */
  readonly failAt: number;
  readonly failReason: FailureReason | undefined;
  /** Sync mode: the round the lease belongs to. */
  readonly round: number;
  update: ClientUpdate | undefined;
  /** The update is an attacker's (poisoned or replayed). */
  poisoned: boolean;
}

export interface SimProgress {
  hours: number;
  events: number;
  leases: number;
  versions: number;
  /** The latest evaluated value of the backend's first metric. */
  metric: number | undefined;
}

export interface EngineOptions {
  config: SimConfig;
  population: Population;
  backend: SimBackend;
  assignPlan: AssignPlan;
  /** Bytes and memory of the full model, for the results (the plans decide per lease). */
  model: { parameters: number; memoryMiB: number };
  onProgress?: (p: SimProgress) => void;
  /** Events between progress reports (default 16384). */
  progressEvery?: number;
}

/** Devices waiting for work: O(1) add, remove and uniform random pick. */
class DevicePool {
  private readonly members: Int32Array;
  private readonly pos: Int32Array;
  size = 0;

  constructor(n: number) {
    this.members = new Int32Array(n);
    this.pos = new Int32Array(n).fill(-1);
  }

  add(d: number): void {
    if (this.pos[d]! >= 0) return;
    this.pos[d] = this.size;
    this.members[this.size++] = d;
  }

  remove(d: number): void {
    const p = this.pos[d]!;
    if (p < 0) return;
    const last = this.members[--this.size]!;
    this.members[p] = last;
    this.pos[last] = p;
    this.pos[d] = -1;
  }

  /** Removes and returns a uniformly random member; the pool must not be empty. */
  take(rng: Rng): number {
    const d = this.members[rng.int(this.size)]!;
    this.remove(d);
    return d;
  }
}

export class Simulation {
  private readonly cfg: SimConfig;
  private readonly pop: Population;
  private readonly backend: SimBackend;
  private readonly assignPlan: AssignPlan;
  private readonly strategy: Strategy;
  private readonly queue: EventQueue;
  private readonly pool: DevicePool;
  private readonly availRng: Rng;
  private readonly leaseRng: Rng;

  // Per-device state and counters, one typed array per field.
  private readonly state: Uint8Array;
  private readonly session: Int32Array;
  private readonly sessionEnd: Float64Array;
  private readonly leaseOf: Int32Array;
  private readonly cachedVersion: Int32Array;
  private readonly leaseCount: Int32Array;
  private readonly completedCount: Int32Array;
  private readonly refusalCount: Int32Array;
  private readonly failureCount: Record<FailureReason, Int32Array>;

  private now = 0;
  private server: ServerState;
  private acc: Accumulator;
  /** Parameters of versions that leases in flight started from (and the current one), with their lease counts. */
  private readonly versions = new Map<number, { params: Float32Array; refs: number }>();
  private readonly leases = new Map<number, Lease>();
  /** Leases per plan label ("full", "width 1/2", ...). */
  private readonly planCounts = new Map<string, number>();
  private nextLeaseId = 0;
  private inFlight = 0;
  private stopped = false;
  private lastEvaluated = -1;
  private lastMetric: number | undefined;
  /** Attacker devices (1) when the config has an attack, their stream, and what stale-replay attackers replay. */
  private readonly attackers: Uint8Array | null;
  private readonly attackStream: Rng;
  private readonly replays = new Map<number, { delta: Float32Array; coverage: Coverage | undefined }>();
  /** Per device, what top-k has not sent yet (network.codec with topK): error feedback, as devices keep it. */
  private readonly residuals: Residuals = new Map();
  /** network.weightDeltas in full mode: which version last changed each parameter. */
  private changes: ChangeTracker | undefined;
  /** network.downlinkCodec: the encoded size of each version's compressed step (index = version; 0 has none). */
  private readonly stepBytes: number[] = [0];
  private readonly attackFolds = { poisoned: 0, honest: 0 };

  private readonly totals: SimTotals;
  private readonly versionRecords: VersionRecord[] = [];
  private readonly folds: FoldRecord[] = [];
  private readonly stalenessHist = new Float64Array(STALENESS_BUCKETS + 1);
  private stalenessSum = 0;
  private stalenessMax = 0;
  private stalenessFolds = 0;
  private readonly rounds = { started: 0, closedFull: 0, closedAtDeadline: 0, extended: 0 };
  private roundOpen = false;
  private round = 0;
  private roundReceived = 0;
  private target: SimResult['target'];
  private diverged: SimResult['diverged'] = null;
  private stalled: SimResult['stalled'] = null;
  /** Virtual time of the newest version (or of the start). */
  private lastVersionAt = 0;
  /** Devices in a session now. */
  private online = 0;
  private nextHourAt = HOUR;
  private readonly hourly: HourRecord[] = [];
  private readonly hourStart = { leases: 0, completed: 0, failures: 0 };

  constructor(private readonly o: EngineOptions) {
    this.cfg = o.config;
    this.pop = o.population;
    this.backend = o.backend;
    this.assignPlan = o.assignPlan;
    const n = this.pop.size;
    this.strategy = createStrategy(this.cfg.aggregation.strategy);
    this.queue = new EventQueue(2 * n + 64);
    this.pool = new DevicePool(n);
    // Separate streams per purpose: changing how leases draw dropouts does not reshuffle everyone's sessions.
    const root = new Rng(this.cfg.seed ^ 0x5eed51);
    this.availRng = root.fork();
    this.leaseRng = root.fork();
    this.state = new Uint8Array(n);
    this.session = new Int32Array(n);
    this.sessionEnd = new Float64Array(n);
    this.leaseOf = new Int32Array(n).fill(-1);
    this.cachedVersion = new Int32Array(n).fill(-1);
    this.leaseCount = new Int32Array(n);
    this.completedCount = new Int32Array(n);
    this.refusalCount = new Int32Array(n);
    this.failureCount = Object.fromEntries(FAILURE_REASONS.map((r) => [r, new Int32Array(n)])) as Record<FailureReason, Int32Array>;
    // A stream of its own (not a fork of root): configs without an attack draw exactly as before.
    this.attackStream = attackRng(this.cfg.seed);
    const atk = this.cfg.attack;
    this.attackers = atk === undefined ? null : chooseAttackers(atk.fraction, n, this.attackStream);
    const params = this.backend.initialParams();
    if (params.length !== this.backend.length) throw new RangeError(`backend gave ${params.length} parameters, declared ${this.backend.length}`);
    this.server = this.strategy.init(params);
    this.acc = this.strategy.begin(this.server);
    this.versions.set(0, { params: this.server.params, refs: 0 });
    this.totals = {
      virtualHours: 0, events: 0, leases: 0, completed: 0,
      failures: { session: 0, dropout: 0, expired: 0, straggler: 0, oom: 0, rejected: 0 }, plans: {},
      refusals: 0, devicesNeverLeased: 0, inFlightAtEnd: 0, versions: 0, bytesDown: 0, bytesUp: 0, computeSecondsUseful: 0, computeSecondsWasted: 0,
    };
    const t = this.cfg.target;
    this.target = t === undefined ? null : { metric: t.metric, value: t.value, reached: false };
    if (t !== undefined && !this.backend.metrics.includes(t.metric)) {
      throw new RangeError(`target metric '${t.metric}' is not one of this mode's metrics (${this.backend.metrics.join(', ')})`);
    }
  }

  /** Runs until a stop limit; returns the results (per-device columns via deviceColumns()). */
  async run(): Promise<SimResult> {
    const wallStart = performance.now();
    const stopTime = this.cfg.stop.hours === undefined ? Infinity : this.cfg.stop.hours * HOUR;
    for (let d = 0; d < this.pop.size; d++) this.scheduleFirstSession(d);
    await this.evaluate();
    const ev: SimEvent = { time: 0, kind: 0, device: 0, data: 0 };
    const every = this.o.progressEvery ?? 16384;
    try {
      while (!this.stopped && this.queue.peekTime() <= stopTime && this.queue.pop(ev)) {
        if (ev.time >= this.nextHourAt) this.closeHours(ev.time);
        // A run limited by versions alone would go on forever when no version can ever appear (e.g. a sync cohort as
        // large as the devices ever online at once): stop with a diagnosis instead of filling memory with hours.
        if (!Number.isFinite(stopTime) && ev.time - this.lastVersionAt > STALL_HOURS * HOUR) {
          this.stalled = {
            hours: ev.time / HOUR, version: this.server.version,
            message: `no version in ${STALL_HOURS} virtual hours (${this.totals.leases} leases so far): the population cannot make progress with this config (in sync mode, are \`cohort\` devices ever online and waiting at once?)`,
          };
          break;
        }
        this.now = ev.time;
        this.totals.events++;
        const pending = this.handle(ev);
        if (pending !== undefined) await pending;
        if (this.o.onProgress !== undefined && this.totals.events % every === 0) this.o.onProgress(this.progress());
      }
      if (!this.stopped && Number.isFinite(stopTime)) this.now = stopTime;
    } catch (e) {
      // A server step that overflows (too much staleness for the step size, too high a learning rate) is a result
      // of the configuration, not a bug: report where it happened and keep what was measured up to there.
      if (!(e instanceof StrategyError)) throw e;
      this.diverged = { hours: this.now / HOUR, version: this.server.version, message: e.message };
    }
    if (this.lastEvaluated !== this.server.version) await this.evaluate();
    this.o.onProgress?.(this.progress());
    const seconds = (performance.now() - wallStart) / 1000;
    return this.result(seconds);
  }

  /** Records every whole virtual hour that ends at or before t: the diurnal pattern, as the run saw it. */
  private closeHours(t: number): void {
    while (t >= this.nextHourAt) {
      const failures = FAILURE_REASONS.reduce((a, r) => a + this.totals.failures[r], 0);
      this.hourly.push({
        hour: this.nextHourAt / HOUR, online: this.online, leases: this.totals.leases - this.hourStart.leases,
        updates: this.totals.completed - this.hourStart.completed, failures: failures - this.hourStart.failures, version: this.server.version,
      });
      Object.assign(this.hourStart, { leases: this.totals.leases, completed: this.totals.completed, failures });
      this.nextHourAt += HOUR;
    }
  }

  private progress(): SimProgress {
    return { hours: this.now / HOUR, events: this.totals.events, leases: this.totals.leases, versions: this.server.version, metric: this.lastMetric };
  }

  private handle(ev: SimEvent): Promise<void> | undefined {
    const d = ev.device;
    switch (ev.kind) {
      case SESSION_START: return this.sessionStart(d);
      case SESSION_END: return this.sessionEndEvent(d);
      case CHECK_IN:
        if (this.state[d] === BACKOFF && this.session[d] === ev.data) {
          this.state[d] = IDLE;
          return this.checkIn(d);
        }
        return undefined;
      case TRAIN_DONE: return this.trainDone(ev.data);
      case ARRIVE: {
        const lease = this.leases.get(ev.data);
        return lease === undefined ? undefined : this.arrive(lease);
      }
      case LEASE_FAIL: {
        const lease = this.leases.get(ev.data);
        if (lease === undefined) return undefined;
        return this.fail(lease, lease.failReason!);
      }
      case ROUND_DEADLINE:
        return this.roundOpen && ev.data === this.round ? this.closeRound('deadline') : undefined;
      default:
        throw new Error(`unknown event kind ${ev.kind}`);
    }
  }

  // ---- availability ----

  private inWindow(d: number, t: number): boolean {
    const len = this.pop.windowSec[d]!;
    return len >= DAY || sinceDaily(t, this.pop.windowStartSec[d]!) < len;
  }

  /** The next time at or after t that the device's window opens (t itself when it is open). */
  private windowOpenAtOrAfter(d: number, t: number): number {
    if (this.inWindow(d, t)) return t;
    return t + (DAY - sinceDaily(t, this.pop.windowStartSec[d]!));
  }

  private windowEnd(d: number, t: number): number {
    const len = this.pop.windowSec[d]!;
    return len >= DAY ? Infinity : t - sinceDaily(t, this.pop.windowStartSec[d]!) + len;
  }

  private exp(rng: Rng, mean: number): number {
    return mean <= 0 ? 0 : -mean * Math.log(1 - rng.next());
  }

  private scheduleFirstSession(d: number): void {
    // Start in the steady state of the alternating session/gap process: a device inside its window at t = 0 is in a
    // session with probability session / (session + gap), else part-way through a gap (both exponential, so the
    // remaining part has the same distribution as a whole one).
    const tier = this.pop.tiers[this.pop.tier[d]!]!;
    let t = 0;
    if (this.inWindow(d, 0)) {
      const inSession = this.availRng.next() < tier.meanSessionSec / (tier.meanSessionSec + tier.meanGapSec);
      if (!inSession) t = this.exp(this.availRng, tier.meanGapSec);
    }
    this.queue.push(this.windowOpenAtOrAfter(d, t), SESSION_START, d);
  }

  private sessionStart(d: number): Promise<void> | undefined {
    if (!this.inWindow(d, this.now)) {
      // A gap ran past the window's end: the next session opens with the next window.
      this.queue.push(this.windowOpenAtOrAfter(d, this.now), SESSION_START, d);
      return undefined;
    }
    const tier = this.pop.tiers[this.pop.tier[d]!]!;
    const end = Math.min(this.now + Math.max(1, this.exp(this.availRng, tier.meanSessionSec)), this.windowEnd(d, this.now));
    this.session[d]!++;
    this.online++;
    this.sessionEnd[d] = end;
    this.queue.push(end, SESSION_END, d, this.session[d]!);
    this.state[d] = IDLE;
    return this.checkIn(d);
  }

  private sessionEndEvent(d: number): Promise<void> | undefined {
    let pending: Promise<void> | undefined;
    const leaseId = this.leaseOf[d]!;
    if (leaseId >= 0) pending = this.fail(this.leases.get(leaseId)!, 'session');
    this.pool.remove(d);
    this.state[d] = OFFLINE;
    this.online--;
    const tier = this.pop.tiers[this.pop.tier[d]!]!;
    this.queue.push(this.windowOpenAtOrAfter(d, this.now + this.exp(this.availRng, tier.meanGapSec)), SESSION_START, d);
    return pending;
  }

  // ---- leases ----

  /** A device in a session asks for work. */
  private checkIn(d: number): Promise<void> | undefined {
    this.pool.add(d);
    if (this.cfg.aggregation.mode === 'async') {
      this.dispatchAsync();
      return undefined;
    }
    return this.maybeStartRound();
  }

  private dispatchAsync(): void {
    const agg = this.cfg.aggregation;
    if (agg.mode !== 'async') return;
    while (!this.stopped && this.inFlight < agg.concurrency && this.pool.size > 0) {
      this.startLease(this.pool.take(this.leaseRng), 0);
    }
  }

  private deviceView(d: number): SimDevice {
    const p = this.pop;
    return {
      index: d, tier: p.tiers[p.tier[d]!]!.name, memoryMiB: p.memoryMiB[d]!, examplesPerSecond: p.examplesPerSecond[d]!,
      upMbps: p.upMbps[d]!, downMbps: p.downMbps[d]!, shard: p.shard[d]!,
    };
  }

  /** Leases to `d` (taken out of the pool by the caller); false when the plan policy has no work for it. */
  private startLease(d: number, round: number): boolean {
    const plan = this.assignPlan(this.deviceView(d), this.now);
    if (plan === null) {
      this.state[d] = REFUSED;
      this.refusalCount[d]!++;
      this.totals.refusals++;
      return false;
    }
    const p = this.pop;
    const net = this.cfg.network;
    const base = this.server.version;
    const full = (plan.downloadParameters ?? plan.parameters) * net.bytesPerParamDown;
    const held = this.cachedVersion[d]!;
    const fullModel = plan.downloadParameters === undefined || plan.downloadParameters === this.backend.length;
    let downloadBytes = held === base ? 0
      : this.changes !== undefined && held >= 0 && fullModel ? Math.min(full, this.changes.deltaBytes(held)) : full;
    if (held >= 0 && held < base && fullModel && net.downlinkCodec !== undefined) {
      // The chain of encoded steps from the held version, as the coordinator's weightsFrom serves it when smaller.
      downloadBytes = Math.min(downloadBytes, chainDeltaSize(DELTA_HEADER_ALLOWANCE, this.stepBytes.slice(held + 1, base + 1)));
    }
    const uploadBytes = codedUploadBytes(plan.parameters, net);
    const trainStart = this.now + net.rttSeconds + (downloadBytes * 8) / (p.downMbps[d]! * 1e6);
    const computeSec = (plan.localSteps * plan.batchSize) / (plan.examplesPerSecond ?? p.examplesPerSecond[d]!);
    const trainEnd = trainStart + computeSec;
    const arrive = trainEnd + (uploadBytes * 8) / (p.upMbps[d]! * 1e6);
    const expiresAt = plan.deadlineSeconds === undefined ? Infinity : this.now + plan.deadlineSeconds;

    // What ends the lease early, if anything: out of memory when training starts, a dropout, the session's end.
    const tier = p.tiers[p.tier[d]!]!;
    const dropoutAt = tier.dropoutPerSec > 0 ? this.now + this.exp(this.leaseRng, 1 / tier.dropoutPerSec) : Infinity;
    let failAt = Infinity;
    let failReason: FailureReason | undefined;
    if (p.memoryMiB[d]! < plan.memoryMiB) [failAt, failReason] = [trainStart, 'oom'];
    if (dropoutAt < failAt) [failAt, failReason] = [dropoutAt, 'dropout'];
    // An upload that would land after the deadline is refused: the lease is lost when it expires.
    if (arrive > expiresAt && expiresAt < failAt) [failAt, failReason] = [expiresAt, 'expired'];
    const sessionEnd = this.sessionEnd[d]!;
    // SESSION_END ends a lease its session does not outlast; it was queued first, so it wins a tie with the arrival.
    const bySession = sessionEnd <= arrive && sessionEnd < failAt;
    if (bySession) [failAt, failReason] = [sessionEnd, 'session'];
    if (failAt >= arrive) [failAt, failReason] = [Infinity, undefined];
    const id = this.nextLeaseId++;
    const lease: Lease = {
      id, device: d, baseVersion: base, plan, trainStart, trainEnd, arrive, computeSec, uploadBytes,
      failAt, failReason, round, update: undefined, poisoned: false,
    };
    this.leases.set(id, lease);
    this.versions.get(base)!.refs++;
    this.leaseOf[d] = id;
    this.state[d] = LEASED;
    this.inFlight++;
    this.leaseCount[d]!++;
    this.totals.leases++;
    const label = planLabel(plan.plan);
    this.planCounts.set(label, (this.planCounts.get(label) ?? 0) + 1);
    this.totals.bytesDown += downloadBytes;
    if (lease.failAt >= trainStart) this.cachedVersion[d] = base;
    if (failReason === undefined) this.queue.push(trainEnd, TRAIN_DONE, d, id);
    else if (!bySession) this.queue.push(failAt, LEASE_FAIL, d, id);
    if (this.cfg.stop.leases !== undefined && this.totals.leases >= this.cfg.stop.leases) this.stopped = true;
    return true;
  }

  private async trainDone(id: number): Promise<void> {
    const lease = this.leases.get(id);
    if (lease === undefined) return; // dropped (a sync round closed) before training ended
    const base = this.versions.get(lease.baseVersion)!.params;
    const job = {
      device: lease.device, shard: this.pop.shard[lease.device]!, base, plan: lease.plan.plan, localSteps: lease.plan.localSteps,
      batchSize: lease.plan.batchSize, seed: (Math.imul(this.cfg.seed, 0x9e3779b1) ^ id) | 0,
    };
    const attacker = this.attackers !== null && this.attackers[lease.device] === 1;
    const replay = attacker ? this.replays.get(lease.device) : undefined;
    let delta: Float32Array;
    let coverage: Coverage | undefined;
    const codec = this.cfg.network.codec;
    // A LoRA upload is its adapters: the codec encodes them (not the product), before the server multiplies them out;
    // a replayed LoRA upload re-sends adapters that were encoded already.
    let coded = replay !== undefined && lease.plan.plan.kind === 'lora';
    if (replay !== undefined) {
      // A stale-replay attacker does not train again: it re-sends its first update under the fresh lease.
      ({ delta, coverage } = replay);
      lease.poisoned = true;
    } else {
      const pending = this.backend.train(job);
      const out = pending instanceof Promise ? await pending : pending;
      if ('adapters' in out) {
        if (lease.plan.plan.kind !== 'lora' || this.backend.loraToGlobal === undefined) throw new Error('the backend returned adapters for a lease without a LoRA plan');
        const sent = codec === undefined ? out.adapters : compressUpload(out.adapters, codec, lease.device, planLabel(lease.plan.plan), job.seed, this.residuals);
        ({ delta, coverage } = this.backend.loraToGlobal(sent, lease.plan.plan));
        coded = true;
      } else {
        ({ delta, coverage } = out);
      }
      // An attacker on a LoRA lease is modelled by what its adapters do to the model: the poisoned product.
      if (attacker) ({ delta, coverage } = this.attack(lease, delta, coverage));
    }
    // What the coordinator decodes: the upload after the run's codec (the same for honest and poisoned uploads).
    if (codec !== undefined && !coded) delta = compressUpload(delta, codec, lease.device, planLabel(lease.plan.plan), job.seed, this.residuals);
    lease.update = {
      delta, numExamples: lease.plan.localSteps * lease.plan.batchSize, localSteps: lease.plan.localSteps, baseVersion: lease.baseVersion,
      ...(coverage === undefined ? {} : { coverage }),
    };
    this.queue.push(lease.arrive, ARRIVE, lease.device, id);
  }

  /** What an attacker uploads instead of its honest update (src/sim/attack.ts). */
  private attack(lease: Lease, delta: Float32Array, coverage: Coverage | undefined): { delta: Float32Array; coverage: Coverage | undefined } {
    const atk = this.cfg.attack!;
    if (atk.kind === 'stale-replay') {
      this.replays.set(lease.device, { delta, coverage }); // honest this once; replayed from now on
      return { delta, coverage };
    }
    lease.poisoned = true;
    return { delta: poison(atk.kind, delta, attackScale(atk), this.attackStream), coverage };
  }

  /** Removes a lease from the books, returning its base version's reference. */
  private endLease(lease: Lease): void {
    this.leases.delete(lease.id);
    this.leaseOf[lease.device] = -1;
    this.inFlight--;
    const v = this.versions.get(lease.baseVersion)!;
    if (--v.refs === 0 && lease.baseVersion !== this.server.version) this.versions.delete(lease.baseVersion);
  }

  private async arrive(lease: Lease): Promise<void> {
    const update = lease.update!;
    const staleness = this.server.version - lease.baseVersion;
    const probe = this.folds.length < this.cfg.record.folds ? largestEntry(update.delta) : -1;
    const sumBefore = probe >= 0 ? this.acc.sum[probe]! : 0;
    const massBefore = this.acc.mass;
    try {
      this.strategy.fold(this.acc, update, this.server);
    } catch (e) {
      if (e instanceof InvalidUpdateError) return this.fail(lease, 'rejected');
      throw e;
    }
    if (probe >= 0) {
      this.folds.push({
        hours: this.now / HOUR, device: lease.device, version: this.server.version, baseVersion: lease.baseVersion, staleness,
        weight: (this.acc.sum[probe]! - sumBefore) / update.delta[probe]!, mass: this.acc.mass - massBefore,
      });
    } else if (this.folds.length < this.cfg.record.folds) {
      this.folds.push({
        hours: this.now / HOUR, device: lease.device, version: this.server.version, baseVersion: lease.baseVersion, staleness,
        weight: null, mass: this.acc.mass - massBefore,
      });
    }
    this.stalenessHist[Math.min(staleness, STALENESS_BUCKETS)]!++;
    this.stalenessSum += staleness;
    this.stalenessFolds++;
    if (staleness > this.stalenessMax) this.stalenessMax = staleness;
    this.totals.completed++;
    if (this.attackers !== null) this.attackFolds[lease.poisoned ? 'poisoned' : 'honest']++;
    this.totals.bytesUp += lease.uploadBytes;
    this.totals.computeSecondsUseful += lease.computeSec;
    this.completedCount[lease.device]!++;
    this.endLease(lease);
    const d = lease.device;
    this.state[d] = IDLE;
    if (this.cfg.aggregation.mode === 'async') {
      if (this.strategy.ready(this.acc)) await this.publish();
      this.pool.add(d);
      this.dispatchAsync();
      return;
    }
    this.pool.add(d);
    if (++this.roundReceived >= this.cfg.aggregation.cohort) await this.closeRound('full');
  }

  /** Ends a lease that will not deliver, and puts its device where it belongs next. */
  private fail(lease: Lease, reason: FailureReason): Promise<void> | undefined {
    const d = lease.device;
    this.totals.failures[reason]++;
    this.failureCount[reason][d]!++;
    this.totals.computeSecondsWasted += Math.min(lease.computeSec, Math.max(0, this.now - lease.trainStart));
    this.endLease(lease);
    if (reason === 'session') {
      this.state[d] = OFFLINE; // the caller (SESSION_END) takes it out
    } else if (reason === 'straggler') {
      this.state[d] = IDLE;
      this.pool.add(d);
    } else {
      this.state[d] = BACKOFF;
      this.queue.push(this.now + this.cfg.network.retrySeconds, CHECK_IN, d, this.session[d]!);
    }
    if (this.cfg.aggregation.mode === 'async') this.dispatchAsync();
    return undefined;
  }

  // ---- sync rounds ----

  private maybeStartRound(): Promise<void> | undefined {
    const agg = this.cfg.aggregation;
    if (agg.mode !== 'sync' || this.roundOpen || this.stopped || this.pool.size < agg.cohort) return undefined;
    this.round++;
    this.rounds.started++;
    this.roundReceived = 0;
    const want = Math.ceil(agg.cohort * agg.overSelection);
    let leased = 0;
    while (leased < want && this.pool.size > 0 && !this.stopped) {
      if (this.startLease(this.pool.take(this.leaseRng), this.round)) leased++;
    }
    if (leased === 0) return undefined;
    this.roundOpen = true;
    this.queue.push(this.now + agg.roundSeconds, ROUND_DEADLINE, -1, this.round);
    return undefined;
  }

  private async closeRound(why: 'full' | 'deadline'): Promise<void> {
    const agg = this.cfg.aggregation;
    if (agg.mode !== 'sync') return;
    if (this.acc.count < agg.minUpdates) {
      // Too few updates by the deadline: the round is extended, as the coordinator does (currentRound in
      // src/server/coordinator/run.ts), because the updates it holds were acknowledged and must reach a version. Its
      // leases still out keep training; fresh leases restore the over-selection.
      this.rounds.extended++;
      let out = 0;
      for (const lease of this.leases.values()) if (lease.round === this.round) out++;
      const want = Math.ceil(agg.cohort * agg.overSelection) - this.roundReceived - out;
      for (let leased = 0; leased < want && this.pool.size > 0 && !this.stopped;) {
        if (this.startLease(this.pool.take(this.leaseRng), this.round)) leased++;
      }
      this.queue.push(this.now + agg.roundSeconds, ROUND_DEADLINE, -1, this.round);
      return;
    }
    this.roundOpen = false;
    // Everyone still out is a straggler: their leases expire with the round (Bonawitz et al. 2019, section 2).
    for (const lease of [...this.leases.values()]) if (lease.round === this.round) this.fail(lease, 'straggler');
    if (why === 'full') this.rounds.closedFull++;
    else this.rounds.closedAtDeadline++;
    await this.publish();
    await this.maybeStartRound();
  }

  // ---- versions ----

  private async publish(): Promise<void> {
    const previous = this.server.version;
    let next = this.strategy.apply(this.server, this.acc);
    const down = this.cfg.network.downlinkCodec;
    if (down !== undefined) {
      // The version devices train from is the compressed one (src/core/codecs/downlink.ts), as on the coordinator.
      const c = compressVersion(this.server, next, down, this.cfg.seed);
      next = c.state;
      this.stepBytes[next.version] = c.encoded.length;
    }
    this.server = next;
    this.lastVersionAt = this.now;
    this.acc = this.strategy.begin(this.server);
    this.versions.set(this.server.version, { params: this.server.params, refs: 0 });
    if (this.cfg.network.weightDeltas && this.cfg.mode === 'full') {
      this.changes ??= new ChangeTracker(this.server.params.length);
      this.changes.record(this.versions.get(previous)!.params, this.server.params, this.server.version);
    }
    if (this.versions.get(previous)!.refs === 0) this.versions.delete(previous);
    this.totals.versions++;
    if (this.server.version % this.cfg.eval.everyVersions === 0) await this.evaluate();
    if (this.cfg.stop.versions !== undefined && this.server.version >= this.cfg.stop.versions) this.stopped = true;
  }

  private async evaluate(): Promise<void> {
    const out = this.backend.evaluate(this.server.params);
    const metrics = out instanceof Promise ? await out : out;
    this.lastEvaluated = this.server.version;
    this.lastMetric = metrics[this.backend.metrics[0]!];
    const record: VersionRecord = {
      version: this.server.version, hours: this.now / HOUR, bytesDown: this.totals.bytesDown, bytesUp: this.totals.bytesUp,
      leases: this.totals.leases, updates: this.totals.completed, metrics,
    };
    this.versionRecords.push(record);
    this.o.onProgress?.(this.progress());
    const t = this.target;
    if (t !== null && !t.reached) {
      const v = metrics[t.metric];
      const goal = metricGoal(t.metric, this.cfg.target?.goal);
      if (v !== undefined && (goal === 'min' ? v <= t.value : v >= t.value)) {
        Object.assign(t, { reached: true, version: record.version, hours: record.hours, bytes: record.bytesDown + record.bytesUp });
      }
    }
  }

  // ---- results ----

  private result(wallSeconds: number): SimResult {
    const totals = {
      ...this.totals, failures: { ...this.totals.failures }, virtualHours: this.now / HOUR, inFlightAtEnd: this.inFlight,
      plans: Object.fromEntries([...this.planCounts].sort(([a], [b]) => (a < b ? -1 : 1))),
    };
    let never = 0;
    for (let d = 0; d < this.pop.size; d++) if (this.leaseCount[d] === 0 && this.refusalCount[d]! > 0) never++;
    totals.devicesNeverLeased = never;
    const agg = this.cfg.aggregation;
    let lastBucket = 0;
    for (let i = 0; i <= STALENESS_BUCKETS; i++) if (this.stalenessHist[i]! > 0) lastBucket = i;
    const mem = this.o.model;
    const net = this.cfg.network;
    return {
      name: this.cfg.name,
      mode: this.cfg.mode,
      seed: this.cfg.seed,
      aggregation: agg.mode === 'async'
        ? `async ${agg.strategy.kind}, concurrency ${agg.concurrency}`
        : `sync ${agg.strategy.kind}, cohort ${agg.cohort} x${agg.overSelection}, deadline ${agg.roundSeconds}s`,
      population: {
        devices: this.pop.size,
        referenceExamplesPerSecond: this.pop.referenceExamplesPerSecond,
        tiers: summarizePopulation(this.pop),
      },
      model: {
        parameters: mem.parameters, foldedLength: this.backend.length, memoryMiB: mem.memoryMiB,
        downloadBytes: mem.parameters * net.bytesPerParamDown, uploadBytes: codedUploadBytes(mem.parameters, net),
      },
      metrics: this.backend.metrics,
      versions: this.versionRecords,
      folds: this.folds,
      staleness: agg.mode === 'async'
        ? {
            folds: this.stalenessFolds,
            mean: this.stalenessFolds === 0 ? 0 : this.stalenessSum / this.stalenessFolds,
            max: this.stalenessMax,
            histogram: Array.from(this.stalenessHist.subarray(0, lastBucket + 1)),
          }
        : null,
      rounds: agg.mode === 'sync' ? { ...this.rounds } : null,
      target: this.target === null ? null : { ...this.target },
      diverged: this.diverged,
      stalled: this.stalled,
      hourly: this.hourly,
      totals,
      ...(this.cfg.attack === undefined ? {} : {
        attack: {
          kind: this.cfg.attack.kind, scale: attackScale(this.cfg.attack), fraction: this.cfg.attack.fraction,
          devices: this.attackers!.reduce((a, b) => a + b, 0), foldedPoisoned: this.attackFolds.poisoned, foldedHonest: this.attackFolds.honest,
        },
      }),
      wall: {
        seconds: wallSeconds,
        eventsPerSecond: this.totals.events / Math.max(wallSeconds, 1e-9),
        leasesPerSecond: this.totals.leases / Math.max(wallSeconds, 1e-9),
        heapMiB: process.memoryUsage().heapUsed / 2 ** 20,
      },
    };
  }

  deviceColumns(): DeviceColumns {
    const p = this.pop;
    const num = (a: ArrayLike<number>, digits?: number) =>
      Array.from(a, (x) => (digits === undefined ? x : Number(x.toPrecision(digits))));
    return {
      tier: Array.from(p.tier, (t) => p.tiers[t]!.name),
      examplesPerSecond: num(p.examplesPerSecond, 4),
      memoryMiB: num(p.memoryMiB, 4),
      upMbps: num(p.upMbps, 4),
      downMbps: num(p.downMbps, 4),
      leases: num(this.leaseCount),
      completed: num(this.completedCount),
      refusals: num(this.refusalCount),
      failures: Object.fromEntries(FAILURE_REASONS.map((r) => [r, num(this.failureCount[r])])) as Record<FailureReason, number[]>,
    };
  }
}

/** Index of the entry with the largest magnitude, or -1 when all are zero. */
function largestEntry(x: Float32Array): number {
  let best = -1;
  let max = 0;
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(x[i]!);
    if (a > max) {
      max = a;
      best = i;
    }
  }
  return best;
}
