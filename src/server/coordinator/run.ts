// One run inside the coordinator: hands out leases, accepts updates durably, folds them into the strategy's streaming
// accumulator, and commits versions. The path of one update, each arrow one call in `submitUpdate`:
//
//   checkLease -> decodeLeaseUpload (validate; replays zeroth-order pairs) -> blobs.put (durable) -> store.acceptUpdate (ack point)
//     -> strategy.fold -> [strategy ready / round closed] -> commit (weights, state, version row in one transaction)
//
// Recovery (`open`) replays exactly what was acknowledged and not yet committed: store.pendingUpdates, in
// acceptance order, folded into the head version's state. A version and the updates folded into it are committed
// in one transaction, so every acknowledged update is folded exactly once whatever moment a kill -9 hits.
import { createHash } from 'node:crypto';
import type { Accumulator } from '../../core/strategies/accumulator.ts';
import { createStrategy } from '../../core/strategies/config.ts';
import { CLIP_SLOT } from '../../core/strategies/dp.ts';
import { privacyReport, type PrivacyReport } from '../../core/privacy/report.ts';
import type { ClientUpdate, ServerState, Strategy } from '../../core/strategies/types.ts';
import { InvalidUpdateError, validateUpdate } from '../../core/strategies/validate-update.ts';
import { decodeSafetensors, encodeSafetensors } from '../../core/safetensors.ts';
import { flatten, layoutOf, unflatten, type ParamLayout, type Tensor } from '../../core/tensor.ts';
import { ProtocolError } from '../../core/protocol/errors.ts';
import type { DeviceProfile, Lease, LeaseResponse, Plan, UpdateAccepted, VersionInfo } from '../../core/protocol/schemas.ts';
import { PlannerError } from '../../core/planner/errors.ts';
import { plannerConfig } from '../../core/planner/settings.ts';
import { initialPlannerState, plannerStateFromIssued, plan as planLease, type PlannerConfig, type PlannerState } from '../../core/planner/planner.ts';
import { embedFlat, submodelLayout } from '../../core/submodel/submodel.ts';
import { decodeLeaseUpload, seedStepUpdateOf } from '../../core/zo/upload.ts';
import { decodeSeedStep, encodeSeedStep, MAX_SEED_CHAIN_ENTRIES, replaySeedStep, seedStepEntries, seedStepRefusal, type SeedStepUpdate } from '../../core/zo/seed-step.ts';
import { LoraError, loraPlanShapes, loraToDense } from '../../core/lora.ts';
import { coverageFromRanges } from '../../core/coverage.ts';
import { checkedNorm } from '../../core/protocol/update-wire.ts';
import { chainDeltaSize, chainWeightsDelta, diffWeights, seedChainWeightsDelta } from '../../core/codecs/weights-delta.ts';
import { compressVersion } from '../../core/codecs/downlink.ts';
import { CodecError } from '../../core/codecs/errors.ts';
import { loadTask } from '../../device/tasks/registry.node.ts';
import { anchorVersion, emaUpdate, proximalPull } from '../../core/continual/mitigation.ts';
import { GrowthError } from '../../core/growth/errors.ts';
import { growModel } from '../../core/growth/grow.ts';
import type { GrowthRecord, GrowthSpec } from '../../core/growth/spec.ts';
import { createModel } from '../../train/models/registry.ts';
import { faultPoint } from '../faults.node.ts';
import { encodeUpdate } from '../../core/protocol/update-wire.ts';
import type { SecAggSessions } from './secagg-sessions.ts';
import { SecureRounds, type FinishedRound } from './secure-rounds.ts';
import {
  BlobNotFoundError, CorruptBlobError, LeaseStateError, StoreError,
  type BlobStore, type DeviceRecord, type MetadataStore, type RunRecord, type UpdateRecord, type VersionRecord,
} from '../store/store.ts';
import type { DeviceActivity, LeaseTraffic, TrafficTotals, VersionTraffic } from '../store/store.ts';
import { deviceTier, loadRunStats, SLICE_LOSS, type RunStats } from './stats.ts';
import { newId } from './auth.ts';
import { Evaluator } from './evaluator.ts';
import type { RunEvents } from './events.ts';
import type { CoordinatorMetrics } from './metrics.ts';
import type { StoredRunConfig } from './run-config.ts';

export interface RunDeps {
  store: MetadataStore;
  blobs: BlobStore;
  events: RunEvents;
  metrics: CoordinatorMetrics;
  log: (message: string) => void;
  now: () => number;
  /** Whether to evaluate versions on held-out data (off in load tests). */
  evaluate: boolean;
  /** Where runs in aggregation mode 'secure' open their rounds' sessions (served by the secagg routes). */
  secagg: SecAggSessions;
}

export interface RunSummary {
  runId: string;
  name: string;
  status: string;
  task: string;
  model: StoredRunConfig['model'];
  aggregation: StoredRunConfig['aggregation'];
  head: number;
  devices: number;
  openLeases: number;
  /** Bytes moved over the run's life: accepted update bodies up, weights bodies served down. */
  bytesUp: number;
  bytesDown: number;
  /** Differentially private runs only: epsilon at the configured delta for the versions published so far. */
  privacy?: PrivacyReport;
}

/** The run's byte accounting at every grain (GET /v1/runs/:run/traffic). */
export interface RunTraffic {
  run: TrafficTotals;
  versions: VersionTraffic[];
  devices: Pick<DeviceActivity, 'deviceId' | 'updates' | 'downloads' | 'bytesUp' | 'bytesDown'>[];
  /** Downloads by devices that did not authenticate (the weights route needs no token). */
  anonymous: { downloads: number; bytesDown: number };
  leases: LeaseTraffic[];
}

export type VersionInfoWithTraffic = VersionInfo & { bytesUp: number; bytesDown: number; growth?: GrowthRecord };

/** What growing a run did (POST /v1/runs/:run/grow). */
export interface GrowthResult {
  runId: string;
  /** The grown version (its parent is the version it grew from). */
  version: number;
  parent: number;
  growth: GrowthRecord;
  /** Open leases on the old shape, expired. */
  expiredLeases: number;
  /** The run's config with the new model spec (the run is reopened with it). */
  config: StoredRunConfig;
}

interface Round {
  deadline: number;
  leased: number;
}

export class RunCoordinator {
  private acc: Accumulator;
  /** Sequence numbers of the accepted updates folded into `acc`, committed with the next version, and their blobs. */
  private folded: number[] = [];
  private foldedBlobs: string[] = [];
  /** Per folded update, in fold order: what a seed step needs of a zeroth-order upload, null for any other update. */
  private foldedSeeds: (SeedStepUpdate | null)[] = [];
  private tail: Promise<unknown> = Promise.resolve();
  /** When the last commit failed (undefined once one succeeds); tick() retries after COMMIT_RETRY_MS. */
  private commitFailedAt: number | undefined;
  /** Set while a failed commit's updates are re-folded: they must not trigger another commit in the middle. */
  private refolding = false;
  private round: Round | undefined;
  private readonly evaluator: Evaluator | undefined;
  private readonly planner: PlannerConfig | undefined;
  // Rolling-window counters; restarting them after a coordinator restart only shifts where the windows start.
  private plannerState: PlannerState = initialPlannerState;
  /** Recent downlink deltas by "baseHash>targetHash" (null: the full file is smaller). */
  private readonly deltaCache = new Map<string, Uint8Array | null>();
  /** Whole-life byte totals, loaded from the store on open and counted along (summaries must not sum tables). */
  private traffic: TrafficTotals = { bytesUp: 0, bytesDown: 0, updates: 0, downloads: 0 };
  private changes = 0;
  private statsCache: { key: string; changes: number; at: number; value: Promise<RunStats & { computeMs: number }> } | undefined;
  /** The newest version that grew the model (src/core/growth): leases on older versions have the old shape. */
  private grownAt: { version: number; growth: GrowthRecord } | undefined;
  /** A continual run's anchor weights (config.continual.anchor), once read. */
  private anchor: { version: number; params: Float32Array } | undefined;
  private readonly unsubscribe: () => void;
  /** Rounds of a run in aggregation mode 'secure' (secure-rounds.ts). */
  private readonly secure: SecureRounds | undefined;

