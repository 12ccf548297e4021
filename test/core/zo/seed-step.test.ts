// Seed steps (src/core/zo/seed-step.ts, FedKSeed's downlink, Qin et al. ICML 2024): a version rebuilt from the
// (seed, scalar) uploads folded into it. Checked against an independent computation (z from gaussianAt one entry at
// a time, the strategy's rule written out in float64), bit for bit against the coordinator's own path (the uploads
// decoded from the wire by decodeZoLeaseUpdate and folded by the strategy), on a vector long enough for the SIMD
// fold; strategies with server state or noise are refused, and every corruption of the bytes is a CodecError.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CodecError } from '../../../src/core/codecs/errors.ts';
import { Rng } from '../../../src/core/rng.ts';
import { createStrategy, StrategyConfig } from '../../../src/core/strategies/config.ts';
import type { ServerState } from '../../../src/core/strategies/types.ts';
import { gaussianAt } from '../../../src/core/zo/gaussian.ts';
import { poolSeed } from '../../../src/core/zo/mezo.ts';
import {
  decodeSeedStep, encodeSeedStep, replaySeedStep, seedStepEntries, seedStepRefusal, type SeedStep, type SeedStepUpdate,
} from '../../../src/core/zo/seed-step.ts';
import { decodeZoLeaseUpdate } from '../../../src/core/zo/upload.ts';
import { encodeZoUpdate } from '../../../src/core/zo/wire.ts';

const N = 5003; // above the SIMD fold's threshold (4096), and odd: the Gaussian pairs' last half is used
const POOL = { poolSize: 512, poolSeed: 9 };
const LAYOUT = { slots: [{ name: 'w', shape: [N], offset: 0, size: N }], size: N };

function params(seed: number): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: N }, () => 0.1 * r.normal());
}

function upload(seed: number, steps: number, baseVersion: number, numExamples: number, lr = 1e-3): SeedStepUpdate {
  const r = new Rng(seed);
  const pairs = Array.from({ length: steps }, () => ({ index: r.int(POOL.poolSize), grad: Math.fround(2 * r.normal()) }));
  return { numExamples, localSteps: steps, baseVersion, lr, ...POOL, pairs };
}

const FEDBUFF = StrategyConfig.parse({ kind: 'fedbuff', bufferSize: 3, staleness: { kind: 'polynomial', a: 0.5 }, serverOptimizer: { kind: 'sgd', lr: 0.5 } });
const FEDAVG = StrategyConfig.parse({ kind: 'fedavg', serverLr: 1 });

/**
 * w + eta * sum_k s_k * (-lr_k sum_t g_t z_t) / sum_k m_k in float64, z entry by entry: no code shared with replay.
 * Also the magnitude |w| + eta * sum |terms| / mass of each entry, the scale float32 rounding errors are relative to.
 */
function independent(w: Float32Array, version: number, ups: SeedStepUpdate[], rule: 'fedbuff' | 'fedavg', eta: number): { value: Float64Array; scale: Float64Array } {
  const value = Float64Array.from(w);
  const scale = Float64Array.from(w, Math.abs);
  let mass = 0;
  const sum = new Float64Array(N);
  const abs = new Float64Array(N);
  for (const u of ups) {
    const s = rule === 'fedbuff' ? (version - 1 - u.baseVersion + 1) ** -0.5 : u.numExamples;
    mass += rule === 'fedbuff' ? 1 : u.numExamples;
    for (const { index, grad } of u.pairs) {
      const seed = poolSeed(POOL, index);
      for (let i = 0; i < N; i++) {
        const t = s * -u.lr * grad * gaussianAt(seed, i);
        sum[i] = sum[i]! + t;
        abs[i] = abs[i]! + Math.abs(t);
      }
    }
  }
  for (let i = 0; i < N; i++) {
    value[i] = value[i]! + (eta * sum[i]!) / mass;
    scale[i] = scale[i]! + (eta * abs[i]!) / mass;
  }
  return { value, scale };
}

