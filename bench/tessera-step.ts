// Tessera's side of the train-step benchmark: the same GPT and MLP steps as bench/torch_step.py, timed in this
// process with the thread count from TESSERA_THREADS. Prints one JSON line per model (see bench/train-step.ts).
import '../src/train/runtime/worker-threads.node.ts';
import { Rng } from '../src/core/rng.ts';
import type { ModelSpec } from '../src/core/model-spec.ts';
import { createModel } from '../src/train/models/registry.ts';
import type { HostBatch } from '../src/train/models/model.ts';
import { Trainer } from '../src/train/trainer.ts';
import { runtimeThreads } from '../src/train/runtime/worker-threads.node.ts';

interface Case { name: string; spec: ModelSpec; batch: HostBatch; itemsPerStep: number }

const cfg = JSON.parse(process.argv[2] ?? '{}') as { steps?: number; warmup?: number; gpt?: Record<string, number>; mlp?: { input: number; hidden: number[]; classes: number; batch: number } };
const steps = cfg.steps ?? 20;
const warmup = cfg.warmup ?? 3;
const g = { vocab: 65, width: 128, heads: 4, layers: 2, context: 64, batch: 16, ...cfg.gpt } as Record<string, number>;
const m = cfg.mlp ?? { input: 784, hidden: [256, 128], classes: 10, batch: 64 };
const rng = new Rng(0);
const ints = (n: number, hi: number) => Int32Array.from({ length: n }, () => rng.int(hi));

const cases: Case[] = [
  {
    name: 'gpt',
    spec: { kind: 'gpt', vocabSize: g.vocab!, context: g.context!, width: g.width!, heads: g.heads!, layers: g.layers!, mlpRatio: 4 },
    batch: { x: ints(g.batch! * g.context!, g.vocab!), y: ints(g.batch! * g.context!, g.vocab!), batchSize: g.batch! },
    itemsPerStep: g.batch! * g.context!,
  },
  {
    name: 'mlp',
    spec: { kind: 'mlp', inputs: m.input, hidden: m.hidden, classes: m.classes },
    batch: { x: Float32Array.from({ length: m.batch * m.input }, () => rng.next()), y: ints(m.batch, m.classes), batchSize: m.batch },
    itemsPerStep: m.batch,
  },
];

for (const c of cases) {
  const model = createModel(c.spec);
  const trainer = await Trainer.create(model, model.init(0), { optimizer: { kind: 'adamw', lr: 1e-3, weightDecay: 0.01 } });
  const times: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const t0 = performance.now();
    await trainer.step(c.batch); // awaits the loss, so the step has really finished
    if (i >= warmup) times.push(performance.now() - t0);
  }
  trainer.dispose();
  times.sort((a, b) => a - b);
  const stepMs = times[Math.floor(times.length / 2)]!;
  console.log(JSON.stringify({
    model: c.name, step_ms: stepMs, items_per_s: (c.itemsPerStep / stepMs) * 1000,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024, threads: runtimeThreads,
  }));
}
