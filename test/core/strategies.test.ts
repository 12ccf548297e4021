// Hand-computed cases and the contracts every strategy keeps: validation before folding, constant accumulator
// memory, immutable versions, staleness weights. Paper-exact multi-step behaviour is pinned by
// strategies-reference.test.ts against the NumPy fixture.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { coverageFromRanges } from '../../src/core/coverage.ts';
import { decodeSafetensors, encodeSafetensors } from '../../src/core/safetensors.ts';
import { accumulatorBytes, type Accumulator } from '../../src/core/strategies/accumulator.ts';
import { diloco } from '../../src/core/strategies/diloco.ts';
import { fedAsyncStep } from '../../src/core/strategies/fedasync.ts';
import { fedAvg } from '../../src/core/strategies/fedavg.ts';
import { fedAvgM } from '../../src/core/strategies/fedavgm.ts';
import { fedBuff } from '../../src/core/strategies/fedbuff.ts';
import { fedNova } from '../../src/core/strategies/fednova.ts';
import { fedAdam, fedYogi } from '../../src/core/strategies/fedopt.ts';
import { fedProx, proximalGradient, proximalLoss } from '../../src/core/strategies/fedprox.ts';
import { stalenessWeight } from '../../src/core/strategies/staleness.ts';
import { StrategyError, type ClientUpdate, type ServerState, type Strategy } from '../../src/core/strategies/types.ts';
import { InvalidUpdateError, validateUpdate, type UpdateProblem } from '../../src/core/strategies/validate-update.ts';
import { tensor } from '../../src/core/tensor.ts';
import { createSumVector } from '../../src/core/update-math.ts';

const f = (...xs: number[]): Float32Array => Float32Array.from(xs);
const upd = (delta: number[], numExamples = 1, extra: Partial<ClientUpdate> = {}): ClientUpdate => ({
  delta: Float32Array.from(delta),
  numExamples,
  ...extra,
});

/** One server step from `params` folding `updates`. */
function step(
  strategy: Strategy,
  params: number[],
  updates: ClientUpdate[],
  state = strategy.init(Float32Array.from(params)),
): ServerState {
  const acc = strategy.begin(state);
  for (const u of updates) strategy.fold(acc, u, state);
  return strategy.apply(state, acc);
}

const near = (actual: Float32Array, expected: number[]): void =>
  expected.forEach((e, i) => assert.ok(Math.abs(actual[i]! - e) < 1e-6, `[${i}] got ${actual[i]}, expected ${e}`));

const problem = (p: UpdateProblem) => (e: unknown) => e instanceof InvalidUpdateError && e.problem === p;

test('FedAvg: example-weighted mean of deltas, scaled by the server learning rate', () => {
  const updates = [upd([1, 2], 1), upd([3, 6], 3)];
  near(step(fedAvg(), [0, 0], updates).params, [2.5, 5]);
  near(step(fedAvg({ serverLr: 0.5 }), [1, 1], updates).params, [2.25, 3.5]);
  near(step(fedAvg({ weighting: 'uniform' }), [0, 0], updates).params, [2, 4]);
});

test('coverage: each coordinate averages only the updates that covered it; uncovered ones stay put', () => {
  const cov = (...r: [number, number][]) => coverageFromRanges(4, r);
  const a = upd([2, 2, 99, 99], 1, { coverage: cov([0, 2]) });
  const b = upd([99, 4, 4, 99], 3, { coverage: cov([1, 3]) });
  near(step(fedAvg(), [1, 1, 1, 1], [a, b]).params, [3, 4.5, 5, 1]);
  // A full update mixed in, before or after the partial ones (the per-coordinate mass is seeded with what came before).
  const full = upd([8, 8, 8, 8], 4);
  const expected = [1 + (2 + 32) / 5, 1 + (2 + 12 + 32) / 8, 1 + (12 + 32) / 7, 1 + 8];
  near(step(fedAvg(), [1, 1, 1, 1], [full, a, b]).params, expected);
  near(step(fedAvg(), [1, 1, 1, 1], [a, full, b]).params, expected);
  near(step(fedAvg(), [1, 1, 1, 1], [a, b, full]).params, expected);
});

