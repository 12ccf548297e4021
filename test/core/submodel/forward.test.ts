// A numeric check of the slicing's consistency across tensors: a full-width plan with a rolled window (ratio 1,
// offset and shift nonzero) keeps every unit, only reordered: hidden units, conv channels, GPT heads with their q, k, v
// columns and c_proj rows, MLP inner units and residual channels in head-sized blocks. A permutation applied
// consistently is the same function, so the submodel must compute the global model's logits; cutting one tensor's
// axis in a different order from its neighbour's (say k columns of another head than q) breaks this at once.
// (At ratio < 1 there is no exact reference: LayerNorm and softmax see fewer channels, as in HeteroFL.)
import '../../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ModelSpec } from '../../../src/core/model-spec.ts';
import type { Plan } from '../../../src/core/protocol/schemas.ts';
import { Rng } from '../../../src/core/rng.ts';
import { extract, submodelSpec } from '../../../src/core/submodel/submodel.ts';
import type { TensorRecord } from '../../../src/core/tensor.ts';
import { createModel } from '../../../src/train/models/registry.ts';
import { initRuntime, jit, np, toDevice } from '../../../src/train/runtime/jax.ts';

await initRuntime();

async function logitsOf(spec: ModelSpec, params: TensorRecord, x: Int32Array | Float32Array, batch: number): Promise<Float32Array> {
  const model = createModel(spec);
  const shape = model.inputShape(batch);
  const input = x instanceof Int32Array ? np.array(x, { shape, dtype: np.int32 }) : np.array(x, { shape });
  const f = jit(model.logits);
  const out = f(toDevice(params), input);
  const data = Float32Array.from((await out.data()) as ArrayLike<number>);
  f.dispose();
  return data;
}

function maxRelErr(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / (scale || 1);
}

const cases: ReadonlyArray<readonly [ModelSpec, (rng: Rng, batch: number) => Int32Array | Float32Array]> = [
  [
    { kind: 'gpt', vocabSize: 13, context: 6, width: 16, heads: 4, layers: 2, mlpRatio: 4 },
    (rng, batch) => Int32Array.from({ length: batch * 6 }, () => rng.int(13)),
  ],
  [{ kind: 'mlp', inputs: 9, hidden: [7, 5], classes: 4 }, (rng, batch) => Float32Array.from({ length: batch * 9 }, () => rng.normal())],
  [
    { kind: 'cnn', height: 6, width: 6, channels: 2, conv: [{ out: 3, kernel: 3, stride: 1 }, { out: 5, kernel: 3, stride: 2 }], hidden: [6], classes: 3 },
    (rng, batch) => Float32Array.from({ length: batch * 72 }, () => rng.normal()),
  ],
];

describe('a rolled full-width submodel computes the global model exactly', () => {
  for (const [spec, input] of cases) {
    for (const plan of [{ kind: 'width', ratio: 1, offset: 1 }, { kind: 'width', ratio: 1, offset: 3, shift: 2 }] as Plan[]) {
      it(`${spec.kind} ${JSON.stringify(plan)}`, async () => {
        const global = createModel(spec).init(5);
        // Nonzero biases and LayerNorm gains, so a misplaced one shows.
        const rng = new Rng(9);
        for (const t of global.values()) for (let i = 0; i < t.data.length; i++) t.data[i] = t.data[i]! + 0.1 * rng.normal();
        const x = input(new Rng(3), 2);
        const expected = await logitsOf(spec, global, x, 2);
        const actual = await logitsOf(submodelSpec(spec, plan), extract(global, spec, plan), x, 2);
        const err = maxRelErr(actual, expected);
        assert.ok(err < 1e-5, `${spec.kind}: submodel logits differ from the global model's by ${err.toExponential(2)}`);
      });
    }
  }
});
