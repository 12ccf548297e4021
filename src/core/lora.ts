// LoRA adapters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"): a frozen weight W [in, out]
// is adapted as W + s * A B with A [in, r], B [r, out] and s = alpha / r. Devices train and upload only A and B.
//
// Heterogeneous ranks are aggregated by stacking, as in FLoRA (Wang et al. 2024, "FLoRA: Federated Fine-Tuning Large
// Language Models with Heterogeneous Low-Rank Adaptations", NeurIPS 2024): with weights p_k summing to 1,
//   sum_k p_k s_k A_k B_k = [A_1 ... A_K] [p_1 s_1 B_1; ...; p_K s_K B_K],
// a rank sum_k r_k adapter that is exactly the weighted mean of the devices' updates. We chose it over HetLoRA's
// zero-padding (Cho et al. 2024, "Heterogeneous LoRA for Federated Fine-tuning of On-Device Foundation Models"),
// which pads every A_k, B_k to the largest rank and averages A and B separately: the product of the averages,
// (sum_j p_j A_j)(sum_k p_k B_k), carries cross terms A_j B_k (j != k) that no device computed, so it is not the mean
// update (zeroPadAverage below exists to measure that error). Stacking costs a larger global adapter, which is why
// the server merges it into the base weights on a schedule (mergeLora) and starts again from rank 0.
//
// Naming: the adapter of parameter `P.weight` is `P.lora_A` [in, r] and `P.lora_B` [r, out] (Tessera's [in, out]
// layout, as GPT-2's Conv1D). Pure.
import type { Tensor, TensorRecord } from './tensor.ts';

export class LoraError extends Error {
  override readonly name = 'LoraError';
}

/** One device's adapters with its aggregation weight (e.g. examples trained) and its scale alpha / r. */
export interface LoraContribution {
  readonly adapters: TensorRecord;
  readonly weight: number;
  readonly scale: number;
}

export const loraNames = (target: string): { a: string; b: string } => {
  if (!target.endsWith('.weight')) throw new LoraError(`LoRA targets weight matrices named '*.weight', got ${target}`);
  const stem = target.slice(0, -'.weight'.length);
  return { a: `${stem}.lora_A`, b: `${stem}.lora_B` };
};

/** The targets (base parameter names) a set of adapters covers, checking every A has its B. */
export function loraTargets(adapters: TensorRecord): string[] {
  const targets: string[] = [];
  for (const name of adapters.keys()) {
    if (name.endsWith('.lora_A')) {
      const target = `${name.slice(0, -'.lora_A'.length)}.weight`;
      if (!adapters.has(loraNames(target).b)) throw new LoraError(`${name} has no matching lora_B`);
      targets.push(target);
    } else if (!name.endsWith('.lora_B')) {
      throw new LoraError(`${name} is not a LoRA adapter tensor (names end in .lora_A or .lora_B)`);
    } else if (!adapters.has(`${name.slice(0, -'.lora_B'.length)}.lora_A`)) {
      throw new LoraError(`${name} has no matching lora_A`);
    }
  }
  return targets.sort();
}

/** A and B of one target, checked to be [in, r] and [r, out]. */
function factors(adapters: TensorRecord, target: string): { a: Tensor; b: Tensor; inDim: number; rank: number; outDim: number } {
  const names = loraNames(target);
  const a = adapters.get(names.a);
  const b = adapters.get(names.b);
  if (a === undefined || b === undefined) throw new LoraError(`no adapter for ${target}`);
  if (a.shape.length !== 2 || b.shape.length !== 2 || a.shape[1] !== b.shape[0]) {
    throw new LoraError(`${target}: lora_A [${a.shape.join(', ')}] and lora_B [${b.shape.join(', ')}] must be [in, r] and [r, out]`);
  }
  return { a, b, inDim: a.shape[0]!, rank: a.shape[1]!, outDim: b.shape[1]! };
}

/** s * A B as a dense [in, out] matrix, accumulated in float64. */
export function loraDelta(adapters: TensorRecord, target: string, scale = 1): Tensor {
  const { a, b, inDim, rank, outDim } = factors(adapters, target);
  const out = new Float32Array(inDim * outDim);
  const row = new Float64Array(outDim);
  for (let i = 0; i < inDim; i++) {
    row.fill(0);
    for (let k = 0; k < rank; k++) {
      const aik = a.data[i * rank + k]!;
      if (aik === 0) continue;
      for (let j = 0; j < outDim; j++) row[j]! += aik * b.data[k * outDim + j]!;
    }
    for (let j = 0; j < outDim; j++) out[i * outDim + j] = scale * row[j]!;
  }
  return { shape: [inDim, outDim], data: out };
}