test('coverage: stateful optimizers neither move nor decay uncovered coordinates', () => {
  const strategy = fedAvgM({ beta: 0.5 });
  const s1 = step(strategy, [0, 0], [upd([2, 2])]);
  near(s1.slots.velocity!, [2, 2]);
  const s2 = step(strategy, [], [upd([1, 99], 1, { coverage: coverageFromRanges(2, [[0, 1]]) })], s1);
  near(s2.slots.velocity!, [2, 2].map((v, i) => (i === 0 ? 0.5 * v + 1 : v)));
  near(s2.params, [2 + 2, 2]);
});

test('FedBuff: staleness-weighted sum over K, firing after K updates', () => {
  const strategy = fedBuff({ bufferSize: 2, staleness: { kind: 'polynomial', a: 1 } });
  const state: ServerState = { version: 3, params: f(10), slots: {} };
  const acc = strategy.begin(state);
  strategy.fold(acc, upd([2], 1, { baseVersion: 3 }), state); // staleness 0: s = 1
  assert.equal(strategy.ready(acc), false);
  strategy.fold(acc, upd([6], 1, { baseVersion: 1 }), state); // staleness 2: s = 1/3
  assert.equal(strategy.ready(acc), true);
  const next = strategy.apply(state, acc);
  near(next.params, [10 + (2 + 6 / 3) / 2]);
  assert.equal(next.version, 4);

  const byWeight = fedBuff({ bufferSize: 2, staleness: { kind: 'polynomial', a: 1 }, normalize: 'weight' });
  const updates = [upd([2], 1, { baseVersion: 3 }), upd([6], 1, { baseVersion: 1 })];
  near(step(byWeight, [], updates, state).params, [10 + (2 + 6 / 3) / (1 + 1 / 3)]);
});

test('FedBuff rejects updates without a base version or from the future', () => {
  const strategy = fedBuff({ bufferSize: 2 });
  const state = strategy.init(f(0));
  const acc = strategy.begin(state);
  assert.throws(() => strategy.fold(acc, upd([1]), state), problem('base-version'));
  assert.throws(() => strategy.fold(acc, upd([1], 1, { baseVersion: 1 }), state), problem('base-version'));
  assert.equal(acc.count, 0);
});

test('staleness functions (Xie et al. 2019)', () => {
  assert.equal(stalenessWeight({ kind: 'constant' }, 7), 1);
  assert.equal(stalenessWeight({ kind: 'polynomial', a: 0.5 }, 3), 0.5);
  assert.equal(stalenessWeight({ kind: 'polynomial', a: 0.5 }, 0), 1);
  const hinge = { kind: 'hinge', a: 10, b: 2 } as const;
  assert.equal(stalenessWeight(hinge, 2), 1);
  assert.equal(stalenessWeight(hinge, 4), 1 / 21);
  assert.throws(() => stalenessWeight(hinge, -1), StrategyError);
  assert.throws(() => fedBuff({ bufferSize: 2, staleness: { kind: 'polynomial', a: -1 } }), StrategyError);
});

test('FedNova: normalized deltas rescaled by tau_eff', () => {
  // p = [0.5, 0.5], tau = [1, 4]: d = 0.5 * 1/1 + 0.5 * 2/4 = 0.75, tau_eff = 2.5.
  const updates = [upd([1], 1, { localSteps: 1 }), upd([2], 1, { localSteps: 4 })];
  near(step(fedNova(), [0], updates).params, [1.875]);
  const state = fedNova().init(f(0));
  const acc = fedNova().begin(state);
  assert.throws(() => fedNova().fold(acc, upd([1]), state), problem('local-steps'));
  assert.throws(
    () => fedNova().fold(acc, upd([1], 1, { localSteps: 2, coverage: coverageFromRanges(1, [[0, 1]]) }), state),
    problem('coverage'),
  );
});

