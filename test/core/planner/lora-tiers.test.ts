// LoRA leases from the planner: heterogeneous ranks by device tier (memory threshold and the memory of the frozen
// model plus adapters), the plan's fields, upload/download estimates, and config validation with the offending field
// named (targets that are not weight matrices of the model, ranks above min(in, out)).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultLoraTargets, loraParameterCount, loraPlanShapes, loraToDense, LoraError, loraDelta, mergeLora, stackLora } from '../../../src/core/lora.ts';
import type { GptSpec } from '../../../src/core/model-spec.ts';
import { trainingMemory } from '../../../src/core/planner/cost.ts';
import { PlannerError } from '../../../src/core/planner/errors.ts';
import { initialPlannerState, plan, tierFor } from '../../../src/core/planner/planner.ts';
import { PlannerSettings, plannerConfig } from '../../../src/core/planner/settings.ts';
import { Plan, Recipe } from '../../../src/core/protocol/schemas.ts';
import { parameterCount, parameterLayout, parameterShapes } from '../../../src/core/submodel/shapes.ts';
import { Rng } from '../../../src/core/rng.ts';
import { unflatten, type Tensor } from '../../../src/core/tensor.ts';

// A char GPT of 25M parameters (AdamW, batch 8: ~1 GiB to train fully).
const spec: GptSpec = { kind: 'gpt', vocabSize: 65, context: 128, width: 512, heads: 8, layers: 8, mlpRatio: 4 };
const recipe = Recipe.parse({ batchSize: 8 });
const settings = (lora: unknown) => PlannerSettings.parse({ leaseSeconds: 60, lora });
const isPlannerError = (message: RegExp) => (e: unknown) => e instanceof PlannerError && e.code === 'invalid-config' && message.test(e.message);

describe('LoRA tiers in the planner', () => {
  const config = plannerConfig(settings({ tiers: [{ rank: 2 }, { rank: 16, minMemoryMiB: 4096 }, { rank: 8, minMemoryMiB: 1024, alpha: 8 }] }), spec, recipe);

  it('gives each device the largest rank it qualifies for, on the default GPT targets', () => {
    const targets = defaultLoraTargets(parameterShapes(spec), true);
    assert.equal(targets.length, 4 * 8, 'c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj of 8 blocks');
    const laptop = plan({ memoryMiB: 8192, examplesPerSecond: 40 }, config, initialPlannerState);
    assert.deepEqual(laptop.plan, { kind: 'lora', rank: 16, alpha: 32, targets }, '8 GiB: rank 16, alpha defaults to 2r');
    assert.deepEqual(Plan.parse(laptop.plan), laptop.plan, 'the plan is a valid wire Plan');
    const mid = plan({ memoryMiB: 2048, examplesPerSecond: 10 }, config, initialPlannerState).plan;
    assert.ok(mid.kind === 'lora' && mid.rank === 8 && mid.alpha === 8, `2 GiB: rank 8 with its alpha (${JSON.stringify(mid).slice(0, 60)})`);
    const phone = plan({ memoryMiB: 700, examplesPerSecond: 2 }, config, initialPlannerState).plan;
    assert.ok(phone.kind === 'lora' && phone.rank === 2, '700 MiB: rank 2 (the frozen base has no gradient or moments)');
    assert.ok(trainingMemory(spec, 8).totalMiB > 700, 'the phone could not train the full model');
  });

  it('estimates upload as the adapters and download as the whole base', () => {
    const p = plan({ memoryMiB: 8192, examplesPerSecond: 40, uplinkMbps: 8, downlinkMbps: 8 }, config, initialPlannerState);
    const adapters = loraParameterCount(parameterShapes(spec), { rank: 16, alpha: 32, targets: defaultLoraTargets(parameterShapes(spec), true) });
    // r (in + out) per target: c_attn 512x1536, c_proj 512x512, c_fc 512x2048, mlp c_proj 2048x512, 8 blocks.
    assert.equal(adapters, 16 * 8 * ((512 + 1536) + (512 + 512) + (512 + 2048) + (2048 + 512)), 'adapter count');
    assert.equal(p.estimate.params, adapters, 'the estimate counts the trained parameters');
    assert.ok(Math.abs(p.estimate.uploadSeconds - (adapters * 4 * 8) / 8e6) < 1e-9, 'upload: the adapters');
    assert.ok(Math.abs(p.estimate.downloadSeconds - (parameterCount(spec) * 4 * 8) / 8e6) < 1e-9, 'download: the whole base');
    assert.ok(p.estimate.memoryMiB < trainingMemory(spec, 8).totalMiB, 'a frozen base needs less memory than full training');
  });

  it('refuses a device below every tier, saying what the least tier needs', () => {
    assert.throws(() => tierFor(100, config), (e: unknown) => e instanceof PlannerError && e.code === 'device-too-small' && /qualifies for no LoRA tier/.test(e.message));
  });

  it('validates targets and ranks against the model, naming the field', () => {
    assert.throws(() => plannerConfig(settings({ targets: ['h.0.attn.c_attn.weight', 'h.9.mlp.c_fc.weight'], tiers: [{ rank: 4 }] }), spec, recipe),
      isPlannerError(/^planner\.lora\.targets: LoRA target h\.9\.mlp\.c_fc\.weight is not a parameter of the model$/), 'a target the model lacks');
    assert.throws(() => plannerConfig(settings({ targets: ['h.0.ln_1.weight'], tiers: [{ rank: 4 }] }), spec, recipe),
      isPlannerError(/planner\.lora\.targets: .*not a weight matrix/), 'a 1-D parameter');
    assert.throws(() => plannerConfig(settings({ tiers: [{ rank: 4 }, { rank: 513 }] }), spec, recipe),
      isPlannerError(/^planner\.lora\.tiers\.1\.rank: LoRA rank 513 exceeds min\(in, out\) = 512 of h\.0\.attn\.c_attn\.weight \[512, 1536\]$/), 'rank above min(in, out)');
    assert.equal(PlannerSettings.safeParse({ lora: { tiers: [{ rank: 0 }] } }).success, false, 'rank 0 is refused by the schema');
    assert.equal(PlannerSettings.safeParse({ lora: { tiers: [] } }).success, false, 'at least one tier');
    assert.throws(() => plannerConfig(settings({ tiers: [{ rank: 2 }] }), spec, Recipe.parse({ zo: { epsilon: 1e-3, poolSize: 16, poolSeed: 1 } })),
      isPlannerError(/zeroth-order/), 'zeroth-order recipes cannot train adapters');
    assert.throws(() => plannerConfig(settings({ tiers: [{ rank: 2 }, { rank: 3 }] }), { kind: 'mlp', inputs: 4, hidden: [], classes: 2 }, recipe),
      isPlannerError(/^planner\.lora\.tiers\.1\.rank: LoRA rank 3 exceeds min\(in, out\) = 2 of fc\.0\.weight \[4, 2\]$/), 'an MLP: every 2-D weight is a default target');
  });
});

