// Task names on the command line, resolved to tasks over the real data sets.
import { fashionMnistTask } from '../device/tasks/fashion-mnist.node.ts';
import { shakespeareTask } from '../device/tasks/shakespeare.node.ts';
import type { Task } from '../device/tasks/task.ts';

export const TASK_NAMES = ['shakespeare', 'fashion-mlp', 'fashion-cnn'] as const;
export type TaskName = (typeof TASK_NAMES)[number];

export function loadTask(name: TaskName): Promise<Task> {
  switch (name) {
    case 'shakespeare': return shakespeareTask();
    case 'fashion-mlp': return fashionMnistTask({ model: 'mlp' });
    case 'fashion-cnn': return fashionMnistTask({ model: 'cnn' });
  }
}
