// FedKSeed's downlink (Qin et al., ICML 2024) end to end over real HTTP and a real SQLite store: in a zeroth-order
// run, each version folded from (seed, scalar) uploads only is stored as its seed step (src/core/zo/seed-step.ts),
// and a device holding an older version downloads the chain of seed steps ("TQD3", weights-delta.ts), replays them
// with the coordinator's own core code, encodes the file and gets the version's sha256. Measured: bytes per download
// against the file, for the 413k-parameter char GPT. A corrupt chain is reported and replaced by the full file; a
// version with any non-zeroth-order update in it has no seed step; a restart between uploads still stores the step.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { applyWeightsDelta, WEIGHTS_DELTA_MEDIA_TYPE, decodeSeedChain } from '../../src/core/codecs/weights-delta.ts';
import type { ModelSpec } from '../../src/core/model-spec.ts';
import { encodeUpdate } from '../../src/core/protocol/update-wire.ts';
import { Rng } from '../../src/core/rng.ts';
import { decodeSafetensors } from '../../src/core/safetensors.ts';
import { flatten, layoutOf, unflatten } from '../../src/core/tensor.ts';
import { poolSeed } from '../../src/core/zo/mezo.ts';
import { gaussianAt } from '../../src/core/zo/gaussian.ts';
import { decodeZoUpdate, encodeZoUpdate } from '../../src/core/zo/wire.ts';
import { CoordinatorClient, CoordinatorError, type DeviceCredentials } from '../../src/device/client.ts';
import { MemoryIdentityStore } from '../../src/device/identity.ts';
import { runLeaseLoop, type DeviceEvent } from '../../src/device/lease-loop.ts';
import { loadTask } from '../../src/device/tasks/registry.node.ts';
import { MemoryWeightsCache } from '../../src/device/weights-cache.ts';
import { startCoordinator, type RunningCoordinator } from '../../src/server/http/serve.node.ts';
import { createModel } from '../../src/train/models/registry.ts';

const ADMIN = 'admin-token-for-zo-downlink-0123456';
const MLP: ModelSpec = { kind: 'mlp', inputs: 784, hidden: [8], classes: 10 };
const ZO = { epsilon: 1e-3, poolSize: 1024, poolSeed: 5 };
const LR = 1e-3;

let dir: string;
let srv: RunningCoordinator;
/** The coordinator's log: a seed step that failed its replay check at commit would show here. */
const logs: string[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-zo-downlink-'));
  srv = await startCoordinator({ dataDir: join(dir, 'coordinator'), port: 0, adminToken: ADMIN, evaluate: false, log: (m) => logs.push(m) });
});
after(async () => {
  await srv.close();
});

