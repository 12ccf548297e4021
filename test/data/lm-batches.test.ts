import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../../src/core/rng.ts';
import { DataError } from '../../src/data/errors.ts';
import { lmEvalBatches, sampleLmBatch } from '../../src/data/lm-batches.ts';

// Token i of the stream is i, so a window is consecutive numbers and its targets are its inputs plus one.
const stream = Int32Array.from({ length: 101 }, (_, i) => i);

describe('sampleLmBatch', () => {
  it('draws [B, T] windows whose targets are the inputs shifted by one', () => {
    const { batchSize, ctx, inputs, targets } = sampleLmBatch(stream, 8, 16, new Rng(3));
    assert.deepEqual([batchSize, ctx, inputs.length, targets.length], [8, 16, 128, 128]);
    for (let b = 0; b < 8; b++) {
      const start = inputs[b * 16]!;
      assert.ok(start >= 0 && start + 16 < stream.length);
      for (let t = 0; t < 16; t++) {
        assert.equal(inputs[b * 16 + t], start + t);
        assert.equal(targets[b * 16 + t], start + t + 1);
      }
    }
  });

  it('reaches both ends of the stream and repeats for the same seed', () => {
    const starts = new Set<number>();
    const rng = new Rng(5);
    for (let k = 0; k < 200; k++) for (const s of sampleLmBatch(stream, 4, 90, rng).inputs.filter((_, i) => i % 90 === 0)) starts.add(s);
    assert.deepEqual([...starts].sort((a, b) => a - b), Array.from({ length: 11 }, (_, i) => i));
    assert.deepEqual(sampleLmBatch(stream, 4, 10, new Rng(9)), sampleLmBatch(stream, 4, 10, new Rng(9)));
  });

  it('rejects a stream shorter than one window and bad shapes', () => {
    assert.throws(() => sampleLmBatch(stream, 2, 101, new Rng(0)), /too short/);
    assert.throws(() => sampleLmBatch(stream, 0, 10, new Rng(0)), DataError);
    assert.throws(() => sampleLmBatch(stream, 2, 1.5, new Rng(0)), DataError);
  });
});

describe('lmEvalBatches', () => {
  it('predicts every token after the first exactly once, in order', () => {
    const batches = [...lmEvalBatches(stream, 4, 10)];
    assert.deepEqual(batches.map((b) => b.batchSize), [4, 4, 2]);
    assert.deepEqual(batches.flatMap((b) => [...b.targets]), Array.from({ length: 100 }, (_, i) => i + 1));
    assert.deepEqual(batches.flatMap((b) => [...b.inputs]), Array.from({ length: 100 }, (_, i) => i));
  });

  it('drops a tail shorter than a window and stops at maxBatches', () => {
    assert.equal([...lmEvalBatches(stream, 1, 30)].length, 3);
    assert.equal([...lmEvalBatches(stream, 2, 10, { maxBatches: 2 })].length, 2);
  });
});
