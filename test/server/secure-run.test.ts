// Runs in aggregation mode 'secure' over real HTTP: devices hold seats in secure-aggregation rounds
// (src/server/coordinator/secure-rounds.ts), send their deltas masked, and each round's sum becomes one version.
//   - the version equals the base plus the mean of the survivors' deltas (within the quantization bound), with one
//     device dropping after sharing keys; no request a device sends carries its delta, plain or quantized, and the
//     coordinator refuses a plain upload for a secure lease, changing nothing;
//   - real lease loops training on Fashion-MNIST shards make versions through secure rounds;
//   - a kill -9 right after a round's sum is recorded (its acknowledgement point) loses nothing: the restarted
//     coordinator folds the stored sum into the version;
//   - configs that need individual updates (FedBuff, robust rules, planners, codecs) are refused with reasons.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import Database from 'better-sqlite3';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MlpSpec } from '../../src/core/model-spec.ts';
import type { Lease } from '../../src/core/protocol/schemas.ts';
import { encodeUpdate } from '../../src/core/protocol/update-wire.ts';
import { Rng } from '../../src/core/rng.ts';
import { decodeSafetensors } from '../../src/core/safetensors.ts';
import { quantizationBound, quantize, quantizer } from '../../src/core/secagg/quantize.ts';
import { flatten, layoutOf, unflatten } from '../../src/core/tensor.ts';
import { CoordinatorClient, type DeviceCredentials } from '../../src/device/client.ts';
import { MemoryIdentityStore } from '../../src/device/identity.ts';
import { runLeaseLoop, type DeviceEvent } from '../../src/device/lease-loop.ts';
import { SecureUpload } from '../../src/device/secure-upload.ts';
import { loadTask } from '../../src/device/tasks/registry.node.ts';
import { MemoryWeightsCache } from '../../src/device/weights-cache.ts';
import { startCoordinator, type RunningCoordinator } from '../../src/server/http/serve.node.ts';
import { createModel } from '../../src/train/models/registry.ts';
import { spawnCoordinator } from './spawn-coordinator.ts';

const ADMIN = 'secure-run-admin-token-0123456789';
const SPEC: MlpSpec = { kind: 'mlp', inputs: 784, hidden: [4], classes: 10 };
const layout = layoutOf(createModel(SPEC).shapes);
const CLIP = 0.5;

let srv: RunningCoordinator;