/** The coordinator's path: each upload's wire bytes decoded and replayed by decodeZoLeaseUpdate, folded by the strategy. */
function coordinator(w: Float32Array, version: number, ups: SeedStepUpdate[], cfg: StrategyConfig): Float32Array {
  const strategy = createStrategy(cfg);
  const state: ServerState = { version: version - 1, params: w, slots: {} };
  const acc = strategy.begin(state);
  for (const u of ups) {
    const bytes = encodeZoUpdate({ numExamples: u.numExamples, localSteps: u.localSteps, ...POOL, metrics: {}, pairs: [...u.pairs] });
    const d = decodeZoLeaseUpdate(bytes, LAYOUT, Infinity, { epsilon: 1e-3, ...POOL }, { lr: u.lr, localSteps: u.localSteps });
    strategy.fold(acc, { delta: d.delta, numExamples: d.numExamples, localSteps: d.localSteps, baseVersion: u.baseVersion }, state);
  }
  return strategy.apply(state, acc).params;
}

/** The worst error in float32 ulps of each entry's magnitude scale (sums of float32-rounded terms drift by a few). */
function maxUlps(got: Float32Array, want: { value: Float64Array; scale: Float64Array }): number {
  let worst = 0;
  for (let i = 0; i < N; i++) worst = Math.max(worst, Math.abs(got[i]! - want.value[i]!) / (2 ** -23 * want.scale[i]!));
  return worst;
}

