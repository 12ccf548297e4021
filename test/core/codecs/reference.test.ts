// The deterministic codecs against an independent reference: test/fixtures/core/codecs.json, written by
// scripts/fixtures/codecs.py (numpy float16 and PyTorch bfloat16 conversions; encodings laid out with Python's
// struct from the format's documentation). fp16/bf16 must round exactly as numpy/PyTorch do, the encoder must
// produce the reference's bytes, and the decoder must read hand-made int8/int4/int2 encodings to the reference's values.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { decodeVector } from '../../../src/core/codecs/decode.ts';
import { encodeVector } from '../../../src/core/codecs/encode.ts';
import { f32BitsToBf16, f32BitsToHalf, halfToFloatTable } from '../../../src/core/codecs/half.ts';
import { CodecSpec, type ValueFormat } from '../../../src/core/codecs/spec.ts';

const fixture = JSON.parse(readFileSync(new URL('../../fixtures/core/codecs.json', import.meta.url), 'utf8')) as {
  float32Bits: number[];
  fp16Bits: number[];
  bf16Bits: number[];
  vector: number[];
  encodings: { values: ValueFormat; blockSize: number; topK: number | null; hex: string }[];
  quantized: { values: ValueFormat; n: number; blockSize: number; hex: string; decoded: number[] }[];
};
const fromBits = (bits: number[]) => new Float32Array(new Uint32Array(bits).buffer);
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

test('fp16 conversion matches numpy astype(float16) bit for bit, edge cases and ties included', () => {
  const { float32Bits, fp16Bits } = fixture;
  assert.ok(float32Bits.length > 900, 'the fixture has the conversion cases');
  for (let i = 0; i < float32Bits.length; i++) {
    const got = f32BitsToHalf(float32Bits[i]!);
    assert.equal(got, fp16Bits[i], `fp16 of ${fromBits([float32Bits[i]!])[0]} (bits 0x${float32Bits[i]!.toString(16)})`);
  }
});

test('fp16 to float32 is exact: every finite half survives a round trip through float32', () => {
  const t = halfToFloatTable();
  const bits = new Uint32Array(new Float32Array(t).buffer);
  for (let h = 0; h < 65536; h++) {
    if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue; // NaN payloads are not preserved
    assert.equal(f32BitsToHalf(bits[h]!), h, `half 0x${h.toString(16)} round trip`);
  }
});

test('bf16 conversion matches PyTorch .to(torch.bfloat16) bit for bit', () => {
  const { float32Bits, bf16Bits } = fixture;
  for (let i = 0; i < float32Bits.length; i++) {
    assert.equal(f32BitsToBf16(float32Bits[i]!), bf16Bits[i], `bf16 of bits 0x${float32Bits[i]!.toString(16)}`);
  }
});

test('fp32, fp16 and bf16 encodings (dense and top-k) equal the reference bytes, and decode to the rounded values', () => {
  const x = fromBits(fixture.vector);
  assert.equal(fixture.encodings.length, 15, 'fifteen reference encodings');
  for (const e of fixture.encodings) {
    const spec = CodecSpec.parse({ values: e.values, blockSize: e.blockSize, ...(e.topK === null ? {} : { topK: e.topK }) });
    const label = `${e.values} block ${e.blockSize} topK ${e.topK}`;
    const rec = new Float32Array(x.length);
    const bytes = encodeVector(x, spec, { reconstruction: rec });
    assert.equal(hex(bytes), e.hex, `${label}: bytes`);
    const decoded = decodeVector(Buffer.from(e.hex, 'hex'), { spec, n: x.length });
    assert.deepEqual([...decoded], [...rec], `${label}: decode equals the encoder's reconstruction`);
    if (e.values === 'fp32' && e.topK === null) assert.deepEqual([...decoded], [...x], `${label}: fp32 is lossless`);
  }
});

test('hand-made int8, int4 and int2 encodings decode to level * scale', () => {
  for (const q of fixture.quantized) {
    const spec = CodecSpec.parse({ values: q.values, blockSize: q.blockSize });
    const decoded = decodeVector(Buffer.from(q.hex, 'hex'), { spec, n: q.n });
    assert.deepEqual([...decoded], q.decoded, `${q.values} n=${q.n} block ${q.blockSize}`);
  }
});
