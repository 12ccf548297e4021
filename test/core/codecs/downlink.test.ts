// The compressed downlink (downlink.ts) and its "TQD2" chains (weights-delta.ts): a bf16 run of steps agrees bit for
// bit with a plain loop written here (bf16 rounding by comparing the two neighbouring bf16 values, not by the codec's
// bit arithmetic); int8 steps are unbiased and error feedback loses nothing of the strategy's steps; a chain of
// stored steps rebuilds the version's file exactly; bad codecs and corrupt chains are CodecErrors.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { decodeVector } from '../../../src/core/codecs/decode.ts';
import {
  addDeltaInPlace, checkDownlinkCodec, compressStep, downlinkSeed, DownlinkCodecSpec,
} from '../../../src/core/codecs/downlink.ts';
import { CodecError, type CodecErrorReason } from '../../../src/core/codecs/errors.ts';
import { CodecSpec } from '../../../src/core/codecs/spec.ts';
import { applyWeightsDelta, chainDeltaSize, chainWeightsDelta } from '../../../src/core/codecs/weights-delta.ts';
import { Rng } from '../../../src/core/rng.ts';
import { encodeSafetensors } from '../../../src/core/safetensors.ts';
import { layoutOf, tensor, unflatten } from '../../../src/core/tensor.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const throwsCodec = (fn: () => unknown, reason: CodecErrorReason, what: string) =>
  assert.throws(fn, (e: unknown) => e instanceof CodecError && e.reason === reason, what);
const bits = (x: Float32Array) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));

/** bf16 nearest to a float32 value, ties to the even bf16: by comparing the two bf16 neighbours' distances. */
function bf16Nearest(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  const lo = u[0]! & 0xffff0000;
  const cand = new Uint32Array([lo, (lo + 0x10000) >>> 0]);
  const vals = new Float32Array(cand.buffer);
  const dLo = Math.abs(x - vals[0]!);
  const dHi = Math.abs(vals[1]! - x);
  if (dLo < dHi) return vals[0]!;
  if (dHi < dLo) return vals[1]!;
  return ((cand[0]! >>> 16) & 1) === 0 ? vals[0]! : vals[1]!;
}

function randomVector(n: number, rng: Rng, scale: number): Float32Array {
  return Float32Array.from({ length: n }, () => scale * rng.normal());
}

test('bf16 downlink steps match a plain loop bit for bit, residual included', () => {
  const spec = CodecSpec.parse({ values: 'bf16' });
  const rng = new Rng(5);
  const n = 777;
  let w = randomVector(n, rng, 0.1);
  let r: Float32Array | undefined;
  // The reference: its own float32 state, rounding written out here.
  const refW = w.slice();
  const refR = new Float32Array(n);
  for (let step = 1; step <= 20; step++) {
    const target = w.slice();
    for (let i = 0; i < n; i++) target[i] = target[i]! + 1e-3 * rng.normal();
    const out = compressStep(w, target, r, spec, downlinkSeed(1, step));
    for (let i = 0; i < n; i++) {
      const p = Math.fround(target[i]! - refW[i]! + refR[i]!);
      const q = bf16Nearest(p);
      refW[i] = Math.fround(refW[i]! + q);
      refR[i] = Math.fround(p - q);
    }
    assert.deepEqual(bits(out.params), bits(refW), `step ${step}: weights`);
    assert.deepEqual(bits(out.residual), bits(refR), `step ${step}: residual`);
    assert.equal(out.encoded.length, 20 + 2 * n, `step ${step}: bf16 costs 2 bytes per value plus the header`);
    w = out.params;
    r = out.residual;
  }
});

test('an int8 step is unbiased: over many seeds its mean is the target', () => {
  const spec = CodecSpec.parse({ values: 'int8', blockSize: 64 });
  const rng = new Rng(9);
  const n = 256;
  const prev = randomVector(n, rng, 1);
  const target = prev.slice();
  for (let i = 0; i < n; i++) target[i] = target[i]! + 0.01 * rng.normal();
  const trials = 2000;
  const sum = new Float64Array(n);
  let maxStepErr = 0;
  for (let t = 0; t < trials; t++) {
    const out = compressStep(prev, target, undefined, spec, downlinkSeed(3, t));
    for (let i = 0; i < n; i++) {
      sum[i] = sum[i]! + (out.params[i]! - prev[i]!);
      maxStepErr = Math.max(maxStepErr, Math.abs(out.params[i]! - target[i]!));
    }
  }
  let worst = 0;
  let stepMax = 0;
  for (let i = 0; i < n; i++) {
    const step = target[i]! - prev[i]!;
    stepMax = Math.max(stepMax, Math.abs(step));
    worst = Math.max(worst, Math.abs(sum[i]! / trials - step));
  }
  // One rounding moves a value by at most one level, scale = max|step| / 127 per block; the mean of 2000 draws has a
  // standard deviation below scale / (2 sqrt(2000)). A biased rounding (nearest, floor) would be off by up to scale/2.
  const scale = stepMax / 127;
  assert.ok(maxStepErr <= scale * 1.01 + 1e-6, `each step within one level (${maxStepErr} vs ${scale})`);
  assert.ok(worst < scale * 0.1, `mean step within 0.1 level of the strategy's step (worst ${worst}, level ${scale})`);
});

