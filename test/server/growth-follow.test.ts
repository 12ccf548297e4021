// A device that keeps running its lease loop while the run's model grows (POST /v1/runs/:run/grow) over real HTTP:
// it started with the old spec, and its next lease's base has the grown shapes. The loop must notice that the base
// does not fit its spec, read the run's new spec (GET /v1/runs/:run) and go on training and uploading on the grown
// model, for full-model leases and for LoRA leases (whose targets are the grown model's matrices). The device is held
// at a lease boundary by its pause gate while the run grows, so the order is fixed.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { GptSpec } from '../../src/core/model-spec.ts';
import { decodeSafetensors } from '../../src/core/safetensors.ts';
import { parameterShapes } from '../../src/core/submodel/shapes.ts';
import { CoordinatorClient } from '../../src/device/client.ts';
import { MemoryIdentityStore } from '../../src/device/identity.ts';
import { runLeaseLoop, type DeviceEvent } from '../../src/device/lease-loop.ts';
import { PauseGate } from '../../src/device/pause-gate.ts';
import { loadTask } from '../../src/device/tasks/registry.node.ts';
import type { Task } from '../../src/device/tasks/task.ts';
import { MemoryWeightsCache } from '../../src/device/weights-cache.ts';
import { startCoordinator, type RunningCoordinator } from '../../src/server/http/serve.node.ts';

const ADMIN = 'admin-token-for-growth-follow-0123';
let dir: string;
let srv: RunningCoordinator;
let model: GptSpec;
let task: Task;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-growth-follow-'));
  const base = (await loadTask('shakespeare')).model as GptSpec;
  model = { ...base, context: 8, width: 16, heads: 2, layers: 1, mlpRatio: 2 };
  task = await loadTask('shakespeare', model);
  srv = await startCoordinator({ dataDir: join(dir, 'coordinator'), port: 0, adminToken: ADMIN, evaluate: false, log: () => {} });
});
after(async () => {
  await srv.close();
});

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${srv.url}${path}`, {
    method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

/**
 * One device on a run of `model`: it uploads one update on the old shape, is held at the next lease boundary while the
 * run grows by `growth`, then trains two more leases. Returns its events and the growth's answer.
 */
async function followThroughGrowth(config: Record<string, unknown>, growth: Record<string, unknown>) {
  const created = await call('POST', '/v1/runs', {
    name: 'growth-follow', task: 'shakespeare', model, recipe: { localSteps: 2, batchSize: 2, lr: 3e-3 },
    aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 1 } }, eval: { everyVersions: 0 }, ...config,
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  const run = created.json as { runId: string; joinToken: string };
  const gate = new PauseGate();
  const events: DeviceEvent[] = [];
  let firstUpload!: () => void;
  const uploadedOnce = new Promise<void>((resolve) => (firstUpload = resolve));
  const loop = runLeaseLoop({
    client: new CoordinatorClient(srv.url), runId: run.runId, joinToken: run.joinToken, identity: new MemoryIdentityStore(),
    model, task, shard: 0, profile: { memoryMiB: 4096, examplesPerSecond: 100 }, cache: new MemoryWeightsCache(),
    maxLeases: 3, pause: gate, backoff: { baseMs: 20, maxMs: 200, factor: 2, maxRetries: 20 },
    onEvent: (e) => {
      events.push(e);
      if (e.type === 'uploaded' && events.filter((x) => x.type === 'uploaded').length === 1) {
        gate.pause(); // the loop stops before asking for its next lease
        firstUpload();
      }
    },
  });
  await uploadedOnce;
  const grown = await call('POST', `/v1/runs/${run.runId}/grow`, growth);
  assert.equal(grown.status, 201, `growth accepted: ${JSON.stringify(grown.json)}`);
  gate.resume();
  const summary = await loop;
  return { run, events, summary, grown: grown.json as { version: number; growth: { to: GptSpec } } };
}

describe('a running device follows the run\'s model growth', () => {
  it('full-model leases: the loop reads the grown spec and uploads updates of the new shape', async () => {
    const { run, events, summary, grown } = await followThroughGrowth({}, { operator: 'gpt-width', width: 32, mlpRatio: 4 });
    const newSpec = grown.growth.to;
    assert.equal(summary.uploaded, 3, `three updates, two on the grown model (${JSON.stringify(events.filter((e) => e.type === 'abandoned' || e.type === 'error'))})`);
    const switched = events.filter((e): e is Extract<DeviceEvent, { type: 'model' }> => e.type === 'model');
    assert.equal(switched.length, 1, 'the device switched its model once');
    assert.deepEqual(switched[0]!.previous, model, 'from the spec it started with');
    assert.deepEqual(switched[0]!.model, newSpec, 'to the run\'s grown spec');
    assert.equal(events.filter((e) => e.type === 'abandoned').length, 0, 'no lease was lost to the growth');
    const head = (await call('GET', `/v1/runs/${run.runId}`)).json as { head: number };
    assert.equal(head.head, grown.version + 2, 'the two updates after growth made versions of the grown model');
    const bytes = new Uint8Array(await (await fetch(`${srv.url}/v1/runs/${run.runId}/versions/head/weights`)).arrayBuffer());
    const weights = decodeSafetensors(bytes).tensors;
    for (const [name, shape] of parameterShapes(newSpec)) assert.deepEqual(weights.get(name)?.shape, shape, `${name} has the grown shape`);
  });

  it('LoRA leases: after depth growth the device adapts the new blocks\' matrices too', async () => {
    const { run, events, summary, grown } = await followThroughGrowth(
      { planner: { leaseSeconds: 30, maxSteps: 2, lora: { tiers: [{ rank: 2 }] } } },
      { operator: 'gpt-depth-zero', layers: 2 },
    );
    assert.equal(summary.uploaded, 3, `three LoRA updates (${JSON.stringify(events.filter((e) => e.type === 'abandoned' || e.type === 'error'))})`);
    assert.ok(events.some((e) => e.type === 'model'), 'the device switched to the grown spec');
    const plans = events.filter((e): e is Extract<DeviceEvent, { type: 'lease' }> => e.type === 'lease').map((e) => e.lease.plan);
    assert.ok(plans.every((p) => p.kind === 'lora'), 'every lease is a LoRA lease');
    const targets = plans.map((p) => (p.kind === 'lora' ? p.targets.length : 0));
    assert.deepEqual(targets, [4, 8, 8], 'the grown model\'s second block is adapted as well');
    const head = (await call('GET', `/v1/runs/${run.runId}`)).json as { head: number };
    assert.equal(head.head, grown.version + 2, 'both LoRA updates after growth made versions');
  });
});
