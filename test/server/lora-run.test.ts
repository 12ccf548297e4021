// LoRA runs on the coordinator over real HTTP (planner.lora; plan kind 'lora'):
//   - devices of different memory get leases of different ranks; each uploads only adapters (*.lora_A, *.lora_B);
//   - the version after N LoRA updates of different ranks equals base + the example-weighted mean of s_k A_k B_k,
//     computed here with plain loops and again with FLoRA's stacking + merge (src/core/lora.ts), and nothing but the
//     targets moves;
//   - untrained adapters (B = 0) change nothing; wrong shapes, a missing B, NaN, a full-model delta on a LoRA lease
//     and a product above the norm bound are refused with a clear error and change nothing;
//   - config validation: targets the model lacks, ranks above min(in, out), top-k codecs;
//   - a device running the lease loop trains adapters and uploads them: bytes per update against a full-model update
//     of the same model, both measured on the wire.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loraNames, mergeLora, stackLora, type LoraContribution } from '../../src/core/lora.ts';
import type { GptSpec } from '../../src/core/model-spec.ts';
import type { Lease } from '../../src/core/protocol/schemas.ts';
import { encodeUpdate } from '../../src/core/protocol/update-wire.ts';
import { Rng } from '../../src/core/rng.ts';
import { decodeSafetensors } from '../../src/core/safetensors.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { CoordinatorClient, CoordinatorError, type DeviceCredentials } from '../../src/device/client.ts';
import { MemoryIdentityStore } from '../../src/device/identity.ts';
import { runLeaseLoop, type DeviceEvent } from '../../src/device/lease-loop.ts';
import { loadTask } from '../../src/device/tasks/registry.node.ts';
import { MemoryWeightsCache } from '../../src/device/weights-cache.ts';
import { startCoordinator, type RunningCoordinator } from '../../src/server/http/serve.node.ts';

const ADMIN = 'admin-token-for-lora-tests-0123456789';
let dir: string;
let srv: RunningCoordinator;
let model: GptSpec;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-lora-run-'));
  const base = (await loadTask('shakespeare')).model as GptSpec;
  model = { ...base, context: 8, width: 16, heads: 2, layers: 1, mlpRatio: 2 };
  srv = await startCoordinator({ dataDir: join(dir, 'coordinator'), port: 0, adminToken: ADMIN, evaluate: false, log: () => {} });
});
after(async () => {
  await srv.close();
});

async function createRun(config: Record<string, unknown>): Promise<{ status: number; body: any }> {
  const res = await fetch(`${srv.url}/v1/runs`, {
    method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'lora', task: 'shakespeare', model, recipe: { localSteps: 2, batchSize: 2, lr: 1e-2 }, ...config }),
  });
  return { status: res.status, body: await res.json() };
}

async function weightsOf(runId: string, version: number | 'head'): Promise<Map<string, Tensor>> {
  const res = await fetch(`${srv.url}/v1/runs/${runId}/versions/${version}/weights`);
  assert.equal(res.status, 200);
  return decodeSafetensors(new Uint8Array(await res.arrayBuffer())).tensors;
}

const TIERS = [{ rank: 4, minMemoryMiB: 4096 }, { rank: 2, minMemoryMiB: 1024 }, { rank: 1, alpha: 3 }];
const PLANNER = { leaseSeconds: 30, maxSteps: 2, lora: { tiers: TIERS } };

type LoraPlan = Extract<Lease['plan'], { kind: 'lora' }>;

/** Adapters for a lease's plan, Gaussian with std `std` (B too: "trained" adapters), or B = 0 when untrained. */
function adaptersFor(plan: LoraPlan, base: Map<string, Tensor>, seed: number, std = 0.1, zeroB = false): Map<string, Tensor> {
  const rng = new Rng(seed);
  const out = new Map<string, Tensor>();
  for (const target of plan.targets) {
    const [inDim, outDim] = base.get(target)!.shape as [number, number];
    const { a, b } = loraNames(target);
    out.set(a, { shape: [inDim, plan.rank], data: Float32Array.from({ length: inDim * plan.rank }, () => std * rng.normal()) });
    out.set(b, { shape: [plan.rank, outDim], data: Float32Array.from({ length: plan.rank * outDim }, () => (zeroB ? 0 : std * rng.normal())) });
  }
  return out;
}

async function device(client: CoordinatorClient, run: { runId: string; joinToken: string }, memoryMiB: number) {
  const creds = await client.register(run.runId, run.joinToken, { memoryMiB, examplesPerSecond: 100 });
  const res = await client.requestLease(run.runId, creds);
  assert.ok(res.lease !== null, `a lease for a ${memoryMiB} MiB device`);
  return { creds, lease: res.lease };
}