async function newRun(body: Record<string, unknown>): Promise<{ runId: string; joinToken: string }> {
  const res = await fetch(`${srv.url}/v1/runs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      name: 'zo-downlink', task: 'fashion-mlp', model: MLP, recipe: { localSteps: 4, batchSize: 8, lr: LR, zo: ZO },
      aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 1 } }, ...body,
    }),
  });
  assert.equal(res.status, 201, `run creation: ${await res.clone().text()}`);
  return (await res.json()) as { runId: string; joinToken: string };
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface Seen { url: string; type: string | null; bytes: number }
function recordingFetch(seen: Seen[], tamper?: (body: Uint8Array) => Uint8Array): typeof fetch {
  return async (input, init) => {
    const res = await fetch(input, init);
    if (!String(input).includes('/weights')) return res;
    let body: Uint8Array = new Uint8Array(await res.arrayBuffer());
    const type = res.headers.get('content-type');
    seen.push({ url: String(input), type, bytes: body.length });
    if (tamper !== undefined && type === WEIGHTS_DELTA_MEDIA_TYPE) body = tamper(body);
    return new Response(body as Uint8Array<ArrayBuffer>, { status: res.status, headers: res.headers });
  };
}

/** A synthetic zeroth-order upload of `steps` seeded pairs (what ZoLeaseRun.encode sends, without training). */
function zoUpload(seed: number, steps: number, numExamples = 8): Uint8Array {
  const r = new Rng(seed);
  const pairs = Array.from({ length: steps }, () => ({ index: r.int(ZO.poolSize), grad: Math.fround(r.normal()) }));
  return encodeZoUpdate({ numExamples, localSteps: steps, poolSize: ZO.poolSize, poolSeed: ZO.poolSeed, metrics: { trainLoss: 2 }, pairs });
}

async function submit(client: CoordinatorClient, runId: string, creds: DeviceCredentials, bytes: Uint8Array): Promise<void> {
  const lease = (await client.requestLease(runId, creds)).lease!;
  await client.uploadUpdate(runId, lease.leaseId, creds, bytes);
}

async function versionRow(runId: string, v: number): Promise<{ downlinkBytes?: number; downlinkHash?: string } | undefined> {
  return (srv.coordinator.run(runId) as unknown as { deps: { store: { getVersion(r: string, v: number): Promise<{ downlinkBytes?: number; downlinkHash?: string } | undefined> } } })
    .deps.store.getVersion(runId, v);
}

describe('FedKSeed downlink: zeroth-order versions as seed steps', () => {
  it('a device in the lease loop gets each new base as a seed chain, rebuilds it bit for bit and is charged its bytes', async () => {
    const run = await newRun({});
    const seen: Seen[] = [];
    const client = new CoordinatorClient(srv.url, { weightDeltas: true, fetch: recordingFetch(seen) });
    const events: DeviceEvent[] = [];
    const summary = await runLeaseLoop({
      client, runId: run.runId, joinToken: run.joinToken, identity: new MemoryIdentityStore(), model: MLP, task: await loadTask('fashion-mlp'), shard: 0,
      profile: { memoryMiB: 64, examplesPerSecond: 200 }, cache: new MemoryWeightsCache(), maxLeases: 3,
      onEvent: (e) => events.push(e), backoff: { baseMs: 50, maxMs: 500, factor: 2, maxRetries: Infinity },
    });
    assert.equal(summary.uploaded, 3, `three leases uploaded (${events.filter((e) => e.type === 'abandoned').map((e) => e.type === 'abandoned' && e.message).join('; ')})`);
    await srv.coordinator.idle();
    // Lease 1 trained version 0 (the file); leases 2 and 3 trained versions 1 and 2, fetched from the version before.
    assert.deepEqual(seen.map((s) => s.url.replace(/^.*\/versions\//, '')), ['0/weights', '1/weights?from=0', '2/weights?from=1']);
    assert.deepEqual(seen.map((s) => s.type), ['application/octet-stream', WEIGHTS_DELTA_MEDIA_TYPE, WEIGHTS_DELTA_MEDIA_TYPE]);
    assert.equal(client.deltaFailures, 0, 'every chain rebuilt its version (the client checks the sha256)');
    const file = seen[0]!.bytes;
    for (const s of seen.slice(1)) assert.ok(s.bytes < 300 && s.bytes * 50 < file, `a seed step of 4 pairs is ${s.bytes} bytes, the file ${file}`);
    for (let v = 1; v <= 3; v++) assert.ok((await versionRow(run.runId, v))?.downlinkBytes !== undefined, `version ${v} has a seed step`);

    // A second device still on version 1 gets versions 2..3 as a chain of two steps, and the file it rebuilds is the
    // coordinator's file byte for byte.
    const seen2: Seen[] = [];
    const other = new CoordinatorClient(srv.url, { weightDeltas: true, fetch: recordingFetch(seen2) });
    const creds = await other.register(run.runId, run.joinToken, { memoryMiB: 64, examplesPerSecond: 100 });
    const v1 = await other.fetchWeights(run.runId, 1, { token: creds.deviceToken });
    const v3 = await other.fetchWeights(run.runId, 3, { token: creds.deviceToken });
    assert.ok(!v1.notModified && !v3.notModified);
    const full3 = new Uint8Array(await (await fetch(`${srv.url}/v1/runs/${run.runId}/versions/3/weights`)).arrayBuffer());
    assert.deepEqual(Buffer.from(v3.bytes), Buffer.from(full3), 'the rebuilt version 3 is the file');
    assert.equal(sha(v3.bytes), v3.hash);
    assert.equal(seen2[1]!.type, WEIGHTS_DELTA_MEDIA_TYPE);
    const chain = decodeSeedChain(new Uint8Array(await (await fetch(`${srv.url}/v1/runs/${run.runId}/versions/3/weights?from=1`)).arrayBuffer()));
    assert.deepEqual(chain.steps.map((s) => s.version), [2, 3], 'a chain of the seed steps of versions 2 and 3');
    // Byte accounting: the device is charged what it was sent (two bodies: a file and a chain).
    const traffic = await (await fetch(`${srv.url}/v1/runs/${run.runId}/traffic`)).json() as { devices: { deviceId: string; bytesDown: number }[] };
    assert.equal(traffic.devices.find((d) => d.deviceId === creds.deviceId)!.bytesDown, seen2[0]!.bytes + seen2[1]!.bytes);
  });

  it('the 413k-parameter char GPT: a version of three 20-step uploads downloads in under 1 KB instead of 1.65 MB', async (t) => {
    const model = (await loadTask('shakespeare')).model;
    const run = await newRun({
      task: 'shakespeare', model, recipe: { localSteps: 20, batchSize: 8, lr: LR, zo: { ...ZO, poolSize: 4096 } },
      aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 3 } },
    });
    const n = layoutOf(createModel(model).shapes).size;
    assert.equal(n, 413_312);
    const seen: Seen[] = [];
    const device = new CoordinatorClient(srv.url, { weightDeltas: true, fetch: recordingFetch(seen) });
    const creds = await device.register(run.runId, run.joinToken, { memoryMiB: 512, examplesPerSecond: 100 });
    const v0 = await device.fetchWeights(run.runId, 0, { token: creds.deviceToken });
    assert.ok(!v0.notModified);
    const uploads: Uint8Array[] = [];
    for (let k = 0; k < 3; k++) {
      const r = new Rng(100 + k);
      const pairs = Array.from({ length: 20 }, () => ({ index: r.int(4096), grad: Math.fround(r.normal()) }));
      uploads.push(encodeZoUpdate({ numExamples: 160, localSteps: 20, poolSize: 4096, poolSeed: ZO.poolSeed, metrics: { trainLoss: 2.5, trainSeconds: 9.5 }, pairs }));
      await submit(device, run.runId, creds, uploads[k]!);
    }
    await srv.coordinator.idle();
    const v1 = await device.fetchWeights(run.runId, 1, { token: creds.deviceToken });
    assert.ok(!v1.notModified);
    assert.equal(sha(v1.bytes), v1.hash, 'rebuilt from seeds, the file hashes to version 1');
    assert.equal(device.deltaFailures, 0);
    const [file, step] = [seen[0]!.bytes, seen[1]!];
    assert.equal(step.type, WEIGHTS_DELTA_MEDIA_TYPE);
    // The device's cost of the saving, reported (not asserted: timings depend on the machine): one rebuild.
    const chainBody = new Uint8Array(await (await fetch(`${srv.url}/v1/runs/${run.runId}/versions/1/weights?from=0`)).arrayBuffer());
    const started = performance.now();
    applyWeightsDelta(v0.bytes, chainBody);
    const rebuildMs = performance.now() - started;
    t.diagnostic(`char GPT (${n} parameters), FedBuff K = 3, three 20-step uploads (${uploads.map((u) => u.length).join(' + ')} bytes up): version download ${step.bytes} bytes as a seed chain vs ${file} bytes for the file (${(file / step.bytes).toFixed(0)}x); rebuilding it took ${rebuildMs.toFixed(0)} ms`);
    assert.ok(step.bytes < 1024, `${step.bytes} bytes`);
    // Version 1 moved by what the three uploads say (FedBuff, all fresh: the mean of the replayed deltas), checked
    // on a few entries with z computed entry by entry.
    const w0 = flatten(decodeSafetensors(v0.bytes).tensors);
    const w1 = flatten(decodeSafetensors(v1.bytes).tensors);
    for (const i of [0, 1, 4097, n - 1]) {
      let d = 0;
      for (const u of uploads) {
        for (const { index, grad } of decodeZoUpdate(u).pairs) d += (-LR * grad * gaussianAt(poolSeed({ poolSize: 4096, poolSeed: ZO.poolSeed }, index), i)) / 3;
      }
      assert.ok(Math.abs(w1[i]! - w0[i]! - d) <= 1e-6 * (Math.abs(w0[i]!) + 1e-3), `entry ${i}: moved ${w1[i]! - w0[i]!}, expected ${d}`);
    }
  });

  it('a corrupt seed chain is reported and replaced by the full file', async () => {
    const run = await newRun({});
    const client = new CoordinatorClient(srv.url);
    const creds = await client.register(run.runId, run.joinToken, { memoryMiB: 64, examplesPerSecond: 100 });
    await submit(client, run.runId, creds, zoUpload(1, 4));
    await srv.coordinator.idle();
    const cases: [string, (b: Uint8Array) => Uint8Array, RegExp][] = [
      // The last projected gradient's low bit: still a well-formed step, but the rebuilt weights are not version 1.
      ['a flipped bit', (b) => { const c = b.slice(); c[c.length - 4] = c[c.length - 4]! ^ 0x01; return c; }, /the rebuilt weights hash to/],
      ['a truncated chain', (b) => b.subarray(0, b.length - 3), /truncated/],
      ['a seed index outside the pool', (b) => { const c = b.slice(); const at = c.length - 6 * 4; c[at] = 0xff; c[at + 1] = 0xff; return c; }, /bad_index/],
    ];
    for (const [what, tamper, why] of cases) {
      const seen: Seen[] = [];
      const failures: CoordinatorError[] = [];
      const device = new CoordinatorClient(srv.url, { weightDeltas: true, fetch: recordingFetch(seen, tamper), onDeltaFailure: (e) => failures.push(e) });
      await device.fetchWeights(run.runId, 0);
      const v1 = await device.fetchWeights(run.runId, 1);
      assert.ok(!v1.notModified && sha(v1.bytes) === v1.hash, `${what}: the full file, verified`);
      assert.equal(failures.length, 1, `${what}: one failure reported`);
      assert.ok(failures[0]!.code === 'bad_response' && /weights delta for version 1 from version 0 refused/.test(failures[0]!.message) && why.test(failures[0]!.message), `${what}: ${failures[0]!.message}`);
      assert.deepEqual(seen.map((s) => s.type), ['application/octet-stream', WEIGHTS_DELTA_MEDIA_TYPE, 'application/octet-stream'], `${what}: file, chain, file`);
    }
  });

  it('a version with a non-zeroth-order update in it has no seed step, and breaks chains through it', async () => {
    const run = await newRun({ aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 2 } } });
    const client = new CoordinatorClient(srv.url);
    const creds = await client.register(run.runId, run.joinToken, { memoryMiB: 64, examplesPerSecond: 100 });
    // Version 1: one zeroth-order upload and one dense update. Every lease of this run is zeroth-order, so the
    // second lease's recipe is rewritten in the store, as a planner giving zo to some devices only would issue it.
    await submit(client, run.runId, creds, zoUpload(2, 4));
    const lease = (await client.requestLease(run.runId, creds)).lease!;
    const db = new Database(join(dir, 'coordinator', 'tessera.db'));
    try {
      const body = JSON.parse((db.prepare('SELECT body FROM leases WHERE id = ?').get(lease.leaseId) as { body: string }).body) as { recipe: { zo?: unknown } };
      assert.ok(body.recipe.zo !== undefined);
      delete body.recipe.zo;
      db.prepare('UPDATE leases SET body = ? WHERE id = ?').run(JSON.stringify(body), lease.leaseId);
    } finally {
      db.close();
    }
    const layout = layoutOf(createModel(MLP).shapes);
    const r = new Rng(3);
    const dense = Float32Array.from({ length: layout.size }, () => 1e-3 * r.normal());
    await client.uploadUpdate(run.runId, lease.leaseId, creds, encodeUpdate(unflatten(dense, layout), { numExamples: 8, localSteps: 1, metrics: {} }));
    // Version 2: two zeroth-order uploads.
    await submit(client, run.runId, creds, zoUpload(4, 4));
    await submit(client, run.runId, creds, zoUpload(5, 4));
    await srv.coordinator.idle();
    assert.equal((await client.getVersion(run.runId, 'head')).version, 2);
    assert.equal((await versionRow(run.runId, 1))?.downlinkBytes, undefined, 'version 1 (a dense update in it) has no seed step');
    assert.ok((await versionRow(run.runId, 2))?.downlinkBytes !== undefined, 'version 2 (zeroth-order only) has one');
    const type = async (v: number, from: number) => (await fetch(`${srv.url}/v1/runs/${run.runId}/versions/${v}/weights?from=${from}`)).headers.get('content-type');
    assert.equal(await type(1, 0), 'application/octet-stream', 'version 1 from 0: the file');
    assert.equal(await type(2, 0), 'application/octet-stream', 'version 2 from 0: no chain through version 1');
    assert.equal(await type(2, 1), WEIGHTS_DELTA_MEDIA_TYPE, 'version 2 from 1: its seed step');
    // Version 1 was never made into a step at all (not made and then dropped by the commit's replay check).
    assert.deepEqual(logs.filter((m) => /seed step/.test(m)), []);
  });

  it('a stateful strategy or a downlink codec means no seed steps; a restart between uploads still stores the step', async () => {
    const client = new CoordinatorClient(srv.url);
    for (const body of [
      { aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 1, serverOptimizer: { kind: 'momentum', lr: 1, beta: 0.9 } } } },
      { downlinkCodec: { values: 'int8', blockSize: 256 } },
    ]) {
      const run = await newRun(body);
      const creds = await client.register(run.runId, run.joinToken, { memoryMiB: 64, examplesPerSecond: 100 });
      await submit(client, run.runId, creds, zoUpload(6, 4));
      await srv.coordinator.idle();
      const row = await versionRow(run.runId, 1);
      const codec = 'downlinkCodec' in body;
      assert.ok(row !== undefined && (codec ? row.downlinkBytes !== undefined : row.downlinkBytes === undefined), JSON.stringify(body));
      // With the codec, the stored step is the codec's (a TQD2 chain), never a seed step.
      const res = await fetch(`${srv.url}/v1/runs/${run.runId}/versions/1/weights?from=0`);
      const bytes = new Uint8Array(await res.arrayBuffer());
      assert.equal(new TextDecoder().decode(bytes.subarray(0, 4)) === 'TQD3', false, `${JSON.stringify(body)}: not a seed chain`);
    }
    // FedBuff K = 3: two uploads, a restart (they are re-folded from the store), a third: version 1 has its seed step.
    const run = await newRun({ aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 3 } } });
    const creds = await client.register(run.runId, run.joinToken, { memoryMiB: 64, examplesPerSecond: 100 });
    const device = new CoordinatorClient(srv.url, { weightDeltas: true });
    await device.fetchWeights(run.runId, 0);
    await submit(client, run.runId, creds, zoUpload(7, 4));
    await submit(client, run.runId, creds, zoUpload(8, 4));
    const port = Number(new URL(srv.url).port);
    await srv.close();
    srv = await startCoordinator({ dataDir: join(dir, 'coordinator'), port, adminToken: ADMIN, evaluate: false, log: (m) => logs.push(m) });
    await submit(client, run.runId, creds, zoUpload(9, 4));
    await srv.coordinator.idle();
    assert.ok((await versionRow(run.runId, 1))?.downlinkBytes !== undefined, 'version 1 has a seed step after the restart');
    const v1 = await device.fetchWeights(run.runId, 1);
    assert.ok(!v1.notModified && sha(v1.bytes) === v1.hash && device.deltaFailures === 0, 'and it rebuilds version 1');
  });
});