/**
 * FLoRA stacking: one adapter of rank sum_k r_k (scale 1) whose product is exactly sum_k p_k s_k A_k B_k, with
 * p_k = weight_k / sum weights. Every contribution must adapt the same targets with the same in/out sizes; ranks may
 * differ. An optional `previous` stacked adapter (scale 1) is kept as is in front, so a server can keep stacking
 * rounds between merges: the result is previous + this round's mean.
 */
export function stackLora(contributions: readonly LoraContribution[], previous?: TensorRecord): Map<string, Tensor> {
  if (contributions.length === 0) throw new LoraError('nothing to aggregate');
  const total = contributions.reduce((s, c) => s + c.weight, 0);
  for (const c of contributions) {
    if (!(c.weight > 0) || !Number.isFinite(c.weight)) throw new LoraError(`aggregation weights must be positive and finite, got ${c.weight}`);
    if (!Number.isFinite(c.scale)) throw new LoraError(`scale must be finite, got ${c.scale}`);
  }
  const targets = loraTargets(contributions[0]!.adapters);
  const parts: Array<{ adapters: TensorRecord; factor: number }> = contributions.map((c) => ({ adapters: c.adapters, factor: (c.weight / total) * c.scale }));
  if (previous !== undefined) parts.unshift({ adapters: previous, factor: 1 });
  const out = new Map<string, Tensor>();
  for (const target of targets) {
    const fs = parts.map((p) => {
      const targetsHere = loraTargets(p.adapters);
      if (targetsHere.join() !== targets.join()) throw new LoraError('contributions adapt different parameters');
      return { ...factors(p.adapters, target), factor: p.factor };
    });
    const { inDim, outDim } = fs[0]!;
    for (const f of fs) {
      if (f.inDim !== inDim || f.outDim !== outDim) throw new LoraError(`${target}: adapters disagree on the matrix size [${inDim}, ${outDim}] vs [${f.inDim}, ${f.outDim}]`);
    }
    const rank = fs.reduce((s, f) => s + f.rank, 0);
    const a = new Float32Array(inDim * rank);
    const b = new Float32Array(rank * outDim);
    let at = 0;
    for (const f of fs) {
      for (let i = 0; i < inDim; i++) for (let k = 0; k < f.rank; k++) a[i * rank + at + k] = f.a.data[i * f.rank + k]!;
      for (let k = 0; k < f.rank; k++) for (let j = 0; j < outDim; j++) b[(at + k) * outDim + j] = f.factor * f.b.data[k * outDim + j]!;
      at += f.rank;
    }
    const names = loraNames(target);
    out.set(names.a, { shape: [inDim, rank], data: a });
    out.set(names.b, { shape: [rank, outDim], data: b });
  }
  return out;
}

/**
 * HetLoRA-style zero-padding, for comparison only: pad to the largest rank, average A and B separately (weights p_k,
 * B_k pre-multiplied by s_k). Its product is NOT the mean update; see the header.
 */
export function zeroPadAverage(contributions: readonly LoraContribution[]): Map<string, Tensor> {
  const total = contributions.reduce((s, c) => s + c.weight, 0);
  const targets = loraTargets(contributions[0]!.adapters);
  const out = new Map<string, Tensor>();
  for (const target of targets) {
    const fs = contributions.map((c) => ({ ...factors(c.adapters, target), p: c.weight / total, s: c.scale }));
    const { inDim, outDim } = fs[0]!;
    const rank = Math.max(...fs.map((f) => f.rank));
    const a = new Float32Array(inDim * rank);
    const b = new Float32Array(rank * outDim);
    for (const f of fs) {
      for (let i = 0; i < inDim; i++) for (let k = 0; k < f.rank; k++) a[i * rank + k]! += f.p * f.a.data[i * f.rank + k]!;
      for (let k = 0; k < f.rank; k++) for (let j = 0; j < outDim; j++) b[k * outDim + j]! += f.p * f.s * f.b.data[k * outDim + j]!;
    }
    const names = loraNames(target);
    out.set(names.a, { shape: [inDim, rank], data: a });
    out.set(names.b, { shape: [rank, outDim], data: b });
  }
  return out;
}

/** base with W <- W + scale * A B for every adapted target: the merge that makes a new base version. */
export function mergeLora(base: TensorRecord, adapters: TensorRecord, scale = 1): Map<string, Tensor> {
  const out = new Map(base);
  for (const target of loraTargets(adapters)) {
    const w = base.get(target);
    if (w === undefined) throw new LoraError(`the base has no parameter ${target} to merge into`);
    const delta = loraDelta(adapters, target, scale);
    if (w.shape.join() !== delta.shape.join()) throw new LoraError(`${target} is [${w.shape.join(', ')}] but its adapter makes [${delta.shape.join(', ')}]`);
    out.set(target, { shape: w.shape, data: w.data.map((v, i) => v + delta.data[i]!) });
  }
  return out;
}

