// Submodel extraction and merging for every plan kind: the server (or a device) cuts the plan's submodel out of the
// global parameters, the device trains it as an ordinary model of submodelSpec(spec, plan) with the unchanged train
// layer, and the server scatters its delta back with the coverage of exactly the coordinates the submodel holds, for
// the coverage-aware strategies (src/core/strategies/accumulator.ts) to average each coordinate over the updates that
// trained it. Exact: embed(extract(p)) reproduces p on the covered coordinates and nothing else.
import type { Coverage } from '../coverage.ts';
import type { ModelSpec } from '../model-spec.ts';
import type { Plan } from '../protocol/schemas.ts';
import { unflatten, type ParamLayout, type Tensor, type TensorRecord } from '../tensor.ts';
import { depthSlices, depthSubSpec } from './depth.ts';
import { parameterLayout, parameterShapes } from './shapes.ts';
import { embedSlices, extractSlices, sliceCoverage, SubmodelError, tensorSlice, type TensorSlice } from './slice.ts';
import { widthSlices, widthSubSpec } from './width.ts';

export { SubmodelError } from './slice.ts';

/** The spec of the smaller model a plan trains: a device builds and trains it like any other model. */
export function submodelSpec<S extends ModelSpec>(spec: S, plan: Plan): S {
  switch (plan.kind) {
    case 'full': return spec;
    case 'width': return widthSubSpec(spec, plan.ratio, plan.scaler === true);
    // Only a GPT has a depth plan (depthSubSpec throws otherwise), so S is GptSpec here.
    case 'depth': return depthSubSpec(spec, plan) as S;
    // A LoRA plan trains adapters on the whole (frozen) model: the model it runs is the global one.
    case 'lora': return spec;
  }
}

/** Per tensor of the submodel: which global tensor and which indices of it. */
export function planSlices(spec: ModelSpec, plan: Plan): TensorSlice[] {
  switch (plan.kind) {
    case 'full': return parameterShapes(spec).map(([name, shape]) => tensorSlice(name, shape, shape.map(() => null)));
    case 'width': return widthSlices(spec, plan);
    case 'depth': return depthSlices(spec, plan);
    // Its upload is adapters, not a slice of the parameters: src/core/lora.ts (loraToDense) turns it into a delta.
    case 'lora': throw new SubmodelError(`a LoRA plan is not a submodel: its update holds adapters, not a slice of the parameters (src/core/lora.ts)`);
  }
}

/** The submodel's parameters (copies), named and shaped as submodelSpec(spec, plan)'s model expects. */
export function extract(globalParams: TensorRecord, spec: ModelSpec, plan: Plan): Map<string, Tensor> {
  return extractSlices(globalParams, planSlices(spec, plan));
}

/**
 * A submodel delta scattered into the global flat layout (parameterLayout(spec)), zero outside the submodel, with the
 * coverage of exactly the coordinates the submodel holds: a ClientUpdate's delta and coverage.
 */
export function embed(subDelta: TensorRecord, spec: ModelSpec, plan: Plan): { delta: Float32Array; coverage: Coverage } {
  return embedSlices(subDelta, planSlices(spec, plan), parameterLayout(spec));
}

/** The coordinates of the global flat layout a plan trains. */
export function planCoverage(spec: ModelSpec, plan: Plan): Coverage {
  return sliceCoverage(planSlices(spec, plan), parameterLayout(spec));
}

/** The flat layout of the plan's submodel: the layout a device's upload for this plan is decoded in. */
export function submodelLayout(spec: ModelSpec, plan: Plan): ParamLayout {
  return parameterLayout(submodelSpec(spec, plan));
}

/** embed for a submodel delta that is already flat in submodelLayout(spec, plan), as decodeUpdate returns it. */
export function embedFlat(subDelta: Float32Array, spec: ModelSpec, plan: Plan): { delta: Float32Array; coverage: Coverage } {
  return embed(unflatten(subDelta, submodelLayout(spec, plan)), spec, plan);
}
