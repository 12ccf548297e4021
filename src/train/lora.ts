// A LoRA view of a model (Hu et al. 2021): the base parameters are frozen on the runtime and the trainable
// parameters are only the adapters A [in, r] (Gaussian, std 1/sqrt(in)) and B [r, out] (zeros, so training starts
// exactly at the base), with W_eff = W + (alpha / r) A B for every targeted weight. It is a Model like any other, so
// the unchanged Trainer trains it and a device's update (trainer.parameters() minus the initial adapters, or the
// adapters themselves) holds only adapter tensors: r (in + out) numbers per matrix instead of in * out.
// Aggregation across devices of different ranks and the merge into the base live in src/core/lora.ts.
import { GPT_LORA_TARGETS, loraNames, loraPlanShapes, loraShapes } from '../core/lora.ts';
import type { TensorRecord } from '../core/tensor.ts';
import { initTensors, type Init } from './models/init.ts';
import type { Model } from './models/model.ts';
import { dispose, np, toDevice, type JaxArray, type Params } from './runtime/jax.ts';


export interface LoraOptions {
  rank: number;
  /** Scale numerator: W_eff = W + (alpha / rank) A B. Default: 2 * rank (scale 2). */
  alpha?: number;
  /**
   * Which base parameters get adapters: a pattern (2-D parameters whose names match), or the exact names a `lora`
   * lease lists (each checked to be a weight matrix of the model, with rank <= min(in, out)). Default: GPT_LORA_TARGETS.
   */
  targets?: RegExp | readonly string[];
}

export interface LoraModel extends Model {
  readonly base: Model;
  readonly targets: readonly string[];
  readonly rank: number;
  readonly scale: number;
  /** Frees the frozen base on the runtime. */
  dispose(): void;
}

export function loraModel(base: Model, frozen: TensorRecord, options: LoraOptions): LoraModel {
  const { rank, alpha = 2 * rank, targets: pattern = GPT_LORA_TARGETS } = options;
  for (const [name, shape] of base.shapes) {
    const t = frozen.get(name);
    if (t === undefined || t.shape.join() !== shape.join()) throw new RangeError(`frozen base: ${name} must have shape [${shape.join(', ')}]`);
  }
  const shapes = pattern instanceof RegExp ? loraShapes(base.shapes, rank, pattern) : loraPlanShapes(base.shapes, { rank, alpha, targets: pattern });
  const targets = pattern instanceof RegExp
    ? base.shapes.filter(([name, shape]) => pattern.test(name) && shape.length === 2).map(([name]) => name)
    : [...pattern];
  const specs: Array<readonly [string, readonly number[], Init]> = shapes.map(([name, shape]) => [
    name, shape, name.endsWith('.lora_A') ? { kind: 'normal', std: 1 / Math.sqrt(shape[0]!) } : { kind: 'const', value: 0 },
  ]);
  const scale = alpha / rank;
  const onRuntime: Params = toDevice(frozen);
  const targetSet = new Set(targets);
  return {
    base,
    targets,
    rank,
    scale,
    shapes: specs.map(([n, s]) => [n, s] as const),
    classes: base.classes,
    decayed: new Set(),
    inputShape: (b) => base.inputShape(b),
    targetShape: (b) => base.targetShape(b),
    init: (seed) => initTensors(specs, seed),
    logits(p: Params, x: JaxArray): JaxArray {
      const effective: Params = {};
      for (const [name] of base.shapes) {
        const w = onRuntime[name]!.ref;
        if (!targetSet.has(name)) {
          effective[name] = w;
          continue;
        }
        const { a, b } = loraNames(name);
        effective[name] = w.add(np.matmul(p[a]!, p[b]!).mul(scale));
      }
      return base.logits(effective, x);
    },
    dispose: () => dispose(onRuntime),
  };
}

