// LoRA vs full updates (issue 6, item 2): federated fine-tuning of a pretrained char GPT on Tiny Shakespeare roles,
// with the same devices, data, rounds and local steps in every arm; only what a device trains and uploads differs:
//   full        every device trains all weights and uploads the full delta; the server takes the weighted mean
//   lora-flora  devices of ranks 2, 4 and 8 train adapters on the frozen base; FLoRA stacking, merged every round
//   lora-hetlora the same uploads aggregated by HetLoRA-style zero-padding (not exact), for contrast
// Reports held-out loss after each round and bytes uploaded (safetensors, float32).
// A second part runs LoRA leases and full-model leases through the simulator (src/sim, full mode: real training of
// the char GPT on the Tiny Shakespeare roles, the real planner and FedBuff, devices on a virtual clock) and reports
// held-out loss against virtual hours and against bytes moved. Both parts write docs/experiments/lora.md; running one
// part keeps the other's section as it is in the file.
//
//   node --import tsx scripts/experiments/lora.ts [--part all|rounds|sim] [--rounds 6] [--local-steps 20] [--sim-versions 120]
import '../../src/train/runtime/worker-threads.node.ts';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { mergeLora, stackLora, zeroPadAverage, type LoraContribution } from '../../src/core/lora.ts';
import { GptSpec } from '../../src/core/model-spec.ts';
import { Rng } from '../../src/core/rng.ts';
import { encodeSafetensors } from '../../src/core/safetensors.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { CharVocab } from '../../src/data/char-vocab.ts';
import { lmEvalBatches, sampleLmBatch } from '../../src/data/lm-batches.ts';
import { blocksToText, parseSpeeches, partitionBySpeaker, splitHeldOut } from '../../src/data/shakespeare.ts';
import { loadShakespeareText } from '../../src/data/shakespeare.node.ts';
import { loraModel } from '../../src/train/lora.ts';
import { gpt } from '../../src/train/models/gpt.ts';
import type { HostBatch, Model } from '../../src/train/models/model.ts';
import { Trainer } from '../../src/train/trainer.ts';
import { loraSimSection, SIM_HEADING } from './lora-sim.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const REPORT = join(ROOT, 'docs', 'experiments', 'lora.md');
const RANKS = [2, 4, 8];
const BATCH = 16;

const opts = new Command()
  .option('--part <part>', 'which experiment to run: all, rounds (federated rounds, LoRA vs full vs zero-padding) or sim (the simulator)', 'all')
  .option('--rounds <n>', 'federated rounds', Number, 6)
  .option('--local-steps <n>', 'optimizer steps per device per round', Number, 20)
  .option('--pretrain-steps <n>', 'central pretraining steps of the base', Number, 300)
  .option('--sim-versions <n>', 'simulator part: versions each arm runs to', Number, 120)
  .parse()
  .opts<{ part: string; rounds: number; localSteps: number; pretrainSteps: number; simVersions: number }>();
if (!['all', 'rounds', 'sim'].includes(opts.part)) throw new Error(`--part: all, rounds or sim, not ${opts.part}`);

/**
 * LoRA as a coordinator run feature. Its figures come from test/server/lora-run.test.ts (the test asserts them: the
 * upload is the adapters plus a header, over 10x smaller than a full update), not from this script's run.
 */
const COORDINATOR_SECTION = [
  '## LoRA runs on the coordinator',
  '',
  'The same scheme runs live: a run config\'s `planner.lora` (targets, ranks by device tier) makes every lease a `lora`',
  'plan (`{kind, rank, alpha, targets}`; docs/api.md, "LoRA leases"). Devices train adapters on the frozen base version',
  'and upload only `*.lora_A` / `*.lora_B` in the normal update format (codecs apply, top-k excepted); the coordinator',
  'decodes them against the plan\'s adapter layout, forms s A B on the targets with coverage of exactly those',
  'coordinates and folds it with the run\'s strategy. For a linear strategy the next version is base + the weighted',
  'mean of s_k A_k B_k, i.e. FLoRA\'s stacked adapter merged at every version (`src/server/coordinator/run.ts`,',
  '`toGlobal`): `test/server/lora-run.test.ts` checks a version after updates of ranks 4, 2 and 1 against that mean',
  'computed with plain loops and with `stackLora` + `mergeLora` (within 1e-6), and that untrained adapters (B = 0) change',
  'nothing while wrong shapes, a missing B and NaN are refused.',
  '',
  'Bytes per update over HTTP, measured by that test with a device on the lease loop (fp32, one lease each, the',
  'task\'s 2x128 char GPT of 413,312 parameters, rank 8 on its 8 attention and MLP matrices):',
  '',
  '| update | bytes on the wire |',
  '| --- | --- |',
  '| full model (delta) | 1,655,712 |',
  '| LoRA rank 8 (32,768 adapter numbers) | 132,568 (12.5x smaller) |',
  '',
];

