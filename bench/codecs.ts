// Benchmark: encode and decode throughput of every update codec, in MB/s of float32 input (4 bytes per parameter)
// on one core, beside a memcpy of the same buffer measured in the same process as the baseline. The goal (issue 8):
// faster than a fast phone's uplink, 100 MB/s, both ways.
//
// Each case is timed --reps times per round (median), rounds alternate the cases (best median kept, so a burst of
// VM noise hits no case alone). Input: normally distributed values (a delta's typical shape), seeded.
//
//   npm run bench:codecs
//   npm run bench:codecs -- --params 4000000 --reps 5 --rounds 3
import { Command } from 'commander';
import { decodeVector } from '../src/core/codecs/decode.ts';
import { encodeVector } from '../src/core/codecs/encode.ts';
import { encodedSize } from '../src/core/codecs/format.ts';
import { codecLabel, CodecSpec } from '../src/core/codecs/spec.ts';
import { Rng } from '../src/core/rng.ts';
import { positiveInt } from '../src/cli/options.ts';

const opts = new Command()
  .name('bench/codecs')
  .description('codec encode/decode throughput (MB/s of fp32 input, one core) vs memcpy')
  .option('--params <n>', 'vector length in float32 values', positiveInt('--params'), 4_000_000)
  .option('--reps <n>', 'timed runs per case per round (median reported)', positiveInt('--reps'), 5)
  .option('--rounds <n>', 'alternating rounds; the best median of each case is reported', positiveInt('--rounds'), 3)
  .parse()
  .opts<{ params: number; reps: number; rounds: number }>();

const SPECS: CodecSpec[] = [
  { values: 'fp32' }, { values: 'fp16' }, { values: 'bf16' }, { values: 'int8' }, { values: 'int4' }, { values: 'int2' },
  { values: 'fp32', topK: 0.01 }, { values: 'int8', topK: 0.01 },
].map((s) => CodecSpec.parse(s));

const n = opts.params;
const rng = new Rng(1);
const x = new Float32Array(n);
for (let i = 0; i < n; i++) x[i] = 1e-3 * rng.normal();
const mb = (4 * n) / 1e6;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
function time(fn: () => void): number {
  const ts: number[] = [];
  for (let r = 0; r < opts.reps; r++) {
    const t0 = performance.now();
    fn();
    ts.push((performance.now() - t0) / 1000);
  }
  return median(ts);
}

const target = new Float32Array(n);
const encoded = new Map(SPECS.map((s) => [s, encodeVector(x, s, { rng: new Rng(2) })]));
const best = new Map<string, number>();
const keep = (name: string, seconds: number) => best.set(name, Math.min(best.get(name) ?? Infinity, seconds));
for (let round = 0; round < opts.rounds; round++) {
  keep('memcpy', time(() => target.set(x)));
  for (const s of SPECS) {
    const label = codecLabel(s);
    const r = new Rng(3);
    keep(`encode ${label}`, time(() => encodeVector(x, s, { rng: r })));
    keep(`decode ${label}`, time(() => decodeVector(encoded.get(s)!, { spec: s, n })));
  }
}

const memcpy = best.get('memcpy')!;
console.log(`codec throughput on ${n.toLocaleString('en-US')} float32 values (${mb.toFixed(1)} MB), one core, node ${process.version}`);
console.log(`median of ${opts.reps} runs, best of ${opts.rounds} rounds; MB/s of fp32 input\n`);
console.log(`${'case'.padEnd(26)}${'MB/s'.padStart(10)}${'x memcpy'.padStart(10)}${'bytes out'.padStart(14)}${'ratio'.padStart(8)}`);
console.log(`${'memcpy (baseline)'.padEnd(26)}${(mb / memcpy).toFixed(0).padStart(10)}${'1'.padStart(10)}`);
for (const s of SPECS) {
  const label = codecLabel(s);
  const size = encodedSize(n, s);
  for (const op of ['encode', 'decode']) {
    const t = best.get(`${op} ${label}`)!;
    console.log(`${`${op} ${label}`.padEnd(26)}${(mb / t).toFixed(0).padStart(10)}${(memcpy / t).toFixed(3).padStart(10)}` +
      `${op === 'encode' ? String(size).padStart(14) + `${((4 * n) / size).toFixed(1)}x`.padStart(8) : ''}`);
  }
}
