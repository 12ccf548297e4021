import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SCHEMA_VERSION, SqliteStore } from '../../../src/server/store/sqlite.node.ts';
import { LeaseStateError, StoreError } from '../../../src/server/store/store.ts';
import { device, lease, run, update, version } from './helpers.ts';

/** A store with run r1 at version 0, device d1 and d2, and open lease l1 for d1 (deadline 5000). */
async function seeded(store = SqliteStore.open(':memory:')): Promise<SqliteStore> {
  await store.createRun(run('r1'), version('r1', 0));
  await store.registerDevice(device('r1', 'd1'));
  await store.registerDevice(device('r1', 'd2'));
  await store.createLease(lease('r1', 'l1', 'd1'));
  return store;
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'tessera-sqlite-'));
}

const rejectsWith = (p: Promise<unknown>, state: LeaseStateError['state'], msg: string) =>
  assert.rejects(p, (e) => e instanceof LeaseStateError && e.state === state, msg);

test('runs: create, get, list, status; initial version recorded', async () => {
  const s = SqliteStore.open(':memory:');
  await s.createRun(run('r2', { createdAt: 2 }), version('r2', 0));
  await s.createRun(run('r1', { createdAt: 1 }), version('r1', 0, { metrics: { loss: 2.3 } }));
  assert.deepEqual(await s.getRun('r1'), run('r1', { createdAt: 1 }), 'run round-trips');
  assert.equal(await s.getRun('nope'), undefined, 'missing run is undefined');
  assert.deepEqual((await s.listRuns()).map((r) => r.id), ['r1', 'r2'], 'listRuns in creation order');
  assert.deepEqual(await s.getVersion('r1', 0), version('r1', 0, { metrics: { loss: 2.3 } }), 'initial version');
  await s.setRunStatus('r1', 'paused');
  assert.equal((await s.getRun('r1'))?.status, 'paused', 'status changed');
  await assert.rejects(s.setRunStatus('nope', 'paused'), StoreError, 'setRunStatus on a missing run');
  await assert.rejects(s.createRun(run('r1'), version('r1', 0)), StoreError, 'duplicate run id');
  await s.close();
});

test('createRun rejects an initial version that is not the head, creating nothing', async () => {
  const s = SqliteStore.open(':memory:');
  await assert.rejects(s.createRun(run('r1', { head: 0 }), version('r1', 3)), StoreError, 'version != head');
  await assert.rejects(s.createRun(run('r1'), version('other', 0)), StoreError, 'version of another run');
  assert.equal(await s.getRun('r1'), undefined, 'no run left behind');
  assert.deepEqual(await s.listRuns(), [], 'no runs');
  await s.close();
});

test('devices: register, get, touch, count; unknown run and duplicates refused', async () => {
  const s = await seeded();
  assert.deepEqual(await s.getDevice('r1', 'd1'), device('r1', 'd1'), 'device round-trips');
  assert.equal(await s.getDevice('r1', 'zz'), undefined, 'missing device');
  assert.equal(await s.countDevices('r1'), 2, 'two devices');
  assert.equal(await s.countDevices('nope'), 0, 'no devices in unknown run');
  await s.touchDevice('r1', 'd1', 9000);
  assert.equal((await s.getDevice('r1', 'd1'))?.lastSeen, 9000, 'lastSeen moved');
  assert.equal((await s.getDevice('r1', 'd1'))?.profile, device('r1', 'd1').profile, 'profile kept without one');
  await s.touchDevice('r1', 'd1', 9500, '{"kind":"web"}');
  assert.equal((await s.getDevice('r1', 'd1'))?.profile, '{"kind":"web"}', 'profile replaced');
  await assert.rejects(s.touchDevice('r1', 'zz', 1), StoreError, 'touch of a missing device');
  await assert.rejects(s.registerDevice(device('r1', 'd1')), StoreError, 'duplicate device');
  await assert.rejects(s.registerDevice(device('nope', 'd9')), StoreError, 'device of an unknown run');
  await s.close();
});

