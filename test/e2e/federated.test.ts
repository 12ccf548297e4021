// End to end over real HTTP: a coordinator and four `tessera join` device processes, each holding a Dirichlet
// label-skewed shard of Fashion-MNIST, train one model asynchronously; held-out loss falls across versions. One device
// is too small for the model and trains rolling width submodels chosen by the planner.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { startCoordinator } from '../../src/server/http/serve.node.ts';

/** The plan kinds of the leases that delivered an update. */
async function leasePlans(dbPath: string, runId: string): Promise<Set<string>> {
  const db = new Database(dbPath, { readonly: true });
  const rows = db.prepare("SELECT body FROM leases WHERE run_id = ? AND status = 'used'").all(runId) as Array<{ body: string }>;
  db.close();
  return new Set(rows.map((r) => (JSON.parse(r.body) as { plan: { kind: string } }).plan.kind));
}

const DEVICES = 3;
const LEASES = 6;
const SMALL_LEASES = 2;

function joinProcess(url: string, runId: string, token: string, shard: number, stateDir: string, memoryMiB: number, leases: number): Promise<number> {
  const child = spawn(process.execPath, [
    '--import', 'tsx', 'src/cli/main.ts', 'join', url, '--run', runId, '--token', token, '--shard', String(shard),
    '--state-dir', stateDir, '--max-leases', String(leases), '--memory', String(memoryMiB), '--quiet',
  ], { env: { ...process.env, TESSERA_THREADS: '0' }, stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
}

describe('federated training end to end', () => {
  it('three device processes improve the held-out loss of the shared model', { timeout: 300_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-e2e-'));
    const srv = await startCoordinator({ dataDir: join(dir, 'coordinator'), port: 0, adminToken: 'e2e-admin-token-0123456789', log: () => {} });
    const { runId, joinToken } = await srv.coordinator.createRun({
      name: 'e2e', task: 'fashion-mlp', model: { kind: 'mlp', inputs: 784, hidden: [64], classes: 10 },
      aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 2 } },
      recipe: { localSteps: 25, batchSize: 32, lr: 2e-3, optimizer: 'adamw' },
      // A fourth device declares 1 MiB: the planner gives it rolling width submodels; the others train the full model.
      planner: { submodels: 'rolling', leaseSeconds: 1, minSteps: 10, maxSteps: 25 },
      eval: { everyVersions: 1, batches: 10, batchSize: 200 },
    });
    const codes = await Promise.all(
      Array.from({ length: DEVICES + 1 }, (_, i) =>
        joinProcess(srv.url, runId, joinToken, i, join(dir, `device-${i}`), i < DEVICES ? 4096 : 1, i < DEVICES ? LEASES : SMALL_LEASES)),
    );
    assert.deepEqual(codes, new Array(DEVICES + 1).fill(0), 'every device exits cleanly after its leases');
    const run = srv.coordinator.run(runId);
    await run.idle();
    const plans = await leasePlans(join(dir, 'coordinator', 'tessera.db'), runId);
    const versions = (await run.versions(100)).reverse();
    await srv.close();

    assert.equal(versions.at(-1)!.version, (DEVICES * LEASES + SMALL_LEASES) / 2, 'every update reached a version (K = 2)');
    const first = versions[0]!.metrics.heldOutLoss;
    const last = versions.at(-1)!.metrics.heldOutLoss;
    assert.ok(first !== undefined && last !== undefined, 'the first and last versions were evaluated');
    assert.ok(first > 2.0, `version 0 is near chance (loss ${first})`);
    assert.ok(last < first - 0.5, `held-out loss fell from ${first.toFixed(3)} to ${last.toFixed(3)}`);
    assert.ok(plans.has('width') && plans.has('full'), `the small device trained submodels, the others the full model (${[...plans]})`);
    console.log(`e2e: ${versions.length - 1} versions, held-out loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  });
});