  private constructor(
    private record: RunRecord,
    readonly config: StoredRunConfig,
    private readonly deps: RunDeps,
    readonly layout: ParamLayout,
    private readonly strategy: Strategy,
    private state: ServerState,
    private head: VersionRecord,
  ) {
    this.acc = strategy.begin(state);
    // Every change to the run emits an event: counting them tells the stats cache whether anything moved.
    this.unsubscribe = deps.events.subscribe((e) => {
      if (e.runId === record.id) this.changes++;
    });
    const agg = config.aggregation;
    this.secure = agg.mode !== 'secure' ? undefined : new SecureRounds({
      runId: record.id, settings: agg, dimension: layout.size, trainMs: config.lease.seconds * 1000, sessions: deps.secagg, now: deps.now,
      onSum: (round) => this.acceptSecureSum(round),
      onFailure: (sessionId, why) => {
        const message = `secure round ${sessionId} failed, nothing from it was recorded: ${why}`;
        deps.log(`run ${record.id}: ${message}`);
        deps.events.emit({ type: 'warning', runId: record.id, message });
      },
    });
    const p = config.planner;
    this.planner = p === undefined ? undefined : plannerConfig(p, config.model, config.recipe);
    this.evaluator = deps.evaluate && config.eval.everyVersions > 0
      ? new Evaluator(
          () => loadTask(config.task, config.model),
          config.model,
          config.eval,
          (version, r, slices) => this.recordMetrics(version, {
            heldOutLoss: r.loss, heldOutAccuracy: r.accuracy, heldOutPerplexity: r.perplexity,
            // Per slice (a continual task's eras): `heldOutLoss/<slice id>`, read back by stats.ts.
            ...Object.fromEntries([...slices].map(([id, e]) => [`${SLICE_LOSS}${id}`, e.loss])),
          }),
          (version, e) => deps.log(`run ${record.id}: evaluating version ${version} failed: ${String(e)}`),
        )
      : undefined;
  }

  get id(): string {
    return this.record.id;
  }

  get headVersion(): number {
    return this.state.version;
  }

  get maxUpdateBytes(): number {
    return this.config.limits.maxUpdateBytes ?? this.layout.size * 4 + 64 * 1024;
  }

  /** Creates a run with freshly initialised weights as version 0. */
  static async create(deps: RunDeps, id: string, config: StoredRunConfig, joinTokenHash: string): Promise<RunCoordinator> {
    const model = createModel(config.model);
    const params = model.init(config.seed);
    const layout = layoutOf(model.shapes);
    const strategy = createStrategy(config.aggregation.strategy);
    const state = strategy.init(flatten(params, layout));
    const now = deps.now();
    const version: VersionRecord = {
      runId: id, version: 0, parent: null, createdAt: now, updates: 0, metrics: {},
      paramsHash: await deps.blobs.put(encodeSafetensors(params, { version: '0' })),
      stateHash: await putSlots(deps.blobs, state.slots),
    };
    const record: RunRecord = { id, name: config.name, config: JSON.stringify(config), joinTokenHash, status: 'active', head: 0, createdAt: now };
    await deps.store.createRun(record, version);
    const run = new RunCoordinator(record, config, deps, layout, strategy, state, version);
    run.evaluator?.request(0, params);
    return run;
  }

  /** Loads a run at its head version and re-folds every acknowledged update not yet committed. */
  static async open(deps: RunDeps, record: RunRecord): Promise<RunCoordinator> {
    const config = JSON.parse(record.config) as StoredRunConfig;
    const layout = layoutOf(createModel(config.model).shapes);
    const strategy = createStrategy(config.aggregation.strategy);
    const { head: intact, params, slots } = await loadIntactVersion(deps, record, layout);
    let head = intact;
    if (head.version !== record.head) {
      // The head's files are damaged on disk: the newest intact version's weights and optimizer state become a new
      // version on top of it (numbers are never reused, so caches keyed by version stay right). The updates folded
      // into the damaged versions are lost with them (their blobs went at commit); the damaged versions stay listed,
      // and their weights answer 503.
      const restored: VersionRecord = {
        runId: record.id, version: record.head + 1, parent: record.head, createdAt: deps.now(), updates: 0,
        metrics: { restoredFrom: head.version },
        paramsHash: await deps.blobs.put(encodeSafetensors(unflatten(params, layout), { version: String(record.head + 1) })),
        stateHash: await putSlots(deps.blobs, slots),
      };
      await deps.store.commitVersion(restored, []);
      const message = `version ${record.head} is damaged on disk; serving the weights of version ${head.version} as version ${restored.version}`;
      deps.log(`run ${record.id}: ${message}`);
      deps.events.emit({ type: 'warning', runId: record.id, message });
      record = { ...record, head: restored.version };
      head = restored;
    }
    const run = new RunCoordinator(record, config, deps, layout, strategy, { version: head.version, params, slots }, head);
    const grown = await deps.store.latestGrowth(record.id);
    if (grown !== undefined) run.grownAt = { version: grown.version, growth: JSON.parse(grown.growth) as GrowthRecord };
    await run.deps.store.expireLeases(record.id, deps.now());
    if (run.planner !== undefined) run.plannerState = plannerStateFromIssued(await deps.store.countIssuedPlans(record.id));
    await run.serial(() => run.replayPending());
    deps.metrics.head.set({ run: record.id }, run.state.version);
    run.traffic = await deps.store.trafficTotals(record.id);
    run.publishTraffic();
    if (head.metrics.heldOutLoss === undefined) run.evaluator?.request(head.version, unflatten(servedParams(run.state), layout));
    return run;
  }

  async summary(): Promise<RunSummary> {
    return {
      runId: this.id, name: this.record.name, status: this.record.status, task: this.config.task, model: this.config.model,
      aggregation: this.config.aggregation, head: this.state.version,
      devices: await this.deps.store.countDevices(this.id), openLeases: await this.deps.store.countOpenLeases(this.id),
      bytesUp: this.traffic.bytesUp, bytesDown: this.traffic.bytesDown,
      ...this.privacyOf(this.state),
    };
  }

  /** The DP report for `state`'s version (nothing when the run is not differentially private). */
  private privacyOf(state: ServerState): { privacy?: PrivacyReport } {
    const s = this.config.aggregation.strategy;
    if (s.kind !== 'dp') return {};
    return { privacy: privacyReport(s, state.version, state.slots[CLIP_SLOT]?.[0]) };
  }

  async setStatus(status: RunRecord['status']): Promise<void> {
    await this.deps.store.setRunStatus(this.id, status);
    this.record = { ...this.record, status };
    this.deps.events.emit({ type: 'status', runId: this.id, status });
  }

