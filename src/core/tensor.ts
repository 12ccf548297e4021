// Named tensors and flat parameter vectors: the one representation of model state that every layer above the
// runtime agrees on. The federated math works on flat Float32Arrays laid out by a ParamLayout; models, files and the
// wire use named tensors. Pure: no I/O, no tensor runtime.

/** A dense float32 tensor on the host: row-major data plus its shape. */
export interface Tensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** Model state or an update as name -> tensor. Insertion order is not significant; layouts sort by name. */
export type TensorRecord = ReadonlyMap<string, Tensor>;

/** Where one named tensor lives inside a flat parameter vector. */
export interface ParamSlot {
  readonly name: string;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly size: number;
}

/** An ordered, gap-free assignment of named tensors to ranges of one flat vector. */
export interface ParamLayout {
  readonly slots: readonly ParamSlot[];
  readonly size: number;
}

export class ShapeError extends Error {
  override readonly name = 'ShapeError';
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`invalid dimension ${d} in shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

export function tensor(shape: readonly number[], data?: Float32Array | readonly number[]): Tensor {
  const n = numel(shape);
  const buf = data === undefined ? new Float32Array(n) : data instanceof Float32Array ? data : Float32Array.from(data);
  if (buf.length !== n) throw new ShapeError(`shape [${shape.join(', ')}] needs ${n} values, got ${buf.length}`);
  return { shape: [...shape], data: buf };
}

/** Layout of (name, shape) pairs in sorted-name order, so two parties holding the same names agree on offsets. */
export function layoutOf(specs: Iterable<readonly [string, readonly number[]]>): ParamLayout {
  const sorted = [...specs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const slots: ParamSlot[] = [];
  let offset = 0;
  for (const [name, shape] of sorted) {
    if (slots.length > 0 && slots[slots.length - 1]!.name === name) throw new ShapeError(`duplicate tensor name ${name}`);
    const size = numel(shape);
    slots.push({ name, shape: [...shape], offset, size });
    offset += size;
  }
  return { slots, size: offset };
}

export function layoutOfRecord(record: TensorRecord): ParamLayout {
  return layoutOf([...record].map(([name, t]) => [name, t.shape] as const));
}

/** Copies a record into one flat vector; the record must have exactly the layout's names and shapes. */
export function flatten(record: TensorRecord, layout: ParamLayout = layoutOfRecord(record)): Float32Array {
  if (record.size !== layout.slots.length) {
    throw new ShapeError(`record has ${record.size} tensors, layout expects ${layout.slots.length}`);
  }
  const out = new Float32Array(layout.size);
  for (const slot of layout.slots) {
    const t = record.get(slot.name);
    if (t === undefined) throw new ShapeError(`missing tensor ${slot.name}`);
    if (!sameShape(t.shape, slot.shape)) {
      throw new ShapeError(`tensor ${slot.name} has shape [${t.shape.join(', ')}], expected [${slot.shape.join(', ')}]`);
    }
    out.set(t.data, slot.offset);
  }
  return out;
}

/** Splits a flat vector into named tensors that view (not copy) the vector's memory. */
export function unflatten(flat: Float32Array, layout: ParamLayout): Map<string, Tensor> {
  if (flat.length !== layout.size) throw new ShapeError(`flat vector has ${flat.length} values, layout expects ${layout.size}`);
  const out = new Map<string, Tensor>();
  for (const slot of layout.slots) {
    out.set(slot.name, { shape: slot.shape, data: flat.subarray(slot.offset, slot.offset + slot.size) });
  }
  return out;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function sameLayout(a: ParamLayout, b: ParamLayout): boolean {
  return (
    a.size === b.size &&
    a.slots.length === b.slots.length &&
    a.slots.every((s, i) => s.name === b.slots[i]!.name && sameShape(s.shape, b.slots[i]!.shape))
  );
}