describe('seed steps', () => {
  const w = params(1);
  const fedbuffStep: SeedStep = { version: 7, size: N, strategy: FEDBUFF, updates: [upload(2, 20, 6, 16), upload(3, 20, 4, 16), upload(4, 5, 6, 8, 2e-3)] };

  it('replay equals an independent float64 computation within float32 rounding (FedBuff with staleness, FedAvg by examples)', () => {
    const got = replaySeedStep(w, fedbuffStep);
    const ulps = maxUlps(got, independent(w, 7, [...fedbuffStep.updates], 'fedbuff', 0.5));
    assert.ok(ulps < 16, `FedBuff: ${ulps.toFixed(1)} ulp from the independent value`);
    let moved = 0;
    for (let i = 0; i < N; i++) moved = Math.max(moved, Math.abs(got[i]! - w[i]!));
    assert.ok(moved > 1e-4, `the step moved the params (${moved})`);
    const avg: SeedStep = { version: 1, size: N, strategy: FEDAVG, updates: [upload(5, 10, 0, 30), upload(6, 10, 0, 10)] };
    assert.ok(maxUlps(replaySeedStep(w, avg), independent(w, 1, [...avg.updates], 'fedavg', 1)) < 16, 'FedAvg');
  });

  it('replay is bit for bit what the coordinator commits from the same uploads on the wire', () => {
    const got = replaySeedStep(w, decodeSeedStep(encodeSeedStep(fedbuffStep)));
    assert.deepEqual(new Uint32Array(got.buffer), new Uint32Array(coordinator(w, 7, [...fedbuffStep.updates], FEDBUFF).buffer));
    // The staleness weights matter: with every upload on version 6 the result differs.
    const fresh = { ...fedbuffStep, updates: fedbuffStep.updates.map((u) => ({ ...u, baseVersion: 6 })) };
    assert.notDeepEqual(replaySeedStep(w, fresh), got);
    // And FedNova (tau_eff from the uploads' localSteps) too.
    const nova = { ...fedbuffStep, strategy: StrategyConfig.parse({ kind: 'fednova' }) };
    assert.deepEqual(replaySeedStep(w, nova), coordinator(w, 7, [...nova.updates], nova.strategy));
  });

  it('round-trips its bytes; a few hundred bytes whatever the model', () => {
    const bytes = encodeSeedStep(fedbuffStep);
    const json = JSON.stringify(FEDBUFF).length;
    assert.equal(bytes.length, 20 + json + 3 * 32 + 45 * 6, 'header, strategy, 3 upload headers, 45 pairs of 6 bytes');
    assert.deepEqual(decodeSeedStep(bytes), fedbuffStep);
    assert.equal(seedStepEntries([fedbuffStep]), N * fedbuffStep.updates.reduce((a, u) => a + new Set(u.pairs.map((p) => p.index)).size, 0));
  });

  it('refuses strategies whose step a device cannot recompute', () => {
    for (const ok of [FEDBUFF, FEDAVG, StrategyConfig.parse({ kind: 'fednova' })]) assert.equal(seedStepRefusal(ok), undefined, ok.kind);
    const refused = [
      { kind: 'fedbuff', bufferSize: 2, serverOptimizer: { kind: 'adam', lr: 0.01 } }, { kind: 'fedavgm' }, { kind: 'fedadam', lr: 0.01 },
      { kind: 'diloco' }, { kind: 'robust', bufferSize: 3, rule: { kind: 'median' } },
      { kind: 'dp', inner: { kind: 'fedbuff', bufferSize: 2 }, noiseMultiplier: 1, clip: { kind: 'fixed', norm: 1 } },
    ].map((c) => StrategyConfig.parse(c));
    for (const cfg of refused) {
      assert.match(seedStepRefusal(cfg) ?? '', /state|noise|robust/, cfg.kind);
      const step = { ...fedbuffStep, strategy: cfg };
      assert.throws(() => replaySeedStep(w, step), (e) => e instanceof CodecError && e.reason === 'bad_header', `${cfg.kind} replay refused`);
      assert.throws(() => decodeSeedStep(encodeSeedStep(step)), (e) => e instanceof CodecError && e.reason === 'bad_header', `${cfg.kind} decode refused`);
    }
  });

  it('every corruption is a CodecError, never a partial step', () => {
    const bytes = encodeSeedStep(fedbuffStep);
    for (let len = 0; len < bytes.length; len++) {
      assert.throws(() => decodeSeedStep(bytes.subarray(0, len)), (e) => e instanceof CodecError, `truncated to ${len}`);
    }
    const tail = new Uint8Array(bytes.length + 1);
    tail.set(bytes);
    assert.throws(() => decodeSeedStep(tail), (e) => e instanceof CodecError && e.reason === 'trailing_bytes');
    const patch = (at: number, write: (v: DataView) => void) => {
      const b = bytes.slice();
      write(new DataView(b.buffer, at));
      return b;
    };
    const json = JSON.stringify(FEDBUFF).length;
    const first = 20 + json; // the first upload's header
    assert.throws(() => decodeSeedStep(patch(0, (v) => v.setUint8(0, 0))), /magic/);
    assert.throws(() => decodeSeedStep(patch(first + 8, (v) => v.setUint32(0, 7, true))), /base version 7 is not before version 7/);
    assert.throws(() => decodeSeedStep(patch(first + 12, (v) => v.setFloat64(0, NaN, true))), (e) => e instanceof CodecError && e.reason === 'bad_value');
    assert.throws(() => decodeSeedStep(patch(first + 32, (v) => v.setUint16(0, 600, true))), (e) => e instanceof CodecError && e.reason === 'bad_index');
    assert.throws(() => decodeSeedStep(patch(first + 32 + 40, (v) => v.setFloat32(0, Infinity, true))), (e) => e instanceof CodecError && e.reason === 'bad_value');
    assert.throws(() => decodeSeedStep(patch(16, (v) => v.setUint8(0, 0x7b + 1))), /strategy is not a strategy config/);
    assert.throws(() => decodeSeedStep(patch(first - 4, (v) => v.setUint32(0, 1e6, true))), (e) => e instanceof CodecError && e.reason === 'truncated');
    // A step for another model size is refused before any replay.
    assert.throws(() => replaySeedStep(w.subarray(1), fedbuffStep), (e) => e instanceof CodecError && e.reason === 'mismatch');
    // An upload the strategy rejects (a base version after the server's) is a CodecError, not a StrategyError.
    const future = { ...fedbuffStep, version: 3 };
    assert.throws(() => replaySeedStep(w, future), (e) => e instanceof CodecError && e.reason === 'bad_value' && /base version/.test(e.message));
  });
});
