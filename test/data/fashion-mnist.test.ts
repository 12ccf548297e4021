import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../../src/core/rng.ts';
import { DataNotFoundError, IdxError } from '../../src/data/errors.ts';
import { FASHION_MNIST_CLASSES, fashionMnistFromIdx } from '../../src/data/fashion-mnist.ts';
import { loadFashionMnist } from '../../src/data/fashion-mnist.node.ts';
import { ImageBatchSampler } from '../../src/data/image-batches.ts';

const train = await loadFashionMnist('train');
const test = await loadFashionMnist('test');

const classCounts = (labels: Uint8Array): number[] => {
  const counts = new Array<number>(10).fill(0);
  for (const y of labels) counts[y]!++;
  return counts;
};

describe('Fashion-MNIST', () => {
  it('loads 60,000 training and 10,000 test images of 28x28 in 10 balanced classes', () => {
    for (const [set, n] of [[train, 60_000], [test, 10_000]] as const) {
      assert.deepEqual([set.n, set.height, set.width, set.classes], [n, 28, 28, 10]);
      assert.equal(set.images.length, n * 784);
      assert.equal(set.labels.length, n);
      assert.deepEqual(classCounts(set.labels), new Array<number>(10).fill(n / 10));
    }
    assert.deepEqual(train.classNames, FASHION_MNIST_CLASSES);
  });

  it('scales pixels to [0, 1]', () => {
    let min = Infinity;
    let max = -Infinity;
    const { images } = train;
    for (let i = 0; i < images.length; i++) {
      min = Math.min(min, images[i]!);
      max = Math.max(max, images[i]!);
    }
    assert.deepEqual([min, max], [0, 1]);
  });

  it('feeds [B, 784] batches to a sampler', () => {
    const batch = new ImageBatchSampler(train, 32, new Rng(0)).next();
    assert.deepEqual([batch.x.length, batch.y.length], [32 * 784, 32]);
  });

  it('rejects images that are not 28x28 or labels outside the classes', () => {
    const idx = (dims: number[], fill: number): Uint8Array => {
      const bytes = new Uint8Array(4 + 4 * dims.length + dims.reduce((a, b) => a * b, 1)).fill(fill);
      bytes.set([0, 0, 8, dims.length]);
      dims.forEach((d, i) => new DataView(bytes.buffer).setUint32(4 + 4 * i, d));
      return bytes;
    };
    assert.throws(() => fashionMnistFromIdx(idx([2, 14, 14], 0), idx([2], 0)), IdxError);
    assert.throws(() => fashionMnistFromIdx(idx([2, 28, 28], 0), idx([2], 10)), /label 10 at index 0/);
  });

  it('says how to install the dataset when it is missing', async () => {
    await assert.rejects(loadFashionMnist('test', '/nonexistent/fmnist'), (e: unknown) => {
      return e instanceof DataNotFoundError && e.message.includes('/nonexistent/fmnist/t10k-') && e.message.includes('dataset-fashion-mnist');
    });
  });
});