test('error feedback: weights plus residual track the uncompressed sum of steps; without it, int4 errors accumulate', () => {
  const spec = CodecSpec.parse({ values: 'int4', blockSize: 256 });
  const rng = new Rng(11);
  const n = 1000;
  const w0 = randomVector(n, rng, 0.5);
  let w: Float32Array = w0.slice();
  let r: Float32Array | undefined;
  let noEf: Float32Array = w0.slice();
  const exact = Float64Array.from(w0);
  // A small steady drift plus noise: int4 with blocks of 256 rounds the small entries to zero most of the time.
  const drift = Float32Array.from({ length: n }, () => 1e-4 * rng.normal());
  const big = Float32Array.from({ length: n }, (_, i) => (i % 100 === 0 ? 0.05 : 0));
  for (let step = 1; step <= 200; step++) {
    const d = Float32Array.from({ length: n }, (_, i) => drift[i]! + big[i]! * (step % 2 === 0 ? 1 : -1));
    const target = Float32Array.from(w, (x, i) => x + d[i]!);
    const out = compressStep(w, target, r, spec, downlinkSeed(0, step));
    w = out.params;
    r = out.residual;
    const targetNoEf = Float32Array.from(noEf, (x, i) => x + d[i]!);
    noEf = compressStep(noEf, targetNoEf, undefined, spec, downlinkSeed(0, step)).params;
    for (let i = 0; i < n; i++) exact[i] = exact[i]! + d[i]!;
  }
  let efErr = 0;
  let lag = 0;
  let noEfErr = 0;
  for (let i = 0; i < n; i++) {
    efErr = Math.max(efErr, Math.abs(w[i]! + r![i]! - exact[i]!));
    lag += (w[i]! - exact[i]!) ** 2;
    noEfErr += (noEf[i]! - exact[i]!) ** 2;
  }
  // A few float32 roundings per version (the target, p, w + d, p - d) of values near 1: about 2^-24 each, so 200
  // versions stay far below 1e-4, which is itself 70x below one int4 level here (0.05 / 7).
  assert.ok(efErr < 1e-4, `w_T + r_T equals w_0 + sum of steps up to float32 rounding (max error ${efErr})`);
  // Unbiased rounding alone is right on average but its errors add up like a random walk (sqrt(T) levels after T
  // versions); with error feedback the error stays within the last residual (DoubleSqueeze, Tang et al. 2019).
  assert.ok(Math.sqrt(lag) < 0.35 * Math.sqrt(noEfErr), `error feedback ends closer to the exact weights (${Math.sqrt(lag)} vs ${Math.sqrt(noEfErr)} without it)`);
});

test('the same seed commits the same bytes; another version number gives another rounding', () => {
  const spec = CodecSpec.parse({ values: 'int8' });
  const rng = new Rng(2);
  const prev = randomVector(512, rng, 1);
  const target = Float32Array.from(prev, (x) => x + 0.01 * rng.normal());
  const a = compressStep(prev, target, undefined, spec, downlinkSeed(7, 4));
  const b = compressStep(prev, target, undefined, spec, downlinkSeed(7, 4));
  const c = compressStep(prev, target, undefined, spec, downlinkSeed(7, 5));
  assert.deepEqual(a.encoded, b.encoded, 'reproducible');
  assert.notDeepEqual(a.encoded, c.encoded, 'a different stream per version');
  assert.ok(prev.every((x, i) => x === Float32Array.from(prev)[i]), 'inputs untouched');
});

