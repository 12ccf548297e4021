// Fashion-MNIST classification (Debian's dataset-fashion-mnist), shards drawn with Dirichlet(alpha) label skew
// (Hsu et al. 2019), evaluated on the official 10k test set. Baseline: chance accuracy.
import { Rng } from '../../core/rng.ts';
import { loadFashionMnist } from '../../data/fashion-mnist.node.ts';
import { ImageBatchSampler, imageEvalBatches } from '../../data/image-batches.ts';
import { dirichletLabelSkew } from '../../data/partition.ts';
import type { ModelSpec } from '../../core/model-spec.ts';
import type { Task } from './task.ts';

export interface FashionMnistOptions {
  model?: 'mlp' | 'cnn';
  shards?: number;
  alpha?: number;
  seed?: number;
}

export async function fashionMnistTask(options: FashionMnistOptions = {}): Promise<Task> {
  const { model = 'mlp', shards = 10, alpha = 0.5, seed = 0 } = options;
  const [train, test] = await Promise.all([loadFashionMnist('train'), loadFashionMnist('test')]);
  const parts = dirichletLabelSkew(train.labels, train.classes, shards, alpha, new Rng(seed), { minSize: 64 });
  const spec: ModelSpec = model === 'mlp'
    ? { kind: 'mlp', inputs: train.height * train.width, hidden: [256, 128], classes: train.classes }
    : {
        kind: 'cnn', height: train.height, width: train.width, channels: 1,
        conv: [{ out: 16, kernel: 3, stride: 2 }, { out: 32, kernel: 3, stride: 2 }], hidden: [128], classes: train.classes,
      };
  return {
    name: `fashion-mnist-${model}`,
    model: spec,
    shards,
    trainBatches(batchSize, rng, shard) {
      const indices = shard === undefined ? undefined : parts[shard];
      if (shard !== undefined && indices === undefined) throw new RangeError(`shard ${shard} does not exist (${shards} shards)`);
      const sampler = new ImageBatchSampler(train, batchSize, rng, indices);
      return () => sampler.next();
    },
    evalBatches: (batchSize, maxBatches) => {
      const all = [...imageEvalBatches(test, batchSize)];
      return maxBatches === undefined ? all : all.slice(0, maxBatches);
    },
    baseline: { metric: 'accuracy', value: 1 / train.classes, label: 'chance accuracy' },
  };
}
