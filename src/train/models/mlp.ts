// Multi-layer perceptron classifier with ReLU hidden layers (the FedAvg paper's "2NN" shape by default).
import { z } from 'zod';
import { nn, np, type JaxArray, type Params } from '../runtime/jax.ts';
import { initTensors, type Init } from './init.ts';
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
  const specs: Array<readonly [string, readonly number[], Init]> = [];
  for (let i = 0; i + 1 < dims.length; i++) {
    // PyTorch's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
    const bound = 1 / Math.sqrt(dims[i]!);
    specs.push([`fc.${i}.weight`, [dims[i]!, dims[i + 1]!], { kind: 'uniform', bound }]);
    specs.push([`fc.${i}.bias`, [dims[i + 1]!], { kind: 'uniform', bound }]);
  }
  const last = dims.length - 2;
  return {
    shapes: specs.map(([n, s]) => [n, s] as const),
    classes: spec.classes,
    decayed: new Set(specs.filter(([, s]) => s.length === 2).map(([n]) => n)),
    inputShape: (b) => [b, spec.inputs],
    targetShape: (b) => [b],
    init: (seed) => initTensors(specs, seed),
    logits(p: Params, x: JaxArray): JaxArray {
      let h = x;
      for (let i = 0; i <= last; i++) {
        h = np.matmul(h, p[`fc.${i}.weight`]!).add(p[`fc.${i}.bias`]!);
        if (i < last) h = nn.relu(h);
      }
      return h;
    },
  };
}
