// The content-addressed weights cache: verified reads (a corrupted file is dropped and fetched again), eviction of old
// versions, and the fetch path that refuses weights not matching the lease's hash.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CoordinatorClient, CoordinatorError } from '../../src/device/client.ts';
import { DiskWeightsCache } from '../../src/device/weights-cache.node.ts';
import { fetchWeightsCached, MemoryWeightsCache, sha256Hex } from '../../src/device/weights-cache.ts';
import { cannedServer, type Handler } from './helpers.ts';

const blob = (seed: number) => Uint8Array.from({ length: 4096 }, (_, i) => (i * 31 + seed) % 256);

let handler: Handler = (_req, res) => { res.writeHead(500); res.end(); };
const server = await cannedServer((req, res) => handler(req, res));
after(() => server.close());
const client = new CoordinatorClient(server.url);

function serve(bytes: Uint8Array, etag: string): void {
  handler = (_req, res) => {
    res.writeHead(200, { ETag: `"${etag}"`, 'Content-Type': 'application/octet-stream' });
    res.end(Buffer.from(bytes));
  };
}

describe('weights cache', () => {
  it('hashes with WebCrypto to the sha256 everyone else computes', async () => {
    assert.equal(await sha256Hex(new TextEncoder().encode('abc')),
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 'FIPS 180-2 test vector');
  });

  it('on disk: stores, reads back verified, and refetches a corrupted file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-wcache-'));
    const cache = new DiskWeightsCache(dir);
    const bytes = blob(1);
    const hash = await sha256Hex(bytes);
    serve(bytes, hash);
    const first = await fetchWeightsCached(client, cache, 'run_1', 1, hash);
    assert.deepEqual(first, bytes, 'downloaded bytes returned');
    const requests = server.seen.length;
    assert.deepEqual(await fetchWeightsCached(client, cache, 'run_1', 1, hash), bytes, 'served from the cache');
    assert.equal(server.seen.length, requests, 'a cache hit makes no request');

    const damaged = bytes.slice();
    damaged[100] = damaged[100]! ^ 0xff;
    writeFileSync(join(dir, `${hash}.safetensors`), damaged);
    assert.equal(await cache.get(hash), undefined, 'a corrupted file is not returned');
    assert.ok(!readdirSync(dir).includes(`${hash}.safetensors`), 'and is removed');
    assert.deepEqual(await fetchWeightsCached(client, cache, 'run_1', 1, hash), bytes, 'the next read refetches good bytes');
    assert.equal(server.seen.length, requests + 1, 'exactly one refetch');
    assert.deepEqual(await new DiskWeightsCache(dir).get(hash), bytes, 'a new cache on the same directory finds the file');
  });

  it('on disk: keeps only the most recently used versions', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-wcache-'));
    const cache = new DiskWeightsCache(dir, 2);
    const hashes: string[] = [];
    for (let i = 0; i < 4; i++) {
      const bytes = blob(10 + i);
      const hash = await sha256Hex(bytes);
      hashes.push(hash);
      await cache.put(hash, bytes);
      await new Promise((r) => setTimeout(r, 20)); // distinct mtimes
    }
    const left = readdirSync(dir).sort();
    assert.deepEqual(left, hashes.slice(2).map((h) => `${h}.safetensors`).sort(), 'the two newest remain');
    assert.ok(left.every((n) => statSync(join(dir, n)).size === 4096), 'whole files only');
  });

  it('in memory: LRU by hash, verified', async () => {
    const cache = new MemoryWeightsCache(2);
    const [a, b, c] = [blob(1), blob(2), blob(3)];
    const [ha, hb, hc] = await Promise.all([a, b, c].map(sha256Hex));
    await cache.put(ha!, a);
    await cache.put(hb!, b);
    assert.ok((await cache.get(ha!)) !== undefined, 'a is cached');
    await cache.put(hc!, c);
    assert.equal(await cache.get(hb!), undefined, 'b, least recently used, was evicted');
    a[0] = a[0]! ^ 1; // the caller scribbled on bytes it had handed over
    assert.equal(await cache.get(ha!), undefined, 'changed bytes fail verification');
  });

  it('refuses a download that does not hash to the lease\'s hash, and caches nothing', async () => {
    const cache = new MemoryWeightsCache();
    const bytes = blob(5);
    const wrong = 'cd'.repeat(32);
    serve(bytes, wrong);
    await assert.rejects(fetchWeightsCached(client, cache, 'run_1', 2, wrong),
      (e) => e instanceof CoordinatorError && e.code === 'bad_response', 'hash mismatch is bad_response');
    assert.equal(await cache.get(wrong), undefined, 'nothing cached');
  });
});
