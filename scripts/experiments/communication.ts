// The communication experiment (issue 8): quality reached against bytes moved, in the simulator's full mode (real
// training on real data), for dense fp32 updates, fp16, int8, 4-bit, top-k 1% with error feedback, and the DiLoCo
// preset (H local steps in the hundreds, outer Nesterov, int8 outer updates), on Fashion-MNIST and Tiny Shakespeare.
// One command writes docs/experiments/communication.md and its plots:
//
//   npm run experiment:communication                       # every run, then the report
//   npm run experiment:communication -- --only fashion     # one dataset
//   npm run experiment:communication -- --report-only      # rewrite the report from the last runs' results
//
// Every setup of a dataset shares the population, data split, seed, model, cohort and local recipe; setups 1-5
// differ only in the update codec (network.codec, src/sim/codec.ts), and all five get the same compute: the same
// number of synchronous FedAvg rounds of `cohort` leases of H = 10 local steps. DiLoCo changes H, the outer
// optimizer (Nesterov, lr 0.7, momentum 0.9; Douillard et al. 2023) and the codec (int8, as INTELLECT-1), with as
// many rounds as give it the same number of local steps as the others. Downloads are fp32 weights or exact sparse
// deltas for setups 1-6 (4 bytes per parameter, once per device per version); setups 7-9 add a downlink codec
// (network.downlinkCodec): versions are compressed steps and devices download chains of them.
// Results: docs/experiments/communication/results/ (one file per setup, the simulator's result without its per-fold
// and per-hour logs), committed beside the report so that --report-only rebuilds it and running some setups keeps the
// others'.
import '../../src/train/runtime/worker-threads.node.ts';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem, type } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { codecLabel, type CodecSpecInput } from '../../src/core/codecs/spec.ts';
import { parseSimConfig, type SimConfigInput } from '../../src/sim/config.ts';
import type { SimResult } from '../../src/sim/results.ts';
import { runSimulation } from '../../src/sim/run.node.ts';
import { lineChart } from '../../src/sim/svg.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RESULTS_DIR = join(ROOT, 'docs', 'experiments', 'communication', 'results');
const REPORT = join(ROOT, 'docs', 'experiments', 'communication.md');
const PLOTS_DIR = join(ROOT, 'docs', 'experiments', 'communication');
const COMMAND = 'npm run experiment:communication';

interface Dataset {
  id: 'fashion' | 'shakespeare';
  title: string;
  metric: 'accuracy' | 'loss';
  goal: 'max' | 'min';
  task: SimConfigInput['task'];
  recipe: NonNullable<SimConfigInput['recipe']> & { localSteps: number };
  /** Rounds of the H = 10 setups; DiLoCo gets rounds * 10 / dilocoH. */
  rounds: number;
  dilocoH: number;
  evalEvery: number;
  /** The whole held-out set, so that one evaluation is precise enough to say when a threshold was first reached. */
  eval: { batches: number; batchSize: number; examples: string };
}

const DATASETS: Dataset[] = [
  {
    id: 'fashion', title: 'Fashion-MNIST (MLP 784-256-128-10, 235k parameters)', metric: 'accuracy', goal: 'max',
    task: { name: 'fashion-mlp', model: { kind: 'mlp', inputs: 784, hidden: [256, 128], classes: 10 }, shards: 64, alpha: 0.5 },
    recipe: { localSteps: 10, batchSize: 32, lr: 0.002, optimizer: 'adamw', clipGradNorm: 1 },
    rounds: 200, dilocoH: 200, evalEvery: 5, eval: { batches: 10, batchSize: 1000, examples: 'the 10,000 test images' },
  },
  {
    id: 'shakespeare', title: 'Tiny Shakespeare (GPT, 1 layer, width 64, context 32)', metric: 'loss', goal: 'min',
    task: { name: 'shakespeare', model: { kind: 'gpt', vocabSize: 65, context: 32, width: 64, heads: 4, layers: 1, mlpRatio: 4 } },
    recipe: { localSteps: 10, batchSize: 16, lr: 0.003, optimizer: 'adamw', clipGradNorm: 1 },
    rounds: 60, dilocoH: 100, evalEvery: 2, eval: { batches: 35, batchSize: 100, examples: '3,500 windows, the whole held-out text of every role' },
  },
];

