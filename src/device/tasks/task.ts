// A task binds real data to a model: what one device trains on (its shard), what everyone is evaluated on, and the
// baseline a result should be read against. Tasks are what the demo, the device runtime and the benchmarks share.
import type { Rng } from '../../core/rng.ts';
import type { ModelSpec } from '../../core/model-spec.ts';
import type { HostBatch } from '../../train/models/model.ts';

export interface Task {
  readonly name: string;
  readonly model: ModelSpec;
  /** Number of shards (clients) the training data is partitioned into. */
  readonly shards: number;
  /** An endless source of training batches from one shard, or from all the training data when shard is undefined. */
  trainBatches(batchSize: number, rng: Rng, shard?: number): () => HostBatch;
  /** Held-out evaluation batches; the same every call. */
  evalBatches(batchSize: number, maxBatches?: number): Iterable<HostBatch>;
  /** Language models whose tokens are not characters: held-out characters per token (loss per char = loss / this). */
  readonly charsPerToken?: number;
  /**
   * Parts of the held-out data worth tracking on their own (a continual task's eras): the coordinator evaluates each
   * one per version besides the whole set, so forgetting is visible. `id` is short and stable (it names metrics).
   */
  readonly slices?: ReadonlyArray<{ readonly id: string; evalBatches(batchSize: number, maxBatches?: number): Iterable<HostBatch> }>;
  /** The quality a model must beat to have learned anything, for reports. */
  readonly baseline: { metric: 'loss' | 'accuracy'; value: number; label: string };
}
