// One simulation from a validated config: load the phone list and (full mode) the task, fix the reference throughput,
// draw the population, pick the plans, run the engine; and write the results (JSON and SVG plots) to a folder.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../core/rng.ts';
import type { SimBackend } from './backend.ts';
import { uploadBytes } from './codec.ts';
import type { SimConfig } from './config.ts';
import { Simulation, type SimProgress } from './engine.ts';
import { fastBackend } from './fast-backend.ts';
import { plannerConfig } from '../core/planner/settings.ts';
import { parameterCount } from '../core/submodel/shapes.ts';
import { fullModelMemoryMiB, fullModelPlans, plannerPlans, type AssignPlan } from './plans.ts';
import { loadPhoneList } from './population.node.ts';
import { drawPopulation, type PhoneRecord, type Population } from './population.ts';
import type { DeviceColumns, SimResult } from './results.ts';
import { lineChart } from './svg.ts';

export interface RunOptions {
  /** Replaces the config's plan policy: how the planner plugs in. Gets the full model's size and memory need. */
  plans?: (model: { parameters: number; memoryMiB: number }, config: SimConfig) => AssignPlan;
  onProgress?: (p: SimProgress) => void;
  /** Called once the reference throughput is known (measured in full mode, or from the config). */
  onReference?: (examplesPerSecond: number, measured: boolean) => void;
  phones?: readonly PhoneRecord[];
}

export interface RunOutput {
  result: SimResult;
  devices: DeviceColumns;
}

export async function runSimulation(config: SimConfig, options: RunOptions = {}): Promise<RunOutput> {
  const phones = options.phones ?? (await loadPhoneList());
  const rng = new Rng(config.seed);
  const popRng = rng.fork();
  const fastSeed = rng.fork().int(2 ** 31);
  const ref = config.population.referenceExamplesPerSecond;
  if (config.mode === 'fast') {
    if (ref === 'measure') throw new Error('fast mode needs population.referenceExamplesPerSecond as a number');
    options.onReference?.(ref, false);
    const population = drawPopulation(config.population, phones, { shards: config.fast.shards, referenceExamplesPerSecond: ref, rng: popRng });
    const nominal = config.fast.model;
    const parameters = nominal === undefined ? config.fast.parameters : parameterCount(nominal);
    const backend = fastBackend({ ...config.fast, parameters, seed: fastSeed }, population.shard);
    const p = config.planner;
    if (p === undefined || nominal === undefined) return simulate(config, population, backend, options);
    // LoRA tiers (the config allows no other planner in fast mode): the real planner on the nominal model decides each
    // lease's rank, steps, deadline, adapter bytes and memory; the backend only stands in for the training.
    const planner = () => plannerPlans(plannerConfig(p, nominal, config.recipe, plannerNetwork(config, backend.parameters)));
    return simulate(config, population, backend, { ...options, plans: options.plans ?? planner });
  }
  // Imported here so that fast mode never loads the tensor runtime.
  const { fullBackend } = await import('./full-backend.node.ts');
  const backend = await fullBackend({ task: config.task!, recipe: config.recipe, eval: config.eval, seed: config.seed });
  try {
    const reference = ref === 'measure' ? await backend.measureThroughput(config.recipe.batchSize) : ref;
    options.onReference?.(reference, ref === 'measure');
    const population = drawPopulation(config.population, phones, { shards: backend.shards, referenceExamplesPerSecond: reference, rng: popRng });
    const p = config.planner;
    const planner = p === undefined ? undefined : () => plannerPlans(plannerConfig(p, backend.spec, config.recipe, plannerNetwork(config, backend.parameters)));
    return await simulate(config, population, backend, { ...options, plans: options.plans ?? planner });
  } finally {
    backend.dispose();
  }
}

/** What the planner assumes of the network: the config's bytes per parameter each way. */
function plannerNetwork(config: SimConfig, parameters: number) {
  return {
    downloadBytesPerParam: config.network.bytesPerParamDown,
    // With a codec, the planner times uploads at the codec's size per parameter of the full model.
    uploadBytesPerParam: uploadBytes(parameters, config.network) / parameters,
  };
}

async function simulate(config: SimConfig, population: Population, backend: SimBackend, options: RunOptions): Promise<RunOutput> {
  const parameters = backend.parameters;
  const model = { parameters, memoryMiB: config.plans.memoryMiB ?? fullModelMemoryMiB(parameters, config.plans.overheadMiB) };
  const assignPlan = options.plans?.(model, config) ?? fullModelPlans(config.plans.policy, model, config.recipe, config.plans.leaseSeconds);
  const sim = new Simulation({ config, population, backend, assignPlan, model, ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
  const result = await sim.run();
  return { result, devices: sim.deviceColumns() };
}

/** Writes results.json, devices.json and the two quality plots into `dir`; returns the paths written. */
export function writeResults(dir: string, out: RunOutput): string[] {
  mkdirSync(dir, { recursive: true });
  const { result } = out;
  const files: Array<[string, string]> = [
    ['results.json', JSON.stringify(result, null, 1) + '\n'],
    ['devices.json', JSON.stringify(out.devices) + '\n'],
  ];
  // The target's metric when there is one (the line drawn is its value), else the mode's main metric.
  const metric = result.target?.metric ?? result.metrics[0]!;
  const points = (x: (v: SimResult['versions'][number]) => number) =>
    result.versions.filter((v) => v.metrics[metric] !== undefined).map((v) => [x(v), v.metrics[metric]!] as const);
  const hline = result.target === null ? undefined : { y: result.target.value, label: `target ${result.target.metric} ${result.target.value}` };
  const series = (x: (v: SimResult['versions'][number]) => number) => [{ name: `${result.name} (${result.aggregation.split(',')[0]})`, points: points(x) }];
  // A log axis when the metric is positive and spans two orders of magnitude (a loss falling from its start).
  const values = result.versions.map((v) => v.metrics[metric]).filter((v): v is number => v !== undefined);
  const logY = values.length > 0 && Math.min(...values) > 0 && Math.max(...values) / Math.min(...values) > 100;
  files.push(['quality-vs-hours.svg', lineChart({
    title: `${result.name}: held-out ${metric} against virtual time`, xLabel: 'virtual hours', yLabel: metric,
    series: series((v) => v.hours), logY, ...(hline ? { hline } : {}),
  })]);
  files.push(['quality-vs-bytes.svg', lineChart({
    title: `${result.name}: held-out ${metric} against bytes moved`, xLabel: 'GB moved (down + up)', yLabel: metric,
    series: series((v) => (v.bytesDown + v.bytesUp) / 1e9), logY, ...(hline ? { hline } : {}),
  })]);
  return files.map(([name, text]) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  });
}
