// Strategies as data: the schema a run config names its aggregation rule with, and the one function that builds the
// Strategy from it. The coordinator, the simulator and tests all go through here.
import { z } from 'zod';
import { diloco, serverNesterov } from './diloco.ts';
import { fedAvg, serverSgd } from './fedavg.ts';
import { fedAvgM, serverMomentum } from './fedavgm.ts';
import { fedBuff } from './fedbuff.ts';
import { fedNova } from './fednova.ts';
import { fedAdagrad, fedAdam, fedYogi, serverAdaptive } from './fedopt.ts';
import type { ServerOptimizer, Strategy } from './types.ts';

const lr = z.number().positive();
const weighting = z.enum(['examples', 'uniform']).default('examples');
const adaptive = { lr, beta1: z.number().min(0).lt(1).optional(), beta2: z.number().min(0).lt(1).optional(), tau: z.number().positive().optional() };

export const ServerOptimizerConfig = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('sgd'), lr: lr.default(1) }).strict(),
  z.object({ kind: z.literal('momentum'), lr: lr.default(1), beta: z.number().min(0).lt(1).default(0.9) }).strict(),
  z.object({ kind: z.enum(['adam', 'yogi', 'adagrad']), ...adaptive }).strict(),
  z.object({ kind: z.literal('nesterov'), lr: lr.default(0.7), momentum: z.number().min(0).lt(1).default(0.9) }).strict(),
]);
export type ServerOptimizerConfig = z.infer<typeof ServerOptimizerConfig>;

export const StalenessConfig = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('constant') }).strict(),
  z.object({ kind: z.literal('polynomial'), a: z.number().min(0) }).strict(),
  z.object({ kind: z.literal('hinge'), a: z.number().min(0), b: z.number().min(0) }).strict(),
]);

export const StrategyConfig = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('fedbuff'),
    bufferSize: z.number().int().min(1),
    staleness: StalenessConfig.prefault({ kind: 'polynomial', a: 0.5 }),
    normalize: z.enum(['count', 'weight']).default('count'),
    serverOptimizer: ServerOptimizerConfig.prefault({ kind: 'sgd' }),
  }).strict(),
  z.object({ kind: z.literal('fedavg'), serverLr: lr.default(1), weighting }).strict(),
  z.object({ kind: z.literal('fedavgm'), lr: lr.default(1), beta: z.number().min(0).lt(1).default(0.9), weighting }).strict(),
  z.object({ kind: z.enum(['fedadam', 'fedyogi', 'fedadagrad']), ...adaptive, weighting }).strict(),
  z.object({ kind: z.literal('fednova'), serverLr: lr.default(1), weighting }).strict(),
  z.object({ kind: z.literal('diloco'), lr: lr.default(0.7), momentum: z.number().min(0).lt(1).default(0.9), weighting: weighting.default('uniform') }).strict(),
]);
export type StrategyConfig = z.infer<typeof StrategyConfig>;

export function createServerOptimizer(cfg: ServerOptimizerConfig): ServerOptimizer {
  switch (cfg.kind) {
    case 'sgd': return serverSgd(cfg.lr);
    case 'momentum': return serverMomentum({ lr: cfg.lr, beta: cfg.beta });
    case 'nesterov': return serverNesterov({ lr: cfg.lr, momentum: cfg.momentum });
    default: return serverAdaptive(cfg.kind, cfg);
  }
}

export function createStrategy(cfg: StrategyConfig): Strategy {
  switch (cfg.kind) {
    case 'fedbuff':
      return fedBuff({ bufferSize: cfg.bufferSize, staleness: cfg.staleness, normalize: cfg.normalize, optimizer: createServerOptimizer(cfg.serverOptimizer) });
    case 'fedavg': return fedAvg(cfg);
    case 'fedavgm': return fedAvgM(cfg);
    case 'fedadam': return fedAdam(cfg);
    case 'fedyogi': return fedYogi(cfg);
    case 'fedadagrad': return fedAdagrad(cfg);
    case 'fednova': return fedNova(cfg);
    case 'diloco': return diloco(cfg);
  }
}