test('only dense fp16, bf16, int8, int4 and int2 are downlink codecs', () => {
  for (const values of ['fp16', 'bf16', 'int8', 'int4', 'int2'] as const) assert.equal(checkDownlinkCodec(CodecSpec.parse({ values })).values, values);
  throwsCodec(() => checkDownlinkCodec(CodecSpec.parse({ values: 'fp32' })), 'bad_spec', 'fp32 refused');
  throwsCodec(() => checkDownlinkCodec(CodecSpec.parse({ values: 'int8', topK: 0.1 })), 'bad_spec', 'top-k refused');
  const r = DownlinkCodecSpec.safeParse({ values: 'fp16', topK: 0.01 });
  assert.ok(!r.success && /topk0\.01\+fp16 refused: a downlink codec must be dense/.test(r.error.issues[0]!.message), 'zod names the codec and the rule');
  const prev = new Float32Array(4);
  throwsCodec(() => compressStep(prev, new Float32Array(5), undefined, CodecSpec.parse({ values: 'fp16' }), 0), 'mismatch', 'length mismatch');
  throwsCodec(() => compressStep(prev, prev, new Float32Array(3), CodecSpec.parse({ values: 'fp16' }), 0), 'mismatch', 'residual mismatch');
});

// A version file as the coordinator writes it: the flat vector in layout order (names sorted, as safetensors).
const LAYOUT = layoutOf([['a.weight', [30, 20]], ['a.bias', [20]]]);
const file = (w: Float32Array, version: string) => encodeSafetensors(unflatten(w, LAYOUT), { version });

test('a chain of stored steps rebuilds the version file bit for bit, and is smaller than it', () => {
  const spec = CodecSpec.parse({ values: 'int8', blockSize: 128 });
  const rng = new Rng(4);
  let w = randomVector(620, rng, 0.2);
  let r: Float32Array | undefined;
  const files = [file(w, '0')];
  const steps: Uint8Array[] = [];
  for (let v = 1; v <= 4; v++) {
    const out = compressStep(w, Float32Array.from(w, (x) => x + 1e-3 * rng.normal()), r, spec, downlinkSeed(0, v));
    [w, r] = [out.params, out.residual];
    files.push(file(w, String(v)));
    steps.push(out.encoded);
  }
  for (let from = 0; from < 4; from++) {
    const chain = chainWeightsDelta(files[4]!, steps.slice(from))!;
    const header = files[4]!.length - 4 * 620;
    assert.equal(chain.length, chainDeltaSize(header, steps.slice(from).map((s) => s.length)), 'size formula');
    assert.equal(sha(applyWeightsDelta(files[from]!, chain)), sha(files[4]!), `from version ${from}: same hash`);
  }
  assert.ok(chainWeightsDelta(files[4]!, steps.slice(3))!.length * 3 < files[4]!.length, 'one int8 step: under a third of the file');
  // The device's addition is the same loop: decoding a step and adding it to version 3 gives version 4's weights.
  const w3 = new Float32Array(new Uint8Array(files[3]!.subarray(files[3]!.length - 2480)).buffer);
  addDeltaInPlace(w3, decodeVector(steps[3]!));
  assert.deepEqual(bits(w3), bits(w), 'addDeltaInPlace on the device side');
});

test('corrupt chains and chains for another base are CodecErrors', () => {
  const spec = CodecSpec.parse({ values: 'fp16' });
  const w = randomVector(620, new Rng(8), 0.2);
  const out = compressStep(w, Float32Array.from(w, (x) => x + 0.01), undefined, spec, 1);
  const base = file(w, '0');
  const chain = chainWeightsDelta(file(out.params, '1'), [out.encoded])!;
  throwsCodec(() => applyWeightsDelta(base, chain.subarray(0, chain.length - 1)), 'truncated', 'truncated step');
  throwsCodec(() => applyWeightsDelta(base, Uint8Array.from([...chain, 0])), 'trailing_bytes', 'trailing byte');
  const badMagic = chain.slice();
  badMagic[3] = 0x39; // "TQD9": TQD1-3 are all real
  throwsCodec(() => applyWeightsDelta(base, badMagic), 'bad_header', 'unknown magic');
  const small = encodeSafetensors(new Map([['a.weight', tensor([30, 20], w.subarray(0, 600))], ['a.bias', tensor([10], w.subarray(600, 610))]]), { version: '0' });
  throwsCodec(() => applyWeightsDelta(small, chain), 'bad_header', 'a base of other tensors');
  const count = chain.slice();
  const h = new DataView(count.buffer).getUint32(4, true);
  new DataView(count.buffer).setUint32(8 + h, 2, true);
  throwsCodec(() => applyWeightsDelta(base, count), 'truncated', 'a step count beyond the body');
  // A step of another length: refused from its header, before decoding.
  const other = compressStep(new Float32Array(10), new Float32Array(10).fill(1), undefined, spec, 1).encoded;
  throwsCodec(() => applyWeightsDelta(base, chainWeightsDelta(file(out.params, '1'), [other])!), 'mismatch', 'a step of 10 values');
});
