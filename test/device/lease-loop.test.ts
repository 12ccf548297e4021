// The lease loop against a scripted coordinator over real HTTP: what it uploads (a delta that decodes against the
// model's layout, with counts and metrics), and how it behaves when things go wrong: a coordinator that forgot the
// device, transient failures, a deadline it cannot meet, and being stopped mid-lease.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { MlpSpec } from '../../src/core/model-spec.ts';
import { decodeUpdate } from '../../src/core/protocol/update-wire.ts';
import { encodeSafetensors } from '../../src/core/safetensors.ts';
import { layoutOf } from '../../src/core/tensor.ts';
import { CoordinatorClient } from '../../src/device/client.ts';
import { MemoryIdentityStore } from '../../src/device/identity.ts';
import { runLeaseLoop, shardForDevice, type DeviceEvent, type LeaseLoopOptions } from '../../src/device/lease-loop.ts';
import type { Task } from '../../src/device/tasks/task.ts';
import { MemoryWeightsCache, sha256Hex } from '../../src/device/weights-cache.ts';
import { createModel } from '../../src/train/models/registry.ts';
import { cannedServer, sendJson, type Seen } from './helpers.ts';
import type { ServerResponse } from 'node:http';

const spec: MlpSpec = { kind: 'mlp', inputs: 6, hidden: [5], classes: 3 };
const model = createModel(spec);
const layout = layoutOf(model.shapes);
const weights = encodeSafetensors(model.init(0));
const hash = await sha256Hex(weights);
const recipe = { localSteps: 4, batchSize: 8, lr: 0.05, optimizer: 'sgd' as const };

/** Synthetic data in four shards: the loop only needs batches of the right shapes. */
const task: Task = {
  name: 'synthetic', model: spec, shards: 4,
  trainBatches(batchSize, rng) {
    return () => ({
      batchSize,
      x: Float32Array.from({ length: batchSize * 6 }, () => rng.normal()),
      y: Int32Array.from({ length: batchSize }, () => rng.int(3)),
    });
  },
  evalBatches: () => [],
  baseline: { metric: 'accuracy', value: 1 / 3, label: 'chance' },
};

/** A scripted coordinator: one device token at a time, a lease per request, and hooks to misbehave. */
class FakeCoordinator {
  token = 'dev_1.token-one-0123456789';
  registrations = 0;
  leases = 0;
  uploads: Seen[] = [];
  leaseMs = 60_000;
  /** Answers the next n requests of any kind with this status. */
  failNext: { status: number; n: number } | undefined;
  onLease: (() => void) | undefined;

  handle(req: Seen, res: ServerResponse): void {
    if (this.failNext && this.failNext.n > 0) {
      this.failNext.n--;
      return sendJson(res, this.failNext.status, { error: { code: 'unavailable', message: 'restarting' } }, { 'Retry-After': '0' });
    }
    const auth = req.headers.authorization;
    if (req.url.endsWith('/devices') && req.method === 'POST') {
      this.registrations++;
      this.token = `dev_${this.registrations}.token-${this.registrations}-0123456789`;
      return sendJson(res, 201, { deviceId: `dev_${this.registrations}`, deviceToken: this.token });
    }
    if (req.url.includes('/weights')) {
      res.writeHead(200, { ETag: `"${hash}"` });
      return void res.end(Buffer.from(weights));
    }
    if (auth !== `Bearer ${this.token}`) return sendJson(res, 401, { error: { code: 'unauthorized', message: 'unknown device' } });
    if (req.url.endsWith('/heartbeat')) return void res.writeHead(204).end();
    if (req.url.endsWith('/leases')) {
      this.leases++;
      this.onLease?.();
      return sendJson(res, 200, {
        lease: {
          leaseId: `lease_${this.leases}`, runId: 'run_1', baseVersion: 0, baseHash: hash, plan: { kind: 'full' },
          recipe, deadline: Date.now() + this.leaseMs, ttlMs: this.leaseMs,
        },
      });
    }
    if (req.method === 'PUT') {
      this.uploads.push(req);
      return sendJson(res, 202, { accepted: true, updateId: this.uploads.length, runVersion: this.uploads.length });
    }
    sendJson(res, 404, { error: { code: 'not_found', message: req.url } });
  }
}

let fake = new FakeCoordinator();
const server = await cannedServer((req, res) => fake.handle(req, res));
after(() => server.close());

function loop(extra: Partial<LeaseLoopOptions> = {}): { events: DeviceEvent[]; options: LeaseLoopOptions } {
  const events: DeviceEvent[] = [];
  return {
    events,
    options: {
      client: new CoordinatorClient(server.url), runId: 'run_1', joinToken: 'join-token-0123456789',
      identity: new MemoryIdentityStore(), model: spec, task, profile: { memoryMiB: 256, examplesPerSecond: 1000 },
      cache: new MemoryWeightsCache(), maxLeases: 1, onEvent: (e) => events.push(e),
      backoff: { baseMs: 1, maxMs: 5, factor: 2, maxRetries: Infinity }, ...extra,
    },
  };
}

