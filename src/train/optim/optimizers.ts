// On-device optimizers as pure functions over parameter trees, traced into the jitted update step. Per-step scalars
// (learning rate, bias corrections) travel as runtime arrays so a schedule never forces a recompile.
import { z } from 'zod';
import { np, type JaxArray, type Params } from '../runtime/jax.ts';

export const AdamWConfig = z.object({
  kind: z.literal('adamw'),
  lr: z.number().positive(),
  beta1: z.number().min(0).lt(1).default(0.9),
  beta2: z.number().min(0).lt(1).default(0.999),
  eps: z.number().positive().default(1e-8),
  weightDecay: z.number().min(0).default(0.01),
});
export const SgdConfig = z.object({
  kind: z.literal('sgd'),
  lr: z.number().positive(),
  momentum: z.number().min(0).lt(1).default(0),
  nesterov: z.boolean().default(false),
  weightDecay: z.number().min(0).default(0),
});
export const OptimizerConfig = z.discriminatedUnion('kind', [AdamWConfig, SgdConfig]);
export type OptimizerConfig = z.infer<typeof OptimizerConfig>;

/** Optimizer moments, keyed like the parameters ("m:<name>", "v:<name>"). */
export type OptState = Params;

export interface Optimizer {
  init(params: Params): OptState;
  /** Host scalars for step t (1-based) at learning rate lr; passed to `update` as arrays. */
  scalars(t: number, lr: number): Float32Array;
  /** New parameters and state. Consumes params, grads, state and scalars. */
  update(params: Params, grads: Params, state: OptState, scalars: JaxArray): [Params, OptState];
}

/**
 * AdamW, Loshchilov and Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019), Algorithm 2, with Adam's bias
 * correction (Kingma and Ba 2015) in PyTorch's form:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p = p - lr * wd * p - lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 * Weight decay applies only to the tensors in `decayed` (matrices), the usual choice for transformers.
 */
export function adamw(cfg: z.infer<typeof AdamWConfig>, decayed: ReadonlySet<string>): Optimizer {
  return {
    init: (params) => zerosState(params, ['m', 'v']),
    scalars: (t, lr) => Float32Array.of(lr, 1 - cfg.beta1 ** t, 1 - cfg.beta2 ** t),
    update(params, grads, state, scalars) {
      const lr = scalars.ref.slice(0);
      const bc1 = scalars.ref.slice(1);
      const bc2 = scalars.slice(2);
      const nextParams: Params = {};
      const nextState: OptState = {};
      for (const [name, p] of Object.entries(params)) {
        const g = grads[name]!;
        const m = state[`m:${name}`]!.mul(cfg.beta1).add(g.ref.mul(1 - cfg.beta1));
        const v = state[`v:${name}`]!.mul(cfg.beta2).add(g.ref.mul(g).mul(1 - cfg.beta2));
        const step = m.ref.div(bc1.ref).div(np.sqrt(v.ref.div(bc2.ref)).add(cfg.eps));
        const decay = decayed.has(name) && cfg.weightDecay > 0 ? p.ref.mul(cfg.weightDecay) : undefined;
        const delta = decay === undefined ? step : step.add(decay);
        nextParams[name] = p.sub(delta.mul(lr.ref));
        nextState[`m:${name}`] = m;
        nextState[`v:${name}`] = v;
      }
      lr.dispose(); bc1.dispose(); bc2.dispose();
      return [nextParams, nextState];
    },
  };
}

/**
 * SGD with momentum in PyTorch's form (Sutskever et al., ICML 2013, as implemented by torch.optim.SGD):
 *   g = g + wd p;  b = mu b + g;  p = p - lr * (nesterov ? g + mu b : b)
 */
export function sgd(cfg: z.infer<typeof SgdConfig>, decayed: ReadonlySet<string>): Optimizer {
  const useMomentum = cfg.momentum > 0;
  return {
    init: (params) => (useMomentum ? zerosState(params, ['b']) : {}),
    scalars: (_t, lr) => Float32Array.of(lr),
    update(params, grads, state, scalars) {
      const lr = scalars.slice(0);
      const nextParams: Params = {};
      const nextState: OptState = {};
      for (const [name, p] of Object.entries(params)) {
        let g = grads[name]!;
        if (decayed.has(name) && cfg.weightDecay > 0) g = g.add(p.ref.mul(cfg.weightDecay));
        let dir = g;
        if (useMomentum) {
          const b = state[`b:${name}`]!.mul(cfg.momentum).add(g.ref);
          dir = cfg.nesterov ? g.add(b.ref.mul(cfg.momentum)) : (g.dispose(), b.ref);
          nextState[`b:${name}`] = b;
        }
        nextParams[name] = p.sub(dir.mul(lr.ref));
      }
      lr.dispose();
      return [nextParams, nextState];
    },
  };
}

export function createOptimizer(cfg: OptimizerConfig, decayed: ReadonlySet<string>): Optimizer {
  return cfg.kind === 'adamw' ? adamw(cfg, decayed) : sgd(cfg, decayed);
}

function zerosState(params: Params, moments: string[]): OptState {
  const state: OptState = {};
  for (const [name, p] of Object.entries(params)) {
    for (const k of moments) state[`${k}:${name}`] = np.zeros([...p.shape], { dtype: p.dtype });
  }
  return state;
}
