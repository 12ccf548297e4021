// Downlink deltas: a version's weights file sent as the difference from a version the device already holds. Both
// are safetensors files of the same model, so their data sections are the same float32 vector layout; the delta
// carries the target's header (its metadata differs: the version number) and the entries whose bits changed, as a
// sparse fp32 encoding in the codec format (format.ts). Replacing values, rather than adding differences, makes the
// result bit-exact, so the device checks it against the version's content hash like any download. It pays off when
// few entries change between the two versions (submodel leases, a frozen part of the model, one small update per
// version); when most change, the coordinator sends the full file, which is then smaller.
//
//   "TQD1"   magic
//   u32      length h of the target's header prefix (8-byte length + JSON header, as in the file)
//   h bytes  the target's header prefix
//   rest     sparse fp32 encoding (format.ts) over the data section as float32 words: indices and new values
//
// Runs with a downlink codec (downlink.ts) also serve a chain of compressed steps: each version of such a run is its
// parent plus a decoded codec encoding, added in float32, so the same additions on the device rebuild it bit for bit.
//
//   "TQD2"   magic
//   u32      length h of the target's header prefix
//   h bytes  the target's header prefix
//   u32      number m of steps, oldest first
//   m times  u32 length L, then L bytes: one dense codec encoding (format.ts) of a step over the data section
//
// Zeroth-order runs serve a chain of seed steps (src/core/zo/seed-step.ts, FedKSeed's downlink, Qin et al., ICML
// 2024): each version is its parent moved by the run's strategy over the (seed, scalar) uploads folded into it, which
// the device replays with the coordinator's own core code. The target file is then encoded by the device exactly as
// the coordinator's commit encodes it (encodeSafetensors of the params with metadata {version}), so no header
// travels; the hash check is the same as for a download.
//
//   "TQD3"   magic
//   u32      target version v
//   u32      number m of steps, oldest first (versions v-m+1..v, each a "TZS1" seed step)
//   m times  u32 length L, then L bytes: one seed step
//
// A chain never mixes codec steps and seed steps: a run with a downlink codec has server state (the residual) that a
// seed step cannot carry, so its versions never get seed steps, and each chain format holds one kind.
import { decodeSafetensors, encodeSafetensors, indexSafetensors, SafetensorsError } from '../safetensors.ts';
import { flatten, layoutOfRecord, unflatten } from '../tensor.ts';
import { decodeSeedStep, MAX_SEED_CHAIN_ENTRIES, replaySeedStep, seedStepEntries, type SeedStep } from '../zo/seed-step.ts';
import { decodeVector } from './decode.ts';
import { addDeltaInPlace } from './downlink.ts';
import { CodecError } from './errors.ts';
import { FLAG_SPARSE, HEADER_BYTES, MAGIC, VALUE_CODES } from './format.ts';

const DELTA_MAGIC = 0x31445154; // "TQD1" little-endian
const CHAIN_MAGIC = 0x32445154; // "TQD2" little-endian
const SEED_CHAIN_MAGIC = 0x33445154; // "TQD3" little-endian
const BLOCK = 256;

export const WEIGHTS_DELTA_MEDIA_TYPE = 'application/vnd.tessera.weights-delta';

interface Parsed {
  dataStart: number;
  words: Uint32Array;
}

/** The data section of a float32 safetensors file as 32-bit words (copied when misaligned). */
function parse(file: Uint8Array): Parsed | undefined {
  let index;
  try {
    index = indexSafetensors(file);
  } catch (e) {
    if (e instanceof SafetensorsError) return undefined;
    throw e;
  }
  if (!index.entries.every((e) => e.dtype === 'F32')) return undefined;
  const len = file.length - index.dataStart;
  if (len % 4 !== 0) return undefined;
  const at = file.byteOffset + index.dataStart;
  const words = at % 4 === 0 ? new Uint32Array(file.buffer, at, len / 4) : new Uint32Array(file.slice(index.dataStart).buffer);
  return { dataStart: index.dataStart, words };
}

/** Whether two files have the same tensors (names, shapes, offsets): then their data sections line up word for word. */
function sameTensors(a: Uint8Array, b: Uint8Array): boolean {
  const x = indexSafetensors(a).entries;
  const y = indexSafetensors(b).entries;
  return x.length === y.length && x.every((e, i) => {
    const f = y[i]!;
    return e.name === f.name && e.begin === f.begin && e.end === f.end && e.shape.length === f.shape.length && e.shape.every((d, j) => d === f.shape[j]);
  });
}

