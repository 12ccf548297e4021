// The device profile (a measured benchmark that the slowdown really slows) and the saved identity (0600 file, one per
// coordinator and run, a damaged file treated as none).
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Rng } from '../../src/core/rng.ts';
import { FileIdentityStore } from '../../src/device/identity.node.ts';
import { defaultMemoryMiB, nodePlatform } from '../../src/device/profile.node.ts';
import { benchmarkTraining, probeProfile } from '../../src/device/profile.ts';
import { createModel } from '../../src/train/models/registry.ts';

// Big enough that a step takes milliseconds, so timer granularity does not blur the slowdown.
const model = createModel({ kind: 'mlp', inputs: 256, hidden: [256], classes: 4 });
const rng = new Rng(3);
const batch = {
  batchSize: 64,
  x: Float32Array.from({ length: 64 * 256 }, () => rng.normal()),
  y: Int32Array.from({ length: 64 }, () => rng.int(4)),
};
const next = () => batch;

describe('device profile', () => {
  it('measures throughput, and a slowdown lowers it by about its factor', async () => {
    await benchmarkTraining(model, next, { steps: 2 }); // warm the runtime's kernel cache
    // The better of two unslowed runs: a shared CI machine makes single timings noisy, and noise only slows runs down.
    const [a, b] = [await benchmarkTraining(model, next, { steps: 8 }), await benchmarkTraining(model, next, { steps: 8 })];
    const fast = a.examplesPerSecond > b.examplesPerSecond ? a : b;
    const slow = await benchmarkTraining(model, next, { steps: 8, slowdown: 4 });
    assert.ok(fast.examplesPerSecond > 0 && Number.isFinite(fast.examplesPerSecond), `finite throughput, got ${fast.examplesPerSecond}`);
    assert.equal(fast.batchSize, 64, 'batch size from the batches');
    const ratio = slow.examplesPerSecond / fast.examplesPerSecond;
    assert.ok(ratio < 0.6, `slowdown 4 should cut throughput to about a quarter, got ratio ${ratio.toFixed(2)}`);
  });

  it('builds a valid DeviceProfile with the declared memory and shard', async () => {
    const { profile } = await probeProfile(model, next, { memoryMiB: 300, shard: 2, platform: nodePlatform(), benchmarkSteps: 2 });
    assert.equal(profile.memoryMiB, 300, 'declared memory');
    assert.equal(profile.shard, 2, 'shard');
    assert.match(profile.platform ?? '', /^node \d+/, 'platform label');
    assert.ok(profile.examplesPerSecond > 0, 'throughput');
    assert.ok(defaultMemoryMiB() >= 1, 'a positive default budget');
  });
});

describe('device identity file', () => {
  it('saves 0600, loads back, and keeps runs and coordinators apart', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'tessera-id-')), 'state');
    const store = new FileIdentityStore(dir, 'http://127.0.0.1:7070', 'run_a');
    assert.equal(await store.load(), undefined, 'nothing saved yet');
    await store.save({ deviceId: 'dev_1', deviceToken: 'dev_1.secret' });
    assert.equal(statSync(store.path).mode & 0o777, 0o600, 'only the owner can read the token');
    assert.equal(statSync(dir).mode & 0o777, 0o700, 'the state directory is private');
    assert.deepEqual(await new FileIdentityStore(dir, 'http://127.0.0.1:7070/', 'run_a').load(),
      { deviceId: 'dev_1', deviceToken: 'dev_1.secret' }, 'a restarted device finds itself');
    assert.equal(await new FileIdentityStore(dir, 'http://127.0.0.1:7070', 'run_b').load(), undefined, 'another run');
    assert.equal(await new FileIdentityStore(dir, 'http://10.0.0.1:7070', 'run_a').load(), undefined, 'another coordinator');
    await store.clear();
    assert.equal(await store.load(), undefined, 'cleared');
    await store.clear();
  });

  it('treats a damaged file as no identity', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-id-'));
    const store = new FileIdentityStore(dir, 'http://127.0.0.1:7070', 'run_a');
    writeFileSync(store.path, '{"deviceId": "dev_1", "devi');
    assert.equal(await store.load(), undefined, 'truncated JSON');
    writeFileSync(store.path, JSON.stringify({ coordinator: 'x', runId: 'run_a', deviceId: '' }));
    assert.equal(await store.load(), undefined, 'missing fields');
  });
});