interface Setup {
  id: string;
  label: string;
  codec?: CodecSpecInput;
  /** The run's downlink codec (network.downlinkCodec); absent: fp32 files or exact sparse deltas. */
  downlink?: CodecSpecInput;
  diloco?: boolean;
  /** DiLoCo's own regime: this many always-on workers, each holding 1/workers of the data, all in every round. */
  workers?: number;
  /** Local steps per round, overriding the dataset's DiLoCo H (rounds follow, for the same total local steps). */
  h?: number;
  /** Only these datasets (a setup whose H leaves a dataset's budget a single round says nothing there). */
  datasets?: ReadonlyArray<Dataset['id']>;
}

const SETUPS: Setup[] = [
  { id: '1-fp32', label: '1. dense fp32' },
  { id: '2-fp16', label: '2. fp16', codec: { values: 'fp16' } },
  { id: '3-int8', label: '3. int8 (stochastic, blocks of 256)', codec: { values: 'int8', blockSize: 256 } },
  { id: '4-int4', label: '4. 4-bit (stochastic, blocks of 256)', codec: { values: 'int4', blockSize: 256 } },
  { id: '5-topk', label: '5. top-k 1% + error feedback', codec: { values: 'fp32', topK: 0.01 } },
  { id: '6-diloco', label: '6. DiLoCo preset (int8 outer updates)', codec: { values: 'int8', blockSize: 256 }, diloco: true },
  // Compressed downlink (src/core/codecs/downlink.ts): each version is its parent plus an encoded step, with error
  // feedback on the server; a device downloads the chain of steps since its version when that beats the file.
  { id: '7-int8-both', label: '7. int8 up + int8 down', codec: { values: 'int8', blockSize: 256 }, downlink: { values: 'int8', blockSize: 256 } },
  { id: '8-int4-both', label: '8. 4-bit up + 4-bit down', codec: { values: 'int4', blockSize: 256 }, downlink: { values: 'int4', blockSize: 256 } },
  { id: '9-topk-int4down', label: '9. top-k 1% + EF up, 4-bit down', codec: { values: 'fp32', topK: 0.01 }, downlink: { values: 'int4', blockSize: 256 } },
  // DiLoCo with the compressed downlink; then DiLoCo's own regime (Douillard et al. 2023): the same 8 always-on
  // workers in every outer round, each with its own eighth of the data, so a worker downloads one step per round
  // instead of a chain.
  { id: '10-diloco-int4down', label: '10. DiLoCo, int8 up + 4-bit down', codec: { values: 'int8', blockSize: 256 }, downlink: { values: 'int4', blockSize: 256 }, diloco: true },
  { id: '11-diloco-workers', label: '11. DiLoCo, 8 fixed workers, 4-bit both ways', codec: { values: 'int4', blockSize: 256 }, downlink: { values: 'int4', blockSize: 256 }, diloco: true, workers: 8 },
  // H = 500, the preset's, fits Fashion-MNIST's budget 4 times; Tiny Shakespeare's budget (600 local steps a worker)
  // would be one outer round.
  { id: '12-diloco-workers-h500', label: '12. DiLoCo, 8 fixed workers, 4-bit both ways, H = 500', codec: { values: 'int4', blockSize: 256 }, downlink: { values: 'int4', blockSize: 256 }, diloco: true, workers: 8, h: 500, datasets: ['fashion'] },
  // 2 bits a value both ways (TernGrad's ternarization per block; blocks of 64 keep the scale near the values):
  // about half the bytes of 4-bit, if the noise allows.
  { id: '13-int2-both', label: '13. 2-bit up + 2-bit down (blocks of 64)', codec: { values: 'int2', blockSize: 64 }, downlink: { values: 'int2', blockSize: 64 } },
  // The control for 11 and 12: dense fp32 FedAvg (H = 10) with the same 8 always-on workers, so DiLoCo's saving can be
  // read within its own regime as well as against the volunteer population's dense run.
  { id: '14-fp32-workers', label: '14. dense fp32, 8 fixed workers', workers: 8 },
];

