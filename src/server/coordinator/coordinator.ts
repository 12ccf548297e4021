// The coordinator: every run of one deployment, the stores they share, and access control. HTTP handlers call
// into this and nothing below it; the simulator and tests can drive it directly.
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import type { ModelSpec } from '../../core/model-spec.ts';
import { PlannerError } from '../../core/planner/errors.ts';
import { plannerConfig } from '../../core/planner/settings.ts';
import { ProtocolError } from '../../core/protocol/errors.ts';
import type { DeviceProfile, RegisterResponse } from '../../core/protocol/schemas.ts';
import { loadTask } from '../../device/tasks/registry.node.ts';
import { FileBlobStore, type FileBlobStoreOptions } from '../store/file-blobs.node.ts';
import { SqliteStore } from '../store/sqlite.node.ts';
import type { DeviceRecord, MetadataStore } from '../store/store.ts';
import { hashToken, newId, newToken, tokenMatches } from './auth.ts';
import { RunEvents } from './events.ts';
import { createMetrics, type CoordinatorMetrics } from './metrics.ts';
import { RunConfig, type StoredRunConfig } from './run-config.ts';
import { RunCoordinator, type GrowthResult, type RunDeps } from './run.ts';
import { GrowthSpec } from '../../core/growth/spec.ts';
import { SecAggSessions } from './secagg-sessions.ts';
import { secureRunProblems } from './secure-rounds.ts';
import { isSparse } from '../../core/codecs/spec.ts';

export interface CoordinatorOptions {
  /** Directory of the embedded store: tessera.db (SQLite) and blobs/ (content-addressed files). */
  dataDir: string;
  /** Token that guards run management. */
  adminToken: string;
  /** Evaluate versions on held-out data (default true). */
  evaluate?: boolean;
  log?: (message: string) => void;
  now?: () => number;
  /** Options of the blob store (tests pass a failing writer to simulate a full disk). */
  blobOptions?: FileBlobStoreOptions;
}

export class Coordinator {
  readonly events: RunEvents;
  /** Secure-aggregation sessions of every run: ad hoc ones and the rounds of runs in mode 'secure'. */
  readonly secagg: SecAggSessions;
  readonly metrics: CoordinatorMetrics;
  private readonly runs = new Map<string, RunCoordinator>();
  /** Runs being grown (growRun): between the old instance's retirement and the new one's opening they answer 503. */
  private readonly growing = new Set<string>();
  /** Runs that could not be loaded (a corrupt or missing file), with why: reported, never half-loaded. */
  private readonly broken = new Map<string, string>();
  private readonly adminTokenHash: string;
  private ticker: NodeJS.Timeout | undefined;

  private constructor(private readonly deps: RunDeps, adminToken: string) {
    this.events = deps.events;
    this.metrics = deps.metrics;
    this.secagg = deps.secagg;
    this.adminTokenHash = hashToken(adminToken);
  }

  /** Opens (or creates) the store in dataDir and resumes every run in it at its last version. */
  static async open(options: CoordinatorOptions): Promise<Coordinator> {
    if (options.adminToken.length < 16) throw new Error('the admin token must be at least 16 characters');
    mkdirSync(options.dataDir, { recursive: true });
    const store: MetadataStore = SqliteStore.open(join(options.dataDir, 'tessera.db'));
    const blobs = await FileBlobStore.open(join(options.dataDir, 'blobs'), options.blobOptions);
    const deps: RunDeps = {
      store, blobs, events: new RunEvents(), metrics: createMetrics(), secagg: new SecAggSessions(), evaluate: options.evaluate ?? true,
      log: options.log ?? ((m) => console.error(m)), now: options.now ?? Date.now,
    };
    const coordinator = new Coordinator(deps, options.adminToken);
    for (const record of await store.listRuns()) {
      try {
        coordinator.runs.set(record.id, await RunCoordinator.open(deps, record));
      } catch (e) {
        // One damaged run must not keep the others down; it stays out of service until repaired.
        const why = e instanceof Error ? e.message : String(e);
        coordinator.broken.set(record.id, why);
        deps.log(`run ${record.id} could not be loaded and is out of service: ${why}`);
      }
    }
    coordinator.ticker = setInterval(() => {
      for (const run of coordinator.runs.values()) run.tick().catch((e) => deps.log(`run ${run.id}: ${String(e)}`));
    }, 1000).unref();
    return coordinator;
  }

  isAdmin(token: string | undefined): boolean {
    return token !== undefined && tokenMatches(token, this.adminTokenHash);
  }

