// The planner's settings as they appear in run configs and simulator configs: one schema, so a setting tried in
// `tessera sim` means the same thing on a live coordinator.
import { z } from 'zod';

export const PlannerSettings = z.object({
  /** How devices too small for the model take part: rolling width windows (FedRolex), static slices (HeteroFL),
   * a subset of blocks, or not at all ('none': they get no lease). */
  submodels: z.enum(['rolling', 'static', 'depth', 'none']).default('rolling'),
  /** Seconds of local training a lease should take on any device. */
  leaseSeconds: z.number().positive().default(60),
  minSteps: z.number().int().min(1).default(1),
  maxSteps: z.number().int().min(1).default(10_000),
  /** 'full': devices fetch the whole base version and cut their submodel (live devices do); 'plan': only their part. */
  download: z.enum(['full', 'plan']).default('full'),
}).strict();
export type PlannerSettings = z.infer<typeof PlannerSettings>;
