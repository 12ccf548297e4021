// Continual runs on the coordinator, over real HTTP:
//   - a State of the Union run (task sotu) is evaluated on each era's held-out addresses as well as on the whole set,
//     and the stats read model reports forgetting per era (what the dashboard's Forgetting panel shows);
//   - a run with the anchor mitigation (continual.anchor) publishes every version pulled toward its anchor version by
//     (theta + mu a) / (1 + mu), checked against the same steps computed here from the plain run's versions;
//   - bad continual settings are refused.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeUpdate } from '../../src/core/protocol/update-wire.ts';
import { decodeSafetensors } from '../../src/core/safetensors.ts';
import { sotuTask } from '../../src/device/tasks/sotu.node.ts';
import { Coordinator } from '../../src/server/coordinator/coordinator.ts';
import { anchorVersion } from '../../src/core/continual/mitigation.ts';
import { sliceForgetting, type VersionPoint } from '../../src/server/coordinator/stats.ts';
import { startCoordinator, type RunningCoordinator } from '../../src/server/http/serve.node.ts';
import { createModel } from '../../src/train/models/registry.ts';
import { Trainer } from '../../src/train/trainer.ts';
import { exportRunVersion, readExport } from '../../src/cli/commands/export.ts';
import { loadTask } from '../../src/device/tasks/registry.node.ts';
import { apiClient } from './http-client.ts';

const ADMIN = 'continual-admin-token-0123456789';
let srv: RunningCoordinator;
const { call, weights, submitConstant } = apiClient(() => srv.url);

before(async () => {
  srv = await startCoordinator({ dataDir: mkdtempSync(join(tmpdir(), 'tessera-continual-')), port: 0, adminToken: ADMIN, evaluate: true, web: false, log: () => {} });
});
after(async () => srv.close());

async function createRun(config: object): Promise<{ runId: string; joinToken: string }> {
  const r = await call('/v1/runs', { method: 'POST', token: ADMIN, body: JSON.stringify(config) });
  assert.equal(r.status, 201, `run creation: ${JSON.stringify(r.body)}`);
  return r.body;
}

async function device(joinToken: string, runId: string): Promise<string> {
  const r = await call(`/v1/runs/${runId}/devices`, { method: 'POST', token: joinToken, body: JSON.stringify({ profile: { memoryMiB: 512, examplesPerSecond: 10 } }) });
  assert.equal(r.status, 201, `register: ${JSON.stringify(r.body)}`);
  return r.body.deviceToken;
}

/**
 * A run on a Coordinator opened directly on its own data directory (open() again to restart it), with one device
 * uploading constant updates (FedBuff K = 1: a version each) and the versions' weights, or served weights, flattened.
 */
function direct(config: object) {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-continual-direct-'));
  const logs: string[] = [];
  let c: Coordinator | undefined;
  let ids: { runId: string; deviceToken: string } | undefined;
  return {
    dataDir, logs,
    c: () => c!,
    runId: () => ids!.runId,
    async open() {
      c = await Coordinator.open({ dataDir, adminToken: ADMIN, evaluate: false, log: (m) => logs.push(m) });
      if (ids !== undefined) return;
      const { runId, joinToken } = await c.createRun({
        name: 'direct', task: 'fashion-mlp', model: { kind: 'mlp', inputs: 784, hidden: [4], classes: 10 },
        aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 1 } }, ...config,
      });
      ids = { runId, deviceToken: (await c.registerDevice(runId, joinToken, { memoryMiB: 1, examplesPerSecond: 1 })).deviceToken };
    },
    async submit(value: number) {
      const run = c!.run(ids!.runId);
      const device = await c!.authenticateDevice(ids!.runId, ids!.deviceToken);
      const lease = (await run.issueLease(device)).lease!;
      const base = decodeSafetensors((await run.weights(lease.baseVersion)).bytes).tensors;
      const delta = new Map([...base].map(([n, t]) => [n, { shape: t.shape, data: new Float32Array(t.data.length).fill(value) }]));
      await run.submitUpdate(device, lease.leaseId, encodeUpdate(delta, { numExamples: 1, localSteps: 1, metrics: {} }));
    },
    async flat(v: number, which: 'weights' | 'served' = 'weights') {
      const run = c!.run(ids!.runId);
      const { bytes } = which === 'weights' ? await run.weights(v) : await run.served(v);
      return Float64Array.from([...decodeSafetensors(bytes).tensors.values()].flatMap((t) => [...t.data]));
    },
  };
}

