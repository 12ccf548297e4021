// Benchmark: a run in aggregation mode 'secure' against a plain synchronous FedAvg run, side by side on one live
// coordinator over real HTTP. Both runs have the same model (the Fashion-MNIST MLP, --hidden units) and cohort
// (--clients devices in this process, each with a fixed random delta, no training, so only aggregation is timed).
//   plain   a round: every device leases, uploads its fp32 delta (encodeUpdate), and the round closes at the cohort.
//   secure  a round: every device leases a seat, advertises and shares keys, sends its delta masked, reveals shares,
//           and waits until the sum is a version (src/device/secure-upload.ts), long-polling the session (the default)
//           or polling it on a timer every --poll-ms (longPollMs 0, what devices did before long polls).
// Reported per case: the median wall time of a round (first lease to the new version), and the bytes the devices
// sent and received per round, from the coordinator's own accounting plus the protocol's messages.
//
//   npm run bench:secure-run
//   npm run bench:secure-run -- --clients 10 --hidden 64 --rounds 3
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { positiveInt } from '../src/cli/options.ts';
import { encodeUpdate } from '../src/core/protocol/update-wire.ts';
import { Rng } from '../src/core/rng.ts';
import { layoutOf, unflatten } from '../src/core/tensor.ts';
import { CoordinatorClient, type DeviceCredentials } from '../src/device/client.ts';
import { SecureUpload } from '../src/device/secure-upload.ts';
import { startCoordinator } from '../src/server/http/serve.node.ts';
import { createModel } from '../src/train/models/registry.ts';

const opts = new Command()
  .name('bench/secure-run')
  .description('a secure-aggregation run against a plain sync FedAvg run, over real HTTP')
  .option('--clients <n>', 'cohort size', positiveInt('--clients'), 10)
  .option('--hidden <n>', 'MLP hidden units (784-h-10)', positiveInt('--hidden'), 64)
  .option('--rounds <n>', 'rounds per case (median reported)', positiveInt('--rounds'), 3)
  .option('--poll-ms <n>', 'how often a device polls its secure round in the timer-polling case', positiveInt('--poll-ms'), 100)
  .parse()
  .opts<{ clients: number; hidden: number; rounds: number; pollMs: number }>();

const ADMIN = 'bench-secure-run-admin-token-0123456789';
const model = { kind: 'mlp' as const, inputs: 784, hidden: [opts.hidden], classes: 10 };
const layout = layoutOf(createModel(model).shapes);
const srv = await startCoordinator({
  dataDir: mkdtempSync(join(tmpdir(), 'tessera-bench-secure-')), port: 0, adminToken: ADMIN, evaluate: false, log: () => {}, web: false,
  perDevice: { perSecond: 1000, burst: 1000 }, perAddress: { perSecond: 100_000, burst: 100_000 },
});
const client = new CoordinatorClient(srv.url);
const rng = new Rng(3);
const deltas = Array.from({ length: opts.clients }, () => Float32Array.from({ length: layout.size }, () => 0.01 * rng.normal()));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function createRun(aggregation: unknown): Promise<{ runId: string; devices: DeviceCredentials[] }> {
  const res = await fetch(`${srv.url}/v1/runs`, {
    method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'bench', task: 'fashion-mlp', model, aggregation, eval: { everyVersions: 0 }, lease: { seconds: 60 } }),
  });
  if (res.status !== 201) throw new Error(`run creation: ${await res.text()}`);
  const { runId, joinToken } = (await res.json()) as { runId: string; joinToken: string };
  const devices = [];
  for (let i = 0; i < opts.clients; i++) devices.push(await client.register(runId, joinToken, { memoryMiB: 1024, examplesPerSecond: 100 }));
  return { runId, devices };
}

async function traffic(runId: string): Promise<{ up: number; down: number }> {
  const t = (await (await fetch(`${srv.url}/v1/runs/${runId}/traffic`)).json()) as { run: { bytesUp: number; bytesDown: number } };
  return { up: t.run.bytesUp, down: t.run.bytesDown };
}

async function plainRound(runId: string, devices: DeviceCredentials[]): Promise<void> {
  await Promise.all(devices.map(async (d, i) => {
    const { lease } = await client.requestLease(runId, d);
    if (lease === null) throw new Error('no lease');
    await client.fetchWeights(runId, lease.baseVersion, { token: d.deviceToken });
    await client.uploadUpdate(runId, lease.leaseId, d, encodeUpdate(unflatten(deltas[i]!, layout), { numExamples: 16, localSteps: 1, metrics: {} }));
  }));
}

/** Bytes the devices received from the secure round's messages (the coordinator counts weights downloads only). */
let protocolDown = 0;
const counting: typeof fetch = async (input, init) => {
  const res = await fetch(input, init);
  if (String(input).includes('/secagg/') && (init?.method ?? 'GET') === 'GET') protocolDown += Number(res.headers.get('content-length') ?? 0);
  return res;
};
const secureClient = new CoordinatorClient(srv.url, { fetch: counting });

const secureRound = (longPollMs: number) => async (runId: string, devices: DeviceCredentials[]): Promise<void> => {
  await Promise.all(devices.map(async (d, i) => {
    const { lease } = await client.requestLease(runId, d);
    if (lease === null || lease.secure === undefined) throw new Error('no seat');
    await client.fetchWeights(runId, lease.baseVersion, { token: d.deviceToken });
    const u = await SecureUpload.join({ client: secureClient, runId, creds: d, seat: lease.secure, deadline: Date.now() + 60_000, pollMs: opts.pollMs, longPollMs });
    await u.submit(deltas[i]!);
  }));
};

interface Row { name: string; ms: number; up: number; down: number }
const rows: Row[] = [];
for (const [name, aggregation, round] of [
  ['plain sync FedAvg', { mode: 'sync', strategy: { kind: 'fedavg' }, cohort: opts.clients, overSelection: 1, roundSeconds: 60 }, plainRound],
  ['secure (SecAgg, complete graph), long polls', { mode: 'secure', strategy: { kind: 'fedavg' }, cohort: opts.clients, clip: 1, collectSeconds: 30, phaseSeconds: 30 }, secureRound(20_000)],
  [`secure, polling every ${opts.pollMs} ms`, { mode: 'secure', strategy: { kind: 'fedavg' }, cohort: opts.clients, clip: 1, collectSeconds: 30, phaseSeconds: 30 }, secureRound(0)],
] as const) {
  const { runId, devices } = await createRun(aggregation);
  const times: number[] = [];
  protocolDown = 0;
  for (let r = 0; r < opts.rounds; r++) {
    const t0 = performance.now();
    await round(runId, devices);
    // The plain round's version is committed when the last upload is acknowledged; the secure one's before submit resolves.
    times.push(performance.now() - t0);
  }
  const t = await traffic(runId);
  rows.push({ name, ms: median(times), up: t.up / opts.rounds / opts.clients, down: (t.down + protocolDown) / opts.rounds / opts.clients });
}
await srv.close();

const base = rows[0]!;
console.log(`# secure run vs plain sync run: ${opts.clients} devices, ${layout.size.toLocaleString('en-US')} parameters, ${opts.rounds} rounds`);
console.log('| case | round wall time | x plain | bytes up per device per round | x plain | bytes down per device per round | x plain |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.name} | ${r.ms.toFixed(0)} ms | ${(r.ms / base.ms).toFixed(2)} | ${Math.round(r.up).toLocaleString('en-US')} | ${(r.up / base.up).toFixed(3)} | ${Math.round(r.down).toLocaleString('en-US')} | ${(r.down / base.down).toFixed(3)} |`);
}
