// What the trainer needs from a model: its parameter shapes, a seeded initialisation on the host, and a loss and
// logits written in runtime ops. Models are pure descriptions; the trainer owns parameters and optimizer state.
import type { Tensor } from '../../core/tensor.ts';
import type { JaxArray, Params } from '../runtime/jax.ts';

/** One batch on the host: inputs (token ids or features) and integer targets, flat row-major. */
export interface HostBatch {
  readonly x: Int32Array | Float32Array;
  readonly y: Int32Array;
  /** Number of examples (rows) in the batch. */
  readonly batchSize: number;
}

export interface Model {
  /** (name, shape) of every parameter tensor. */
  readonly shapes: ReadonlyArray<readonly [string, readonly number[]]>;
  /** Number of classes of each prediction (vocabulary size for language models). */
  readonly classes: number;
  /** Shapes of x and y on the device for a batch of `size` examples. */
  inputShape(size: number): number[];
  targetShape(size: number): number[];
  /** Fresh parameters, deterministic in the seed. */
  init(seed: number): Map<string, Tensor>;
  /** Unnormalised log-probabilities, shape [...targetShape, classes]. Consumes its arguments. */
  logits(params: Params, x: JaxArray): JaxArray;
  /** Names of tensors that weight decay applies to (matrices and kernels, not biases, norms or embeddings' pos). */
  readonly decayed: ReadonlySet<string>;
}
