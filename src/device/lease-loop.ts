// The device's life in one loop, the same in Node and in a browser tab:
//   register (or resume a saved identity) -> loop { lease -> base weights (cached by hash) -> train recipe.localSteps
//   steps on local batches -> delta = trained - base -> encode -> upload before the deadline }
// Passing failures (network, 5xx, 429) are retried with backoff; a coordinator that forgot the device (reset) gets a
// new registration; a lease that cannot finish in time is dropped rather than uploaded late. Stopping (the signal)
// takes effect between steps and abandons the lease: a half-trained result is never uploaded. Pausing (a PauseGate,
// closed while a browser tab is hidden) holds the loop at the same boundaries and keeps the lease while its deadline
// allows. Platform code stays out: storage, identity, profile and data come in as adapters (*.node.ts, *.web.ts).
import type { ModelSpec } from '../core/model-spec.ts';
import type { DeviceProfile, Lease, Recipe } from '../core/protocol/schemas.ts';
import { Rng } from '../core/rng.ts';
import { decodeSafetensors } from '../core/safetensors.ts';
import { extract, submodelSpec } from '../core/submodel/submodel.ts';
import type { Tensor } from '../core/tensor.ts';
import { allFinite, delta } from '../core/update-math.ts';
import type { HostBatch, Model } from '../train/models/model.ts';
import { createModel } from '../train/models/registry.ts';
import { Trainer, type TrainRecipe } from '../train/trainer.ts';
import { SecAggError } from '../core/secagg/errors.ts';
import { flatten, layoutOf } from '../core/tensor.ts';
import { SecureRoundError, SecureUpload } from './secure-upload.ts';
import { ZoTrainer } from '../train/zo.ts';
import { loraModel, type LoraModel } from '../train/lora.ts';
import { parameterShapes } from '../core/submodel/shapes.ts';
import { ZoLeaseRun } from '../train/zo-lease.ts';
import { DEFAULT_BACKOFF, backoffDelay, isTransient, sleep, withRetry, type BackoffPolicy } from './backoff.ts';
import { CoordinatorError, type CoordinatorClient, type DeviceCredentials } from './client.ts';
import { encodeLeaseUpdate, MemoryResidualStore, type ResidualStore } from './error-feedback.ts';
import type { IdentityStore } from './identity.ts';
import type { PauseGate } from './pause-gate.ts';
import { throttle } from './profile.ts';
import type { Task } from './tasks/task.ts';
import { fetchWeightsCached, type WeightsCache } from './weights-cache.ts';

export type DeviceEvent =
  | { type: 'registered'; deviceId: string; resumed: boolean; shard: number | undefined }
  | { type: 'waiting'; reason: string; ms: number }
  | { type: 'lease'; lease: Lease }
  /** The run's model grew: the device switched to its new spec (followModel). */
  | { type: 'model'; model: ModelSpec; previous: ModelSpec }
  | { type: 'step'; leaseId: string; step: number; steps: number; loss: number }
  /** An update the coordinator acknowledged; in a secure round (no update of its own) once the round's sum is a version. */
  | { type: 'uploaded'; leaseId: string; updateId?: number; secure?: true; runVersion: number; trainLoss: number; trainSeconds: number; bytes: number }
  | { type: 'abandoned'; leaseId: string; reason: 'deadline' | 'stopped' | 'rejected' | 'diverged'; message: string }
  | { type: 'retry'; what: string; attempt: number; delayMs: number; error: Error }
  | { type: 'error'; error: Error; fatal: boolean };