async function roundsSection(): Promise<string[]> {

  const corpus = await loadShakespeareText();
  const vocab = CharVocab.fromText(corpus);
  const { train, heldOut } = splitHeldOut(parseSpeeches(corpus));
  const roles = partitionBySpeaker(train, { minChars: 2000 });
  // The base is pretrained on the smaller roles; the devices are the largest ones, unseen in pretraining (a shift the
  // fine-tuning has to follow).
  const devices = roles.slice(0, 3 * opts.rounds).map((c) => vocab.encode(blocksToText(c.blocks)));
  const pretrainText = vocab.encode(blocksToText(roles.slice(3 * opts.rounds).flatMap((c) => c.blocks)));
  const held = vocab.encode(blocksToText(heldOut));
  const spec = GptSpec.parse({ kind: 'gpt', vocabSize: vocab.size, context: 32, width: 64, heads: 4, layers: 2 });
  const model = gpt(spec);
  const T = spec.context;
  const evalSet: HostBatch[] = [...lmEvalBatches(held, 64, T, { maxBatches: 30 })].map((b) => ({ x: b.inputs, y: b.targets, batchSize: b.batchSize }));
  const batches = (stream: Int32Array, rng: Rng) => () => {
    const b = sampleLmBatch(stream, BATCH, T, rng);
    return { x: b.inputs, y: b.targets, batchSize: b.batchSize };
  };

  async function evaluate(params: Map<string, Tensor>): Promise<number> {
    const t = await Trainer.create(model, params, { optimizer: { kind: 'sgd', lr: 1e-3 } });
    const { loss } = await t.evaluate(evalSet);
    t.dispose();
    return loss;
  }

  async function localTrain(m: Model, init: Map<string, Tensor>, stream: Int32Array, seed: number, lr: number): Promise<Map<string, Tensor>> {
    const t = await Trainer.create(m, init, { optimizer: { kind: 'adamw', lr, weightDecay: 0 }, clipGradNorm: 1 });
    const next = batches(stream, new Rng(seed));
    for (let s = 0; s < opts.localSteps; s++) await t.step(next());
    const out = await t.parameters();
    t.dispose();
    return out;
  }

  console.log(`pretraining the base (${opts.pretrainSteps} steps on ${pretrainText.length} characters of the smaller roles)`);
  const pre = await Trainer.create(model, model.init(0), { optimizer: { kind: 'adamw', lr: 3e-3, weightDecay: 0.01 }, clipGradNorm: 1 });
  const nextPre = batches(pretrainText, new Rng(0));
  for (let s = 0; s < opts.pretrainSteps; s++) await pre.step(nextPre());
  const base = await pre.parameters();
  pre.dispose();
  const baseLoss = await evaluate(base);
  const fullBytes = encodeSafetensors(base).length;
  console.log(`base: held-out loss ${baseLoss.toFixed(3)} nats/char`);

  interface Arm { name: string; losses: number[]; uploadBytes: number; seconds: number }
  const arms: Arm[] = [];

  for (const arm of ['full', 'lora-flora', 'lora-hetlora'] as const) {
    let params = base;
    const losses = [baseLoss];
    let uploadBytes = 0;
    const started = performance.now();
    for (let r = 0; r < opts.rounds; r++) {
      const cohort = devices.slice(3 * r, 3 * r + 3);
      const weights = cohort.map(() => 1);
      if (arm === 'full') {
        const deltas: Array<Map<string, Tensor>> = [];
        for (const [k, stream] of cohort.entries()) {
          const after = await localTrain(model, params, stream, 100 * r + k, 2e-3);
          const delta = new Map([...after].map(([n, t]) => [n, { shape: t.shape, data: t.data.map((v, i) => v - params.get(n)!.data[i]!) }]));
          uploadBytes += encodeSafetensors(delta).length;
          deltas.push(delta);
        }
        const total = weights.reduce((s, w) => s + w, 0);
        params = new Map([...params].map(([n, t]) => [n, {
          shape: t.shape, data: t.data.map((v, i) => v + deltas.reduce((s, d, k) => s + (weights[k]! / total) * d.get(n)!.data[i]!, 0)),
        }]));
      } else {
        const contributions: LoraContribution[] = [];
        for (const [k, stream] of cohort.entries()) {
          const lora = loraModel(model, params, { rank: RANKS[k]! });
          const adapters = await localTrain(lora, lora.init(100 * r + k), stream, 100 * r + k, 1e-2);
          uploadBytes += encodeSafetensors(adapters).length;
          contributions.push({ adapters, weight: weights[k]!, scale: lora.scale });
          lora.dispose();
        }
        params = mergeLora(params, arm === 'lora-flora' ? stackLora(contributions) : zeroPadAverage(contributions));
      }
      losses.push(await evaluate(params));
      console.log(`${arm} round ${r + 1}: held-out loss ${losses.at(-1)!.toFixed(3)}, uploaded ${(uploadBytes / 1e3).toFixed(0)} kB so far`);
    }
    arms.push({ name: arm, losses, uploadBytes, seconds: (performance.now() - started) / 1000 });
  }

  const updates = 3 * opts.rounds;

  const lines = [
    '# LoRA vs full updates',
    '',
    `Produced by \`node --import tsx scripts/experiments/lora.ts --rounds ${opts.rounds} --local-steps ${opts.localSteps} --pretrain-steps ${opts.pretrainSteps}\`.`,
    '',
    `Setup: a char GPT (${spec.layers} layers, width ${spec.width}, context ${T}, ${fullBytes.toLocaleString('en')} bytes of float32 weights) pretrained`,
    `centrally for ${opts.pretrainSteps} steps on the smaller Shakespeare roles, then fine-tuned federatedly on the ${updates} largest roles`,
    `(unseen in pretraining): ${opts.rounds} rounds of 3 devices, ${opts.localSteps} AdamW steps of ${BATCH} windows each per device and round,`,
    'equal weights. Full: devices train all weights (lr 2e-3) and upload the delta; the server averages. LoRA: the',
    `devices of a round have ranks ${RANKS.join(', ')} (alpha = 2r) on the attention and MLP matrices (lr 1e-2) and upload`,
    'A and B only; FLoRA stacking (exact mean of the updates) or HetLoRA-style zero-padding (inexact), merged into the',
    `base every round. Held-out loss on ${evalSet.length} batches of the held-out speeches, nats/char.`,
    '',
    `| arm | loss after round 0..${opts.rounds} | bytes uploaded (${updates} updates) | per update | wall s |`,
    '| --- | --- | --- | --- | --- |',
    ...arms.map((a) => `| ${a.name} | ${a.losses.map((l) => l.toFixed(3)).join(' → ')} | ${(a.uploadBytes / 1e3).toFixed(0)} kB | ${(a.uploadBytes / updates / 1e3).toFixed(1)} kB | ${a.seconds.toFixed(0)} |`),
    '',
    `A full update is ${(fullBytes / 1e3).toFixed(0)} kB; the LoRA uploads of ranks ${RANKS.join('/')} average ${(arms[1]!.uploadBytes / updates / 1e3).toFixed(1)} kB, ${(fullBytes / (arms[1]!.uploadBytes / updates)).toFixed(1)}x less.`,
    '',
    ...reading(),
    '',
    'One seed, one short run on a shared 2-core machine: read the differences between arms, not the absolute losses.',
    '',
  ];
  /** Plain statements computed from the numbers above, so a rerun cannot leave a stale claim behind. */
  function reading(): string[] {
    const [full, flora, het] = arms as [Arm, Arm, Arm];
    const last = (a: Arm) => a.losses.at(-1)!;
    const gap = last(flora) - last(full);
    const perRound = full.uploadBytes / opts.rounds;
    const roundsForLoraBytes = Math.max(1, Math.ceil(flora.uploadBytes / perRound));
    const floraWins = flora.losses.slice(1).filter((l, i) => l < het.losses[i + 1]!).length;
    const params = [...base.values()].reduce((n, t) => n + t.data.length, 0);
    const adapterValues = RANKS.map((r) => loraModel(model, base, { rank: r })).map((m) => {
      m.dispose();
      return m.shapes.reduce((n, [, sh]) => n + sh.reduce((a, b) => a * b, 1), 0);
    });
    const mb = (floats: number) => `${((4 * floats) / 1e6).toFixed(2)} MB`;
    return [
      `- Training state on a device (float32, activations aside, which are about the same in both): full updates keep weights, ` +
        `gradients and two AdamW moments, ${mb(4 * params)}; LoRA keeps the frozen weights plus adapters, their gradients and moments, ` +
        RANKS.map((r, i) => `${mb(params + 4 * adapterValues[i]!)} at rank ${r}`).join(', ') + '.',
      `- Equal rounds: LoRA (FLoRA) ends at ${last(flora).toFixed(3)} against full updates' ${last(full).toFixed(3)}: ` +
        (gap > 0 ? `${gap.toFixed(3)} nats/char worse (the goal of matching full updates at equal rounds is not met here)` : `${(-gap).toFixed(3)} better`) +
        `, for ${(full.uploadBytes / flora.uploadBytes).toFixed(1)}x fewer bytes.`,
      `- Equal bytes: all ${opts.rounds} LoRA rounds uploaded ${(flora.uploadBytes / 1e3).toFixed(0)} kB, what the full arm uploads in ` +
        `${(flora.uploadBytes / perRound).toFixed(2)} rounds; after ${roundsForLoraBytes} round(s) (${(roundsForLoraBytes * perRound / 1e3).toFixed(0)} kB) the full arm was at ` +
        `${full.losses[roundsForLoraBytes]!.toFixed(3)}.`,
      `- Exact vs zero-padded aggregation of the same kind of uploads: FLoRA stacking has the lower loss after ${floraWins} of ${opts.rounds} rounds ` +
        `(final ${last(flora).toFixed(3)} vs ${last(het).toFixed(3)}).`,
    ];
  }

  return lines;
}