async function refused(client: CoordinatorClient, runId: string, leaseId: string, creds: DeviceCredentials, body: Uint8Array, message: RegExp, what: string) {
  await assert.rejects(client.uploadUpdate(runId, leaseId, creds, body), (e: unknown) => {
    assert.ok(e instanceof CoordinatorError, `${what}: a CoordinatorError (${String(e)})`);
    assert.equal(e.code, 'invalid_update', `${what}: invalid_update (${e.message})`);
    assert.match(e.message, message, what);
    return true;
  }, what);
}

describe('LoRA runs on the coordinator', () => {
  it('refuses configs whose targets or ranks do not fit the model, and top-k codecs, naming the field', async () => {
    const missing = await createRun({ planner: { lora: { targets: ['h.0.attn.c_attn.weight', 'h.3.mlp.c_fc.weight'], tiers: [{ rank: 2 }] } } });
    assert.equal(missing.status, 400);
    assert.match(missing.body.error.message, /planner\.lora\.targets: LoRA target h\.3\.mlp\.c_fc\.weight is not a parameter of the model/);
    const big = await createRun({ planner: { lora: { tiers: [{ rank: 2 }, { rank: 17 }] } } });
    assert.equal(big.status, 400);
    assert.match(big.body.error.message, /planner\.lora\.tiers\.1\.rank: LoRA rank 17 exceeds min\(in, out\) = 16 of h\.0\.attn\.c_attn\.weight \[16, 48\]/);
    const zero = await createRun({ planner: { lora: { tiers: [{ rank: 0 }] } } });
    assert.equal(zero.status, 400);
    assert.match(zero.body.error.message, /planner\.lora\.tiers\.0\.rank/);
    const topk = await createRun({ planner: PLANNER, codec: { topK: 0.1, values: 'fp32' } });
    assert.equal(topk.status, 400, JSON.stringify(topk.body));
    assert.match(topk.body.error.message, /top-k codecs do not apply to LoRA uploads/);
    const example = JSON.parse(readFileSync('examples/shakespeare-lora.json', 'utf8')) as Record<string, unknown>;
    const shipped = await createRun({ ...example, model: undefined });
    assert.equal(shipped.status, 201, `examples/shakespeare-lora.json creates a run (${JSON.stringify(shipped.body)})`);
    const robust = await createRun({ planner: PLANNER, aggregation: { mode: 'async', strategy: { kind: 'robust', bufferSize: 3, rule: { kind: 'median' } } } });
    assert.equal(robust.status, 400, JSON.stringify(robust.body));
    assert.match(robust.body.error.message, /aggregation\.strategy: robust rules take full-model updates only/);
  });

  it('a version after LoRA updates of ranks 4, 2, 1 is base + the weighted mean of s_k A_k B_k (FLoRA, merged)', async () => {
    // Synchronous FedAvg rounds weigh updates by their examples and apply the mean with server lr 1.
    const created = await createRun({
      planner: PLANNER,
      aggregation: { mode: 'sync', strategy: { kind: 'fedavg' }, cohort: 3, overSelection: 1, roundSeconds: 600 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const run = created.body as { runId: string; joinToken: string };
    const client = new CoordinatorClient(srv.url);
    const base = await weightsOf(run.runId, 0);
    const devices = [await device(client, run, 8192), await device(client, run, 2048), await device(client, run, 512)];
    const plans = devices.map((d) => d.lease.plan as LoraPlan);
    assert.deepEqual(plans.map((p) => [p.kind, p.rank, p.alpha]), [['lora', 4, 8], ['lora', 2, 4], ['lora', 1, 3]], 'ranks by memory, alpha 2r unless set');
    const targets = plans[0]!.targets;
    assert.deepEqual(targets, ['h.0.attn.c_attn.weight', 'h.0.attn.c_proj.weight', 'h.0.mlp.c_fc.weight', 'h.0.mlp.c_proj.weight'], 'the GPT\'s attention and MLP matrices');

    const examples = [4, 8, 12];
    const uploads = devices.map((d, k) => adaptersFor(plans[k]!, base, 10 + k));
    for (const [k, d] of devices.entries()) {
      const bytes = encodeUpdate(uploads[k]!, { numExamples: examples[k]!, localSteps: 2, metrics: {} });
      const ack = await client.uploadUpdate(run.runId, d.lease.leaseId, d.creds, bytes);
      assert.equal(ack.runVersion, k < 2 ? 0 : 1, 'the third update closes the round');
    }
    const v1 = await weightsOf(run.runId, 1);

    // Independently, with plain loops in float64: W + sum_k p_k (alpha_k / r_k) A_k B_k.
    const total = examples.reduce((s, n) => s + n, 0);
    let worst = 0;
    for (const [name, w] of base) {
      const got = v1.get(name)!.data;
      if (!targets.includes(name)) {
        assert.deepEqual(got, w.data, `${name} is not a target and must not move`);
        continue;
      }
      const [inDim, outDim] = w.shape as [number, number];
      const { a, b } = loraNames(name);
      for (let i = 0; i < inDim; i++) {
        for (let j = 0; j < outDim; j++) {
          let want = w.data[i * outDim + j]!;
          for (const [k, plan] of plans.entries()) {
            const [A, B, r] = [uploads[k]!.get(a)!.data, uploads[k]!.get(b)!.data, plan.rank];
            let ab = 0;
            for (let m = 0; m < r; m++) ab += A[i * r + m]! * B[m * outDim + j]!;
            want += (examples[k]! / total) * (plan.alpha / r) * ab;
          }
          worst = Math.max(worst, Math.abs(got[i * outDim + j]! - want));
        }
      }
    }
    assert.ok(worst < 1e-6, `version 1 differs from base + weighted mean of s_k A_k B_k by ${worst.toExponential(2)}`);
    assert.ok(targets.some((t) => v1.get(t)!.data.some((v, i) => v !== base.get(t)!.data[i])), 'the targets did move');

    // The same version by FLoRA's stacking (one adapter of rank 4 + 2 + 1) merged into the base.
    const contributions: LoraContribution[] = plans.map((p, k) => ({ adapters: uploads[k]!, weight: examples[k]!, scale: p.alpha / p.rank }));
    const stacked = stackLora(contributions);
    assert.deepEqual(stacked.get(loraNames(targets[0]!).a)!.shape, [16, 7], 'stacked rank 7');
    const merged = mergeLora(base, stacked);
    for (const t of targets) {
      const err = merged.get(t)!.data.reduce((m, v, i) => Math.max(m, Math.abs(v - v1.get(t)!.data[i]!)), 0);
      assert.ok(err < 1e-6, `${t}: stacking + merge differs from the coordinator's version by ${err.toExponential(2)}`);
    }
  });

  it('untrained adapters change nothing; bad LoRA uploads are refused with a clear error and change nothing', async () => {
    const created = await createRun({
      planner: PLANNER, limits: { maxUpdateNorm: 50 },
      aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 1, staleness: { kind: 'constant' } } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const run = created.body as { runId: string; joinToken: string };
    const client = new CoordinatorClient(srv.url);
    const base = await weightsOf(run.runId, 0);
    const { creds, lease } = await device(client, run, 2048);
    const plan = lease.plan as LoraPlan;
    assert.equal(plan.rank, 2);
    const meta = { numExamples: 4, localSteps: 2, metrics: {} };
    const good = adaptersFor(plan, base, 1);
    const target = plan.targets[0]!;
    const { a, b } = loraNames(target);

    const wrongRank = new Map(good);
    wrongRank.set(a, { shape: [16, 3], data: new Float32Array(48) });
    await refused(client, run.runId, lease.leaseId, creds, encodeUpdate(wrongRank, meta), new RegExp(`${a.replace(/\./g, '\\.')} has shape \\[16, 3\\], expected \\[16, 2\\]`), 'a rank-3 A on a rank-2 lease');
    const noB = new Map(good);
    noB.delete(b);
    await refused(client, run.runId, lease.leaseId, creds, encodeUpdate(noB, meta), /update does not match the model: record has 7 tensors, layout expects 8/, 'a missing B');
    const nan = new Map(good);
    nan.set(b, { shape: good.get(b)!.shape, data: good.get(b)!.data.map((v, i) => (i === 5 ? Number.NaN : v)) });
    await refused(client, run.runId, lease.leaseId, creds, encodeUpdate(nan, meta), /non-finite value \(NaN\)/, 'NaN in B');
    await refused(client, run.runId, lease.leaseId, creds, encodeUpdate(base, meta), /update has tensor \S+, which the model does not have/, 'a full-model delta on a LoRA lease');
    const huge = adaptersFor(plan, base, 2, 10);
    await refused(client, run.runId, lease.leaseId, creds, encodeUpdate(huge, meta), /update norm \S+ exceeds the run's bound 50/, 'a product above the norm bound');

    const status = (await (await fetch(`${srv.url}/v1/runs/${run.runId}`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { head: number };
    assert.equal(status.head, 0, 'nothing refused made a version');
    const stats = (await (await fetch(`${srv.url}/v1/runs/${run.runId}/traffic`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { run: { updates: number } };
    assert.equal(stats.run.updates, 0, 'nothing refused was accepted');

    // The same lease then takes untrained adapters (random A, B = 0): a new version with exactly the base's weights.
    const ack = await client.uploadUpdate(run.runId, lease.leaseId, creds, encodeUpdate(adaptersFor(plan, base, 3, 0.1, true), meta));
    assert.equal(ack.runVersion, 1, 'K = 1: a version');
    const v1 = await weightsOf(run.runId, 1);
    for (const [name, t] of base) assert.deepEqual(v1.get(name)!.data, t.data, `${name}: B = 0 moves nothing`);
  });

  it('an acknowledged LoRA update survives a restart: re-folded from its lease\'s plan into the next version', async () => {
    const created = await createRun({
      planner: PLANNER,
      aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 2, staleness: { kind: 'constant' } } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const run = created.body as { runId: string; joinToken: string };
    let client = new CoordinatorClient(srv.url);
    const base = await weightsOf(run.runId, 0);
    const first = await device(client, run, 8192);
    const second = await device(client, run, 512);
    const [p1, p2] = [first.lease.plan as LoraPlan, second.lease.plan as LoraPlan];
    assert.deepEqual([p1.rank, p2.rank], [4, 1]);
    const [u1, u2] = [adaptersFor(p1, base, 21), adaptersFor(p2, base, 22)];
    const meta = { numExamples: 4, localSteps: 2, metrics: {} };
    assert.equal((await client.uploadUpdate(run.runId, first.lease.leaseId, first.creds, encodeUpdate(u1, meta))).runVersion, 0, 'pending (K = 2)');
    await srv.close();
    srv = await startCoordinator({ dataDir: join(dir, 'coordinator'), port: 0, adminToken: ADMIN, evaluate: false, log: () => {} });
    client = new CoordinatorClient(srv.url);
    assert.equal((await client.uploadUpdate(run.runId, second.lease.leaseId, second.creds, encodeUpdate(u2, meta))).runVersion, 1, 'the second closes the buffer');
    // FedBuff with constant staleness and K = 2: the mean of the two products, merged.
    const merged = mergeLora(base, stackLora([{ adapters: u1, weight: 1, scale: p1.alpha / p1.rank }, { adapters: u2, weight: 1, scale: p2.alpha / p2.rank }]));
    const v1 = await weightsOf(run.runId, 1);
    for (const [name, t] of merged) {
      const err = t.data.reduce((m, v, i) => Math.max(m, Math.abs(v - v1.get(name)!.data[i]!)), 0);
      assert.ok(err < 1e-6, `${name}: the re-folded version differs from FLoRA's by ${err.toExponential(2)}`);
    }
  });

  it('value codecs apply to LoRA uploads: a device on an int8 run uploads coded adapters that move only the targets', async () => {
    // K = 2 and two leases: both on version 0, so the second reuses the device's LoRA trainer with fresh adapters.
    const created = await createRun({
      planner: PLANNER, codec: { values: 'int8' },
      aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 2, staleness: { kind: 'constant' } } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const run = created.body as { runId: string; joinToken: string };
    const events: DeviceEvent[] = [];
    const summary = await runLeaseLoop({
      client: new CoordinatorClient(srv.url), runId: run.runId, joinToken: run.joinToken, identity: new MemoryIdentityStore(),
      model, task: await loadTask('shakespeare', model), shard: 0, profile: { memoryMiB: 2048, examplesPerSecond: 100 },
      cache: new MemoryWeightsCache(), maxLeases: 2, backoff: { baseMs: 20, maxMs: 200, factor: 2, maxRetries: 20 }, onEvent: (e) => events.push(e),
    });
    assert.equal(summary.uploaded, 2, `uploaded (${JSON.stringify(events.filter((e) => e.type === 'abandoned' || e.type === 'error'))})`);
    const leases = events.filter((e): e is Extract<DeviceEvent, { type: 'lease' }> => e.type === 'lease').map((e) => e.lease);
    assert.deepEqual(leases.map((l) => l.baseVersion), [0, 0], 'both leases on version 0');
    const lease = leases[0]!;
    assert.deepEqual(lease.codec?.values, 'int8', 'the LoRA lease carries the run\'s codec');
    const plan = lease.plan as LoraPlan;
    const [v0, v1] = [await weightsOf(run.runId, 0), await weightsOf(run.runId, 1)];
    for (const [name, t] of v0) {
      const moved = v1.get(name)!.data.some((v, i) => v !== t.data[i]);
      assert.equal(moved, plan.targets.includes(name), `${name} ${plan.targets.includes(name) ? 'moved' : 'stayed'}`);
    }
  });

  it('a device on the lease loop trains adapters and uploads only them; bytes per update vs a full update', async () => {
    // The task's own char GPT (the model of `npm start`), LoRA rank 8 on every attention and MLP matrix, against the
    // same model's full update: both measured as the bytes the device sent over HTTP.
    const task = await loadTask('shakespeare');
    const spec = task.model as GptSpec;
    const bodies = async (config: Record<string, unknown>) => {
      const res = await fetch(`${srv.url}/v1/runs`, {
        method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          name: 'lora-bytes', task: 'shakespeare', recipe: { localSteps: 2, batchSize: 2, lr: 1e-2 },
          aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 1, staleness: { kind: 'constant' } } }, ...config,
        }),
      });
      assert.equal(res.status, 201, await res.clone().text());
      const run = (await res.json()) as { runId: string; joinToken: string };
      const events: DeviceEvent[] = [];
      const summary = await runLeaseLoop({
        client: new CoordinatorClient(srv.url), runId: run.runId, joinToken: run.joinToken, identity: new MemoryIdentityStore(),
        model: spec, task, shard: 0, profile: { memoryMiB: 4096, examplesPerSecond: 100 }, cache: new MemoryWeightsCache(),
        maxLeases: 1, backoff: { baseMs: 20, maxMs: 200, factor: 2, maxRetries: 20 }, onEvent: (e) => events.push(e),
      });
      assert.equal(summary.uploaded, 1, `one update uploaded (${JSON.stringify(events.filter((e) => e.type === 'abandoned' || e.type === 'error'))})`);
      const lease = events.find((e): e is Extract<DeviceEvent, { type: 'lease' }> => e.type === 'lease')!.lease;
      const uploaded = events.find((e): e is Extract<DeviceEvent, { type: 'uploaded' }> => e.type === 'uploaded')!;
      const traffic = (await (await fetch(`${srv.url}/v1/runs/${run.runId}/traffic`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { run: { bytesUp: number } };
      assert.equal(traffic.run.bytesUp, uploaded.bytes, 'the coordinator counted the bytes the device sent');
      return { run, lease, bytes: uploaded.bytes };
    };
    const lora = await bodies({ planner: { leaseSeconds: 30, maxSteps: 2, lora: { tiers: [{ rank: 8 }] } } });
    const full = await bodies({});
    assert.equal(lora.lease.plan.kind, 'lora');
    assert.equal(full.lease.plan.kind, 'full');
    const plan = lora.lease.plan as LoraPlan;
    assert.equal(plan.targets.length, 4 * spec.layers);
    // What the device trained: the version after its update differs from the base on the targets only.
    const [v0, v1] = [await weightsOf(lora.run.runId, 0), await weightsOf(lora.run.runId, 1)];
    for (const [name, t] of v0) {
      const moved = v1.get(name)!.data.some((v, i) => v !== t.data[i]);
      assert.equal(moved, plan.targets.includes(name), `${name} ${plan.targets.includes(name) ? 'moved' : 'stayed'}`);
    }
    const adapterNumbers = plan.targets.reduce((n, t) => n + plan.rank * v0.get(t)!.shape.reduce((s, d) => s + d, 0), 0);
    const fullNumbers = [...v0.values()].reduce((n, t) => n + t.data.length, 0);
    assert.ok(lora.bytes >= 4 * adapterNumbers && lora.bytes < 4 * adapterNumbers + 4096, `the LoRA upload is the adapters in fp32 plus a header (${lora.bytes} B for ${adapterNumbers} numbers)`);
    assert.ok(full.bytes >= 4 * fullNumbers, `the full upload is every parameter (${full.bytes} B)`);
    const ratio = full.bytes / lora.bytes;
    assert.ok(ratio > 10, `LoRA rank 8 uploads ${ratio.toFixed(1)}x fewer bytes than a full update`);
    console.log(`# bytes per update, ${spec.layers}x${spec.width} char GPT (${fullNumbers} parameters): full ${full.bytes} B, LoRA rank 8 ${lora.bytes} B (${adapterNumbers} adapter numbers), ${ratio.toFixed(1)}x smaller`);
  });
});

