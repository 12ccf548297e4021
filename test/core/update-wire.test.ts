// decodeUpdate: the server's parse-and-check of an upload. Its fast path reads the data section in place as the
// flat delta; these tests pin that it returns exactly what the general path (decode every tensor, then flatten)
// returns, on aligned and misaligned buffers and other dtypes, and that every bad upload is still refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError } from '../../src/core/protocol/errors.ts';
import { decodeUpdate, encodeUpdate } from '../../src/core/protocol/update-wire.ts';
import { decodeSafetensors } from '../../src/core/safetensors.ts';
import { fedBuff } from '../../src/core/strategies/fedbuff.ts';
import { InvalidUpdateError, validateUpdate, vouchFinite } from '../../src/core/strategies/validate-update.ts';
import { flatten, layoutOf, tensor, type Tensor } from '../../src/core/tensor.ts';

const layout = layoutOf([['b.weight', [3, 4]], ['a.bias', [5]], ['c', []]]);
const meta = { numExamples: 10, localSteps: 2, metrics: { trainLoss: 0.5 } };

function record(value: (name: string, i: number) => number): Map<string, Tensor> {
  return new Map(layout.slots.map((s) => [s.name, tensor(s.shape, Array.from({ length: s.size }, (_, i) => value(s.name, i)))]));
}
const values = record((name, i) => (name.length + i) * 0.25 - 1);
const upload = encodeUpdate(values, meta);
const expected = flatten(values, layout);

const rejects = (bytes: Uint8Array, message: RegExp, maxNorm = Infinity) =>
  assert.throws(() => decodeUpdate(bytes, layout, maxNorm), (e: unknown) => e instanceof ProtocolError && e.code === 'invalid_update' && message.test(e.message));

test('an aligned float32 upload decodes without a copy: the delta views the uploaded bytes', () => {
  const d = decodeUpdate(upload, layout, Infinity);
  assert.equal(d.delta.buffer, upload.buffer);
  assert.deepEqual([...d.delta], [...expected]);
  assert.deepEqual(d.delta, flatten(decodeSafetensors(upload).tensors, layout));
  assert.ok(Math.abs(d.norm - Math.hypot(...expected)) < 1e-12 * d.norm);
  assert.deepEqual({ numExamples: d.numExamples, localSteps: d.localSteps, metrics: d.metrics }, meta);
});

test('a misaligned upload (any byte offset) decodes to the same values, copied', () => {
  for (const shift of [1, 2, 3, 4, 5]) {
    const host = new Uint8Array(upload.length + shift);
    host.set(upload, shift);
    const d = decodeUpdate(host.subarray(shift), layout, Infinity);
    assert.deepEqual([...d.delta], [...expected], `shift ${shift}`);
    if (shift % 4 !== 0) assert.notEqual(d.delta.buffer, host.buffer);
  }
});

test('an upload whose tensors are stored out of name order, or as float16, takes the general path to the same delta', () => {
  // Hand-built: same tensors, data written in reverse name order.
  const names = layout.slots.map((s) => s.name).reverse();
  let offset = 0;
  const entries = names.map((n) => {
    const size = layout.slots.find((s) => s.name === n)!.size;
    const e = `${JSON.stringify(n)}:{"dtype":"F32","shape":${JSON.stringify(layout.slots.find((s) => s.name === n)!.shape)},"data_offsets":[${offset},${offset + size * 4}]}`;
    offset += size * 4;
    return e;
  });
  const header = new TextEncoder().encode(`{"__metadata__":{"numExamples":"10","localSteps":"2"},${entries.join(',')}}`);
  const file = new Uint8Array(8 + header.length + offset);
  new DataView(file.buffer).setUint32(0, header.length, true);
  file.set(header, 8);
  let at = 8 + header.length;
  for (const n of names) {
    const data = values.get(n)!.data;
    file.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    at += data.byteLength;
  }
  assert.deepEqual([...decodeUpdate(file, layout, Infinity).delta], [...expected]);

  // float16: every value here is exactly representable.
  const half = (x: number) => {
    const sign = x < 0 ? 0x8000 : 0;
    const a = Math.abs(x);
    if (a === 0) return sign;
    const e = Math.floor(Math.log2(a));
    return sign | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
  };
  offset = 0;
  const f16Entries = layout.slots.map((s) => {
    const e = `${JSON.stringify(s.name)}:{"dtype":"F16","shape":${JSON.stringify(s.shape)},"data_offsets":[${offset},${offset + s.size * 2}]}`;
    offset += s.size * 2;
    return e;
  });
  const h16 = new TextEncoder().encode(`{"__metadata__":{"numExamples":"10","localSteps":"2"},${f16Entries.join(',')}}`);
  const f16 = new Uint8Array(8 + h16.length + offset);
  const view = new DataView(f16.buffer);
  view.setUint32(0, h16.length, true);
  f16.set(h16, 8);
  expected.forEach((x, i) => view.setUint16(8 + h16.length + 2 * i, half(x), true));
  assert.deepEqual([...decodeUpdate(f16, layout, Infinity).delta], [...expected]);
});