const COHORT = 8;

const setupsOf = (d: Dataset) => SETUPS.filter((s) => s.datasets === undefined || s.datasets.includes(d.id));

function configFor(d: Dataset, s: Setup): SimConfigInput {
  const H = s.h ?? (s.diloco === true ? d.dilocoH : d.recipe.localSteps);
  const rounds = Math.max(1, Math.round((d.rounds * d.recipe.localSteps) / H));
  const fixed = s.workers !== undefined;
  // Fixed workers split all the data among themselves: Fashion-MNIST in that many Dirichlet shards, Shakespeare's roles
  // dealt round-robin into that many groups (with one role each, 8 workers would see 8 roles).
  const task = fixed ? { ...d.task!, shards: s.workers! } : d.task;
  return {
    name: `communication-${d.id}-${s.id}`, seed: 1, mode: 'full', task,
    population: fixed
      // Always-on machines (DiLoCo's workers are datacenter nodes): every worker is online for every round.
      ? {
          devices: s.workers!, referenceExamplesPerSecond: 28,
          tiers: [{ kind: 'desktop', share: 1, availability: { windowStartHour: 0, windowStartJitterHours: 0, windowHours: 24, windowJitterHours: 0, sessionMinutes: 1e7, gapMinutes: 0, dropoutPerHour: 0 } }],
        }
      : { devices: 64, referenceExamplesPerSecond: 28, timezoneSpreadHours: 6 },
    aggregation: {
      mode: 'sync', strategy: s.diloco === true ? { kind: 'diloco', lr: 0.7, momentum: 0.9 } : { kind: 'fedavg' },
      cohort: s.workers ?? COHORT, overSelection: fixed ? 1 : 1.25, roundSeconds: 24 * 3600, minUpdates: s.workers ?? COHORT,
    },
    recipe: { ...d.recipe, localSteps: H },
    plans: { policy: 'full' },
    // Downlink deltas on: the coordinator sends the entries changed since the device's version when that is smaller.
    network: {
      bytesPerParamDown: 4, bytesPerParamUp: 4, weightDeltas: true, ...(s.codec === undefined ? {} : { codec: s.codec }),
      ...(s.downlink === undefined ? {} : { downlinkCodec: s.downlink }),
    },
    eval: { everyVersions: s.diloco === true ? 1 : d.evalEvery, batches: d.eval.batches, batchSize: d.eval.batchSize },
    stop: { versions: rounds },
  };
}

interface Stored {
  config: SimConfigInput;
  result: SimResult;
}

const opts = new Command()
  .name('experiments/communication')
  .option('--only <dataset>', 'fashion or shakespeare')
  .option('--setups <ids>', 'comma-separated setup ids (e.g. 1-fp32,6-diloco)')
  .option('--report-only', 'rewrite the report from stored results')
  .parse()
  .opts<{ only?: string; setups?: string; reportOnly?: boolean }>();


function load(d: Dataset, s: Setup): Stored | undefined {
  const path = join(RESULTS_DIR, `${configFor(d, s).name}.json`);
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Stored) : undefined;
}

/** How versions travel: exact sparse deltas or files, plus the chain of encoded steps of a downlink codec. */
function downlinkLabel(config: SimConfigInput): string {
  const base = config.network?.weightDeltas === true ? 'deltas' : 'full files';
  const down = config.network?.downlinkCodec;
  return down === undefined ? base : `${base} + ${codecLabel(parseSimConfig(config).network.downlinkCodec)} steps`;
}

const gb = (b: number) => b / 1e9;
const fmt = (x: number, digits = 3) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
const better = (d: Dataset, a: number, b: number) => (d.goal === 'max' ? a >= b : a <= b);

function totalWall(): number {
  return DATASETS.flatMap((d) => setupsOf(d).map((s) => load(d, s)?.result.wall?.seconds ?? 0)).reduce((a, b) => a + b, 0);
}