export interface LeaseLoopOptions {
  client: CoordinatorClient;
  runId: string;
  joinToken: string;
  identity: IdentityStore;
  /**
   * The run's model spec (GET /v1/runs/:run) when the loop starts. When a run's model grows (POST /v1/runs/:run/grow),
   * the loop notices a base version whose weights do not fit this spec, reads the run's new spec and goes on with it.
   */
  model: ModelSpec;
  /** The run's task over this device's local data. */
  task: Task;
  /** Which shard of the task this device trains on; default: a hash of the device id modulo task.shards. */
  shard?: number;
  /** Sent at registration and on heartbeats; the shard is filled in here. */
  profile: DeviceProfile;
  cache: WeightsCache;
  /** Run this many times slower than the hardware allows (demo populations); default 1. */
  slowdown?: number;
  /** Stop after this many uploaded updates (default: never). */
  maxLeases?: number;
  signal?: AbortSignal;
  /** Held closed, the loop waits before its next step or lease request (a hidden browser tab); see pause-gate.ts. */
  pause?: PauseGate;
  onEvent?: (event: DeviceEvent) => void;
  backoff?: BackoffPolicy;
  random?: () => number;
  /** Where top-k codecs keep their error-feedback residual across leases (error-feedback.ts); default: memory. */
  residuals?: ResidualStore;
  /** Time kept in hand before a lease's deadline for the upload (default 2 s). */
  uploadMarginMs?: number;
  /** Seed of this device's batch sampling (mixed with the device id). */
  seed?: number;
  now?: () => number;
}

export interface LoopSummary {
  deviceId: string;
  uploaded: number;
  abandoned: number;
  steps: number;
  /** The run's version after this device's last accepted update. */
  lastRunVersion: number | undefined;
}

/** Runs leases until maxLeases updates are uploaded, the signal aborts (resolves), or a fatal error (rejects). */
export async function runLeaseLoop(options: LeaseLoopOptions): Promise<LoopSummary> {
  return new LeaseLoop(options).run();
}

/** A stable shard for a device that was not given one: FNV-1a of its id, modulo the number of shards. */
export function shardForDevice(deviceId: string, shards: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < deviceId.length; i++) h = Math.imul(h ^ deviceId.charCodeAt(i), 0x01000193);
  return (h >>> 0) % shards;
}

class LeaseLoop {
  private creds: DeviceCredentials | undefined;
  /** True from a fresh registration until the coordinator first accepts the new token. */
  private unproven = false;
  private profile: DeviceProfile;
  private trainer: { key: string; trainer: Trainer } | undefined;
  /** The zeroth-order trainer (forward passes only), kept across leases like `trainer`. */
  private zoTrainer: { key: string; trainer: ZoTrainer } | undefined;
  private sampler: { batchSize: number; next: () => HostBatch } | undefined;
  private base: { hash: string; tensors: Map<string, Tensor> } | undefined;
  /** The LoRA view of the current base and its trainer, kept while the base and the adapters' shape stay the same. */
  private loraTrainer: { key: string; trainer: Trainer; model: LoraModel } | undefined;
  /** The run's model spec as this device last learnt it (options.model, then whatever growth made it). */
  private model: ModelSpec;
  private readonly summary: LoopSummary = { deviceId: '', uploaded: 0, abandoned: 0, steps: 0, lastRunVersion: undefined };
  private readonly now: () => number;
  private readonly slowdown: number;
  private readonly residuals: ResidualStore;

  constructor(private readonly o: LeaseLoopOptions) {
    this.profile = { ...o.profile, ...(o.shard === undefined ? {} : { shard: o.shard }) };
    this.now = o.now ?? Date.now;
    this.slowdown = Math.max(1, o.slowdown ?? 1);
    this.residuals = o.residuals ?? new MemoryResidualStore();
    this.model = o.model;
  }

