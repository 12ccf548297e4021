// `tessera sim` end to end as a process: a small fast-mode config writes its results and plots; bad configs fail
// with one clear message naming the field; --help documents the options.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

function tessera(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

const dir = mkdtempSync(join(tmpdir(), 'tessera-sim-cli-'));

function configFile(name: string, json: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(json));
  return path;
}

describe('tessera sim', () => {
  it('runs a fast-mode config and writes results, per-device counts and plots', { timeout: 60_000 }, () => {
    const file = configFile('ok.json', {
      name: 'cli-fast', mode: 'fast', seed: 1,
      population: { devices: 500, referenceExamplesPerSecond: 200 },
      aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 5 }, concurrency: 20 },
      stop: { leases: 2000 },
      target: { metric: 'excessLoss', value: 1 },
    });
    const out = join(dir, 'out');
    const r = tessera('sim', file, '--out', out, '--quiet');
    assert.equal(r.code, 0, `exit 0; stderr: ${r.err}`);
    assert.match(r.out, /500 devices, \d+ events, 2000 leases/, 'prints what happened');
    assert.match(r.out, /target excessLoss 1 reached at version \d+/, 'prints when the target was reached');
    for (const f of ['results.json', 'devices.json', 'quality-vs-hours.svg', 'quality-vs-bytes.svg']) {
      assert.ok(existsSync(join(out, f)), `${f} written`);
    }
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { totals: { leases: number }; versions: unknown[] };
    assert.equal(results.totals.leases, 2000, 'results.json holds the totals');
    const svg = readFileSync(join(out, 'quality-vs-hours.svg'), 'utf8');
    assert.ok(svg.startsWith('<svg') && svg.includes('<polyline'), 'the plot is an SVG with a curve');
  });

  it('names every invalid field', () => {
    const file = configFile('bad.json', {
      mode: 'fast', population: { devices: -1, referenceExamplesPerSecond: 200 },
      aggregation: { mode: 'async', strategy: { kind: 'fedavg' } }, stop: {},
    });
    const r = tessera('sim', file);
    assert.equal(r.code, 1, 'exit 1');
    assert.match(r.err, /is not a valid simulation config/, 'says what is wrong');
    assert.match(r.err, /population\.devices:/, 'names the bad device count');
    assert.match(r.err, /aggregation\.strategy\.kind: async mode needs a strategy/, 'explains the strategy mismatch');
    assert.match(r.err, /stop: give at least one of hours, versions, leases/, 'asks for a stop limit');
    assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
  });

  it('validates --mode overrides like the file itself', () => {
    const file = configFile('fast-only.json', { population: { devices: 10, referenceExamplesPerSecond: 200 }, stop: { hours: 1 } });
    const r = tessera('sim', file, '--mode', 'full');
    assert.equal(r.code, 1, 'exit 1');
    assert.match(r.err, /task: full mode needs a task/, 'full mode without a task is refused');
  });

  it('documents its options in --help', () => {
    const r = tessera('sim', '--help');
    assert.equal(r.code, 0, 'help exits 0');
    for (const opt of ['--out', '--mode', '--quiet']) assert.ok(r.out.includes(opt), `help mentions ${opt}`);
  });
});
