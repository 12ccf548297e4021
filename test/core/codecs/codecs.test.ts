// The codecs' contracts: the size formula, lossless and bounded-error round trips, unbiased stochastic rounding (the
// mean of many decodings within a CLT bound of the input), top-k keeping the largest entries, streaming decoding in
// any chunking, and every kind of corrupt or inconsistent encoding refused with a typed CodecError.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { CodecDecoder, decodeVector } from '../../../src/core/codecs/decode.ts';
import { encodeVector, LEVELS } from '../../../src/core/codecs/encode.ts';
import { CodecError, type CodecErrorReason } from '../../../src/core/codecs/errors.ts';
import { encodedSize, HEADER_BYTES } from '../../../src/core/codecs/format.ts';
import { CodecSpec, keptCount, VALUE_FORMATS, type CodecSpecInput } from '../../../src/core/codecs/spec.ts';
import { topKIndices } from '../../../src/core/codecs/topk.ts';
import { Rng } from '../../../src/core/rng.ts';

const spec = (s: CodecSpecInput) => CodecSpec.parse(s);
const ALL_SPECS = VALUE_FORMATS.flatMap((values) => [
  spec({ values }), spec({ values, blockSize: 5 }), spec({ values, topK: 0.1 }), spec({ values, topK: 0.3, blockSize: 3 }),
]);

function vector(n: number, seed: number): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, (_, i) => (i % 7 === 0 ? 0 : r.normal() * 10 ** (r.int(5) - 3)));
}

const throwsCodec = (fn: () => unknown, reason: CodecErrorReason, what: string) =>
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CodecError, `${what}: a CodecError, got ${String(e)}`);
    assert.equal(e.reason, reason, `${what}: reason (message: ${e.message})`);
    return true;
  }, what);

describe('sizes', () => {
  test('encodedSize matches the encoding for every codec and length, and is what the format says', () => {
    for (const s of ALL_SPECS) {
      for (const n of [0, 1, 2, 3, 7, 100, 1001]) {
        const bytes = encodeVector(vector(n, n), s, { rng: new Rng(1) });
        assert.equal(bytes.length, encodedSize(n, s), `${JSON.stringify(s)} n=${n}`);
      }
    }
    // By hand: 1000 entries, int8, blocks of 256: 4 blocks (3 full, one of 232), each with a 4-byte scale.
    assert.equal(encodedSize(1000, spec({ values: 'int8' })), HEADER_BYTES + 4 * 4 + 1000, 'int8 dense');
    assert.equal(encodedSize(1001, spec({ values: 'int4', blockSize: 1001 })), HEADER_BYTES + 4 + 501, 'int4 odd count');
    assert.equal(encodedSize(1001, spec({ values: 'int2', blockSize: 1001 })), HEADER_BYTES + 4 + 251, 'int2: four a byte, the last byte partly used');
    assert.equal(encodedSize(1024, spec({ values: 'int2' })), HEADER_BYTES + 4 * (4 + 64), 'int2 dense: 2.125 bits a value at blocks of 256');
    // Top-k 1% of 10^6 then int8: 10^4 entries, 39 blocks of 256 and one of 16, each: scale + indices + levels.
    assert.equal(encodedSize(1e6, spec({ values: 'int8', topK: 0.01 })), HEADER_BYTES + 39 * (4 + 5 * 256) + (4 + 5 * 16), 'top-k then int8');
    assert.equal(encodedSize(1e6, spec({ values: 'fp16' })), HEADER_BYTES + 2e6, 'fp16 dense');
  });

  test('top-k keeps round(topK * n) entries, at least one', () => {
    assert.equal(keptCount(1000, spec({ topK: 0.01 })), 10, '1% of 1000');
    assert.equal(keptCount(10, spec({ topK: 0.01 })), 1, 'at least one');
    assert.equal(keptCount(0, spec({ topK: 0.01 })), 0, 'none of nothing');
    assert.equal(keptCount(7, spec({ topK: 1 })), 7, 'all');
  });
});