  async run(): Promise<LoopSummary> {
    const { signal, maxLeases = Infinity } = this.o;
    try {
      await this.resumeOrRegister();
      let rejectedInARow = 0;
      while (this.summary.uploaded < maxLeases && !signal?.aborted) {
        await this.o.pause?.wait(signal);
        const lease = await this.nextLease();
        if (lease === undefined) continue;
        const outcome = await this.work(lease);
        // Rejected updates (invalid_update, say) back off like failures, so a device with a bug cannot spin.
        rejectedInARow = outcome === 'rejected' ? rejectedInARow + 1 : 0;
        if (rejectedInARow > 0) await this.wait(backoffDelay(rejectedInARow - 1, this.policy, this.o.random), 'update rejected');
      }
    } catch (e) {
      if (!signal?.aborted) {
        this.emit({ type: 'error', error: asError(e), fatal: true });
        throw e;
      }
    } finally {
      this.trainer?.trainer.dispose();
      this.trainer = undefined;
      this.zoTrainer?.trainer.dispose();
      this.zoTrainer = undefined;
      this.disposeLora();
    }
    return this.summary;
  }

  private get policy(): BackoffPolicy {
    return this.o.backoff ?? DEFAULT_BACKOFF;
  }

  private emit(event: DeviceEvent): void {
    this.o.onEvent?.(event);
  }

  private retrying<T>(what: string, fn: () => Promise<T>, until?: number): Promise<T> {
    return withRetry(fn, {
      policy: this.policy, signal: this.o.signal, random: this.o.random, until, now: this.now,
      onRetry: (error, attempt, delayMs) => this.emit({ type: 'retry', what, attempt, delayMs, error: asError(error) }),
    });
  }

  private async wait(ms: number, reason: string): Promise<void> {
    this.emit({ type: 'waiting', reason, ms });
    await sleep(ms, this.o.signal);
  }

  private async resumeOrRegister(): Promise<void> {
    const saved = await this.o.identity.load();
    if (saved === undefined) return this.register();
    this.creds = saved;
    await this.settleShard(true);
  }

  private async register(): Promise<void> {
    const { client, runId, joinToken, signal } = this.o;
    const res = await this.retrying('register', () => client.register(runId, joinToken, this.profile, signal));
    this.creds = { deviceId: res.deviceId, deviceToken: res.deviceToken };
    this.unproven = true;
    await this.o.identity.save(this.creds);
    await this.settleShard(false);
  }

  /** Fixes the device's shard once its id is known, and tells the coordinator when it was not in the registration. */
  private async settleShard(resumed: boolean): Promise<void> {
    const creds = this.creds!;
    this.summary.deviceId = creds.deviceId;
    const shard = this.o.shard ?? (this.o.task.shards > 1 ? shardForDevice(creds.deviceId, this.o.task.shards) : undefined);
    this.emit({ type: 'registered', deviceId: creds.deviceId, resumed, shard });
    // A resumed device always refreshes its profile: this start's benchmark may differ from the last one's.
    if (!resumed && shard === this.profile.shard) return;
    this.profile = { ...this.profile, shard };
    await this.heartbeat();
  }

  /** Sends the current profile; a failure here costs nothing but freshness, so it is reported and passed over. */
  private async heartbeat(): Promise<void> {
    try {
      await this.o.client.heartbeat(this.o.runId, this.creds!, this.profile, this.o.signal);
    } catch (e) {
      if (this.o.signal?.aborted) throw e;
      if (e instanceof CoordinatorError && e.code === 'unauthorized') return; // the next lease request re-registers
      this.emit({ type: 'error', error: asError(e), fatal: false });
    }
  }

  /** A lease, or undefined after waiting as the coordinator asked (or after re-registering). */
  private async nextLease(): Promise<Lease | undefined> {
    const { client, runId, signal } = this.o;
    let res;
    try {
      res = await this.retrying('lease', () => client.requestLease(runId, this.creds!, signal));
    } catch (e) {
      if (!(e instanceof CoordinatorError)) throw e;
      if (e.code === 'unauthorized' && !this.unproven) {
        // The coordinator does not know this device (its state was reset, or the token was revoked): start over.
        // A token it refuses right after issuing it is a coordinator fault, and re-registering would only repeat it.
        await this.o.identity.clear();
        await this.register();
        return undefined;
      }
      if (e.code === 'run_paused') {
        await this.wait(Math.max(e.retryAfterMs ?? 0, this.policy.maxMs), 'run paused');
        return undefined;
      }
      throw e;
    }
    this.unproven = false;
    if (res.lease === null) {
      await this.wait(res.retryAfterMs, res.reason);
      return undefined;
    }
    this.emit({ type: 'lease', lease: res.lease });
    return res.lease;
  }

