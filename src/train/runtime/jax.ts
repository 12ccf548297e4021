// The one module that imports the tensor runtime. Everything above the train layer sees host tensors
// (core/tensor.ts); models and optimizers see `Params` of runtime arrays. Swapping the runtime means rewriting this
// file and the model/optimizer bodies, nothing outside src/train.
//
// jax-js's ownership rule: every function consumes its array arguments; `.ref` adds a reference for reuse. Helpers
// here name the two patterns we need (borrowing a whole parameter tree, and freeing one).
import { init, numpy as np, tree } from '@jax-js/jax';
import type { Tensor, TensorRecord } from '../../core/tensor.ts';

export { jit, valueAndGrad, grad, nn, numpy as np, lax, tree } from '@jax-js/jax';
export type { Array as JaxArray } from '@jax-js/jax';

/** Named runtime arrays: model parameters, gradients, optimizer moments. */
export type Params = Record<string, np.Array>;

let ready: Promise<void> | undefined;
/** Starts the wasm backend once; every entry into the train layer awaits it. */
export function initRuntime(): Promise<void> {
  ready ??= init('wasm').then((devices) => {
    if (!devices.includes('wasm')) throw new Error('the jax-js wasm backend is not available on this platform');
  });
  return ready;
}

/** A new reference to every leaf, for passing a tree into a consuming function while keeping it. */
export function borrow<T extends Params>(params: T): T {
  return tree.map((a: np.Array) => a.ref, params) as T;
}

export function dispose(params: Params): void {
  for (const a of Object.values(params)) a.dispose();
}

export function toDevice(record: TensorRecord, dtype: np.DType = np.float32): Params {
  const out: Params = {};
  for (const [name, t] of record) {
    const a = np.array(t.data, { shape: [...t.shape] });
    out[name] = dtype === np.float32 ? a : a.astype(dtype);
  }
  return out;
}

/** Copies parameters to the host as float32 (borrowing, so `params` stays usable). */
export async function toHost(params: Params): Promise<Map<string, Tensor>> {
  const entries = await Promise.all(
    Object.entries(params).map(async ([name, a]) => {
      const data = await a.ref.astype(np.float32).data();
      return [name, { shape: [...a.shape], data: new Float32Array(data as Float32Array) }] as const;
    }),
  );
  return new Map(entries);
}

/** Reads a scalar array and frees it. */
export async function scalar(a: np.Array): Promise<number> {
  const data = await a.data();
  return Number(data[0]);
}
