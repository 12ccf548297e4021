// The simulator in full mode: real local training (a tiny MLP) on real Dirichlet-skewed Fashion-MNIST shards, real
// held-out evaluation, and the real FedBuff strategy. The outcome is checked: held-out loss falls, and the weights the
// strategy applied to stale updates are the polynomial staleness function of their recorded staleness.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSimConfig } from '../../src/sim/config.ts';
import { loadPhoneList } from '../../src/sim/population.node.ts';
import { runSimulation } from '../../src/sim/run.node.ts';

describe('simulator, full mode', () => {
  it('trains a tiny MLP on Fashion-MNIST shards: loss falls, staleness weights are applied, reproducibly', { timeout: 120_000 }, async () => {
    const a = 1;
    const config = parseSimConfig({
      name: 'full-test', mode: 'full', seed: 3,
      task: { name: 'fashion-mlp', model: { kind: 'mlp', inputs: 784, hidden: [32], classes: 10 }, shards: 30, alpha: 0.5 },
      population: { devices: 30, referenceExamplesPerSecond: 3000 },
      aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 3, staleness: { kind: 'polynomial', a } }, concurrency: 9 },
      recipe: { localSteps: 5, batchSize: 32, lr: 0.005, optimizer: 'adamw' },
      eval: { everyVersions: 2, batches: 5, batchSize: 100 },
      stop: { versions: 10 },
    });
    const phones = await loadPhoneList();
    const { result: r } = await runSimulation(config, { phones });

    assert.equal(r.versions.at(-1)!.version, 10, 'ran to the version limit');
    assert.deepEqual(r.versions.map((v) => v.version), [0, 2, 4, 6, 8, 10], 'evaluated every second version and the first');
    const first = r.versions[0]!.metrics['loss']!;
    const last = r.versions.at(-1)!.metrics['loss']!;
    assert.ok(last < first - 0.3, `held-out loss falls: ${first.toFixed(3)} -> ${last.toFixed(3)}`);
    assert.ok(r.versions.at(-1)!.metrics['accuracy']! > 0.3, 'accuracy well above chance (0.1)');

    const stale = r.folds.filter((f) => f.staleness > 0);
    assert.equal(r.folds.length, r.totals.completed, 'every fold recorded');
    assert.ok(stale.length >= 5, `concurrency 9 over K = 3 makes stale updates: ${r.folds.map((f) => f.staleness).join(',')}`);
    for (const f of r.folds) {
      const expected = (1 + f.staleness) ** -a;
      assert.ok(f.weight !== null && Math.abs(f.weight - expected) <= 1e-4 * expected,
        `fold at staleness ${f.staleness}: applied weight ${f.weight}, expected ${expected}`);
      assert.equal(f.mass, 1, 'FedBuff divides by the update count (normalize: count)');
    }
    assert.ok(r.totals.bytesUp > 0 && r.versions.at(-1)!.bytesDown > 0, 'bytes are counted');

    // Real training is seeded per lease too: the same config reproduces every evaluated number.
    const again = await runSimulation(config, { phones });
    assert.deepEqual(again.result.versions, r.versions, 'the same seed gives the same versions and metrics');
    assert.deepEqual(again.result.folds, r.folds, 'and the same folds');
  });

  it('runs the real planner: devices too small for the model train width submodels, the tiniest are refused', { timeout: 120_000 }, async () => {
    const config = parseSimConfig({
      name: 'planner-test', mode: 'full', seed: 3,
      task: { name: 'fashion-mlp', model: { kind: 'mlp', inputs: 784, hidden: [64], classes: 10 }, shards: 30, alpha: 0.5 },
      // Phones get 0.03% of their RAM (0.15-3.7 MiB): the full model needs about 1.3 MiB, its 1/8 width about 0.3.
      population: { devices: 30, referenceExamplesPerSecond: 3000, tiers: [{ kind: 'phone', memoryFraction: 0.0003 }, { kind: 'desktop', share: 0.1 }] },
      aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 3 }, concurrency: 9 },
      recipe: { localSteps: 5, batchSize: 32, lr: 0.005, optimizer: 'adamw' },
      planner: { submodels: 'rolling', leaseSeconds: 5, maxSteps: 10 },
      eval: { everyVersions: 4, batches: 5, batchSize: 100 },
      stop: { versions: 12 },
    });
    const { result: r, devices } = await runSimulation(config, { phones: await loadPhoneList() });
    const plans = r.totals.plans;
    assert.ok((plans['full'] ?? 0) > 0 && Object.keys(plans).some((k) => k.startsWith('width')), `full and width plans: ${JSON.stringify(plans)}`);
    assert.ok(r.totals.refusals > 0, 'devices below the smallest submodel are refused');
    assert.ok(devices.memoryMiB.every((m, d) => m >= 0.29 || devices.leases[d] === 0), 'no device below the 1/8 width gets a lease');
    assert.equal(r.totals.failures.oom, 0, 'every plan fits the memory of the device it went to');
    const first = r.versions[0]!.metrics['loss']!;
    const last = r.versions.at(-1)!.metrics['loss']!;
    assert.ok(last < first - 0.3, `held-out loss falls with submodel updates folded in: ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  });
});
