// Full mode's local training: the real Trainer on the device's real data shard (Fashion-MNIST with Dirichlet label
// skew, Tiny Shakespeare by speaking role), and real held-out evaluation of versions. One compiled Trainer serves
// every lease and every evaluation in turn (`load` swaps parameters without recompiling): the simulator trains
// leases one after another on this machine, in virtual-time order.
import { Rng } from '../core/rng.ts';
import type { Recipe } from '../core/protocol/schemas.ts';
import { flatten, layoutOf, unflatten } from '../core/tensor.ts';
import { benchmarkTraining } from '../device/profile.ts';
import { fashionMnistTask } from '../device/tasks/fashion-mnist.node.ts';
import { shakespeareTask } from '../device/tasks/shakespeare.node.ts';
import type { Task } from '../device/tasks/task.ts';
import { createModel } from '../train/models/registry.ts';
import type { HostBatch } from '../train/models/model.ts';
import { Trainer } from '../train/trainer.ts';
import type { SimBackend } from './backend.ts';
import type { SimConfig } from './config.ts';

export interface FullBackend extends SimBackend {
  /** This machine's training throughput on the model, examples/s (the reference the population is scaled to). */
  measureThroughput(batchSize: number): Promise<number>;
}

type TaskConfig = NonNullable<SimConfig['task']>;

async function loadSimTask(cfg: TaskConfig, seed: number): Promise<Task> {
  switch (cfg.name) {
    case 'shakespeare': return shakespeareTask();
    case 'fashion-mlp':
    case 'fashion-cnn':
      return fashionMnistTask({ model: cfg.name === 'fashion-cnn' ? 'cnn' : 'mlp', shards: cfg.shards ?? 10, alpha: cfg.alpha, seed });
  }
}

export async function fullBackend(options: {
  task: TaskConfig; recipe: Recipe; eval: { batches: number; batchSize: number }; seed: number;
}): Promise<FullBackend> {
  const { recipe, seed } = options;
  const task = await loadSimTask(options.task, seed);
  const spec = options.task.model ?? task.model;
  const model = createModel(spec);
  const layout = layoutOf(model.shapes);
  const initial = flatten(model.init(seed), layout);
  const trainer = await Trainer.create(model, unflatten(initial, layout), {
    optimizer: { kind: recipe.optimizer, lr: recipe.lr },
    proximalMu: recipe.proximalMu,
    ...(recipe.clipGradNorm === undefined ? {} : { clipGradNorm: recipe.clipGradNorm }),
  });
  // The held-out batches are built once: every version is scored on exactly the same examples.
  const evalSet: HostBatch[] = [...task.evalBatches(options.eval.batchSize, options.eval.batches)];

  return {
    length: layout.size,
    parameters: layout.size,
    shards: task.shards,
    metrics: task.baseline.metric === 'accuracy' ? ['loss', 'accuracy'] : ['loss', 'accuracy', 'perplexity'],
    initialParams: () => initial.slice(),
    async train(job) {
      trainer.load(unflatten(job.base, layout));
      const next = task.trainBatches(job.batchSize, new Rng(job.seed), job.shard % task.shards);
      let loss = 0;
      for (let s = 0; s < job.localSteps; s++) loss += await trainer.step(next(), recipe.lr);
      const trained = flatten(await trainer.parameters(), layout);
      // trained - base, in place: the trained copy is ours and not needed afterwards.
      const base = job.base;
      for (let i = 0; i < trained.length; i++) trained[i] = trained[i]! - base[i]!;
      return { delta: trained, trainLoss: loss / job.localSteps };
    },
    async evaluate(params): Promise<Record<string, number>> {
      trainer.load(unflatten(params, layout));
      const r = await trainer.evaluate(evalSet);
      const metrics: Record<string, number> = { loss: r.loss, accuracy: r.accuracy };
      if (task.baseline.metric !== 'accuracy') metrics['perplexity'] = r.perplexity;
      return metrics;
    },
    async measureThroughput(batchSize) {
      const r = await benchmarkTraining(model, task.trainBatches(batchSize, new Rng(seed)), { steps: 10 });
      return r.examplesPerSecond;
    },
    dispose: () => trainer.dispose(),
  };
}
