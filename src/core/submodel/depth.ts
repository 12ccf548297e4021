// Depth submodels: a GPT that keeps `count` of its L transformer blocks (a window from `start`, wrapping around, kept
// in model order) and skips the rest; embeddings and the final LayerNorm are always kept. Pre-norm residual blocks
// tolerate being skipped (stochastic depth, Huang et al., ECCV 2016; LayerDrop, Fan et al., ICLR 2020), so the shorter
// stack is a usable model a small device can train, and rolling `start` trains every block in turn, as block-wise
// rolling does in FedBRB (Xu et al., 2024). Skipped blocks are not covered: their coordinates keep their values.
// The submodel is a GPT with `count` layers; its block j is the global block kept[j].
import type { GptSpec, ModelSpec } from '../model-spec.ts';
import { parameterShapes } from './shapes.ts';
import { SubmodelError, tensorSlice, type TensorSlice } from './slice.ts';

export interface DepthPlanLike {
  readonly start: number;
  readonly count: number;
}

/** The global blocks a depth plan keeps, ascending (model order). */
export function keptBlocks(layers: number, plan: DepthPlanLike): number[] {
  if (!(Number.isInteger(plan.count) && plan.count >= 1 && plan.count <= layers)) {
    throw new SubmodelError(`a depth plan keeps 1 to ${layers} blocks, got ${plan.count}`);
  }
  const out: number[] = [];
  for (let j = 0; j < plan.count; j++) out.push((plan.start + j) % layers);
  return out.sort((a, b) => a - b);
}

function gptOnly(spec: ModelSpec): GptSpec {
  if (spec.kind !== 'gpt') throw new SubmodelError(`depth plans need a transformer; a ${spec.kind} has no blocks to skip`);
  return spec;
}

export function depthSubSpec(spec: ModelSpec, plan: DepthPlanLike): GptSpec {
  const gpt = gptOnly(spec);
  keptBlocks(gpt.layers, plan);
  return { ...gpt, layers: plan.count };
}

export function depthSlices(spec: ModelSpec, plan: DepthPlanLike): TensorSlice[] {
  const gpt = gptOnly(spec);
  const blocks = keptBlocks(gpt.layers, plan);
  const subIndex = new Map(blocks.map((b, j) => [b, j] as const));
  const out: TensorSlice[] = [];
  for (const [name, shape] of parameterShapes(gpt)) {
    const whole = shape.map(() => null);
    const m = /^h\.(\d+)\.(.*)$/.exec(name);
    if (m === null) {
      out.push(tensorSlice(name, shape, whole));
      continue;
    }
    const j = subIndex.get(Number(m[1]));
    if (j !== undefined) out.push(tensorSlice(name, shape, whole, `h.${j}.${m[2]!}`));
  }
  return out;
}