describe('LoRA plan layouts and dense products', () => {
  const small: GptSpec = { kind: 'gpt', vocabSize: 11, context: 4, width: 8, heads: 2, layers: 1, mlpRatio: 2 };
  const shapes = parameterShapes(small);
  const targets = ['h.0.attn.c_attn.weight', 'h.0.mlp.c_fc.weight'];

  it('names A [in, r] and B [r, out] per target and refuses bad plans with LoraError', () => {
    assert.deepEqual(loraPlanShapes(shapes, { rank: 3, alpha: 6, targets }), [
      ['h.0.attn.c_attn.lora_A', [8, 3]], ['h.0.attn.c_attn.lora_B', [3, 24]],
      ['h.0.mlp.c_fc.lora_A', [8, 3]], ['h.0.mlp.c_fc.lora_B', [3, 16]],
    ]);
    assert.throws(() => loraPlanShapes(shapes, { rank: 9, alpha: 1, targets }), LoraError, 'rank 9 > 8');
    assert.throws(() => loraPlanShapes(shapes, { rank: 2, alpha: 1, targets: [...targets, targets[0]!] }), /listed twice/);
    assert.throws(() => loraPlanShapes(shapes, { rank: 2, alpha: 0, targets }), /alpha/);
  });

  it('loraToDense writes s A B into exactly the targets\' slots, equal to FLoRA stacking + merge', () => {
    const layout = parameterLayout(small);
    const rng = new Rng(3);
    const adapters = (rank: number) => new Map<string, Tensor>(loraPlanShapes(shapes, { rank, alpha: 1, targets }).map(([n, s]) => [n, {
      shape: s, data: Float32Array.from({ length: s[0]! * s[1]! }, () => rng.normal()),
    }]));
    const a2 = adapters(2);
    const dense = loraToDense(a2, layout.slots, layout.size, { rank: 2, alpha: 3, targets });
    const byName = unflatten(dense.delta, layout);
    for (const [name, t] of byName) {
      if (targets.includes(name)) {
        const want = loraDelta(a2, name, 1.5);
        assert.ok(t.data.every((v, i) => Math.abs(v - want.data[i]!) < 1e-6), `${name} holds (3/2) A B`);
      } else assert.ok(t.data.every((v) => v === 0), `${name} is untouched`);
    }
    const covered = dense.ranges.reduce((n, [s, e]) => n + e - s, 0);
    assert.equal(covered, 8 * 24 + 8 * 16, 'coverage is exactly the targets');
    // The same product via FLoRA stacking of one contribution, merged into a zero base.
    const zero = new Map([...unflatten(new Float32Array(layout.size), layout)]);
    const merged = mergeLora(zero, stackLora([{ adapters: a2, weight: 1, scale: 1.5 }]));
    for (const t of targets) assert.ok(merged.get(t)!.data.every((v, i) => Math.abs(v - byName.get(t)!.data[i]!) < 1e-6), `${t}: same as stacking`);
  });
});
