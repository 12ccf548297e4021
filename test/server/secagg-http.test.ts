// Secure aggregation over real HTTP: a run's devices run the protocol of src/core/secagg through the coordinator's
// secagg routes (each device bound to one client id), 3 of 10 drop after sharing keys, and the session's result is
// exactly the plain sum of the survivors' quantized inputs. Bad messages get protocol errors; too many dropouts fail
// the session with a conflict.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fromBase64Url } from '../../src/core/secagg/bytes.ts';
import { SecAggClient } from '../../src/core/secagg/client.ts';
import { decodeMessage, encodeMessage, type Roster, type SecAggMessage, type SharesDelivery, type UnmaskRequest } from '../../src/core/secagg/messages.ts';
import { addInto, quantize, quantizer } from '../../src/core/secagg/quantize.ts';
import { Rng } from '../../src/core/rng.ts';
import { startCoordinator, type RunningCoordinator } from '../../src/server/http/serve.node.ts';

const ADMIN = 'secagg-http-admin-token-0123456789';
const N = 10;
const DIM = 40;
let srv: RunningCoordinator;
let runId: string;
const tokens: string[] = [];

async function call(method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  let payload: BodyInit | undefined;
  if (body instanceof Uint8Array) {
    headers['content-type'] = 'application/octet-stream';
    payload = body as Uint8Array<ArrayBuffer>;
  } else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const res = await fetch(srv.url + path, { method, headers, body: payload });
  if (res.headers.get('content-type') === 'application/octet-stream') return { status: res.status, body: decodeMessage(new Uint8Array(await res.arrayBuffer())) };
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const send = async (session: string, device: number, m: SecAggMessage) => {
  const r = await call('POST', `/v1/runs/${runId}/secagg/${session}/messages`, tokens[device], encodeMessage(m));
  assert.equal(r.status, 202, `device ${device} ${m.kind}: ${JSON.stringify(r.body)}`);
};
const poll = async <M extends SecAggMessage>(session: string, device: number): Promise<M> => {
  const r = await call('GET', `/v1/runs/${runId}/secagg/${session}/messages`, tokens[device]);
  assert.equal(r.status, 200, `device ${device} has a message`);
  return r.body as M;
};
const advance = async (session: string) => {
  const r = await call('POST', `/v1/runs/${runId}/secagg/${session}/advance`, ADMIN);
  assert.equal(r.status, 200, `advance: ${JSON.stringify(r.body)}`);
  return r.body;
};
const newSession = async () => {
  const r = await call('POST', `/v1/runs/${runId}/secagg`, ADMIN, { dimension: DIM, threshold: 6, maxClients: N, clip: 2 });
  assert.equal(r.status, 201, `session: ${JSON.stringify(r.body)}`);
  return r.body.sessionId as string;
};

before(async () => {
  srv = await startCoordinator({
    dataDir: mkdtempSync(join(tmpdir(), 'tessera-secagg-')), port: 0, adminToken: ADMIN, evaluate: false, log: () => {}, web: false,
    perDevice: { perSecond: 1e4, burst: 1e4 },
  });
  const created = await call('POST', '/v1/runs', ADMIN, { name: 'secagg', task: 'fashion-mlp', model: { kind: 'mlp', inputs: 784, hidden: [2], classes: 10 } });
  assert.equal(created.status, 201, 'run');
  runId = created.body.runId;
  for (let i = 0; i < N; i++) {
    const r = await call('POST', `/v1/runs/${runId}/devices`, created.body.joinToken, { profile: { memoryMiB: 64, examplesPerSecond: 1 } });
    tokens.push(r.body.deviceToken);
  }
});

after(async () => {
  await srv.close();
});

describe('secure aggregation over HTTP', () => {
  it('ten devices, three dropping after sharing keys: the result is the exact sum of the survivors\' quantized inputs', async () => {
    const session = await newSession();
    const status = (await call('GET', `/v1/runs/${runId}/secagg/${session}`)).body;
    const config = status.config;
    const rng = new Rng(5);
    const inputs = Array.from({ length: N }, () => Float32Array.from({ length: DIM }, () => rng.normal()));
    const clients = inputs.map((_, i) => new SecAggClient(i + 1, config));
    assert.equal((await call('GET', `/v1/runs/${runId}/secagg/${session}/messages`, tokens[0])).status, 204, 'nothing for an unbound device');
    for (let i = 0; i < N; i++) await send(session, i, await clients[i]!.advertiseKeys());

    // Bad messages: another device's id, a server message, garbage, wrong media type, no admin token.
    const someone = await new SecAggClient(3, config).advertiseKeys();
    const forged = await call('POST', `/v1/runs/${runId}/secagg/${session}/messages`, tokens[0], encodeMessage(someone));
    assert.equal(forged.status, 403, 'a device cannot take another device\'s client id');
    const garbage = await call('POST', `/v1/runs/${runId}/secagg/${session}/messages`, tokens[0], new Uint8Array([1, 2, 3]));
    assert.equal(garbage.status, 400, 'garbage is a bad request');
    assert.equal(garbage.body.error.code, 'bad_request', 'with a protocol error code');
    const early = await call('POST', `/v1/runs/${runId}/secagg/${session}/messages`, tokens[0], encodeMessage({ kind: 'masked_input', from: 1, masked: new Uint32Array(DIM) }));
    assert.equal(early.status, 409, 'a masked input before its phase is a conflict');
    assert.equal((await call('POST', `/v1/runs/${runId}/secagg/${session}/advance`)).status, 401, 'advancing needs the admin token');

    await advance(session);
    for (let i = 0; i < N; i++) await send(session, i, await clients[i]!.shareKeys(await poll<Roster>(session, i)));
    assert.equal((await call('POST', `/v1/runs/${runId}/secagg/${session}/messages`, tokens[1], encodeMessage(await poll<Roster>(session, 1)))).status, 400,
      'a server message sent back is a bad request');
    await advance(session);
    const dropped = [2, 5, 8];
    for (let i = 0; i < N; i++) {
      if (dropped.includes(i)) continue;
      await send(session, i, await clients[i]!.maskInput(await poll<SharesDelivery>(session, i), inputs[i]!));
    }
    await advance(session);
    for (let i = 0; i < N; i++) {
      if (dropped.includes(i)) continue;
      await send(session, i, clients[i]!.unmask(await poll<UnmaskRequest>(session, i)));
    }
    const done = await advance(session);
    assert.equal(done.phase, 'done', 'the session is done');
    assert.deepEqual(done.result.dropped, dropped.map((i) => i + 1), 'the dropped clients are named');
    const q = quantizer(config.clip, config.maxClients);
    const expected = new Uint32Array(DIM);
    for (const id of done.result.contributors as number[]) addInto(expected, quantize(inputs[id - 1]!, q));
    assert.deepEqual(new Uint32Array(fromBase64Url(done.result.sum).slice().buffer), expected, 'the exact quantized sum of the seven survivors');
    assert.equal((await call('POST', `/v1/runs/${runId}/secagg/${session}/advance`, ADMIN)).status, 409, 'a finished session cannot advance');
  });

  it('fails the session with a conflict when too many devices drop', async () => {
    const session = await newSession();
    const config = (await call('GET', `/v1/runs/${runId}/secagg/${session}`)).body.config;
    const clients = Array.from({ length: N }, (_, i) => new SecAggClient(i + 1, config));
    for (let i = 0; i < N; i++) await send(session, i, await clients[i]!.advertiseKeys());
    await advance(session);
    for (let i = 0; i < N; i++) await send(session, i, await clients[i]!.shareKeys(await poll<Roster>(session, i)));
    await advance(session);
    for (let i = 0; i < 5; i++) await send(session, i, await clients[i]!.maskInput(await poll<SharesDelivery>(session, i), new Float32Array(DIM)));
    const r = await call('POST', `/v1/runs/${runId}/secagg/${session}/advance`, ADMIN);
    assert.equal(r.status, 409, 'five of ten inputs with t = 6 cannot be unmasked');
    assert.equal(r.body.error.code, 'conflict', 'a conflict');
    assert.match(r.body.error.message, /too_many_dropouts/, 'that says why');
    assert.equal((await call('GET', `/v1/runs/${runId}/secagg/${session}`)).body.phase, 'failed', 'the session is marked failed');
    assert.equal((await call('GET', `/v1/runs/${runId}/secagg/nope`)).status, 404, 'an unknown session is not found');
  });

  it('long polls: a waiting device is answered when the phase closes, not when its wait runs out', async () => {
    const session = await newSession();
    const base = `/v1/runs/${runId}/secagg/${session}`;
    const config = (await call('GET', base)).body.config;
    const clients = Array.from({ length: N }, (_, i) => new SecAggClient(i + 1, config));
    for (let i = 0; i < N; i++) await send(session, i, await clients[i]!.advertiseKeys());
    const revision = (await call('GET', base)).body.revision as number;
    assert.equal(revision, 0, 'no phase closed yet');
    // Nothing changes: the wait runs out and the answer is "nothing yet", with the revision it still is.
    const started = performance.now();
    const idle = await fetch(`${srv.url}${base}/messages?since=${revision}&wait=300`, { headers: { authorization: `Bearer ${tokens[0]}` } });
    assert.equal(idle.status, 204);
    assert.equal(idle.headers.get('X-Tessera-SecAgg-Revision'), '0');
    assert.ok(performance.now() - started >= 290, 'held for the wait');
    // A device and a status reader wait up to 20 s; the admin closes the phase; both answer with the roster's revision.
    const waiting = fetch(`${srv.url}${base}/messages?since=${revision}&wait=20000`, { headers: { authorization: `Bearer ${tokens[3]}` } });
    const statusWaiting = call('GET', `${base}?since=${revision}&wait=20000`);
    await new Promise((r) => setTimeout(r, 100));
    const closedAt = performance.now();
    await advance(session);
    const res = await waiting;
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('X-Tessera-SecAgg-Revision'), '1');
    assert.equal(decodeMessage(new Uint8Array(await res.arrayBuffer())).kind, 'roster', 'the message of the new phase');
    const st = await statusWaiting;
    assert.equal(st.body.phase, 'shares');
    assert.equal(st.body.revision, 1);
    assert.ok(performance.now() - closedAt < 5_000, 'answered on the change, long before the 20 s wait');
    // A revision already passed answers at once; bad waits are refused before anything waits.
    assert.equal((await call('GET', `${base}?since=0&wait=20000`)).body.revision, 1);
    for (const q of ['since=x&wait=10', 'since=0&wait=-1', 'since=0&wait=25001', 'since=0&wait=10&extra=1']) {
      const r = await call('GET', `${base}?${q}`);
      assert.equal(r.status, 400, q);
      assert.equal(r.body.error.code, 'bad_request', q);
    }
  });
});