  async issueLease(device: DeviceRecord): Promise<LeaseResponse> {
    if (this.record.status === 'paused') return { lease: null, reason: 'the run is paused', retryAfterMs: 10_000 };
    const now = this.deps.now();
    let plan: Plan = { kind: 'full' };
    let recipe = this.config.recipe;
    let deadline = now + this.config.lease.seconds * 1000;
    if (this.planner !== undefined) {
      try {
        const decided = planLease(JSON.parse(device.profile) as DeviceProfile, this.planner, this.plannerState);
        this.plannerState = decided.state;
        ({ plan, recipe } = decided);
        deadline = now + decided.deadlineSeconds * 1000;
      } catch (e) {
        // A device that cannot hold even the smallest submodel (or is excluded by policy) gets no work, and why.
        if (e instanceof PlannerError) return { lease: null, reason: e.message, retryAfterMs: 3_600_000 };
        throw e;
      }
    }
    const agg = this.config.aggregation;
    if (agg.mode === 'sync') {
      const round = await this.currentRound(now);
      if (round.leased >= Math.ceil(agg.cohort * agg.overSelection)) {
        return { lease: null, reason: 'this round\'s cohort is full', retryAfterMs: Math.max(1000, round.deadline - now) };
      }
      round.leased++;
      deadline = Math.min(deadline, round.deadline);
    }
    const leaseId = newId('lease');
    let secure: Lease['secure'];
    if (this.secure !== undefined) {
      const seat = this.secure.seat(device.id, leaseId, this.state.version, recipe.localSteps * recipe.batchSize);
      if ('reason' in seat) return { lease: null, reason: seat.reason, retryAfterMs: seat.retryAfterMs };
      secure = { sessionId: seat.sessionId, clientId: seat.clientId, config: seat.config };
      deadline = seat.deadline;
    }
    const lease: Lease = {
      leaseId, runId: this.id, baseVersion: this.state.version, baseHash: this.head.paramsHash,
      plan, recipe, deadline, ttlMs: deadline - now, ...(secure === undefined ? {} : { secure }),
      // A zeroth-order lease uploads (seed, scalar) pairs, which no codec applies to.
      ...(this.config.codec === undefined || recipe.zo !== undefined ? {} : { codec: this.config.codec }),
    };
    await this.deps.store.createLease({
      id: lease.leaseId, runId: this.id, deviceId: device.id, baseVersion: lease.baseVersion, body: JSON.stringify(lease),
      issuedAt: now, deadline, status: 'open',
    });
    this.deps.metrics.leasesIssued.inc({ run: this.id });
    this.deps.events.emit({ type: 'lease', runId: this.id, deviceId: device.id, baseVersion: lease.baseVersion, deadline });
    return { lease };
  }

  /** Validates, persists (the acknowledgement point), folds, and commits when the strategy's rule fires. */
  async submitUpdate(device: DeviceRecord, leaseId: string, bytes: Uint8Array): Promise<UpdateAccepted> {
    try {
      const lease = await this.checkLease(device, leaseId);
      if (lease.secure !== undefined) {
        throw new ProtocolError('conflict', `lease ${leaseId} is a seat in secure round ${lease.secure.sessionId}: its update must be sent masked through that session, never in the clear`);
      }
      // Decoded with the lease's codec (any other is refused), then checked like any update: finite, within the norm.
      // A zeroth-order lease's (seed, scalar) upload is replayed into its dense delta first (src/core/zo/upload.ts).
      const decoded = decodeLeaseUpload(bytes, this.layoutOf(lease.plan), this.uploadNormBound(lease.plan), lease);
      const update: ClientUpdate = {
        ...this.toGlobal(decoded.delta, lease.plan, this.config.limits.maxUpdateNorm),
        numExamples: decoded.numExamples, localSteps: decoded.localSteps, baseVersion: lease.baseVersion,
      };
      validateUpdate(update, this.layout.size);
      const blobHash = await this.deps.blobs.put(bytes);
      await faultPoint('after-update-blob');
      return await this.serial(async () => {
        // A commit that ran while this blob was written may have deleted an identical blob (a folded update with the
        // same bytes; blobs are content-addressed): the update must not be acknowledged pointing at nothing.
        if (!(await this.deps.blobs.has(blobHash))) await this.deps.blobs.put(bytes);
        const record = await this.deps.store.acceptUpdate({
          runId: this.id, leaseId, deviceId: device.id, baseVersion: lease.baseVersion, blobHash,
          numExamples: decoded.numExamples, localSteps: decoded.localSteps, metrics: JSON.stringify(decoded.metrics),
          bytes: bytes.length, acceptedAt: this.deps.now(),
        }, this.deps.now());
        await faultPoint('after-update-accept');
        this.deps.metrics.updatesAccepted.inc({ run: this.id });
        this.deps.metrics.bytesUp.inc({ run: this.id }, bytes.length);
        this.traffic.bytesUp += bytes.length;
        this.traffic.updates++;
        this.publishTraffic();
        this.deps.events.emit({
          type: 'update', runId: this.id, deviceId: device.id, baseVersion: lease.baseVersion,
          staleness: this.state.version - lease.baseVersion, bytes: bytes.length, at: record.acceptedAt,
        });
        await this.foldAndMaybeCommit(record, update, lease.plan.kind === 'full' ? seedStepUpdateOf(bytes, lease, lease.baseVersion) : undefined);
        return { accepted: true as const, updateId: record.seq, runVersion: this.state.version };
      });
    } catch (e) {
      const err = asProtocolError(e);
      this.deps.metrics.updatesRejected.inc({ run: this.id, code: err.code });
      throw err;
    }
  }

  async version(v: number): Promise<VersionInfo> {
    const r = await this.deps.store.getVersion(this.id, v);
    if (r === undefined) throw new ProtocolError('not_found', `run ${this.id} has no version ${v}`);
    return toVersionInfo(r);
  }

  async versions(limit: number): Promise<VersionInfoWithTraffic[]> {
    const versions = await this.deps.store.listVersions(this.id, limit);
    if (versions.length === 0) return [];
    const traffic = new Map((await this.deps.store.versionTraffic(this.id, versions.at(-1)!.version, versions[0]!.version)).map((t) => [t.version, t]));
    return versions.map((r) => ({ ...toVersionInfo(r), bytesUp: traffic.get(r.version)?.bytesUp ?? 0, bytesDown: traffic.get(r.version)?.bytesDown ?? 0 }));
  }

  /** One version with the bytes it moved. */
  async versionWithTraffic(v: number): Promise<VersionInfoWithTraffic> {
    const info = await this.version(v);
    const t = (await this.deps.store.versionTraffic(this.id, v, v))[0];
    return { ...info, bytesUp: t?.bytesUp ?? 0, bytesDown: t?.bytesDown ?? 0 };
  }

  /** The dashboard's read model (stats.ts). */
  /**
   * The dashboard's read model (stats.ts), with the milliseconds it took to compute (dashboards space their refreshes
   * by it). Viewers share one computation while nothing has changed (no event) for up to STATS_REUSE_MS: the reads
   * are synchronous SQLite queries on the coordinator's one thread, so N idle dashboards must not cost N times.
   */
  async stats(options: { versions?: number; deviceRows?: number } = {}): Promise<RunStats & { computeMs: number }> {
    const key = JSON.stringify(options);
    const now = this.deps.now();
    const c = this.statsCache;
    if (c !== undefined && c.key === key && c.changes === this.changes && now - c.at < STATS_REUSE_MS) return c.value;
    const started = performance.now();
    const value = loadRunStats(this.deps.store, {
      runId: this.id, now, head: this.state.version, tierOf: (p) => deviceTier(p, this.planner), ...options,
    }).then((stats) => ({ ...stats, computeMs: Math.round((performance.now() - started) * 10) / 10 }));
    this.statsCache = { key, changes: this.changes, at: now, value };
    value.catch(() => {
      if (this.statsCache?.value === value) this.statsCache = undefined;
    });
    return value;
  }

