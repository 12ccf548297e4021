// Minibatches of images for classifiers: x is [B, features] float32 row-major, y is [B] int32 class ids.
import type { Rng } from '../core/rng.ts';
import { DataError } from './errors.ts';

/** A labelled image dataset held in memory, pixels scaled to [0, 1]. */
export interface ImageSet {
  readonly n: number;
  readonly height: number;
  readonly width: number;
  readonly classes: number;
  readonly classNames: readonly string[];
  /** n * height * width floats, row-major, one image after another. */
  readonly images: Float32Array;
  readonly labels: Uint8Array;
}

export interface ImageBatch {
  readonly batchSize: number;
  readonly x: Float32Array;
  readonly y: Int32Array;
}

/**
 * Training batches over a client's examples in shuffled epochs (each epoch a fresh seeded permutation). Batches have
 * a fixed size, min(batchSize, examples), so compiled kernels see one shape; an epoch's remainder shorter than a
 * batch is skipped, and those examples come up in later epochs' permutations.
 */
export class ImageBatchSampler {
  readonly batchSize: number;
  private readonly order: number[];
  private cursor: number;
  private epochsStarted = 0;

  constructor(
    private readonly set: ImageSet,
    batchSize: number,
    private readonly rng: Rng,
    indices: ArrayLike<number> = allIndices(set.n),
  ) {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new DataError(`batch size must be a positive integer, got ${batchSize}`);
    if (indices.length === 0) throw new DataError('cannot sample batches from zero examples');
    this.order = Array.from(indices);
    this.batchSize = Math.min(batchSize, this.order.length);
    this.cursor = this.order.length;
  }

  /** Epochs begun so far (1 after the first batch). */
  get epoch(): number {
    return this.epochsStarted;
  }

  next(): ImageBatch {
    if (this.cursor + this.batchSize > this.order.length) {
      this.rng.shuffle(this.order);
      this.cursor = 0;
      this.epochsStarted++;
    }
    const batch = gather(this.set, this.order, this.cursor, this.batchSize);
    this.cursor += this.batchSize;
    return batch;
  }
}

/** Evaluation batches in index order covering every example once; the last batch may be smaller. */
export function* imageEvalBatches(set: ImageSet, batchSize: number, indices: ArrayLike<number> = allIndices(set.n)): Generator<ImageBatch> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new DataError(`batch size must be a positive integer, got ${batchSize}`);
  for (let start = 0; start < indices.length; start += batchSize) {
    yield gather(set, indices, start, Math.min(batchSize, indices.length - start));
  }
}

function gather(set: ImageSet, indices: ArrayLike<number>, start: number, batchSize: number): ImageBatch {
  const features = set.height * set.width;
  const x = new Float32Array(batchSize * features);
  const y = new Int32Array(batchSize);
  for (let b = 0; b < batchSize; b++) {
    const i = indices[start + b]!;
    if (!(i >= 0 && i < set.n)) throw new DataError(`example index ${i} is outside [0, ${set.n})`);
    x.set(set.images.subarray(i * features, (i + 1) * features), b * features);
    y[b] = set.labels[i]!;
  }
  return { batchSize, x, y };
}

function allIndices(n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i);
}
