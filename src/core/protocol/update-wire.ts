// An update on the wire: a safetensors file whose tensors are the delta (client params - base params) in the plan's
// coordinates, and whose metadata carries the counts the strategies weigh by. Standard format, so any tool can read
// what a device sent. Decoding checks names, shapes and numbers against the run's layout before anything is kept.
import { decodeSafetensors, encodeSafetensors, indexSafetensors, SafetensorsError, type SafetensorsIndex } from '../safetensors.ts';
import { vouchFinite } from '../strategies/validate-update.ts';
import { flatten, sameShape, ShapeError, type ParamLayout, type TensorRecord } from '../tensor.ts';
import { firstNonFinite, sumOfSquares } from '../update-math.ts';
import { ProtocolError } from './errors.ts';

export interface UpdateMeta {
  numExamples: number;
  localSteps: number;
  /** Device-side measurements, e.g. trainLoss and trainSeconds; finite numbers only. */
  metrics: Record<string, number>;
}

export interface DecodedUpdate extends UpdateMeta {
  /**
   * The delta in the run's flat layout. Usually a view of the uploaded bytes (no copy; see decodeUpdate), known to be
   * finite, so validateUpdate does not scan it again: write to neither it nor the bytes.
   */
  delta: Float32Array;
  norm: number;
}

export function encodeUpdate(delta: TensorRecord, meta: UpdateMeta): Uint8Array {
  const metadata: Record<string, string> = {
    numExamples: String(meta.numExamples),
    localSteps: String(meta.localSteps),
  };
  for (const [k, v] of Object.entries(meta.metrics)) metadata[`metric.${k}`] = String(v);
  return encodeSafetensors(delta, metadata);
}

/**
 * Parses and validates an uploaded update against the run's layout and norm bound. Every failure is a ProtocolError
 * with code invalid_update and a sentence naming what is wrong.
 *
 * This is the server's per-update hot path, so it avoids copies: a float32 upload with exactly the layout's tensors
 * stores them in sorted-name order, which makes its data section the flat delta itself, read in place when it is
 * 4-byte aligned (copied once otherwise). The finiteness check and the norm share one pass, and the delta is vouched
 * finite so the strategy's validation need not scan it again.
 */
export function decodeUpdate(bytes: Uint8Array, layout: ParamLayout, maxNorm: number): DecodedUpdate {
  const invalid = (message: string) => new ProtocolError('invalid_update', message);
  let index: SafetensorsIndex;
  try {
    index = indexSafetensors(bytes);
  } catch (e) {
    if (e instanceof SafetensorsError) throw invalid(`update is not a valid safetensors file: ${e.message}`);
    throw e;
  }
  const { metadata } = index;
  const delta = isFlatLayout(index, layout) ? flatView(bytes, index.dataStart, layout.size) : flattenUpdate(bytes, layout, invalid);
  const squares = sumOfSquares(delta);
  if (!Number.isFinite(squares)) {
    const bad = firstNonFinite(delta);
    throw invalid(`update has a non-finite value (${delta[bad]}) at flat index ${bad}`);
  }
  const norm = Math.sqrt(squares);
  if (norm > maxNorm) throw invalid(`update norm ${norm.toPrecision(4)} exceeds the run's bound ${maxNorm}`);
  vouchFinite(delta);

  const count = (key: string, min: number) => {
    const v = Number(metadata[key]);
    if (metadata[key] === undefined || !Number.isInteger(v) || v < min || v > 1e12) {
      throw invalid(`update metadata ${key} must be an integer >= ${min}, got ${JSON.stringify(metadata[key])}`);
    }
    return v;
  };
  const metrics: Record<string, number> = {};
  for (const [k, raw] of Object.entries(metadata)) {
    if (!k.startsWith('metric.')) continue;
    const v = Number(raw);
    if (!Number.isFinite(v)) throw invalid(`update metric ${k.slice(7)} must be a finite number, got ${JSON.stringify(raw)}`);
    metrics[k.slice(7)] = v;
  }
  return { delta, norm, numExamples: count('numExamples', 1), localSteps: count('localSteps', 1), metrics };
}

/** True when the file holds float32 tensors with exactly the layout's names and shapes, in the layout's order. */
function isFlatLayout({ entries }: SafetensorsIndex, layout: ParamLayout): boolean {
  // The index tiles the data section in order, so matching sizes in order put each tensor at its slot's offset.
  return entries.length === layout.slots.length && entries.every((e, i) => {
    const slot = layout.slots[i]!;
    return e.dtype === 'F32' && e.name === slot.name && sameShape(e.shape, slot.shape);
  });
}

function flatView(bytes: Uint8Array, dataStart: number, size: number): Float32Array {
  const at = bytes.byteOffset + dataStart;
  if (at % 4 === 0) return new Float32Array(bytes.buffer, at, size);
  // A Float32Array cannot start at an odd byte: copy into aligned memory (the encoder pads, so only foreign files).
  const out = new Float32Array(size);
  new Uint8Array(out.buffer).set(bytes.subarray(dataStart, dataStart + size * 4));
  return out;
}

/** The general path: other dtypes, tensor order or a mismatch with the model (which it reports). */
function flattenUpdate(bytes: Uint8Array, layout: ParamLayout, invalid: (message: string) => ProtocolError): Float32Array {
  const { tensors } = decodeSafetensors(bytes);
  for (const name of tensors.keys()) {
    if (!layout.slots.some((s) => s.name === name)) throw invalid(`update has tensor ${name}, which the model does not have`);
  }
  try {
    return flatten(tensors, layout);
  } catch (e) {
    if (e instanceof ShapeError) throw invalid(`update does not match the model: ${e.message}`);
    throw e;
  }
}
