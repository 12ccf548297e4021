// Full mode's local training: the real Trainer on the device's real data shard (Fashion-MNIST with Dirichlet label
// skew, Tiny Shakespeare by speaking role), and real held-out evaluation of versions. A lease whose plan is a
// submodel (a width slice or a block window, from the planner) trains exactly that submodel: it is cut out of the
// base version (core/submodel extract), trained as an ordinary model of its own spec, and its delta scattered back
// with the coverage of the coordinates it holds (embed), as a device and the coordinator do it live.
// A `lora` lease trains adapters on the base version, frozen, with the real trainer (src/train/lora.ts), as a device's
// lease loop does; its upload is the adapters, which the engine encodes and the server multiplies out (src/sim/lora.ts).
// One compiled Trainer per distinct (sub)model serves every lease and evaluation in turn (`load` swaps parameters
// without recompiling): the simulator trains leases one after another on this machine, in virtual-time order.
import { readFileSync } from 'node:fs';
import type { ModelSpec } from '../core/model-spec.ts';
import { decodeSafetensors } from '../core/safetensors.ts';
import { Rng } from '../core/rng.ts';
import type { Plan, Recipe } from '../core/protocol/schemas.ts';
import { embedFlat, extract, submodelSpec } from '../core/submodel/submodel.ts';
import { flatten, layoutOf, unflatten, type ParamLayout, type Tensor } from '../core/tensor.ts';
import { benchmarkTraining } from '../device/profile.ts';
import { fashionMnistTask } from '../device/tasks/fashion-mnist.node.ts';
import { loadTask } from '../device/tasks/registry.node.ts';
import type { Task } from '../device/tasks/task.ts';
import { loraModel, type LoraModel } from '../train/lora.ts';
import { createModel } from '../train/models/registry.ts';
import type { HostBatch } from '../train/models/model.ts';
import { Trainer } from '../train/trainer.ts';
import type { LocalTraining, LoraPlan, SimBackend, TrainedAdapters, TrainedDelta } from './backend.ts';
import type { SimConfig } from './config.ts';
import { loraUploadLayout, loraUploadToGlobal } from './lora.ts';

export interface FullBackend extends SimBackend {
  /** The model the run trains (what a planner plans submodels of). */
  readonly spec: ModelSpec;
  /** This machine's training throughput on the model, examples/s (the reference the population is scaled to). */
  measureThroughput(batchSize: number): Promise<number>;
}

type TaskConfig = NonNullable<SimConfig['task']>;

