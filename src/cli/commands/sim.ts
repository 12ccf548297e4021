// `tessera sim <config.json>`: a discrete-event simulation of a device population training one model on a virtual
// clock, with the real strategies and (full mode) real local training. Writes results.json, devices.json and SVG
// plots of quality against virtual hours and bytes; see src/sim/ and examples/sim-*.json.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { parseSimConfig, SIM_MODES, type SimConfig, type SimMode } from '../../sim/config.ts';
import type { SimProgress } from '../../sim/engine.ts';
import { runSimulation, writeResults } from '../../sim/run.node.ts';

interface SimOptions {
  out?: string;
  mode?: SimMode;
  quiet?: boolean;
}

/** Reads a config file; `mode` (from --mode) replaces the file's before validation, so its checks apply to it. */
export function readSimConfig(file: string, mode?: SimMode): SimConfig {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not readable JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (mode !== undefined && typeof json === 'object' && json !== null && !Array.isArray(json)) json = { ...json, mode };
  return parseSimConfig(json, file);
}

/** What the bar measures: the stop limit the run is expected to hit. */
function progressScale(config: SimConfig): { total: number; of: (p: SimProgress) => number; unit: string } {
  const { hours, leases, versions } = config.stop;
  if (leases !== undefined) return { total: leases, of: (p) => p.leases, unit: 'leases' };
  if (hours !== undefined) return { total: Math.ceil(hours * 60), of: (p) => Math.floor(p.hours * 60), unit: 'virtual minutes' };
  return { total: versions!, of: (p) => p.versions, unit: 'versions' };
}

export async function simulate(file: string, opts: SimOptions): Promise<void> {
  const config = readSimConfig(file, opts.mode);
  const out = opts.out ?? join('.tessera', 'sim', config.name);
  const scale = progressScale(config);
  const bar = new SingleBar(
    {
      format: `${config.name} [${config.mode}] |{bar}| {value}/{total} ${scale.unit} | {hours} h virtual | v{versions} | {metric}`,
      hideCursor: true,
      noTTYOutput: true,
      notTTYSchedule: 15_000,
    },
    Presets.shades_classic,
  );
  let started = false;
  const onProgress = (p: SimProgress) => {
    if (opts.quiet) return;
    const payload = { hours: p.hours.toFixed(2), versions: p.versions, metric: p.metric === undefined ? '-' : `metric ${p.metric.toPrecision(4)}` };
    if (!started) {
      bar.start(scale.total, 0, payload);
      started = true;
    }
    bar.update(Math.min(scale.total, scale.of(p)), payload);
  };
  const onReference = (eps: number, measured: boolean) => {
    if (!opts.quiet) console.log(`reference throughput: ${eps.toFixed(0)} examples/s${measured ? ' (measured on this machine)' : ''}`);
  };
  const run = await runSimulation(config, { onProgress, onReference });
  if (started) bar.stop();
  const files = writeResults(out, run);
  const r = run.result;
  const last = r.versions[r.versions.length - 1]!;
  const metrics = Object.entries(last.metrics).map(([k, v]) => `${k} ${v.toPrecision(4)}`).join(', ');
  const f = r.totals.failures;
  const plans = Object.entries(r.totals.plans).map(([k, n]) => `${n} ${k}`).join(', ');
  console.log(`${r.population.devices} devices, ${r.totals.events} events, ${r.totals.leases} leases (${r.totals.completed} folded; lost: ` +
    `${f.session} session end, ${f.dropout} dropout, ${f.expired} expired, ${f.straggler} straggler, ${f.oom} out of memory, ` +
    `${f.rejected} rejected), ${r.totals.refusals} refusals; plans: ${plans || 'none'}`);
  console.log(`${r.totals.versions} versions in ${r.totals.virtualHours.toFixed(2)} virtual hours; ` +
    `${((r.totals.bytesDown + r.totals.bytesUp) / 1e9).toFixed(2)} GB moved; final ${metrics}`);
  if (r.target !== null) {
    console.log(r.target.reached
      ? `target ${r.target.metric} ${r.target.value} reached at version ${r.target.version}, ${r.target.hours!.toFixed(2)} h, ${(r.target.bytes! / 1e9).toFixed(2)} GB`
      : `target ${r.target.metric} ${r.target.value} not reached`);
  }
  if (r.stalled != null) console.log(`stalled at version ${r.stalled.version} (${r.stalled.hours.toFixed(0)} h): ${r.stalled.message}`);
  if (r.diverged !== null) console.log(`diverged at version ${r.diverged.version} (${r.diverged.hours.toFixed(2)} h): ${r.diverged.message}`);
  console.log(`wall ${r.wall.seconds.toFixed(1)} s (${Math.round(r.wall.eventsPerSecond)} events/s); wrote ${files.join(', ')}`);
}

export function simCommand(): Command {
  return new Command('sim')
    .description('simulate a device population training a model on a virtual clock (real strategies; real training in full mode)')
    .argument('<config>', 'simulation config JSON (see examples/sim-*.json)')
    .option('--out <dir>', 'where to write results.json, devices.json and the plots (default .tessera/sim/<name>)')
    .addOption(new Option('--mode <mode>', 'override the config\'s mode: full (real training) or fast (cost model)').choices([...SIM_MODES]))
    .option('--quiet', 'no progress bar')
    .action((file: string, opts: SimOptions) => simulate(file, opts));
}
