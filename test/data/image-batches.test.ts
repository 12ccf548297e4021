import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../../src/core/rng.ts';
import { DataError } from '../../src/data/errors.ts';
import { ImageBatchSampler, imageEvalBatches, type ImageSet } from '../../src/data/image-batches.ts';

// Ten 2x2 images; every pixel of image i is i / 10 and its label is i % 3, so a row identifies its example.
const set: ImageSet = {
  n: 10,
  height: 2,
  width: 2,
  classes: 3,
  classNames: ['a', 'b', 'c'],
  images: Float32Array.from({ length: 40 }, (_, k) => Math.floor(k / 4) / 10),
  labels: Uint8Array.from({ length: 10 }, (_, i) => i % 3),
};

function examplesOf(x: Float32Array): number[] {
  const ids: number[] = [];
  for (let r = 0; r < x.length / 4; r++) {
    const id = Math.round(x[r * 4]! * 10);
    for (let k = 1; k < 4; k++) assert.equal(x[r * 4 + k], x[r * 4], 'row is one whole image');
    ids.push(id);
  }
  return ids;
}

describe('ImageBatchSampler', () => {
  it('gives [B, features] rows with matching labels, covering distinct examples within an epoch', () => {
    const sampler = new ImageBatchSampler(set, 4, new Rng(1));
    const a = sampler.next();
    const b = sampler.next();
    assert.deepEqual([a.batchSize, a.x.length, a.y.length], [4, 16, 4]);
    const seen = [...examplesOf(a.x), ...examplesOf(b.x)];
    assert.equal(new Set(seen).size, 8);
    assert.deepEqual([...a.y, ...b.y], seen.map((i) => i % 3));
    assert.equal(sampler.epoch, 1);
    sampler.next(); // 2 examples left are skipped: a new epoch starts
    assert.equal(sampler.epoch, 2);
  });

  it('samples only the given indices, reproducibly', () => {
    const draw = (seed: number): number[] => {
      const sampler = new ImageBatchSampler(set, 2, new Rng(seed), Int32Array.of(1, 4, 7));
      return Array.from({ length: 6 }, () => examplesOf(sampler.next().x)).flat();
    };
    assert.ok(draw(5).every((i) => [1, 4, 7].includes(i)));
    assert.deepEqual(draw(5), draw(5));
  });

  it('shrinks the batch to a client with fewer examples, and rejects empty clients', () => {
    assert.equal(new ImageBatchSampler(set, 32, new Rng(0), [2, 3]).next().batchSize, 2);
    assert.throws(() => new ImageBatchSampler(set, 4, new Rng(0), []), DataError);
    assert.throws(() => new ImageBatchSampler(set, 4, new Rng(0), [10]).next(), /example index 10 is outside/);
  });
});

describe('imageEvalBatches', () => {
  it('visits every example once in order, the last batch partial', () => {
    const batches = [...imageEvalBatches(set, 4)];
    assert.deepEqual(batches.map((b) => b.batchSize), [4, 4, 2]);
    assert.deepEqual(batches.flatMap((b) => examplesOf(b.x)), Array.from({ length: 10 }, (_, i) => i));
    assert.deepEqual(batches.flatMap((b) => [...b.y]), Array.from({ length: 10 }, (_, i) => i % 3));
    assert.deepEqual([...imageEvalBatches(set, 4, [9, 0])].flatMap((b) => examplesOf(b.x)), [9, 0]);
  });
});