describe('lease loop', () => {
  it('trains a lease and uploads a delta that decodes against the model, with counts and metrics', async () => {
    fake = new FakeCoordinator();
    const { events, options } = loop({ maxLeases: 2 });
    const summary = await runLeaseLoop(options);
    assert.equal(summary.uploaded, 2, 'two updates uploaded');
    assert.equal(summary.steps, 2 * recipe.localSteps, 'localSteps per lease');
    assert.equal(fake.uploads.length, 2, 'the coordinator received two uploads');
    const update = decodeUpdate(new Uint8Array(fake.uploads[0]!.body), layout, 1e6);
    assert.equal(update.numExamples, recipe.localSteps * recipe.batchSize, 'numExamples = localSteps * batchSize');
    assert.equal(update.localSteps, recipe.localSteps, 'localSteps');
    assert.ok(update.metrics['trainLoss']! > 0 && update.metrics['trainSeconds']! > 0, 'trainLoss and trainSeconds reported');
    assert.ok(update.norm > 0, 'training moved the parameters');
    assert.equal(fake.uploads[0]!.headers['content-type'], 'application/octet-stream', 'binary upload');
    const second = decodeUpdate(new Uint8Array(fake.uploads[1]!.body), layout, 1e6);
    assert.notEqual(second.norm, update.norm, 'the second lease trained on new batches');
    const kinds = events.map((e) => e.type);
    assert.deepEqual(kinds.filter((k) => k !== 'step'), ['registered', 'lease', 'uploaded', 'lease', 'uploaded'], `event order: ${kinds.join(', ')}`);
    assert.equal(kinds.filter((k) => k === 'step').length, 2 * recipe.localSteps, 'a step event per step');
    const reg = events[0] as Extract<DeviceEvent, { type: 'registered' }>;
    assert.equal(reg.shard, shardForDevice('dev_1', task.shards), 'shard derived from the device id');
  });

  it('resumes a saved identity and re-registers when the coordinator has forgotten it', async () => {
    fake = new FakeCoordinator();
    fake.registrations = 5; // the coordinator was reset: the saved token is unknown
    const identity = new MemoryIdentityStore();
    await identity.save({ deviceId: 'dev_old', deviceToken: 'dev_old.stale-token-0123456789' });
    const { events, options } = loop({ identity });
    const summary = await runLeaseLoop(options);
    assert.equal(summary.uploaded, 1, 'worked after re-registering');
    assert.equal(fake.registrations, 6, 'registered once more');
    assert.deepEqual(await identity.load(), { deviceId: 'dev_6', deviceToken: fake.token }, 'the new identity was saved');
    const regs = events.filter((e) => e.type === 'registered').map((e) => (e as { resumed: boolean }).resumed);
    assert.deepEqual(regs, [true, false], 'resumed, then registered afresh');
  });

  it('retries transient failures with backoff', async () => {
    fake = new FakeCoordinator();
    fake.failNext = { status: 503, n: 3 };
    const { events, options } = loop();
    const summary = await runLeaseLoop(options);
    assert.equal(summary.uploaded, 1, 'succeeded in the end');
    assert.equal(events.filter((e) => e.type === 'retry').length, 3, 'one retry per failure');
  });

  it('does not upload a lease whose deadline it cannot meet', async () => {
    fake = new FakeCoordinator();
    fake.leaseMs = 500; // less than the upload margin
    const { events, options } = loop({ uploadMarginMs: 1000 });
    const ctl = new AbortController();
    fake.onLease = () => { if (fake.leases === 2) ctl.abort(); };
    const summary = await runLeaseLoop({ ...options, signal: ctl.signal });
    assert.equal(fake.uploads.length, 0, 'nothing uploaded');
    assert.ok(summary.abandoned >= 1, 'the lease was abandoned');
    const abandoned = events.find((e) => e.type === 'abandoned') as Extract<DeviceEvent, { type: 'abandoned' }>;
    assert.equal(abandoned.reason, 'deadline', 'because of the deadline');
  });

  it('stops cleanly mid-lease without uploading half a result', async () => {
    fake = new FakeCoordinator();
    const ctl = new AbortController();
    const { events, options } = loop({
      slowdown: 50, maxLeases: 5, signal: ctl.signal,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'step' && e.step === 1) ctl.abort();
      },
    });
    const summary = await runLeaseLoop(options);
    assert.equal(fake.uploads.length, 0, 'nothing uploaded');
    assert.equal(summary.uploaded, 0, 'summary agrees');
    const last = events.at(-1) as Extract<DeviceEvent, { type: 'abandoned' }>;
    assert.equal(last.type, 'abandoned', 'the lease is reported abandoned');
    assert.equal(last.reason, 'stopped', 'because the device stopped');
  });

  it('reports a fatal error and rejects when the run does not exist', async () => {
    fake = new FakeCoordinator();
    const { events, options } = loop({ runId: 'nope', joinToken: 'join-token-0123456789' });
    fake.handle = (_req, res) => sendJson(res, 404, { error: { code: 'not_found', message: 'no run nope' } });
    await assert.rejects(runLeaseLoop(options), (e) => e instanceof Error && /no run nope/.test(e.message), 'rejects with the cause');
    assert.ok(events.some((e) => e.type === 'error' && e.fatal), 'a fatal error event');
  });

  it('derives a stable shard from the device id, spread over all shards', () => {
    assert.equal(shardForDevice('dev_1', 4), shardForDevice('dev_1', 4), 'stable');
    const spread = new Set(Array.from({ length: 64 }, (_, i) => shardForDevice(`dev_${i}`, 4)));
    assert.equal(spread.size, 4, 'ids spread over all shards');
  });
});
