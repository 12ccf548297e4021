// Multi-layer perceptron classifier with ReLU hidden layers (the FedAvg paper's "2NN" shape by default).
import { z } from 'zod';
import type { JaxArray, Params } from '../runtime/jax.ts';
import { applyDense, denseSpecs } from './dense.ts';
import { initTensors } from './init.ts';
import type { Model } from './model.ts';

export const MlpSpec = z.object({
  kind: z.literal('mlp'),
  inputs: z.number().int().min(1),
  hidden: z.array(z.number().int().min(1)),
  classes: z.number().int().min(2),
});
export type MlpSpec = z.infer<typeof MlpSpec>;

export function mlp(spec: MlpSpec): Model {
  const dims = [spec.inputs, ...spec.hidden, spec.classes];
  const specs = denseSpecs(dims);
  return {
    shapes: specs.map(([n, s]) => [n, s] as const),
    classes: spec.classes,
    decayed: new Set(specs.filter(([, s]) => s.length === 2).map(([n]) => n)),
    inputShape: (b) => [b, spec.inputs],
    targetShape: (b) => [b],
    init: (seed) => initTensors(specs, seed),
    logits: (p: Params, x: JaxArray): JaxArray => applyDense(p, x, dims.length - 1),
  };
}
