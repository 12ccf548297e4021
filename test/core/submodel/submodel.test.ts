// Exact extraction and merging of submodels (src/core/submodel): every plan's submodel is a buildable model whose
// shapes match what extract cuts, embed is the exact inverse of extract on the covered coordinates and touches nothing
// else, GPT heads keep their own q, k and v columns, rolling windows train every unit evenly, and coverage-aware
// averaging of overlapping slices matches a per-coordinate reference.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { coverageMask, coveredCount, forEachRange } from '../../../src/core/coverage.ts';
import { GptSpec, type ModelSpec } from '../../../src/core/model-spec.ts';
import type { Plan } from '../../../src/core/protocol/schemas.ts';
import { Rng } from '../../../src/core/rng.ts';
import { fedAvg } from '../../../src/core/strategies/fedavg.ts';
import { fedBuff } from '../../../src/core/strategies/fedbuff.ts';
import { flatten, numel, unflatten, type Tensor, type TensorRecord } from '../../../src/core/tensor.ts';
import { parameterCount, parameterLayout, parameterShapes } from '../../../src/core/submodel/shapes.ts';
import { embed, embedFlat, extract, planCoverage, submodelLayout, submodelSpec, SubmodelError } from '../../../src/core/submodel/submodel.ts';
import { keptWindows, widthStructure } from '../../../src/core/submodel/width.ts';
import { createModel } from '../../../src/train/models/registry.ts';

const gptSpec = GptSpec.parse({ kind: 'gpt', vocabSize: 11, context: 5, width: 16, heads: 4, layers: 3, mlpRatio: 2 });
const mlpSpec: ModelSpec = { kind: 'mlp', inputs: 7, hidden: [8, 12], classes: 3 };
const cnnSpec: ModelSpec = {
  kind: 'cnn', height: 6, width: 5, channels: 2,
  conv: [{ out: 4, kernel: 3, stride: 1 }, { out: 6, kernel: 3, stride: 2 }], hidden: [10], classes: 4,
};
const specs: ReadonlyArray<readonly [string, ModelSpec]> = [['gpt', gptSpec], ['mlp', mlpSpec], ['cnn', cnnSpec]];

const widthPlans: Plan[] = [
  { kind: 'width', ratio: 1, offset: 0 },
  { kind: 'width', ratio: 1, offset: 3 },
  { kind: 'width', ratio: 0.5, offset: 0 },
  { kind: 'width', ratio: 0.5, offset: 3 },
  { kind: 'width', ratio: 0.25, offset: 7, shift: 2 },
  { kind: 'width', ratio: 0.3, offset: 5, shift: 1 },
];
const plansFor = (spec: ModelSpec): Plan[] => [
  { kind: 'full' },
  ...widthPlans,
  ...(spec.kind === 'gpt' ? ([{ kind: 'depth', start: 0, count: 1 }, { kind: 'depth', start: 2, count: 2 }] as Plan[]) : []),
];
const label = (plan: Plan): string => JSON.stringify(plan);

function randomRecord(spec: ModelSpec, seed: number): Map<string, Tensor> {
  const rng = new Rng(seed);
  return new Map(parameterShapes(spec).map(([name, shape]) => [name, { shape, data: Float32Array.from({ length: numel(shape) }, () => rng.normal()) }]));
}

function mapRecord(record: TensorRecord, fn: (v: number, i: number) => number): Map<string, Tensor> {
  return new Map([...record].map(([name, t]) => [name, { shape: t.shape, data: t.data.map(fn) }]));
}

function shapesOf(record: TensorRecord): Record<string, number[]> {
  return Object.fromEntries([...record].map(([n, t]) => [n, [...t.shape]]).sort(([a], [b]) => (String(a) < String(b) ? -1 : 1)));
}

describe('parameter shapes in the core', () => {
  for (const [kind, spec] of specs) {
    it(`agree with the train layer's ${kind}`, () => {
      assert.deepEqual(
        parameterShapes(spec).map(([n, s]) => [n, [...s]]),
        createModel(spec).shapes.map(([n, s]) => [n, [...s]]),
        `${kind}: core and train layer disagree on parameter names or shapes`,
      );
    });
  }
});

