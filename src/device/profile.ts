// What a device tells the coordinator about itself: a memory budget (declared; the platform probe is in
// profile.node.ts or the browser page) and a measured training throughput on the run's own model, which the planner
// sizes leases by. A slowdown factor makes one machine act as a slower one, for demos of heterogeneous populations:
// the device really is slower (it idles after every step), so its measurement and its behaviour agree.
import type { DeviceProfile } from '../core/protocol/schemas.ts';
import type { HostBatch, Model } from '../train/models/model.ts';
import { Trainer } from '../train/trainer.ts';
import { sleep } from './backoff.ts';

export interface BenchmarkResult {
  examplesPerSecond: number;
  /** Mean wall time of one step, the slowdown's idling included. */
  stepSeconds: number;
  steps: number;
  batchSize: number;
}

/** After a step that took `stepMs`, idles (slowdown - 1) times as long, so the device runs `slowdown` times slower. */
export async function throttle(stepMs: number, slowdown: number, signal?: AbortSignal): Promise<void> {
  if (slowdown > 1) await sleep((slowdown - 1) * stepMs, signal);
}

/**
 * Times `steps` optimizer steps of `model` on batches from `nextBatch`, after one untimed step that pays for
 * compilation. Fresh parameters and AdamW: throughput depends on shapes, not on values or the learning rate.
 */
export async function benchmarkTraining(
  model: Model, nextBatch: () => HostBatch, options: { steps?: number; slowdown?: number; signal?: AbortSignal } = {},
): Promise<BenchmarkResult> {
  const { steps = 3, slowdown = 1, signal } = options;
  const trainer = await Trainer.create(model, model.init(0), { optimizer: { kind: 'adamw', lr: 1e-3 } });
  try {
    await trainer.step(nextBatch());
    let examples = 0;
    let elapsed = 0;
    for (let i = 0; i < steps; i++) {
      signal?.throwIfAborted();
      const batch = nextBatch();
      const t0 = performance.now();
      await trainer.step(batch);
      await throttle(performance.now() - t0, slowdown, signal);
      elapsed += performance.now() - t0;
      examples += batch.batchSize;
    }
    const seconds = Math.max(elapsed, 1e-3) / 1000;
    return { examplesPerSecond: examples / seconds, stepSeconds: seconds / steps, steps, batchSize: examples / steps };
  } finally {
    trainer.dispose();
  }
}

export interface ProfileOptions {
  /** Memory the device may spend on training, in MiB. */
  memoryMiB: number;
  slowdown?: number;
  shard?: number;
  platform?: string;
  benchmarkSteps?: number;
  signal?: AbortSignal;
}

/** A DeviceProfile for this device on this model, with the benchmark behind its throughput. */
export async function probeProfile(
  model: Model, nextBatch: () => HostBatch, options: ProfileOptions,
): Promise<{ profile: DeviceProfile; benchmark: BenchmarkResult }> {
  const benchmark = await benchmarkTraining(model, nextBatch, {
    steps: options.benchmarkSteps, slowdown: options.slowdown, signal: options.signal,
  });
  const profile: DeviceProfile = {
    memoryMiB: options.memoryMiB,
    // Rounded: the planner needs the magnitude, and dashboards need no false precision.
    examplesPerSecond: Number(benchmark.examplesPerSecond.toPrecision(3)),
    ...(options.platform === undefined ? {} : { platform: options.platform.slice(0, 200) }),
    ...(options.shard === undefined ? {} : { shard: options.shard }),
  };
  return { profile, benchmark };
}
