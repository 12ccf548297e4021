// Parameter names and shapes of every model spec, computed in the core so that the server side (planner, merging,
// memory estimates) can reason about a model without the tensor runtime. They must agree one to one with the models
// in src/train/models; test/core/submodel/shapes.test.ts holds the two side by side.
import type { CnnSpec, GptSpec, ModelSpec } from '../model-spec.ts';
import { layoutOf, numel, type ParamLayout } from '../tensor.ts';

export type ShapeList = Array<readonly [string, readonly number[]]>;

/** (name, shape) of every parameter of the model `spec` describes, in the train layer's own order. */
export function parameterShapes(spec: ModelSpec): ShapeList {
  switch (spec.kind) {
    case 'gpt': return gptShapes(spec);
    case 'mlp': return denseShapes([spec.inputs, ...spec.hidden, spec.classes]);
    case 'cnn': return cnnShapes(spec);
  }
}

/** The flat layout updates and versions of this model use (names sorted, as layoutOf does everywhere). */
export function parameterLayout(spec: ModelSpec): ParamLayout {
  return layoutOf(parameterShapes(spec));
}

export function parameterCount(spec: ModelSpec): number {
  return parameterShapes(spec).reduce((n, [, shape]) => n + numel(shape), 0);
}

/** Spatial size (height, width) of the feature map after the CNN's strided 'SAME' convolutions. */
export function cnnFeatureMap(spec: CnnSpec): { height: number; width: number } {
  let [h, w] = [spec.height, spec.width];
  for (const layer of spec.conv) [h, w] = [Math.ceil(h / layer.stride), Math.ceil(w / layer.stride)];
  return { height: h, width: w };
}

function gptShapes(spec: GptSpec): ShapeList {
  const { vocabSize: V, context: T, width: C, layers: L, mlpRatio } = spec;
  const F = mlpRatio * C;
  const out: ShapeList = [['wte.weight', [V, C]], ['wpe.weight', [T, C]], ['ln_f.weight', [C]], ['ln_f.bias', [C]]];
  for (let l = 0; l < L; l++) out.push(...gptBlockShapes(l, C, F));
  return out;
}

/** One transformer block's tensors (HF GPT-2 names, [in, out] weights). */
export function gptBlockShapes(l: number, C: number, F: number): ShapeList {
  const p = `h.${l}.`;
  return [
    [`${p}ln_1.weight`, [C]], [`${p}ln_1.bias`, [C]],
    [`${p}attn.c_attn.weight`, [C, 3 * C]], [`${p}attn.c_attn.bias`, [3 * C]],
    [`${p}attn.c_proj.weight`, [C, C]], [`${p}attn.c_proj.bias`, [C]],
    [`${p}ln_2.weight`, [C]], [`${p}ln_2.bias`, [C]],
    [`${p}mlp.c_fc.weight`, [C, F]], [`${p}mlp.c_fc.bias`, [F]],
    [`${p}mlp.c_proj.weight`, [F, C]], [`${p}mlp.c_proj.bias`, [C]],
  ];
}

function denseShapes(dims: readonly number[]): ShapeList {
  const out: ShapeList = [];
  for (let i = 0; i + 1 < dims.length; i++) {
    out.push([`fc.${i}.weight`, [dims[i]!, dims[i + 1]!]], [`fc.${i}.bias`, [dims[i + 1]!]]);
  }
  return out;
}

function cnnShapes(spec: CnnSpec): ShapeList {
  const out: ShapeList = [];
  let c = spec.channels;
  spec.conv.forEach((layer, i) => {
    out.push([`conv.${i}.weight`, [layer.out, c, layer.kernel, layer.kernel]], [`conv.${i}.bias`, [layer.out]]);
    c = layer.out;
  });
  const { height, width } = cnnFeatureMap(spec);
  return [...out, ...denseShapes([c * height * width, ...spec.hidden, spec.classes])];
}
