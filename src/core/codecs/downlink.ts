// Compressed downlink with server-side error feedback. When a run names a downlink codec, each committed version is
// DEFINED as the previous version plus a compressed step, so every device can rebuild it bit for bit from what it
// holds and check the content hash, as for a full download:
//
//   p        = (w_new - w_v) + r            the strategy's step plus what earlier compressions left out
//   d        = decode(encode(p))            the codec's reconstruction (int8/int4: stochastic, unbiased)
//   w_{v+1}  = w_v + d                      float32 addition, done identically by the coordinator and the device
//   r'       = p - d                        kept by the coordinator for the next version (error feedback)
//
// This is the server half of DoubleSqueeze (Tang, Yu, Lian, Zhang, Liu, "DoubleSqueeze: Parallel Stochastic
// Gradient Descent with Double-pass Error-Compensated Compression", ICML 2019, PMLR 97:6155-6165: the parameter
// server compresses the aggregate again before sending it back, and compensates its own compression error), as in
// the bidirectional compression of Artemis (Philippenko and Dieuleveut, "Artemis: tight convergence guarantees for
// bidirectional compression in Federated Learning", arXiv:2006.14591, 2020, which compresses both directions with
// partial participation). As in DoubleSqueeze, every holder of the model moves it by the compressed step only: the
// coordinator keeps no uncompressed copy, so there is one version history and content hashes stay exact; the
// residual is kept only on the coordinator and never sent. Residual bookkeeping telescopes: after T versions,
// w_T + r_T = w_0 + sum of the strategy's steps (up to float32 rounding), so nothing the strategy asked for is lost,
// only delayed. The randomness of stochastic rounding is seeded from the run's seed and the version number, so a
// restart that re-folds the same updates commits the same bytes.
import { Rng } from '../rng.ts';
import type { ServerState } from '../strategies/types.ts';
import { decodeVector } from './decode.ts';
import { encodeVector } from './encode.ts';
import { CodecError } from './errors.ts';
import { CodecSpec, codecLabel } from './spec.ts';

/** The server-state slot holding r, persisted with each version's optimizer state, so it survives restarts. */
export const DOWNLINK_RESIDUAL_SLOT = 'downlink.residual';

/** Dense lossy value formats only: fp32 would be an exact step with nothing to gain over the file. */
export const DOWNLINK_VALUES = ['fp16', 'bf16', 'int8', 'int4', 'int2'] as const;

const DOWNLINK_RULE = `a downlink codec must be dense fp16, bf16, int8, int4 or int2 (no topK: a top-k step would leave most of a version's change in the residual, and deltas of unchanged entries are already sparse-coded)`;

/** A run's downlink codec: CodecSpec restricted to DOWNLINK_VALUES without top-k. */
export const DownlinkCodecSpec = CodecSpec.superRefine((s, ctx) => {
  if (s.topK !== undefined || !(DOWNLINK_VALUES as readonly string[]).includes(s.values)) {
    ctx.addIssue({ code: 'custom', message: `${codecLabel(s)} refused: ${DOWNLINK_RULE}` });
  }
});

/** Checks a downlink codec given in code (not through zod), with a CodecError. */
export function checkDownlinkCodec(spec: CodecSpec): CodecSpec {
  const r = DownlinkCodecSpec.safeParse(spec);
  if (!r.success) throw new CodecError('bad_spec', `invalid downlink codec: ${r.error.issues.map((i) => i.message).join('; ')}`);
  return r.data;
}

/** The seed of version `version`'s stochastic rounding: reproducible from the run's seed alone. */
export function downlinkSeed(runSeed: number, version: number): number {
  return (Math.imul(runSeed | 0, 0x9e3779b1) ^ Math.imul(version | 0, 0x85ebca6b) ^ 0x0d0117c) | 0;
}

/**
 * params += delta, entry by entry in float32 (each sum rounded once to the nearest float32 by the typed array store).
 * The coordinator and devices both rebuild versions with this one loop, so their bits agree.
 */
export function addDeltaInPlace(params: Float32Array, delta: Float32Array): void {
  if (delta.length !== params.length) throw new CodecError('mismatch', `a downlink step of ${delta.length} values for ${params.length} parameters`);
  for (let i = 0; i < params.length; i++) params[i] = params[i]! + delta[i]!;
}

export interface CompressedStep {
  /** w_{v+1} = w_v + decode(encoded): the version's weights. */
  params: Float32Array;
  /** r' = p - decode(encoded), for the next version. */
  residual: Float32Array;
  /** The step as the codec encodes it (format.ts): what a device holding w_v downloads. */
  encoded: Uint8Array;
}

/**
 * One compressed version step from `prev` (w_v) towards `target` (the strategy's new params), with error feedback
 * `residual` (r; undefined or empty means zero). Pure: no input is modified.
 */
export function compressStep(prev: Float32Array, target: Float32Array, residual: Float32Array | undefined, specIn: CodecSpec, seed: number): CompressedStep {
  const spec = checkDownlinkCodec(specIn);
  const n = prev.length;
  if (target.length !== n) throw new CodecError('mismatch', `downlink step: ${target.length} new parameters for ${n} old ones`);
  const r = residual !== undefined && residual.length > 0 ? residual : undefined;
  if (r !== undefined && r.length !== n) throw new CodecError('mismatch', `downlink residual has ${r.length} values for ${n} parameters`);
  const p = new Float32Array(n);
  for (let i = 0; i < n; i++) p[i] = target[i]! - prev[i]! + (r === undefined ? 0 : r[i]!);
  const encoded = encodeVector(p, spec, { rng: new Rng(seed) });
  // Decoded from the bytes (not the encoder's reconstruction) so that the server adds exactly what a device decodes.
  const d = decodeVector(encoded, { spec, n });
  const params = prev.slice();
  addDeltaInPlace(params, d);
  const next = new Float32Array(n);
  for (let i = 0; i < n; i++) next[i] = p[i]! - d[i]!;
  return { params, residual: next, encoded };
}

/**
 * A strategy's next state made into a compressed version: `next.params` replaced by prev.params + the decoded step,
 * and the residual carried in DOWNLINK_RESIDUAL_SLOT. The coordinator's commit and the simulator both call this, so
 * what the simulator measures is what a run with the same codec would publish.
 */
export function compressVersion(prev: ServerState, next: ServerState, spec: CodecSpec, runSeed: number): { state: ServerState; encoded: Uint8Array } {
  const step = compressStep(prev.params, next.params, prev.slots[DOWNLINK_RESIDUAL_SLOT], spec, downlinkSeed(runSeed, next.version));
  return { state: { ...next, params: step.params, slots: { ...next.slots, [DOWNLINK_RESIDUAL_SLOT]: step.residual } }, encoded: step.encoded };
}
