import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileBlobStore } from '../../../src/server/store/file-blobs.node.ts';
import { BlobNotFoundError, CorruptBlobError, StoreError } from '../../../src/server/store/store.ts';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-blobs-'));
  try {
    await fn(dir);
  } finally {
    chmodSync(dir, 0o700);
    rmSync(dir, { recursive: true, force: true });
  }
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 255);
const pathOf = (dir: string, hash: string) => join(dir, hash.slice(0, 2), hash.slice(2));
/** Every file under dir, relative, so a test can say exactly what a store left on disk. */
const files = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((p) => statSync(join(dir, p)).isFile())
    .sort();

test('put/get/has/delete round trip, sharded by sha256', () =>
  withDir(async (dir) => {
    const s = await FileBlobStore.open(dir);
    const data = bytes(10_000);
    const hash = await s.put(data);
    assert.equal(hash, sha(data), 'hash is sha256 hex');
    assert.deepEqual(files(dir), [join(hash.slice(0, 2), hash.slice(2))], 'one file at ab/cdef...');
    assert.ok(await s.has(hash), 'has after put');
    const back = await s.get(hash);
    assert.deepEqual(back, data, 'same bytes');
    assert.equal(Object.getPrototypeOf(back), Uint8Array.prototype, 'a plain Uint8Array');
    await s.delete(hash);
    assert.equal(await s.has(hash), false, 'gone after delete');
    await s.delete(hash); // a missing blob is not an error
    await assert.rejects(s.get(hash), BlobNotFoundError, 'get after delete');
    const empty = await s.put(new Uint8Array(0));
    assert.deepEqual(await s.get(empty), new Uint8Array(0), 'empty blob');
  }));

test('put is idempotent: an intact blob is not rewritten', () =>
  withDir(async (dir) => {
    const s = await FileBlobStore.open(dir);
    const data = bytes(4096);
    const hash = await s.put(data);
    const before = statSync(pathOf(dir, hash));
    assert.equal(await s.put(data), hash, 'same hash');
    const after = statSync(pathOf(dir, hash));
    assert.equal(after.ino, before.ino, 'same inode (no rename over it)');
    assert.equal(after.mtimeMs, before.mtimeMs, 'not rewritten');
    const [a, b] = await Promise.all([s.put(bytes(100, 7)), s.put(bytes(100, 7))]);
    assert.equal(a, b, 'concurrent puts of the same bytes agree');
    assert.equal(files(dir).length, 2, 'two blobs, no temp files');
  }));

test('a flipped byte or a truncated file is a CorruptBlobError naming hash and path; put repairs it', () =>
  withDir(async (dir) => {
    const s = await FileBlobStore.open(dir);
    const data = bytes(1000);
    const hash = await s.put(data);
    const path = pathOf(dir, hash);
    const stored = readFileSync(path);
    stored[500] = stored[500]! ^ 1;
    writeFileSync(path, stored);
    await assert.rejects(
      s.get(hash),
      (e) => e instanceof CorruptBlobError && e.message.includes(hash) && e.message.includes(path),
      'flipped byte',
    );
    assert.equal(await s.put(data), hash, 'put over a corrupt copy');
    assert.deepEqual(await s.get(hash), data, 'repaired');
    truncateSync(path, 999);
    await assert.rejects(s.get(hash), CorruptBlobError, 'truncated');
    truncateSync(path, 0);
    await assert.rejects(s.get(hash), CorruptBlobError, 'truncated to nothing');
  }));

test('hashes that are not 64 lowercase hex are refused before touching the filesystem', () =>
  withDir(async (dir) => {
    const s = await FileBlobStore.open(join(dir, 'blobs'));
    writeFileSync(join(dir, 'secret'), 'x');
    const bad = [
      '../secret',
      `../${'a'.repeat(61)}`,
      'a'.repeat(63),
      'a'.repeat(65),
      'A'.repeat(64),
      `${'a'.repeat(62)}/x`,
      `${'a'.repeat(63)}\0`,
      '',
      `/etc/passwd${'0'.repeat(53)}`,
    ];
    for (const h of bad) {
      for (const op of ['get', 'has', 'delete'] as const) {
        await assert.rejects(
          s[op](h),
          (e) => e instanceof StoreError && !(e instanceof BlobNotFoundError) && /invalid blob hash/.test(e.message),
          `${op}(${JSON.stringify(h)})`,
        );
      }
    }
    assert.ok(existsSync(join(dir, 'secret')), 'nothing outside deleted');
  }));

test('temp files left by a crash are ignored by get and removed at open', () =>
  withDir(async (dir) => {
    const s = await FileBlobStore.open(dir);
    const hash = await s.put(bytes(64));
    const shard = join(dir, hash.slice(0, 2));
    writeFileSync(join(shard, `.tmp-${hash.slice(2)}-deadbeef0000`), bytes(10));
    mkdirSync(join(dir, 'ff'), { recursive: true });
    writeFileSync(join(dir, 'ff', '.tmp-abc-123'), 'torn');
    writeFileSync(join(dir, 'notes.txt'), 'not ours');
    assert.deepEqual(await s.get(hash), bytes(64), 'the blob is served, not the temp');
    await FileBlobStore.open(dir);
    assert.deepEqual(
      files(dir),
      [join(hash.slice(0, 2), hash.slice(2)), 'notes.txt'],
      'temps gone, blob and foreign files kept',
    );
  }));

test('a writer failing midway (ENOSPC) is a StoreError and leaves no file behind', () =>
  withDir(async (dir) => {
    const s = await FileBlobStore.open(dir, {
      write: async (file, b) => {
        await file.write(b, 0, b.byteLength >> 1); // half the bytes reach the temp file, then the disk is full
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      },
    });
    const data = bytes(5000);
    await assert.rejects(
      s.put(data),
      (e) => e instanceof StoreError && /ENOSPC/.test(e.message) && e.message.includes(sha(data)),
      'ENOSPC surfaces as StoreError',
    );
    assert.equal(await s.has(sha(data)), false, 'nothing under the final name');
    assert.deepEqual(files(dir), [], 'no temp file left');
  }));

test('a path in the way of the shard directory is a StoreError', () =>
  withDir(async (dir) => {
    const s = await FileBlobStore.open(dir);
    const data = bytes(10);
    writeFileSync(join(dir, sha(data).slice(0, 2)), 'a file where the shard dir goes');
    await assert.rejects(s.put(data), StoreError, 'mkdir fails');
  }));

const asRoot = { skip: process.getuid?.() === 0 && 'root ignores file modes' };
test('a read-only directory (EACCES) is a StoreError and leaves no file behind', asRoot, () =>
  withDir(async (dir) => {
    const s = await FileBlobStore.open(dir);
    const data = bytes(10);
    mkdirSync(join(dir, sha(data).slice(0, 2)));
    chmodSync(join(dir, sha(data).slice(0, 2)), 0o500);
    await assert.rejects(s.put(data), (e) => e instanceof StoreError && /EACCES/.test(e.message), 'EACCES');
    chmodSync(join(dir, sha(data).slice(0, 2)), 0o700);
    assert.deepEqual(files(dir), [], 'nothing written');
  }));

test('open creates a missing directory and refuses a file in its place', async () => {
  await withDir(async (dir) => {
    const nested = join(dir, 'a', 'b');
    const s = await FileBlobStore.open(nested);
    assert.deepEqual(await s.get(await s.put(bytes(3))), bytes(3), 'works in a created directory');
    writeFileSync(join(dir, 'file'), 'x');
    await assert.rejects(FileBlobStore.open(join(dir, 'file')), StoreError, 'not a directory');
  });
});