describe('extract and embed', () => {
  for (const [kind, spec] of specs) {
    const global = randomRecord(spec, 1);
    const layout = parameterLayout(spec);
    const globalFlat = flatten(global, layout);
    for (const plan of plansFor(spec)) {
      it(`${kind} ${label(plan)}: the submodel spec builds and its shapes are extract's`, () => {
        const sub = extract(global, spec, plan);
        const model = createModel(submodelSpec(spec, plan));
        assert.deepEqual(
          shapesOf(sub),
          shapesOf(new Map(model.shapes.map(([n, s]) => [n, { shape: s, data: new Float32Array(0) }]))),
          'extracted tensors must be exactly the submodel\'s parameters',
        );
        assert.equal(coveredCount(planCoverage(spec, plan)), parameterCount(submodelSpec(spec, plan)), 'coverage counts each submodel coordinate once');
      });

      it(`${kind} ${label(plan)}: a zero delta embeds to a zero delta with the plan's coverage`, () => {
        const zero = mapRecord(extract(global, spec, plan), () => 0);
        const { delta, coverage } = embed(zero, spec, plan);
        assert.equal(delta.length, layout.size, 'the delta is in the global layout');
        assert.ok(delta.every((v) => v === 0), 'no-op training must leave the global model unchanged');
        assert.deepEqual([...coverage.ranges], [...planCoverage(spec, plan).ranges], 'embed reports the plan coverage');
        if (plan.kind === 'full') assert.equal(coveredCount(coverage), layout.size, 'a full plan covers everything');
      });

      it(`${kind} ${label(plan)}: a perturbation changes exactly the covered coordinates by exactly itself`, () => {
        const sub = extract(global, spec, plan);
        const rng = new Rng(7);
        // Nonzero everywhere, so "changed" and "covered" must coincide.
        const perturb = mapRecord(sub, () => (rng.next() + 0.5) * (rng.next() < 0.5 ? -1 : 1));
        const { delta, coverage } = embed(perturb, spec, plan);
        const mask = coverageMask(coverage);
        const updated = globalFlat.slice();
        forEachRange(coverage, (s, e) => {
          for (let i = s; i < e; i++) updated[i] = updated[i]! + delta[i]!;
        });
        for (let i = 0; i < updated.length; i++) {
          if (mask[i] === 0) {
            assert.equal(updated[i], globalFlat[i], `uncovered coordinate ${i} changed`);
            assert.equal(delta[i], 0, `delta is nonzero outside the coverage at ${i}`);
          } else {
            assert.notEqual(updated[i], globalFlat[i], `covered coordinate ${i} did not change`);
          }
        }
        // The updated global model's submodel is the old submodel plus the perturbation, bit for bit.
        const after = extract(unflatten(updated, layout), spec, plan);
        for (const [name, t] of after) {
          const before = sub.get(name)!.data;
          const p = perturb.get(name)!.data;
          for (let i = 0; i < t.data.length; i++) {
            assert.equal(t.data[i], Math.fround(before[i]! + p[i]!), `${name}[${i}] is not old + perturbation`);
          }
        }
        const flat = embedFlat(flatten(perturb, submodelLayout(spec, plan)), spec, plan);
        assert.deepEqual(flat.delta, delta, 'embedFlat of the flat submodel delta is embed');
        assert.deepEqual(flat.coverage, coverage, 'with the same coverage');
        // And embedding the extracted parameters reproduces the global parameters on the covered coordinates.
        const back = embed(sub, spec, plan).delta;
        for (let i = 0; i < back.length; i++) {
          assert.equal(back[i], mask[i] === 1 ? globalFlat[i] : 0, `embed(extract(p)) differs from p at ${i}`);
        }
      });
    }
  }

  it('refuses a submodel record with a missing, extra or misshapen tensor, writing nothing', () => {
    const plan: Plan = { kind: 'width', ratio: 0.5, offset: 1 };
    const sub = extract(randomRecord(mlpSpec, 2), mlpSpec, plan);
    const missing = new Map(sub);
    missing.delete('fc.1.bias');
    assert.throws(() => embed(missing, mlpSpec, plan), SubmodelError, 'a missing tensor is refused');
    const extra = new Map(sub).set('fc.9.bias', { shape: [1], data: new Float32Array(1) });
    assert.throws(() => embed(extra, mlpSpec, plan), SubmodelError, 'an extra tensor is refused');
    const wrong = new Map(sub).set('fc.0.weight', { shape: [7, 8], data: new Float32Array(56) });
    assert.throws(() => embed(wrong, mlpSpec, plan), /fc\.0\.weight has shape \[7, 8\], the plan says \[7, 4\]/, 'a misshapen tensor is refused');
    assert.throws(() => submodelSpec(mlpSpec, { kind: 'depth', start: 0, count: 1 }), /depth plans need a transformer/, 'an MLP has no blocks');
    assert.throws(() => extract(randomRecord(gptSpec, 1), gptSpec, { kind: 'depth', start: 0, count: 4 }), /1 to 3 blocks/, 'depth beyond the model');
  });
});