  /** Bytes moved by the run, its versions, its devices (most active first) and its newest leases. */
  async trafficReport(limit: number): Promise<RunTraffic> {
    const store = this.deps.store;
    const [run, versions, devices, leases] = await Promise.all([
      store.trafficTotals(this.id), store.versionTraffic(this.id, 0, this.state.version),
      store.deviceActivity(this.id, this.deps.now(), limit), store.leaseTraffic(this.id, limit),
    ]);
    const known = devices.reduce((n, d) => n + d.bytesDown, 0);
    const knownCount = devices.reduce((n, d) => n + d.downloads, 0);
    return {
      run,
      versions: versions.slice(-limit),
      devices: devices.map(({ deviceId, updates, downloads, bytesUp, bytesDown }) => ({ deviceId, updates, downloads, bytesUp, bytesDown })),
      // Exact while every device fits in `limit`; otherwise it also holds the devices left out.
      anonymous: { downloads: run.downloads - knownCount, bytesDown: run.bytesDown - known },
      leases,
    };
  }

  /**
   * Counts a weights download that was served with its body (the HTTP layer calls this; a 304 moves no weights and is
   * not counted), for the run, the version, and the device and its open lease on that version when it authenticated.
   */
  async recordDownload(version: number, bytes: number, device: DeviceRecord | undefined): Promise<void> {
    const at = this.deps.now();
    const deviceId = device?.id ?? null;
    await this.deps.store.recordDownload({ runId: this.id, version, deviceId, bytes, at });
    this.deps.metrics.bytesDown.inc({ run: this.id }, bytes);
    this.deps.metrics.weightsDownloads.inc({ run: this.id });
    this.traffic.bytesDown += bytes;
    this.traffic.downloads++;
    this.publishTraffic();
    this.deps.events.emit({ type: 'download', runId: this.id, deviceId, version, bytes, at });
  }

  /** The weights of version v as stored (safetensors), verified against their content hash. */
  async weights(v: number): Promise<{ hash: string; bytes: Uint8Array }> {
    const r = v === this.head.version ? this.head : await this.deps.store.getVersion(this.id, v);
    if (r === undefined) throw new ProtocolError('not_found', `run ${this.id} has no version ${v}`);
    // Not counted here: the caller counts what it actually serves (recordDownload).
    try {
      return { hash: r.paramsHash, bytes: await this.deps.blobs.get(r.paramsHash) };
    } catch (e) {
      if (!(e instanceof CorruptBlobError || e instanceof BlobNotFoundError)) throw e;
      return this.repairWeights(r, e);
    }
  }

  /**
   * A weights file found damaged while serving. The head's weights are in memory and their encoding is
   * deterministic, so its file is rewritten (after checking the bytes hash to the version's name); an older
   * version's cannot be rebuilt and answers 503 with why.
   */
  private async repairWeights(r: VersionRecord, damage: Error): Promise<{ hash: string; bytes: Uint8Array }> {
    if (r.version === this.state.version) {
      const bytes = encodeSafetensors(unflatten(this.state.params, this.layout), { version: String(r.version) });
      if (createHash('sha256').update(bytes).digest('hex') === r.paramsHash) {
        await this.deps.blobs.put(bytes);
        const message = `the weights file of version ${r.version} was damaged on disk (${damage.message}); rewritten from memory`;
        this.deps.log(`run ${this.id}: ${message}`);
        this.deps.events.emit({ type: 'warning', runId: this.id, message });
        return { hash: r.paramsHash, bytes };
      }
    }
    throw new ProtocolError('unavailable', `the weights of version ${r.version} of run ${this.id} are damaged on disk: ${damage.message}`);
  }

  /**
   * Version v's weights for a device that already holds version `from`: a delta (src/core/codecs/weights-delta.ts)
   * when that is smaller than the file, otherwise the file itself (also when `from` is unknown or the same version).
   * The device rebuilds the file from the delta and checks it against the version's hash, as for a full download.
   */
  async weightsFrom(v: number, from: number): Promise<{ hash: string; bytes: Uint8Array; deltaFrom?: string }> {
    const target = await this.weights(v);
    const base = from === v ? undefined : from === this.head.version ? this.head : await this.deps.store.getVersion(this.id, from);
    if (base === undefined) return target;
    const key = `${base.paramsHash}>${target.hash}`;
    let delta = this.deltaCache.get(key);
    if (delta === undefined) {
      // The chain of stored steps, codec steps or seed steps (needs no base file on this side).
      const chain = from < v ? await this.stepChain(from, v, target.bytes) : undefined;
      // A base whose file is damaged gets no sparse delta (weights() rewrites the head's, refuses an older one's).
      const baseBytes = await this.weights(base.version).then((w) => w.bytes, (e: unknown) => {
        if (e instanceof ProtocolError) return undefined;
        throw e;
      });
      if (baseBytes === undefined && chain === undefined) return target;
      // The smallest answer wins: the chain, the sparse delta of changed entries, or (null) the file itself.
      delta = null;
      for (const d of [chain, baseBytes === undefined ? undefined : diffWeights(baseBytes, target.bytes)]) {
        if (d !== undefined && d.length < (delta ?? target.bytes).length) delta = d;
      }
      this.cacheDelta(key, delta);
    }
    return delta === null ? target : { hash: target.hash, bytes: delta, deltaFrom: base.paramsHash };
  }

  /** A few recent pairs: devices on the same base ask for the same delta as each new version appears. */
  private cacheDelta(key: string, delta: Uint8Array | null): void {
    this.deltaCache.set(key, delta);
    if (this.deltaCache.size > 8) this.deltaCache.delete(this.deltaCache.keys().next().value!);
  }

  /**
   * The stored steps of versions from+1..v as one chain (weights-delta.ts), when every one of them has a step and the
   * chain is smaller than the file: "TQD2" of codec steps in a run with a downlink codec, otherwise "TQD3" of seed
   * steps (versions of zeroth-order updates only, see seedStep; a grown or restored version, or one with any other
   * update, has none). The kinds never mix: a run with a downlink codec makes no seed steps. Sizes come from the
   * version rows, so a chain that would not pay is refused unread; a seed chain whose replay would exceed
   * MAX_SEED_CHAIN_ENTRIES is refused too (the device would refuse it). A step whose blob is missing or damaged
   * falls back to the other answers (the sparse delta or the file).
   */
  private async stepChain(from: number, v: number, file: Uint8Array): Promise<Uint8Array | undefined> {
    const records: VersionRecord[] = [];
    let size = chainDeltaSize(0, []);
    for (let u = v; u > from; u--) {
      const r = u === this.head.version ? this.head : await this.deps.store.getVersion(this.id, u);
      if (r?.downlinkHash === undefined || r.downlinkBytes === undefined || r.parent !== u - 1) return undefined;
      size += 4 + r.downlinkBytes;
      if (size >= file.length) return undefined;
      records.push(r);
    }
    let steps: Uint8Array[];
    try {
      steps = await Promise.all(records.reverse().map((r) => this.deps.blobs.get(r.downlinkHash!)));
    } catch (e) {
      if (!(e instanceof CorruptBlobError || e instanceof BlobNotFoundError)) throw e;
      this.deps.log(`run ${this.id}: a downlink step between versions ${from} and ${v} is damaged on disk (${String(e)}); serving another answer`);
      return undefined;
    }
    let chain: Uint8Array | undefined;
    if (this.config.downlinkCodec !== undefined) chain = chainWeightsDelta(file, steps);
    else {
      try {
        if (seedStepEntries(steps.map(decodeSeedStep)) > MAX_SEED_CHAIN_ENTRIES) return undefined;
      } catch (e) {
        if (!(e instanceof CodecError)) throw e;
        this.deps.log(`run ${this.id}: a seed step between versions ${from} and ${v} is damaged on disk (${e.message}); serving another answer`);
        return undefined;
      }
      chain = seedChainWeightsDelta(v, steps);
    }
    return chain !== undefined && chain.length < file.length ? chain : undefined;
  }

