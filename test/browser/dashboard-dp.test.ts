// The dashboard of a differentially private run shows the privacy spent: epsilon at the run's delta among the summary
// figures (from GET /v1/runs/:run, RunSummary.privacy) and per version in the versions table (version metric
// `epsilon`), both equal to what the API reports. A run without DP shows neither.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeUpdate } from '../../src/core/protocol/update-wire.ts';
import { decodeSafetensors } from '../../src/core/safetensors.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { coordinatorWithBrowser } from './chromium.ts';

const ADMIN = 'dashboard-dp-admin-token-01234567';
const MODEL = { kind: 'mlp' as const, inputs: 784, hidden: [4], classes: 10 };
const DELTA = 1e-5;

describe('dashboard of a differentially private run', () => {
  const { srv, browser } = coordinatorWithBrowser('dashboard-dp', { adminToken: ADMIN, evaluate: false, log: () => {} });

  const post = async (path: string, token: string, body: unknown) => {
    const r = await fetch(srv().url + path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: r.status, body: await r.json() };
  };
  /** Creates a run and has one device upload `versions` constant updates (K = 1: one version each). */
  const runWithVersions = async (strategy: unknown, versions: number): Promise<string> => {
    const created = await post('/v1/runs', ADMIN, { name: 'dp', task: 'fashion-mlp', model: MODEL, aggregation: { mode: 'async', strategy } });
    assert.equal(created.status, 201, `run created: ${JSON.stringify(created.body)}`);
    const runId: string = created.body.runId;
    const token: string = (await post(`/v1/runs/${runId}/devices`, created.body.joinToken, { profile: { memoryMiB: 64, examplesPerSecond: 10 } })).body.deviceToken;
    const w0 = decodeSafetensors((await srv().coordinator.run(runId).weights(0)).bytes).tensors;
    const body = encodeUpdate(new Map<string, Tensor>([...w0].map(([n, t]) => [n, { shape: t.shape, data: new Float32Array(t.data.length).fill(1e-3) }])), { numExamples: 1, localSteps: 1, metrics: {} });
    for (let i = 0; i < versions; i++) {
      const lease = (await post(`/v1/runs/${runId}/leases`, token, {})).body.lease.leaseId;
      const r = await fetch(`${srv().url}/v1/runs/${runId}/leases/${lease}/update`, {
        method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }, body: body as Uint8Array<ArrayBuffer>,
      });
      assert.equal(r.status, 202, `update ${i} accepted`);
    }
    return runId;
  };
  /** The number in "ε = 1.23 at δ = 1e-5" (or a table cell "ε = 1.23"). */
  const epsilonIn = (text: string | null) => Number(/ε = ([\d.,]+)/.exec(text ?? '')?.[1]?.replace(/,/g, '') ?? NaN);

  it('shows epsilon at the run\'s delta in the summary and per version', { timeout: 120_000 }, async () => {
    const runId = await runWithVersions({
      kind: 'dp', inner: { kind: 'fedbuff', bufferSize: 1 },
      noiseMultiplier: 1.1, clip: { kind: 'fixed', norm: 0.5 }, samplingRate: 0.01, delta: DELTA, noiseSeed: 7,
    }, 3);
    const summary = (await (await fetch(`${srv().url}/v1/runs/${runId}`)).json()) as { privacy: { epsilon: number; delta: number } };
    const versions = (await (await fetch(`${srv().url}/v1/runs/${runId}/versions`)).json()) as { versions: Array<{ version: number; metrics: { epsilon?: number } }> };
    const epsilonOf = new Map(versions.versions.map((v) => [v.version, v.metrics.epsilon]));
    assert.ok(summary.privacy.epsilon > 0, `the API reports a positive epsilon after 3 versions (${summary.privacy.epsilon})`);
    assert.equal(epsilonOf.get(3), summary.privacy.epsilon, 'the head version carries the same epsilon as the summary');

    const page = await browser().newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${srv().url}/runs/${runId}`);
    await page.waitForFunction(() => document.getElementById('figure-head')?.textContent === '3', undefined, { timeout: 30_000 });
    const figure = await page.locator('#figure-privacy').textContent({ timeout: 10_000 });
    const label = await page.locator('[data-figure="privacy"] dt').textContent();
    assert.equal(label, 'Privacy spent', 'the figure is labelled');
    assert.match(figure ?? '', /^ε = [\d.,]+ at δ = 1e-5$/, `the summary names epsilon and the delta it holds at: ${figure}`);
    const shown = epsilonIn(figure);
    assert.ok(Math.abs(shown - summary.privacy.epsilon) <= 0.005 * summary.privacy.epsilon, `the summary shows the API's epsilon (${shown} vs ${summary.privacy.epsilon})`);

    const headers = await page.locator('#versions-table thead th').allTextContents();
    assert.ok(headers.includes('Epsilon'), `the versions table has an Epsilon column: ${headers.join(', ')}`);
    for (const v of [1, 2, 3]) {
      const cell = await page.locator(`tr[data-version="${v}"] td[data-column="epsilon"]`).textContent({ timeout: 10_000 });
      const expected = epsilonOf.get(v)!;
      assert.ok(Math.abs(epsilonIn(cell) - expected) <= 0.005 * expected, `version ${v} shows epsilon ${cell}, the API says ${expected}`);
    }
    assert.ok(epsilonIn(await page.locator('tr[data-version="1"] td[data-column="epsilon"]').textContent()) < shown, 'epsilon grows with the versions');
    assert.equal(await page.locator('tr[data-version="0"] td[data-column="epsilon"]').textContent(), '–', 'version 0 spent nothing and shows a dash');
    assert.deepEqual(errors, [], 'no page errors');
    await page.close();
  });

  it('shows no privacy figure or column for a run without DP', { timeout: 60_000 }, async () => {
    const runId = await runWithVersions({ kind: 'fedbuff', bufferSize: 1 }, 1);
    const page = await browser().newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${srv().url}/runs/${runId}`);
    await page.waitForFunction(() => document.getElementById('figure-head')?.textContent === '1', undefined, { timeout: 30_000 });
    await page.locator('tr[data-version="1"]').waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('#figure-privacy').count(), 0, 'no privacy figure');
    const headers = await page.locator('#versions-table thead th').allTextContents();
    assert.ok(!headers.includes('Epsilon') && headers.includes('Version'), `no Epsilon column: ${headers.join(', ')}`);
    await page.close();
  });
});
