// Encodes a flat float32 vector with a codec (spec.ts) into the layout of format.ts. The stochastic rounding of
// int8/int4/int2 is unbiased: a value v in a block with scale s becomes level floor(v/s + u), u ~ U[0, 1), whose
// expectation is v/s, so E[level * s] = v (QSGD, Alistarh et al., NeurIPS 2017, Lemma 3.1, with the block's max
// |v| in place of the vector's norm). Top-k keeps the k entries largest in magnitude and drops the rest (Stich et
// al., NeurIPS 2018); the kept values are then encoded in the value format.
import type { Rng } from '../rng.ts';
import { CodecError } from './errors.ts';
import { encodedSize, FLAG_SPARSE, HEADER_BYTES, MAGIC, VALUE_CODES } from './format.ts';
import { f32BitsToBf16, f32BitsToHalf, halfToFloatTable } from './half.ts';
import { checkSpec, isQuantized, keptCount, type CodecSpec } from './spec.ts';
import { topKIndices } from './topk.ts';

export interface EncodeOptions {
  /** The randomness of stochastic rounding; required for int8 and int4 (a seeded Rng, so encodings reproduce). */
  rng?: Rng;
  /**
   * When given (length n), filled with exactly what a decoder will return, zeros where top-k dropped an entry: a
   * device subtracts it from what it meant to send to get its error-feedback residual, without decoding.
   */
  reconstruction?: Float32Array;
}

/** Quantization levels each side of zero. */
export const LEVELS = { int8: 127, int4: 7, int2: 1 } as const;

export function encodeVector(x: Float32Array, specIn: CodecSpec, options: EncodeOptions = {}): Uint8Array {
  const spec = checkSpec(specIn);
  const n = x.length;
  if (n > 0xffffffff) throw new CodecError('bad_spec', `a vector of ${n} entries does not fit the format's u32 length`);
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    if (v - v !== 0) throw new CodecError('non_finite_input', `cannot encode ${v} at index ${i}: updates must be finite`);
  }
  const { values, blockSize } = spec;
  const quantized = isQuantized(values);
  if (quantized && options.rng === undefined) throw new CodecError('bad_spec', `${values} rounds stochastically and needs an rng`);
  const rec = options.reconstruction;
  if (rec !== undefined) {
    if (rec.length !== n) throw new RangeError(`reconstruction has ${rec.length} entries, the vector ${n}`);
    rec.fill(0);
  }
  const sparse = spec.topK !== undefined;
  const k = keptCount(n, spec);
  const indices = sparse ? topKIndices(x, k) : undefined;
  const out = new Uint8Array(encodedSize(n, spec));
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint8(4, VALUE_CODES.indexOf(values));
  view.setUint8(5, sparse ? FLAG_SPARSE : 0);
  view.setUint32(8, n, true);
  view.setUint32(12, k, true);
  view.setUint32(16, blockSize, true);

  const bits = new Uint32Array(x.buffer, x.byteOffset, n);
  const table = values === 'fp16' ? halfToFloatTable() : undefined;
  const rng = options.rng;
  let pos = HEADER_BYTES;
  for (let start = 0; start < k; start += blockSize) {
    const b = Math.min(blockSize, k - start);
    let scale = 0;
    if (quantized) {
      let max = 0;
      for (let j = 0; j < b; j++) {
        const a = Math.abs(x[indices === undefined ? start + j : indices[start + j]!]!);
        if (a > max) max = a;
      }
      scale = Math.fround(max / LEVELS[values]);
      view.setFloat32(pos, scale, true);
      pos += 4;
    }
    if (indices !== undefined) {
      for (let j = 0; j < b; j++) view.setUint32(pos + 4 * j, indices[start + j]!, true);
      pos += 4 * b;
    }
    switch (values) {
      case 'fp32':
        for (let j = 0; j < b; j++) {
          const i = indices === undefined ? start + j : indices[start + j]!;
          view.setFloat32(pos + 4 * j, x[i]!, true);
          if (rec !== undefined) rec[i] = x[i]!;
        }
        pos += 4 * b;
        break;
      case 'fp16': {
        // pos is even here (20-byte header, 4-byte indices, 2-byte values), so a Uint16Array view writes directly.
        const h16 = new Uint16Array(out.buffer, pos, b);
        for (let j = 0; j < b; j++) {
          const i = indices === undefined ? start + j : indices[start + j]!;
          const h = f32BitsToHalf(bits[i]!);
          h16[j] = h;
          if (rec !== undefined) rec[i] = table![h]!;
        }
        pos += 2 * b;
        break;
      }
      case 'bf16':
        for (let j = 0; j < b; j++) {
          const i = indices === undefined ? start + j : indices[start + j]!;
          const h = f32BitsToBf16(bits[i]!);
          view.setUint16(pos + 2 * j, h, true);
          if (rec !== undefined) rec[i] = bf16ToFloat(h);
        }
        pos += 2 * b;
        break;
      case 'int8':
      case 'int4':
      case 'int2': {
        const L = LEVELS[values];
        const inv = scale > 0 ? 1 / scale : 0;
        // Uniforms from a mulberry32 stream seeded once per block by the caller's Rng, inlined (V8 inlines the
        // closure): a method call per value would halve the encoder's speed.
        let st = Math.floor(rng!.next() * 4294967296) | 0;
        // floor(v/s + u): up with probability frac(v/s), so the expectation is v/s. Rounding in v * (1/s) can put a
        // block's largest value a hair past L; clamping it costs a bias of that hair.
        const level = (i: number): number => {
          st = (st + 0x6d2b79f5) | 0;
          let t = Math.imul(st ^ (st >>> 15), st | 1);
          t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
          const q = Math.floor(x[i]! * inv + ((t ^ (t >>> 14)) >>> 0) * 2.3283064365386963e-10);
          const c = q > L ? L : q < -L ? -L : q;
          if (rec !== undefined) rec[i] = c * scale;
          return c;
        };
        if (L === 127) {
          for (let j = 0; j < b; j++) out[pos + j] = level(indices === undefined ? start + j : indices[start + j]!) & 0xff;
          pos += b;
        } else if (L === 1) {
          // Four 2-bit levels a byte, lowest bits first; the last byte's unused bits stay zero.
          for (let j = 0; j < b; j++) {
            const at = pos + (j >> 2);
            out[at] = out[at]! | ((level(indices === undefined ? start + j : indices[start + j]!) & 0x3) << (2 * (j & 3)));
          }
          pos += (b + 3) >> 2;
        } else {
          let j = 0;
          for (; j + 1 < b; j += 2) {
            const lo = level(indices === undefined ? start + j : indices[start + j]!);
            const hi = level(indices === undefined ? start + j + 1 : indices[start + j + 1]!);
            out[pos + (j >> 1)] = (lo & 0xf) | ((hi & 0xf) << 4);
          }
          if (j < b) out[pos + (j >> 1)] = level(indices === undefined ? start + j : indices[start + j]!) & 0xf;
          pos += (b + 1) >> 1;
        }
        break;
      }
    }
  }
  if (pos !== out.length) throw new Error(`codec bug: wrote ${pos} bytes of ${out.length}`);
  return out;
}

const bfScratch = new Float32Array(1);
const bfBits = new Uint32Array(bfScratch.buffer);
function bf16ToFloat(h: number): number {
  bfBits[0] = h << 16;
  return bfScratch[0]!;
}
