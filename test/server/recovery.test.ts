// Restarting the coordinator: runs resume at their head version with their optimizer state, and a run whose files
// were damaged on disk is detected and reported (out of service), never loaded, while other runs carry on.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ProtocolError } from '../../src/core/protocol/errors.ts';
import { encodeUpdate } from '../../src/core/protocol/update-wire.ts';
import { decodeSafetensors } from '../../src/core/safetensors.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { Coordinator } from '../../src/server/coordinator/coordinator.ts';

const options = (dataDir: string) => ({ dataDir, adminToken: 'recovery-admin-token-0123', evaluate: false, log: () => {} });
const config = (name: string) => ({
  name, task: 'fashion-mlp', model: { kind: 'mlp', inputs: 784, hidden: [4], classes: 10 },
  aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 1, serverOptimizer: { kind: 'adam', lr: 0.01 } } },
});

function blobPath(dataDir: string, hash: string): string {
  const root = join(dataDir, 'blobs');
  const find = (dir: string): string | undefined => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) {
        const hit = find(p);
        if (hit) return hit;
      } else if (p.replaceAll('/', '').endsWith(hash)) return p;
    }
    return undefined;
  };
  const p = find(root);
  assert.ok(p, `blob ${hash} exists on disk`);
  return p!;
}

describe('coordinator restart', () => {
  it('resumes runs at their head with optimizer state, and reports a run with a corrupt head file', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tessera-recovery-'));
    let c = await Coordinator.open(options(dataDir));
    const a = await c.createRun(config('a'));
    const b = await c.createRun(config('b'));
    const runA = c.run(a.runId);
    const device = await c.authenticateDevice(a.runId, (await c.registerDevice(a.runId, a.joinToken, { memoryMiB: 1, examplesPerSecond: 1 })).deviceToken);
    const w0 = decodeSafetensors((await runA.weights(0)).bytes).tensors;
    const delta = new Map<string, Tensor>([...w0].map(([n, t]) => [n, { shape: t.shape, data: new Float32Array(t.data.length).fill(0.01) }]));
    for (let i = 0; i < 2; i++) {
      const lease = (await runA.issueLease(device)).lease!;
      await runA.submitUpdate(device, lease.leaseId, encodeUpdate(delta, { numExamples: 1, localSteps: 1, metrics: {} }));
    }
    const headA = (await runA.version(2)).hash;
    await c.close();

    // Damage run b's only version on disk, then restart.
    const bHash = (await (await Coordinator.open(options(dataDir))).run(b.runId).version(0)).hash;
    const file = blobPath(dataDir, bHash);
    const bytes = readFileSync(file);
    bytes[bytes.length - 1]! ^= 0xff;
    writeFileSync(file, bytes);

    c = await Coordinator.open(options(dataDir));
    assert.equal(c.run(a.runId).headVersion, 2, 'run a resumes at its head');
    assert.equal((await c.run(a.runId).version(2)).hash, headA, 'with the same weights');
    const lease = (await c.run(a.runId).issueLease(device)).lease!;
    await c.run(a.runId).submitUpdate(device, lease.leaseId, encodeUpdate(delta, { numExamples: 1, localSteps: 1, metrics: {} }));
    assert.equal(c.run(a.runId).headVersion, 3, 'run a keeps training');
    const restartedV3 = (await c.run(a.runId).version(3)).hash;
    assert.throws(() => c.run(b.runId), (e: unknown) => e instanceof ProtocolError && e.code === 'unavailable' && /corrupt/i.test(e.message),
      'run b is reported as out of service because its file is corrupt');
    await c.close();

    // A twin run that takes the same three updates without a restart ends at bit-identical weights: the restart
    // restored FedAdam's moments exactly (losing them would change the third step).
    const twin = await Coordinator.open(options(mkdtempSync(join(tmpdir(), 'tessera-twin-'))));
    const t = await twin.createRun(config('a'));
    const twinDevice = await twin.authenticateDevice(t.runId, (await twin.registerDevice(t.runId, t.joinToken, { memoryMiB: 1, examplesPerSecond: 1 })).deviceToken);
    for (let i = 0; i < 3; i++) {
      const l = (await twin.run(t.runId).issueLease(twinDevice)).lease!;
      await twin.run(t.runId).submitUpdate(twinDevice, l.leaseId, encodeUpdate(delta, { numExamples: 1, localSteps: 1, metrics: {} }));
    }
    assert.equal((await twin.run(t.runId).version(3)).hash, restartedV3, 'restart changes nothing about the result');
    await twin.close();
  });
});
