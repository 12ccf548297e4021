// The dashboard of a continual run: a State of the Union run's versions are evaluated on each era (the coordinator's
// per-slice evaluation), and the Forgetting panel charts them and lists, per era, the best loss, the loss now and the
// difference, equal to what GET /v1/runs/:run/stats reports. A run whose task has no slices shows no such panel.
// Screenshot: artifacts/browser/dashboard-forgetting.png.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { encodeUpdate } from '../../src/core/protocol/update-wire.ts';
import { decodeSafetensors } from '../../src/core/safetensors.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { sotuTask } from '../../src/device/tasks/sotu.node.ts';
import type { SliceForgetting } from '../../src/server/coordinator/stats.ts';
import { ARTIFACTS, coordinatorWithBrowser } from './chromium.ts';

const ADMIN = 'dashboard-continual-admin-token-0123';

describe('dashboard of a continual run', () => {
  const { srv, browser } = coordinatorWithBrowser('dashboard-continual', { adminToken: ADMIN, evaluate: true, log: () => {} });

  const post = async (path: string, token: string, body: unknown) => {
    const r = await fetch(srv().url + path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: r.status, body: await r.json() };
  };
  /** A run with one device uploading `versions` updates of small random numbers (K = 1: a version each). */
  const runWithVersions = async (config: object, versions: number): Promise<string> => {
    const created = await post('/v1/runs', ADMIN, { ...config, aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 1 } }, eval: { batches: 2, batchSize: 8 } });
    assert.equal(created.status, 201, `run created: ${JSON.stringify(created.body)}`);
    const runId: string = created.body.runId;
    const token: string = (await post(`/v1/runs/${runId}/devices`, created.body.joinToken, { profile: { memoryMiB: 64, examplesPerSecond: 10 } })).body.deviceToken;
    const w0 = decodeSafetensors((await srv().coordinator.run(runId).weights(0)).bytes).tensors;
    for (let i = 0; i < versions; i++) {
      const delta = new Map<string, Tensor>([...w0].map(([n, t]) => [n, { shape: t.shape, data: Float32Array.from(t.data, (_x, j) => 0.05 * Math.sin(7 * j + i)) }]));
      const lease = (await post(`/v1/runs/${runId}/leases`, token, {})).body.lease.leaseId;
      const r = await fetch(`${srv().url}/v1/runs/${runId}/leases/${lease}/update`, {
        method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
        body: encodeUpdate(delta, { numExamples: 1, localSteps: 1, metrics: {} }) as Uint8Array<ArrayBuffer>,
      });
      assert.equal(r.status, 202, `update ${i} accepted`);
    }
    await srv().coordinator.idle();
    return runId;
  };

  it('charts each era\'s held-out loss and lists its forgetting as the stats API reports it', { timeout: 120_000 }, async () => {
    const vocab = sotuTask({ context: 16 }).vocab.size;
    const runId = await runWithVersions({ name: 'sotu', task: 'sotu', model: { kind: 'gpt', vocabSize: vocab, context: 16, width: 16, heads: 2, layers: 1, mlpRatio: 4 } }, 3);
    const stats = (await (await fetch(`${srv().url}/v1/runs/${runId}/stats`)).json()) as { forgetting: SliceForgetting[] };
    assert.equal(stats.forgetting.length, 6, 'six eras');
    const page = await browser().newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${srv().url}/runs/${runId}`);
    await page.locator('#forgetting').waitFor({ state: 'visible', timeout: 30_000 });
    await page.waitForFunction(() => document.querySelectorAll('#forgetting-table tbody tr').length === 6, undefined, { timeout: 30_000 });
    for (const f of stats.forgetting) {
      const cells = await page.locator(`#forgetting-table tr[data-slice="${f.slice}"] td`).allTextContents();
      const [best, bestVersion, current, currentVersion, forgetting] = cells;
      assert.ok(Math.abs(Number(best) - f.best) <= 0.005 * f.best, `${f.slice} best ${best} vs ${f.best}`);
      assert.equal(Number(bestVersion), f.bestVersion, `${f.slice} best version`);
      assert.ok(Math.abs(Number(current) - f.current) <= 0.005 * f.current, `${f.slice} now ${current} vs ${f.current}`);
      assert.equal(Number(currentVersion), 3, `${f.slice} evaluated at the head`);
      assert.ok(Math.abs(Number(forgetting) - f.forgetting) <= 0.005 * Math.max(f.forgetting, 1e-3) + 1e-3, `${f.slice} forgetting ${forgetting} vs ${f.forgetting}`);
    }
    const legend = await page.locator('#chart-slices .u-legend .u-series th').allTextContents();
    for (const f of stats.forgetting) assert.ok(legend.some((t) => t.includes(f.slice)), `the chart has a series for ${f.slice}: ${legend.join(', ')}`);
    await page.locator('#forgetting').screenshot({ path: join(ARTIFACTS, 'dashboard-forgetting.png') });
    assert.deepEqual(errors, [], 'no page errors');
    await page.close();
  });

  it('shows no Forgetting panel for a task without slices', { timeout: 60_000 }, async () => {
    const runId = await runWithVersions({ name: 'fashion', task: 'fashion-mlp', model: { kind: 'mlp', inputs: 784, hidden: [4], classes: 10 } }, 1);
    const page = await browser().newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${srv().url}/runs/${runId}`);
    await page.waitForFunction(() => document.getElementById('figure-head')?.textContent === '1', undefined, { timeout: 30_000 });
    await page.locator('tr[data-version="1"]').waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('#forgetting').isVisible(), false, 'the panel stays hidden');
    await page.close();
  });
});
