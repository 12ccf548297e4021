// A run with a compressed downlink (run config downlinkCodec, src/core/codecs/downlink.ts), end to end over real
// HTTP and a real SQLite store: each version is its parent plus an int8 step with the coordinator's error feedback;
// a device holding version v-1 (or v-k) downloads the encoded step (or the chain of steps), rebuilds the version in
// float32 bit for bit (its sha256 is the version's), and is charged the bytes it was actually sent; the residual
// survives a coordinator restart (a restarted run publishes the same bytes as one that never stopped); a tampered
// delta is reported and replaced by the full file, and so is a chain whose step is missing on the coordinator's disk;
// a top-k downlink codec is refused with a clear error.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { compressStep, downlinkSeed, DOWNLINK_RESIDUAL_SLOT } from '../../src/core/codecs/downlink.ts';
import { encodedSize } from '../../src/core/codecs/format.ts';
import { CodecSpec } from '../../src/core/codecs/spec.ts';
import { WEIGHTS_DELTA_MEDIA_TYPE } from '../../src/core/codecs/weights-delta.ts';
import type { ModelSpec } from '../../src/core/model-spec.ts';
import { encodeUpdate } from '../../src/core/protocol/update-wire.ts';
import { Rng } from '../../src/core/rng.ts';
import { decodeSafetensors } from '../../src/core/safetensors.ts';
import { flatten, unflatten } from '../../src/core/tensor.ts';
import { CoordinatorClient, CoordinatorError, type DeviceCredentials } from '../../src/device/client.ts';
import { startCoordinator, type RunningCoordinator } from '../../src/server/http/serve.node.ts';

const ADMIN = 'admin-token-for-downlink-tests-0123';
const MODEL: ModelSpec = { kind: 'mlp', inputs: 784, hidden: [32], classes: 10 };
const PARAMS = 784 * 32 + 32 + 32 * 10 + 10;
const INT8 = CodecSpec.parse({ values: 'int8', blockSize: 256 });
const SEED = 17;

let dir: string;
let srv: RunningCoordinator;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-downlink-e2e-'));
  srv = await startCoordinator({ dataDir: join(dir, 'coordinator'), port: 0, adminToken: ADMIN, evaluate: false, log: () => {} });
});
after(async () => {
  await srv.close();
});

