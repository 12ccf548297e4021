// LoRA uploads in the simulator, with the coordinator's own core functions (src/server/coordinator/run.ts, layoutOf
// and toGlobal): the adapters arrive flat in the layout of loraPlanShapes, are unflattened, and loraToDense forms
// (alpha / r) A B on every target with the coverage of exactly the targets' coordinates. From there the update is
// folded like any other, which for a linear strategy is FLoRA's exact stacked mean merged at every version
// (src/core/lora.ts). There is no second implementation of the fold here, only the plumbing run.ts also does.
import { coverageFromRanges, type Coverage } from '../core/coverage.ts';
import { loraPlanShapes, loraToDense } from '../core/lora.ts';
import { layoutOf, unflatten, type ParamLayout } from '../core/tensor.ts';
import type { LoraPlan } from './backend.ts';

/** The flat layout a LoRA plan's upload arrives in, on a model of layout `global` (run.ts: layoutOf(plan)). */
export function loraUploadLayout(global: ParamLayout, plan: LoraPlan): ParamLayout {
  return layoutOf(loraPlanShapes(global.slots.map((s) => [s.name, s.shape] as const), plan));
}

/** A LoRA upload as the dense update the strategy folds, with its coverage (run.ts: toGlobal). */
export function loraUploadToGlobal(adapters: Float32Array, global: ParamLayout, plan: LoraPlan): { delta: Float32Array; coverage: Coverage } {
  const dense = loraToDense(unflatten(adapters, loraUploadLayout(global, plan)), global.slots, global.size, plan);
  return { delta: dense.delta, coverage: coverageFromRanges(global.size, dense.ranges) };
}