describe('GPT width slices keep whole heads', () => {
  // C = 16, H = 4, D = 4; global values are their own flat index within each tensor so the kept ones can be read off.
  const indexRecord = new Map(parameterShapes(gptSpec).map(([name, shape]) => [name, { shape, data: Float32Array.from({ length: numel(shape) }, (_, i) => i) }]));
  const range = (start: number, n: number): number[] => Array.from({ length: n }, (_, i) => start + i);

  it('keeps ceil(ratio * H) heads and mlpRatio * D inner units per head', () => {
    assert.deepEqual(submodelSpec(gptSpec, { kind: 'width', ratio: 0.5, offset: 0 }), { ...gptSpec, width: 8, heads: 2 }, 'half of 4 heads');
    assert.deepEqual(submodelSpec(gptSpec, { kind: 'width', ratio: 0.3, offset: 0 }), { ...gptSpec, width: 8, heads: 2 }, 'ceil(0.3 * 4) = 2 heads');
    assert.deepEqual(submodelSpec(gptSpec, { kind: 'width', ratio: 0.125, offset: 0 }), { ...gptSpec, width: 4, heads: 1 }, 'at least one head');
  });

  it('a kept head keeps its q, k and v columns and its c_proj rows, wrapping around', () => {
    // Heads 3 and 0 (offset 3 wraps), residual blocks likewise.
    const sub = extract(indexRecord, gptSpec, { kind: 'width', ratio: 0.5, offset: 3 });
    const heads = [...range(12, 4), ...range(0, 4)];
    const qkv = [0, 16, 32].flatMap((part) => heads.map((c) => part + c));
    assert.deepEqual([...sub.get('h.1.attn.c_attn.bias')!.data], qkv, 'q|k|v columns of heads 3 and 0');
    assert.deepEqual([...sub.get('h.0.ln_1.weight')!.data], heads, 'LayerNorm follows the residual channels');
    const cAttn = sub.get('h.0.attn.c_attn.weight')!;
    assert.deepEqual(cAttn.shape, [8, 24], 'c_attn is [C_sub, 3 C_sub]');
    assert.deepEqual([...cAttn.data.subarray(0, 24)], qkv.map((c) => 12 * 48 + c), 'row 0 of the submodel is global row 12');
    const proj = sub.get('h.2.attn.c_proj.weight')!;
    assert.deepEqual([...proj.data.subarray(8, 16)], heads.map((c) => 13 * 16 + c), 'c_proj row 1 is head 3\'s second channel');
    const fc = sub.get('h.0.mlp.c_fc.bias')!;
    assert.deepEqual([...fc.data], [...range(24, 8), ...range(0, 8)], 'MLP inner units in blocks of mlpRatio * D = 8 per head');
    const wte = sub.get('wte.weight')!;
    assert.deepEqual(wte.shape, [11, 8], 'the vocabulary stays whole');
    assert.deepEqual([...wte.data.subarray(8, 16)], heads.map((c) => 16 + c), 'embeddings are cut on the width only');
  });

  it('shift moves the heads and the MLP against the residual stream', () => {
    const sub = extract(indexRecord, gptSpec, { kind: 'width', ratio: 0.25, offset: 1, shift: 2 });
    assert.deepEqual([...sub.get('ln_f.bias')!.data], range(4, 4), 'residual block 1');
    assert.deepEqual([...sub.get('h.0.attn.c_attn.bias')!.data], [12, 28, 44].flatMap((c) => range(c, 4)), 'head 3 = 1 + 2');
    assert.deepEqual([...sub.get('h.0.mlp.c_fc.bias')!.data], range(24, 8), 'mlp block 3');
  });

  it('a depth plan keeps blocks in model order and renumbers them', () => {
    const sub = extract(indexRecord, gptSpec, { kind: 'depth', start: 2, count: 2 });
    assert.deepEqual([...sub.keys()].filter((n) => n.startsWith('h.')).map((n) => n.split('.')[1]).filter((v, i, a) => a.indexOf(v) === i), ['0', '1'], 'two blocks');
    const coverage = planCoverage(gptSpec, { kind: 'depth', start: 2, count: 2 });
    const layout = parameterLayout(gptSpec);
    const mask = coverageMask(coverage);
    for (const slot of layout.slots) {
      const covered = mask[slot.offset] === 1;
      assert.equal(covered, !slot.name.startsWith('h.1.'), `${slot.name}: blocks 2 and 0 and the shared tensors are covered, block 1 is not`);
    }
  });
});

