// Fast mode's stand-in for local training: a synthetic non-IID objective whose local training has a closed form, so a
// lease costs O(dimension) arithmetic instead of a forward and backward pass, and a simulation of 100,000 devices and
// 1,000,000 leases still folds real deltas through the real strategies and measures a real (synthetic) quality.
//
// The objective is the classic quadratic model of federated optimisation (as in the analyses of Li et al., "On the
// Convergence of FedAvg on Non-IID Data", ICLR 2020): device i holds data whose optimum is c_s for its shard s, with
// local loss f_s(w) = 1/2 ||w - c_s||^2, and the population's objective is the device-weighted mean
//     F(w) = 1/2 ||w - c_bar||^2 + 1/2 mean_i ||c_{s(i)} - c_bar||^2,   c_bar = mean_i c_{s(i)}.
// K steps of SGD with rate lr and gradient noise sigma from w0 give, per coordinate,
//     w_K = c_s + (1 - lr)^K (w0 - c_s) + noise,   Var(noise) = sigma^2 lr^2 (1 - (1 - lr)^(2K)) / (1 - (1 - lr)^2),
// which is what `train` returns (as w_K - w0). Client drift, staleness and who is excluded all move the server's w
// away from c_bar, so they show up in F exactly as they would in a real model's loss, only without the noise of
// real training. Reported metrics: `loss` = F(w) and `excessLoss` = F(w) - min F.
//
// LoRA leases (planner.lora, on the nominal model fast.model) are modelled as a partial, lower-dimensional update, kept
// deliberately simple because the quadratic has no matrices: the leading coordinates stand for the targets' weights,
// in the share the targets have of the model's parameters (the rest, embeddings, norms and biases, never moves, as
// under LoRA), and a lease moves a random subset of them in the proportion its adapters bear to the targets' weights
// (sum r (in + out) against sum in * out, at least one coordinate): a stand-in for the rank limit of s A B, not a
// model of it. Each moved coordinate takes the closed-form step above; the update's coverage is the targets'
// coordinates, as the coordinator's LoRA fold gives it. Bytes and memory come from the planner's estimates.
import { coverageFromRanges, type Coverage } from '../core/coverage.ts';
import { loraParameterCount } from '../core/lora.ts';
import type { ModelSpec } from '../core/model-spec.ts';
import { Rng } from '../core/rng.ts';
import { parameterShapes } from '../core/submodel/shapes.ts';
import type { LocalTraining, LoraPlan, SimBackend, TrainedDelta } from './backend.ts';

export interface FastBackendOptions {
  dimension: number;
  parameters: number;
  shards: number;
  clientSpread: number;
  localLr: number;
  gradientNoise: number;
  seed: number;
  /** The nominal model LoRA plans adapt (fast.model); absent: LoRA plans are refused. */
  model?: ModelSpec | undefined;
}

