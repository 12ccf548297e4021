// An upload must never be acknowledged pointing at a blob that is not there. Update blobs are content-addressed and
// a commit deletes the blobs of the updates it folded, so an upload with the same bytes as one being folded can
// write (or find) its blob, see the commit delete it, and then be recorded: after a crash before its own version,
// it could not be recovered. Driven deterministically: the second upload's blob write is held until a commit that
// folds an identical update has run.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { encodeUpdate } from '../../src/core/protocol/update-wire.ts';
import { decodeSafetensors } from '../../src/core/safetensors.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { RunEvents } from '../../src/server/coordinator/events.ts';
import { createMetrics } from '../../src/server/coordinator/metrics.ts';
import { RunConfig, type StoredRunConfig } from '../../src/server/coordinator/run-config.ts';
import { RunCoordinator, type RunDeps } from '../../src/server/coordinator/run.ts';
import { SecAggSessions } from '../../src/server/coordinator/secagg-sessions.ts';
import { FileBlobStore } from '../../src/server/store/file-blobs.node.ts';
import { SqliteStore } from '../../src/server/store/sqlite.node.ts';
import type { BlobStore, DeviceRecord } from '../../src/server/store/store.ts';

/** A blob store whose next put, once armed, completes and then waits for `release()` before returning. */
class HeldBlobs implements BlobStore {
  private hold: { reached: () => void; gate: Promise<void> } | undefined;
  release: () => void = () => {};
  constructor(private readonly inner: BlobStore) {}
  armNextPut(): Promise<void> {
    return new Promise((reached) => {
      const gate = new Promise<void>((r) => (this.release = r));
      this.hold = { reached, gate };
    });
  }
  async put(bytes: Uint8Array): Promise<string> {
    const hold = this.hold;
    this.hold = undefined;
    const hash = await this.inner.put(bytes);
    if (hold !== undefined) {
      hold.reached();
      await hold.gate;
    }
    return hash;
  }
  get(hash: string) { return this.inner.get(hash); }
  has(hash: string) { return this.inner.has(hash); }
  delete(hash: string) { return this.inner.delete(hash); }
}

describe('an upload racing a commit that deletes an identical blob', () => {
  it('is recorded with its blob on disk, and recovers after a restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tessera-blob-race-'));
    const store = SqliteStore.open(join(dataDir, 'tessera.db'));
    const blobs = new HeldBlobs(await FileBlobStore.open(join(dataDir, 'blobs')));
    const logs: string[] = [];
    const deps: RunDeps = { store, blobs, events: new RunEvents(), metrics: createMetrics(), secagg: new SecAggSessions(), log: (m) => logs.push(m), now: Date.now, evaluate: false };
    const config = RunConfig.parse({
      name: 'race', task: 'fashion-mlp', model: { kind: 'mlp', inputs: 784, hidden: [4], classes: 10 },
      aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 2 } },
    }) as StoredRunConfig;
    const run = await RunCoordinator.create(deps, 'run_race', config, 'x'.repeat(64));
    const device: DeviceRecord = { id: 'dev_race', runId: 'run_race', tokenHash: 'y'.repeat(64), profile: JSON.stringify({ memoryMiB: 64, examplesPerSecond: 10 }), registeredAt: 0, lastSeen: 0 };
    await store.registerDevice(device);
    const w0 = decodeSafetensors((await run.weights(0)).bytes).tensors;
    const bodyOf = (value: number) => encodeUpdate(new Map<string, Tensor>([...w0].map(([n, t]) => [n, { shape: t.shape, data: new Float32Array(t.data.length).fill(value) }])), { numExamples: 1, localSteps: 1, metrics: {} });
    const lease = async () => (await run.issueLease(device)).lease!.leaseId;

    await run.submitUpdate(device, await lease(), bodyOf(0.01)); // pending: one update
    const [first, second] = [await lease(), await lease()];
    const same = bodyOf(0.02);
    // The second upload of `same` writes its blob and is held there...
    const reached = blobs.armNextPut();
    const held = run.submitUpdate(device, second, same);
    await reached;
    // ...while an upload of identical bytes fills the buffer: version 1 is committed and its updates' blobs deleted.
    const r = await run.submitUpdate(device, first, same);
    assert.equal(r.runVersion, 1, 'the identical upload completed version 1');
    blobs.release();
    const accepted = await held;
    assert.equal(accepted.accepted, true, 'the held upload is acknowledged');
    const pending = await store.pendingUpdates('run_race');
    assert.equal(pending.length, 1, 'the held upload is pending for version 2');
    assert.equal(await blobs.has(pending[0]!.blobHash), true, 'the acknowledged update\'s blob is on disk');

    // A restart (kill -9 now) must be able to re-fold it.
    const record = (await store.getRun('run_race'))!;
    await RunCoordinator.open(deps, record);
    assert.ok(!logs.some((m) => m.includes('cannot be recovered')), `the pending update is recovered: ${logs.join(' | ')}`);
    await store.close();
  });
});