  /** Trains one lease and uploads its update; says how it ended. */
  private async work(lease: Lease): Promise<Outcome> {
    const { client, runId, signal } = this.o;
    const lastMoment = lease.deadline - (this.o.uploadMarginMs ?? 2000);
    const abandon = (reason: AbandonReason, message: string, backOff = false): Outcome => {
      this.summary.abandoned++;
      this.emit({ type: 'abandoned', leaseId: lease.leaseId, reason, message });
      return backOff ? 'rejected' : 'abandoned';
    };

    let bytes: Uint8Array;
    try {
      bytes = await this.retrying('weights', () => fetchWeightsCached(client, this.o.cache, runId, lease.baseVersion, lease.baseHash, signal, this.creds?.deviceToken), lastMoment);
    } catch (e) {
      if (signal?.aborted) return abandon('stopped', 'stopped');
      if (isTransient(e)) return abandon('deadline', asError(e).message);
      // A version gone from the store, or a download that failed its hash check: this lease is lost, not the device.
      if (e instanceof CoordinatorError && (e.code === 'not_found' || e.code === 'bad_response')) return abandon('rejected', e.message, true);
      throw e;
    }
    try {
      return await this.train(lease, bytes, lastMoment, abandon);
    } catch (e) {
      // Stopping ends the lease wherever it was; the update was not (completely) sent, so nothing half-done counts.
      if (signal?.aborted) return abandon('stopped', 'stopped');
      // Out of retries for the upload (the deadline came first): the lease is lost, the device is not.
      if (isTransient(e)) return abandon('deadline', asError(e).message);
      throw e;
    }
  }

