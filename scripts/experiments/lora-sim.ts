// The simulator part of the LoRA report (scripts/experiments/lora.ts --part sim): LoRA leases against full-model leases
// in an asynchronous run of heterogeneous phones, with the real planner, FedBuff and real training of a char GPT on the
// Tiny Shakespeare roles (src/sim, full mode), both fine-tuning the same base pretrained centrally here (task.init).
// Both arms share the population, seed, data, planner and local steps; they differ in what a lease trains and uploads
// (adapters of the device tier's rank, or every weight) and in the learning rate that suits each (adapters start with
// a zero product and take larger steps, as in the rounds part).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { Rng } from '../../src/core/rng.ts';
import { encodeSafetensors } from '../../src/core/safetensors.ts';
import { loadTask } from '../../src/device/tasks/registry.node.ts';
import { lineChart } from '../../src/sim/svg.ts';
import { parseSimConfig, type SimConfigInput } from '../../src/sim/config.ts';
import type { SimResult } from '../../src/sim/results.ts';
import { runSimulation } from '../../src/sim/run.node.ts';
import { createModel } from '../../src/train/models/registry.ts';
import { Trainer } from '../../src/train/trainer.ts';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SIM_HEADING = '## LoRA and full leases in the simulator';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PLOTS = join(ROOT, 'docs', 'experiments', 'lora');
const MODEL = { kind: 'gpt', vocabSize: 65, context: 32, width: 64, heads: 4, layers: 1, mlpRatio: 4 } as const;
const MATRICES = ['h.0.attn.c_attn.weight', 'h.0.attn.c_proj.weight', 'h.0.mlp.c_fc.weight', 'h.0.mlp.c_proj.weight'];
const TARGETS = MATRICES;
/** Central pretraining of the base both arms fine-tune: AdamW steps of 32 windows of the whole training text. */
const PRETRAIN_STEPS = 300;
const TIERS: Array<{ rank: number; minMemoryMiB: number }> = [{ rank: 8, minMemoryMiB: 3000 }, { rank: 4, minMemoryMiB: 1500 }, { rank: 2, minMemoryMiB: 0 }];
const STEPS = 10;

interface Arm { id: 'full' | 'lora'; label: string; lr: number }
const ARMS: Arm[] = [
  { id: 'full', label: 'full-model leases', lr: 2e-3 },
  { id: 'lora', label: `LoRA leases (ranks ${TIERS.map((t) => t.rank).join('/')} by memory)`, lr: 1e-2 },
];

/** The pretrained base as a safetensors file (made once, then reused: pretraining is seeded and deterministic). */
async function pretrainedBase(): Promise<string> {
  const path = join(ROOT, '.tessera', 'experiments', 'lora-sim', `base-${MODEL.layers}x${MODEL.width}-${PRETRAIN_STEPS}.safetensors`);
  if (existsSync(path)) return path;
  console.log(`pretraining the base (${PRETRAIN_STEPS} steps)`);
  const task = await loadTask('shakespeare', MODEL);
  const model = createModel(MODEL);
  const t = await Trainer.create(model, model.init(0), { optimizer: { kind: 'adamw', lr: 3e-3, weightDecay: 0.01 }, clipGradNorm: 1 });
  try {
    const next = task.trainBatches(32, new Rng(0));
    for (let s = 0; s < PRETRAIN_STEPS; s++) await t.step(next());
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, encodeSafetensors(await t.parameters()));
  } finally {
    t.dispose();
  }
  return path;
}

function configFor(arm: Arm, versions: number, init: string): SimConfigInput {
  return {
    name: `lora-sim-${arm.id}`, mode: 'full', seed: 3,
    task: { name: 'shakespeare', model: MODEL, init },
    population: { devices: 64, referenceExamplesPerSecond: 28, timezoneSpreadHours: 6 },
    aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 4 }, concurrency: 12 },
    recipe: { localSteps: STEPS, batchSize: 16, lr: arm.lr, optimizer: 'adamw', clipGradNorm: 1 },
    // One planner for both arms with the steps pinned, so only what a lease trains and uploads differs.
    planner: {
      submodels: 'none', leaseSeconds: 600, minSteps: STEPS, maxSteps: STEPS,
      ...(arm.id === 'lora' ? { lora: { targets: TARGETS, tiers: TIERS } } : {}),
    },
    eval: { everyVersions: 10, batches: 10, batchSize: 100 },
    stop: { versions },
  };
}

const kB = (b: number) => `${(b / 1e3).toFixed(0)} kB`;
const MB = (b: number) => `${(b / 1e6).toFixed(2)} MB`;

