// Update codecs in the simulator (network.codec): an upload is what the coordinator would decode, encodeVector then
// decodeVector of the device's delta with the run's codec, and it costs the encoding's exact size. For top-k codecs
// each device keeps its error-feedback residual (Stich et al., NeurIPS 2018) as src/device/error-feedback.ts does:
// p = delta + residual, send top-k(p), keep p - sent; a lease with another plan (a different submodel) starts from
// zero, as on a real device.
import { encodeVector } from '../core/codecs/encode.ts';
import { encodedSize } from '../core/codecs/format.ts';
import { isSparse, type CodecSpec } from '../core/codecs/spec.ts';
import { Rng } from '../core/rng.ts';

export type Residuals = Map<number, { plan: string; residual: Float32Array }>;

/** Bytes of one upload of `parameters` values: the codec's exact size, or bytesPerParamUp per value without one. */
export function uploadBytes(parameters: number, net: { bytesPerParamUp: number; codec?: CodecSpec | undefined }): number {
  return net.codec === undefined ? parameters * net.bytesPerParamUp : encodedSize(parameters, net.codec);
}

/** The delta as the coordinator receives it after `codec`; updates `residuals` for top-k codecs. */
export function compressUpload(delta: Float32Array, codec: CodecSpec, device: number, plan: string, seed: number, residuals: Residuals): Float32Array {
  const rng = new Rng(seed);
  // The encoder's reconstruction is exactly what decodeVector returns (test/core/codecs), without a decode pass.
  const sent = new Float32Array(delta.length);
  if (!isSparse(codec)) {
    encodeVector(delta, codec, { rng, reconstruction: sent });
    return sent;
  }
  const p = delta.slice();
  const kept = residuals.get(device);
  if (kept !== undefined && kept.plan === plan && kept.residual.length === p.length) {
    for (let i = 0; i < p.length; i++) p[i] = p[i]! + kept.residual[i]!;
  }
  encodeVector(p, codec, { rng, reconstruction: sent });
  const residual = kept !== undefined && kept.residual.length === p.length ? kept.residual : new Float32Array(p.length);
  for (let i = 0; i < p.length; i++) residual[i] = p[i]! - sent[i]!;
  residuals.set(device, { plan, residual });
  return sent;
}

/**
 * Downlink deltas in the simulator (network.weightDeltas): which version last changed each parameter's bits, so a
 * device holding version u downloads version v as the entries changed since u (src/core/codecs/weights-delta.ts:
 * 8 bytes each plus headers) when that is smaller than the full file. Full mode only (the fast backend's vector is
 * not the model), and only for full-model downloads.
 */
export class ChangeTracker {
  private readonly lastChanged: Int32Array;

  constructor(readonly length: number) {
    this.lastChanged = new Int32Array(length);
  }

  /** Notes which entries of `next` (version `version`) differ in bits from `prev`. */
  record(prev: Float32Array, next: Float32Array, version: number): void {
    const a = new Uint32Array(prev.buffer, prev.byteOffset, prev.length);
    const b = new Uint32Array(next.buffer, next.byteOffset, next.length);
    for (let i = 0; i < this.length; i++) if (a[i] !== b[i]) this.lastChanged[i] = version;
  }

  /** Bytes of a delta from version `from` to the newest recorded: 8 per changed entry, plus the delta's and the
   * codec's headers and an allowance for the safetensors header it carries. */
  deltaBytes(from: number): number {
    let k = 0;
    for (let i = 0; i < this.length; i++) if (this.lastChanged[i]! > from) k++;
    return 8 * k + 8 + 20 + DELTA_HEADER_ALLOWANCE;
  }
}

/** The safetensors header a delta carries (names, shapes and offsets as JSON): a few hundred bytes for small models. */
export const DELTA_HEADER_ALLOWANCE = 512;
