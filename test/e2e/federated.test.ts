// End to end over real HTTP: a coordinator and three `tessera join` device processes, each holding a Dirichlet
// label-skewed shard of Fashion-MNIST, train one model asynchronously; held-out loss falls across versions.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startCoordinator } from '../../src/server/http/serve.node.ts';

const DEVICES = 3;
const LEASES = 6;

function joinProcess(url: string, runId: string, token: string, shard: number, stateDir: string): Promise<number> {
  const child = spawn(process.execPath, [
    '--import', 'tsx', 'src/cli/main.ts', 'join', url, '--run', runId, '--token', token, '--shard', String(shard),
    '--state-dir', stateDir, '--max-leases', String(LEASES), '--quiet',
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
      eval: { everyVersions: 1, batches: 10, batchSize: 200 },
    });
    const codes = await Promise.all(
      Array.from({ length: DEVICES }, (_, i) => joinProcess(srv.url, runId, joinToken, i, join(dir, `device-${i}`))),
    );
    assert.deepEqual(codes, new Array(DEVICES).fill(0), 'every device exits cleanly after its leases');
    const run = srv.coordinator.run(runId);
    await run.idle();
    const versions = (await run.versions(100)).reverse();
    await srv.close();

    assert.equal(versions.at(-1)!.version, (DEVICES * LEASES) / 2, 'every update reached a version (K = 2)');
    const first = versions[0]!.metrics.heldOutLoss;
    const last = versions.at(-1)!.metrics.heldOutLoss;
    assert.ok(first !== undefined && last !== undefined, 'the first and last versions were evaluated');
    assert.ok(first > 2.0, `version 0 is near chance (loss ${first})`);
    assert.ok(last < first - 0.5, `held-out loss fell from ${first.toFixed(3)} to ${last.toFixed(3)}`);
    console.log(`e2e: ${versions.length - 1} versions, held-out loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  });
});
