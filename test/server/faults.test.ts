// kill -9 landed deterministically inside the durability path (src/server/faults.node.ts: TESSERA_FAULT=crash-after:
// <point>[:<n>]), once at every point, while one device uploads. After each kill the coordinator restarts on the
// same data directory and the test checks what that point promises:
//   - a kill before the update is recorded leaves the lease open: the same upload on the same lease is then accepted;
//   - a kill after it is recorded (before the 202) keeps the update: the retry answers lease_used, and it is folded;
//   - a kill inside a version commit leaves the previous version as head, and the restart commits the version;
//   - a half-written blob leaves no temp file and no blob under its name.
// At the end, from the database and the weights: every acknowledged update is stored, each stored update is folded
// into exactly one version or still pending, versions form a chain of K updates each, and the head weights are
// version 0 plus the FedBuff steps of exactly the folded updates.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { encodeUpdate } from '../../src/core/protocol/update-wire.ts';
import { decodeSafetensors } from '../../src/core/safetensors.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { parseFault } from '../../src/server/faults.node.ts';
import { spawnCoordinator, type SpawnedCoordinator } from './spawn-coordinator.ts';

const ADMIN = 'faults-test-admin-token-0123456789';
const K = 2;

type Server = SpawnedCoordinator;
const startServer = (dataDir: string, fault?: string): Promise<Server> =>
  spawnCoordinator(dataDir, { adminToken: ADMIN, ...(fault === undefined ? {} : { fault }), args: ['--rate-limit-device', '1000:1000'] });

const sqlite = (dataDir: string) => new Database(join(dataDir, 'tessera.db'), { readonly: true });
const tempFiles = (dataDir: string) => readdirSync(join(dataDir, 'blobs'), { recursive: true, encoding: 'utf8' }).filter((f) => f.includes('.tmp-'));

