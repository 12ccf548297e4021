import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { SqliteStore } from '../../../src/server/store/sqlite.node.ts';
import { lease, update } from './helpers.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/accept-loop.ts', import.meta.url));

/** Runs the accept loop in a child, SIGKILLs it once `acks` updates were acknowledged, returns the complete lines. */
function runAndKill(dbPath: string, acks: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, dbPath], { cwd: root });
    let out = '', err = '', killed = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (!killed && out.split('\n').filter((l) => l.startsWith('u ')).length >= acks) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`child exited with ${code} before the kill: ${err}`));
      // A line cut by the kill has no newline and was never fully printed: drop it.
      else resolve(out.split('\n').slice(0, -1));
    });
  });
}

test('every update acknowledged before kill -9 is there after reopen', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-crash-'));
  try {
    const path = join(dir, 'meta.db');
    const lines = await runAndKill(path, 300);
    const acked = lines.filter((l) => l.startsWith('u ')).map((l) => Number(l.slice(2)));
    const versions = lines.filter((l) => l.startsWith('v ')).map((l) => l.split(' '));
    assert.ok(acked.length >= 300, `child acknowledged ${acked.length} updates`);

    const store = SqliteStore.open(path);
    const run = await store.getRun('r1');
    const lastVersion = Number(versions.at(-1)?.[1] ?? 0);
    assert.ok(run !== undefined && run.head >= lastVersion, `head ${run?.head} covers acked version ${lastVersion}`);
    const db = new Database(path, { readonly: true });
    const folded = new Map(
      db.prepare<[], { seq: number; folded_into: number | null }>('SELECT seq, folded_into FROM updates').all()
        .map((r) => [r.seq, r.folded_into]),
    );
    db.close();
    const missing = acked.filter((seq) => !folded.has(seq));
    assert.deepEqual(missing, [], 'no acknowledged update lost');
    for (const [, v, seqs] of versions) {
      const wrong = seqs!.split(',').map(Number).filter((seq) => folded.get(seq) !== Number(v));
      assert.deepEqual(wrong, [], `updates of acked version ${v} are folded into it`);
    }
    // Pending is exactly what the last committed version did not fold, and the store carries on from there.
    const pending = await store.pendingUpdates('r1');
    assert.deepEqual(pending.map((u) => u.foldedInto), pending.map(() => null), 'pending are unfolded');
    assert.equal(pending.length, [...folded.values()].filter((v) => v === null).length, 'pending count');
    await store.createLease(lease('r1', 'after', 'd1'));
    const next = await store.acceptUpdate(update('r1', 'after', 'd1'), 4000);
    assert.ok(next.seq > Math.max(...folded.keys()), `seq ${next.seq} continues after recovery`);
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