export function fastBackend(o: FastBackendOptions, deviceShards: Int32Array): SimBackend {
  const { dimension: dim, shards, localLr: lr, gradientNoise: sigma } = o;
  const rng = new Rng(o.seed);
  const centers = new Float32Array(shards * dim);
  for (let i = 0; i < centers.length; i++) centers[i] = o.clientSpread * rng.normal();
  // c_bar and the irreducible part of F over the whole population, excluded devices included: excluding devices
  // does not change what the run is supposed to learn.
  const counts = new Float64Array(shards);
  for (const s of deviceShards) counts[s]! += 1;
  const n = deviceShards.length;
  const cBar = new Float64Array(dim);
  for (let s = 0; s < shards; s++) for (let j = 0; j < dim; j++) cBar[j]! += (counts[s]! / n) * centers[s * dim + j]!;
  let floor = 0;
  for (let s = 0; s < shards; s++) {
    let sq = 0;
    for (let j = 0; j < dim; j++) sq += (centers[s * dim + j]! - cBar[j]!) ** 2;
    floor += (counts[s]! / n) * 0.5 * sq;
  }

  /** The closed-form step of one coordinate: K steps of SGD from w0 towards the shard's optimum c, with noise. */
  const keepOf = (steps: number) => (1 - lr) ** steps;
  const noiseSdOf = (steps: number) => {
    const keep = keepOf(steps);
    const q = (1 - lr) ** 2;
    return sigma * lr * Math.sqrt(q === 1 ? steps : (1 - keep * keep) / (1 - q));
  };

  // Per LoRA plan shape: how many leading coordinates stand for the targets (m), how many a lease moves (k).
  const loraShapes = new Map<string, { m: number; k: number; coverage: Coverage }>();
  function loraShape(plan: LoraPlan) {
    const key = JSON.stringify(plan);
    let shape = loraShapes.get(key);
    if (shape === undefined) {
      if (o.model === undefined) throw new RangeError('fast mode models LoRA plans on a nominal model: set fast.model');
      const shapes = parameterShapes(o.model);
      const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
      const total = shapes.reduce((n, [, s]) => n + size(s), 0);
      const targets = new Set(plan.targets);
      const targetParams = shapes.reduce((n, [name, s]) => n + (targets.has(name) ? size(s) : 0), 0);
      const adapters = loraParameterCount(shapes, plan);
      const m = Math.min(dim, Math.max(1, Math.round((dim * targetParams) / total)));
      const k = Math.min(m, Math.max(1, Math.ceil((m * adapters) / targetParams)));
      shape = { m, k, coverage: coverageFromRanges(dim, [[0, m]]) };
      loraShapes.set(key, shape);
    }
    return shape;
  }

  function trainLora(job: LocalTraining, plan: LoraPlan): TrainedDelta {
    const { m, k, coverage } = loraShape(plan);
    const keep = keepOf(job.localSteps);
    const noiseSd = noiseSdOf(job.localSteps);
    const rng = new Rng(job.seed);
    // k of the m target coordinates, uniformly (a partial Fisher-Yates shuffle).
    const order = Int32Array.from({ length: m }, (_, i) => i);
    const delta = new Float32Array(dim);
    const off = job.shard * dim;
    for (let i = 0; i < k; i++) {
      const pick = i + rng.int(m - i);
      const j = order[pick]!;
      order[pick] = order[i]!;
      order[i] = j;
      delta[j] = (1 - keep) * (centers[off + j]! - job.base[j]!) + noiseSd * rng.normal();
    }
    return { delta, coverage };
  }

  return {
    length: dim,
    parameters: o.parameters,
    shards,
    metrics: ['loss', 'excessLoss'],
    // Start at a fixed distance from the optimum in every direction, so runs with different seeds are comparable.
    initialParams: () => Float32Array.from(cBar, (c) => c + 3),
    train(job: LocalTraining): TrainedDelta {
      if (job.plan.kind === 'lora') return trainLora(job, job.plan);
      if (job.plan.kind !== 'full') {
        // The quadratic has no layers to slice: a submodel's effect on quality cannot be modelled honestly here.
        throw new RangeError(`fast mode models full-model plans only, got a '${job.plan.kind}' plan; run submodel plans in full mode`);
      }
      const keep = (1 - lr) ** job.localSteps;
      const q = (1 - lr) ** 2;
      const noiseSd = sigma * lr * Math.sqrt(q === 1 ? job.localSteps : (1 - keep * keep) / (1 - q));
      const noise = new Rng(job.seed);
      const delta = new Float32Array(dim);
      const off = job.shard * dim;
      for (let j = 0; j < dim; j++) {
        const w0 = job.base[j]!;
        delta[j] = (1 - keep) * (centers[off + j]! - w0) + noiseSd * noise.normal();
      }
      return { delta };
    },
    evaluate(params) {
      let sq = 0;
      for (let j = 0; j < dim; j++) sq += (params[j]! - cBar[j]!) ** 2;
      return { loss: floor + 0.5 * sq, excessLoss: 0.5 * sq };
    },
    dispose() {},
  };
}
