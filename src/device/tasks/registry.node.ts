// Task names (in run configs and on the command line), resolved to tasks over the real data sets.
import type { ModelSpec } from '../../core/model-spec.ts';
import { fashionMnistTask } from './fashion-mnist.node.ts';
import { shakespeareBpeTask } from './shakespeare-bpe.node.ts';
import { shakespeareTask } from './shakespeare.node.ts';
import { sotuTask } from './sotu.node.ts';
import type { Task } from './task.ts';

export const TASK_NAMES = ['shakespeare', 'shakespeare-bpe', 'fashion-mlp', 'fashion-cnn', 'sotu'] as const;
export type TaskName = (typeof TASK_NAMES)[number];

/**
 * The task `name` for a run of `model` (the run's model spec, when it overrides the task's default): a language task
 * cuts its windows to the model's context, and the BPE task trains a vocabulary of the model's size (deterministically,
 * so every device and the coordinator's evaluator derive the same tokens). `shards` groups a Shakespeare task's roles
 * into that many shards (the simulator's task.shards); the other tasks shard as they always do.
 */
export function loadTask(name: TaskName, model?: ModelSpec, options: { shards?: number } = {}): Promise<Task> {
  const gpt = model?.kind === 'gpt' ? model : undefined;
  const taskOptions = { ...(gpt === undefined ? {} : { context: gpt.context }), ...(options.shards === undefined ? {} : { shards: options.shards }) };
  switch (name) {
    case 'shakespeare': return shakespeareTask(taskOptions);
    case 'shakespeare-bpe': return shakespeareBpeTask({ ...taskOptions, ...(gpt === undefined ? {} : { vocabSize: gpt.vocabSize }) });
    case 'fashion-mlp': return fashionMnistTask({ model: 'mlp' });
    case 'fashion-cnn': return fashionMnistTask({ model: 'cnn' });
    case 'sotu':
      if (options.shards !== undefined) throw new RangeError('sotu: shards are the presidents of each era; they cannot be regrouped');
      return Promise.resolve(sotuTask(gpt === undefined ? {} : { context: gpt.context }));
  }
}