  /** Validates a run config, resolves its model from the task, and creates the run at version 0. */
  async createRun(input: unknown): Promise<{ runId: string; joinToken: string }> {
    const parsed = RunConfig.safeParse(input);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(config)'}: ${i.message}`).join('; ');
      throw new ProtocolError('bad_request', `invalid run config: ${issues}`);
    }
    const model: ModelSpec = parsed.data.model ?? (await loadTask(parsed.data.task)).model;
    const config: StoredRunConfig = { ...parsed.data, model };
    const secure = secureRunProblems(config);
    if (secure.length > 0) throw new ProtocolError('bad_request', `invalid run config: ${secure.join('; ')}`);
    const lora = loraRunProblems(config);
    if (lora.length > 0) throw new ProtocolError('bad_request', `invalid run config: ${lora.join('; ')}`);
    if (config.planner !== undefined) {
      try {
        plannerConfig(config.planner, model, config.recipe);
      } catch (e) {
        if (e instanceof PlannerError) throw new ProtocolError('bad_request', `invalid run config: ${e.message}`);
        throw e;
      }
    }
    const runId = newId('run');
    const joinToken = newToken();
    this.runs.set(runId, await RunCoordinator.create(this.deps, runId, config, hashToken(joinToken)));
    return { runId, joinToken };
  }

  run(runId: string): RunCoordinator {
    const run = this.runs.get(runId);
    if (run !== undefined) return run;
    if (this.growing.has(runId)) throw new ProtocolError('unavailable', `run ${runId} is growing its model; retry shortly`);
    const why = this.broken.get(runId);
    if (why !== undefined) throw new ProtocolError('unavailable', `run ${runId} is out of service: ${why}`);
    throw new ProtocolError('not_found', `no run ${runId}`);
  }

  /**
   * Grows a run's model mid-run (src/core/growth; RunCoordinator.grow commits the grown version) and reopens the run
   * from the store with its new model spec, so its layout, strategy, planner and evaluator are those of the new shape.
   * While that happens the run answers 503 (retry): requests must not reach the instance of the old shape.
   */
  async growRun(runId: string, input: unknown): Promise<GrowthResult> {
    const parsed = GrowthSpec.safeParse(input);
    if (!parsed.success) {
      throw new ProtocolError('bad_request', `invalid growth request: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}`);
    }
    const old = this.run(runId);
    if (this.growing.has(runId)) throw new ProtocolError('conflict', `run ${runId} is already growing`);
    this.growing.add(runId);
    try {
      const result = await old.grow(parsed.data);
      this.runs.delete(runId);
      await old.close();
      const record = await this.deps.store.getRun(runId);
      if (record === undefined) throw new Error(`run ${runId} vanished while growing`);
      try {
        this.runs.set(runId, await RunCoordinator.open(this.deps, record));
      } catch (e) {
        // The grown version is committed; a run that cannot be reopened on it is out of service, as at startup.
        this.broken.set(runId, e instanceof Error ? e.message : String(e));
        throw e;
      }
      return result;
    } finally {
      this.growing.delete(runId);
    }
  }

  listRuns(): RunCoordinator[] {
    return [...this.runs.values()];
  }

  async registerDevice(runId: string, joinToken: string | undefined, profile: DeviceProfile): Promise<RegisterResponse> {
    const run = this.run(runId);
    const record = await this.deps.store.getRun(runId);
    if (joinToken === undefined || record === undefined || !tokenMatches(joinToken, record.joinTokenHash)) {
      throw new ProtocolError('unauthorized', 'a valid join token for this run is required');
    }
    const deviceId = newId('dev');
    // The id travels inside the token so a request can be authenticated with one primary-key lookup.
    const deviceToken = `${deviceId}.${newToken()}`;
    const now = this.deps.now();
    await this.deps.store.registerDevice({
      id: deviceId, runId: run.id, tokenHash: hashToken(deviceToken), profile: JSON.stringify(profile), registeredAt: now, lastSeen: now,
    });
    return { deviceId, deviceToken };
  }

  /** The device a device token belongs to, in this run; unauthorized otherwise. */
  async authenticateDevice(runId: string, token: string | undefined): Promise<DeviceRecord> {
    const deviceId = token?.split('.')[0];
    const device = deviceId === undefined ? undefined : await this.deps.store.getDevice(runId, deviceId);
    if (token === undefined || device === undefined || !tokenMatches(token, device.tokenHash)) {
      throw new ProtocolError('unauthorized', 'a valid device token for this run is required');
    }
    return device;
  }

  async heartbeat(device: DeviceRecord, profile: DeviceProfile | undefined): Promise<void> {
    await this.deps.store.touchDevice(device.runId, device.id, this.deps.now(), profile && JSON.stringify(profile));
  }

  /** Waits for in-flight folding and evaluation (tests and orderly shutdown). */
  async idle(): Promise<void> {
    await Promise.all([...this.runs.values()].map((r) => r.idle()));
  }

  async close(): Promise<void> {
    clearInterval(this.ticker);
    for (const run of this.runs.values()) await run.close();
    await this.deps.store.close();
  }
}

/**
 * What a run with LoRA leases (planner.lora) cannot be combined with. Top-k codecs: their error feedback carries what
 * was not sent into the next lease, but a LoRA upload is adapters, not a delta, and the next lease's adapters start
 * afresh (a new random A), so the residual would be added to unrelated numbers; value codecs (fp16, int8, ...) apply.
 * Secure aggregation: it sums masked uploads coordinate by coordinate, and adapters of different ranks (or even of the
 * same rank: sum A_k times sum B_k is not sum A_k B_k) cannot be summed before their products are formed. Robust
 * rules: they refuse partial-coverage updates, and a LoRA update covers its targets only.
 */
function loraRunProblems(config: StoredRunConfig): string[] {
  if (config.planner?.lora === undefined) return [];
  const problems: string[] = [];
  if (config.codec !== undefined && isSparse(config.codec)) problems.push('codec: top-k codecs do not apply to LoRA uploads (adapters, not deltas; see planner.lora); use a value codec such as fp16 or int8');
  if (config.aggregation.mode === 'secure') problems.push('aggregation.mode: secure aggregation sums uploads before they are decoded, and LoRA adapters must be multiplied out first (planner.lora)');
  // A LoRA update covers only its targets (toGlobal), and the robust rules aggregate full-model updates only.
  if (config.aggregation.strategy.kind === 'robust') problems.push('aggregation.strategy: robust rules take full-model updates only, and a LoRA update covers only its target matrices (planner.lora)');
  return problems;
}