  /** Closes a due synchronous round; called periodically so a round ends on time even when no update arrives. */
  async tick(): Promise<void> {
    await this.secure?.step();
    if (this.folded.length === 0) return;
    await this.serial(async () => {
      // A round that is due closes; a commit that failed (a full disk) is retried once its backoff has passed.
      if (this.roundDue() || (this.commitFailedAt !== undefined && this.deps.now() >= this.commitFailedAt + COMMIT_RETRY_MS && this.commitDue())) {
        await this.commitOrRecover();
      }
    });
  }

  /** Resolves once the evaluations requested so far have finished. */
  async idle(): Promise<void> {
    await this.tail;
    await this.evaluator?.idle();
  }

  async close(): Promise<void> {
    await this.idle();
    this.evaluator?.dispose();
    this.unsubscribe();
  }

  /**
   * Grows the model at the head (src/core/growth). Acknowledged updates are first committed into the old shape; the
   * grown weights then become a new version whose parent is the old head and whose lineage records the growth, in one
   * transaction that also stores the new model spec in the run's config and expires every open lease (an update for
   * the old shape cannot be folded into the new one). The strategy's server state starts afresh for the new shape:
   * optimizer moments and momentum of the old coordinates would be misplaced on the new ones, and a fresh state is
   * what a new run of that shape would have. This instance is spent afterwards: layout, strategy and planner are fixed
   * per instance, so the Coordinator reopens the run from the store (Coordinator.growRun).
   */
  async grow(request: GrowthSpec): Promise<GrowthResult> {
    return this.serial(async () => {
      if (this.folded.length > 0) await this.commit();
      const parent = this.state.version;
      const version = parent + 1;
      let grown: ReturnType<typeof growModel>;
      try {
        grown = growModel(this.config.model, unflatten(this.state.params, this.layout), request, this.config.seed + version);
      } catch (e) {
        if (e instanceof GrowthError) throw new ProtocolError('bad_request', `cannot grow run ${this.id} (${e.code}): ${e.message}`);
        throw e;
      }
      const config: StoredRunConfig = { ...this.config, model: grown.spec };
      if (config.planner !== undefined) {
        try {
          plannerConfig(config.planner, grown.spec, config.recipe);
        } catch (e) {
          if (e instanceof PlannerError) throw new ProtocolError('bad_request', `the grown model does not fit the run's planner settings: ${e.message}`);
          throw e;
        }
      }
      const layout = layoutOf(createModel(grown.spec).shapes);
      const state = this.strategy.init(flatten(grown.params, layout));
      const record: VersionRecord & { growth: string } = {
        runId: this.id, version, parent, createdAt: this.deps.now(), updates: 0,
        metrics: { grownParams: grown.record.paramsAfter },
        paramsHash: await this.deps.blobs.put(encodeSafetensors(grown.params, { version: String(version) })),
        stateHash: await putSlots(this.deps.blobs, state.slots),
        growth: JSON.stringify(grown.record),
      };
      const { expiredLeases } = await this.deps.store.commitGrowth(record, JSON.stringify(config));
      this.deps.log(`run ${this.id}: grew the model by ${request.operator} into version ${version} (${grown.record.paramsBefore} -> ${grown.record.paramsAfter} parameters); ${expiredLeases} open lease(s) expired`);
      this.deps.events.emit({ type: 'version', runId: this.id, version, updates: 0, at: record.createdAt });
      return { runId: this.id, version, parent, growth: grown.record, expiredLeases, config };
    });
  }

  /**
   * A secure round's recovered sum, as the run's acknowledged update: the mean of the survivors' clipped deltas
   * (each device counts once), stored as a plain update attributed to the round's first contributor's lease, with
   * every contributor's lease used and its device credited (store.acceptSecureSum), then folded like any update.
   * Resolves with the version it became; throws, recording nothing, when it cannot be stored.
   */
  private acceptSecureSum(round: FinishedRound): Promise<number> {
    return this.serial(async () => {
      if (round.baseVersion !== this.state.version) {
        throw new Error(`the round trained version ${round.baseVersion}, but the run moved on to version ${this.state.version}`);
      }
      const n = round.contributors.length;
      const mean = new Float32Array(this.layout.size);
      for (let i = 0; i < mean.length; i++) mean[i] = round.result.values[i]! / n;
      const numExamples = round.contributors.reduce((a, m) => a + m.examples, 0);
      const update: ClientUpdate = { delta: mean, numExamples, localSteps: this.config.recipe.localSteps, baseVersion: round.baseVersion };
      validateUpdate(update, this.layout.size);
      const metrics = { secureRound: 1, contributors: n, dropped: round.result.dropped.length };
      const bytes = encodeUpdate(unflatten(mean, this.layout), { numExamples, localSteps: update.localSteps!, metrics });
      const blobHash = await this.deps.blobs.put(bytes);
      const first = round.contributors[0]!;
      const at = this.deps.now();
      const record = await this.deps.store.acceptSecureSum({
        runId: this.id, leaseId: first.leaseId, deviceId: first.deviceId, baseVersion: round.baseVersion, blobHash,
        numExamples, localSteps: update.localSteps!, metrics: JSON.stringify({ ...metrics, session: round.sessionId }),
        bytes: round.bytes, acceptedAt: at,
      }, round.contributors.map((m) => ({ leaseId: m.leaseId, deviceId: m.deviceId, examples: m.examples, bytes: m.bytes })), at);
      await faultPoint('after-secure-sum-accept');
      this.deps.metrics.updatesAccepted.inc({ run: this.id }, n);
      this.deps.metrics.bytesUp.inc({ run: this.id }, round.bytes);
      this.traffic.bytesUp += round.bytes;
      this.traffic.updates++;
      this.publishTraffic();
      for (const m of round.contributors) {
        this.deps.events.emit({ type: 'update', runId: this.id, deviceId: m.deviceId, baseVersion: round.baseVersion, staleness: 0, bytes: m.bytes, at });
      }
      await this.foldAndMaybeCommit(record, update);
      return this.state.version;
    });
  }

  private publishTraffic(): void {
    this.deps.metrics.runBytes.set({ run: this.id, direction: 'up' }, this.traffic.bytesUp);
    this.deps.metrics.runBytes.set({ run: this.id, direction: 'down' }, this.traffic.bytesDown);
  }

