// Device populations from the real phone list: parsing, the documented throughput and memory mappings, tier shares,
// availability windows, and reproducibility from the seed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../../src/core/rng.ts';
import { HOUR } from '../../src/sim/clock.ts';
import { loadPhoneList } from '../../src/sim/population.node.ts';
import { drawPopulation, median, parsePhoneList, PopulationConfig, summarizePopulation } from '../../src/sim/population.ts';

const phones = await loadPhoneList();

describe('phone list', () => {
  it('parses all 333 phones with numeric scores and RAM', () => {
    assert.equal(phones.length, 333, 'the benchmark list has 333 phones');
    assert.ok(phones.every((p) => p.cpuFloatScore > 0 && p.ramMiB >= 512 && p.year >= 2009), 'every phone has a score, RAM and year');
    assert.equal(median(phones.map((p) => p.cpuFloatScore)), 1548, 'median CPU float score, the anchor of the speed mapping');
    const mate = phones.find((p) => p.model === 'Huawei Mate 30 Pro 5G');
    assert.deepEqual(mate && { ram: mate.ramMiB, score: mate.cpuFloatScore }, { ram: 8192, score: 3744 }, 'the first entry, parsed');
  });

  it('says which field is wrong in a malformed list', () => {
    assert.throws(() => parsePhoneList([{ Model: 'x', CPU: 'y', RAM: 'lots', Year: '2019', CPU_F_AI_Score: '1' }]), /0\.RAM/, 'names the bad field');
  });
});

describe('drawPopulation', () => {
  const config = PopulationConfig.parse({ devices: 20_000, referenceExamplesPerSecond: 1000 });
  const draw = (seed: number) => drawPopulation(config, phones, { shards: 7, referenceExamplesPerSecond: 1000, rng: new Rng(seed) });

  it('maps the median phone to reference / medianSlowdown and RAM to a memory fraction', () => {
    const pop = draw(1);
    const phoneTier = config.tiers.findIndex((t) => t.kind === 'phone');
    const speeds: number[] = [];
    for (let d = 0; d < pop.size; d++) {
      if (pop.tier[d] !== phoneTier) continue;
      speeds.push(pop.examplesPerSecond[d]!);
      const phone = phones[pop.phone[d]!]!;
      assert.ok(Math.abs(pop.memoryMiB[d]! - phone.ramMiB * 0.25) < 1e-3, `phone memory budget is 25% of its RAM (device ${d})`);
    }
    // The per-device jitter is lognormal around the mapping, so the population median lands near 1000 / 8.
    const m = median(speeds);
    assert.ok(m > 110 && m < 140, `median phone trains about 8x slower than the reference: ${m} examples/s`);
  });

  it('draws tiers by share, with their own windows and shards round-robin', () => {
    const pop = draw(2);
    const summary = summarizePopulation(pop);
    const share = (name: string) => summary.find((t) => t.name === name)!.devices / pop.size;
    assert.ok(Math.abs(share('phone') - 0.8) < 0.02 && Math.abs(share('laptop') - 0.15) < 0.02, `shares ${JSON.stringify(summary)}`);
    assert.equal(summary.find((t) => t.name === 'desktop')!.meanWindowHours, 24, 'desktops can be available at any hour');
    assert.ok(Math.abs(summary.find((t) => t.name === 'phone')!.meanWindowHours - 8) < 0.1, 'phones charge about 8 hours a night');
    assert.ok(pop.windowStartSec.every((s) => s >= 0 && s < 24 * HOUR), 'window starts lie within a day');
    assert.deepEqual(Array.from(pop.shard.subarray(0, 9)), [0, 1, 2, 3, 4, 5, 6, 0, 1], 'shards are dealt round-robin');
  });

  it('is reproducible from the seed', () => {
    const a = draw(3);
    const b = draw(3);
    const c = draw(4);
    assert.deepEqual(a.examplesPerSecond, b.examplesPerSecond, 'same seed, same speeds');
    assert.deepEqual(a.windowStartSec, b.windowStartSec, 'same seed, same windows');
    assert.notDeepEqual(a.examplesPerSecond, c.examplesPerSecond, 'another seed, another population');
  });

  it('rejects configs with clear messages', () => {
    const r = PopulationConfig.safeParse({ devices: 10, tiers: [{ kind: 'phone', share: 0 }] });
    assert.ok(!r.success && r.error.issues.some((i) => /share above 0/.test(i.message)), 'all-zero shares are refused');
    const t = PopulationConfig.safeParse({ devices: 10, tiers: [{ kind: 'tablet' }] });
    assert.ok(!t.success && t.error.issues[0]!.path.join('.') === 'tiers.0.kind', 'an unknown tier kind is named by its path');
  });
});
