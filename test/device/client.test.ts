// The protocol client over real HTTP: requests as docs/api.md specifies them, responses parsed with the protocol
// schemas, and every failure mapped to CoordinatorError (with the code) or NetworkError.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { CoordinatorClient, CoordinatorError, NetworkError, parseRetryAfter } from '../../src/device/client.ts';
import { cannedServer, sendJson, type Handler } from './helpers.ts';

const profile = { memoryMiB: 1024, examplesPerSecond: 100 };
const creds = { deviceId: 'dev_1', deviceToken: 'device-token-secret-0123456789' };
const hash = 'ab'.repeat(32);
const lease = {
  leaseId: 'lease_1', runId: 'run_1', baseVersion: 3, baseHash: hash, plan: { kind: 'full' },
  recipe: { localSteps: 5, batchSize: 8, lr: 0.01, optimizer: 'sgd' }, deadline: Date.now() + 60_000, ttlMs: 60_000,
};

let handler: Handler = (_req, res) => sendJson(res, 500, {});
const server = await cannedServer((req, res) => handler(req, res));
after(() => server.close());
const client = new CoordinatorClient(server.url);

describe('CoordinatorClient requests', () => {
  it('registers with the join token as a bearer token and parses the answer', async () => {
    handler = (_req, res) => sendJson(res, 201, { deviceId: 'dev_1', deviceToken: 'tok' });
    const got = await client.register('run_1', 'join-token-0123456789', profile);
    assert.deepEqual(got, { deviceId: 'dev_1', deviceToken: 'tok' }, 'register returns the id and token');
    const req = server.seen.at(-1)!;
    assert.equal(req.method, 'POST', 'register is a POST');
    assert.equal(req.url, '/v1/runs/run_1/devices', 'register path');
    assert.equal(req.headers.authorization, 'Bearer join-token-0123456789', 'join token as bearer');
    assert.deepEqual(JSON.parse(req.body.toString()), { profile }, 'body carries the profile');
  });

  it('parses a lease and a no-lease answer, with the device token', async () => {
    handler = (_req, res) => sendJson(res, 200, { lease });
    const got = await client.requestLease('run_1', creds);
    assert.equal(got.lease?.leaseId, 'lease_1', 'the lease comes back parsed');
    assert.equal(got.lease?.recipe.proximalMu, 0, 'schema defaults are applied');
    assert.equal(server.seen.at(-1)!.headers.authorization, `Bearer ${creds.deviceToken}`, 'device token as bearer');
    // A coordinator whose clock is an hour behind: the deadline it names is long past here, its ttl is not.
    handler = (_req, res) => sendJson(res, 200, { lease: { ...lease, deadline: Date.now() - 3_600_000 } });
    const skewed = await client.requestLease('run_1', creds);
    const left = skewed.lease!.deadline - Date.now();
    assert.ok(left > 55_000 && left <= 60_000, `the deadline is translated onto this device's clock (${left} ms left)`);
    handler = (_req, res) => sendJson(res, 200, { lease: null, reason: 'buffer full', retryAfterMs: 250 });
    const none = await client.requestLease('run_1', creds);
    assert.deepEqual(none, { lease: null, reason: 'buffer full', retryAfterMs: 250 }, 'no lease, with when to ask again');
  });

  it('sends heartbeats and escapes path segments', async () => {
    handler = (_req, res) => { res.writeHead(204); res.end(); };
    await client.heartbeat('run_1', { deviceId: 'a/b', deviceToken: 'x'.repeat(20) }, profile);
    assert.equal(server.seen.at(-1)!.url, '/v1/runs/run_1/devices/a%2Fb/heartbeat', 'a slash cannot change the endpoint');
  });

  it('uploads updates as octet-stream bytes and parses the acceptance', async () => {
    handler = (_req, res) => sendJson(res, 202, { accepted: true, updateId: 7, runVersion: 4 });
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => i % 251);
    const got = await client.uploadUpdate('run_1', 'lease_1', creds, bytes);
    assert.deepEqual(got, { accepted: true, updateId: 7, runVersion: 4 }, 'acceptance parsed');
    const req = server.seen.at(-1)!;
    assert.equal(req.method, 'PUT', 'upload is a PUT');
    assert.equal(req.url, '/v1/runs/run_1/leases/lease_1/update', 'upload path');
    assert.equal(req.headers['content-type'], 'application/octet-stream', 'binary content type');
    assert.deepEqual(new Uint8Array(req.body), bytes, 'bytes arrive intact');
  });

  it('fetches weights with their ETag hash and honours If-None-Match', async () => {
    handler = (req, res) => {
      if (req.headers['if-none-match'] === `"${hash}"`) { res.writeHead(304, { ETag: `"${hash}"` }); res.end(); return; }
      res.writeHead(200, { ETag: `"${hash}"`, 'Content-Type': 'application/octet-stream' });
      res.end(Buffer.from([1, 2, 3]));
    };
    const full = await client.fetchWeights('run_1', 3);
    assert.ok(!full.notModified && full.hash === hash && full.bytes.length === 3, 'a 200 brings bytes and the hash');
    const cached = await client.fetchWeights('run_1', 3, { ifNoneMatch: hash });
    assert.deepEqual(cached, { notModified: true, hash }, 'a 304 says the cached copy is current');
    handler = (_req, res) => { res.writeHead(200); res.end(Buffer.from([1])); };
    await assert.rejects(client.fetchWeights('run_1', 3), (e) => e instanceof CoordinatorError && e.code === 'bad_response',
      'weights without an ETag cannot be verified and are refused');
  });

  it('gets run views and versions', async () => {
    const run = { runId: 'run_1', name: 'r', status: 'active', task: 'fashion-mlp', model: { kind: 'mlp', inputs: 4, hidden: [], classes: 2 }, head: 3, devices: 2 };
    handler = (_req, res) => sendJson(res, 200, run);
    const got = await client.getRun('run_1');
    assert.equal(got.task, 'fashion-mlp', 'task name parsed');
    assert.ok(!('devices' in got), 'dashboard fields are stripped');
    const version = { runId: 'run_1', version: 3, parent: 2, hash, createdAt: 1, updates: 2, metrics: { accuracy: 0.5 } };
    handler = (_req, res) => sendJson(res, 200, version);
    assert.deepEqual(await client.getVersion('run_1', 'head'), version, 'version info parsed');
    assert.equal(server.seen.at(-1)!.url, '/v1/runs/run_1/versions/head', 'head alias in the path');
  });
});