/** The delta taking `base` to `target`, or undefined when they are not float32 files of the same tensors. */
export function diffWeights(base: Uint8Array, target: Uint8Array): Uint8Array | undefined {
  const b = parse(base);
  const t = parse(target);
  if (b === undefined || t === undefined || b.words.length !== t.words.length || !sameTensors(base, target)) return undefined;
  const n = t.words.length;
  let k = 0;
  for (let i = 0; i < n; i++) if (b.words[i] !== t.words[i]) k++;
  const out = new Uint8Array(8 + t.dataStart + HEADER_BYTES + 8 * k); // each changed entry: u32 index + f32 value
  const view = new DataView(out.buffer);
  view.setUint32(0, DELTA_MAGIC, true);
  view.setUint32(4, t.dataStart, true);
  out.set(target.subarray(0, t.dataStart), 8);
  let pos = 8 + t.dataStart;
  view.setUint32(pos, MAGIC, true);
  view.setUint8(pos + 4, VALUE_CODES.indexOf('fp32'));
  view.setUint8(pos + 5, FLAG_SPARSE);
  view.setUint32(pos + 8, n, true);
  view.setUint32(pos + 12, k, true);
  view.setUint32(pos + 16, BLOCK, true);
  pos += HEADER_BYTES;
  // Blocks of [256 indices][256 values]; values copied as raw bits, so NaN payloads and -0 survive too.
  let inBlock = 0;
  let blockStart = pos;
  let blockLen = Math.min(BLOCK, k);
  let done = 0;
  for (let i = 0; i < n; i++) {
    if (b.words[i] === t.words[i]) continue;
    view.setUint32(blockStart + 4 * inBlock, i, true);
    view.setUint32(blockStart + 4 * blockLen + 4 * inBlock, t.words[i]!, true);
    if (++inBlock === blockLen) {
      done += blockLen;
      blockStart += 8 * blockLen;
      blockLen = Math.min(BLOCK, k - done);
      inBlock = 0;
    }
  }
  return out;
}

/**
 * The target file rebuilt from `base` and a delta. Every inconsistency (bad magic, a header that is not a
 * safetensors header of the same tensors, a vector length other than the base's, corrupt sparse encoding) is a
 * CodecError; the caller still checks the result's hash against the version's.
 */
export function applyWeightsDelta(base: Uint8Array, delta: Uint8Array): Uint8Array {
  const bad = (m: string) => new CodecError('bad_header', `weights delta: ${m}`);
  if (delta.length < 8) throw new CodecError('truncated', 'weights delta is shorter than its 8-byte preamble');
  const view = new DataView(delta.buffer, delta.byteOffset, delta.byteLength);
  const magic = view.getUint32(0, true);
  if (magic === SEED_CHAIN_MAGIC) return applySeedChain(base, delta);
  if (magic !== DELTA_MAGIC && magic !== CHAIN_MAGIC) throw bad('magic "TQD1", "TQD2" or "TQD3" missing');
  const h = view.getUint32(4, true);
  if (8 + h > delta.length) throw new CodecError('truncated', `weights delta header of ${h} bytes runs past its ${delta.length} bytes`);
  const b = parse(base);
  if (b === undefined) throw bad('the base is not a float32 safetensors file');
  const out = new Uint8Array(h + 4 * b.words.length);
  out.set(delta.subarray(8, 8 + h));
  let header;
  try {
    header = indexSafetensors(out);
  } catch (e) {
    if (e instanceof SafetensorsError) throw bad(`target header: ${e.message}`);
    throw e;
  }
  if (header.dataStart !== h || h % 4 !== 0 || !sameTensors(base, out)) throw bad('the target\'s tensors differ from the base\'s');
  const words = new Uint32Array(out.buffer, h, b.words.length);
  words.set(b.words);
  if (magic === DELTA_MAGIC) patchWords(words, delta.subarray(8 + h));
  else addSteps(new Float32Array(out.buffer, h, b.words.length), delta.subarray(8 + h));
  return out;
}

/** Bytes of a "TQD2" chain carrying a header prefix of `headerBytes` and steps of the given sizes. */
export function chainDeltaSize(headerBytes: number, stepBytes: readonly number[]): number {
  return 8 + headerBytes + 4 + stepBytes.reduce((a, b) => a + 4 + b, 0);
}

/**
 * A "TQD2" chain taking a device from the version before `steps[0]` to `target` (its full file, for its header):
 * `steps` are the versions' stored codec encodings (downlink.ts), oldest first. Undefined when `target` is not a
 * float32 safetensors file.
 */