describe('round trips', () => {
  test('dense fp32 is lossless; fp16/bf16 within half an ulp; int8/int4/int2 within one step of the block scale', () => {
    const x = vector(2000, 3);
    assert.deepEqual([...decodeVector(encodeVector(x, spec({}), {}))], [...x], 'fp32 lossless');
    for (const [values, rel] of [['fp16', 2 ** -11], ['bf16', 2 ** -8]] as const) {
      const d = decodeVector(encodeVector(x, spec({ values })));
      for (let i = 0; i < x.length; i++) {
        const tol = Math.abs(x[i]!) < 6.2e-5 && values === 'fp16' ? 2 ** -25 : rel * Math.abs(x[i]!);
        assert.ok(Math.abs(d[i]! - x[i]!) <= tol, `${values} at ${i}: ${d[i]} vs ${x[i]}`);
      }
    }
    for (const values of ['int8', 'int4', 'int2'] as const) {
      const s = spec({ values, blockSize: 64 });
      const d = decodeVector(encodeVector(x, s, { rng: new Rng(5) }), { spec: s, n: x.length });
      for (let b = 0; b < x.length; b += 64) {
        const block = x.subarray(b, b + 64);
        const step = Math.fround(Math.max(...block.map(Math.abs)) / LEVELS[values]);
        for (let j = 0; j < block.length; j++) {
          assert.ok(Math.abs(d[b + j]! - block[j]!) <= step * (1 + 1e-6), `${values} at ${b + j}: error within one step`);
        }
      }
    }
  });

  test('top-k keeps exactly the largest entries (ties to the lower index) and zeroes the rest', () => {
    const x = new Float32Array([0.1, -5, 3, 0, 3, -3, 0.2, 4, 0, 1]);
    const d = decodeVector(encodeVector(x, spec({ topK: 0.4 })));
    assert.deepEqual([...d], [0, -5, 3, 0, 3, 0, 0, 4, 0, 0].map(Math.fround), 'top 4: -5, 4 and the first two 3s');
  });

  test('stochastic rounding is unbiased: the mean of many decodings is within a CLT bound of the input', () => {
    const x = vector(96, 11);
    for (const s of [spec({ values: 'int8', blockSize: 16 }), spec({ values: 'int4', blockSize: 32 }), spec({ values: 'int4', topK: 0.5, blockSize: 8 }), spec({ values: 'int2', blockSize: 16 }), spec({ values: 'int2', topK: 0.5, blockSize: 5 })]) {
      const trials = 3000;
      const sum = new Float64Array(x.length);
      const rng = new Rng(42);
      const rec = new Float32Array(x.length);
      for (let t = 0; t < trials; t++) {
        const d = decodeVector(encodeVector(x, s, { rng, reconstruction: rec }), { spec: s, n: x.length });
        for (let i = 0; i < x.length; i++) sum[i]! += d[i]!;
      }
      // Entries top-k keeps are the same every time (its selection is deterministic); the others decode to zero.
      const kept = new Set([...decodeVector(encodeVector(x, { ...s, values: 'fp32' }))].flatMap((v, i) => (v !== 0 ? [i] : [])));
      const scales = blockScales(x, s, kept);
      for (let i = 0; i < x.length; i++) {
        const mean = sum[i]! / trials;
        const expected = s.topK === undefined || kept.has(i) ? x[i]! : 0;
        // level = floor(v/s + u) is Bernoulli around v/s: variance s^2 p (1 - p) with p = frac(v/s).
        const v = expected / scales[i]!;
        const p = scales[i] === 0 ? 0 : v - Math.floor(v);
        const sd = scales[i]! * Math.sqrt(p * (1 - p) / trials);
        assert.ok(Math.abs(mean - expected) <= 5 * sd + 1e-6 * Math.abs(expected) + 1e-12,
          `${JSON.stringify(s)} entry ${i}: mean ${mean} vs ${expected} (sd of the mean ${sd})`);
      }
    }
  });
});

/** The scale each entry was quantized with: its block's max |x| / levels, blocks over the kept entries in order. */
function blockScales(x: Float32Array, s: CodecSpec, kept: Set<number>): Float64Array {
  const order = s.topK === undefined ? [...x.keys()] : [...kept].sort((a, b) => a - b);
  const out = new Float64Array(x.length);
  for (let b = 0; b < order.length; b += s.blockSize) {
    const ids = order.slice(b, b + s.blockSize);
    const scale = Math.fround(Math.max(...ids.map((i) => Math.abs(x[i]!))) / LEVELS[s.values as 'int8' | 'int4' | 'int2']);
    for (const i of ids) out[i] = scale;
  }
  return out;
}

