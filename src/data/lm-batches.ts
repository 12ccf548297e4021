// Language-model batches from a token stream: row b of `inputs` is a window of `ctx` tokens and the same row of
// `targets` is that window shifted by one, so position t is trained to predict token t+1. Flat row-major [B, T].
import type { Rng } from '../core/rng.ts';
import { DataError } from './errors.ts';

export interface LmBatch {
  readonly batchSize: number;
  readonly ctx: number;
  readonly inputs: Int32Array;
  readonly targets: Int32Array;
}

export interface LmEvalOptions {
  /** Stop after this many batches (default: the whole stream). */
  readonly maxBatches?: number;
}

/** A training batch of `batchSize` windows starting at uniformly random offsets (with replacement). */
export function sampleLmBatch(stream: Int32Array, batchSize: number, ctx: number, rng: Rng): LmBatch {
  checkShape(stream, batchSize, ctx);
  const batch = emptyBatch(batchSize, ctx);
  for (let b = 0; b < batchSize; b++) fillRow(batch, b, stream, rng.int(stream.length - ctx));
  return batch;
}

/**
 * Deterministic evaluation batches: consecutive windows at offsets 0, ctx, 2ctx, ... so each token after the first
 * is predicted exactly once. The last batch may hold fewer than `batchSize` windows; a tail shorter than a window
 * is left out.
 */
export function* lmEvalBatches(stream: Int32Array, batchSize: number, ctx: number, options: LmEvalOptions = {}): Generator<LmBatch> {
  checkShape(stream, batchSize, ctx);
  const windows = Math.floor((stream.length - 1) / ctx);
  const batches = Math.min(Math.ceil(windows / batchSize), options.maxBatches ?? Infinity);
  for (let k = 0; k < batches; k++) {
    const rows = Math.min(batchSize, windows - k * batchSize);
    const batch = emptyBatch(rows, ctx);
    for (let b = 0; b < rows; b++) fillRow(batch, b, stream, (k * batchSize + b) * ctx);
    yield batch;
  }
}

function emptyBatch(batchSize: number, ctx: number): LmBatch {
  return { batchSize, ctx, inputs: new Int32Array(batchSize * ctx), targets: new Int32Array(batchSize * ctx) };
}

function fillRow(batch: LmBatch, row: number, stream: Int32Array, start: number): void {
  batch.inputs.set(stream.subarray(start, start + batch.ctx), row * batch.ctx);
  batch.targets.set(stream.subarray(start + 1, start + 1 + batch.ctx), row * batch.ctx);
}

function checkShape(stream: Int32Array, batchSize: number, ctx: number): void {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new DataError(`batch size must be a positive integer, got ${batchSize}`);
  if (!Number.isInteger(ctx) || ctx < 1) throw new DataError(`context length must be a positive integer, got ${ctx}`);
  if (stream.length < ctx + 1) {
    throw new DataError(`a stream of ${stream.length} tokens is too short for one window of ${ctx} + 1 tokens`);
  }
}
