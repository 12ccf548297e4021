// Benchmark: one training step of the same GPT (2 layers, width 128, 4 heads, context 64, batch 16, AdamW) and the
// same MLP (784-256-128-10, batch 64) in Tessera and in PyTorch on CPU, side by side in one invocation. PyTorch runs
// on one thread with OpenBLAS (OPENBLAS_NUM_THREADS=1); Tessera runs once on one thread and once on every core.
// Prints tokens/s (GPT), samples/s (MLP), peak RSS of each process, and the ratio Tessera/PyTorch. The runtimes
// alternate for --rounds rounds and each keeps its best median, so a burst of noise on a shared VM hits neither side
// alone.
//
//   npm run bench            (installs python3-torch and libopenblas0-pthread if missing)
//   npm run bench -- --steps 40
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';

interface Row { model: string; step_ms: number; items_per_s: number; peak_rss_mb: number; threads?: number }

const opts = new Command()
  .name('bench/train-step')
  .description('GPT and MLP training-step throughput: Tessera (jax-js wasm) vs PyTorch CPU, same models, same process tree')
  .option('--steps <n>', 'timed steps per model (median reported)', (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('--steps must be a positive integer');
    return n;
  }, 20)
  .option('--rounds <n>', 'alternating rounds; the best median of each runtime is reported', (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('--rounds must be a positive integer');
    return n;
  }, 3)
  .parse()
  .opts<{ steps: number; rounds: number }>();

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const config = JSON.stringify({ steps: opts.steps, warmup: 3 });

function run(label: string, cmd: string, args: string[], env: Record<string, string>): Row[] {
  process.stderr.write(`running ${label}...\n`);
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${label} failed (exit ${r.status}):\n${r.stderr}`);
  return r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Row);
}

const cores = availableParallelism();
const runners: Array<[string, () => Row[]]> = [
  ['torch', () => run('PyTorch (1 thread)', '/usr/bin/python3', [here('./torch_step.py'), config], { OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1' })],
  ['tessera1', () => run('Tessera (1 thread)', process.execPath, ['--import', 'tsx', here('./tessera-step.ts'), config], { TESSERA_THREADS: '0' })],
  ['tesseraN', () => run(`Tessera (${cores} threads)`, process.execPath, ['--import', 'tsx', here('./tessera-step.ts'), config], { TESSERA_THREADS: String(cores) })],
];
const best = new Map<string, Row[]>();
for (let round = 0; round < opts.rounds; round++) {
  for (const [key, go] of runners) {
    const rows = go();
    const prev = best.get(key);
    best.set(key, prev === undefined ? rows : rows.map((r, i) => (r.step_ms < prev[i]!.step_ms ? r : prev[i]!)));
  }
}
const [torch, tessera1, tesseraN] = ['torch', 'tessera1', 'tesseraN'].map((k) => best.get(k)!) as [Row[], Row[], Row[]];

const unit = (m: string) => (m === 'gpt' ? 'tokens/s' : 'samples/s');
const lines = ['| model | runtime | step (ms) | throughput | peak RSS (MB) | ratio vs PyTorch |', '| --- | --- | ---: | ---: | ---: | ---: |'];
for (const model of ['gpt', 'mlp']) {
  const ref = torch.find((r) => r.model === model)!;
  const rows: Array<[string, Row]> = [
    ['PyTorch 1.13 CPU, 1 thread', ref],
    ['Tessera jax-js wasm, 1 thread', tessera1.find((r) => r.model === model)!],
    [`Tessera jax-js wasm, ${cores} threads`, tesseraN.find((r) => r.model === model)!],
  ];
  for (const [name, r] of rows) {
    lines.push(`| ${model} | ${name} | ${r.step_ms.toFixed(1)} | ${Math.round(r.items_per_s)} ${unit(model)} | ${r.peak_rss_mb.toFixed(0)} | ${(r.items_per_s / ref.items_per_s).toFixed(2)} |`);
  }
}
console.log(lines.join('\n'));