/**
 * The adapter tensors (name, shape) of rank `rank` for the 2-D parameters of `baseShapes` whose names match
 * `targets`, in the base's order: the layout a LoRA update arrives in.
 */
export function loraShapes(
  baseShapes: ReadonlyArray<readonly [string, readonly number[]]>,
  rank: number,
  targets: RegExp,
): Array<readonly [string, readonly number[]]> {
  if (!Number.isInteger(rank) || rank < 1) throw new LoraError(`LoRA rank must be a positive integer, got ${rank}`);
  const out: Array<readonly [string, readonly number[]]> = [];
  for (const [name, shape] of baseShapes) {
    if (!targets.test(name) || shape.length !== 2) continue;
    const { a, b } = loraNames(name);
    out.push([a, [shape[0]!, rank]], [b, [rank, shape[1]!]]);
  }
  if (out.length === 0) throw new LoraError('no parameter of the base model matches the LoRA targets');
  return out;
}

/**
 * A dense update in the base's parameters: s * A B for adapted matrices, zeros elsewhere. Averaging these with any
 * linear rule (FedAvg, FedBuff) gives the same result as stacking, because the mean of products is what stacking
 * computes; this is how a coordinator that folds dense deltas can take LoRA uploads and merge every version.
 */
export function loraDenseDelta(base: TensorRecord, adapters: TensorRecord, scale: number): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, t] of base) out.set(name, { shape: t.shape, data: new Float32Array(t.data.length) });
  for (const target of loraTargets(adapters)) {
    const w = base.get(target);
    if (w === undefined) throw new LoraError(`the base has no parameter ${target}`);
    const delta = loraDelta(adapters, target, scale);
    if (w.shape.join() !== delta.shape.join()) throw new LoraError(`${target} is [${w.shape.join(', ')}] but its adapter makes [${delta.shape.join(', ')}]`);
    out.set(target, delta);
  }
  return out;
}

/**
 * The server side of a LoRA run with a merge schedule: each round's uploads are stacked onto the global adapter
 * (which devices download instead of the base while it is small); every `mergeEvery` rounds the adapter is merged into
 * the base, which becomes a new base version, and the adapter starts again empty.
 */
export class LoraSchedule {
  private adapter: Map<string, Tensor> | undefined;
  private roundsSinceMerge = 0;
  private baseVersion = 0;

  constructor(
    private base: Map<string, Tensor>,
    readonly mergeEvery: number,
  ) {
    if (!Number.isInteger(mergeEvery) || mergeEvery < 1) throw new LoraError(`mergeEvery must be a positive integer, got ${mergeEvery}`);
  }

  /** Folds one round's uploads; returns whether the round ended in a merge (a new base version). */
  round(contributions: readonly LoraContribution[]): { merged: boolean; baseVersion: number; adapterRank: number } {
    this.adapter = stackLora(contributions, this.adapter);
    this.roundsSinceMerge++;
    let merged = false;
    if (this.roundsSinceMerge === this.mergeEvery) {
      this.base = mergeLora(this.base, this.adapter);
      this.adapter = undefined;
      this.roundsSinceMerge = 0;
      this.baseVersion++;
      merged = true;
    }
    return { merged, baseVersion: this.baseVersion, adapterRank: this.adapterRank };
  }

  /** The frozen weights devices train on: the base with the pending global adapter applied. */
  current(): Map<string, Tensor> {
    return this.adapter === undefined ? new Map(this.base) : mergeLora(this.base, this.adapter);
  }

  get currentBase(): ReadonlyMap<string, Tensor> {
    return this.base;
  }

  /** The global adapter since the last merge (undefined right after one). */
  get pendingAdapter(): ReadonlyMap<string, Tensor> | undefined {
    return this.adapter;
  }

  get adapterRank(): number {
    if (this.adapter === undefined) return 0;
    const first = loraTargets(this.adapter)[0]!;
    return this.adapter.get(loraNames(first).a)!.shape[1]!;
  }
}

/** GPT-2's attention and MLP matrices (not embeddings, norms or biases), the targets of the LoRA paper and of PEFT. */
export const GPT_LORA_TARGETS = /^h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/;