  private async checkLease(device: DeviceRecord, leaseId: string) {
    const lease = await this.deps.store.getLease(this.id, leaseId);
    if (lease === undefined) throw new ProtocolError('not_found', `lease ${leaseId} does not exist in run ${this.id}`);
    if (lease.deviceId !== device.id) throw new ProtocolError('forbidden', `lease ${leaseId} belongs to another device`);
    if (lease.status === 'used') throw new ProtocolError('lease_used', `lease ${leaseId} already delivered its update`);
    if (this.grownAt !== undefined && lease.baseVersion < this.grownAt.version) {
      const { operator, paramsBefore, paramsAfter } = this.grownAt.growth;
      throw new ProtocolError('lease_expired', `lease ${leaseId} is for version ${lease.baseVersion}, before the model grew at version ${this.grownAt.version} (${operator}, ${paramsBefore} -> ${paramsAfter} parameters): its update has the old shape and cannot be folded; ask for a new lease`);
    }
    if (lease.status === 'expired' || lease.deadline < this.deps.now()) {
      throw new ProtocolError('lease_expired', `lease ${leaseId} expired at ${new Date(lease.deadline).toISOString()}`);
    }
    if (this.config.aggregation.mode === 'sync' && lease.baseVersion !== this.state.version) {
      throw new ProtocolError('lease_expired', `lease ${leaseId} belongs to round ${lease.baseVersion}, which has closed`);
    }
    const body = JSON.parse(lease.body) as Lease;
    return { ...lease, plan: body.plan, codec: body.codec, recipe: body.recipe, secure: body.secure };
  }

  /** The flat layout an update for `plan` arrives in: the model's, its submodel's, or a LoRA plan's adapters. */
  private layoutOf(plan: Plan): ParamLayout {
    if (plan.kind === 'full') return this.layout;
    if (plan.kind !== 'lora') return submodelLayout(this.config.model, plan);
    try {
      return layoutOf(loraPlanShapes(this.layout.slots.map((s) => [s.name, s.shape] as const), plan));
    } catch (e) {
      // Only a lease issued for another shape of the model gets here (the planner checked its plans against it).
      if (e instanceof LoraError) throw new ProtocolError('invalid_update', `the lease's LoRA plan does not fit the run's model: ${e.message}`);
      throw e;
    }
  }

  /**
   * The norm bound the decoded upload itself is held to. A LoRA upload is adapters (A is random, of norm about
   * sqrt(rank) per target whatever was learnt), so the run's bound applies to the product toGlobal makes instead.
   */
  private uploadNormBound(plan: Plan): number {
    return plan.kind === 'lora' ? Infinity : this.config.limits.maxUpdateNorm;
  }

  /**
   * An update's delta in the global layout, with the coverage of a submodel plan (HeteroFL/FedRolex merging) or of a
   * LoRA plan's targets.
   *
   * LoRA: the adapters become the dense delta s A B (s = alpha / r) on each target, covering exactly the targets'
   * coordinates, and from here on are folded like any update. For a linear strategy that is FLoRA (Wang et al. 2024,
   * "FLoRA: Federated Fine-Tuning Large Language Models with Heterogeneous Low-Rank Adaptations") with a merge every
   * version: the version applies mean_k p_k s_k A_k B_k, and stacking [A_1 .. A_K][p_1 s_1 B_1; ..; p_K s_K B_K] has
   * exactly that product, for any mix of ranks. Folding products instead of stacking factors keeps the accumulator
   * at the model's size however many adapters arrive (DESIGN: fold as they arrive), and merging every version means
   * devices always fetch a plain base (no global adapter to download). HetLoRA's zero-padding would not be exact
   * (src/core/lora.ts). `maxNorm` (the run's bound; Infinity when re-folding acknowledged updates) applies to the
   * product, which is what moves the model; it also refuses products that overflow float32.
   */
  private toGlobal(delta: Float32Array, plan: Plan, maxNorm = Infinity): Pick<ClientUpdate, 'delta' | 'coverage'> {
    if (plan.kind === 'full') return { delta };
    if (plan.kind !== 'lora') return embedFlat(delta, this.config.model, plan);
    const adapters = unflatten(delta, this.layoutOf(plan));
    const dense = loraToDense(adapters, this.layout.slots, this.layout.size, plan);
    checkedNorm(dense.delta, maxNorm);
    return { delta: dense.delta, coverage: coverageFromRanges(this.layout.size, dense.ranges) };
  }

  private async foldAndMaybeCommit(record: UpdateRecord, update: ClientUpdate, seed?: SeedStepUpdate): Promise<void> {
    const started = performance.now();
    this.strategy.fold(this.acc, update, this.state);
    this.folded.push(record.seq);
    this.foldedBlobs.push(record.blobHash);
    this.foldedSeeds.push(seed ?? null);
    this.deps.metrics.foldSeconds.observe((performance.now() - started) / 1000);
    this.deps.metrics.staleness.observe(this.state.version - record.baseVersion);
    if (!this.refolding && this.commitDue()) await this.commitOrRecover();
  }

  private commitDue(): boolean {
    const agg = this.config.aggregation;
    // A secure round's sum is one folded update that stands for the whole round: it makes a version by itself.
    if (agg.mode === 'secure') return this.folded.length > 0;
    return agg.mode === 'async' ? this.strategy.ready(this.acc) : this.folded.length >= agg.cohort || this.roundDue();
  }

  /**
   * Commits, or, when a write fails (ENOSPC, a failing disk), leaves the run on its current version with every
   * acknowledged update still pending: nothing of the new version was committed, so the store is as before. The
   * accumulator was spent by apply, so it is rebuilt from the pending updates in the store (as after a restart);
   * the next update or tick() (after COMMIT_RETRY_MS) tries again. The upload that triggered the commit is still
   * acknowledged: it is durable.
   */
  private async commitOrRecover(): Promise<void> {
    try {
      await this.commit();
      this.commitFailedAt = undefined;
    } catch (e) {
      this.commitFailedAt = this.deps.now();
      const message = `committing version ${this.state.version + 1} failed, staying on version ${this.state.version} and retrying: ${e instanceof Error ? e.message : String(e)}`;
      this.deps.log(`run ${this.id}: ${message}`);
      this.deps.events.emit({ type: 'warning', runId: this.id, message });
      this.acc = this.strategy.begin(this.state);
      this.folded = [];
      this.foldedBlobs = [];
      this.foldedSeeds = [];
      this.refolding = true;
      try {
        await this.replayPending();
      } finally {
        this.refolding = false;
      }
    }
  }

  private roundDue(): boolean {
    const agg = this.config.aggregation;
    return agg.mode === 'sync' && this.round !== undefined && this.deps.now() >= this.round.deadline && this.folded.length >= agg.minUpdates;
  }

  private async currentRound(now: number): Promise<Round> {
    const agg = this.config.aggregation;
    if (agg.mode !== 'sync') throw new Error('rounds exist only in sync mode');
    // A round whose time ran out with too few updates is extended rather than dropped: its updates were
    // acknowledged and must reach a version.
    if (this.round === undefined || (now >= this.round.deadline && !this.roundDue())) {
      this.round = { deadline: now + agg.roundSeconds * 1000, leased: this.round && this.folded.length > 0 ? this.folded.length : 0 };
    }
    return this.round;
  }

