// End to end over real HTTP: a coordinator on a temporary directory, a FedBuff run on Fashion-MNIST created through
// the admin API, and device lease loops in this process training on real shards. Updates must be accepted and folded
// into new versions, and a device must ride out a coordinator restart.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CoordinatorClient } from '../../src/device/client.ts';
import { MemoryIdentityStore } from '../../src/device/identity.ts';
import { runLeaseLoop, type DeviceEvent, type LeaseLoopOptions } from '../../src/device/lease-loop.ts';
import { loadTask } from '../../src/device/tasks/registry.node.ts';
import type { Task } from '../../src/device/tasks/task.ts';
import { DiskWeightsCache } from '../../src/device/weights-cache.node.ts';
import { startCoordinator, type RunningCoordinator } from '../../src/server/http/serve.node.ts';

const ADMIN = 'admin-token-for-device-tests-0123';
const LOCAL_STEPS = 5;
const BATCH = 16;

let dataDir: string;
let srv: RunningCoordinator;
let task: Task;

async function createRun(): Promise<{ runId: string; joinToken: string }> {
  const res = await fetch(`${srv.url}/v1/runs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      name: 'device-e2e', task: 'fashion-mlp',
      // A narrow MLP keeps the test quick; the data and the protocol are the real ones.
      model: { kind: 'mlp', inputs: 784, hidden: [32], classes: 10 },
      aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 2 } },
      recipe: { localSteps: LOCAL_STEPS, batchSize: BATCH, lr: 2e-3, optimizer: 'adamw' },
    }),
  });
  assert.equal(res.status, 201, `run creation: ${await res.clone().text()}`);
  return (await res.json()) as { runId: string; joinToken: string };
}

function device(url: string, run: { runId: string; joinToken: string }, i: number, extra: Partial<LeaseLoopOptions> = {}) {
  const events: DeviceEvent[] = [];
  const options: LeaseLoopOptions = {
    client: new CoordinatorClient(url), runId: run.runId, joinToken: run.joinToken,
    identity: new MemoryIdentityStore(), model: { kind: 'mlp', inputs: 784, hidden: [32], classes: 10 }, task, shard: i,
    profile: { memoryMiB: 512, examplesPerSecond: 500 }, cache: new DiskWeightsCache(join(dataDir, `device-${i}`)),
    onEvent: (e) => events.push(e), backoff: { baseMs: 50, maxMs: 500, factor: 2, maxRetries: Infinity }, ...extra,
  };
  return { events, options };
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'tessera-device-e2e-'));
  task = await loadTask('fashion-mlp');
  srv = await startCoordinator({ dataDir: join(dataDir, 'coordinator'), port: 0, adminToken: ADMIN, evaluate: false, log: () => {} });
});

after(async () => {
  await srv.close();
});

describe('devices against a live coordinator', () => {
  it('two devices train leases whose updates are accepted and folded into new versions', async () => {
    const run = await createRun();
    const a = device(srv.url, run, 0, { maxLeases: 3 });
    const b = device(srv.url, run, 1, { maxLeases: 3 });
    const [sa, sb] = await Promise.all([runLeaseLoop(a.options), runLeaseLoop(b.options)]);
    assert.equal(sa.uploaded, 3, `device a uploaded 3 (events: ${a.events.filter((e) => e.type !== 'step').map((e) => e.type).join(', ')})`);
    assert.equal(sb.uploaded, 3, 'device b uploaded 3');
    assert.notEqual(sa.deviceId, sb.deviceId, 'two distinct devices');
    await srv.coordinator.idle();
    const client = new CoordinatorClient(srv.url);
    const head = await client.getVersion(run.runId, 'head');
    assert.equal(head.version, 3, 'six updates in buffers of two make three versions');
    assert.equal(head.updates, 2, 'each version folds a full buffer');
    const uploads = [...a.events, ...b.events].filter((e) => e.type === 'uploaded');
    assert.ok(uploads.every((e) => Number.isFinite(e.trainLoss) && e.trainLoss > 0), 'train losses reported');
    const summary = await (await fetch(`${srv.url}/v1/runs/${run.runId}`)).json() as { devices: number; openLeases: number };
    assert.equal(summary.devices, 2, 'two devices registered');
    assert.equal(summary.openLeases, 0, 'no lease left open');
  });

  it('a device rides out a coordinator restart and keeps contributing', async () => {
    const run = await createRun();
    const port = Number(new URL(srv.url).port);
    let restarted: Promise<void> | undefined;
    const d = device(srv.url, run, 2, { maxLeases: 4 });
    d.options.onEvent = (e) => {
      d.events.push(e);
      // After the second upload, take the coordinator down and bring it back on the same directory and port.
      if (e.type === 'uploaded' && restarted === undefined && d.events.filter((x) => x.type === 'uploaded').length === 2) {
        restarted = (async () => {
          await srv.close();
          await new Promise((r) => setTimeout(r, 300));
          srv = await startCoordinator({ dataDir: join(dataDir, 'coordinator'), port, adminToken: ADMIN, evaluate: false, log: () => {} });
        })();
      }
    };
    const summary = await runLeaseLoop(d.options);
    await restarted;
    assert.equal(summary.uploaded, 4, 'all four updates made it');
    assert.ok(d.events.some((e) => e.type === 'retry'), 'the outage was retried, not fatal');
    assert.equal(d.events.filter((e) => e.type === 'registered').length, 1, 'the same device throughout: the store kept it');
    await srv.coordinator.idle();
    const head = await new CoordinatorClient(srv.url).getVersion(run.runId, 'head');
    assert.equal(head.version, 2, 'four updates, two versions, across the restart');
  });
});
