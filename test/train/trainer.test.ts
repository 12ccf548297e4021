// The Trainer's contract: micro-batch accumulation, determinism, learning on real data, FedProx, input validation,
// evaluation and gradient clipping. Tiny models and synthetic batches except where real data is the point.
// Every assert.ok carries a message: without one, Node rebuilds it by parsing this file, which under tsx takes minutes.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../../src/core/rng.ts';
import type { Tensor, TensorRecord } from '../../src/core/tensor.ts';
import { loadFashionMnist } from '../../src/data/fashion-mnist.node.ts';
import { ImageBatchSampler, imageEvalBatches } from '../../src/data/image-batches.ts';
import { gpt } from '../../src/train/models/gpt.ts';
import { mlp } from '../../src/train/models/mlp.ts';
import type { HostBatch, Model } from '../../src/train/models/model.ts';
import { initRuntime, jit, toDevice } from '../../src/train/runtime/jax.ts';
import { Trainer, type TrainRecipe } from '../../src/train/trainer.ts';
import { cloneRecord, distance, read, relErr } from './helpers.ts';

await initRuntime();

const tinyMlp = mlp({ kind: 'mlp', inputs: 6, hidden: [5], classes: 3 });
const tinyGpt = gpt({ kind: 'gpt', vocabSize: 7, context: 4, width: 8, heads: 2, layers: 1, mlpRatio: 4 });
const sgd = (lr: number, extra: Partial<TrainRecipe> = {}): TrainRecipe => ({ optimizer: { kind: 'sgd', lr }, ...extra });

function mlpBatch(rng: Rng, size: number): HostBatch {
  return {
    batchSize: size,
    x: Float32Array.from({ length: size * 6 }, () => rng.normal()),
    y: Int32Array.from({ length: size }, () => rng.int(3)),
  };
}

function gptBatch(rng: Rng, size: number): HostBatch {
  return {
    batchSize: size,
    x: Int32Array.from({ length: size * 4 }, () => rng.int(7)),
    y: Int32Array.from({ length: size * 4 }, () => rng.int(7)),
  };
}

function concat(a: HostBatch, b: HostBatch): HostBatch {
  const x = a.x instanceof Int32Array ? new Int32Array(a.x.length + b.x.length) : new Float32Array(a.x.length + b.x.length);
  x.set(a.x);
  x.set(b.x, a.x.length);
  const y = new Int32Array(a.y.length + b.y.length);
  y.set(a.y);
  y.set(b.y, a.y.length);
  return { x, y, batchSize: a.batchSize + b.batchSize };
}

/** Trains a fresh trainer on the given steps (each a batch or micro-batches) and returns its parameters and losses. */
async function train(
  model: Model, initial: TensorRecord, recipe: TrainRecipe, steps: ReadonlyArray<HostBatch | HostBatch[]>,
): Promise<{ params: Map<string, Tensor>; losses: number[] }> {
  const trainer = await Trainer.create(model, initial, recipe);
  const losses: number[] = [];
  for (const s of steps) losses.push(await trainer.step(s));
  const params = await trainer.parameters();
  trainer.dispose();
  return { params, losses };
}

/** Flat (w - w0) over all tensors, in the model's order. */
function change(after: TensorRecord, before: TensorRecord): number[] {
  return [...before.keys()].flatMap((n) => Array.from(after.get(n)!.data, (v, i) => v - before.get(n)!.data[i]!));
}

