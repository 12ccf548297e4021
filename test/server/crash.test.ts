// Kill -9 the coordinator several times while devices upload, restart it on the same data directory, and check
// from the database and the weights that no acknowledged update was lost and none was folded twice:
//   - every update the server answered 202 for is in the store;
//   - every stored update is folded into exactly one version or still pending (fewer than K pending);
//   - the head weights equal version 0 plus the FedBuff steps of exactly the folded updates.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { encodeUpdate } from '../../src/core/protocol/update-wire.ts';
import { decodeSafetensors } from '../../src/core/safetensors.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { spawnCoordinator } from './spawn-coordinator.ts';

const ADMIN = 'crash-test-admin-token-0123456789';
const K = 3;
const KILLS = 4;

const startServer = (dataDir: string) => spawnCoordinator(dataDir, { adminToken: ADMIN });

async function kill9(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

describe('coordinator crash safety', () => {
  it('loses no acknowledged update and folds each exactly once across repeated SIGKILLs', { timeout: 240_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tessera-crash-'));
    let server = await startServer(dataDir);
    const post = async (path: string, token: string, body: unknown) => {
      const r = await fetch(server.url + path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: r.status, body: await r.json() };
    };
    const created = await post('/v1/runs', ADMIN, {
      name: 'crash', task: 'fashion-mlp', model: { kind: 'mlp', inputs: 784, hidden: [8], classes: 10 },
      aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: K, staleness: { kind: 'constant' } } },
    });
    assert.equal(created.status, 201, 'run created');
    const runId: string = created.body.runId;
    const tokens: string[] = [];
    for (let d = 0; d < 2; d++) tokens.push((await post(`/v1/runs/${runId}/devices`, created.body.joinToken, { profile: { memoryMiB: 64, examplesPerSecond: 10 } })).body.deviceToken);
    const w0 = decodeSafetensors(new Uint8Array(await (await fetch(`${server.url}/v1/runs/${runId}/versions/0/weights`)).arrayBuffer())).tensors;

    // Each lease uploads a constant delta of its own value, so the head weights reveal which updates were folded.
    const valueOfLease = new Map<string, number>();
    const acked = new Set<number>();
    let k = 0;
    const device = async (token: string, stop: () => boolean) => {
      while (!stop()) {
        try {
          const l = await post(`/v1/runs/${runId}/leases`, token, {});
          if (l.status !== 200 || l.body.lease === null) continue;
          const value = 1e-4 * (1 + (k++ % 7));
          valueOfLease.set(l.body.lease.leaseId, value);
          const delta = new Map<string, Tensor>([...w0].map(([n, t]) => [n, { shape: t.shape, data: new Float32Array(t.data.length).fill(value) }]));
          const r = await fetch(`${server.url}/v1/runs/${runId}/leases/${l.body.lease.leaseId}/update`, {
            method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
            body: encodeUpdate(delta, { numExamples: 1, localSteps: 1, metrics: {} }) as Uint8Array<ArrayBuffer>,
          });
          if (r.status === 202) acked.add(((await r.json()) as { updateId: number }).updateId);
          else await r.arrayBuffer();
        } catch {
          await new Promise((r) => setTimeout(r, 20)); // the coordinator is down; it comes back
        }
      }
    };

    for (let round = 0; round <= KILLS; round++) {
      let stopped = false;
      const ackedBefore = acked.size;
      const devices = tokens.map((t) => device(t, () => stopped));
      // Let a few updates through, then kill mid-traffic (devices keep sending while the process dies).
      while (acked.size < ackedBefore + 4 + round) await new Promise((r) => setTimeout(r, 5));
      if (round < KILLS) await kill9(server.child);
      stopped = true;
      await Promise.all(devices);
      if (round < KILLS) server = await startServer(dataDir);
    }
    const head = (await (await fetch(`${server.url}/v1/runs/${runId}`)).json()) as { head: number };
    const wHead = decodeSafetensors(new Uint8Array(await (await fetch(`${server.url}/v1/runs/${runId}/versions/head/weights`)).arrayBuffer())).tensors;
    server.child.kill('SIGTERM');
    await new Promise((r) => server.child.once('exit', r));

    const db = new Database(join(dataDir, 'tessera.db'), { readonly: true });
    const updates = db.prepare('SELECT seq, lease_id AS leaseId, folded_into AS foldedInto FROM updates WHERE run_id = ?').all(runId) as Array<{ seq: number; leaseId: string; foldedInto: number | null }>;
    const versions = db.prepare('SELECT version, updates FROM versions WHERE run_id = ? ORDER BY version').all(runId) as Array<{ version: number; updates: number }>;
    db.close();

    const stored = new Set(updates.map((u) => u.seq));
    for (const seq of acked) assert.ok(stored.has(seq), `acknowledged update ${seq} is in the store`);
    const folded = updates.filter((u) => u.foldedInto !== null);
    const pending = updates.length - folded.length;
    assert.ok(pending < K, `fewer than K updates are left pending (${pending})`);
    assert.equal(versions.at(-1)!.version, head.head, 'the served head is the newest version in the store');
    assert.ok(head.head >= KILLS, `training went on across the restarts (head ${head.head})`);
    for (const v of versions.slice(1)) {
      assert.equal(folded.filter((u) => u.foldedInto === v.version).length, v.updates, `version ${v.version} records the updates folded into it`);
      assert.equal(v.updates, K, `version ${v.version} folded exactly K updates`);
    }
    // FedBuff with constant staleness and server SGD(1): each version adds the mean of its K deltas.
    const expectedShift = folded.reduce((s, u) => s + valueOfLease.get(u.leaseId)!, 0) / K;
    for (const name of ['fc.0.bias', 'fc.1.weight']) {
      const before = w0.get(name)!.data;
      const after = wHead.get(name)!.data;
      for (const i of [0, 5, before.length - 1]) {
        assert.ok(Math.abs(after[i]! - before[i]! - expectedShift) < 2e-6, `${name}[${i}] moved by ${after[i]! - before[i]!}, expected ${expectedShift}`);
      }
    }
    console.log(`crash test: ${KILLS} kills, ${acked.size} acknowledged, ${updates.length} stored, ${folded.length} folded into ${head.head} versions`);
  });
});