describe('CoordinatorClient errors', () => {
  it('turns an error body into a CoordinatorError with status, code and message', async () => {
    handler = (_req, res) => sendJson(res, 409, { error: { code: 'lease_expired', message: 'lease lease_1 expired at 5' } });
    await assert.rejects(client.uploadUpdate('run_1', 'lease_1', creds, new Uint8Array(8)), (e) => {
      assert.ok(e instanceof CoordinatorError, 'typed error');
      assert.equal(e.status, 409, 'status kept');
      assert.equal(e.code, 'lease_expired', 'code kept');
      assert.equal(e.message, 'lease lease_1 expired at 5', 'message kept');
      return true;
    });
  });

  it('reads Retry-After on 429, in seconds or as a date', async () => {
    handler = (_req, res) => sendJson(res, 429, { error: { code: 'rate_limited', message: 'slow down' } }, { 'Retry-After': '3' });
    await assert.rejects(client.requestLease('run_1', creds), (e) => e instanceof CoordinatorError && e.retryAfterMs === 3000,
      'Retry-After seconds become milliseconds');
    assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6_000, 'an HTTP date becomes a delay from now');
    assert.equal(parseRetryAfter('soon', 0), undefined, 'a garbled header is ignored');
  });

  it('maps answers that are not protocol errors by their status', async () => {
    handler = (_req, res) => { res.writeHead(502, { 'Content-Type': 'text/html' }); res.end('<h1>Bad gateway</h1>'); };
    await assert.rejects(client.getRun('run_1'), (e) => e instanceof CoordinatorError && e.status === 502 && e.code === 'unavailable',
      'a proxy page on 502 is unavailable');
    handler = (_req, res) => sendJson(res, 404, { error: { code: 'no_such_code', message: 'x' } });
    await assert.rejects(client.getRun('run_1'), (e) => e instanceof CoordinatorError && e.code === 'not_found',
      'an unknown code falls back to the status');
  });

  it('refuses a 2xx whose body does not follow the schema', async () => {
    handler = (_req, res) => sendJson(res, 200, { lease: { leaseId: 'x' } });
    await assert.rejects(client.requestLease('run_1', creds), (e) => e instanceof CoordinatorError && e.code === 'bad_response',
      'schema violations are bad_response');
    handler = (_req, res) => { res.writeHead(200); res.end('not json'); };
    await assert.rejects(client.requestLease('run_1', creds), (e) => e instanceof CoordinatorError && e.code === 'bad_response',
      'non-JSON is bad_response');
  });

  it('never puts a token into an error message', async () => {
    handler = (_req, res) => sendJson(res, 401, { error: { code: 'unauthorized', message: 'unknown device' } });
    await assert.rejects(client.requestLease('run_1', creds), (e) => {
      assert.ok(e instanceof CoordinatorError && e.code === 'unauthorized', 'unauthorized');
      assert.ok(!String(e.stack).includes(creds.deviceToken) && !JSON.stringify(e).includes(creds.deviceToken), 'token not in the error');
      return true;
    });
    const dead = new CoordinatorClient('http://127.0.0.1:9');
    await assert.rejects(dead.requestLease('run_1', creds), (e) => e instanceof NetworkError && !String(e.stack).includes(creds.deviceToken),
      'token not in a network error');
  });

  it('turns refused connections and timeouts into NetworkError, and lets the caller\'s abort through', async () => {
    const dead = new CoordinatorClient('http://127.0.0.1:9');
    await assert.rejects(dead.getRun('run_1'), (e) => e instanceof NetworkError, 'connection refused is a NetworkError');
    handler = () => { /* never answers */ };
    const slow = new CoordinatorClient(server.url, { timeoutMs: 150 });
    await assert.rejects(slow.getRun('run_1'), (e) => e instanceof NetworkError && /timed out/.test(e.message), 'timeout is a NetworkError');
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(), 50);
    await assert.rejects(client.getRun('run_1', ctl.signal), (e) => e instanceof Error && e.name === 'AbortError',
      'an abort by the caller stays an AbortError');
  });
});