  private async commit(): Promise<void> {
    const compressed = await this.compressDownlink(await this.anchored(this.strategy.apply(this.state, this.acc)));
    const [next, downlink] = [this.withEma(compressed.state), compressed.downlink];
    const params = unflatten(next.params, this.layout);
    const paramsHash = await this.deps.blobs.put(encodeSafetensors(params, { version: String(next.version) }));
    await faultPoint('after-version-blob');
    const version: VersionRecord = {
      runId: this.id, version: next.version, parent: this.state.version, createdAt: this.deps.now(), updates: this.folded.length,
      metrics: { updates: this.folded.length, ...privacyMetrics(this.privacyOf(next).privacy) },
      paramsHash,
      stateHash: await putSlots(this.deps.blobs, next.slots),
      ...downlink,
    };
    await faultPoint('before-version-commit');
    await this.deps.store.commitVersion(version, this.folded);
    await faultPoint('after-version-commit');
    const [folded, foldedBlobs] = [this.folded, this.foldedBlobs];
    this.state = next;
    this.head = version;
    this.acc = this.strategy.begin(next);
    this.folded = [];
    this.foldedBlobs = [];
    this.foldedSeeds = [];
    this.round = undefined;
    this.record = { ...this.record, head: next.version };
    this.deps.metrics.versions.inc({ run: this.id });
    this.deps.metrics.head.set({ run: this.id }, next.version);
    this.deps.events.emit({ type: 'version', runId: this.id, version: next.version, updates: folded.length, at: version.createdAt });
    if (this.evaluator && next.version % this.config.eval.everyVersions === 0) this.evaluator.request(next.version, unflatten(servedParams(next), this.layout));
    await this.deleteUpdateBlobs(foldedBlobs);
  }

  /**
   * A continual run's EMA (config.continual.ema): the average of the versions so far, kept in the version's server
   * state (slot CONTINUAL_EMA_SLOT, stored and restored with the optimizer state), updated from the committed params.
   * It starts from the parent's params where the parent has none (version 0, or a version the model grew at).
   */
  private withEma(next: ServerState): ServerState {
    const e = this.config.continual?.ema;
    if (e === undefined) return next;
    const prev = this.state.slots[CONTINUAL_EMA_SLOT];
    const ema = (prev !== undefined && prev.length === next.params.length ? prev : this.state.params).slice();
    emaUpdate(ema, next.params, e.beta);
    return { ...next, slots: { ...next.slots, [CONTINUAL_EMA_SLOT]: ema } };
  }

  /**
   * The weights the run serves as version v (GET .../served, evaluation, exports): the EMA of the versions for a
   * run with continual.ema, otherwise the version's own weights. Hash: the served file's sha256.
   */
  async served(v: number): Promise<{ hash: string; bytes: Uint8Array }> {
    if (this.config.continual?.ema === undefined) return this.weights(v);
    const r = v === this.head.version ? this.head : await this.deps.store.getVersion(this.id, v);
    if (r === undefined) throw new ProtocolError('not_found', `run ${this.id} has no version ${v}`);
    let ema: Float32Array | undefined;
    if (v === this.state.version) ema = this.state.slots[CONTINUAL_EMA_SLOT];
    else if (r.stateHash !== null) {
      try {
        ema = decodeSafetensors(await this.deps.blobs.get(r.stateHash)).tensors.get(CONTINUAL_EMA_SLOT)?.data;
      } catch (e) {
        if (!(e instanceof CorruptBlobError || e instanceof BlobNotFoundError)) throw e;
        throw new ProtocolError('unavailable', `the served weights of version ${v} of run ${this.id} are damaged on disk: ${e.message}`);
      }
    }
    // No average yet (version 0, or the version the model grew at): the version itself is what is served.
    if (ema === undefined || ema.length !== this.layout.size) return this.weights(v);
    const bytes = encodeSafetensors(unflatten(ema, this.layout), { version: String(v), served: 'ema' });
    return { hash: createHash('sha256').update(bytes).digest('hex'), bytes };
  }

  /**
   * A continual run's anchor mitigation (config.continual.anchor): the strategy's new params pulled toward the anchor
   * version's by the proximal step (theta + mu a) / (1 + mu) (proximalPull, src/core/continual/mitigation.ts). The
   * anchor is a function of the version number (and the last growth), so a commit redone after a restart pulls toward
   * the same weights; they are read from the store once per anchor.
   */
  private async anchored(next: ServerState): Promise<ServerState> {
    const a = this.config.continual?.anchor;
    if (a === undefined) return next;
    const version = anchorVersion(next.version, a.everyVersions, this.grownAt?.version);
    if (this.anchor?.version !== version) {
      let params: Float32Array;
      try {
        params = flatten(decodeSafetensors((await this.weights(version)).bytes).tensors, this.layout);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        // The anchor's file is damaged on disk and cannot be rebuilt: pulling toward the parent (in memory) keeps the
        // run going, where a failing commit would retry forever. After a restart the fallback is the head then.
        params = this.state.params.slice();
        const message = `the anchor of version ${next.version} (version ${version}) cannot be read (${e.message}); pulling toward version ${this.state.version} instead`;
        this.deps.log(`run ${this.id}: ${message}`);
        this.deps.events.emit({ type: 'warning', runId: this.id, message });
      }
      this.anchor = { version, params };
    }
    return { ...next, params: proximalPull(next.params, this.anchor.params, a.mu) };
  }

  /**
   * With a downlink codec, the strategy's next state becomes a compressed version: the head plus the encoded step,
   * with the coordinator's error feedback in the state's slots (src/core/codecs/downlink.ts, DoubleSqueeze), and the
   * encoded step is stored for weightsFrom. Seeded by the run's seed and the version number, so a commit retried
   * after a failure, or redone after a restart from the same acknowledged updates, publishes the same bytes.
   */
  private async compressDownlink(next: ServerState): Promise<{ state: ServerState; downlink?: Pick<VersionRecord, 'downlinkHash' | 'downlinkBytes'> }> {
    const spec = this.config.downlinkCodec;
    if (spec === undefined) return { state: next, downlink: await this.seedStep(next) };
    const { state, encoded } = compressVersion(this.state, next, spec, this.config.seed);
    return { state, downlink: { downlinkHash: await this.deps.blobs.put(encoded), downlinkBytes: encoded.length } };
  }

  /**
   * FedKSeed's downlink (Qin et al., ICML 2024; src/core/zo/seed-step.ts): when every update folded into the next
   * version is a zeroth-order upload on a full plan and the strategy's step is a pure function of them (no server
   * state, no noise: seedStepRefusal), the version is stored as its seed step, a few hundred bytes from which a
   * device holding the parent rebuilds it. Otherwise (a dense, LoRA or submodel update among them, a stateful
   * strategy) the version has no step and devices download as before. The step is decoded and replayed here before
   * it is kept, through the same replaySeedStep a device runs, and kept only when that reproduces the committed
   * params bit for bit: a step that would not rebuild the version is never served. That replay is the commit's
   * extra cost: one pass over the parameters per distinct seed of each folded upload.
   */
  private async seedStep(next: ServerState): Promise<Pick<VersionRecord, 'downlinkHash' | 'downlinkBytes'> | undefined> {
    const strategy = this.config.aggregation.strategy;
    const updates = this.foldedSeeds;
    if (updates.length === 0 || updates.some((u) => u === null) || seedStepRefusal(strategy) !== undefined) return undefined;
    // A continual mitigation is not part of the strategy's step: a device could not replay it from the seeds alone.
    if (this.config.continual !== undefined) return undefined;
    if (Object.keys(this.state.slots).length > 0 || Object.keys(next.slots).length > 0 || next.version !== this.state.version + 1) return undefined;
    const encoded = encodeSeedStep({ version: next.version, size: this.layout.size, strategy, updates: updates as SeedStepUpdate[] });
    const replayed = replaySeedStep(this.state.params, decodeSeedStep(encoded));
    if (!sameBits(replayed, next.params)) {
      const message = `version ${next.version}'s seed step does not replay to its params; devices will download it instead`;
      this.deps.log(`run ${this.id}: ${message}`);
      this.deps.events.emit({ type: 'warning', runId: this.id, message });
      return undefined;
    }
    return { downlinkHash: await this.deps.blobs.put(encoded), downlinkBytes: encoded.length };
  }