test('bad uploads are refused with the same messages on every path', () => {
  rejects(new Uint8Array([1, 2, 3]), /not a valid safetensors file/);
  const extra = new Map(values);
  extra.set('zzz', tensor([1], [0]));
  rejects(encodeUpdate(extra, meta), /tensor zzz, which the model does not have/);
  const missing = new Map(values);
  missing.delete('c');
  rejects(encodeUpdate(missing, meta), /does not match the model: record has 2 tensors, layout expects 3/);
  const reshaped = new Map(values);
  reshaped.set('b.weight', tensor([4, 3], values.get('b.weight')!.data));
  rejects(encodeUpdate(reshaped, meta), /tensor b\.weight has shape \[4, 3\], expected \[3, 4\]/);
  for (const bad of [NaN, Infinity, -Infinity]) {
    rejects(encodeUpdate(record((n, i) => (n === 'b.weight' && i === 7 ? bad : 0)), meta), new RegExp(`non-finite value \\(${bad}\\) at flat index ${5 + 7}`));
  }
  rejects(upload, /update norm .* exceeds the run's bound 1/, 1);
  rejects(encodeUpdate(values, { ...meta, numExamples: 0 }), /numExamples must be an integer >= 1/);
});

test('a decoded delta is vouched finite; any other delta is still scanned before it can reach an accumulator', () => {
  const strategy = fedBuff({ bufferSize: 10 });
  const state = strategy.init(new Float32Array(layout.size));
  const acc = strategy.begin(state);
  const d = decodeUpdate(upload, layout, Infinity);
  strategy.fold(acc, { delta: d.delta, numExamples: d.numExamples, baseVersion: 0 }, state);
  assert.equal(acc.count, 1);

  // Same values, but an array nobody vouched for: a NaN in it is found.
  const copy = d.delta.slice();
  copy[3] = NaN;
  assert.throws(() => strategy.fold(acc, { delta: copy, numExamples: 1, baseVersion: 0 }, state), InvalidUpdateError);
  assert.throws(() => validateUpdate({ delta: copy, numExamples: 1 }, layout.size), /non-finite value at index 3/);
  assert.equal(acc.count, 1);

  // Vouching is a promise by the array's creator, not a check: it is what lets validateUpdate skip the scan.
  const promised = new Float32Array(layout.size);
  vouchFinite(promised);
  promised[0] = NaN;
  assert.doesNotThrow(() => validateUpdate({ delta: promised, numExamples: 1 }, layout.size));
});

test('a model-sized upload: the SIMD scan finds a NaN anywhere and measures the norm', () => {
  const big = layoutOf([['w', [100, 123]], ['v', [77]]]);
  const ones = new Map(big.slots.map((s) => [s.name, tensor(s.shape, new Float32Array(s.size).fill(0.5))]));
  const d = decodeUpdate(encodeUpdate(ones, meta), big, Infinity);
  assert.ok(Math.abs(d.norm - 0.5 * Math.sqrt(big.size)) < 1e-9);
  for (const at of [0, 4097, big.size - 1]) {
    const bad = new Map(big.slots.map((s) => [s.name, tensor(s.shape, new Float32Array(s.size))]));
    const slot = big.slots.find((s) => at >= s.offset && at < s.offset + s.size)!;
    bad.get(slot.name)!.data[at - slot.offset] = NaN;
    assert.throws(() => decodeUpdate(encodeUpdate(bad, meta), big, Infinity), new RegExp(`at flat index ${at}$`));
  }
});