test('leases: create, get, expire, count open', async () => {
  const s = await seeded();
  await s.createLease(lease('r1', 'l2', 'd2', { deadline: 7000 }));
  assert.deepEqual(await s.getLease('r1', 'l1'), lease('r1', 'l1', 'd1'), 'lease round-trips');
  assert.equal(await s.getLease('r1', 'zz'), undefined, 'missing lease');
  assert.equal(await s.getLease('r2', 'l1'), undefined, 'leases are per run');
  assert.equal(await s.countOpenLeases('r1'), 2, 'two open');
  assert.equal(await s.expireLeases('r1', 5000), 0, 'deadline itself is not past');
  assert.equal(await s.expireLeases('r1', 6000), 1, 'l1 expires');
  assert.equal((await s.getLease('r1', 'l1'))?.status, 'expired', 'l1 expired');
  assert.equal((await s.getLease('r1', 'l2'))?.status, 'open', 'l2 still open');
  assert.equal(await s.countOpenLeases('r1'), 1, 'one open');
  assert.equal(await s.expireLeases('r1', 6000), 0, 'expiring again changes nothing');
  await assert.rejects(s.createLease(lease('r1', 'l2', 'd2')), StoreError, 'duplicate lease');
  await assert.rejects(s.createLease(lease('r1', 'l3', 'ghost')), StoreError, 'lease for an unregistered device');
  await s.close();
});

test('acceptUpdate consumes the lease and records the update; a second accept fails as used', async () => {
  const s = await seeded();
  const u = await s.acceptUpdate(update('r1', 'l1', 'd1'), 4000);
  assert.deepEqual(u, { ...update('r1', 'l1', 'd1'), seq: u.seq, foldedInto: null }, 'record returned');
  assert.ok(Number.isInteger(u.seq) && u.seq > 0, `seq ${u.seq}`);
  assert.equal((await s.getLease('r1', 'l1'))?.status, 'used', 'lease used');
  assert.deepEqual(await s.pendingUpdates('r1'), [u], 'pending has it');
  await rejectsWith(s.acceptUpdate(update('r1', 'l1', 'd1'), 4001), 'used', 'replay refused as used');
  assert.equal((await s.pendingUpdates('r1')).length, 1, 'replay recorded nothing');
  await s.close();
});

test('acceptUpdate refusals change nothing and name the state', async () => {
  const s = await seeded();
  await s.createLease(lease('r1', 'lx', 'd1', { deadline: 100 }));
  await s.expireLeases('r1', 200);
  await s.createLease(lease('r1', 'l2', 'd2'));
  const leases = async () => Promise.all(['l1', 'l2', 'lx'].map((id) => s.getLease('r1', id)));
  const before = await leases();
  await rejectsWith(s.acceptUpdate(update('r1', 'nope', 'd1'), 4000), 'missing', 'missing lease');
  await rejectsWith(s.acceptUpdate(update('r2', 'l1', 'd1'), 4000), 'missing', 'lease of another run');
  await rejectsWith(s.acceptUpdate(update('r1', 'l1', 'd2'), 4000), 'wrong-device', 'wrong device');
  await rejectsWith(s.acceptUpdate(update('r1', 'lx', 'd1'), 50), 'expired', 'expired lease');
  await rejectsWith(s.acceptUpdate(update('r1', 'l2', 'd2'), 5001), 'past-deadline', 'past deadline, not yet expired');
  await rejectsWith(s.acceptUpdate(update('r1', 'lx', 'd2'), 50), 'wrong-device', 'wrong device hides the state');
  assert.deepEqual(await s.pendingUpdates('r1'), [], 'no update recorded');
  assert.deepEqual(await leases(), before, 'leases unchanged');
  // The lease stays usable: only the refusal was refused.
  await s.acceptUpdate(update('r1', 'l2', 'd2'), 5000);
  assert.equal((await s.pendingUpdates('r1')).length, 1, 'l2 accepted at its deadline');
  await s.close();
});

test('acceptUpdate that fails inside the transaction rolls back the lease', async () => {
  const s = await seeded();
  // STRICT INTEGER column: a fractional example count fails the insert after the lease was marked used.
  await assert.rejects(s.acceptUpdate(update('r1', 'l1', 'd1', { numExamples: 1.5 }), 4000), StoreError, 'bad row');
  assert.equal((await s.getLease('r1', 'l1'))?.status, 'open', 'lease still open');
  assert.deepEqual(await s.pendingUpdates('r1'), [], 'nothing recorded');
  await s.close();
});