async function admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(srv.url + path, {
    method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

function secureRun(extra: Record<string, unknown> = {}, aggregation: Record<string, unknown> = {}) {
  return {
    name: 'secure', task: 'fashion-mlp', model: SPEC,
    aggregation: { mode: 'secure', strategy: { kind: 'fedavg' }, cohort: 4, threshold: 3, clip: CLIP, collectSeconds: 2, phaseSeconds: 2, ...aggregation },
    recipe: { localSteps: 2, batchSize: 8, lr: 0.01, optimizer: 'sgd' },
    eval: { everyVersions: 0 },
    // The masked deltas are due 2 + 2 + 8 s after a round opens; a device that dropped is not waited for longer.
    lease: { seconds: 8 },
    ...extra,
  };
}

async function weightsOf(runId: string, version: number): Promise<Float32Array> {
  const res = await fetch(`${srv.url}/v1/runs/${runId}/versions/${version}/weights`);
  assert.equal(res.status, 200);
  return flatten(decodeSafetensors(new Uint8Array(await res.arrayBuffer())).tensors, layout);
}

before(async () => {
  srv = await startCoordinator({ dataDir: mkdtempSync(join(tmpdir(), 'tessera-secure-run-')), port: 0, adminToken: ADMIN, evaluate: false, log: () => {}, web: false });
});

after(async () => {
  await srv.close();
});

describe('runs in aggregation mode secure', () => {
  it('a round\'s sum becomes one version: base + mean of the survivors\' deltas; no device sends its delta in the clear', async () => {
    const created = await admin('POST', '/v1/runs', secureRun({ lease: { seconds: 4 } }));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const { runId, joinToken } = created.body as { runId: string; joinToken: string };
    const base = await weightsOf(runId, 0);

    // Every request body a device sends, to look for its delta in them afterwards.
    const sent: Uint8Array[] = [];
    const recording: typeof fetch = async (input, init) => {
      if (init?.body instanceof Uint8Array) sent.push((init.body as Uint8Array).slice());
      else if (typeof init?.body === 'string') sent.push(new TextEncoder().encode(init.body));
      return fetch(input, init);
    };
    const client = new CoordinatorClient(srv.url, { fetch: recording });
    const devices: { creds: DeviceCredentials; lease: Lease; delta: Float32Array }[] = [];
    const rng = new Rng(7);
    for (let i = 0; i < 4; i++) {
      const creds = await client.register(runId, joinToken, { memoryMiB: 512, examplesPerSecond: 100 });
      const res = await client.requestLease(runId, creds);
      assert.ok(res.lease !== null, `device ${i} gets a seat`);
      assert.ok(res.lease.secure !== undefined, 'the lease is a seat in a secure round');
      assert.equal(res.lease.secure.clientId, i + 1);
      // Some coordinates beyond the clip: the round sums clipped deltas.
      const delta = Float32Array.from({ length: layout.size }, () => rng.normal() * 0.2);
      devices.push({ creds, lease: res.lease, delta });
    }
    const fifth = await client.register(runId, joinToken, { memoryMiB: 512, examplesPerSecond: 100 });
    const full = await client.requestLease(runId, fifth);
    assert.equal(full.lease, null, 'the cohort of 4 is full');

    // A plain upload for a secure lease is refused and records nothing.
    const plain = encodeUpdate(unflatten(devices[0]!.delta, layout), { numExamples: 16, localSteps: 2, metrics: {} });
    await assert.rejects(client.uploadUpdate(runId, devices[0]!.lease.leaseId, devices[0]!.creds, plain), (e: any) => e.code === 'conflict' && /masked/.test(e.message));
    sent.pop(); // that one carried the delta on purpose

    const seats = await Promise.all(devices.map((d) => SecureUpload.join({
      client, runId, creds: d.creds, seat: d.lease.secure!, deadline: Date.now() + 60_000, pollMs: 250, backoff: { baseMs: 50, maxMs: 500, factor: 2, maxRetries: Infinity },
    })));
    // Device 4 drops after sharing its keys; the others' masks with it are removed from its Shamir shares.
    const results = await Promise.all(seats.slice(0, 3).map((s, i) => s.submit(devices[i]!.delta)));
    assert.deepEqual(results.map((r) => r.version), [1, 1, 1], 'every survivor learns the version its round became');

    const v1 = await weightsOf(runId, 1);
    const q = quantizer(CLIP, 4);
    const bound = quantizationBound(3, q) / 3 + 1e-6;
    let worst = 0;
    for (let i = 0; i < layout.size; i++) {
      let sum = 0;
      for (const d of devices.slice(0, 3)) sum += Math.max(-CLIP, Math.min(CLIP, d.delta[i]!));
      worst = Math.max(worst, Math.abs(v1[i]! - (base[i]! + sum / 3)));
    }
    assert.ok(worst <= bound + 1e-6 * 4, `version 1 = base + mean of clipped deltas (worst error ${worst}, bound ${bound})`);

    const info = (await admin('GET', `/v1/runs/${runId}/versions/1`)).body;
    assert.equal(info.updates, 1, 'one update (the round\'s sum) folded into version 1');
    const traffic = (await admin('GET', `/v1/runs/${runId}/traffic`)).body;
    const credited = new Map<string, number>(traffic.devices.map((d: any) => [d.deviceId, d.updates]));
    assert.deepEqual(devices.map((d) => credited.get(d.creds.deviceId) ?? 0), [1, 1, 1, 0], 'each contributor is credited one update, the dropout none');

    // No body any device sent holds a 64-byte run of its delta, as float32 or as the quantized words it masked.
    const contains = (hay: Uint8Array, needle: Uint8Array) => Buffer.from(hay.buffer, hay.byteOffset, hay.byteLength).includes(Buffer.from(needle.buffer, needle.byteOffset, needle.byteLength));
    for (const d of devices) {
      const raw = new Uint8Array(d.delta.buffer, 0, 64);
      const quantized = quantize(d.delta, q);
      const qRaw = new Uint8Array(quantized.buffer, 4 * 1000, 64);
      for (const body of sent) {
        assert.ok(!contains(body, raw), 'no request carries a delta in float32');
        assert.ok(!contains(body, qRaw), 'no request carries a quantized delta unmasked');
      }
    }
  });

  it('lease loops training on real shards make versions through secure rounds', async () => {
    const created = await admin('POST', '/v1/runs', secureRun({}, { cohort: 3, threshold: 2 }));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const { runId, joinToken } = created.body as { runId: string; joinToken: string };
    const task = await loadTask('fashion-mlp', SPEC);
    const events: DeviceEvent[][] = [[], [], []];
    const summaries = await Promise.all([0, 1, 2].map((i) => runLeaseLoop({
      client: new CoordinatorClient(srv.url), runId, joinToken, identity: new MemoryIdentityStore(), model: SPEC, task, shard: i,
      profile: { memoryMiB: 512, examplesPerSecond: 500 }, cache: new MemoryWeightsCache(), maxLeases: 2,
      onEvent: (e) => events[i]!.push(e), backoff: { baseMs: 50, maxMs: 500, factor: 2, maxRetries: Infinity },
    })));
    for (const [i, s] of summaries.entries()) {
      const told = events[i]!.filter((e) => e.type === 'abandoned' || e.type === 'error').map((e) => JSON.stringify(e));
      assert.equal(s.uploaded, 2, `device ${i} took part in two rounds (${told.join('; ')})`);
    }
    const head = (await admin('GET', `/v1/runs/${runId}`)).body.head;
    assert.equal(head, 2, 'two rounds, two versions');
    const uploaded = events.flat().filter((e) => e.type === 'uploaded');
    assert.ok(uploaded.every((e) => e.type === 'uploaded' && e.secure === true && e.bytes > 4 * layout.size), 'each device sent at least its masked delta');
  });

  it('a kill -9 after a round\'s sum is recorded loses nothing: the restart folds it into the version', { timeout: 120_000 }, async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tessera-secure-kill-'));
    const start = async (fault: string) => {
      const spawned = await spawnCoordinator(dataDir, { adminToken: ADMIN, fault, args: ['--rate-limit-device', '1000:1000'] });
      t.after(() => spawned.child.kill('SIGKILL'));
      return spawned;
    };
    let server = await start('crash-after:after-secure-sum-accept');
    const post = async (path: string, token: string, body: unknown) => {
      const r = await fetch(server.url + path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: r.status, body: await r.json() as any };
    };
    const created = await post('/v1/runs', ADMIN, secureRun({}, { cohort: 3, threshold: 2 }));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const { runId, joinToken } = created.body as { runId: string; joinToken: string };
    const client = new CoordinatorClient(server.url);
    const w0 = flatten(decodeSafetensors(new Uint8Array(await (await fetch(`${server.url}/v1/runs/${runId}/versions/0/weights`)).arrayBuffer())).tensors, layout);
    const rng = new Rng(11);
    const stop = new AbortController();
    const deltas: Float32Array[] = [];
    const rounds: Promise<unknown>[] = [];
    for (let i = 0; i < 3; i++) {
      const creds = await client.register(runId, joinToken, { memoryMiB: 512, examplesPerSecond: 100 });
      const { lease } = await client.requestLease(runId, creds);
      assert.ok(lease?.secure !== undefined);
      const delta = Float32Array.from({ length: layout.size }, () => rng.normal() * 0.1);
      deltas.push(delta);
      rounds.push(SecureUpload.join({ client, runId, creds, seat: lease.secure, deadline: Date.now() + 30_000, pollMs: 100, signal: stop.signal })
        .then((u) => u.submit(delta)).catch((e: unknown) => e));
    }
    assert.equal(await server.exited, 'SIGKILL', 'the coordinator died right after recording the sum');
    stop.abort();
    await Promise.all(rounds);

    const db = new Database(join(dataDir, 'tessera.db'), { readonly: true });
    const stored = db.prepare('SELECT folded_into, metrics FROM updates WHERE run_id = ?').all(runId) as { folded_into: number | null; metrics: string }[];
    db.close();
    assert.equal(stored.length, 1, 'the sum is recorded as one update');
    assert.equal(stored[0]!.folded_into, null, 'and was not folded before the kill');
    assert.equal(JSON.parse(stored[0]!.metrics).contributors, 3);

    server = await start('');
    const head = await (await fetch(`${server.url}/v1/runs/${runId}`)).json() as { head: number };
    assert.equal(head.head, 1, 'the restart folded the recorded sum into version 1');
    const w1 = flatten(decodeSafetensors(new Uint8Array(await (await fetch(`${server.url}/v1/runs/${runId}/versions/1/weights`)).arrayBuffer())).tensors, layout);
    const bound = quantizationBound(3, quantizer(CLIP, 3)) / 3 + 1e-5;
    for (let i = 0; i < layout.size; i++) {
      const mean = deltas.reduce((a, d) => a + Math.max(-CLIP, Math.min(CLIP, d[i]!)), 0) / 3;
      assert.ok(Math.abs(w1[i]! - (w0[i]! + mean)) <= bound, `coordinate ${i}: version 1 = version 0 + the round's mean`);
    }
    server.child.kill('SIGKILL');
  });

  it('refuses configs that need individual updates, with reasons', async () => {
    const cases: [Record<string, unknown>, Record<string, unknown>, RegExp][] = [
      [{}, { strategy: { kind: 'fedbuff', bufferSize: 2 } }, /fedbuff.*individual updates/],
      [{}, { strategy: { kind: 'robust', bufferSize: 3, rule: { kind: 'median' }, staleness: { kind: 'constant' } } }, /robust.*individual updates/],
      [{ codec: { values: 'int8' } }, {}, /codec/],
      [{ recipe: { localSteps: 2, batchSize: 8, lr: 0.01, zo: {} } }, {}, /zo/],
      [{}, { cohort: 2 }, /cohort/],
      [{}, { cohort: 6, threshold: 3 }, /threshold/],
    ];
    for (const [extra, aggregation, why] of cases) {
      const r = await admin('POST', '/v1/runs', secureRun(extra, aggregation));
      assert.equal(r.status, 400, `refused: ${JSON.stringify(aggregation)} ${JSON.stringify(extra)}`);
      assert.match(r.body.error.message, why);
    }
  });
});
