// FedOpt: Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan, "Adaptive Federated Optimization",
// ICLR 2021, Algorithm 2 (FedAdagrad, FedYogi, FedAdam). With Delta_t the averaged client delta:
//   m_t = beta1 * m_{t-1} + (1 - beta1) * Delta_t
//   FedAdagrad: v_t = v_{t-1} + Delta_t^2
//   FedAdam:    v_t = beta2 * v_{t-1} + (1 - beta2) * Delta_t^2
//   FedYogi:    v_t = v_{t-1} - (1 - beta2) * Delta_t^2 * sign(v_{t-1} - Delta_t^2)
//   x_{t+1} = x_t + eta * m_t / (sqrt(v_t) + tau)
// Choices, documented because implementations differ:
// - v starts at tau^2 (Algorithm 2 asks for v_{-1} >= tau^2) and m at 0.
// - No bias correction by default, as in the paper. `biasCorrection: true` gives Adam-style correction (Kingma & Ba)
//   by scaling eta with sqrt(1 - beta2^t) / (1 - beta1^t) (FedAdagrad: 1 / (1 - beta1^t), its v does not decay),
//   with t the server version being produced; this matches Flower's FedAdam.
// - Defaults beta1 = 0.9, beta2 = 0.99, tau = 1e-3 follow the paper's experiments; eta has no universal default
//   (the paper tunes it per task), so it is required.
// - Algorithm 2 writes Delta_t as the plain mean over clients; the experiments and most implementations weight by
//   examples, which is the default here (`weighting: 'uniform'` gives the plain mean).

import { averagingStrategy, weighBy, type Weighting } from './averaging.ts';
import { checkNumber, slot, type ServerOptimizer, type Strategy } from './types.ts';

export type AdaptiveVariant = 'adagrad' | 'adam' | 'yogi';

export interface AdaptiveConfig {
  /** Server learning rate eta. */
  readonly lr: number;
  readonly beta1?: number;
  readonly beta2?: number;
  readonly tau?: number;
  readonly biasCorrection?: boolean;
}

/** The FedOpt server optimizer; slots `m` and `v`. */
export function serverAdaptive(
  variant: AdaptiveVariant,
  { lr, beta1 = 0.9, beta2 = 0.99, tau = 1e-3, biasCorrection = false }: AdaptiveConfig,
): ServerOptimizer {
  checkNumber('server learning rate', lr, 0);
  checkNumber('beta1', beta1, 0, 1, false);
  checkNumber('beta2', beta2, 0, 1, false);
  checkNumber('tau', tau, Number.MIN_VALUE);
  return {
    name: `fed${variant}`,
    initSlots: (size) => ({ m: new Float32Array(size), v: new Float32Array(size).fill(tau * tau) }),
    step(params, slots, { mean, mass }, t) {
      const m = slot(slots, 'm');
      const v = slot(slots, 'v');
      let eta = lr;
      if (biasCorrection) eta *= (variant === 'adagrad' ? 1 : Math.sqrt(1 - beta2 ** t)) / (1 - beta1 ** t);
      for (let i = 0; i < params.length; i++) {
        if (mass !== null && mass[i] === 0) continue;
        const d = mean[i]!;
        const d2 = d * d;
        const mi = beta1 * m[i]! + (1 - beta1) * d;
        const vPrev = v[i]!;
        const vi =
          variant === 'adagrad'
            ? vPrev + d2
            : variant === 'adam'
              ? beta2 * vPrev + (1 - beta2) * d2
              : vPrev - (1 - beta2) * d2 * Math.sign(vPrev - d2);
        m[i] = mi;
        v[i] = vi;
        params[i] = params[i]! + (eta * mi) / (Math.sqrt(vi) + tau);
      }
    },
  };
}

export interface FedOptConfig extends AdaptiveConfig {
  readonly weighting?: Weighting;
}

function fedOpt(variant: AdaptiveVariant, { weighting = 'examples', ...adaptive }: FedOptConfig): Strategy {
  const optimizer = serverAdaptive(variant, adaptive);
  return averagingStrategy({ name: `fed${variant}`, optimizer, weigh: weighBy(weighting) });
}

export const fedAdagrad = (config: FedOptConfig): Strategy => fedOpt('adagrad', config);
export const fedAdam = (config: FedOptConfig): Strategy => fedOpt('adam', config);
export const fedYogi = (config: FedOptConfig): Strategy => fedOpt('yogi', config);
