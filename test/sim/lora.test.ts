// LoRA leases in the simulator. Full mode: devices train adapters of their tier's rank on the frozen base of a tiny
// char GPT with the real trainer, upload the adapters, and the server folds s A B on the targets (src/sim/lora.ts,
// the coordinator's core functions); held-out loss falls and fewer bytes go up than with full-model leases in the
// same config. Fast mode: the planner's LoRA tiers on a nominal model give each lease's bytes and memory, and the
// cost model's partial update leaves the frozen share of the objective where it was. Configs the simulator cannot
// honour are refused with the field named.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loraParameterCount, loraPlanShapes } from '../../src/core/lora.ts';
import { parameterLayout, parameterShapes } from '../../src/core/submodel/shapes.ts';
import { layoutOf, unflatten } from '../../src/core/tensor.ts';
import type { LoraPlan, TrainedAdapters } from '../../src/sim/backend.ts';
import { parseSimConfig, type SimConfigInput } from '../../src/sim/config.ts';
import { fullBackend } from '../../src/sim/full-backend.node.ts';
import { loadPhoneList } from '../../src/sim/population.node.ts';
import { runSimulation } from '../../src/sim/run.node.ts';

const phones = await loadPhoneList();
// A one-block char GPT small enough for a test on a shared machine (vocabulary: the task's 65 characters).
const TINY = { kind: 'gpt', vocabSize: 65, context: 16, width: 32, heads: 2, layers: 1, mlpRatio: 4 } as const;
const TARGETS = ['h.0.attn.c_attn.weight', 'h.0.attn.c_proj.weight', 'h.0.mlp.c_fc.weight', 'h.0.mlp.c_proj.weight'];
const SHAPES = parameterShapes(TINY);
// The run starts from a random init, not a pretrained base, so its LoRA leases adapt the (tied) token embedding too:
// with that frozen at random, adapters on the inner matrices alone barely move the loss (4.18 -> 4.01 in 12 versions).
const RUN_TARGETS = ['wte.weight', ...TARGETS];
const adapters = (rank: number, targets = TARGETS) => loraParameterCount(SHAPES, { rank, alpha: 2 * rank, targets });

function fullConfig(lora: boolean, lr: number): SimConfigInput {
  return {
    name: lora ? 'lora' : 'full', mode: 'full', seed: 5,
    task: { name: 'shakespeare', model: TINY },
    population: { devices: 24, referenceExamplesPerSecond: 2000 },
    aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 3 }, concurrency: 6 },
    recipe: { localSteps: 6, batchSize: 16, lr, optimizer: 'adamw' },
    // The same planner in both arms, with the steps pinned, so only what a lease trains and uploads differs: LoRA
    // tiers (rank 4 for devices with 4 GB for training, rank 2 for the rest) or the full model for everyone.
    planner: {
      submodels: 'none', leaseSeconds: 30, minSteps: 6, maxSteps: 6,
      ...(lora ? { lora: { targets: RUN_TARGETS, tiers: [{ rank: 4, minMemoryMiB: 4000 }, { rank: 2 }] } } : {}),
    },
    eval: { everyVersions: 4, batches: 4, batchSize: 64 },
    stop: { versions: 12 },
  };
}