export function chainWeightsDelta(target: Uint8Array, steps: readonly Uint8Array[]): Uint8Array | undefined {
  const t = parse(target);
  if (t === undefined) return undefined;
  const out = new Uint8Array(chainDeltaSize(t.dataStart, steps.map((s) => s.length)));
  const view = new DataView(out.buffer);
  view.setUint32(0, CHAIN_MAGIC, true);
  view.setUint32(4, t.dataStart, true);
  out.set(target.subarray(0, t.dataStart), 8);
  let pos = 8 + t.dataStart;
  view.setUint32(pos, steps.length, true);
  pos += 4;
  for (const s of steps) {
    view.setUint32(pos, s.length, true);
    out.set(s, pos + 4);
    pos += 4 + s.length;
  }
  return out;
}

/** Adds each step of a chain's body, decoded and checked like any encoding, to `params` in float32 (downlink.ts). */
function addSteps(params: Float32Array, body: Uint8Array): void {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  if (body.length < 4) throw new CodecError('truncated', 'weights delta chain ends before its step count');
  const m = view.getUint32(0, true);
  let pos = 4;
  for (let j = 0; j < m; j++) {
    if (pos + 4 > body.length) throw new CodecError('truncated', `weights delta chain ends before step ${j + 1} of ${m}`);
    const len = view.getUint32(pos, true);
    if (pos + 4 + len > body.length) throw new CodecError('truncated', `step ${j + 1} of ${m} runs past the chain's end`);
    const enc = body.subarray(pos + 4, pos + 4 + len);
    // The vector length is checked from the header before the decoder allocates anything.
    if (len >= HEADER_BYTES && new DataView(enc.buffer, enc.byteOffset + 8, 4).getUint32(0, true) !== params.length) {
      throw new CodecError('mismatch', `step ${j + 1} of ${m} covers ${new DataView(enc.buffer, enc.byteOffset + 8, 4).getUint32(0, true)} values, the base has ${params.length}`);
    }
    addDeltaInPlace(params, decodeVector(enc));
    pos += 4 + len;
  }
  if (pos !== body.length) throw new CodecError('trailing_bytes', `${body.length - pos} byte(s) after the chain's ${m} step(s)`);
}

/** Applies a sparse fp32 encoding (format.ts) to `words` as raw bits, checking it as the streaming decoder does. */
function patchWords(words: Uint32Array, enc: Uint8Array): void {
  if (enc.length < HEADER_BYTES) throw new CodecError('truncated', `weights delta ends inside its ${HEADER_BYTES}-byte codec header`);
  const view = new DataView(enc.buffer, enc.byteOffset, enc.byteLength);
  const bad = (m: string) => new CodecError('bad_header', `weights delta: ${m}`);
  if (view.getUint32(0, true) !== MAGIC) throw bad('codec magic "TQC1" missing');
  if (view.getUint8(4) !== VALUE_CODES.indexOf('fp32') || view.getUint8(5) !== FLAG_SPARSE || view.getUint16(6, true) !== 0) {
    throw new CodecError('mismatch', 'weights delta: entries must be sparse fp32');
  }
  const n = view.getUint32(8, true);
  const k = view.getUint32(12, true);
  const blockSize = view.getUint32(16, true);
  if (n !== words.length) throw new CodecError('mismatch', `weights delta covers ${n} values, the base has ${words.length}`);
  if (k > n) throw bad(`${k} changed entries of ${n}`);
  if (blockSize !== BLOCK) throw new CodecError('mismatch', `weights delta block size ${blockSize}, expected ${BLOCK}`);
  const expected = HEADER_BYTES + 8 * k;
  if (enc.length < expected) throw new CodecError('truncated', `weights delta holds ${enc.length} of ${expected} bytes`);
  if (enc.length > expected) throw new CodecError('trailing_bytes', `${enc.length - expected} byte(s) after the weights delta`);
  let pos = HEADER_BYTES;
  let last = -1;
  for (let done = 0; done < k; done += BLOCK) {
    const len = Math.min(BLOCK, k - done);
    for (let j = 0; j < len; j++) {
      const i = view.getUint32(pos + 4 * j, true);
      if (i >= n) throw new CodecError('bad_index', `weights delta index ${i} is out of range for ${n} values`);
      if (i <= last) throw new CodecError('bad_index', `weights delta index ${i} follows ${last}: indices must be strictly increasing`);
      last = i;
      words[i] = view.getUint32(pos + 4 * len + 4 * j, true);
    }
    pos += 8 * len;
  }
}