  /** Everything after the base weights are in hand: steps, delta, upload. */
  private async train(
    lease: Lease, bytes: Uint8Array, lastMoment: number,
    abandon: (reason: AbandonReason, message: string, backOff?: boolean) => Outcome,
  ): Promise<Outcome> {
    const { client, runId, signal } = this.o;
    if (this.now() > lastMoment) return abandon('deadline', 'the lease ran out before training could start');
    if (this.base?.hash !== lease.baseHash) this.base = { hash: lease.baseHash, tensors: decodeSafetensors(bytes).tensors };
    // The run's model may have grown since this device learnt its spec: the base then has other shapes.
    const misfit = await this.followModel(this.base.tensors);
    if (misfit !== undefined) return abandon('rejected', misfit, true);
    // A submodel plan (HeteroFL/FedRolex width, or a subset of blocks) trains a smaller model cut from the base; the
    // update is that model's delta, which the coordinator embeds back with its coverage. A LoRA plan trains adapters on
    // the whole base, frozen.
    const spec = submodelSpec(this.model, lease.plan);
    const base = lease.plan.kind === 'full' || lease.plan.kind === 'lora' ? this.base.tensors : extract(this.base.tensors, this.model, lease.plan);
    // A zeroth-order lease (recipe.zo) steps with forward passes only and uploads (seed, scalar) pairs (src/train/zo.ts).
    const zo = lease.recipe.zo === undefined ? undefined : await this.zoRunFor(lease, spec, base);
    const trainer = zo ?? (lease.plan.kind === 'lora' ? await this.loraTrainerFor(lease, spec, base) : await this.trainerFor(lease.recipe, spec, base));
    const next = this.batches(lease.recipe.batchSize);

    // A seat in a secure round: the cohort forms (keys advertised and shared) before any compute is spent.
    let secure: SecureUpload | undefined;
    if (lease.secure !== undefined) {
      try {
        secure = await SecureUpload.join({ client, runId, creds: this.creds!, seat: lease.secure, deadline: lastMoment, signal, now: this.now, backoff: this.policy });
      } catch (e) {
        if (e instanceof SecureRoundError || e instanceof SecAggError) return abandon('rejected', e.message);
        throw e;
      }
    }

    const { localSteps, lr } = lease.recipe;
    let started = performance.now();
    let firstStepMs = 0;
    let lossSum = 0;
    for (let step = 1; step <= localSteps; step++) {
      if (signal?.aborted) return abandon('stopped', `stopped after ${step - 1} of ${localSteps} steps`);
      const held = await this.holdWhilePaused();
      if (held > 0) {
        started += held; // time paused is not compute time, and must not skew the projection below
        if (this.now() > lastMoment) return abandon('deadline', `paused past the lease's deadline after ${step - 1} of ${localSteps} steps`);
      }
      const t0 = performance.now();
      const loss = await trainer.step(next(), lr);
      await throttle(performance.now() - t0, this.slowdown, signal);
      if (step === 1) firstStepMs = performance.now() - t0;
      lossSum += loss;
      this.summary.steps++;
      this.emit({ type: 'step', leaseId: lease.leaseId, step, steps: localSteps, loss });
      // Projected from steps after the first (which pays for compilation): if the rest cannot end in time, stop now.
      const elapsed = performance.now() - started;
      const perStep = step > 1 ? (elapsed - firstStepMs) / (step - 1) : firstStepMs;
      if (step < localSteps && this.now() + perStep * (localSteps - step) > lastMoment) {
        return abandon('deadline', `${localSteps - step} steps left would end past the deadline`);
      }
    }
    const trainSeconds = (performance.now() - started) / 1000;
    const trainLoss = lossSum / localSteps;
    const meta = { numExamples: localSteps * lease.recipe.batchSize, localSteps, metrics: { trainLoss, trainSeconds } };
    let update: Uint8Array;
    if (zo !== undefined) {
      if (zo.diverged) return abandon('diverged', 'a zeroth-order step produced a non-finite loss', true);
      update = zo.encode(meta);
    } else {
      const trained = await (trainer as Trainer).parameters();
      const diff = new Map<string, Tensor>();
      // A LoRA lease uploads the adapters themselves (A, B), not their change: the coordinator needs A and B to form
      // s A B, and B started at zero, so an untrained adapter pair moves nothing.
      if (lease.plan.kind === 'lora') for (const [name, t] of trained) diff.set(name, t);
      else for (const [name, t] of trained) diff.set(name, { shape: t.shape, data: delta(t.data, base.get(name)!.data) });
      if (![...diff.values()].every((t) => allFinite(t.data))) return abandon('diverged', 'training produced non-finite parameters', true);
      if (secure !== undefined) {
        let done;
        try {
          done = await secure.submit(flatten(diff, layoutOf(createModel(spec).shapes)));
        } catch (e) {
          if (e instanceof SecureRoundError || e instanceof SecAggError) return abandon('deadline', e.message);
          throw e;
        }
        this.summary.uploaded++;
        this.summary.lastRunVersion = done.version;
        this.emit({ type: 'uploaded', leaseId: lease.leaseId, secure: true, runVersion: done.version, trainLoss, trainSeconds, bytes: done.bytesSent });
        return 'uploaded';
      }
      // Encoded with the lease's codec (plain fp32 safetensors when it names none); top-k codecs add the kept residual.
      update = await encodeLeaseUpdate(lease, diff, meta, this.residuals);
    }
    if (signal?.aborted) return abandon('stopped', 'stopped before the upload');
    if (this.now() > lastMoment) return abandon('deadline', 'training ended too close to the deadline to upload');

    let accepted;
    try {
      accepted = await this.retrying('upload', () => client.uploadUpdate(runId, lease.leaseId, this.creds!, update, signal), lease.deadline);
    } catch (e) {
      if (!(e instanceof CoordinatorError)) throw e;
      if (e.code === 'lease_expired' || e.code === 'lease_used') return abandon('deadline', e.message);
      if (e.code === 'invalid_update') return abandon('rejected', e.message, true);
      // The next lease request deals with these: it waits out a pause and re-registers a forgotten device.
      if (e.code === 'run_paused' || e.code === 'unauthorized') return abandon('rejected', e.message);
      throw e;
    }
    this.summary.uploaded++;
    this.summary.lastRunVersion = accepted.runVersion;
    this.emit({
      type: 'uploaded', leaseId: lease.leaseId, updateId: accepted.updateId, runVersion: accepted.runVersion,
      trainLoss, trainSeconds, bytes: update.byteLength,
    });
    await this.refreshThroughput((localSteps * lease.recipe.batchSize) / trainSeconds);
    return 'uploaded';
  }

