// Held-out evaluation of committed versions, off the update path: requests queue, only the newest pending version
// is evaluated when the evaluator falls behind, and one compiled Trainer is reused across versions. A task with
// held-out slices (a continual task's eras) has each slice evaluated too, with the same batch settings.
import type { ModelSpec } from '../../core/model-spec.ts';
import type { TensorRecord } from '../../core/tensor.ts';
import type { Task } from '../../device/tasks/task.ts';
import { createModel } from '../../train/models/registry.ts';
import { Trainer, type EvalResult } from '../../train/trainer.ts';

export interface EvalSettings {
  batches: number;
  batchSize: number;
}

export class Evaluator {
  private trainer: Trainer | undefined;
  private pending: { version: number; params: TensorRecord } | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly loadTask: () => Promise<Task>,
    private readonly model: ModelSpec,
    private readonly settings: EvalSettings,
    /** `slices`: the result on each of the task's held-out slices (Task.slices), by id; empty when it has none. */
    private readonly onResult: (version: number, result: EvalResult, slices: ReadonlyMap<string, EvalResult>) => void | Promise<void>,
    private readonly onError: (version: number, error: unknown) => void,
  ) {}

  /** Asks for `version` to be evaluated; supersedes any older request not yet started. */
  request(version: number, params: TensorRecord): void {
    if (this.pending === undefined || this.pending.version < version) this.pending = { version, params };
    this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  /** Resolves when every requested evaluation has finished (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  dispose(): void {
    this.trainer?.dispose();
    this.trainer = undefined;
  }

  private async drain(): Promise<void> {
    const task = await this.loadTask();
    while (this.pending) {
      const { version, params } = this.pending;
      this.pending = undefined;
      try {
        if (this.trainer === undefined) {
          // The optimizer is never stepped: the trainer is only a compiled forward pass here.
          this.trainer = await Trainer.create(createModel(this.model), params, { optimizer: { kind: 'sgd', lr: 1 } });
        } else {
          this.trainer.load(params);
        }
        const { batchSize, batches } = this.settings;
        const whole = await this.trainer.evaluate(task.evalBatches(batchSize, batches));
        const slices = new Map<string, EvalResult>();
        for (const slice of task.slices ?? []) slices.set(slice.id, await this.trainer.evaluate(slice.evalBatches(batchSize, batches)));
        await this.onResult(version, whole, slices);
      } catch (e) {
        this.onError(version, e);
      }
    }
  }
}