describe('kill -9 at each fault point of the update and commit path', () => {
  it('rejects a malformed TESSERA_FAULT instead of running unarmed', () => {
    assert.throws(() => parseFault('crash-after:nowhere'), /want crash-after/, 'unknown point');
    assert.throws(() => parseFault('crash-before:after-update-blob'), /want crash-after/, 'unknown verb');
    assert.deepEqual(parseFault('crash-after:mid-blob-write:3'), { point: 'mid-blob-write', nth: 3 }, 'point and count');
    assert.equal(parseFault(''), undefined, 'empty is inert');
  });

  it('keeps every acknowledged update exactly once and the head consistent', { timeout: 300_000 }, async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tessera-faults-'));
    let server = await startServer(dataDir);
    // A failed assertion must not leave a coordinator running (it would keep this test process alive).
    t.after(() => server.child.kill('SIGKILL'));
    const post = async (path: string, token: string, body: unknown) => {
      const r = await fetch(server.url + path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: r.status, body: await r.json() };
    };
    const created = await post('/v1/runs', ADMIN, {
      name: 'faults', task: 'fashion-mlp', model: { kind: 'mlp', inputs: 784, hidden: [8], classes: 10 },
      aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: K, staleness: { kind: 'constant' } } },
    });
    assert.equal(created.status, 201, 'run created');
    const runId: string = created.body.runId;
    const token: string = (await post(`/v1/runs/${runId}/devices`, created.body.joinToken, { profile: { memoryMiB: 64, examplesPerSecond: 10 } })).body.deviceToken;
    const w0 = decodeSafetensors(new Uint8Array(await (await fetch(`${server.url}/v1/runs/${runId}/versions/0/weights`)).arrayBuffer())).tensors;

    // Every upload carries a constant delta of its own value, so the head weights reveal which updates were folded.
    const valueOfLease = new Map<string, number>();
    const acked = new Set<number>();
    let k = 0;
    const bodyOf = (value: number) => encodeUpdate(
      new Map<string, Tensor>([...w0].map(([n, t]) => [n, { shape: t.shape, data: new Float32Array(t.data.length).fill(value) }])),
      { numExamples: 1, localSteps: 1, metrics: {} },
    ) as Uint8Array<ArrayBuffer>;
    const upload = (leaseId: string) => fetch(`${server.url}/v1/runs/${runId}/leases/${leaseId}/update`, {
      method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }, body: bodyOf(valueOfLease.get(leaseId)!),
    });
    /** Uploads one update after another until the coordinator dies; returns the lease whose upload it died in. */
    const uploadUntilKilled = async (): Promise<string | undefined> => {
      for (let i = 0; i < 12; i++) {
        let leaseId: string;
        try {
          const l = await post(`/v1/runs/${runId}/leases`, token, {});
          assert.equal(l.status, 200, `lease granted: ${JSON.stringify(l.body)}`);
          leaseId = l.body.lease.leaseId;
        } catch {
          return undefined;
        }
        valueOfLease.set(leaseId, 1e-5 * ++k); // distinct values: every blob is new, so every put reaches the disk
        try {
          const r = await upload(leaseId);
          assert.equal(r.status, 202, `upload accepted: ${await r.clone().text()}`);
          acked.add(((await r.json()) as { updateId: number }).updateId);
        } catch (e) {
          if (e instanceof assert.AssertionError) throw e;
          return leaseId;
        }
      }
      assert.fail('the armed fault point was never reached');
    };
    const headOf = async () => ((await (await fetch(`${server.url}/v1/runs/${runId}`)).json()) as { head: number }).head;
    const kill = async () => {
      server.child.kill('SIGKILL');
      await server.exited;
    };
    await kill();

    // Each kill: the TESSERA_FAULT to arm, given the updates pending when the phase starts (with server SGD there is
    // no optimizer-state blob, so from p pending the phase writes K - p update blobs and then the version's weights
    // blob), and what the kill interrupts: an upload before it is recorded, after, or a commit.
    type Stage = 'unrecorded' | 'recorded' | 'in-commit' | 'committed';
    const faults: Array<{ name: string; fault: (pending: number) => string; stage: Stage }> = [
      { name: 'after-update-blob', fault: () => 'after-update-blob', stage: 'unrecorded' },
      { name: 'after-update-accept', fault: () => 'after-update-accept', stage: 'recorded' },
      { name: 'after-version-blob', fault: () => 'after-version-blob', stage: 'in-commit' },
      { name: 'before-version-commit', fault: () => 'before-version-commit', stage: 'in-commit' },
      { name: 'after-version-commit', fault: () => 'after-version-commit', stage: 'committed' },
      { name: 'mid-blob-write (an update)', fault: () => 'mid-blob-write:1', stage: 'unrecorded' },
      { name: 'mid-blob-write (a version)', fault: (p) => `mid-blob-write:${K - p + 1}`, stage: 'in-commit' },
      { name: 'after-update-blob, second upload', fault: () => 'after-update-blob:2', stage: 'unrecorded' },
      { name: 'before-version-commit, second commit', fault: () => 'before-version-commit:2', stage: 'in-commit' },
      { name: 'after-update-accept, third upload', fault: () => 'after-update-accept:3', stage: 'recorded' },
    ];
    const pendingNow = () => {
      const db = sqlite(dataDir);
      const n = (db.prepare('SELECT COUNT(*) AS n FROM updates WHERE run_id = ? AND folded_into IS NULL').get(runId) as { n: number }).n;
      db.close();
      return n;
    };
    let kills = 1;
    for (const { name, fault, stage } of faults) {
      server = await startServer(dataDir, `crash-after:${fault(pendingNow())}`);
      const inFlight = await uploadUntilKilled();
      assert.equal(await server.exited, 'SIGKILL', `${name}: the coordinator died of SIGKILL`);
      kills++;
      assert.ok(inFlight !== undefined, `${name}: the kill landed inside an upload`);

      const db = sqlite(dataDir);
      const lease = db.prepare('SELECT status FROM leases WHERE id = ?').get(inFlight) as { status: string };
      const row = db.prepare('SELECT seq FROM updates WHERE lease_id = ?').get(inFlight) as { seq: number } | undefined;
      const headRow = (db.prepare('SELECT head FROM runs WHERE id = ?').get(runId) as { head: number }).head;
      db.close();
      const pending = pendingNow();

      // Restart unarmed and check what this point promises.
      server = await startServer(dataDir);
      assert.deepEqual(tempFiles(dataDir), [], `${name}: no temp file survives a restart`);
      if (stage === 'in-commit') assert.equal(pending, K, `${name}: the K updates of the interrupted version are still pending`);
      if (stage === 'committed') assert.ok(pending < K, `${name}: the committed version took its updates (${pending} pending)`);
      // A full buffer left pending (a kill inside a commit, or between recording the K-th update and folding it) is
      // re-folded and committed by the restart.
      assert.equal(await headOf(), headRow + (pending >= K ? 1 : 0), `${name}: the restart commits exactly the version a full buffer owes`);
      assert.ok(pendingNow() < K, `${name}: after the restart fewer than K updates are pending`);
      const retry = await upload(inFlight);
      if (stage === 'unrecorded') {
        assert.equal(lease.status, 'open', `${name}: the lease is still open after the kill`);
        assert.equal(row, undefined, `${name}: no update was recorded`);
        assert.equal(retry.status, 202, `${name}: the same upload on the same lease is accepted after the restart`);
        acked.add(((await retry.json()) as { updateId: number }).updateId);
      } else {
        assert.equal(lease.status, 'used', `${name}: the update was recorded before the kill`);
        assert.ok(row !== undefined, `${name}: the update row is stored`);
        assert.equal(retry.status, 409, `${name}: a retry of a recorded update is refused`);
        assert.equal(((await retry.json()) as { error: { code: string } }).error.code, 'lease_used', `${name}: lease_used`);
        acked.add(row.seq); // recorded: the store must keep it even though the device never heard 202
      }
      await kill();
      kills++;
    }

    // A last, unarmed coordinator takes a few more updates: the commits after all those kills still work.
    server = await startServer(dataDir);
    for (let i = 0; i < 2 * K; i++) {
      const l = await post(`/v1/runs/${runId}/leases`, token, {});
      valueOfLease.set(l.body.lease.leaseId, 1e-5 * ++k);
      const r = await upload(l.body.lease.leaseId);
      assert.equal(r.status, 202, 'uploads after the kills are accepted');
      acked.add(((await r.json()) as { updateId: number }).updateId);
    }
    const head = await headOf();
    const wHead = decodeSafetensors(new Uint8Array(await (await fetch(`${server.url}/v1/runs/${runId}/versions/head/weights`)).arrayBuffer())).tensors;
    server.child.kill('SIGTERM');
    await server.exited;

    const db = sqlite(dataDir);
    const updates = db.prepare('SELECT seq, lease_id AS leaseId, folded_into AS foldedInto FROM updates WHERE run_id = ?').all(runId) as Array<{ seq: number; leaseId: string; foldedInto: number | null }>;
    const versions = db.prepare('SELECT version, parent, updates FROM versions WHERE run_id = ? ORDER BY version').all(runId) as Array<{ version: number; parent: number | null; updates: number }>;
    db.close();
    const stored = new Set(updates.map((u) => u.seq));
    for (const seq of acked) assert.ok(stored.has(seq), `acknowledged update ${seq} is in the store`);
    assert.equal(new Set(updates.map((u) => u.leaseId)).size, updates.length, 'one update per lease');
    const folded = updates.filter((u) => u.foldedInto !== null);
    assert.ok(updates.length - folded.length < K, `fewer than K updates are left pending (${updates.length - folded.length})`);
    assert.equal(versions.at(-1)!.version, head, 'the served head is the newest version in the store');
    versions.slice(1).forEach((v, i) => {
      assert.equal(v.parent, i, `version ${v.version} follows version ${i}`);
      assert.equal(v.updates, K, `version ${v.version} folded exactly K updates`);
      assert.equal(folded.filter((u) => u.foldedInto === v.version).length, K, `version ${v.version} is recorded on exactly its K updates`);
    });
    // FedBuff with constant staleness and server SGD(1): each version adds the mean of its K deltas.
    const expectedShift = folded.reduce((s, u) => s + valueOfLease.get(u.leaseId)!, 0) / K;
    for (const name of ['fc.0.bias', 'fc.1.weight']) {
      const before = w0.get(name)!.data;
      const after = wHead.get(name)!.data;
      for (const i of [0, 3, before.length - 1]) {
        assert.ok(Math.abs(after[i]! - before[i]! - expectedShift) < 2e-6, `${name}[${i}] moved by ${after[i]! - before[i]!}, expected ${expectedShift}`);
      }
    }
    console.log(`fault test: ${kills} kills (${faults.length} at fault points), ${acked.size} acknowledged, ${updates.length} stored, ${folded.length} folded into ${head} versions`);
  });
});