  /** Waits while the pause gate is closed; returns how long that took (0 without a gate or when it is open). */
  private async holdWhilePaused(): Promise<number> {
    if (this.o.pause?.paused !== true) return 0;
    const t0 = performance.now();
    await this.o.pause.wait(this.o.signal);
    return performance.now() - t0;
  }

  /** One Trainer for as long as the model and optimizer settings stay the same; each lease loads its base into it. */
  private async trainerFor(recipe: Recipe, spec: ModelSpec, base: Map<string, Tensor>): Promise<Trainer> {
    const trainRecipe: TrainRecipe = {
      optimizer: { kind: recipe.optimizer, lr: recipe.lr },
      proximalMu: recipe.proximalMu,
      ...(recipe.clipGradNorm === undefined ? {} : { clipGradNorm: recipe.clipGradNorm }),
    };
    // The learning rate is passed per step, so it is not part of what a Trainer is built for.
    const key = JSON.stringify([spec, recipe.optimizer, recipe.proximalMu, recipe.clipGradNorm ?? null]);
    if (this.trainer?.key === key) {
      this.trainer.trainer.load(base);
      return this.trainer.trainer;
    }
    this.trainer?.trainer.dispose();
    this.trainer = undefined;
    const trainer = await Trainer.create(createModel(spec), base, trainRecipe);
    this.trainer = { key, trainer };
    return trainer;
  }

  /**
   * A Trainer of fresh adapters (rank, alpha and targets of the lease's `lora` plan; src/train/lora.ts) on the lease's
   * base, frozen. The frozen weights are part of the LoRA model (on the runtime), so a new base means a new model and
   * trainer; leases on the same base and adapter shape reuse them, loading fresh adapters. A is drawn per lease from
   * the device's and the lease's ids, so devices do not share one random projection.
   */
  private async loraTrainerFor(lease: Lease, spec: ModelSpec, base: Map<string, Tensor>): Promise<Trainer> {
    const plan = lease.plan as Extract<Lease['plan'], { kind: 'lora' }>;
    const { recipe } = lease;
    const seed = shardForDevice(`${this.summary.deviceId}/${lease.leaseId}`, 2 ** 31) ^ (this.o.seed ?? 0);
    const key = JSON.stringify([spec, lease.baseHash, plan, recipe.optimizer, recipe.proximalMu, recipe.clipGradNorm ?? null]);
    if (this.loraTrainer?.key === key) {
      this.loraTrainer.trainer.load(this.loraTrainer.model.init(seed));
      return this.loraTrainer.trainer;
    }
    this.disposeLora();
    const model = loraModel(createModel(spec), base, { rank: plan.rank, alpha: plan.alpha, targets: plan.targets });
    try {
      const trainer = await Trainer.create(model, model.init(seed), {
        optimizer: { kind: recipe.optimizer, lr: recipe.lr },
        proximalMu: recipe.proximalMu,
        ...(recipe.clipGradNorm === undefined ? {} : { clipGradNorm: recipe.clipGradNorm }),
      });
      this.loraTrainer = { key, trainer, model };
      return trainer;
    } catch (e) {
      model.dispose();
      throw e;
    }
  }