describe('rolling windows', () => {
  it('cover every unit of every family exactly evenly over n / stride rounds', () => {
    for (const [spec, ratio, stride] of [[mlpSpec, 0.25, 1], [mlpSpec, 0.5, 2], [gptSpec, 0.5, 1], [gptSpec, 0.25, 1], [cnnSpec, 0.5, 1]] as const) {
      const structure = widthStructure(spec);
      for (const [f, family] of structure.families.entries()) {
        const counts = new Array<number>(family.size).fill(0);
        const rounds = family.size / stride;
        for (let round = 0; round < rounds; round++) {
          for (const u of keptWindows(structure, { ratio, offset: round * stride })[f]!) counts[u]! += 1;
        }
        const keep = Math.ceil(ratio * family.size);
        assert.deepEqual(counts, new Array<number>(family.size).fill((keep * rounds) / family.size), `${spec.kind} ${family.name}: uneven at ratio ${ratio}, stride ${stride}`);
      }
    }
  });

  it('a static slice never covers the tail units', () => {
    const mask = coverageMask(planCoverage(mlpSpec, { kind: 'width', ratio: 0.5, offset: 0 }));
    const slot = parameterLayout(mlpSpec).slots.find((s) => s.name === 'fc.0.bias')!;
    assert.deepEqual([...mask.subarray(slot.offset, slot.offset + slot.size)], [1, 1, 1, 1, 0, 0, 0, 0], 'HeteroFL keeps the first half');
  });
});

describe('coverage-aware averaging of overlapping slices', () => {
  // Two devices train half-width MLPs whose windows overlap (units 0-3 and 2-5 of hidden.0, 0-5 and 2-7 of hidden.1).
  const spec = mlpSpec;
  const layout = parameterLayout(spec);
  const global = flatten(randomRecord(spec, 3), layout);
  const a = { plan: { kind: 'width', ratio: 0.5, offset: 0 } as Plan, n: 30 };
  const b = { plan: { kind: 'width', ratio: 0.5, offset: 2 } as Plan, n: 10 };
  const deltaOf = (plan: Plan, seed: number) => {
    const rng = new Rng(seed);
    return embed(mapRecord(extract(unflatten(global, layout), spec, plan), () => rng.normal()), spec, plan);
  };
  const da = deltaOf(a.plan, 11);
  const db = deltaOf(b.plan, 12);
  const ma = coverageMask(da.coverage);
  const mb = coverageMask(db.coverage);

  it('FedAvg weighs each coordinate by the examples of the updates that covered it', () => {
    const strategy = fedAvg();
    const state = strategy.init(global);
    const acc = strategy.begin(state);
    strategy.fold(acc, { ...da, numExamples: a.n }, state);
    strategy.fold(acc, { ...db, numExamples: b.n }, state);
    const next = strategy.apply(state, acc);
    let both = 0;
    for (let i = 0; i < global.length; i++) {
      const wa = ma[i]! * a.n;
      const wb = mb[i]! * b.n;
      const expected = wa + wb === 0 ? global[i]! : global[i]! + (wa * da.delta[i]! + wb * db.delta[i]!) / (wa + wb);
      if (wa > 0 && wb > 0) both++;
      assert.ok(Math.abs(next.params[i]! - expected) <= 1e-6 * (1 + Math.abs(expected)), `coordinate ${i}: ${next.params[i]} vs ${expected}`);
    }
    assert.ok(both > 0 && both < global.length, `the slices must overlap partly (${both} shared coordinates)`);
  });

  it('FedBuff averages the covering updates per coordinate, staleness-weighted', () => {
    const strategy = fedBuff({ bufferSize: 2 });
    const s0 = strategy.init(global);
    const state = { ...s0, version: 3 };
    const acc = strategy.begin(state);
    // a is 3 versions stale: weight 1 / sqrt(1 + 3) = 0.5; b is fresh: weight 1; mass 1 each (normalize: 'count').
    strategy.fold(acc, { ...da, numExamples: a.n, baseVersion: 0 }, state);
    strategy.fold(acc, { ...db, numExamples: b.n, baseVersion: 3 }, state);
    assert.ok(strategy.ready(acc), 'K = 2 updates fire the step');
    const next = strategy.apply(state, acc);
    for (let i = 0; i < global.length; i++) {
      const count = ma[i]! + mb[i]!;
      const expected = count === 0 ? global[i]! : global[i]! + (0.5 * ma[i]! * da.delta[i]! + mb[i]! * db.delta[i]!) / count;
      assert.ok(Math.abs(next.params[i]! - expected) <= 1e-6 * (1 + Math.abs(expected)), `coordinate ${i}: ${next.params[i]} vs ${expected}`);
    }
  });
});