test('DiLoCo: one Nesterov outer step by hand', () => {
  // mean delta -0.5 -> outer gradient g = 0.5; b = 0.5; step = g + 0.9 b = 0.95; theta = 1 - 0.7 * 0.95.
  const next = step(diloco(), [1], [upd([-0.25]), upd([-0.75])]);
  near(next.params, [1 - 0.7 * 0.95]);
  near(next.slots.momentum!, [0.5]);
});

test('FedAsync: mixes the client model built on its (stale) base into the current params', () => {
  const current: ServerState = { version: 2, params: f(1), slots: {} };
  const base = f(0);
  const mix = (alpha: number, fn: Parameters<typeof stalenessWeight>[0]) =>
    fedAsyncStep(current, base, upd([2], 1, { baseVersion: 1 }), { alpha, staleness: fn }).params;
  near(mix(0.5, { kind: 'constant' }), [0.5 * 1 + 0.5 * 2]);
  near(mix(0.5, { kind: 'polynomial', a: 1 }), [0.75 * 1 + 0.25 * 2]);
  assert.throws(() => fedAsyncStep(current, base, upd([2]), { alpha: 0.5 }), problem('base-version'));
  assert.throws(() => fedAsyncStep(current, base, upd([2], 1, { baseVersion: 0 }), { alpha: 1.5 }), StrategyError);
});

test('FedProx: proximal loss and gradient; the server side is FedAvg', () => {
  assert.equal(proximalLoss(f(1, 2), f(0, 0), 0.5), 1.25);
  assert.deepEqual([...proximalGradient(f(1, 2), f(0, 1), 0.5)], [0.5, 0.5]);
  const strategy = fedProx({ mu: 0.01 });
  assert.equal(strategy.mu, 0.01);
  assert.equal(strategy.name, 'fedprox');
  near(step(strategy, [0, 0], [upd([1, 2], 1), upd([3, 6], 3)]).params, [2.5, 5]);
  assert.throws(() => fedProx({ mu: -1 }), StrategyError);
});

test('memory: the accumulator does not grow with the number of folded updates or retain them', () => {
  const size = 1000;
  for (const partial of [false, true]) {
    const strategy = fedAvg();
    const state = strategy.init(new Float32Array(size));
    const acc = strategy.begin(state);
    const coverage = partial ? { coverage: coverageFromRanges(size, [[0, size / 2]]) } : {};
    const first = upd(Array.from({ length: size }, () => 1), 1, coverage);
    strategy.fold(acc, first, state);
    const bytesAfterOne = accumulatorBytes(acc);
    for (let k = 0; k < 200; k++) strategy.fold(acc, upd(Array.from({ length: size }, () => 1), 1, coverage), state);
    assert.equal(accumulatorBytes(acc), bytesAfterOne);
    assert.equal(bytesAfterOne, (partial ? 8 : 4) * size);
    first.delta.fill(1e6); // the accumulator holds no reference to a folded update
    assert.equal(strategy.apply(state, acc).params[0], 1);
  }
});

test('a model-sized accumulator folds with SIMD, bit-identically to the plain loop, with and without coverage', () => {
  const size = 20_000;
  const strategy = fedBuff({ bufferSize: 100 });
  const state = { ...strategy.init(new Float32Array(size)), version: 2 };
  const simd = strategy.begin(state);
  assert.equal(simd.vector.simd, true);
  const vector = createSumVector(size, { simd: false });
  const plain: Accumulator = { ...strategy.begin(state), sum: vector.data, vector };
  const updates = [0, 1, 2].flatMap((baseVersion) => [undefined, coverageFromRanges(size, [[3, 9001], [12_000, 19_999]])].map((coverage) => ({
    delta: Float32Array.from({ length: size }, (_, i) => Math.sin(i * (baseVersion + 1)) * 10 ** ((i % 5) - 2)),
    numExamples: 1,
    baseVersion,
    ...(coverage === undefined ? {} : { coverage }),
  })));
  for (const u of updates) {
    strategy.fold(simd, u, state);
    strategy.fold(plain, u, state);
  }
  assert.deepEqual(new Uint32Array(simd.sum.slice().buffer), new Uint32Array(plain.sum.slice().buffer));
  assert.deepEqual(simd.coordMass, plain.coordMass);
  assert.deepEqual(strategy.apply(state, simd).params, strategy.apply(state, plain).params);
});