/** Bytes of a "TQD3" seed chain of steps of the given sizes. */
export function seedChainSize(stepBytes: readonly number[]): number {
  return 12 + stepBytes.reduce((a, b) => a + 4 + b, 0);
}

/** A "TQD3" chain taking a device from version `version - steps.length` to `version`: the stored seed steps, oldest first. */
export function seedChainWeightsDelta(version: number, steps: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(seedChainSize(steps.map((s) => s.length)));
  const view = new DataView(out.buffer);
  view.setUint32(0, SEED_CHAIN_MAGIC, true);
  view.setUint32(4, version, true);
  view.setUint32(8, steps.length, true);
  let pos = 12;
  for (const s of steps) {
    view.setUint32(pos, s.length, true);
    out.set(s, pos + 4);
    pos += 4 + s.length;
  }
  return out;
}

/** The seed steps of a "TQD3" chain, decoded and checked: consecutive versions ending at the chain's target. */
export function decodeSeedChain(delta: Uint8Array): { version: number; steps: SeedStep[] } {
  const view = new DataView(delta.buffer, delta.byteOffset, delta.byteLength);
  if (delta.length < 12) throw new CodecError('truncated', 'seed chain is shorter than its 12-byte preamble');
  if (view.getUint32(0, true) !== SEED_CHAIN_MAGIC) throw new CodecError('bad_header', 'seed chain: magic "TQD3" missing');
  const version = view.getUint32(4, true);
  const m = view.getUint32(8, true);
  if (m < 1 || m > version) throw new CodecError('bad_header', `seed chain: ${m} steps cannot end at version ${version}`);
  if (m > (delta.length - 12) / 4) throw new CodecError('truncated', `seed chain claims ${m} steps in ${delta.length} bytes`);
  const steps: SeedStep[] = [];
  let pos = 12;
  for (let j = 0; j < m; j++) {
    if (pos + 4 > delta.length) throw new CodecError('truncated', `seed chain ends before step ${j + 1} of ${m}`);
    const len = view.getUint32(pos, true);
    if (pos + 4 + len > delta.length) throw new CodecError('truncated', `seed step ${j + 1} of ${m} runs past the chain's end`);
    const step = decodeSeedStep(delta.subarray(pos + 4, pos + 4 + len));
    const expected = version - m + 1 + j;
    if (step.version !== expected) throw new CodecError('mismatch', `seed chain step ${j + 1} of ${m} makes version ${step.version}, expected ${expected}`);
    if (j > 0 && step.size !== steps[0]!.size) throw new CodecError('mismatch', `seed chain steps disagree on the parameter count (${steps[0]!.size}, ${step.size})`);
    steps.push(step);
    pos += 4 + len;
  }
  if (pos !== delta.length) throw new CodecError('trailing_bytes', `${delta.length - pos} byte(s) after the seed chain's ${m} step(s)`);
  return { version, steps };
}

/**
 * The target file rebuilt from `base` (the version before the chain's first step) by replaying each seed step with
 * the coordinator's core code (replaySeedStep), then encoding as the coordinator's commit does. A base that is not
 * a float32 safetensors file of the version the chain starts from, a chain over MAX_SEED_CHAIN_ENTRIES of replay,
 * or any step that cannot be replayed is a CodecError; the caller still checks the result's hash.
 */
function applySeedChain(base: Uint8Array, delta: Uint8Array): Uint8Array {
  const { version, steps } = decodeSeedChain(delta);
  const entries = seedStepEntries(steps);
  if (entries > MAX_SEED_CHAIN_ENTRIES) throw new CodecError('mismatch', `seed chain would replay ${entries} parameter entries, over the limit of ${MAX_SEED_CHAIN_ENTRIES}`);
  let decoded;
  try {
    if (!indexSafetensors(base).entries.every((e) => e.dtype === 'F32')) throw new CodecError('bad_header', 'seed chain: the base is not a float32 safetensors file');
    decoded = decodeSafetensors(base);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new CodecError('bad_header', `seed chain: the base is not a safetensors file (${e.message})`);
    throw e;
  }
  const from = version - steps.length;
  if (decoded.metadata.version !== undefined && decoded.metadata.version !== String(from)) {
    throw new CodecError('mismatch', `seed chain starts from version ${from}, the base is version ${decoded.metadata.version}`);
  }
  // The file's tensors in name order are the run's flat layout (layoutOf sorts by name, as safetensors does).
  const layout = layoutOfRecord(decoded.tensors);
  let params = flatten(decoded.tensors, layout);
  for (const step of steps) params = replaySeedStep(params, step);
  return encodeSafetensors(unflatten(params, layout), { version: String(version) });
}
