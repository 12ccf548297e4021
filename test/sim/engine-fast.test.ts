// The simulator in fast mode (cost model, synthetic objective): reproducibility, consistent lease accounting at 10k
// devices, sync rounds that drop stragglers, staleness weights, and the exclude-small policy against plain full plans.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSimConfig, type SimConfigInput } from '../../src/sim/config.ts';
import { loadPhoneList } from '../../src/sim/population.node.ts';
import { runSimulation, type RunOutput } from '../../src/sim/run.node.ts';
import { FAILURE_REASONS } from '../../src/sim/results.ts';

const phones = await loadPhoneList();

function config(overrides: Partial<SimConfigInput> = {}): SimConfigInput {
  return {
    name: 'fast-test', mode: 'fast', seed: 7,
    fast: { dimension: 16, parameters: 2_000_000, shards: 50 },
    population: { devices: 10_000, referenceExamplesPerSecond: 200, timezoneSpreadHours: 12 },
    aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 20, staleness: { kind: 'polynomial', a: 0.5 } }, concurrency: 400 },
    recipe: { localSteps: 20, batchSize: 16 },
    eval: { everyVersions: 25 },
    stop: { leases: 60_000 },
    ...overrides,
  };
}

const run = (c: SimConfigInput): Promise<RunOutput> => runSimulation(parseSimConfig(c), { phones });
const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);

