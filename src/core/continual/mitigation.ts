// Forgetting mitigations for continual runs, where data arrives in time order and later versions drift away from
// what earlier data taught. Both act on the server side, on flat parameter vectors, after each server step; both are
// selectable through ContinualMitigation:
//
//   ema     Publish an exponential moving average of versions, theta_ema <- beta * theta_ema + (1 - beta) * theta,
//           while devices keep training the raw trajectory theta. Iterate averaging in the sense of Polyak & Juditsky,
//           "Acceleration of Stochastic Approximation by Averaging", SIAM J. Control Optim. 1992 (exponential form as
//           in Tarvainen & Valpola, "Mean teachers are better role models", NeurIPS 2017): the served model keeps a
//           memory of about 1 / (1 - beta) versions. (Had devices trained from theta_ema instead, the EMA would
//           collapse into a server learning rate of 1 - beta: theta_ema + (1 - beta) * Delta.)
//   anchor  Pull each new version toward an anchor version a (the run sets it to the version in force when a new era
//           begins) by the proximal operator of (mu / 2) ||theta - a||^2:
//             prox(theta) = argmin_w ||w - theta||^2 / 2 + (mu / 2) ||w - a||^2 = (theta + mu * a) / (1 + mu)
//           (Parikh & Boyd, "Proximal Algorithms", 2014, sec. 6.1.1). The penalty is FedProx's proximal term (Li et al.,
//           MLSys 2020) toward an earlier version rather than the lease's base, i.e. EWC (Kirkpatrick et al., PNAS 2017)
//           with the Fisher information replaced by the identity (that paper's "L2" baseline).
import { z } from 'zod';
import { assertSameLength } from '../update-math.ts';

export const ContinualMitigation = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('none') }),
  z.object({ kind: z.literal('ema'), beta: z.number().min(0).lt(1) }),
  z.object({ kind: z.literal('anchor'), mu: z.number().positive().finite() }),
]);
export type ContinualMitigation = z.infer<typeof ContinualMitigation>;

/** theta_ema <- beta * theta_ema + (1 - beta) * theta, in place; accumulated in float64 per element. */
export function emaUpdate(ema: Float32Array, params: Float32Array, beta: number): void {
  assertSameLength(ema, params, 'emaUpdate');
  const keep = 1 - beta;
  for (let i = 0; i < ema.length; i++) ema[i] = beta * ema[i]! + keep * params[i]!;
}

/** (theta + mu * a) / (1 + mu): the proximal step toward the anchor, into `out` (a new vector unless given). */
export function proximalPull(params: Float32Array, anchor: Float32Array, mu: number, out = new Float32Array(params.length)): Float32Array {
  assertSameLength(params, anchor, 'proximalPull');
  assertSameLength(params, out, 'proximalPull output');
  const k = 1 / (1 + mu);
  for (let i = 0; i < params.length; i++) out[i] = (params[i]! + mu * anchor[i]!) * k;
  return out;
}

/**
 * What the server does with each new version under a mitigation: `train` is what devices lease next, `serve` is the
 * published model that is evaluated and exported. Holds the EMA or the anchor; no other state.
 */
export class ContinualPublisher {
  readonly config: ContinualMitigation;
  private ema: Float32Array | undefined;
  private anchor: Float32Array | undefined;

  constructor(config: ContinualMitigation, initial: Float32Array) {
    this.config = ContinualMitigation.parse(config);
    if (this.config.kind === 'ema') this.ema = initial.slice();
    if (this.config.kind === 'anchor') this.anchor = initial.slice();
  }

  /** Called when a new era's data starts arriving: the anchor becomes the version devices train from now. */
  startEra(current: Float32Array): void {
    if (this.anchor !== undefined) {
      assertSameLength(this.anchor, current, 'ContinualPublisher.startEra');
      this.anchor.set(current);
    }
  }

  /** Turns the strategy's new version into what devices train next and what is served. */
  publish(params: Float32Array): { train: Float32Array; serve: Float32Array } {
    switch (this.config.kind) {
      case 'none':
        return { train: params, serve: params };
      case 'ema':
        emaUpdate(this.ema!, params, this.config.beta);
        return { train: params, serve: this.ema!.slice() };
      case 'anchor': {
        const pulled = proximalPull(params, this.anchor!, this.config.mu);
        return { train: pulled, serve: pulled };
      }
    }
  }
}

/**
 * The anchor of the version numbered `version` in a continual run: the newest multiple of `every` below it, or the
 * version the model last grew at when that is later (older weights have another shape).
 */
export function anchorVersion(version: number, every: number, grownAt = 0): number {
  return Math.max(every * Math.floor((version - 1) / every), grownAt);
}