function writeReport(): void {
  mkdirSync(PLOTS_DIR, { recursive: true });
  const out: string[] = [];
  out.push('# Communication: quality against bytes moved (issue 8)', '');
  out.push(`Produced by \`${COMMAND}\` (scripts/experiments/communication.ts); this run: ${new Date().toISOString().slice(0, 10)}, ` +
    `${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, ${type()} ${release()}, ` +
    `Node ${process.version}; the simulations took ${(totalWall() / 60).toFixed(1)} minutes of wall time in all (the wall column; ` +
    `one dataset per core, niced, beside other work on the machine). Seeded: a rerun gives the same figures apart from wall times.`, '');
  out.push('Setup: the simulator in full mode (real training, real data, src/sim), 64 devices drawn from the phone list,',
    `synchronous FedAvg rounds of ${COHORT} updates (over-selection 1.25; stragglers dropped), the same seed and data split for every`,
    'setup of a dataset. Setups 1-5 differ only in the update codec (`network.codec`: every upload is encoded and decoded',
    'with `src/core/codecs` and charged its exact size; top-k keeps a per-device error-feedback residual) and all run',
    'the same rounds of H = 10 local AdamW steps. Setup 6 is the DiLoCo preset: H local steps in the hundreds, outer',
    'Nesterov momentum (lr 0.7, momentum 0.9), int8 updates, and as many rounds as give it the same total local steps.',
    'Bytes down are fp32 weights (4 bytes per parameter, once per device per new version) or, when smaller, the exact sparse',
    'delta of the entries changed since the device\'s version; bytes up are the codec\'s. Setups 7-9 add a downlink codec',
    '(`network.downlinkCodec`, src/core/codecs/downlink.ts): every version is its parent plus the encoded step, with the',
    'server\'s error feedback, devices train from these versions, and a device downloads the chain of encoded steps since',
    'its version when that is smaller than the file. Setup 10 is the DiLoCo preset with that compressed downlink. Setups 11',
    'and 12 are DiLoCo\'s own regime (Douillard et al. 2023): 8 always-on workers (online all day, no dropouts), each',
    'holding an eighth of the data (Fashion-MNIST in 8 Dirichlet shards, Shakespeare\'s roles dealt into 8 groups), all in',
    'every outer round, so a worker downloads one encoded step per round; the same total local steps as the others.',
    'Setup 13 is 2-bit (ternary) updates both ways. Setup 14 is the control for 11 and 12: dense fp32 FedAvg, H = 10,',
    'with the same 8 always-on workers.',
    '"GB to baseline" is the total (down + up) when a setup first reached the dense baseline\'s final',
    'quality within 1% (relative), and "x fewer" compares it with what the dense run had moved when it first got there.', '');
  for (const d of DATASETS) {
    const runs = setupsOf(d).map((s) => ({ s, r: load(d, s) })).filter((x): x is { s: Setup; r: Stored } => x.r !== undefined);
    if (runs.length === 0) continue;
    out.push(`## ${d.title}`, '');
    const dense = runs.find((x) => x.s.id === '1-fp32');
    const q = (v: SimResult['versions'][number]) => v.metrics[d.metric]!;
    const evaluated = (r: SimResult) => r.versions.filter((v) => v.metrics[d.metric] !== undefined && v.version > 0);
    // A model's quality moves between versions (non-IID rounds pull it about by a point or more), so a setup's final
    // quality is the mean of its evaluations over the last tenth of its run (every setup of a dataset has the same
    // local-step budget, so that is the same share of compute: the last 20 of 200 rounds, or the last of 10 DiLoCo
    // rounds). Each evaluation is on the whole held-out set, precise enough that the first one within 1% of the dense
    // final says when a setup got there.
    const finalOf = (r: SimResult) => {
      const all = evaluated(r);
      const lastVersion = all.at(-1)!.version;
      const tail = all.filter((v) => v.version >= 0.9 * lastVersion);
      return tail.reduce((a, v) => a + q(v), 0) / tail.length;
    };
    const denseFinal = dense === undefined ? NaN : finalOf(dense.r.result);
    const threshold = d.goal === 'max' ? denseFinal * 0.99 : denseFinal * 1.01;
    const reach = (r: SimResult) => evaluated(r).find((v) => better(d, q(v), threshold));
    const denseReach = dense === undefined ? undefined : reach(dense.r.result);
    const denseBytes = denseReach === undefined ? NaN : denseReach.bytesDown + denseReach.bytesUp;
    out.push(`Quality: held-out ${d.metric} (${d.goal === 'max' ? 'higher' : 'lower'} is better) on ${d.eval.examples}, every ${d.evalEvery} versions (DiLoCo: every version); final = the mean of the evaluations over the last tenth of the run's versions. Threshold: ${fmt(threshold)} (dense final ${fmt(denseFinal)} ${d.goal === 'max' ? 'minus' : 'plus'} 1%); "GB to baseline" is at the first evaluation that meets it.`, '');
    out.push(`| setup | codec | downlink | H | rounds | final ${d.metric} (last tenth) | vs dense | GB up | GB down | bytes up / update | GB to baseline | x fewer than dense | wall (s) |`);
    out.push('| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const { s, r } of runs) {
      const res = r.result;
      const last = res.versions.at(-1)!;
      const final = finalOf(res);
      const hit = reach(res);
      const bytes = hit === undefined ? NaN : hit.bytesDown + hit.bytesUp;
      const rel = d.goal === 'max' ? (final - denseFinal) / denseFinal : (denseFinal - final) / denseFinal;
      out.push(`| ${s.label} | ${codecLabel(r.config.network?.codec === undefined ? undefined : parseSimConfig(r.config).network.codec)} | ${downlinkLabel(r.config)} | ${r.config.recipe!.localSteps} | ${res.versions.at(-1)!.version} | ${fmt(final)} | ${(100 * rel).toFixed(1)}% | ${fmt(gb(last.bytesUp), 3)} | ${fmt(gb(last.bytesDown), 3)} | ${res.model.uploadBytes.toLocaleString('en-US')} | ${hit === undefined ? 'not reached' : fmt(gb(bytes), 3)} | ${hit === undefined ? '-' : `${(denseBytes / bytes).toFixed(1)}x`} | ${fmt(res.wall?.seconds ?? NaN, 0)} |`);
    }
    out.push('');
    const svg = lineChart({
      title: `${d.title}: held-out ${d.metric} against GB moved`, xLabel: 'GB moved (down + up), log10', yLabel: d.metric,
      series: runs.map(({ s, r }) => ({ name: s.label, points: evaluated(r.result).filter((v) => v.bytesDown + v.bytesUp > 0).map((v) => [Math.log10(gb(v.bytesDown + v.bytesUp)), q(v)] as const) })),
      ...(Number.isFinite(threshold) ? { hline: { y: threshold, label: 'dense final within 1%' } } : {}),
    });
    writeFileSync(join(PLOTS_DIR, `${d.id}-vs-bytes.svg`), svg);
    out.push(`![${d.metric} against bytes](communication/${d.id}-vs-bytes.svg)`, '');
  }
  out.push('<!-- discussion -->', readDiscussion(), '<!-- /discussion -->', '');
  writeFileSync(REPORT, out.join('\n'));
  console.error(`wrote ${REPORT}`);
}

/** The hand-written discussion survives reruns. */
function readDiscussion(): string {
  if (!existsSync(REPORT)) return '## Discussion\n\n(to be written after reading the figures)';
  const m = readFileSync(REPORT, 'utf8').match(/<!-- discussion -->\n([\s\S]*?)\n<!-- \/discussion -->/);
  return m?.[1] ?? '## Discussion\n\n(to be written after reading the figures)';
}

mkdirSync(RESULTS_DIR, { recursive: true });
if (opts.reportOnly !== true) {
  for (const d of DATASETS) {
    if (opts.only !== undefined && opts.only !== d.id) continue;
    for (const s of setupsOf(d)) {
      if (opts.setups !== undefined && !opts.setups.split(',').includes(s.id)) continue;
      const config = configFor(d, s);
      const t0 = Date.now();
      const { result } = await runSimulation(parseSimConfig(config));
      // The report reads versions, totals and the model; the fold and hour logs stay out of the repository.
      const kept: SimResult = { ...result, folds: [], hourly: [] };
      writeFileSync(join(RESULTS_DIR, `${config.name}.json`), `${JSON.stringify({ config, result: kept } satisfies Stored)}\n`);
      console.error(`${config.name}: ${result.versions.length} evaluations, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
  }
}
writeReport();
