// Our GPT against an independent PyTorch float64 implementation of GPT-2 (scripts/fixtures/train_gpt_reference.py):
// same parameters and batch must give the same logits, loss and gradients. A different head split, LayerNorm eps,
// GELU variant, mask, or an untied head shows up here as errors of 1e-4 or more.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { tensor } from '../../src/core/tensor.ts';
import { crossEntropy } from '../../src/train/loss.ts';
import { GptSpec } from '../../src/core/model-spec.ts';
import { gpt } from '../../src/train/models/gpt.ts';
import { borrow, dispose, initRuntime, jit, np, toDevice, valueAndGrad, type JaxArray, type Params } from '../../src/train/runtime/jax.ts';
import { ids, read, relErr } from './helpers.ts';

interface Fixture {
  spec: unknown;
  batch: { size: number; x: number[]; y: number[] };
  params: Record<string, { shape: number[]; data: number[] }>;
  logits: number[];
  loss: number;
  grads: Record<string, number[]>;
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/train/gpt_reference.json', import.meta.url), 'utf8')) as Fixture;

// jax-js's wasm backend evaluates exp and tanh in float32 even for float64 arrays, so agreement stops at ~1e-7.
const TOLERANCE = 2e-6;

await initRuntime();
const model = gpt(GptSpec.parse(fixture.spec));
const { size } = fixture.batch;
const record = new Map(Object.entries(fixture.params).map(([name, t]) => [name, tensor(t.shape, t.data)]));
const params = toDevice(record, np.float64);
const x = ids(fixture.batch.x, model.inputShape(size));
const y = ids(fixture.batch.y, model.targetShape(size));
const lossOf = (p: Params, xs: JaxArray, ys: JaxArray) => crossEntropy(model.logits(p, xs), ys, model.classes);

describe('GPT matches the PyTorch GPT-2 reference (float64)', () => {
  it('has the reference parameter names and shapes', () => {
    assert.deepEqual(
      Object.fromEntries(model.shapes.map(([n, s]) => [n, [...s]])),
      Object.fromEntries(Object.entries(fixture.params).map(([n, t]) => [n, t.shape])),
    );
  });

  it('computes the same logits', async () => {
    const logits = jit(model.logits)(borrow(params), x.ref);
    const err = relErr(await read(logits), fixture.logits);
    logits.dispose();
    assert.ok(err < TOLERANCE, `logits differ by ${err.toExponential(2)}`);
  });

  it('computes the same loss and gradients', async () => {
    const [loss, grads] = jit(valueAndGrad(lossOf))(borrow(params), x.ref, y.ref);
    const value = (await read(loss))[0]!;
    // Its log is a float32 series (error up to ~1e-5), hence the looser bound on the loss itself.
    assert.ok(Math.abs(value - fixture.loss) < 1e-5 * fixture.loss, `loss ${value} vs ${fixture.loss}`);
    for (const [name] of model.shapes) {
      const err = relErr(await read(grads[name]!), fixture.grads[name]!);
      assert.ok(err < TOLERANCE, `${name}: gradient differs by ${err.toExponential(2)}`);
    }
    loss.dispose();
    dispose(grads);
  });
});