/**
 * The default targets of a model's LoRA plans, in the base's order: for a GPT its attention and MLP matrices
 * (GPT_LORA_TARGETS), for any other model every 2-D `*.weight`.
 */
export function defaultLoraTargets(baseShapes: ReadonlyArray<readonly [string, readonly number[]]>, gpt: boolean): string[] {
  return baseShapes
    .filter(([name, shape]) => shape.length === 2 && (gpt ? GPT_LORA_TARGETS.test(name) : name.endsWith('.weight')))
    .map(([name]) => name);
}

/** What a LoRA lease says about its adapters: the `lora` plan's rank, alpha and targets (src/core/protocol/schemas.ts). */
export interface LoraPlanShape {
  readonly rank: number;
  readonly alpha: number;
  readonly targets: readonly string[];
}

/**
 * The adapter tensors (name, shape) of a LoRA plan on a model with `baseShapes`: for each target `P.weight` [in, out],
 * `P.lora_A` [in, r] and `P.lora_B` [r, out]. This is the layout a LoRA update is decoded in. Throws LoraError, naming
 * the target, when a target is not a 2-D `*.weight` of the model, is listed twice, or r > min(in, out) (a rank above
 * that adds parameters but no expressiveness: A B has rank at most min(in, out)).
 */
export function loraPlanShapes(
  baseShapes: ReadonlyArray<readonly [string, readonly number[]]>,
  plan: LoraPlanShape,
): Array<readonly [string, readonly number[]]> {
  const { rank, alpha, targets } = plan;
  if (!Number.isInteger(rank) || rank < 1) throw new LoraError(`LoRA rank must be a positive integer, got ${rank}`);
  if (!(alpha > 0) || !Number.isFinite(alpha)) throw new LoraError(`LoRA alpha must be a positive finite number, got ${alpha}`);
  if (targets.length === 0) throw new LoraError('a LoRA plan needs at least one target weight matrix');
  const shapes = new Map(baseShapes.map(([n, s]) => [n, s]));
  const seen = new Set<string>();
  const out: Array<readonly [string, readonly number[]]> = [];
  for (const target of targets) {
    if (seen.has(target)) throw new LoraError(`LoRA target ${target} is listed twice`);
    seen.add(target);
    const shape = shapes.get(target);
    if (shape === undefined) throw new LoraError(`LoRA target ${target} is not a parameter of the model`);
    if (shape.length !== 2) throw new LoraError(`LoRA target ${target} is [${shape.join(', ')}], not a weight matrix`);
    const { a, b } = loraNames(target);
    const [inDim, outDim] = [shape[0]!, shape[1]!];
    if (rank > Math.min(inDim, outDim)) {
      throw new LoraError(`LoRA rank ${rank} exceeds min(in, out) = ${Math.min(inDim, outDim)} of ${target} [${inDim}, ${outDim}]`);
    }
    out.push([a, [inDim, rank]], [b, [rank, outDim]]);
  }
  return out;
}

/** Numbers in a LoRA plan's adapters: r (in + out) per target. */
export function loraParameterCount(baseShapes: ReadonlyArray<readonly [string, readonly number[]]>, plan: LoraPlanShape): number {
  return loraPlanShapes(baseShapes, plan).reduce((n, [, s]) => n + s[0]! * s[1]!, 0);
}

/**
 * A LoRA upload as a dense update of the base: (alpha / r) A B written into each target's slot of the base's flat
 * layout, zeros elsewhere, and the coverage ranges of exactly the targets' coordinates. `slots` are the base layout's
 * slots (name, offset, size); `adapters` must hold exactly the plan's tensors (loraPlanShapes), as a decoded upload does.
 */
export function loraToDense(
  adapters: TensorRecord,
  slots: ReadonlyArray<{ readonly name: string; readonly shape: readonly number[]; readonly offset: number; readonly size: number }>,
  size: number,
  plan: LoraPlanShape,
): { delta: Float32Array; ranges: Array<readonly [number, number]> } {
  const byName = new Map(slots.map((s) => [s.name, s]));
  const delta = new Float32Array(size);
  const ranges: Array<readonly [number, number]> = [];
  const scale = plan.alpha / plan.rank;
  for (const target of plan.targets) {
    const slot = byName.get(target);
    if (slot === undefined) throw new LoraError(`the base has no parameter ${target}`);
    const d = loraDelta(adapters, target, scale);
    if (d.shape.join() !== slot.shape.join()) throw new LoraError(`${target} is [${slot.shape.join(', ')}] but its adapter makes [${d.shape.join(', ')}]`);
    delta.set(d.data, slot.offset);
    ranges.push([slot.offset, slot.offset + slot.size]);
  }
  return { delta, ranges };
}
