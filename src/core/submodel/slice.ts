// The one mechanism behind every submodel plan: a submodel tensor is the global tensor restricted, along each axis, to
// a list of kept indices (in the submodel's order), possibly under another name (a depth plan renumbers blocks).
// Extraction gathers along those lists, merging scatters back and records exactly the coordinates written, so
// extract -> embed is a bijection between the submodel's coordinates and the covered global ones. Both walk the
// tensor as contiguous runs (the innermost kept indices that are consecutive, times the full axes after them), so the
// cost is one typed-array copy per run, never a per-element index computation.
import { coverageFromRanges, type Coverage } from '../coverage.ts';
import { numel, sameShape, type ParamLayout, type Tensor, type TensorRecord } from '../tensor.ts';

export class SubmodelError extends Error {
  override readonly name = 'SubmodelError';
}

export interface TensorSlice {
  /** Name in the global model. */
  readonly name: string;
  /** Name in the submodel. */
  readonly subName: string;
  readonly shape: readonly number[];
  readonly subShape: readonly number[];
  /** Per axis: the global indices kept, in submodel order; null keeps the whole axis in order. */
  readonly index: ReadonlyArray<Int32Array | null>;
}

export function tensorSlice(
  name: string, shape: readonly number[], index: ReadonlyArray<Int32Array | null>, subName = name,
): TensorSlice {
  if (index.length !== shape.length) throw new SubmodelError(`${name}: ${index.length} axis indices for rank ${shape.length}`);
  const subShape = shape.map((d, a) => {
    const idx = index[a];
    if (idx === null || idx === undefined) return d;
    for (const i of idx) if (!(i >= 0 && i < d)) throw new SubmodelError(`${name}: index ${i} out of range on axis ${a} of size ${d}`);
    return idx.length;
  });
  return { name, subName, shape: [...shape], subShape, index };
}

/**
 * Calls fn(globalStart, subStart, length) for every maximal contiguous run of kept elements, in submodel order:
 * subStart increases by `length` from one call to the next and ends at the submodel tensor's size.
 */
export function forEachRun(slice: TensorSlice, fn: (globalStart: number, subStart: number, length: number) => void): void {
  const { shape, subShape, index } = slice;
  let last = -1;
  for (let a = 0; a < index.length; a++) if (index[a] !== null) last = a;
  if (last === -1) {
    const n = numel(shape);
    if (n > 0) fn(0, 0, n);
    return;
  }
  // Axes after `last` are whole, so one kept index on `last` is `inner` consecutive elements in both tensors.
  let inner = 1;
  for (let a = last + 1; a < shape.length; a++) inner *= shape[a]!;
  const lastIdx = index[last]!;
  const runs: number[] = [];
  for (let j = 0; j < lastIdx.length; ) {
    let k = j + 1;
    while (k < lastIdx.length && lastIdx[k] === lastIdx[k - 1]! + 1) k++;
    runs.push(lastIdx[j]! * inner, j * inner, (k - j) * inner);
    j = k;
  }
  if (inner === 0) return;
  const gStride = strides(shape);
  const sStride = strides(subShape);
  // Odometer over the submodel's indices on the axes before `last`.
  const pos = new Array<number>(last).fill(0);
  for (let a = 0; a < last; a++) if (subShape[a] === 0) return;
  for (;;) {
    let gBase = 0;
    let sBase = 0;
    for (let a = 0; a < last; a++) {
      const j = pos[a]!;
      const idx = index[a];
      gBase += (idx === null || idx === undefined ? j : idx[j]!) * gStride[a]!;
      sBase += j * sStride[a]!;
    }
    for (let r = 0; r < runs.length; r += 3) fn(gBase + runs[r]!, sBase + runs[r + 1]!, runs[r + 2]!);
    let a = last - 1;
    for (; a >= 0; a--) {
      pos[a] = pos[a]! + 1;
      if (pos[a]! < subShape[a]!) break;
      pos[a] = 0;
    }
    if (a < 0) return;
  }
}

/** The submodel's tensors cut out of `global` (copies: the submodel owns its memory). */
export function extractSlices(global: TensorRecord, slices: readonly TensorSlice[]): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const slice of slices) {
    const t = global.get(slice.name);
    if (t === undefined) throw new SubmodelError(`global parameters have no tensor ${slice.name}`);
    if (!sameShape(t.shape, slice.shape)) {
      throw new SubmodelError(`tensor ${slice.name} has shape [${t.shape.join(', ')}], the spec says [${slice.shape.join(', ')}]`);
    }
    const data = new Float32Array(numel(slice.subShape));
    const src = t.data;
    forEachRun(slice, (g, s, n) => data.set(src.subarray(g, g + n), s));
    out.set(slice.subName, { shape: [...slice.subShape], data });
  }
  return out;
}

/**
 * Scatters a submodel record (a delta, or parameters) into a zero vector in the global `layout`, and returns the
 * coverage of exactly the coordinates written. The record must hold exactly the submodel's names and shapes: it may
 * come from a device, so anything else is refused before anything is written.
 */
export function embedSlices(
  sub: TensorRecord, slices: readonly TensorSlice[], layout: ParamLayout,
): { delta: Float32Array; coverage: Coverage } {
  if (sub.size !== slices.length) {
    throw new SubmodelError(`submodel record has ${sub.size} tensors, the plan's submodel has ${slices.length}`);
  }
  const offsets = new Map(layout.slots.map((s) => [s.name, s] as const));
  const checked = slices.map((slice) => {
    const t = sub.get(slice.subName);
    if (t === undefined) throw new SubmodelError(`submodel record has no tensor ${slice.subName}`);
    if (!sameShape(t.shape, slice.subShape) || t.data.length !== numel(slice.subShape)) {
      throw new SubmodelError(
        `submodel tensor ${slice.subName} has shape [${t.shape.join(', ')}], the plan says [${slice.subShape.join(', ')}]`,
      );
    }
    const slot = offsets.get(slice.name);
    if (slot === undefined || !sameShape(slot.shape, slice.shape)) throw new SubmodelError(`global layout has no tensor ${slice.name} of the spec's shape`);
    return { slice, data: t.data, base: slot.offset };
  });
  const delta = new Float32Array(layout.size);
  const ranges: Array<readonly [number, number]> = [];
  for (const { slice, data, base } of checked) {
    forEachRun(slice, (g, s, n) => {
      delta.set(data.subarray(s, s + n), base + g);
      ranges.push([base + g, base + g + n]);
    });
  }
  return { delta, coverage: coverageFromRanges(layout.size, ranges) };
}

/** The coverage embedSlices would report, without any data. */
export function sliceCoverage(slices: readonly TensorSlice[], layout: ParamLayout): Coverage {
  const offsets = new Map(layout.slots.map((s) => [s.name, s.offset] as const));
  const ranges: Array<readonly [number, number]> = [];
  for (const slice of slices) {
    const base = offsets.get(slice.name);
    if (base === undefined) throw new SubmodelError(`global layout has no tensor ${slice.name}`);
    forEachRun(slice, (g, _s, n) => ranges.push([base + g, base + g + n]));
  }
  return coverageFromRanges(layout.size, ranges);
}

function strides(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  let s = 1;
  for (let a = shape.length - 1; a >= 0; a--) {
    out[a] = s;
    s *= shape[a]!;
  }
  return out;
}