test('seq is the acceptance order across runs; pendingUpdates is per run and in order', async () => {
  const s = await seeded();
  await s.createRun(run('r2'), version('r2', 0));
  await s.registerDevice(device('r2', 'd1'));
  for (const [r, l] of [['r1', 'a'], ['r2', 'b'], ['r1', 'c'], ['r2', 'd']] as const) {
    await s.createLease(lease(r, l, 'd1'));
  }
  const seqs = [];
  for (const [r, l] of [['r1', 'c'], ['r2', 'b'], ['r1', 'a'], ['r2', 'd']] as const) {
    seqs.push((await s.acceptUpdate(update(r, l, 'd1'), 4000)).seq);
  }
  assert.deepEqual([...seqs].sort((a, b) => a - b), seqs, 'seq increases with acceptance');
  assert.deepEqual((await s.pendingUpdates('r1')).map((u) => u.leaseId), ['c', 'a'], 'r1 in acceptance order');
  assert.deepEqual((await s.pendingUpdates('r2')).map((u) => u.leaseId), ['b', 'd'], 'r2 in acceptance order');
  await s.close();
});

test('commitVersion records the version, folds the updates and moves the head together', async () => {
  const s = await seeded();
  await s.createLease(lease('r1', 'l2', 'd2'));
  await s.createLease(lease('r1', 'l3', 'd2'));
  const a = await s.acceptUpdate(update('r1', 'l1', 'd1'), 4000);
  const b = await s.acceptUpdate(update('r1', 'l2', 'd2'), 4000);
  const c = await s.acceptUpdate(update('r1', 'l3', 'd2'), 4000);
  const v1 = version('r1', 1, { updates: 2, stateHash: 'c'.repeat(64), metrics: { trainLoss: 0.4 } });
  await s.commitVersion(v1, [a.seq, b.seq]);
  assert.equal((await s.getRun('r1'))?.head, 1, 'head moved');
  assert.deepEqual(await s.getVersion('r1', 1), v1, 'version stored');
  assert.deepEqual(await s.pendingUpdates('r1'), [c], 'only c pending');
  await s.commitVersion(version('r1', 2), [c.seq]);
  assert.deepEqual(await s.pendingUpdates('r1'), [], 'none pending');
  await s.commitVersion(version('r1', 3), []);
  assert.deepEqual((await s.listVersions('r1', 2)).map((v) => v.version), [3, 2], 'newest first, limited');
  assert.deepEqual((await s.listVersions('r1', 10)).map((v) => v.version), [3, 2, 1, 0], 'all versions');
  assert.deepEqual(await s.listVersions('r1', 0), [], 'limit 0');
  assert.equal(await s.getVersion('r1', 9), undefined, 'missing version');
  await s.close();
});

test('commitVersion refusals change nothing', async () => {
  const s = await seeded();
  await s.createRun(run('r2'), version('r2', 0));
  await s.registerDevice(device('r2', 'd1'));
  await s.createLease(lease('r2', 'm1', 'd1'));
  const u = await s.acceptUpdate(update('r1', 'l1', 'd1'), 4000);
  const other = await s.acceptUpdate(update('r2', 'm1', 'd1'), 4000);
  const cases: [string, Promise<void>][] = [
    ['skips a version', s.commitVersion(version('r1', 2, { parent: 0 }), [u.seq])],
    ['repeats the head', s.commitVersion(version('r1', 0, { parent: null }), [u.seq])],
    ['wrong parent', s.commitVersion(version('r1', 1, { parent: null }), [u.seq])],
    ['unknown run', s.commitVersion(version('nope', 1), [])],
    ['unknown seq', s.commitVersion(version('r1', 1), [u.seq, 9999])],
    ["another run's update", s.commitVersion(version('r1', 1), [u.seq, other.seq])],
    ['same seq twice', s.commitVersion(version('r1', 1), [u.seq, u.seq])],
  ];
  for (const [why, p] of cases) await assert.rejects(p, StoreError, why);
  assert.equal((await s.getRun('r1'))?.head, 0, 'head unchanged');
  assert.equal(await s.getVersion('r1', 1), undefined, 'no version 1');
  assert.deepEqual(await s.pendingUpdates('r1'), [u], 'update still pending');
  assert.deepEqual(await s.pendingUpdates('r2'), [other], 'other run untouched');
  await s.commitVersion(version('r1', 1), [u.seq]);
  await assert.rejects(s.commitVersion(version('r1', 2), [u.seq]), StoreError, 'already folded');
  assert.equal((await s.getRun('r1'))?.head, 1, 'head at 1');
  await s.close();
});