test('validation: NaN, wrong shape and bad counts are rejected before touching the accumulator', () => {
  const strategy = fedAdam({ lr: 0.1 });
  const state = strategy.init(f(0, 0, 0));
  const acc = strategy.begin(state);
  const mentions = (p: UpdateProblem, text: RegExp) => (e: unknown) => problem(p)(e) && text.test((e as Error).message);
  assert.throws(() => strategy.fold(acc, upd([1, NaN, 1]), state), mentions('non-finite', /index 1/));
  assert.throws(() => strategy.fold(acc, upd([1, 1, Infinity]), state), problem('non-finite'));
  assert.throws(() => strategy.fold(acc, upd([1, 1]), state), mentions('shape', /2 values, the model has 3/));
  assert.throws(() => strategy.fold(acc, upd([1, 1, 1], 0), state), problem('examples'));
  assert.throws(() => strategy.fold(acc, upd([1, 1, 1], 1, { localSteps: 1.5 }), state), problem('local-steps'));
  const tooLong = coverageFromRanges(4, [[0, 4]]);
  assert.throws(() => strategy.fold(acc, upd([1, 1, 1], 1, { coverage: tooLong }), state), problem('coverage'));
  assert.equal(acc.count, 0);
  assert.deepEqual([...acc.sum], [0, 0, 0]);
  assert.doesNotThrow(() => validateUpdate(upd([1, 2, 3]), 3));
});

test('apply: returns a new version, leaves the old one intact, and spends the accumulator', () => {
  const strategy = fedYogi({ lr: 0.1 });
  const s0 = strategy.init(f(1, 2));
  const v0 = s0.slots.v!.slice();
  const acc = strategy.begin(s0);
  assert.throws(() => strategy.apply(s0, acc), /empty aggregation/);
  strategy.fold(acc, upd([1, -1]), s0);
  const s1 = strategy.apply(s0, acc);
  assert.equal(s1.version, 1);
  assert.deepEqual([...s0.params], [1, 2]);
  assert.deepEqual([...s0.slots.v!], [...v0]);
  assert.notEqual(s1.params, s0.params);
  assert.throws(() => strategy.apply(s0, acc), StrategyError);
  assert.throws(() => strategy.fold(acc, upd([1, 1]), s0), StrategyError);
});

test('apply refuses to publish non-finite params', () => {
  const strategy = fedAvg({ serverLr: 1e38 });
  const state = strategy.init(f(0));
  assert.throws(() => step(strategy, [], [upd([1e10])], state), /non-finite/);
});

test('config errors are StrategyErrors', () => {
  assert.throws(() => fedAdam({ lr: -1 }), StrategyError);
  assert.throws(() => fedAdam({ lr: 0.1, beta1: 1 }), StrategyError);
  assert.throws(() => fedAvgM({ beta: 1 }), StrategyError);
  assert.throws(() => fedBuff({ bufferSize: 0 }), StrategyError);
  assert.throws(() => fedBuff({ bufferSize: 2.5 }), StrategyError);
  assert.throws(() => diloco({ momentum: -0.1 }), StrategyError);
});

test('server state checkpoints through safetensors and resumes identically', () => {
  const strategy = fedAdam({ lr: 0.1 });
  const updates = [upd([0.5, -0.25, 0.125], 2), upd([-0.5, 0.75, 0], 1)];
  const s1 = step(strategy, [1, 2, 3], updates);
  const record = new Map([
    ['params', tensor([3], s1.params)],
    ...Object.entries(s1.slots).map(([k, v]) => [`slots.${k}`, tensor([3], v)] as const),
  ]);
  const { tensors, metadata } = decodeSafetensors(encodeSafetensors(record, { version: String(s1.version) }));
  const restored: ServerState = {
    version: Number(metadata.version),
    params: tensors.get('params')!.data,
    slots: { m: tensors.get('slots.m')!.data, v: tensors.get('slots.v')!.data },
  };
  assert.deepEqual([...step(strategy, [], updates, restored).params], [...step(strategy, [], updates, s1).params]);
});