describe('simulator, LoRA leases', () => {
  it('full mode: a LoRA lease uploads adapters, and the server adds s A B on the targets only', { timeout: 120_000 }, async () => {
    const config = parseSimConfig(fullConfig(true, 1e-2));
    const backend = await fullBackend({ task: config.task!, recipe: config.recipe, eval: config.eval, seed: 1 });
    try {
      const plan: LoraPlan = { kind: 'lora', rank: 2, alpha: 6, targets: TARGETS };
      const base = backend.initialParams();
      const out = await backend.train({ device: 0, shard: 0, base, plan, localSteps: 3, batchSize: 8, seed: 11 });
      assert.ok('adapters' in out, 'the upload is adapters, not a delta');
      const up = (out as TrainedAdapters).adapters;
      assert.equal(up.length, adapters(2), 'r (in + out) numbers per target');
      const { delta, coverage } = backend.loraToGlobal!(up, plan);
      // Independently of loraToDense: (alpha / r) A B with plain loops, in each target's slot; zero elsewhere.
      const global = parameterLayout(TINY);
      const a = unflatten(up, layoutOf(loraPlanShapes(SHAPES, plan)));
      let covered = 0;
      for (const slot of global.slots) {
        const target = TARGETS.includes(slot.name);
        if (target) covered += slot.size;
        const stem = slot.name.slice(0, -'.weight'.length);
        for (let i = 0; i < (target ? slot.shape[0]! : 0); i++) {
          for (let j = 0; j < slot.shape[1]!; j++) {
            let sum = 0;
            for (let k = 0; k < 2; k++) sum += a.get(`${stem}.lora_A`)!.data[i * 2 + k]! * a.get(`${stem}.lora_B`)!.data[k * slot.shape[1]! + j]!;
            const got = delta[slot.offset + i * slot.shape[1]! + j]!;
            assert.ok(Math.abs(got - 3 * sum) <= 1e-6 + 1e-4 * Math.abs(sum), `${slot.name}[${i}, ${j}]: ${got} vs ${3 * sum}`);
          }
        }
        if (!target) assert.ok(delta.subarray(slot.offset, slot.offset + slot.size).every((v) => v === 0), `${slot.name} is frozen`);
      }
      assert.ok(delta.some((v) => v !== 0), 'training moved the adapters (B started at zero)');
      let inCoverage = 0;
      for (let r = 0; r < coverage.ranges.length; r += 2) inCoverage += coverage.ranges[r + 1]! - coverage.ranges[r]!;
      assert.equal(inCoverage, covered, 'the coverage is exactly the targets');
    } finally {
      backend.dispose();
    }
  });

  it('full mode: a LoRA run on a tiny char GPT lowers held-out loss and uploads fewer bytes than full-model leases', { timeout: 300_000 }, async () => {
    // Each arm at a learning rate that suits it: adapters start at zero product and take larger steps (as in
    // scripts/experiments/lora.ts).
    const [lora, full] = [
      await runSimulation(parseSimConfig(fullConfig(true, 3e-2)), { phones }),
      await runSimulation(parseSimConfig(fullConfig(false, 3e-3)), { phones }),
    ];
    const r = lora.result;
    const plans = Object.keys(r.totals.plans);
    assert.ok(plans.length > 0 && plans.every((p) => p === 'lora r4' || p === 'lora r2'), `only LoRA leases: ${JSON.stringify(r.totals.plans)}`);
    assert.ok(plans.length === 2, `both tiers get leases: ${JSON.stringify(r.totals.plans)}`);
    assert.equal(r.versions.at(-1)!.version, 12, 'ran to the version limit');
    const first = r.versions[0]!.metrics['loss']!;
    const last = r.versions.at(-1)!.metrics['loss']!;
    assert.ok(last < first - 0.5, `held-out loss falls with LoRA updates: ${first.toFixed(3)} -> ${last.toFixed(3)}`);
    // Every folded update uploaded rank-2 or rank-4 adapters, 4 bytes each.
    const t = r.totals;
    const [low, high] = [adapters(2, RUN_TARGETS) * 4, adapters(4, RUN_TARGETS) * 4];
    assert.ok(t.bytesUp > t.completed * low && t.bytesUp < t.completed * high && (t.bytesUp - t.completed * low) % (high - low) === 0,
      `upload bytes are adapters of both ranks: ${t.bytesUp} for ${t.completed} updates`);
    const f = full.result.totals;
    assert.deepEqual(Object.keys(f.plans), ['full'], 'the other arm leases the full model');
    assert.equal(f.bytesUp, f.completed * r.model.parameters * 4, 'a full-model update uploads every parameter');
    assert.ok(t.bytesUp * 3 < f.bytesUp, `LoRA moves several times fewer upload bytes: ${t.bytesUp} vs ${f.bytesUp}`);
    // A LoRA device still downloads the whole base, as a full-model device does.
    assert.ok(r.versions.at(-1)!.bytesDown > 0 && r.versions.at(-1)!.bytesDown <= t.leases * r.model.downloadBytes);
  });

  it('fast mode: LoRA tiers on a nominal model give adapter bytes and memory, and leave the frozen share unmoved', async () => {
    // The task's 2x128 char GPT: its attention and MLP matrices are 393,216 of its 413,312 parameters (95%), so the
    // cost model's 16 coordinates are 15 targets and 1 frozen (embeddings, norms, biases).
    const model = { kind: 'gpt', vocabSize: 65, context: 64, width: 128, heads: 4, layers: 2, mlpRatio: 4 } as const;
    const base: SimConfigInput = {
      name: 'fast-lora', mode: 'fast', seed: 2,
      fast: { dimension: 16, shards: 20, model },
      population: { devices: 2000, referenceExamplesPerSecond: 200 },
      aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 10 }, concurrency: 100 },
      recipe: { localSteps: 20, batchSize: 16 },
      eval: { everyVersions: 20 },
      stop: { leases: 20_000 },
    };
    const shapes = parameterShapes(model);
    const targets = shapes.filter(([n]) => /^h\.\d+\.(attn|mlp)\.c_\w+\.weight$/.test(n)).map(([n]) => n);
    const count = (rank: number) => loraParameterCount(shapes, { rank, alpha: 2 * rank, targets });
    const [lora, full] = await Promise.all([
      runSimulation(parseSimConfig({ ...base, planner: { lora: { tiers: [{ rank: 8, minMemoryMiB: 2000 }, { rank: 2 }] } } }), { phones }),
      runSimulation(parseSimConfig(base), { phones }),
    ]);
    const r = lora.result;
    const t = r.totals;
    assert.equal(r.model.parameters, 413_312, 'bytes and memory are those of the nominal model');
    assert.ok((t.plans['lora r8'] ?? 0) > 0 && (t.plans['lora r2'] ?? 0) > 0 && Object.keys(t.plans).length === 2, `both tiers: ${JSON.stringify(t.plans)}`);
    assert.ok(t.bytesUp > t.completed * count(2) * 4 && t.bytesUp < t.completed * count(8) * 4, `adapters go up: ${t.bytesUp} for ${t.completed} updates`);
    assert.ok(t.bytesUp * 10 < t.completed * 413_312 * 4, 'over ten times fewer bytes than full updates');
    assert.equal(t.failures.oom, 0, 'the planner gives each device a rank that fits');
    const excess = (o: typeof lora) => o.result.versions.at(-1)!.metrics['excessLoss']!;
    assert.ok(Math.abs(r.versions[0]!.metrics['excessLoss']! - 0.5 * 16 * 9) < 1e-4, 'starts 3 from the optimum in every coordinate');
    // The frozen coordinate never moves: the excess stays at its 0.5 * 3^2, which full-model leases go below.
    assert.ok(Math.abs(excess(lora) - 4.5) < 0.5 && excess(lora) >= 4.5 - 1e-3, `LoRA trains the targets only: excess ${excess(lora)}`);
    assert.ok(excess(full) < 1, `full-model leases reach the optimum: excess ${excess(full)}`);
  });

  it('refuses LoRA configs the simulator cannot honour, naming the field', async () => {
    const fast: SimConfigInput = {
      mode: 'fast', population: { devices: 100, referenceExamplesPerSecond: 200 }, stop: { leases: 100 },
      planner: { lora: { tiers: [{ rank: 4 }] } },
    };
    assert.throws(() => parseSimConfig(fast), /fast\.model: LoRA tiers \(planner\.lora\) in fast mode need the nominal model/);
    assert.throws(() => parseSimConfig({ ...fast, planner: {} }), /planner: the planner cuts submodels from a real model/, 'no submodels in fast mode');
    const withModel = { ...fast, fast: { model: TINY } };
    assert.throws(() => parseSimConfig({ ...withModel, network: { codec: { values: 'fp16', topK: 0.1 } } }), /network\.codec: top-k codecs do not apply to LoRA uploads/);
    assert.throws(
      () => parseSimConfig({ ...withModel, aggregation: { mode: 'async', strategy: { kind: 'robust', bufferSize: 5, rule: { kind: 'median' } } } }),
      /aggregation\.strategy\.kind: robust rules take full-model updates only/,
    );
    // Tiers the model cannot have are refused before any lease, by the planner's own checks.
    await assert.rejects(runSimulation(parseSimConfig({ ...withModel, planner: { lora: { tiers: [{ rank: 64 }] } } }), { phones }),
      /planner\.lora\.tiers\.0\.rank: LoRA rank 64 exceeds min\(in, out\) = 32/);
    await assert.rejects(runSimulation(parseSimConfig({ ...withModel, planner: { lora: { targets: ['wte.weight', 'nope.weight'], tiers: [{ rank: 2 }] } } }), { phones }),
      /planner\.lora\.targets: LoRA target nope\.weight is not a parameter of the model/);
  });
});