describe('continual runs', () => {
  it('a State of the Union run is evaluated on every era, and the stats report forgetting per era', { timeout: 120_000 }, async () => {
    const task = sotuTask({ context: 16 });
    const model = { kind: 'gpt' as const, vocabSize: task.vocab.size, context: 16, width: 16, heads: 2, layers: 1, mlpRatio: 4 };
    const { runId } = await createRun({ name: 'sotu', task: 'sotu', model, eval: { batches: 2, batchSize: 8 } });
    await srv.coordinator.idle();
    const v0 = (await call(`/v1/runs/${runId}/versions/0`)).body;
    const eras = task.eras.map((e) => `${e.firstYear}-${e.lastYear}`);
    assert.equal(eras.length, 6);
    // The same weights evaluated here on each era's own held-out batches, with the same batch settings.
    const trainer = await Trainer.create(createModel(model), await weights(runId, 0), { optimizer: { kind: 'sgd', lr: 1 } });
    try {
      for (const [e, id] of eras.entries()) {
        const got = v0.metrics[`heldOutLoss/${id}`];
        const want = (await trainer.evaluate(task.eras[e]!.evalBatches(8, 2))).loss;
        assert.ok(Math.abs(got - want) < 1e-5, `era ${id}: ${got} vs ${want}`);
      }
    } finally {
      trainer.dispose();
    }
    const losses = eras.map((id) => v0.metrics[`heldOutLoss/${id}`] as number);
    assert.ok(new Set(losses.map((l) => l.toFixed(6))).size > 1, 'eras differ: each was evaluated on its own text');
    const stats = (await call(`/v1/runs/${runId}/stats`)).body;
    assert.deepEqual(Object.keys(stats.versions[0].slices), eras, 'the version point carries every era');
    assert.deepEqual(stats.forgetting.map((f: { slice: string }) => f.slice), eras, 'forgetting rows in era order');
    assert.ok(stats.forgetting.every((f: { forgetting: number }) => f.forgetting === 0), 'one version: nothing forgotten yet');
  });

  it('sliceForgetting: current minus best, per slice, over the versions that evaluated it', () => {
    const p = (version: number, slices?: Record<string, number>): VersionPoint => ({ version, createdAt: version, updates: 1, bytesUp: 0, bytesDown: 0, ...(slices ? { slices } : {}) });
    const f = sliceForgetting([p(0, { a: 3, b: 4 }), p(1, { a: 2, b: 4.5 }), p(2), p(3, { a: 2.5, b: 3.5 }), p(4, { a: 2.25 })]);
    assert.deepEqual(f, [
      { slice: 'a', best: 2, bestVersion: 1, current: 2.25, currentVersion: 4, forgetting: 0.25 },
      { slice: 'b', best: 3.5, bestVersion: 3, current: 3.5, currentVersion: 3, forgetting: 0 },
    ]);
    assert.deepEqual(sliceForgetting([p(0), p(1)]), [], 'no slices, no rows');
  });

  it('anchorVersion: the newest multiple of every below the version, or the last growth', () => {
    assert.deepEqual([1, 2, 3, 4, 5].map((v) => anchorVersion(v, 2)), [0, 0, 2, 2, 4]);
    assert.deepEqual([1, 10, 11, 20, 21].map((v) => anchorVersion(v, 10)), [0, 0, 10, 10, 20]);
    assert.equal(anchorVersion(12, 10, 11), 11, 'a growth after the anchor replaces it (older weights have another shape)');
    assert.equal(anchorVersion(12, 10, 3), 10);
  });

  it('the anchor mitigation pulls every version toward its anchor by (theta + mu a) / (1 + mu)', { timeout: 60_000 }, async () => {
    const base = {
      task: 'fashion-mlp', model: { kind: 'mlp', inputs: 784, hidden: [4], classes: 10 }, seed: 3,
      aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 1 } }, eval: { everyVersions: 0 },
    };
    const mu = 0.5;
    const plain = await createRun({ ...base, name: 'plain' });
    const anchored = await createRun({ ...base, name: 'anchored', continual: { anchor: { mu, everyVersions: 2 } } });
    const [dp, da] = [await device(plain.joinToken, plain.runId), await device(anchored.joinToken, anchored.runId)];
    const steps = [0.01, -0.02, 0.03];
    for (const c of steps) {
      await submitConstant(plain.runId, dp, c);
      await submitConstant(anchored.runId, da, c);
    }
    const flat = async (runId: string, v: number) => Float64Array.from([...(await weights(runId, v)).values()].flatMap((t) => [...t.data]));
    const p0 = await flat(plain.runId, 0);
    assert.deepEqual(await flat(anchored.runId, 0), p0, 'same seed, same version 0');
    // The strategy's step on any base is the plain run's v - (v - 1) (one fresh constant update per version).
    const step = await Promise.all([1, 2, 3].map(async (v) => {
      const [a, b] = [await flat(plain.runId, v - 1), await flat(plain.runId, v)];
      return b.map((x, i) => x - a[i]!);
    }));
    assert.ok(step.every((s) => s.some((x) => x !== 0)), 'the plain run moved');
    const expected: Float64Array[] = [p0];
    for (let v = 1; v <= 3; v++) {
      const a = expected[v <= 2 ? 0 : 2]!; // anchors for everyVersions 2: versions 1 and 2 -> 0, version 3 -> 2
      expected.push(expected[v - 1]!.map((x, i) => (x + step[v - 1]![i]! + mu * a[i]!) / (1 + mu)));
    }
    for (let v = 1; v <= 3; v++) {
      const got = await flat(anchored.runId, v);
      let worst = 0;
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - expected[v]![i]!));
      assert.ok(worst < 1e-6, `version ${v}: max |difference| ${worst}`);
      const moved = got.reduce((m, x, i) => Math.max(m, Math.abs(x - (expected[v - 1]![i]! + step[v - 1]![i]!))), 0);
      assert.ok(moved > 1e-3, `version ${v} is not the unpulled step (differs by ${moved})`);
    }
  });

  it('an anchor whose file is damaged on disk: the version is pulled toward its parent instead, with a warning', { timeout: 60_000 }, async () => {
    const mu = 1;
    const d = direct({ continual: { anchor: { mu, everyVersions: 2 } } });
    await d.open();
    for (const v of [0.01, 0.02, 0.03]) await d.submit(v); // versions 1-3; version 3's anchor is version 2
    const anchorHash = (await d.c().run(d.runId()).version(2)).hash;
    await d.c().close();
    const file = join(d.dataDir, 'blobs', anchorHash.slice(0, 2), anchorHash.slice(2));
    const bytes = readFileSync(file);
    bytes[bytes.length - 1]! ^= 0xff;
    writeFileSync(file, bytes);
    await d.open();
    try {
      await d.submit(0.04); // version 4: its anchor, version 2, is damaged and not the head
      const [v3, v4] = [await d.flat(3), await d.flat(4)];
      // FedBuff K = 1 adds the fresh constant update (0.04); pulled toward version 3: v3 + 0.04 / (1 + mu).
      const worst = v4.reduce((m, x, i) => Math.max(m, Math.abs(x - (v3[i]! + 0.04 / (1 + mu)))), 0);
      assert.ok(worst < 1e-6, `version 4 is version 3 plus the pulled step (max |difference| ${worst})`);
      assert.ok(d.logs.some((m) => /the anchor of version 4 \(version 2\) cannot be read/.test(m)), `a warning says so: ${d.logs.join(' | ')}`);
    } finally {
      await d.c().close();
    }
  });

  it('the EMA survives a restart: the version after it continues the average', { timeout: 60_000 }, async () => {
    const beta = 0.75;
    const d = direct({ continual: { ema: { beta } } });
    await d.open();
    for (const v of [0.01, 0.02]) await d.submit(v);
    const before = await d.flat(2, 'served');
    await d.c().close();
    await d.open();
    try {
      assert.deepEqual(await d.flat(2, 'served'), before, 'version 2 serves the same average after the restart');
      await d.submit(0.03);
      const theta = await d.flat(3);
      const got = await d.flat(3, 'served');
      const worst = got.reduce((m, x, i) => Math.max(m, Math.abs(x - (beta * before[i]! + (1 - beta) * theta[i]!))), 0);
      assert.ok(worst < 1e-6, `version 3 continues the average (max |difference| ${worst})`);
    } finally {
      await d.c().close();
    }
  });

  it('the EMA mitigation serves, evaluates and exports the average of the versions while devices train the versions', { timeout: 120_000 }, async () => {
    const beta = 0.5;
    const model = { kind: 'gpt' as const, vocabSize: 65, context: 8, width: 16, heads: 2, layers: 1, mlpRatio: 4 };
    const run = await createRun({
      name: 'ema', task: 'shakespeare', model, aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 1 } },
      continual: { ema: { beta } }, eval: { batches: 2, batchSize: 8 },
    });
    const token = await device(run.joinToken, run.runId);
    for (const c of [0.02, 0.01, 0.03]) await submitConstant(run.runId, token, c);
    await srv.coordinator.idle();
    const served = async (v: number) => {
      const res = await fetch(`${srv.url}/v1/runs/${run.runId}/versions/${v}/served`);
      assert.equal(res.status, 200);
      return decodeSafetensors(new Uint8Array(await res.arrayBuffer())).tensors;
    };
    const flat = (m: Map<string, { data: Float32Array }>) => Float64Array.from([...m.values()].flatMap((t) => [...t.data]));
    // By hand: ema_0 = theta_0, ema_v = beta ema_{v-1} + (1 - beta) theta_v, with theta_v the versions devices train.
    let ema = flat(await weights(run.runId, 0));
    assert.deepEqual(flat(await served(0)), ema, 'version 0 serves itself');
    for (const v of [1, 2, 3]) {
      const theta = flat(await weights(run.runId, v));
      ema = ema.map((e, i) => beta * e + (1 - beta) * theta[i]!);
      const got = flat(await served(v));
      const worst = got.reduce((m, x, i) => Math.max(m, Math.abs(x - ema[i]!)), 0);
      assert.ok(worst < 1e-6, `version ${v} serves the EMA (max |difference| ${worst})`);
      assert.ok(got.some((x, i) => Math.abs(x - theta[i]!) > 1e-4), `version ${v}'s served weights are not its own`);
    }
    // The lease's base is the version itself, not the average.
    const lease = (await call(`/v1/runs/${run.runId}/leases`, { method: 'POST', token, body: '{}' })).body.lease;
    assert.equal(lease.baseVersion, 3);
    // Evaluation scores the served weights.
    const v3 = (await call(`/v1/runs/${run.runId}/versions/3`)).body;
    const task = await loadTask('shakespeare', model);
    const trainer = await Trainer.create(createModel(model), await served(3), { optimizer: { kind: 'sgd', lr: 1 } });
    try {
      const want = (await trainer.evaluate(task.evalBatches(8, 2))).loss;
      assert.ok(Math.abs(v3.metrics.heldOutLoss - want) < 1e-5, `held-out loss of the served weights: ${v3.metrics.heldOutLoss} vs ${want}`);
    } finally {
      trainer.dispose();
    }
    // An export carries the served weights.
    const out = join(mkdtempSync(join(tmpdir(), 'tessera-ema-export-')), 'export');
    await exportRunVersion({ url: srv.url, run: run.runId, version: '3', out });
    assert.deepEqual(flat(readExport(out).params), flat(await served(3)), 'the export is the average');
    assert.equal((await fetch(`${srv.url}/v1/runs/${run.runId}/versions/9/served`)).status, 404, 'no version 9');
  });

  it('refuses bad continual settings with the field named', async () => {
    for (const [continual, field] of [
      [{ anchor: { mu: 0, everyVersions: 2 } }, 'continual.anchor.mu'],
      [{ anchor: { mu: 1, everyVersions: 0 } }, 'continual.anchor.everyVersions'],
      [{ anchor: { mu: 1 } }, 'continual.anchor.everyVersions'],
      [{ ema: { beta: 1 } }, 'continual.ema.beta'],
      [{}, 'continual: name a mitigation'],
      [{ ewc: { lambda: 1 } }, 'continual'],
    ] as const) {
      const r = await call('/v1/runs', { method: 'POST', token: ADMIN, body: JSON.stringify({ name: 'bad', task: 'fashion-mlp', continual }) });
      assert.equal(r.status, 400, JSON.stringify(continual));
      assert.match(r.body.error.message, new RegExp(field.replace(/\./g, '\\.')), `${JSON.stringify(continual)}: ${r.body.error.message}`);
    }
  });
});