  /** Deletes the blobs of folded updates, unless a pending update has the same bytes (blobs are content-addressed). */
  private async deleteUpdateBlobs(hashes: readonly string[]): Promise<void> {
    if (hashes.length === 0) return;
    const stillNeeded = new Set((await this.deps.store.pendingUpdates(this.id)).map((u) => u.blobHash));
    for (const hash of new Set(hashes)) if (!stillNeeded.has(hash)) await this.deps.blobs.delete(hash);
  }

  private async replayPending(): Promise<void> {
    const pending = await this.deps.store.pendingUpdates(this.id);
    if (pending.length > 0) this.deps.log(`run ${this.id}: re-folding ${pending.length} acknowledged update(s) into version ${this.state.version + 1}`);
    for (const record of pending) {
      // Already re-folded: a commit that failed during this replay rebuilt the accumulator from every pending update.
      if (this.folded.includes(record.seq)) continue;
      let bytes: Uint8Array;
      try {
        bytes = await this.deps.blobs.get(record.blobHash);
      } catch (e) {
        // An acknowledged update whose file is gone or corrupt cannot be folded; say so loudly rather than stop the run.
        const message = `acknowledged update ${record.seq} cannot be recovered: ${String(e)}`;
        this.deps.log(`run ${this.id}: ${message}`);
        this.deps.events.emit({ type: 'warning', runId: this.id, message });
        continue;
      }
      const lease = await this.deps.store.getLease(this.id, record.leaseId);
      const body = lease === undefined ? undefined : (JSON.parse(lease.body) as Lease);
      const plan = body?.plan ?? ({ kind: 'full' } as const);
      const decoded = decodeLeaseUpload(bytes, this.layoutOf(plan), Infinity, body ?? { codec: this.config.codec, recipe: this.config.recipe });
      const terms = body ?? { codec: this.config.codec, recipe: this.config.recipe };
      await this.foldAndMaybeCommit(record, {
        ...this.toGlobal(decoded.delta, plan),
        numExamples: record.numExamples, localSteps: record.localSteps, baseVersion: record.baseVersion,
      }, plan.kind === 'full' ? seedStepUpdateOf(bytes, terms, record.baseVersion) : undefined);
    }
  }

  private async recordMetrics(version: number, metrics: Record<string, number>): Promise<void> {
    await this.deps.store.setVersionMetrics(this.id, version, metrics);
    if (version === this.head.version) this.head = { ...this.head, metrics: { ...this.head.metrics, ...metrics } };
    if (metrics.heldOutLoss !== undefined) this.deps.metrics.heldOutLoss.set({ run: this.id }, metrics.heldOutLoss);
    this.deps.events.emit({ type: 'metrics', runId: this.id, version, metrics });
  }

  /** Runs `fn` after every earlier serial section: folding and committing never interleave. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** How long after a failed commit (a full disk) tick() tries again. */
const COMMIT_RETRY_MS = 5000;

/** How long an unchanged run's statistics are reused (devices online and leases' time left drift with the clock). */
const STATS_REUSE_MS = 5000;

export function deviceProfile(device: DeviceRecord): DeviceProfile {
  return JSON.parse(device.profile) as DeviceProfile;
}

/**
 * The run's head version with its weights and optimizer state, read and verified; when the head's files are damaged
 * on disk (corrupt or missing), the newest older version whose files are intact. With none intact, the head's error
 * is thrown and the run stays out of service.
 */
async function loadIntactVersion(deps: RunDeps, record: RunRecord, layout: ParamLayout): Promise<{ head: VersionRecord; params: Float32Array; slots: Record<string, Float32Array> }> {
  let damage: unknown;
  for (let v = record.head; v >= 0; v--) {
    const head = await deps.store.getVersion(record.id, v);
    if (head === undefined) {
      if (v === record.head) throw new Error(`run ${record.id}: head version ${record.head} is missing from the store`);
      continue;
    }
    try {
      const params = flatten(decodeSafetensors(await deps.blobs.get(head.paramsHash)).tensors, layout);
      const slots = head.stateHash === null ? {} : Object.fromEntries(
        [...decodeSafetensors(await deps.blobs.get(head.stateHash)).tensors].map(([k, t]) => [k, t.data]),
      );
      if (damage !== undefined) deps.log(`run ${record.id}: version ${record.head} is damaged on disk (${String(damage)}); version ${v} is intact`);
      return { head, params, slots };
    } catch (e) {
      if (!(e instanceof CorruptBlobError || e instanceof BlobNotFoundError)) throw e;
      damage ??= e;
    }
  }
  throw damage;
}

/** Bitwise equality of two float32 vectors (NaN payloads and -0 included). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

async function putSlots(blobs: BlobStore, slots: ServerState['slots']): Promise<string | null> {
  const entries = Object.entries(slots);
  if (entries.length === 0) return null;
  const record = new Map<string, Tensor>(entries.map(([k, v]) => [k, { shape: [v.length], data: v }]));
  return blobs.put(encodeSafetensors(record));
}

/** Per-version DP figures (epsilon spent up to and including this version, the clip it hands on). */
function privacyMetrics(p: PrivacyReport | undefined): Record<string, number> {
  if (p === undefined) return {};
  return { epsilon: p.epsilon, ...(p.clipNorm === undefined ? {} : { dpClipNorm: p.clipNorm }) };
}

function toVersionInfo(r: VersionRecord): VersionInfo & { growth?: GrowthRecord } {
  return {
    runId: r.runId, version: r.version, parent: r.parent, hash: r.paramsHash, createdAt: r.createdAt, updates: r.updates, metrics: r.metrics,
    ...(r.growth === undefined ? {} : { growth: JSON.parse(r.growth) as GrowthRecord }),
  };
}

function asProtocolError(e: unknown): ProtocolError {
  if (e instanceof ProtocolError) return e;
  if (e instanceof InvalidUpdateError) return new ProtocolError('invalid_update', e.message);
  if (e instanceof StoreError && isOutOfSpace(e)) {
    const err = new ProtocolError('insufficient_storage', `the coordinator is out of storage, nothing was recorded; retry later (${e.message})`);
    return Object.assign(err, { retryAfterMs: COMMIT_RETRY_MS });
  }
  if (e instanceof LeaseStateError) {
    const code = e.state === 'used' ? 'lease_used' : e.state === 'missing' ? 'not_found' : e.state === 'wrong-device' ? 'forbidden' : 'lease_expired';
    return new ProtocolError(code, e.message);
  }
  throw e;
}

/** Whether a store failure is a full disk or quota (a blob write's ENOSPC/EDQUOT, SQLite's SQLITE_FULL). */
function isOutOfSpace(e: unknown): boolean {
  for (let c: unknown = e; c instanceof Error; c = c.cause) {
    const code = (c as { code?: unknown }).code;
    if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL') return true;
  }
  return false;
}

/** The server-state slot that holds a continual run's EMA of versions (config.continual.ema). */
export const CONTINUAL_EMA_SLOT = 'continual.ema';

/** What a state serves: its EMA slot when it has one (config.continual.ema), otherwise its params. */
function servedParams(state: ServerState): Float32Array {
  const ema = state.slots[CONTINUAL_EMA_SLOT];
  return ema !== undefined && ema.length === state.params.length ? ema : state.params;
}