describe('streaming', () => {
  test('any chunking decodes to the same vector as one piece', () => {
    fc.assert(fc.property(
      fc.constantFrom(...ALL_SPECS), fc.integer({ min: 0, max: 300 }), fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
      (s, n, cuts) => {
        const bytes = encodeVector(vector(n, n + 1), s, { rng: new Rng(n) });
        const whole = decodeVector(bytes, { spec: s, n });
        const d = new CodecDecoder({ spec: s, n });
        let off = 0;
        for (let c = 0; off < bytes.length; c++) {
          const len = cuts[c % cuts.length]!;
          d.push(bytes.subarray(off, off + len));
          off += len;
        }
        assert.deepEqual([...d.finish()], [...whole], 'chunked equals whole');
      },
    ), { numRuns: 150 });
  });
});

describe('properties', () => {
  const floats = fc.float32Array({ noNaN: true, noDefaultInfinity: true, maxLength: 200 });

  test('for any finite vector and codec: the size is as promised and decoding returns the encoder\'s reconstruction', () => {
    fc.assert(fc.property(floats, fc.constantFrom(...ALL_SPECS), fc.integer(), (x, s, seed) => {
      const rec = new Float32Array(x.length);
      const bytes = encodeVector(x, s, { rng: new Rng(seed), reconstruction: rec });
      assert.equal(bytes.length, encodedSize(x.length, s), 'size');
      const d = decodeVector(bytes, { spec: s, n: x.length });
      assert.deepEqual([...d], [...rec], 'decode = reconstruction');
      if (s.values === 'fp32' && s.topK === undefined) assert.deepEqual([...d], [...x], 'fp32 dense is exact');
      if (s.topK !== undefined) {
        const kept = [...x.keys()].filter((i) => rec[i] !== 0 || keptBy(bytes, i));
        const minKept = Math.min(...kept.map((i) => Math.abs(x[i]!)));
        const maxDropped = Math.max(-Infinity, ...[...x.keys()].filter((i) => !kept.includes(i)).map((i) => Math.abs(x[i]!)));
        assert.ok(kept.length === 0 || minKept >= maxDropped, `top-k kept the largest (${minKept} >= ${maxDropped})`);
      }
    }), { numRuns: 200 });
  });

  test('a mutated or cut encoding either decodes to n finite-or-not floats or throws a CodecError, never anything else', () => {
    fc.assert(fc.property(
      fc.constantFrom(...ALL_SPECS), fc.integer({ min: 1, max: 100 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      fc.option(fc.nat()), fc.boolean(),
      (s, n, flips, cut, expect) => {
        let bytes = encodeVector(vector(n, 7), s, { rng: new Rng(1) }).slice();
        for (const [at, v] of flips) bytes[at % bytes.length] = v;
        if (cut !== null) bytes = bytes.subarray(0, cut % (bytes.length + 1));
        try {
          const d = decodeVector(bytes, expect ? { spec: s, n } : undefined);
          if (expect) assert.equal(d.length, n, 'length as expected');
        } catch (e) {
          assert.ok(e instanceof CodecError, `only CodecError, got ${String(e)}`);
        }
      },
    ), { numRuns: 400 });
  });
});

/** Whether index i is among the sparse indices of an encoding (a kept entry may itself round to zero). */
function keptBy(bytes: Uint8Array, i: number): boolean {
  const d = new CodecDecoder();
  d.push(bytes);
  const h = d.info!;
  void d.finish();
  // Re-encode-free check: walk the blocks' index lists.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = HEADER_BYTES;
  const q = h.values === 'int8' || h.values === 'int4' || h.values === 'int2' ? 4 : 0;
  const vb = { fp32: 4, fp16: 2, bf16: 2, int8: 1, int4: 0.5, int2: 0.25 }[h.values];
  for (let start = 0; start < h.k; start += h.blockSize) {
    const b = Math.min(h.blockSize, h.k - start);
    pos += q;
    for (let j = 0; j < b; j++) if (view.getUint32(pos + 4 * j, true) === i) return true;
    pos += 4 * b + Math.ceil(vb * b);
  }
  return false;
}

describe('corrupt and inconsistent encodings', () => {
  const n = 40;
  const x = vector(n, 5);
  const int8 = spec({ values: 'int8', blockSize: 16 });
  const sparse = spec({ values: 'fp16', topK: 0.25, blockSize: 4 });
  const int4 = spec({ values: 'int4', blockSize: 5 });
  const int2 = spec({ values: 'int2', blockSize: 6 });
  const enc = (s: CodecSpec) => encodeVector(x, s, { rng: new Rng(3) }).slice();
  const mutate = (s: CodecSpec, f: (b: Uint8Array, v: DataView) => void) => {
    const b = enc(s);
    f(b, new DataView(b.buffer));
    return b;
  };

  test('bad headers', () => {
    throwsCodec(() => decodeVector(mutate(int8, (b) => (b[0] = 0x00))), 'bad_header', 'wrong magic');
    throwsCodec(() => decodeVector(mutate(int8, (b) => (b[4] = 9))), 'bad_header', 'unknown value format');
    throwsCodec(() => decodeVector(mutate(int8, (b) => (b[5] = 2))), 'bad_header', 'unknown flag');
    throwsCodec(() => decodeVector(mutate(int8, (b) => (b[7] = 1))), 'bad_header', 'reserved bytes');
    throwsCodec(() => decodeVector(mutate(int8, (_, v) => v.setUint32(16, 0, true))), 'bad_header', 'block size 0');
    throwsCodec(() => decodeVector(mutate(sparse, (_, v) => v.setUint32(12, n + 1, true))), 'bad_header', 'k > n');
    throwsCodec(() => decodeVector(mutate(int8, (_, v) => v.setUint32(12, n - 1, true))), 'bad_header', 'dense with k != n');
    throwsCodec(() => decodeVector(mutate(int8, (_, v) => {
      v.setUint32(8, 2 ** 31, true);
      v.setUint32(12, 2 ** 31, true);
    })), 'bad_header', 'a huge n without an expectation');
  });

  test('a header that disagrees with the expected codec or length', () => {
    const bytes = enc(int8);
    throwsCodec(() => decodeVector(bytes, { spec: spec({ values: 'int4', blockSize: 16 }), n }), 'mismatch', 'another value format');
    throwsCodec(() => decodeVector(bytes, { spec: spec({ values: 'int8', blockSize: 32 }), n }), 'mismatch', 'another block size');
    throwsCodec(() => decodeVector(bytes, { spec: int8, n: n + 1 }), 'mismatch', 'another length');
    throwsCodec(() => decodeVector(bytes, { spec: spec({ values: 'int8', blockSize: 16, topK: 0.5 }), n }), 'mismatch', 'dense where sparse was asked');
    throwsCodec(() => decodeVector(enc(sparse), { spec: spec({ values: 'fp16', topK: 0.5, blockSize: 4 }), n }), 'mismatch', 'another kept count');
  });

  test('truncation and trailing bytes', () => {
    const bytes = enc(int8);
    throwsCodec(() => decodeVector(new Uint8Array(0)), 'truncated', 'empty');
    throwsCodec(() => decodeVector(bytes.subarray(0, 10)), 'truncated', 'inside the header');
    throwsCodec(() => decodeVector(bytes.subarray(0, bytes.length - 1)), 'truncated', 'last byte missing');
    throwsCodec(() => decodeVector(bytes.subarray(0, HEADER_BYTES)), 'truncated', 'header only');
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    throwsCodec(() => decodeVector(longer), 'trailing_bytes', 'one byte too many');
  });

  test('sparse indices out of range, repeated or unsorted', () => {
    // Layout of `sparse`: header, then blocks of [4 indices u32][4 fp16 values].
    const idx = (j: number) => HEADER_BYTES + Math.floor(j / 4) * 24 + 4 * (j % 4);
    throwsCodec(() => decodeVector(mutate(sparse, (_, v) => v.setUint32(idx(0), n, true))), 'bad_index', 'index = n');
    throwsCodec(() => decodeVector(mutate(sparse, (_, v) => v.setUint32(idx(1), v.getUint32(idx(0), true), true))), 'bad_index', 'a repeated index');
    throwsCodec(() => decodeVector(mutate(sparse, (_, v) => {
      const a = v.getUint32(idx(3), true);
      v.setUint32(idx(3), v.getUint32(idx(4), true), true);
      v.setUint32(idx(4), a, true);
    })), 'bad_index', 'unsorted across a block boundary');
  });

  test('NaN, infinite and negative scales; levels outside the range; nonzero padding', () => {
    for (const bad of [NaN, Infinity, -1]) {
      throwsCodec(() => decodeVector(mutate(int8, (_, v) => v.setFloat32(HEADER_BYTES + 20, bad, true))), 'bad_scale', `scale ${bad} in block 1`);
    }
    throwsCodec(() => decodeVector(mutate(int8, (b) => (b[HEADER_BYTES + 4 + 3] = 0x80))), 'bad_value', 'int8 level -128');
    throwsCodec(() => decodeVector(mutate(int4, (b) => (b[HEADER_BYTES + 4] = 0x08))), 'bad_value', 'int4 level -8');
    throwsCodec(() => decodeVector(mutate(int4, (b) => (b[HEADER_BYTES + 4 + 2] = b[HEADER_BYTES + 4 + 2]! | 0x10))), 'bad_value', 'int4 padding nibble');
    // int2, blocks of 6: scale, then two bytes (four levels, then two and four padding bits).
    throwsCodec(() => decodeVector(mutate(int2, (b) => (b[HEADER_BYTES + 4] = (b[HEADER_BYTES + 4]! & ~0x3) | 0x2))), 'bad_value', 'int2 level -2');
    throwsCodec(() => decodeVector(mutate(int2, (b) => (b[HEADER_BYTES + 4 + 1] = b[HEADER_BYTES + 4 + 1]! | 0x40))), 'bad_value', 'int2 padding bits');
    assert.doesNotThrow(() => decodeVector(enc(int2)), 'the unmutated int2 encoding decodes');
  });

  test('a decoder that failed stays failed', () => {
    const d = new CodecDecoder({ spec: int8, n });
    const bad = mutate(int8, (b) => (b[0] = 0));
    throwsCodec(() => d.push(bad), 'bad_header', 'first push');
    throwsCodec(() => d.push(enc(int8)), 'bad_header', 'later push');
    throwsCodec(() => d.finish(), 'bad_header', 'finish');
  });

  test('the encoder refuses non-finite input, a missing rng and invalid settings', () => {
    throwsCodec(() => encodeVector(new Float32Array([1, NaN]), spec({})), 'non_finite_input', 'NaN');
    throwsCodec(() => encodeVector(new Float32Array([Infinity]), spec({ values: 'fp16' })), 'non_finite_input', 'infinity');
    throwsCodec(() => encodeVector(new Float32Array([1]), spec({ values: 'int8' })), 'bad_spec', 'no rng');
    throwsCodec(() => encodeVector(new Float32Array([1]), { values: 'int8', blockSize: 0 }, { rng: new Rng(1) }), 'bad_spec', 'block size 0');
    throwsCodec(() => encodeVector(new Float32Array([1]), { values: 'fp32', blockSize: 8, topK: 1.5 }), 'bad_spec', 'topK > 1');
  });
});

describe('top-k selection on large vectors (the sampled fast path)', () => {
  const reference = (x: Float32Array, k: number) =>
    [...x.keys()].sort((a, b) => Math.abs(x[b]!) - Math.abs(x[a]!) || a - b).slice(0, k).sort((a, b) => a - b);
  const cases: [string, (r: Rng, i: number) => number][] = [
    ['normal', (r) => r.normal()],
    ['heavy ties (values on a coarse grid)', (r) => Math.round(r.normal() * 4) / 4],
    ['mostly zeros', (r) => (r.next() < 0.02 ? r.normal() : 0)],
    ['all equal (the sample cannot separate: fallback)', () => 1],
    ['increasing', (_, i) => i],
  ];
  for (const [name, gen] of cases) {
    test(`${name}: the same indices as sorting`, () => {
      const r = new Rng(name.length);
      const x = Float32Array.from({ length: 100_000 }, (_, i) => gen(r, i));
      for (const k of [1, 1000, 5000]) assert.deepEqual([...topKIndices(x, k)], reference(x, k), `${name}, k=${k}`);
    });
  }
});
