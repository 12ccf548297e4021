// Analytic gradients of the mean cross-entropy against central finite differences, in float64, for one tiny model of
// each kind. This catches a wrong op or a broken derivative in a model's logits that a loss curve would hide
// (training still "works" with a slightly wrong gradient).
//
// jax-js's wasm backend evaluates exp, log and tanh in float32 even on float64 arrays (log as a short series with
// errors up to ~1e-5), which would swamp a difference quotient. So the differences are taken of the cross-entropy
// computed here on the host in float64 from the runtime's logits: exact for the MLP and CNN (matmul, conv, ReLU
// only). The GPT's logits themselves pass through exp (attention) and tanh (GELU), so its differences use a wider,
// fourth-order stencil that averages over that float32 rounding, and a looser bound.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../../src/core/rng.ts';
import { crossEntropy } from '../../src/train/loss.ts';
import { cnn } from '../../src/train/models/cnn.ts';
import { gpt } from '../../src/train/models/gpt.ts';
import { mlp } from '../../src/train/models/mlp.ts';
import type { Model } from '../../src/train/models/model.ts';
import {
  borrow, dispose, initRuntime, jit, np, toDevice, valueAndGrad, type JaxArray, type Params,
} from '../../src/train/runtime/jax.ts';
import { f64, ids, read } from './helpers.ts';

await initRuntime();

const SAMPLES = 4; // coordinates per tensor: the largest-|gradient| one plus random ones

/** Parameters away from init (unit LayerNorm gains, zero biases) so every tensor's gradient is generic. */
function perturbedParams(model: Model, seed: number): Params {
  const record = model.init(seed);
  const rng = new Rng(seed + 1);
  for (const t of record.values()) for (let i = 0; i < t.data.length; i++) t.data[i]! += 0.3 * rng.normal();
  return toDevice(record, np.float64);
}

/** Mean cross-entropy of flat logits [n, classes] in float64 on the host. */
function hostCrossEntropy(logits: Float64Array, y: readonly number[], classes: number): number {
  let sum = 0;
  for (let n = 0; n < y.length; n++) {
    const row = logits.subarray(n * classes, (n + 1) * classes);
    const max = Math.max(...row);
    let z = 0;
    for (const v of row) z += Math.exp(v - max);
    sum += max + Math.log(z) - row[y[n]!]!;
  }
  return sum / y.length;
}

interface Check { h: number; tolerance: number; fourthOrder: boolean }

async function gradcheck(model: Model, x: JaxArray, y: readonly number[], seed: number, check: Check): Promise<void> {
  const params = perturbedParams(model, seed);
  const yArr = ids(y, model.targetShape(x.shape[0]!));
  const lossOf = (p: Params, xs: JaxArray, ys: JaxArray) => crossEntropy(model.logits(p, xs), ys, model.classes);
  const [value, grads] = jit(valueAndGrad(lossOf))(borrow(params), x.ref, yArr);
  assert.equal(value.dtype, np.float64);
  value.dispose();
  const logits = jit(model.logits);
  const rng = new Rng(seed + 2);
  const at = async (name: string, i: number, delta: number): Promise<number> => {
    const basis = new Float32Array(params[name]!.size);
    basis[i] = 1;
    const p = borrow(params);
    p[name] = p[name]!.add(f64(basis, params[name]!.shape).mul(delta));
    return hostCrossEntropy(await read(logits(p, x.ref)), y, model.classes);
  };
  for (const [name] of model.shapes) {
    const g = await read(grads[name]!);
    let largest = 0;
    for (let i = 1; i < g.length; i++) if (Math.abs(g[i]!) > Math.abs(g[largest]!)) largest = i;
    // A tensor the loss ignores would pass trivially; every one of these should matter.
    assert.ok(Math.abs(g[largest]!) > 1e-4, `${name}: gradient is ~0 everywhere (max ${g[largest]})`);
    const coords = [largest, ...Array.from({ length: SAMPLES - 1 }, () => rng.int(g.length))];
    for (const i of coords) {
      const { h } = check;
      const d1 = ((await at(name, i, h)) - (await at(name, i, -h))) / (2 * h);
      const d2 = ((await at(name, i, 2 * h)) - (await at(name, i, -2 * h))) / (4 * h);
      // Richardson: (4 d1 - d2) / 3 cancels the h^2 error term of the central difference.
      const numeric = check.fourthOrder ? (4 * d1 - d2) / 3 : d1;
      const analytic = g[i]!;
      const err = Math.abs(analytic - numeric) / Math.max(Math.abs(analytic), Math.abs(numeric), 1e-3);
      assert.ok(err < check.tolerance, `${name}[${i}]: analytic ${analytic}, numeric ${numeric} (rel err ${err.toExponential(2)})`);
    }
  }
  dispose(grads);
  dispose(params);
  logits.dispose();
  x.dispose();
}

describe('gradients match central finite differences (float64)', () => {
  it('GPT (vocab 7, context 4, width 8, 2 heads, 1 layer)', async () => {
    const model = gpt({ kind: 'gpt', vocabSize: 7, context: 4, width: 8, heads: 2, layers: 1, mlpRatio: 4 });
    const rng = new Rng(11);
    const tokens = Array.from({ length: 3 * 5 }, () => rng.int(7));
    const x = tokens.filter((_, i) => i % 5 !== 4);
    const y = tokens.filter((_, i) => i % 5 !== 0);
    // Observed worst error ~3e-4 (float32 rounding / h); a wrong derivative is off by 1e-1 or more. The agreement
    // to ~3e-7 with PyTorch's autograd is in gpt-reference.test.ts.
    await gradcheck(model, ids(x, [3, 4]), y, 1, { h: 1e-2, fourthOrder: true, tolerance: 1e-3 });
  });

  it('MLP (5 -> 6 -> 4 -> 3)', async () => {
    const model = mlp({ kind: 'mlp', inputs: 5, hidden: [6, 4], classes: 3 });
    const rng = new Rng(12);
    const x = Array.from({ length: 4 * 5 }, () => rng.normal());
    await gradcheck(model, f64(x, [4, 5]), [0, 2, 1, 2], 2, { h: 1e-6, fourthOrder: false, tolerance: 1e-5 });
  });

  it('CNN (1x6x6, two strided convolutions, one hidden layer)', async () => {
    const model = cnn({
      kind: 'cnn', height: 6, width: 6, channels: 1,
      conv: [{ out: 3, kernel: 3, stride: 2 }, { out: 2, kernel: 2, stride: 1 }], hidden: [5], classes: 4,
    });
    const rng = new Rng(13);
    const x = Array.from({ length: 3 * 36 }, () => rng.next());
    await gradcheck(model, f64(x, [3, 36]), [3, 0, 1], 3, { h: 1e-6, fourthOrder: false, tolerance: 1e-5 });
  });
});