async function loadSimTask(cfg: TaskConfig, seed: number): Promise<Task> {
  switch (cfg.name) {
    case 'fashion-mlp':
    case 'fashion-cnn':
      return fashionMnistTask({ model: cfg.name === 'fashion-cnn' ? 'cnn' : 'mlp', shards: cfg.shards ?? 10, alpha: cfg.alpha, seed });
    // Language tasks cut their windows to the model's context (and BPE its vocabulary to the model's size).
    case 'shakespeare':
    case 'shakespeare-bpe':
    case 'sotu':
      return loadTask(cfg.name, cfg.model, cfg.shards === undefined ? {} : { shards: cfg.shards });
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
  const initial = flatten(options.task.init === undefined ? model.init(seed) : readInitialWeights(options.task.init, model.shapes), layout);
  const trainRecipe = {
    optimizer: { kind: recipe.optimizer, lr: recipe.lr },
    proximalMu: recipe.proximalMu,
    ...(recipe.clipGradNorm === undefined ? {} : { clipGradNorm: recipe.clipGradNorm }),
  };
  const trainers = new Map<string, { trainer: Trainer; layout: ParamLayout }>();
  const full = { trainer: await Trainer.create(model, unflatten(initial, layout), trainRecipe), layout };
  trainers.set(JSON.stringify(spec), full);
  // The held-out batches are built once: every version is scored on exactly the same examples.
  const evalSet: HostBatch[] = [...task.evalBatches(options.eval.batchSize, options.eval.batches)];

  async function trainerFor(sub: ModelSpec, params: Map<string, Tensor>) {
    const key = JSON.stringify(sub);
    let t = trainers.get(key);
    if (t === undefined) {
      const m = createModel(sub);
      t = { trainer: await Trainer.create(m, params, trainRecipe), layout: layoutOf(m.shapes) };
      trainers.set(key, t);
    } else {
      t.trainer.load(params);
    }
    return t;
  }

  // A LoRA model holds its frozen base on the runtime (compiled in as constants), so each (base version, plan) needs a
  // model and trainer of its own; one per plan shape is kept for the leases on the same version, which in a buffered
  // run come in bursts. Fresh adapters are loaded per lease (A drawn from the lease's seed, B = 0), as the lease loop does.
  const loraTrainers = new Map<string, { base: Float32Array; model: LoraModel; trainer: Trainer; layout: ParamLayout }>();
  async function loraTrainerFor(plan: LoraPlan, base: Float32Array, seed: number) {
    const key = JSON.stringify(plan);
    const kept = loraTrainers.get(key);
    if (kept !== undefined && kept.base === base) {
      kept.trainer.load(kept.model.init(seed));
      return kept;
    }
    if (kept !== undefined) disposeLora(key);
    const m = loraModel(model, unflatten(base, layout), { rank: plan.rank, alpha: plan.alpha, targets: plan.targets });
    try {
      const t = { base, model: m, trainer: await Trainer.create(m, m.init(seed), trainRecipe), layout: loraUploadLayout(layout, plan) };
      loraTrainers.set(key, t);
      return t;
    } catch (e) {
      m.dispose();
      throw e;
    }
  }
  function disposeLora(key: string) {
    const t = loraTrainers.get(key);
    t?.trainer.dispose();
    t?.model.dispose();
    loraTrainers.delete(key);
  }

  async function steps(trainer: Trainer, job: LocalTraining): Promise<number> {
    const next = task.trainBatches(job.batchSize, new Rng(job.seed), job.shard % task.shards);
    let loss = 0;
    for (let s = 0; s < job.localSteps; s++) loss += await trainer.step(next(), recipe.lr);
    return loss / job.localSteps;
  }

  return {
    spec,
    length: layout.size,
    parameters: layout.size,
    shards: task.shards,
    metrics: task.baseline.metric === 'accuracy' ? ['loss', 'accuracy'] : ['loss', 'accuracy', 'perplexity'],
    initialParams: () => initial.slice(),
    async train(job): Promise<TrainedDelta | TrainedAdapters> {
      const plan: Plan = job.plan;
      if (plan.kind === 'lora') {
        const t = await loraTrainerFor(plan, job.base, job.seed);
        const trainLoss = await steps(t.trainer, job);
        // The adapters themselves, not their change: the server needs A and B to form s A B (B started at zero).
        return { adapters: flatten(await t.trainer.parameters(), t.layout), trainLoss };
      }
      if (plan.kind === 'full') {
        full.trainer.load(unflatten(job.base, layout));
        const trainLoss = await steps(full.trainer, job);
        // trained - base, in place: the trained copy is ours and not needed afterwards.
        const trained = flatten(await full.trainer.parameters(), layout);
        const base = job.base;
        for (let i = 0; i < trained.length; i++) trained[i] = trained[i]! - base[i]!;
        return { delta: trained, trainLoss };
      }
      const subParams = extract(unflatten(job.base, layout), spec, plan);
      const t = await trainerFor(submodelSpec(spec, plan), subParams);
      const trainLoss = await steps(t.trainer, job);
      const subDelta = flatten(await t.trainer.parameters(), t.layout);
      const subBase = flatten(subParams, t.layout);
      for (let i = 0; i < subDelta.length; i++) subDelta[i] = subDelta[i]! - subBase[i]!;
      const { delta, coverage } = embedFlat(subDelta, spec, plan);
      return { delta, coverage, trainLoss };
    },
    loraToGlobal: (adapters, plan) => loraUploadToGlobal(adapters, layout, plan),
    async evaluate(params): Promise<Record<string, number>> {
      full.trainer.load(unflatten(params, layout));
      const r = await full.trainer.evaluate(evalSet);
      const metrics: Record<string, number> = { loss: r.loss, accuracy: r.accuracy };
      if (task.baseline.metric !== 'accuracy') metrics['perplexity'] = r.perplexity;
      return metrics;
    },
    async measureThroughput(batchSize) {
      const r = await benchmarkTraining(model, task.trainBatches(batchSize, new Rng(seed)), { steps: 10 });
      return r.examplesPerSecond;
    },
    dispose: () => {
      for (const t of trainers.values()) t.trainer.dispose();
      trainers.clear();
      for (const key of [...loraTrainers.keys()]) disposeLora(key);
    },
  };
}

/**
 * The weights a simulation starts from (task.init): a safetensors file holding exactly the model's tensors, by name and
 * shape (a version's weights as the coordinator serves them, or model.safetensors of `tessera export`). Anything else
 * is an error naming the first problem.
 */
export function readInitialWeights(path: string, shapes: ReadonlyArray<readonly [string, readonly number[]]>): Map<string, Tensor> {
  let tensors: Map<string, Tensor>;
  try {
    tensors = decodeSafetensors(new Uint8Array(readFileSync(path))).tensors;
  } catch (e) {
    throw new Error(`task.init: cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const want = new Map(shapes.map(([name, shape]) => [name, shape]));
  for (const [name, shape] of want) {
    const t = tensors.get(name);
    if (t === undefined) throw new Error(`task.init: ${path} has no tensor ${name}`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`task.init: ${name} in ${path} is [${t.shape.join(', ')}], the model's is [${shape.join(', ')}]`);
    }
  }
  const extra = [...tensors.keys()].filter((n) => !want.has(n));
  if (extra.length > 0) throw new Error(`task.init: ${path} holds tensors the model does not have: ${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ', ...' : ''}`);
  return tensors;
}
