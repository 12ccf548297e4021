// What the engine needs from local training: the two modes plug in here. Full mode runs the real Trainer on the
// device's real data shard (full-backend.node.ts); fast mode replaces training by a closed-form cost model on a
// synthetic objective (fast-backend.ts). The engine owns time, bytes, availability and the strategy; a backend only
// turns (base parameters, device shard, plan, recipe) into a delta and scores versions.
import type { Coverage } from '../core/coverage.ts';
import type { Plan } from '../core/protocol/schemas.ts';

/** A `lora` plan (src/core/protocol/schemas.ts). */
export type LoraPlan = Extract<Plan, { kind: 'lora' }>;

export interface LocalTraining {
  readonly device: number;
  readonly shard: number;
  /** The lease's base version's parameters; read-only. */
  readonly base: Float32Array;
  /** Which part of the model the lease trains. */
  readonly plan: Plan;
  readonly localSteps: number;
  readonly batchSize: number;
  /** Seeds the lease's batch sampling and noise, so a lease trains the same way in every run with the same seed. */
  readonly seed: number;
}

export interface TrainedDelta {
  /** trained - base, over the whole flat vector (zero outside `coverage`). */
  readonly delta: Float32Array;
  /** The coordinates a submodel plan trained; absent for the full model. */
  readonly coverage?: Coverage;
  readonly trainLoss?: number;
}

/**
 * What a LoRA lease uploads: the adapters themselves (A and B of every target, flat in the layout of
 * loraPlanShapes, as a device's lease loop uploads them), not a delta. The server turns them into one (loraToGlobal).
 */
export interface TrainedAdapters {
  readonly adapters: Float32Array;
  readonly trainLoss?: number;
}

export interface SimBackend {
  /** What the strategies fold: the flat parameter vector's length. */
  readonly length: number;
  /** Nominal model size, for bytes and memory (equal to `length` in full mode). */
  readonly parameters: number;
  /** Data shards devices are spread over. */
  readonly shards: number;
  /** The metric names `evaluate` returns, the first being the one plotted. */
  readonly metrics: readonly string[];
  initialParams(): Float32Array;
  train(job: LocalTraining): Promise<TrainedDelta | TrainedAdapters> | TrainedDelta | TrainedAdapters;
  /**
   * The server's side of a LoRA upload (after the codec): s A B on each target with the coverage of exactly the
   * targets, as the coordinator's toGlobal forms it. Backends whose `train` returns adapters have it.
   */
  loraToGlobal?(adapters: Float32Array, plan: LoraPlan): { delta: Float32Array; coverage: Coverage };
  evaluate(params: Float32Array): Promise<Record<string, number>> | Record<string, number>;
  dispose(): void;
}