test('setVersionMetrics merges, keeps non-finite numbers, refuses missing versions', async () => {
  const s = await seeded();
  await s.setVersionMetrics('r1', 0, { evalLoss: 2.5, evalAcc: 0.1 });
  await s.setVersionMetrics('r1', 0, { evalAcc: 0.2, gradNorm: Infinity, loss: NaN, neg: -Infinity });
  const m = (await s.getVersion('r1', 0))?.metrics;
  assert.deepEqual(m, { evalLoss: 2.5, evalAcc: 0.2, gradNorm: Infinity, loss: NaN, neg: -Infinity }, 'merged');
  await assert.rejects(s.setVersionMetrics('r1', 7, { a: 1 }), StoreError, 'missing version');
  await s.close();
});

test('everything survives close and reopen from the same file', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'meta.db');
    const s = await seeded(SqliteStore.open(path));
    await s.createLease(lease('r1', 'l2', 'd2', { deadline: 10 }));
    const u = await s.acceptUpdate(update('r1', 'l1', 'd1'), 4000);
    await s.commitVersion(version('r1', 1, { metrics: { x: 1 } }), []);
    await s.expireLeases('r1', 4000);
    await s.close();
    await s.close(); // idempotent

    const r = SqliteStore.open(path);
    assert.equal((await r.getRun('r1'))?.head, 1, 'head');
    assert.deepEqual(await r.getVersion('r1', 1), version('r1', 1, { metrics: { x: 1 } }), 'version');
    assert.equal(await r.countDevices('r1'), 2, 'devices');
    assert.equal((await r.getLease('r1', 'l1'))?.status, 'used', 'used lease');
    assert.equal((await r.getLease('r1', 'l2'))?.status, 'expired', 'expired lease');
    assert.deepEqual(await r.pendingUpdates('r1'), [u], 'pending update');
    // seq keeps growing after reopen (AUTOINCREMENT), so acceptance order stays global.
    await r.createLease(lease('r1', 'l9', 'd1'));
    assert.ok((await r.acceptUpdate(update('r1', 'l9', 'd1'), 4000)).seq > u.seq, 'seq grows across reopen');
    await r.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('open sets WAL, synchronous=FULL, foreign keys and the schema version', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'meta.db');
    await SqliteStore.open(path).close();
    const db = new Database(path, { readonly: true });
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal', 'WAL persisted in the file');
    assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION, 'schema version');
    const indexes = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").pluck().all();
    assert.deepEqual([...indexes].sort(), ['leases_by_status', 'updates_by_fold'], 'indexes');
    db.close();
    // Per-connection pragmas, checked through the store's own connection.
    const s = SqliteStore.open(path);
    const conn = (s as unknown as { db: Database.Database }).db;
    assert.equal(conn.pragma('synchronous', { simple: true }), 2, 'synchronous = FULL');
    assert.equal(conn.pragma('foreign_keys', { simple: true }), 1, 'foreign keys on');
    assert.equal(conn.pragma('busy_timeout', { simple: true }), 5000, 'busy timeout');
    await s.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a database from a newer schema is refused and left untouched', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'meta.db');
    const db = new Database(path);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    assert.throws(
      () => SqliteStore.open(path),
      (e) => e instanceof StoreError && /newer/.test(e.message) && e.message.includes(String(SCHEMA_VERSION + 1)),
      'newer schema refused with a clear message',
    );
    const check = new Database(path, { readonly: true });
    assert.equal(check.pragma('journal_mode', { simple: true }), 'delete', 'journal mode not switched');
    assert.equal(check.prepare('SELECT count(*) FROM sqlite_master').pluck().get(), 0, 'no tables created');
    check.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unopenable path is a StoreError', () => {
  assert.throws(() => SqliteStore.open('/nonexistent-dir/x/meta.db'), StoreError, 'missing parent directory');
});

test('10,000 registered devices', async (t) => {
  const s = SqliteStore.open(':memory:');
  await s.createRun(run('r1'), version('r1', 0));
  const heap = process.memoryUsage().heapUsed;
  const start = performance.now();
  for (let i = 0; i < 10_000; i++) await s.registerDevice(device('r1', `device-${i}`, { registeredAt: i }));
  const ms = performance.now() - start;
  assert.equal(await s.countDevices('r1'), 10_000, 'all registered');
  assert.equal((await s.getDevice('r1', 'device-9999'))?.registeredAt, 9999, 'last one readable');
  const mib = (process.memoryUsage().heapUsed - heap) / 2 ** 20;
  t.diagnostic(`10k registrations in ${ms.toFixed(0)} ms, JS heap +${mib.toFixed(1)} MiB`);
  await s.close();
});