/** Runs both arms and returns the report section (heading first). */
export async function loraSimSection(o: { versions: number; command: string }): Promise<string[]> {
  const base = await pretrainedBase();
  const runs: Array<{ arm: Arm; r: SimResult }> = [];
  for (const arm of ARMS) {
    const started = Date.now();
    const { result } = await runSimulation(parseSimConfig(configFor(arm, o.versions, base)));
    console.log(`sim ${arm.id}: ${result.versions.at(-1)!.version} versions in ${((Date.now() - started) / 1000).toFixed(0)} s, loss ${result.versions.at(-1)!.metrics['loss']?.toFixed(3)}`);
    runs.push({ arm, r: result });
  }
  const [full, lora] = runs as [{ arm: Arm; r: SimResult }, { arm: Arm; r: SimResult }];
  const evaluated = (r: SimResult) => r.versions.filter((v) => v.metrics['loss'] !== undefined);
  const lossAt = (r: SimResult) => evaluated(r).at(-1)!.metrics['loss']!;
  const last = (r: SimResult) => r.versions.at(-1)!;
  const perUpdate = (r: SimResult) => r.totals.bytesUp / Math.max(1, r.totals.completed);

  mkdirSync(PLOTS, { recursive: true });
  const chart = (x: 'hours' | 'bytes') => lineChart({
    title: x === 'hours' ? 'Held-out loss against virtual minutes' : 'Held-out loss against MB moved (down + up)',
    xLabel: x === 'hours' ? 'virtual minutes' : 'MB moved', yLabel: 'held-out loss (nats/char)',
    series: runs.map(({ arm, r }) => ({
      name: arm.label,
      points: evaluated(r).map((v) => [x === 'hours' ? v.hours * 60 : (v.bytesDown + v.bytesUp) / 1e6, v.metrics['loss']!] as const),
    })),
  });
  writeFileSync(join(PLOTS, 'sim-vs-hours.svg'), chart('hours'));
  writeFileSync(join(PLOTS, 'sim-vs-bytes.svg'), chart('bytes'));

  // The first evaluation at which each arm reached the worse of the two final losses: time and bytes to equal quality.
  const common = Math.max(lossAt(full.r), lossAt(lora.r));
  const reach = (r: SimResult) => evaluated(r).find((v) => v.metrics['loss']! <= common + 1e-9)!;
  const [fReach, lReach] = [reach(full.r), reach(lora.r)];
  const rows = runs.map(({ arm, r }) => {
    const t = r.totals;
    const plans = Object.entries(t.plans).map(([p, n]) => `${p}: ${n}`).join(', ');
    return `| ${arm.label} | ${arm.lr} | ${last(r).version} | ${(last(r).hours * 60).toFixed(0)} | ${lossAt(r).toFixed(3)} | ${t.completed} | ${kB(perUpdate(r))} | ${MB(t.bytesUp)} | ${MB(t.bytesDown)} | ${plans} | ${r.wall.seconds.toFixed(0)} |`;
  });
  const x = (a: number, b: number) => `${(a / b).toFixed(1)}x`;
  return [
    SIM_HEADING,
    '',
    `Produced by \`${o.command}\`.`,
    '',
    `Setup: the simulator in full mode (src/sim; real local training of a char GPT, ${MODEL.layers} layer, width ${MODEL.width}, context ${MODEL.context},`,
    `${full.r.model.parameters.toLocaleString('en')} parameters, on the Tiny Shakespeare roles, one role per shard), 64 phones and laptops from the`,
    'population model (availability windows over 6 time zones, bandwidth, dropouts), asynchronous FedBuff with K = 4 and',
    `12 leases in flight, ${STEPS} AdamW steps of 16 windows per lease, to ${o.versions} versions, both fine-tuning one base pretrained centrally`,
    `for ${PRETRAIN_STEPS} AdamW steps of 32 windows of the whole training text (held-out loss ${evaluated(full.r)[0]!.metrics['loss']!.toFixed(3)} at version 0; \`task.init\`). The same planner`,
    `decides every lease in both arms (steps pinned to ${STEPS}); with \`planner.lora\` it gives each device the largest rank its memory`,
    `qualifies for (${TIERS.map((t) => `rank ${t.rank}${t.minMemoryMiB > 0 ? ` from ${t.minMemoryMiB} MiB` : ' below'}`).join(', ')}), on ${TARGETS.join(', ')},`,
    'and the server folds s A B with the coordinator\'s code',
    '(src/sim/lora.ts). Held-out loss every 10 versions on 10 batches of 100 windows of the held-out speeches.',
    '',
    '| arm | lr | versions | virtual minutes | final held-out loss | updates folded | bytes up / update | MB up | MB down | leases by plan | wall s |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |',
    ...rows,
    '',
    `- Upload: a LoRA update averaged ${kB(perUpdate(lora.r))} against ${kB(perUpdate(full.r))} for a full-model update, ${x(perUpdate(full.r), perUpdate(lora.r))} fewer bytes up` +
      ` (${MB(lora.r.totals.bytesUp)} against ${MB(full.r.totals.bytesUp)} over the run). Downloads are the same kind in both arms (every lease fetches the base version),` +
      ` so the total moved falls only ${x(last(full.r).bytesUp + last(full.r).bytesDown, last(lora.r).bytesUp + last(lora.r).bytesDown)}.`,
    `- Quality at equal versions: after ${o.versions} versions LoRA is at ${lossAt(lora.r).toFixed(3)} against ${lossAt(full.r).toFixed(3)} for full leases (` +
      (lossAt(lora.r) <= lossAt(full.r) ? `${(lossAt(full.r) - lossAt(lora.r)).toFixed(3)} nats/char better` : `${(lossAt(lora.r) - lossAt(full.r)).toFixed(3)} nats/char worse`) + ').',
    `- To the same loss (${common.toFixed(3)}, the worse final): full leases got there at ${(fReach.hours * 60).toFixed(0)} virtual minutes with ${MB(fReach.bytesUp)} up and ${MB(fReach.bytesDown)} down;` +
      ` LoRA at ${(lReach.hours * 60).toFixed(0)} minutes with ${MB(lReach.bytesUp)} up and ${MB(lReach.bytesDown)} down.`,
    '',
    '![loss against virtual minutes](lora/sim-vs-hours.svg)',
    '',
    '![loss against MB moved](lora/sim-vs-bytes.svg)',
    '',
    'One seed, one small model and one short fine-tuning: read it for the bytes and the shape of the curves, not as a verdict',
    'on quality.',
    '',
  ];
}
