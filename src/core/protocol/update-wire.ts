// An update on the wire: a safetensors file whose tensors are the delta (client params - base params) in the plan's
// coordinates, and whose metadata carries the counts the strategies weigh by. Standard format, so any tool can read
// what a device sent. Decoding checks names, shapes and numbers against the run's layout before anything is kept.
import { decodeSafetensors, encodeSafetensors, SafetensorsError } from '../safetensors.ts';
import { flatten, ShapeError, type ParamLayout, type TensorRecord } from '../tensor.ts';
import { firstNonFinite, l2Norm } from '../update-math.ts';
import { ProtocolError } from './errors.ts';

export interface UpdateMeta {
  numExamples: number;
  localSteps: number;
  /** Device-side measurements, e.g. trainLoss and trainSeconds; finite numbers only. */
  metrics: Record<string, number>;
}

export interface DecodedUpdate extends UpdateMeta {
  /** The delta in the run's flat layout. */
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
 */
export function decodeUpdate(bytes: Uint8Array, layout: ParamLayout, maxNorm: number): DecodedUpdate {
  const invalid = (message: string) => new ProtocolError('invalid_update', message);
  let contents;
  try {
    contents = decodeSafetensors(bytes);
  } catch (e) {
    if (e instanceof SafetensorsError) throw invalid(`update is not a valid safetensors file: ${e.message}`);
    throw e;
  }
  const { tensors, metadata } = contents;
  for (const name of tensors.keys()) {
    if (!layout.slots.some((s) => s.name === name)) throw invalid(`update has tensor ${name}, which the model does not have`);
  }
  let delta: Float32Array;
  try {
    delta = flatten(tensors, layout);
  } catch (e) {
    if (e instanceof ShapeError) throw invalid(`update does not match the model: ${e.message}`);
    throw e;
  }
  const bad = firstNonFinite(delta);
  if (bad >= 0) throw invalid(`update has a non-finite value (${delta[bad]}) at flat index ${bad}`);
  const norm = l2Norm(delta);
  if (norm > maxNorm) throw invalid(`update norm ${norm.toPrecision(4)} exceeds the run's bound ${maxNorm}`);

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
