// "TQD3" seed chains (weights-delta.ts; seed steps in src/core/zo/seed-step.ts, FedKSeed's downlink): a device
// holding version u rebuilds version v from the seed steps u+1..v, and the file it encodes is byte for byte the one
// the coordinator writes (encodeSafetensors of the strategy's params, metadata {version}), computed here by running
// the strategy directly on the flat vector. Inconsistent chains (steps out of order, a base of another version or
// size, too much replay work) are CodecErrors.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { CodecError, type CodecErrorReason } from '../../../src/core/codecs/errors.ts';
import { applyWeightsDelta, decodeSeedChain, seedChainSize, seedChainWeightsDelta } from '../../../src/core/codecs/weights-delta.ts';
import { Rng } from '../../../src/core/rng.ts';
import { encodeSafetensors } from '../../../src/core/safetensors.ts';
import { createStrategy, StrategyConfig } from '../../../src/core/strategies/config.ts';
import { flatten, layoutOf, unflatten } from '../../../src/core/tensor.ts';
import { replayDelta } from '../../../src/core/zo/mezo.ts';
import { encodeSeedStep, MAX_SEED_CHAIN_ENTRIES, type SeedStep, type SeedStepUpdate } from '../../../src/core/zo/seed-step.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
// Names out of order on purpose: the file and the flat layout both sort them.
const LAYOUT = layoutOf([['z.bias', [6]], ['a.weight', [6, 9]], ['m.weight', [9, 3]]]);
const N = LAYOUT.size;
const STRATEGY = StrategyConfig.parse({ kind: 'fedbuff', bufferSize: 2 });
const POOL = { poolSize: 300, poolSeed: 2 };

const r = new Rng(4);
const w3 = Float32Array.from({ length: N }, () => r.normal());
const fileOf = (params: Float32Array, version: number) => encodeSafetensors(unflatten(params, LAYOUT), { version: String(version) });

function upload(seed: number, baseVersion: number): SeedStepUpdate {
  const q = new Rng(seed);
  return { numExamples: 4, localSteps: 3, baseVersion, lr: 0.01, ...POOL, pairs: Array.from({ length: 3 }, () => ({ index: q.int(300), grad: Math.fround(q.normal()) })) };
}
const steps: SeedStep[] = [
  { version: 4, size: N, strategy: STRATEGY, updates: [upload(1, 3), upload(2, 2)] },
  { version: 5, size: N, strategy: STRATEGY, updates: [upload(3, 4), upload(4, 3)] },
];

/** What the coordinator commits: the strategy folding the replayed deltas, version by version. */
function coordinatorParams(w: Float32Array, upTo: number): Float32Array {
  const strategy = createStrategy(STRATEGY);
  let state = { version: 3, params: w, slots: {} };
  for (const step of steps.slice(0, upTo)) {
    const acc = strategy.begin(state);
    for (const u of step.updates) {
      strategy.fold(acc, { delta: replayDelta(N, u.pairs, u.lr, u), numExamples: u.numExamples, localSteps: u.localSteps, baseVersion: u.baseVersion }, state);
    }
    state = strategy.apply(state, acc);
  }
  return state.params;
}

const throwsCodec = (fn: () => unknown, reason: CodecErrorReason, what: string, re?: RegExp) =>
  assert.throws(fn, (e: unknown) => e instanceof CodecError && e.reason === reason && (re === undefined || re.test(e.message)), what);

describe('seed chains', () => {
  const base = fileOf(w3, 3);
  const encoded = steps.map(encodeSeedStep);

  it('rebuild the coordinator\'s file byte for byte, one step or two', () => {
    for (const m of [1, 2]) {
      const chain = seedChainWeightsDelta(3 + m, encoded.slice(0, m));
      assert.equal(chain.length, seedChainSize(encoded.slice(0, m).map((e) => e.length)));
      const rebuilt = applyWeightsDelta(base, chain);
      const expected = fileOf(coordinatorParams(w3, m), 3 + m);
      assert.equal(sha(rebuilt), sha(expected), `${m} step(s)`);
      assert.notEqual(sha(rebuilt), sha(fileOf(w3, 3 + m)), 'and the params moved');
    }
    // From version 4, the chain of version 5's step alone.
    const v4 = fileOf(coordinatorParams(w3, 1), 4);
    assert.equal(sha(applyWeightsDelta(v4, seedChainWeightsDelta(5, encoded.slice(1)))), sha(fileOf(coordinatorParams(w3, 2), 5)));
    assert.deepEqual(decodeSeedChain(seedChainWeightsDelta(5, encoded)).steps, steps);
  });

  it('an inconsistent chain is a CodecError', () => {
    throwsCodec(() => applyWeightsDelta(base, seedChainWeightsDelta(5, [encoded[1]!, encoded[0]!])), 'mismatch', 'steps out of order', /makes version 5, expected 4/);
    throwsCodec(() => applyWeightsDelta(base, seedChainWeightsDelta(6, encoded)), 'mismatch', 'a chain ending elsewhere', /expected 5/);
    throwsCodec(() => applyWeightsDelta(fileOf(w3, 2), seedChainWeightsDelta(5, encoded)), 'mismatch', 'a base of another version', /the base is version 2/);
    const other = encodeSafetensors(new Map([['x', { shape: [N + 1], data: new Float32Array(N + 1) }]]), { version: '3' });
    throwsCodec(() => applyWeightsDelta(other, seedChainWeightsDelta(5, encoded)), 'mismatch', 'a base of another size', /parameters/);
    throwsCodec(() => applyWeightsDelta(base, seedChainWeightsDelta(5, encoded).subarray(0, 30)), 'truncated', 'truncated');
    const tail = new Uint8Array(seedChainWeightsDelta(5, encoded).length + 2);
    tail.set(seedChainWeightsDelta(5, encoded));
    throwsCodec(() => applyWeightsDelta(base, tail), 'trailing_bytes', 'trailing bytes');
    const empty = seedChainWeightsDelta(5, []);
    throwsCodec(() => applyWeightsDelta(base, empty), 'bad_header', 'no steps');
    throwsCodec(() => applyWeightsDelta(new Uint8Array(16), seedChainWeightsDelta(5, encoded)), 'bad_header', 'a base that is not safetensors');
  });

  it('a chain whose replay would exceed the work limit is refused before any replay', () => {
    // One upload of p distinct seeds costs p passes over the parameters; a model claimed large enough passes the limit.
    const size = Math.ceil(MAX_SEED_CHAIN_ENTRIES / 3) + 1;
    const huge = encodeSeedStep({ version: 4, size, strategy: STRATEGY, updates: [{ ...upload(9, 3), pairs: [{ index: 1, grad: 1 }, { index: 2, grad: 1 }, { index: 3, grad: 1 }] }] });
    throwsCodec(() => applyWeightsDelta(base, seedChainWeightsDelta(4, [huge])), 'mismatch', 'over the limit', /over the limit/);
  });
});