async function createRun(extra: Record<string, unknown> = {}): Promise<Response> {
  return fetch(`${srv.url}/v1/runs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      name: 'downlink-e2e', task: 'fashion-mlp', model: MODEL, seed: SEED, downlinkCodec: INT8,
      aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 1 } },
      recipe: { localSteps: 1, batchSize: 16, lr: 2e-3, optimizer: 'adamw' },
      ...extra,
    }),
  });
}

async function newRun(): Promise<{ runId: string; joinToken: string }> {
  const res = await createRun();
  assert.equal(res.status, 201, `run creation: ${await res.clone().text()}`);
  return (await res.json()) as { runId: string; joinToken: string };
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
/** A version file's data section as the flat vector (tensors in name order, as layoutOf and safetensors keep them). */
const flat = (file: Uint8Array) => flatten(decodeSafetensors(file).tensors);

/** One dense update (seeded), folded alone into the next version (FedBuff with K = 1). */
async function submit(client: CoordinatorClient, runId: string, creds: DeviceCredentials, seed: number): Promise<Float32Array> {
  const lease = (await client.requestLease(runId, creds)).lease!;
  const r = new Rng(seed);
  const delta = Float32Array.from({ length: PARAMS }, () => 1e-2 * r.normal());
  await client.uploadUpdate(runId, lease.leaseId, creds, encodeUpdate(unflatten(delta, srv.coordinator.run(runId).layout), { numExamples: 4, localSteps: 1, metrics: {} }));
  await srv.coordinator.idle();
  return delta;
}

async function fullFile(runId: string, v: number): Promise<Uint8Array> {
  return new Uint8Array(await (await fetch(`${srv.url}/v1/runs/${runId}/versions/${v}/weights`)).arrayBuffer());
}

describe('a run with a compressed downlink', () => {
  it('versions are int8 steps; devices download a step or a chain, rebuild it bit for bit and are charged its size', async () => {
    const run = await newRun();
    const seen: { url: string; type: string | null; bytes: number }[] = [];
    const recording: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (String(input).includes('/weights')) seen.push({ url: String(input), type: res.headers.get('content-type'), bytes: (await res.clone().arrayBuffer()).byteLength });
      return res;
    };
    const device = new CoordinatorClient(srv.url, { weightDeltas: true, fetch: recording });
    const creds = await device.register(run.runId, run.joinToken, { memoryMiB: 512, examplesPerSecond: 100 });
    const v0 = await device.fetchWeights(run.runId, 0, { token: creds.deviceToken });
    assert.ok(!v0.notModified);
    const deltas = [await submit(device, run.runId, creds, 1)];
    const v1 = await device.fetchWeights(run.runId, 1, { token: creds.deviceToken });
    assert.ok(!v1.notModified);
    const file1 = await fullFile(run.runId, 1);
    assert.equal(sha(v1.bytes), v1.hash, 'the rebuilt version 1 hashes to its name');
    assert.deepEqual(Buffer.from(v1.bytes), Buffer.from(file1), 'identical to the full file');
    const step1 = seen.at(-1)!;
    assert.match(step1.url, /\/versions\/1\/weights\?from=0$/, 'asked from version 0');
    assert.equal(step1.type, WEIGHTS_DELTA_MEDIA_TYPE, 'a delta came back');
    const header = file1.length - 4 * PARAMS;
    assert.equal(step1.bytes, 8 + header + 4 + 4 + encodedSize(PARAMS, INT8), 'one int8 step plus the chain framing and the header');
    assert.ok(step1.bytes * 3.5 < file1.length, `${step1.bytes} bytes instead of ${file1.length}`);

    // Version 1 is version 0 plus the int8 step of FedBuff's step (the mean update, K = 1): computed here again
    // with the same seed, from the files alone.
    const w0 = flat(v0.bytes);
    const strategyTarget = Float32Array.from(w0, (x, i) => x + deltas[0]![i]!);
    const expected = compressStep(w0, strategyTarget, undefined, INT8, downlinkSeed(SEED, 1));
    assert.deepEqual(flat(file1), expected.params, 'the coordinator committed w0 + decode(encode(step)) with the run-seeded rounding');
    assert.notDeepEqual(flat(file1), strategyTarget, 'and not the uncompressed step');

    // Versions 2 and 3 appear; the device, still on version 1, gets a chain of two steps.
    deltas.push(await submit(device, run.runId, creds, 2), await submit(device, run.runId, creds, 3));
    const v3 = await device.fetchWeights(run.runId, 3, { token: creds.deviceToken });
    assert.ok(!v3.notModified);
    assert.equal(sha(v3.bytes), v3.hash, 'the rebuilt version 3 hashes to its name');
    const chain = seen.at(-1)!;
    assert.match(chain.url, /\/versions\/3\/weights\?from=1$/);
    assert.equal(chain.type, WEIGHTS_DELTA_MEDIA_TYPE);
    assert.equal(chain.bytes, 8 + header + 4 + 2 * (4 + encodedSize(PARAMS, INT8)), 'a chain of two steps');
    // From version 0, four int8 steps would cost more than the file: the coordinator sends the file.
    await submit(device, run.runId, creds, 4);
    const far = await device.fetchWeights(run.runId, 4, { from: { version: 0, hash: v0.hash, bytes: v0.bytes }, token: creds.deviceToken });
    assert.ok(!far.notModified && sha(far.bytes) === far.hash);
    assert.equal(seen.at(-1)!.type, 'application/octet-stream', 'four steps from version 0: the full file is smaller');

    // Byte accounting: the device is charged what it was actually sent.
    const traffic = await (await fetch(`${srv.url}/v1/runs/${run.runId}/traffic`)).json() as { devices: { deviceId: string; bytesDown: number; downloads: number }[] };
    const me = traffic.devices.find((d) => d.deviceId === creds.deviceId)!;
    assert.equal(me.downloads, 4, 'four downloads');
    assert.equal(me.bytesDown, seen.reduce((a, s) => a + s.bytes, 0), 'bytes down = the bodies served (file, step, chain, file)');
    assert.equal(device.deltaFailures, 0, 'no delta failed');
  });

  it('the residual survives a restart: a restarted run publishes the same bytes as one that never stopped', async () => {
    const client = new CoordinatorClient(srv.url);
    const a = await newRun();
    const ca = await client.register(a.runId, a.joinToken, { memoryMiB: 512, examplesPerSecond: 100 });
    await submit(client, a.runId, ca, 11);
    await submit(client, a.runId, ca, 12);
    const head = srv.coordinator.run(a.runId);
    const residual = (head as unknown as { state: { slots: Record<string, Float32Array> } }).state.slots[DOWNLINK_RESIDUAL_SLOT];
    assert.ok(residual !== undefined && residual.some((x) => x !== 0), 'after two versions the residual is not zero');
    const port = Number(new URL(srv.url).port);
    await srv.close();
    srv = await startCoordinator({ dataDir: join(dir, 'coordinator'), port, adminToken: ADMIN, evaluate: false, log: () => {} });
    await submit(client, a.runId, ca, 13);
    const b = await newRun();
    const cb = await client.register(b.runId, b.joinToken, { memoryMiB: 512, examplesPerSecond: 100 });
    for (const seed of [11, 12, 13]) await submit(client, b.runId, cb, seed);
    const [va, vb] = await Promise.all([client.getVersion(a.runId, 3), client.getVersion(b.runId, 3)]);
    assert.equal(va.hash, vb.hash, 'version 3 is the same bytes with and without a restart before it');
    // The test can fail: with the residual dropped at the restart, version 3 would be another file.
    const w2 = flat(await fullFile(a.runId, 2));
    const upd = new Rng(13);
    const target = Float32Array.from(w2, (x) => x + 1e-2 * upd.normal());
    const noResidual = compressStep(w2, target, undefined, INT8, downlinkSeed(SEED, 3)).params;
    assert.notDeepEqual(flat(await fullFile(a.runId, 3)), noResidual, 'a version 3 without error feedback differs');
  });

  it('a delta whose rebuilt weights do not hash to the version is reported, and the full file is used', async () => {
    const run = await newRun();
    let tamper = true;
    const tampering: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (!tamper || res.headers.get('content-type') !== WEIGHTS_DELTA_MEDIA_TYPE) return res;
      const body = new Uint8Array(await res.arrayBuffer());
      body[body.length - 1] = body[body.length - 1]! ^ 0x01; // one int8 level of the last entry: still decodes
      return new Response(body, { status: res.status, headers: res.headers });
    };
    const failures: CoordinatorError[] = [];
    const device = new CoordinatorClient(srv.url, { weightDeltas: true, fetch: tampering, onDeltaFailure: (e) => failures.push(e) });
    const creds = await device.register(run.runId, run.joinToken, { memoryMiB: 512, examplesPerSecond: 100 });
    await device.fetchWeights(run.runId, 0);
    await submit(device, run.runId, creds, 21);
    const v1 = await device.fetchWeights(run.runId, 1);
    assert.ok(!v1.notModified);
    assert.equal(sha(v1.bytes), v1.hash, 'the full file, verified');
    assert.equal(failures.length, 1, 'one failure reported');
    assert.ok(failures[0] instanceof CoordinatorError && failures[0].code === 'bad_response' && /weights delta for version 1 from version 0 refused \((the rebuilt weights hash to|bad_value)/.test(failures[0].message), failures[0]?.message);
    assert.equal(device.deltaFailures, 1);
    // The decoded step the coordinator stored is still right: an honest fetch rebuilds version 1 by delta.
    tamper = false;
    const honest = new CoordinatorClient(srv.url, { weightDeltas: true });
    await honest.fetchWeights(run.runId, 0);
    const again = await honest.fetchWeights(run.runId, 1);
    assert.ok(!again.notModified && sha(again.bytes) === again.hash && honest.deltaFailures === 0);
  });

  it('a step missing on disk: the coordinator serves the full file instead of a chain', async () => {
    const run = await newRun();
    const device = new CoordinatorClient(srv.url, { weightDeltas: true });
    const creds = await device.register(run.runId, run.joinToken, { memoryMiB: 512, examplesPerSecond: 100 });
    const v0 = await device.fetchWeights(run.runId, 0);
    assert.ok(!v0.notModified);
    const d = await submit(device, run.runId, creds, 31);
    // The step the coordinator stored, recomputed from the files (as in the first test) to find its blob.
    const w0 = flat(v0.bytes);
    const step = compressStep(w0, Float32Array.from(w0, (x, i) => x + d[i]!), undefined, INT8, downlinkSeed(SEED, 1)).encoded;
    const hash = sha(step);
    rmSync(join(dir, 'coordinator', 'blobs', hash.slice(0, 2), hash.slice(2)));
    const res = await fetch(`${srv.url}/v1/runs/${run.runId}/versions/1/weights?from=0`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/octet-stream', 'the full file');
    const body = new Uint8Array(await res.arrayBuffer());
    assert.equal(sha(body), (await device.getVersion(run.runId, 1)).hash, 'version 1 itself');
  });

  it('a top-k or fp32 downlink codec is refused with a clear error, and no run is created', async () => {
    const before = (await (await fetch(`${srv.url}/v1/runs`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { runs: unknown[] };
    for (const downlinkCodec of [{ values: 'int8', topK: 0.01 }, { values: 'fp32' }]) {
      const res = await createRun({ downlinkCodec });
      assert.equal(res.status, 400, `${JSON.stringify(downlinkCodec)} refused`);
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.match(body.error.message, /downlinkCodec/, 'names the field');
      assert.match(body.error.message, /a downlink codec must be dense fp16, bf16, int8, int4 or int2/, 'says what is allowed');
    }
    const after = (await (await fetch(`${srv.url}/v1/runs`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { runs: unknown[] };
    assert.equal(after.runs.length, before.runs.length, 'nothing created');
  });
});