  private disposeLora(): void {
    this.loraTrainer?.trainer.dispose();
    this.loraTrainer?.model.dispose();
    this.loraTrainer = undefined;
  }

  /**
   * Follows the run's model when a base version does not fit the spec this device holds (the run grew: POST
   * /v1/runs/:run/grow makes a version of a new shape and expires the leases on the old one): reads the run's current
   * spec and switches to it, so the next trainer is built for the new shape. Says why when even that spec does not fit
   * (the lease is then dropped), or throws when the new model would need other data (another context or vocabulary),
   * which this device's task cannot give.
   */
  private async followModel(base: ReadonlyMap<string, Tensor>): Promise<string | undefined> {
    if (fitsSpec(base, this.model)) return undefined;
    const view = await this.retrying('run', () => this.o.client.getRun(this.o.runId, this.o.signal));
    if (!fitsSpec(base, view.model)) {
      return `the lease's base weights fit neither this device's model spec nor the run's current one (${JSON.stringify(view.model)})`;
    }
    const [before, after] = [createModel(this.model), createModel(view.model)];
    if (before.inputShape(1).join() !== after.inputShape(1).join() || before.classes !== after.classes) {
      throw new Error(`the run's model changed its inputs or outputs (${JSON.stringify(this.model)} -> ${JSON.stringify(view.model)}): this device's data no longer fits it; restart the device`);
    }
    this.emit({ type: 'model', model: view.model, previous: this.model });
    this.model = view.model;
    return undefined;
  }

  /** A zeroth-order run of this lease on a ZoTrainer kept while the model and the seed pool stay the same. */
  private async zoRunFor(lease: Lease, spec: ModelSpec, base: Map<string, Tensor>): Promise<ZoLeaseRun> {
    const zo = lease.recipe.zo!;
    const key = JSON.stringify([spec, zo]);
    if (this.zoTrainer?.key === key) this.zoTrainer.trainer.load(base);
    else {
      this.zoTrainer?.trainer.dispose();
      this.zoTrainer = { key, trainer: await ZoTrainer.create(createModel(spec), base, zo) };
    }
    // Seed indices drawn per lease from the device's id and the lease's id: reproducible, different across leases.
    const rng = new Rng(shardForDevice(`${this.summary.deviceId}/${lease.leaseId}`, 2 ** 31) ^ (this.o.seed ?? 0));
    return new ZoLeaseRun(this.zoTrainer.trainer, zo, rng);
  }

  /** This device's batches; the sampler lives across leases so successive leases see new data, not the same start. */
  private batches(batchSize: number): () => HostBatch {
    if (this.sampler?.batchSize !== batchSize) {
      const seed = shardForDevice(this.summary.deviceId, 2 ** 31) ^ (this.o.seed ?? 0);
      this.sampler = { batchSize, next: this.o.task.trainBatches(batchSize, new Rng(seed), this.profile.shard) };
    }
    return this.sampler.next;
  }

  /** Keeps the coordinator's view of this device's speed honest when real leases disagree with the benchmark. */
  private async refreshThroughput(measured: number): Promise<void> {
    const declared = this.profile.examplesPerSecond;
    if (!(measured > 0) || Math.abs(measured - declared) <= 0.25 * declared) return;
    this.profile = { ...this.profile, examplesPerSecond: Number(measured.toPrecision(3)) };
    await this.heartbeat();
  }
}

type AbandonReason = Extract<DeviceEvent, { type: 'abandoned' }>['reason'];
/** How a lease ended; 'rejected' makes the loop back off before the next one. */
type Outcome = 'uploaded' | 'abandoned' | 'rejected';

/** Whether weights have exactly the parameters (names and shapes) of a model of `spec`. */
function fitsSpec(weights: ReadonlyMap<string, Tensor>, spec: ModelSpec): boolean {
  const shapes = parameterShapes(spec);
  return shapes.length === weights.size && shapes.every(([name, shape]) => weights.get(name)?.shape.join() === shape.join());
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
