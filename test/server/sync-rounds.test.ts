// Synchronous rounds (Bonawitz et al. 2019): over-selection, the round closing when the cohort has reported,
// stragglers dropped, and a round closing on its deadline with fewer reports; driven in-process on a fake clock.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ProtocolError } from '../../src/core/protocol/errors.ts';
import { encodeUpdate } from '../../src/core/protocol/update-wire.ts';
import { decodeSafetensors } from '../../src/core/safetensors.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { Coordinator } from '../../src/server/coordinator/coordinator.ts';
import type { DeviceRecord } from '../../src/server/store/store.ts';

describe('synchronous rounds', () => {
  it('over-selects, closes on the cohort, drops stragglers, and closes late rounds on the deadline', async () => {
    let clock = 1_000_000;
    const coordinator = await Coordinator.open({
      dataDir: mkdtempSync(join(tmpdir(), 'tessera-sync-')), adminToken: 'sync-rounds-admin-token', evaluate: false, log: () => {}, now: () => clock,
    });
    const { runId, joinToken } = await coordinator.createRun({
      name: 'sync', task: 'fashion-mlp', model: { kind: 'mlp', inputs: 784, hidden: [4], classes: 10 },
      aggregation: { mode: 'sync', strategy: { kind: 'fedavg' }, cohort: 2, overSelection: 1.5, roundSeconds: 10, minUpdates: 1 },
    });
    const run = coordinator.run(runId);
    const devices: DeviceRecord[] = [];
    for (let i = 0; i < 4; i++) {
      const { deviceToken } = await coordinator.registerDevice(runId, joinToken, { memoryMiB: 100, examplesPerSecond: 10 });
      devices.push(await coordinator.authenticateDevice(runId, deviceToken));
    }
    const w0 = decodeSafetensors((await run.weights(0)).bytes).tensors;
    const delta = (value: number) => new Map<string, Tensor>([...w0].map(([n, t]) => [n, { shape: t.shape, data: new Float32Array(t.data.length).fill(value) }]));
    const upload = (d: DeviceRecord, leaseId: string, value: number, examples: number) =>
      run.submitUpdate(d, leaseId, encodeUpdate(delta(value), { numExamples: examples, localSteps: 1, metrics: {} }));

    // Round 1: ceil(2 * 1.5) = 3 leases, the fourth device waits.
    const leases = [];
    for (const d of devices.slice(0, 3)) leases.push((await run.issueLease(d)).lease!);
    const full = await run.issueLease(devices[3]!);
    assert.equal(full.lease, null, 'the cohort plus over-selection is full');
    assert.ok('retryAfterMs' in full && full.retryAfterMs > 0, 'the waiting device is told when to come back');

    await upload(devices[0]!, leases[0]!.leaseId, 0.1, 1);
    assert.equal(run.headVersion, 0, 'one report of a cohort of two does not close the round');
    await upload(devices[1]!, leases[1]!.leaseId, 0.4, 3);
    assert.equal(run.headVersion, 1, 'the second report closes the round');
    const w1 = decodeSafetensors((await run.weights(1)).bytes).tensors;
    const shift = w1.get('fc.0.bias')!.data[0]! - w0.get('fc.0.bias')!.data[0]!;
    assert.ok(Math.abs(shift - (0.1 * 1 + 0.4 * 3) / 4) < 1e-6, `FedAvg weights by examples (moved ${shift})`);

    await assert.rejects(upload(devices[2]!, leases[2]!.leaseId, 9, 1), (e: unknown) => e instanceof ProtocolError && e.code === 'lease_expired', 'a straggler of a closed round is dropped');
    assert.equal(run.headVersion, 1, 'the straggler changed nothing');

    // Round 2 gets one report; the deadline passes; the periodic tick closes it with minUpdates = 1.
    const l = (await run.issueLease(devices[3]!)).lease!;
    assert.equal(l.baseVersion, 1, 'round 2 starts from version 1');
    await upload(devices[3]!, l.leaseId, 0.2, 1);
    await run.tick();
    assert.equal(run.headVersion, 1, 'before the deadline the round stays open');
    clock += 11_000;
    await run.tick();
    assert.equal(run.headVersion, 2, 'after the deadline the round closes with the reports it has');
    await coordinator.close();
  });
});