describe('Trainer', () => {
  for (const [model, batch] of [[tinyMlp, mlpBatch], [tinyGpt, gptBatch]] as const) {
    it(`accumulates equal micro-batches into the gradient of their concatenation (${model === tinyMlp ? 'MLP' : 'GPT'})`, async () => {
      const rng = new Rng(1);
      const [b1, b2] = [batch(rng, 4), batch(rng, 4)];
      const init = model.init(1);
      const split = await train(model, init, sgd(0.5), [[b1, b2]]);
      const whole = await train(model, init, sgd(0.5), [concat(b1, b2)]);
      const first = await train(model, init, sgd(0.5), [b1]);
      const err = relErr(change(split.params, init), change(whole.params, init));
      assert.ok(err < 1e-5, `micro-batched step differs from the concatenated one by ${err.toExponential(2)}`);
      assert.ok(Math.abs(split.losses[0]! - whole.losses[0]!) < 1e-5, `losses ${split.losses[0]} vs ${whole.losses[0]}`);
      // The second micro-batch counts: stepping on b1 alone lands elsewhere.
      assert.ok(relErr(change(first.params, init), change(whole.params, init)) > 1e-2, 'b2 made no difference');
    });
  }

  it('uses the learning rate passed to step over the recipe\'s', async () => {
    const rng = new Rng(2);
    const b = mlpBatch(rng, 8);
    const init = tinyMlp.init(2);
    const trainer = await Trainer.create(tinyMlp, init, sgd(0.5));
    await trainer.step(b, 0.125);
    const quarter = change(await trainer.parameters(), init);
    trainer.dispose();
    const full = change((await train(tinyMlp, init, sgd(0.5), [b])).params, init);
    assert.ok(relErr(quarter, full.map((v) => v / 4)) < 1e-5, 'lr 0.125 did not give a quarter of the lr 0.5 step');
  });

  it('is deterministic: same seed and batches give bit-identical parameters; seeds give different inits', async () => {
    const rng = new Rng(3);
    const steps = Array.from({ length: 5 }, () => gptBatch(rng, 2));
    const recipe: TrainRecipe = { optimizer: { kind: 'adamw', lr: 1e-2 } };
    const a = await train(tinyGpt, tinyGpt.init(7), recipe, steps);
    const b = await train(tinyGpt, tinyGpt.init(7), recipe, steps);
    assert.deepEqual(a.params, b.params);
    assert.deepEqual(a.losses, b.losses);
    assert.deepEqual(tinyGpt.init(7), tinyGpt.init(7));
    const [s1, s2] = [tinyMlp.init(1), tinyMlp.init(2)];
    for (const [name, t] of s1) assert.notDeepEqual(t.data, s2.get(name)!.data, `${name} is the same for seeds 1 and 2`);
  });

  it('learns Fashion-MNIST: an MLP\'s held-out loss falls well below ln 10 in 100 steps', async () => {
    const data = await loadFashionMnist('test'); // the 10,000-image split loads faster; any real images will do
    const model = mlp({ kind: 'mlp', inputs: 784, hidden: [32], classes: 10 });
    const trainIdx = Array.from({ length: 2000 }, (_, i) => i);
    const heldOut = Array.from({ length: 1000 }, (_, i) => 9000 + i);
    const trainer = await Trainer.create(model, model.init(0), { optimizer: { kind: 'adamw', lr: 3e-3 } });
    const before = await trainer.evaluate(imageEvalBatches(data, 500, heldOut));
    const sampler = new ImageBatchSampler(data, 32, new Rng(0), trainIdx);
    for (let i = 0; i < 100; i++) await trainer.step(sampler.next());
    const after = await trainer.evaluate(imageEvalBatches(data, 500, heldOut));
    trainer.dispose();
    assert.ok(Math.abs(before.loss - Math.log(10)) < 0.25, `initial loss ${before.loss} is not ~ln 10`);
    assert.ok(after.loss < 0.9, `loss after 100 steps: ${after.loss} (from ${before.loss})`);
    assert.ok(after.accuracy > 0.65, `accuracy after 100 steps: ${after.accuracy}`);
  });

  describe('FedProx (proximalMu)', () => {
    it('keeps the parameters closer to where training started', async () => {
      const rng = new Rng(4);
      const steps = Array.from({ length: 20 }, () => mlpBatch(rng, 8));
      const init = tinyMlp.init(4);
      const plain = await train(tinyMlp, init, sgd(0.2), steps);
      const prox = await train(tinyMlp, init, sgd(0.2, { proximalMu: 1 }), steps);
      const [dPlain, dProx] = [distance(plain.params, init), distance(prox.params, init)];
      assert.ok(dProx < 0.8 * dPlain, `distance from start: ${dProx} with mu = 1, ${dPlain} with mu = 0`);
    });

    it('adds exactly mu (w - w0) to the gradient', async () => {
      // After one SGD step w1 = w0 - lr g(w0) in both runs (the proximal term is zero at w0); the second step then
      // differs only by -lr mu (w1 - w0).
      const [lr, mu] = [0.5, 0.5];
      const rng = new Rng(5);
      const steps = [mlpBatch(rng, 8), mlpBatch(rng, 8)];
      const init = tinyMlp.init(5);
      const w1 = (await train(tinyMlp, init, sgd(lr, { proximalMu: mu }), steps.slice(0, 1))).params;
      const plain = (await train(tinyMlp, init, sgd(lr), steps)).params;
      const prox = (await train(tinyMlp, init, sgd(lr, { proximalMu: mu }), steps)).params;
      const expected = change(w1, init).map((d) => -lr * mu * d);
      const err = relErr(change(prox, plain), expected);
      assert.ok(err < 1e-4, `proximal step differs from -lr mu (w1 - w0) by ${err.toExponential(2)}`);
    });
  });

  it('rejects initial parameters of the wrong shape with a RangeError naming the tensor', async () => {
    const init = cloneRecord(tinyMlp.init(0));
    const w = init.get('fc.1.weight')!;
    init.set('fc.1.weight', { shape: [...w.shape].reverse(), data: w.data });
    await assert.rejects(Trainer.create(tinyMlp, init, sgd(0.1)), (e: unknown) =>
      e instanceof RangeError && /fc\.1\.weight/.test(e.message) && /\[5, 3\]/.test(e.message));
    init.delete('fc.0.bias');
    await assert.rejects(Trainer.create(tinyMlp, init, sgd(0.1)), (e: unknown) =>
      e instanceof RangeError && /fc\.0\.bias/.test(e.message));
    const extra = cloneRecord(tinyMlp.init(0));
    extra.set('fc.9.weight', { shape: [1], data: new Float32Array(1) });
    await assert.rejects(Trainer.create(tinyMlp, extra, sgd(0.1)), (e: unknown) =>
      e instanceof RangeError && /fc\.9\.weight is not part of the model/.test(e.message));
  });

  it('rejects a step with no batches', async () => {
    const trainer = await Trainer.create(tinyMlp, tinyMlp.init(0), sgd(0.1));
    await assert.rejects(trainer.step([]), RangeError);
    assert.equal(trainer.steps, 0);
    trainer.dispose();
  });

  describe('evaluate', () => {
    it('averages over examples across uneven batches, with accuracy from argmax and perplexity = exp(loss)', async () => {
      const rng = new Rng(12);
      const [b1, b2] = [mlpBatch(rng, 3), mlpBatch(rng, 2)];
      const init = tinyMlp.init(6);
      const trainer = await Trainer.create(tinyMlp, init, sgd(0.1));
      const result = await trainer.evaluate([b1, b2]);
      trainer.dispose();
      // Independent host computation from the model's logits on the concatenated batch.
      const all = concat(b1, b2);
      const logitsFn = jit(tinyMlp.logits);
      const xs = toDevice(new Map([['x', { shape: [5, 6], data: all.x as Float32Array }]]))['x']!;
      const logits = await read(logitsFn(toDevice(init), xs));
      logitsFn.dispose();
      let nll = 0;
      let correct = 0;
      for (let n = 0; n < 5; n++) {
        const row = Array.from(logits.subarray(n * 3, n * 3 + 3));
        const max = Math.max(...row);
        nll += max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) - row[all.y[n]!]!;
        if (row.indexOf(max) === all.y[n]) correct++;
      }
      assert.ok(correct > 0 && correct < 5, 'the check needs some right and some wrong predictions');
      assert.equal(result.examples, 5);
      // jax-js's log is a float32 series with errors up to ~1e-5.
      assert.ok(Math.abs(result.loss - nll / 5) < 5e-5, `loss ${result.loss} vs ${nll / 5}`);
      assert.equal(result.accuracy, correct / 5);
      assert.equal(result.perplexity, Math.exp(result.loss));
    });

    it('scores a language model per token: near-uniform loss ln V at init, accuracy in [0, 1]', async () => {
      const rng = new Rng(7);
      const trainer = await Trainer.create(tinyGpt, tinyGpt.init(0), sgd(0.1));
      const result = await trainer.evaluate([gptBatch(rng, 2), gptBatch(rng, 1)]);
      trainer.dispose();
      assert.equal(result.examples, 3);
      assert.ok(Math.abs(result.loss - Math.log(7)) < 0.05, `loss ${result.loss} vs ln 7`);
      assert.ok(result.accuracy >= 0 && result.accuracy <= 1, `accuracy ${result.accuracy}`);
      // 12 token predictions: accuracy is a multiple of 1/12.
      assert.ok(Math.abs(result.accuracy * 12 - Math.round(result.accuracy * 12)) < 1e-9, `accuracy ${result.accuracy}`);
      assert.equal(result.perplexity, Math.exp(result.loss));
    });
  });

  describe('clipGradNorm', () => {
    it('bounds one SGD step by lr * maxNorm when the gradient is larger', async () => {
      const [lr, maxNorm] = [0.5, 1e-3];
      const b = mlpBatch(new Rng(8), 8);
      const init = tinyMlp.init(8);
      const clipped = await train(tinyMlp, init, sgd(lr, { clipGradNorm: maxNorm }), [b]);
      const stepNorm = distance(clipped.params, init);
      // The clipped gradient has norm maxNorm (up to the 1e-6 guard and float32 rounding), not less.
      assert.ok(stepNorm <= lr * maxNorm * (1 + 1e-3), `step norm ${stepNorm} > ${lr * maxNorm}`);
      assert.ok(stepNorm >= lr * maxNorm * 0.99, `step norm ${stepNorm} is well below ${lr * maxNorm}`);
      // Direction unchanged: the clipped step is the unclipped one scaled down.
      const free = await train(tinyMlp, init, sgd(lr), [b]);
      const scale = stepNorm / distance(free.params, init);
      assert.ok(scale < 0.1, 'the test gradient should be far above maxNorm');
      const err = relErr(change(clipped.params, init), change(free.params, init).map((v) => v * scale));
      assert.ok(err < 1e-3, `clipping changed the step's direction (${err.toExponential(2)})`);
    });

    it('leaves a gradient below the bound alone', async () => {
      const b = mlpBatch(new Rng(9), 8);
      const init = tinyMlp.init(9);
      const loose = await train(tinyMlp, init, sgd(0.5, { clipGradNorm: 1e6 }), [b]);
      const free = await train(tinyMlp, init, sgd(0.5), [b]);
      const err = relErr(change(loose.params, init), change(free.params, init));
      assert.ok(err < 1e-6, `an inactive clip changed the step by ${err.toExponential(2)}`);
    });
  });
});

describe('Trainer.load', () => {
  it('restarts from new parameters with fresh optimizer state and FedProx anchor, as a new trainer would', async () => {
    const model = tinyMlp;
    const recipe = { optimizer: { kind: 'adamw' as const, lr: 0.05 }, proximalMu: 0.5 };
    const batch = mlpBatch(new Rng(3), 4);
    const reused = await Trainer.create(model, model.init(1), recipe);
    await reused.step(batch);
    await reused.step(batch);
    reused.load(model.init(2));
    await reused.step(batch);
    const fresh = await Trainer.create(model, model.init(2), recipe);
    await fresh.step(batch);
    const [a, b] = [await reused.parameters(), await fresh.parameters()];
    for (const [name, t] of b) assert.deepEqual([...a.get(name)!.data], [...t.data], `${name} differs after load`);
    reused.dispose();
    fresh.dispose();
  });
});
