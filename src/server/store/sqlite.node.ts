/**
 * The embedded MetadataStore on SQLite (better-sqlite3). Guarantees:
 * - every write is one transaction, committed with WAL and synchronous=FULL before its promise resolves, so whatever
 *   a caller was told survives kill -9 and power loss;
 * - acceptUpdate, commitVersion and createRun either apply whole or change nothing (they throw instead);
 * - a lease is consumed at most once: its status moves open -> used inside acceptUpdate, and updates.(run_id,
 *   lease_id) is unique besides;
 * - the schema carries its version in PRAGMA user_version; older files are migrated on open, newer ones refused.
 * One process writes a database at a time (the coordinator); busy_timeout only smooths over readers such as backups.
 */
import Database from 'better-sqlite3';
import {
  LeaseStateError,
  StoreError,
  type DeviceRecord,
  type IssuedPlans,
  type LeaseRecord,
  type DeviceActivity,
  type LeaseStatus,
  type LeaseTraffic,
  type MetadataStore,
  type NewDownload,
  type NewUpdate,
  type StalenessCount,
  type TrafficTotals,
  type VersionTraffic,
  type RunRecord,
  type RunStatus,
  type SecureMember,
  type UpdateRecord,
  type VersionRecord,
} from './store.ts';

/** MIGRATIONS[i] takes a database from schema version i to i + 1; append, never edit. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE runs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, config TEXT NOT NULL, join_token_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'paused')), head INTEGER NOT NULL, created_at REAL NOT NULL
  ) STRICT;
  CREATE TABLE versions (
    run_id TEXT NOT NULL REFERENCES runs (id), version INTEGER NOT NULL, parent INTEGER, params_hash TEXT NOT NULL,
    state_hash TEXT, created_at REAL NOT NULL, updates INTEGER NOT NULL, metrics TEXT NOT NULL,
    PRIMARY KEY (run_id, version)
  ) STRICT;
  CREATE TABLE devices (
    run_id TEXT NOT NULL REFERENCES runs (id), id TEXT NOT NULL, token_hash TEXT NOT NULL, profile TEXT NOT NULL,
    registered_at REAL NOT NULL, last_seen REAL NOT NULL,
    PRIMARY KEY (run_id, id)
  ) STRICT;
  CREATE TABLE leases (
    run_id TEXT NOT NULL, id TEXT NOT NULL, device_id TEXT NOT NULL, base_version INTEGER NOT NULL, body TEXT NOT NULL,
    issued_at REAL NOT NULL, deadline REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'used', 'expired')),
    PRIMARY KEY (run_id, id), FOREIGN KEY (run_id, device_id) REFERENCES devices (run_id, id)
  ) STRICT;
  CREATE INDEX leases_by_status ON leases (run_id, status, deadline);
  -- AUTOINCREMENT: seq is the store-wide acceptance order recovery replays, so it must never be reused.
  CREATE TABLE updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, lease_id TEXT NOT NULL, device_id TEXT NOT NULL,
    base_version INTEGER NOT NULL, blob_hash TEXT NOT NULL, num_examples INTEGER NOT NULL,
    local_steps INTEGER NOT NULL, metrics TEXT NOT NULL, bytes INTEGER NOT NULL, accepted_at REAL NOT NULL,
    folded_into INTEGER,
    UNIQUE (run_id, lease_id),
    FOREIGN KEY (run_id, lease_id) REFERENCES leases (run_id, id),
    FOREIGN KEY (run_id, folded_into) REFERENCES versions (run_id, version)
  ) STRICT;
  CREATE INDEX updates_by_fold ON updates (run_id, folded_into);
  `,
  // 1 -> 2: byte accounting of weights downloads, aggregated per (version, device, lease) so the table grows with
  // leases, not with requests. '' stands for "anonymous" and "no lease" (primary key columns cannot be NULL here).
  `
  CREATE TABLE downloads (
    run_id TEXT NOT NULL REFERENCES runs (id), version INTEGER NOT NULL, device_id TEXT NOT NULL, lease_id TEXT NOT NULL,
    bytes INTEGER NOT NULL, count INTEGER NOT NULL, last_at REAL NOT NULL,
    PRIMARY KEY (run_id, version, device_id, lease_id)
  ) STRICT, WITHOUT ROWID;
  `,
  // 2 -> 3: each device's contribution and traffic kept as running sums on its row (updated in the transactions that
  // accept an update or record a download), so the dashboard reads them without grouping every update; backfilled.
  `
  ALTER TABLE devices ADD COLUMN updates INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE devices ADD COLUMN examples INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE devices ADD COLUMN compute_seconds REAL NOT NULL DEFAULT 0;
  ALTER TABLE devices ADD COLUMN bytes_up INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE devices ADD COLUMN bytes_down INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE devices ADD COLUMN downloads INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE devices ADD COLUMN last_update_at REAL;
  UPDATE devices SET (updates, examples, compute_seconds, bytes_up, last_update_at) = (
    SELECT count(*), coalesce(sum(num_examples), 0), coalesce(sum(coalesce(json_extract(metrics, '$.trainSeconds'), 0)), 0),
      coalesce(sum(bytes), 0), max(accepted_at)
    FROM updates u WHERE u.run_id = devices.run_id AND u.device_id = devices.id);
  UPDATE devices SET (bytes_down, downloads) = (
    SELECT coalesce(sum(bytes), 0), coalesce(sum(count), 0)
    FROM downloads w WHERE w.run_id = devices.run_id AND w.device_id = devices.id);
  `,
  // 3 -> 4: version lineage of model growth (src/core/growth): the GrowthRecord (operator, old and new model spec)
  // of a version that grew the model, as JSON; NULL for every other version.
  `
  ALTER TABLE versions ADD COLUMN growth TEXT;
  `,
  // 4 -> 5: compressed downlink (src/core/codecs/downlink.ts): the blob hash and byte size of each version's encoded
  // step from its parent, so weightsFrom can size and serve a chain of steps without reading them; NULL otherwise.
  `
  ALTER TABLE versions ADD COLUMN downlink_hash TEXT;
  ALTER TABLE versions ADD COLUMN downlink_bytes INTEGER;
  `,
];
export const SCHEMA_VERSION = MIGRATIONS.length;

interface RunRow {
  id: string;
  name: string;
  config: string;
  join_token_hash: string;
  status: RunStatus;
  head: number;
  created_at: number;
}
interface VersionRow {
  run_id: string;
  version: number;
  parent: number | null;
  params_hash: string;
  state_hash: string | null;
  created_at: number;
  updates: number;
  metrics: string;
  growth: string | null;
  downlink_hash: string | null;
  downlink_bytes: number | null;
}
interface DeviceRow {
  run_id: string;
  id: string;
  token_hash: string;
  profile: string;
  registered_at: number;
  last_seen: number;
}
interface LeaseRow {
  run_id: string;
  id: string;
  device_id: string;
  base_version: number;
  body: string;
  issued_at: number;
  deadline: number;
  status: LeaseStatus;
}
interface UpdateRow {
  seq: number;
  run_id: string;
  lease_id: string;
  device_id: string;
  base_version: number;
  blob_hash: string;
  num_examples: number;
  local_steps: number;
  metrics: string;
  bytes: number;
  accepted_at: number;
  folded_into: number | null;
}

interface DeviceActivityRow {
  id: string;
  profile: string;
  registered_at: number;
  last_seen: number;
  last_lease_at: number | null;
  open_leases: number;
  last_update_at: number | null;
  updates: number;
  examples: number;
  compute: number;
  bytes_up: number;
  bytes_down: number;
  downloads: number;
}
interface LeaseTrafficRow {
  id: string;
  device_id: string;
  base_version: number;
  issued_at: number;
  deadline: number;
  status: LeaseStatus;
  bytes_up: number;
  bytes_down: number;
}

export class SqliteStore implements MetadataStore {
  private readonly stmt;

  private constructor(private readonly db: Database.Database) {
    const p = <P extends unknown[], R = unknown>(sql: string) => db.prepare<P, R>(sql);
    this.stmt = {
      insertRun: p<[string, string, string, string, string, number, number]>(
        'INSERT INTO runs (id, name, config, join_token_hash, status, head, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      getRun: p<[string], RunRow>('SELECT * FROM runs WHERE id = ?'),
      listRuns: p<[], RunRow>('SELECT * FROM runs ORDER BY created_at, id'),
      setRunStatus: p<[string, string]>('UPDATE runs SET status = ? WHERE id = ?'),
      setHead: p<[number, string]>('UPDATE runs SET head = ? WHERE id = ?'),

      insertVersion: p<[string, number, number | null, string, string | null, number, number, string, string | null, number | null]>(
        `INSERT INTO versions (run_id, version, parent, params_hash, state_hash, created_at, updates, metrics, downlink_hash, downlink_bytes)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      insertGrownVersion: p<[string, number, number | null, string, string | null, number, number, string, string]>(
        `INSERT INTO versions (run_id, version, parent, params_hash, state_hash, created_at, updates, metrics, growth)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      setRunConfig: p<[string, string]>('UPDATE runs SET config = ? WHERE id = ?'),
      latestGrowth: p<[string], { version: number; growth: string }>(
        'SELECT version, growth FROM versions WHERE run_id = ? AND growth IS NOT NULL ORDER BY version DESC LIMIT 1',
      ),
      expireAllOpenLeases: p<[string]>("UPDATE leases SET status = 'expired' WHERE run_id = ? AND status = 'open'"),
      getVersion: p<[string, number], VersionRow>('SELECT * FROM versions WHERE run_id = ? AND version = ?'),
      listVersions: p<[string, number], VersionRow>(
        'SELECT * FROM versions WHERE run_id = ? ORDER BY version DESC LIMIT ?',
      ),
      setVersionMetrics: p<[string, string, number]>(
        'UPDATE versions SET metrics = ? WHERE run_id = ? AND version = ?',
      ),

      insertDevice: p<[string, string, string, string, number, number]>(
        'INSERT INTO devices (run_id, id, token_hash, profile, registered_at, last_seen) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      getDevice: p<[string, string], DeviceRow>('SELECT * FROM devices WHERE run_id = ? AND id = ?'),
      touchDevice: p<[number, string | null, string, string]>(
        'UPDATE devices SET last_seen = ?, profile = coalesce(?, profile) WHERE run_id = ? AND id = ?',
      ),
      countDevices: p<[string], number>('SELECT count(*) FROM devices WHERE run_id = ?').pluck(),

      insertLease: p<[string, string, string, number, string, number, number, string]>(
        `INSERT INTO leases (run_id, id, device_id, base_version, body, issued_at, deadline, status)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      getLease: p<[string, string], LeaseRow>('SELECT * FROM leases WHERE run_id = ? AND id = ?'),
      useLease: p<[string, string]>(
        "UPDATE leases SET status = 'used' WHERE run_id = ? AND id = ? AND status = 'open'",
      ),
      useMemberLease: p<[string, string]>("UPDATE leases SET status = 'used' WHERE run_id = ? AND id = ?"),
      expireLeases: p<[string, number]>(
        "UPDATE leases SET status = 'expired' WHERE run_id = ? AND status = 'open' AND deadline < ?",
      ),
      countOpenLeases: p<[string], number>(
        "SELECT count(*) FROM leases WHERE run_id = ? AND status = 'open'",
      ).pluck(),
      countIssuedPlans: p<[string], { kind: string; ratio: number | null; count: number | null; leases: number }>(
        `SELECT json_extract(body, '$.plan.kind') AS kind, json_extract(body, '$.plan.ratio') AS ratio,
           json_extract(body, '$.plan.count') AS count, count(*) AS leases
         FROM leases WHERE run_id = ? GROUP BY 1, 2, 3`,
      ),

      insertUpdate: p<[string, string, string, number, string, number, number, string, number, number], UpdateRow>(
        `INSERT INTO updates (run_id, lease_id, device_id, base_version, blob_hash, num_examples, local_steps, metrics,
           bytes, accepted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`,
      ),
      pendingUpdates: p<[string], UpdateRow>(
        'SELECT * FROM updates WHERE run_id = ? AND folded_into IS NULL ORDER BY seq',
      ),
      downloadLease: p<[string, string, number], string>(
        `SELECT id FROM leases WHERE run_id = ? AND device_id = ? AND base_version = ? AND status = 'open'
         ORDER BY issued_at DESC LIMIT 1`,
      ).pluck(),
      recordDownload: p<[string, number, string, string, number, number]>(
        `INSERT INTO downloads (run_id, version, device_id, lease_id, bytes, count, last_at) VALUES (?, ?, ?, ?, ?, 1, ?)
         ON CONFLICT DO UPDATE SET bytes = bytes + excluded.bytes, count = count + 1, last_at = excluded.last_at`,
      ),
      updateTotals: p<[string], { bytes: number; n: number }>(
        'SELECT coalesce(sum(bytes), 0) AS bytes, count(*) AS n FROM updates WHERE run_id = ?',
      ),
      downloadTotals: p<[string], { bytes: number; n: number }>(
        'SELECT coalesce(sum(bytes), 0) AS bytes, coalesce(sum(count), 0) AS n FROM downloads WHERE run_id = ?',
      ),
      updatesByVersion: p<[string, number, number], { version: number; bytes: number; n: number }>(
        `SELECT folded_into AS version, sum(bytes) AS bytes, count(*) AS n FROM updates
         WHERE run_id = ? AND folded_into BETWEEN ? AND ? GROUP BY folded_into`,
      ),
      downloadsByVersion: p<[string, number, number], { version: number; bytes: number; n: number }>(
        `SELECT version, sum(bytes) AS bytes, sum(count) AS n FROM downloads
         WHERE run_id = ? AND version BETWEEN ? AND ? GROUP BY version`,
      ),
      countUpdate: p<[number, number, number, number, string, string]>(
        `UPDATE devices SET updates = updates + 1, examples = examples + ?, compute_seconds = compute_seconds + ?,
           bytes_up = bytes_up + ?, last_update_at = ? WHERE run_id = ? AND id = ?`,
      ),
      countDownload: p<[number, string, string]>(
        'UPDATE devices SET bytes_down = bytes_down + ?, downloads = downloads + 1 WHERE run_id = ? AND id = ?',
      ),
      // Open leases are few and indexed (leases_by_status); the running sums live on the device rows.
      deviceActivity: p<[string, number, string, number], DeviceActivityRow>(
        `SELECT d.id, d.profile, d.registered_at, d.last_seen, o.last_lease_at, coalesce(o.open_leases, 0) AS open_leases,
           d.last_update_at, d.updates, d.examples, d.compute_seconds AS compute, d.bytes_up, d.bytes_down, d.downloads
         FROM devices d
         LEFT JOIN (SELECT device_id, max(issued_at) AS last_lease_at, count(*) AS open_leases
           FROM leases WHERE run_id = ? AND status = 'open' AND deadline >= ? GROUP BY device_id) o ON o.device_id = d.id
         WHERE d.run_id = ?
         ORDER BY d.updates DESC, d.last_seen DESC, d.id LIMIT ?`,
      ),
      leaseTraffic: p<[string, string, number], LeaseTrafficRow>(
        `SELECT l.id, l.device_id, l.base_version, l.issued_at, l.deadline, l.status,
           coalesce(u.bytes, 0) AS bytes_up, coalesce(w.bytes, 0) AS bytes_down
         FROM leases l
         LEFT JOIN updates u ON u.run_id = l.run_id AND u.lease_id = l.id
         LEFT JOIN (SELECT lease_id, sum(bytes) AS bytes FROM downloads WHERE run_id = ? AND lease_id <> ''
           GROUP BY lease_id) w ON w.lease_id = l.id
         WHERE l.run_id = ?
         ORDER BY l.issued_at DESC, l.id LIMIT ?`,
      ),
      openLeaseTraffic: p<[string, number, number], LeaseTrafficRow>(
        `SELECT l.id, l.device_id, l.base_version, l.issued_at, l.deadline, l.status,
           0 AS bytes_up, coalesce((SELECT sum(bytes) FROM downloads w
             WHERE w.run_id = l.run_id AND w.version = l.base_version AND w.device_id = l.device_id AND w.lease_id = l.id), 0) AS bytes_down
         FROM leases l
         WHERE l.run_id = ? AND l.status = 'open' AND l.deadline >= ?
         ORDER BY l.issued_at DESC, l.id LIMIT ?`,
      ),
      stalenessCounts: p<[number, string], StalenessCount>(
        `SELECT coalesce(folded_into - 1, ?) - base_version AS staleness, count(*) AS updates
         FROM updates WHERE run_id = ? GROUP BY 1 ORDER BY 1`,
      ),

      foldUpdate: p<[number, number, string]>(
        'UPDATE updates SET folded_into = ? WHERE seq = ? AND run_id = ? AND folded_into IS NULL',
      ),
    };
  }

  /** Opens or creates the database at `path` (':memory:' for a private in-memory one) and brings its schema current. */
  static open(path: string): SqliteStore {
    let db: Database.Database;
    try {
      db = new Database(path);
    } catch (e) {
      throw new StoreError(`cannot open database ${path}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    try {
      db.pragma('busy_timeout = 5000');
      // Refuse before any pragma below writes to a file a newer build owns.
      const found = db.pragma('user_version', { simple: true }) as number;
      if (found > SCHEMA_VERSION) {
        throw new StoreError(
          `database ${path} has schema version ${found}, newer than this build's ${SCHEMA_VERSION}: upgrade Tessera`,
        );
      }
      db.pragma('journal_mode = WAL');
      // FULL: in WAL mode NORMAL may lose the last commits on power loss, and those are updates already acknowledged.
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      db.transaction(() => {
        const from = db.pragma('user_version', { simple: true }) as number;
        for (let v = from; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!);
        if (from < SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
      }).immediate();
      return new SqliteStore(db);
    } catch (e) {
      db.close();
      if (e instanceof StoreError) throw e;
      throw new StoreError(`cannot open database ${path}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
  }

  async createRun(run: RunRecord, initial: VersionRecord): Promise<void> {
    this.write(`createRun(${run.id})`, () => {
      if (initial.runId !== run.id || initial.version !== run.head) {
        throw new StoreError(
          `createRun(${run.id}): initial version ${initial.runId}@${initial.version} is not the run's head ${run.head}`,
        );
      }
      const s = this.stmt;
      s.insertRun.run(run.id, run.name, run.config, run.joinTokenHash, run.status, run.head, run.createdAt);
      this.insertVersion(initial);
    });
  }

  async getRun(id: string): Promise<RunRecord | undefined> {
    const row = this.stmt.getRun.get(id);
    return row && toRun(row);
  }

  async listRuns(): Promise<RunRecord[]> {
    return this.stmt.listRuns.all().map(toRun);
  }

  async setRunStatus(id: string, status: RunStatus): Promise<void> {
    this.write(`setRunStatus(${id})`, () => {
      if (this.stmt.setRunStatus.run(status, id).changes !== 1) throw new StoreError(`no run ${id}`);
    });
  }

  async registerDevice(d: DeviceRecord): Promise<void> {
    this.write(`registerDevice(${d.runId}, ${d.id})`, () => {
      this.stmt.insertDevice.run(d.runId, d.id, d.tokenHash, d.profile, d.registeredAt, d.lastSeen);
    });
  }

  async getDevice(runId: string, id: string): Promise<DeviceRecord | undefined> {
    const row = this.stmt.getDevice.get(runId, id);
    return row && toDevice(row);
  }

  async touchDevice(runId: string, id: string, at: number, profile?: string): Promise<void> {
    this.write(`touchDevice(${runId}, ${id})`, () => {
      if (this.stmt.touchDevice.run(at, profile ?? null, runId, id).changes !== 1) {
        throw new StoreError(`no device ${id} in run ${runId}`);
      }
    });
  }

  async countDevices(runId: string): Promise<number> {
    return this.stmt.countDevices.get(runId) ?? 0;
  }

  async createLease(l: LeaseRecord): Promise<void> {
    // A lease lost to a power cut costs its device one retry, so its commit skips the fsync (synchronous=NORMAL);
    // this is the check-in hot path. Durability of what matters is unaffected: the WAL is written in order, and the
    // next FULL commit (an accepted update, a version) syncs every frame before it, lease rows included.
    this.db.pragma('synchronous = NORMAL');
    try {
      this.write(`createLease(${l.runId}, ${l.id})`, () => {
        this.stmt.insertLease.run(l.runId, l.id, l.deviceId, l.baseVersion, l.body, l.issuedAt, l.deadline, l.status);
      });
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  async getLease(runId: string, id: string): Promise<LeaseRecord | undefined> {
    const row = this.stmt.getLease.get(runId, id);
    return row && toLease(row);
  }

  async expireLeases(runId: string, now: number): Promise<number> {
    return this.write(`expireLeases(${runId})`, () => this.stmt.expireLeases.run(runId, now).changes);
  }

  async countOpenLeases(runId: string): Promise<number> {
    return this.stmt.countOpenLeases.get(runId) ?? 0;
  }

  async countIssuedPlans(runId: string): Promise<IssuedPlans[]> {
    return this.stmt.countIssuedPlans.all(runId).map((r) => ({
      kind: r.kind as IssuedPlans['kind'], leases: r.leases,
      ...(r.ratio === null ? {} : { ratio: r.ratio }), ...(r.count === null ? {} : { count: r.count }),
    }));
  }

  async acceptUpdate(u: NewUpdate, now: number): Promise<UpdateRecord> {
    return this.write(`acceptUpdate(${u.runId}, ${u.leaseId})`, () => {
      const lease = this.stmt.getLease.get(u.runId, u.leaseId);
      const refuse = (state: LeaseStateError['state'], why: string) =>
        new LeaseStateError(state, `lease ${u.leaseId} of run ${u.runId} ${why}`);
      if (!lease) throw refuse('missing', 'does not exist');
      // Checked before the status so a device learns nothing about another device's lease.
      if (lease.device_id !== u.deviceId) throw refuse('wrong-device', `was not issued to device ${u.deviceId}`);
      if (lease.status !== 'open') throw refuse(lease.status, `is ${lease.status}`);
      if (now > lease.deadline) throw refuse('past-deadline', `passed its deadline ${lease.deadline} (now ${now})`);
      this.stmt.useLease.run(u.runId, u.leaseId);
      const row = this.stmt.insertUpdate.get(
        u.runId, u.leaseId, u.deviceId, u.baseVersion, u.blobHash, u.numExamples, u.localSteps, u.metrics, u.bytes,
        u.acceptedAt,
      );
      this.stmt.countUpdate.run(u.numExamples, trainSeconds(u.metrics), u.bytes, u.acceptedAt, u.runId, u.deviceId);
      return toUpdate(row!);
    });
  }

  async acceptSecureSum(u: NewUpdate, members: readonly SecureMember[], now: number): Promise<UpdateRecord> {
    return this.write(`acceptSecureSum(${u.runId}, ${u.leaseId})`, () => {
      if (!members.some((m) => m.leaseId === u.leaseId && m.deviceId === u.deviceId)) {
        throw new StoreError(`the sum's lease ${u.leaseId} is not one of its members'`);
      }
      for (const m of members) {
        const lease = this.stmt.getLease.get(u.runId, m.leaseId);
        const refuse = (state: LeaseStateError['state'], why: string) => new LeaseStateError(state, `lease ${m.leaseId} of run ${u.runId} ${why}`);
        if (!lease) throw refuse('missing', 'does not exist');
        if (lease.device_id !== m.deviceId) throw refuse('wrong-device', `was not issued to device ${m.deviceId}`);
        if (lease.status === 'used') throw refuse('used', 'is used');
        this.stmt.useMemberLease.run(u.runId, m.leaseId);
        this.stmt.countUpdate.run(m.examples, 0, m.bytes, now, u.runId, m.deviceId);
      }
      const row = this.stmt.insertUpdate.get(
        u.runId, u.leaseId, u.deviceId, u.baseVersion, u.blobHash, u.numExamples, u.localSteps, u.metrics, u.bytes,
        u.acceptedAt,
      );
      return toUpdate(row!);
    });
  }

  async pendingUpdates(runId: string): Promise<UpdateRecord[]> {
    return this.stmt.pendingUpdates.all(runId).map(toUpdate);
  }

  async commitVersion(v: VersionRecord, folded: readonly number[]): Promise<void> {
    this.write(`commitVersion(${v.runId}, ${v.version})`, () => {
      const run = this.stmt.getRun.get(v.runId);
      if (!run) throw new StoreError(`no run ${v.runId}`);
      if (v.version !== run.head + 1 || v.parent !== run.head) {
        throw new StoreError(
          `version ${v.version} (parent ${v.parent}) does not follow run ${v.runId}'s head ${run.head}`,
        );
      }
      this.insertVersion(v);
      for (const seq of folded) {
        if (this.stmt.foldUpdate.run(v.version, seq, v.runId).changes !== 1) {
          throw new StoreError(`update ${seq} is not pending in run ${v.runId}`);
        }
      }
      this.stmt.setHead.run(v.version, v.runId);
    });
  }

  async commitGrowth(v: VersionRecord & { growth: string }, config: string): Promise<{ expiredLeases: number }> {
    return this.write(`commitGrowth(${v.runId}, ${v.version})`, () => {
      const run = this.stmt.getRun.get(v.runId);
      if (!run) throw new StoreError(`no run ${v.runId}`);
      if (v.version !== run.head + 1 || v.parent !== run.head) {
        throw new StoreError(`version ${v.version} (parent ${v.parent}) does not follow run ${v.runId}'s head ${run.head}`);
      }
      if (this.stmt.pendingUpdates.all(v.runId).length > 0) {
        throw new StoreError(`run ${v.runId} has acknowledged updates not yet folded; commit them before growing`);
      }
      this.stmt.insertGrownVersion.run(
        v.runId, v.version, v.parent, v.paramsHash, v.stateHash, v.createdAt, v.updates, encodeMetrics(v.metrics), v.growth,
      );
      this.stmt.setHead.run(v.version, v.runId);
      this.stmt.setRunConfig.run(config, v.runId);
      return { expiredLeases: this.stmt.expireAllOpenLeases.run(v.runId).changes };
    });
  }

  async latestGrowth(runId: string): Promise<{ version: number; growth: string } | undefined> {
    return this.stmt.latestGrowth.get(runId);
  }

  async getVersion(runId: string, version: number): Promise<VersionRecord | undefined> {
    const row = this.stmt.getVersion.get(runId, version);
    return row && toVersion(row);
  }

  async listVersions(runId: string, limit: number): Promise<VersionRecord[]> {
    return this.stmt.listVersions.all(runId, Math.max(0, Math.floor(limit))).map(toVersion);
  }

  async setVersionMetrics(runId: string, version: number, metrics: Record<string, number>): Promise<void> {
    this.write(`setVersionMetrics(${runId}, ${version})`, () => {
      const row = this.stmt.getVersion.get(runId, version);
      if (!row) throw new StoreError(`no version ${version} in run ${runId}`);
      const merged = { ...decodeMetrics(row.metrics), ...metrics };
      this.stmt.setVersionMetrics.run(encodeMetrics(merged), runId, version);
    });
  }

  async recordDownload(d: NewDownload): Promise<{ leaseId: string | null }> {
    // Like a lease row, a download count lost to a power cut costs nothing but accuracy of a statistic: skip the fsync
    // on this hot path; the next FULL commit syncs it.
    this.db.pragma('synchronous = NORMAL');
    try {
      return this.write(`recordDownload(${d.runId}, ${d.version})`, () => {
        const leaseId = d.deviceId === null ? undefined : this.stmt.downloadLease.get(d.runId, d.deviceId, d.version);
        this.stmt.recordDownload.run(d.runId, d.version, d.deviceId ?? '', leaseId ?? '', d.bytes, d.at);
        if (d.deviceId !== null) this.stmt.countDownload.run(d.bytes, d.runId, d.deviceId);
        return { leaseId: leaseId ?? null };
      });
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  async trafficTotals(runId: string): Promise<TrafficTotals> {
    const up = this.stmt.updateTotals.get(runId)!;
    const down = this.stmt.downloadTotals.get(runId)!;
    return { bytesUp: up.bytes, bytesDown: down.bytes, updates: up.n, downloads: down.n };
  }

  async versionTraffic(runId: string, from: number, to: number): Promise<VersionTraffic[]> {
    const byVersion = new Map<number, VersionTraffic>();
    const at = (version: number) => {
      let t = byVersion.get(version);
      if (t === undefined) byVersion.set(version, (t = { version, bytesUp: 0, bytesDown: 0, updates: 0, downloads: 0 }));
      return t;
    };
    for (const r of this.stmt.updatesByVersion.all(runId, from, to)) Object.assign(at(r.version), { bytesUp: r.bytes, updates: r.n });
    for (const r of this.stmt.downloadsByVersion.all(runId, from, to)) Object.assign(at(r.version), { bytesDown: r.bytes, downloads: r.n });
    return [...byVersion.values()].sort((a, b) => a.version - b.version);
  }

  async deviceActivity(runId: string, now: number, limit: number): Promise<DeviceActivity[]> {
    return this.stmt.deviceActivity.all(runId, now, runId, Math.max(0, Math.floor(limit))).map((r) => ({
      deviceId: r.id, profile: r.profile, registeredAt: r.registered_at, lastSeen: r.last_seen,
      lastLeaseAt: r.last_lease_at, lastUpdateAt: r.last_update_at, openLeases: r.open_leases,
      updates: r.updates, examples: r.examples, computeSeconds: r.compute,
      bytesUp: r.bytes_up, bytesDown: r.bytes_down, downloads: r.downloads,
    }));
  }

  async leaseTraffic(runId: string, limit: number, openAt?: number): Promise<LeaseTraffic[]> {
    const n = Math.max(0, Math.floor(limit));
    const rows = openAt === undefined ? this.stmt.leaseTraffic.all(runId, runId, n) : this.stmt.openLeaseTraffic.all(runId, openAt, n);
    return rows.map((r) => ({
      leaseId: r.id, deviceId: r.device_id, baseVersion: r.base_version, issuedAt: r.issued_at, deadline: r.deadline,
      status: r.status, bytesUp: r.bytes_up, bytesDown: r.bytes_down,
    }));
  }

  async stalenessCounts(runId: string, head: number): Promise<StalenessCount[]> {
    return this.stmt.stalenessCounts.all(head, runId);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  private insertVersion(v: VersionRecord): void {
    this.stmt.insertVersion.run(
      v.runId, v.version, v.parent, v.paramsHash, v.stateHash, v.createdAt, v.updates, encodeMetrics(v.metrics),
      v.downlinkHash ?? null, v.downlinkBytes ?? null,
    );
  }

  /**
   * Runs `fn` as one IMMEDIATE transaction (taking the write lock up front, so a read-then-write never fails halfway
   * on a lock upgrade) and turns SQLite's constraint errors into StoreErrors naming the call.
   */
  private write<T>(what: string, fn: () => T): T {
    try {
      return this.db.transaction(fn).immediate();
    } catch (e) {
      if (e instanceof StoreError) throw e;
      if (e instanceof Database.SqliteError) throw new StoreError(`${what}: ${e.message}`, { cause: e });
      throw e;
    }
  }
}

/** The training seconds a device reported with an update (metric trainSeconds), 0 when absent or not a number. */
function trainSeconds(metrics: string): number {
  try {
    const v = (JSON.parse(metrics) as Record<string, unknown>).trainSeconds;
    return typeof v === 'number' && Number.isFinite(v) ? v : 0;
  } catch {
    return 0;
  }
}

// Metrics may hold NaN or Infinity (a diverged loss), which JSON cannot: they travel as the strings "NaN" etc.
const encodeMetrics = (m: Record<string, number>): string =>
  JSON.stringify(m, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));
const decodeMetrics = (text: string): Record<string, number> =>
  JSON.parse(text, (_k, v: unknown) => (typeof v === 'string' ? Number(v) : v)) as Record<string, number>;

const toRun = (r: RunRow): RunRecord => ({
  id: r.id,
  name: r.name,
  config: r.config,
  joinTokenHash: r.join_token_hash,
  status: r.status,
  head: r.head,
  createdAt: r.created_at,
});
const toVersion = (r: VersionRow): VersionRecord => ({
  runId: r.run_id,
  version: r.version,
  parent: r.parent,
  paramsHash: r.params_hash,
  stateHash: r.state_hash,
  createdAt: r.created_at,
  updates: r.updates,
  metrics: decodeMetrics(r.metrics),
  ...(r.growth === null || r.growth === undefined ? {} : { growth: r.growth }),
  ...(r.downlink_hash === null || r.downlink_hash === undefined || r.downlink_bytes === null ? {} : { downlinkHash: r.downlink_hash, downlinkBytes: r.downlink_bytes }),
});
const toDevice = (r: DeviceRow): DeviceRecord => ({
  id: r.id,
  runId: r.run_id,
  tokenHash: r.token_hash,
  profile: r.profile,
  registeredAt: r.registered_at,
  lastSeen: r.last_seen,
});
const toLease = (r: LeaseRow): LeaseRecord => ({
  id: r.id,
  runId: r.run_id,
  deviceId: r.device_id,
  baseVersion: r.base_version,
  body: r.body,
  issuedAt: r.issued_at,
  deadline: r.deadline,
  status: r.status,
});
const toUpdate = (r: UpdateRow): UpdateRecord => ({
  seq: r.seq,
  runId: r.run_id,
  leaseId: r.lease_id,
  deviceId: r.device_id,
  baseVersion: r.base_version,
  blobHash: r.blob_hash,
  numExamples: r.num_examples,
  localSteps: r.local_steps,
  metrics: r.metrics,
  bytes: r.bytes,
  acceptedAt: r.accepted_at,
  foldedInto: r.folded_into,
});