/**
 * The file's parts as they stand: the rounds experiment (from the top), the simulator section, and the coordinator
 * section (which this script writes from COORDINATOR_SECTION), so that one part can be rerun alone.
 */
function keptParts(): { rounds: string[] | undefined; sim: string[] | undefined } {
  if (!existsSync(REPORT)) return { rounds: undefined, sim: undefined };
  const text = readFileSync(REPORT, 'utf8');
  const simAt = text.indexOf(`${SIM_HEADING}\n`);
  const coordAt = text.indexOf(`${COORDINATOR_SECTION[0]}\n`);
  const roundsEnd = [simAt, coordAt].filter((i) => i >= 0).reduce((a, b) => Math.min(a, b), text.length);
  const split = (t: string) => t.replace(/\n+$/, '').split('\n').concat('');
  return {
    rounds: roundsEnd > 0 ? split(text.slice(0, roundsEnd)) : undefined,
    sim: simAt >= 0 ? split(text.slice(simAt, coordAt > simAt ? coordAt : text.length)) : undefined,
  };
}

const kept = keptParts();
const rounds = opts.part === 'sim' ? kept.rounds : await roundsSection();
const sim = opts.part === 'rounds' ? kept.sim : await loraSimSection({ versions: opts.simVersions, command: `node --import tsx scripts/experiments/lora.ts --part sim --sim-versions ${opts.simVersions}` });
if (rounds === undefined) throw new Error(`${REPORT} has no rounds section to keep: run --part rounds (or all) first`);
const lines = [...rounds, ...(sim ?? []), ...COORDINATOR_SECTION];
mkdirSync(dirname(REPORT), { recursive: true });
writeFileSync(REPORT, lines.join('\n'));
console.log(lines.join('\n'));