describe('simulator, fast mode', () => {
  it('gives identical results for the same seed, and different ones for another', async () => {
    const small = config({ population: { devices: 2000, referenceExamplesPerSecond: 200 }, stop: { leases: 8000 } });
    const [a, b, c] = await Promise.all([run(small), run(small), run({ ...small, seed: 8 })]);
    const { wall: _a, ...ra } = a.result;
    const { wall: _b, ...rb } = b.result;
    assert.deepEqual(ra, rb, 'everything but wall time is reproduced');
    assert.deepEqual(a.devices, b.devices, 'per-device counts are reproduced');
    assert.notDeepEqual(a.result.versions, c.result.versions, 'another seed is another run');
  });

  it('stops a run that can make no version with a diagnosis, instead of running forever', async () => {
    // Eight phones with their own availability windows are never all online at once, so a sync round of 8 never starts.
    const { result: r } = await run(config({
      population: { devices: 8, referenceExamplesPerSecond: 200, timezoneSpreadHours: 6 },
      aggregation: { mode: 'sync', strategy: { kind: 'fedavg' }, cohort: 8, overSelection: 1, roundSeconds: 3600, minUpdates: 8 },
      stop: { versions: 3 },
    }));
    assert.ok(r.stalled != null, 'the run is marked stalled');
    assert.equal(r.stalled.version, 0);
    assert.match(r.stalled.message, /no version in 720 virtual hours.*cohort/);
    assert.ok(r.hourly.length <= 24 * 31, `it stopped after about 30 virtual days (${r.hourly.length} hours)`);
    const { result: fine } = await run(config({ population: { devices: 2000, referenceExamplesPerSecond: 200 }, stop: { versions: 3 } }));
    assert.equal(fine.stalled, null, 'a run that makes versions is not stalled');
  });

  it('runs 10k devices and accounts for every lease', async () => {
    const { result: r, devices } = await run(config());
    const t = r.totals;
    assert.equal(t.leases, 60_000, 'stops at the lease limit');
    const failures = sum(FAILURE_REASONS.map((k) => t.failures[k]));
    assert.equal(t.leases, t.completed + failures + t.inFlightAtEnd, `every lease folded, failed or still out: ${JSON.stringify(t)}`);
    assert.ok(t.inFlightAtEnd <= 400, 'no more leases out than the concurrency');
    assert.equal(sum(devices.leases), t.leases, 'per-device lease counts add up');
    assert.equal(sum(devices.completed), t.completed, 'per-device completions add up');
    for (const k of FAILURE_REASONS) assert.equal(sum(devices.failures[k]), t.failures[k], `per-device ${k} failures add up`);
    assert.ok(t.failures.session > 0 && t.failures.dropout > 0, 'sessions end mid-lease and devices drop out');
    assert.equal(t.bytesUp, t.completed * r.model.uploadBytes, 'only delivered updates count as uploaded bytes');
    assert.ok(t.bytesDown <= t.leases * r.model.downloadBytes && t.bytesDown > 0, 'downloads count once per lease at most (cached versions are free)');
    assert.equal(r.versions.at(-1)!.version, Math.floor(t.completed / 20), 'a version every K = 20 folded updates');
    assert.equal(r.staleness!.folds, t.completed, 'every fold has a staleness');
    assert.equal(sum(r.staleness!.histogram), t.completed, 'the staleness histogram covers every fold');
    assert.ok(r.staleness!.mean > 1, `concurrency above K makes updates stale: mean ${r.staleness!.mean}`);
    const first = r.versions[0]!.metrics['excessLoss']!;
    const last = r.versions.at(-1)!.metrics['excessLoss']!;
    assert.ok(last < first / 100, `the modelled loss falls: ${first} -> ${last}`);
    assert.ok(r.hourly.length >= 1 && r.hourly.every((h) => h.online >= 0 && h.online <= 10_000), 'hourly availability is recorded');
  });

  it('applies FedBuff staleness weights (1 + s)^-a to what it folds', async () => {
    const a = 0.7;
    const c = config({
      population: { devices: 2000, referenceExamplesPerSecond: 200 },
      aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 5, staleness: { kind: 'polynomial', a } }, concurrency: 60 },
      stop: { leases: 3000 }, record: { folds: 2000 },
    });
    const { result } = await run(c);
    const folds = result.folds.filter((f) => f.weight !== null);
    assert.ok(folds.length > 1000 && folds.some((f) => f.staleness >= 5), 'many folds recorded, some of them stale');
    for (const f of folds) {
      const expected = (1 + f.staleness) ** -a;
      assert.ok(Math.abs(f.weight! - expected) <= 1e-4 * expected, `staleness ${f.staleness}: weight ${f.weight}, expected ${expected}`);
      assert.equal(f.staleness, f.version - f.baseVersion, 'staleness is versions since the lease\'s base');
    }
  });

  it('extends a sync round whose deadline passes below minUpdates, and never publishes fewer', async () => {
    // Deadlines far shorter than a lease: every round reaches its first deadline with no update and must go on.
    const { result: r } = await run(config({
      population: { devices: 2000, referenceExamplesPerSecond: 200 },
      aggregation: { mode: 'sync', strategy: { kind: 'fedavg' }, cohort: 20, overSelection: 1.2, roundSeconds: 20, minUpdates: 15 },
      eval: { everyVersions: 1 },
      stop: { hours: 3 },
    }));
    const rounds = r.rounds!;
    assert.ok(rounds.extended > 0, `short deadlines extend rounds: ${JSON.stringify(rounds)}`);
    assert.ok(r.versions.length > 2, `rounds still publish versions: ${r.versions.length}`);
    for (let i = 1; i < r.versions.length; i++) {
      const folded = r.versions[i]!.updates - r.versions[i - 1]!.updates;
      assert.ok(folded >= 15 && folded <= 20, `version ${r.versions[i]!.version} folds between minUpdates and the cohort: ${folded}`);
    }
    assert.throws(() => parseSimConfig(config({ aggregation: { mode: 'sync', strategy: { kind: 'fedavg' }, cohort: 5, minUpdates: 6 } })),
      /minUpdates/, 'minUpdates above the cohort is refused');
  });

  it('sync rounds drop stragglers and fold only the cohort', async () => {
    const { result: r } = await run(config({
      aggregation: { mode: 'sync', strategy: { kind: 'fedavg' }, cohort: 50, overSelection: 1.4, roundSeconds: 900, minUpdates: 1 },
      eval: { everyVersions: 1 },
      stop: { hours: 4 },
    }));
    const rounds = r.rounds!;
    assert.ok(rounds.closedFull > 10, `rounds close when the cohort has reported: ${JSON.stringify(rounds)}`);
    assert.ok(r.totals.failures.straggler > 0, 'over-selected devices that are still training are dropped');
    assert.equal(rounds.extended, 0, 'minUpdates 1 and a busy population: no deadline passes without an update');
    assert.ok(r.folds.every((f) => f.staleness === 0), 'a straggler\'s late update is never folded into a later round');
    for (let i = 1; i < r.versions.length; i++) {
      const folded = r.versions[i]!.updates - r.versions[i - 1]!.updates;
      assert.ok(folded >= 1 && folded <= 50, `version ${r.versions[i]!.version} folds between 1 and the cohort: ${folded}`);
    }
    assert.equal(r.totals.versions, rounds.closedFull + rounds.closedAtDeadline, 'one version per closed round');
  });

  it('exclude-small leases only to devices that can hold the model; full plans make small ones fail', async () => {
    const base = config({ population: { devices: 3000, referenceExamplesPerSecond: 200 }, stop: { leases: 10_000 } });
    // 300 MiB: more than a 25% budget of a phone with 1 GiB of RAM or less.
    const [excluded, naive] = await Promise.all([
      run({ ...base, plans: { policy: 'exclude-small', memoryMiB: 300 } }),
      run({ ...base, plans: { policy: 'full', memoryMiB: 300 } }),
    ]);
    const small = excluded.devices.memoryMiB.map((m) => m < 300);
    assert.ok(small.some(Boolean), 'the population has devices below the need');
    assert.ok(excluded.devices.leases.every((n, d) => !small[d] || n === 0), 'no small device ever gets a lease');
    assert.ok(excluded.result.totals.refusals > 0 && excluded.result.totals.failures.oom === 0, 'they are refused, so none runs out of memory');
    assert.ok(naive.result.totals.failures.oom > 0, 'given the full model anyway, small devices fail out of memory');
    assert.ok(naive.devices.failures.oom.every((n, d) => n === 0 || small[d]), 'only small devices run out of memory');
  });

  it('expires leases that cannot upload before their deadline', async () => {
    // 2M parameters are 8 MB each way: a phone at the median 8 Mbit/s up needs 8 s to upload, plus training.
    const { result: r } = await run(config({ population: { devices: 2000, referenceExamplesPerSecond: 200 }, plans: { leaseSeconds: 20 }, stop: { leases: 5000 } }));
    const t = r.totals;
    assert.ok(t.failures.expired > 0 && t.completed > 0, `slow devices miss the deadline, fast ones make it: ${JSON.stringify(t.failures)}`);
    assert.equal(t.leases, t.completed + sum(FAILURE_REASONS.map((k) => t.failures[k])) + t.inFlightAtEnd, 'still every lease accounted for');
  });

  it('refuses configs the mode cannot run', () => {
    assert.throws(() => parseSimConfig({ ...config(), planner: {} }), /planner: the planner cuts submodels from a real model/, 'no planner in fast mode');
    assert.throws(() => parseSimConfig({ ...config(), population: { devices: 10 } }), /referenceExamplesPerSecond: fast mode has no real model/, 'fast mode needs a reference speed');
    assert.throws(() => parseSimConfig({ ...config(), mode: 'full', task: { name: 'sotu', shards: 4 } }), /task\.shards: sotu shards are its presidents/, 'sotu shards are not regrouped');
  });
});
