// Simulated device populations: phones drawn from a real benchmark list plus laptop and desktop tiers, each device with
// a training throughput, a memory budget, up/down bandwidth and a daily availability window. Pure and seeded: the same
// config, phone list and seed give the same population on any machine.
//
// Devices are stored as a struct of typed arrays (one entry per device per field, about 40 bytes a device) so that a
// population of a million costs tens of megabytes and no per-device objects.
//
// The mappings, stated once so a reader can check them:
// - Phone throughput. AI-Benchmark's CPU float score (CPU_F_AI_Score) measures float32 neural-network inference on the
//   phone's CPU, the closest of its numbers to on-device training in a JavaScript/WebAssembly runtime (no NPU, no
//   fp16). Throughput is taken as proportional to it:
//       examplesPerSecond = reference / medianSlowdown * (score / medianScore) * LogNormal(0, speedSigma)
//   where `reference` is this machine's measured throughput on the run's model (or a configured number), medianScore
//   is the median score over the phone list (1548), and the lognormal factor stands for thermal throttling, battery
//   savers and background load. With medianSlowdown 8 the median phone trains 8x slower than the reference machine,
//   the fastest phone in the list (score 4310) about 3x slower, the slowest (score 105) about 120x slower.
// - Phone memory budget: memoryFraction of the phone's RAM (an app in the background gets a fraction of RAM; Android's
//   per-app limits are a few hundred MiB on small phones).
// - Laptops and desktops: throughput relative to the reference machine (a laptop like the one measuring it), RAM drawn
//   from a list of sizes, a memory budget of memoryFraction of RAM capped at maxMemoryMiB (a browser tab's heap).
// - Bandwidth: lognormal per device and direction, median in Mbit/s and sigma of the log.
// - Availability: each device has a daily window in its own local time (phones charge overnight: 22:00 for 8 hours by
//   default), shifted by a per-device timezone offset (uniform over timezoneSpreadHours) and a per-device habit
//   (normal jitter). Within its window a device alternates sessions (idle, charging, on Wi-Fi; exponential lengths)
//   and gaps (exponential), and while it trains it may drop out (a Poisson process of crashes, kills and network
//   loss). The engine walks these processes; this module draws the per-device parameters.
import { z } from 'zod';
import type { Rng } from '../core/rng.ts';
import { HOUR } from './clock.ts';

/** One phone from the benchmark list, with the fields the simulator uses parsed into numbers. */
export interface PhoneRecord {
  readonly model: string;
  readonly soc: string;
  readonly year: number;
  readonly ramMiB: number;
  /** AI-Benchmark CPU float score: the phone's float32 inference speed on its CPU. */
  readonly cpuFloatScore: number;
}

// The JSON keeps every number as a string ("8GB", "2019", "3744"); parse strictly so a changed file fails loudly.
const RawPhone = z.object({
  Model: z.string().min(1),
  CPU: z.string(),
  RAM: z.string().regex(/^\d+(\.\d+)?GB$/, 'RAM must look like "4GB" or "0.5GB"'),
  Year: z.string().regex(/^\d{4}$/, 'Year must be four digits'),
  CPU_F_AI_Score: z.string().regex(/^\d+(\.\d+)?$/, 'CPU_F_AI_Score must be a number'),
});

/** Parses the AI-Benchmark list (raw_ai_benchmark_list.json) into phone records. */
export function parsePhoneList(json: unknown): PhoneRecord[] {
  const parsed = z.array(RawPhone.loose()).min(1).safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`phone list: ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
  }
  return parsed.data.map((p) => ({
    model: p.Model,
    soc: p.CPU,
    year: Number(p.Year),
    ramMiB: Math.round(parseFloat(p.RAM) * 1024),
    cpuFloatScore: Number(p.CPU_F_AI_Score),
  }));
}

const LogNormal = z.object({
  /** exp(mu): the median of the distribution. */
  median: z.number().positive(),
  /** Standard deviation of the log. */
  sigma: z.number().min(0).max(5),
}).strict();
export type LogNormal = z.infer<typeof LogNormal>;

interface AvailabilityDefaults {
  windowStartHour: number;
  windowHours: number;
  sessionMinutes: number;
  gapMinutes: number;
  dropoutPerHour: number;
}

function availability(d: AvailabilityDefaults) {
  return z.object({
    /** Local hour the daily window opens (phones: when they go on the charger at night). */
    windowStartHour: z.number().min(0).lt(24).default(d.windowStartHour),
    /** Per-device standard deviation of the opening hour (people differ). */
    windowStartJitterHours: z.number().min(0).max(12).default(1.5),
    /** Window length in hours; 24 means the device can be available at any hour. */
    windowHours: z.number().positive().max(24).default(d.windowHours),
    /** Per-device standard deviation of the window length. */
    windowJitterHours: z.number().min(0).max(12).default(1),
    /** Mean length of an availability session (exponential); sessions are cut at the window's end. */
    sessionMinutes: z.number().positive().default(d.sessionMinutes),
    /** Mean gap between sessions inside the window (exponential). */
    gapMinutes: z.number().min(0).default(d.gapMinutes),
    /** Rate of dropouts (app killed, crash, network lost) while a device holds a lease. */
    dropoutPerHour: z.number().min(0).default(d.dropoutPerHour),
  }).strict();
}

interface TierDefaults {
  share: number;
  down: LogNormal;
  up: LogNormal;
  memoryFraction: number;
  availability: AvailabilityDefaults;
}

const PHONE: TierDefaults = {
  share: 0.8,
  down: { median: 30, sigma: 0.8 },
  up: { median: 8, sigma: 0.9 },
  memoryFraction: 0.25,
  availability: { windowStartHour: 22, windowHours: 8, sessionMinutes: 90, gapMinutes: 20, dropoutPerHour: 0.1 },
};
const LAPTOP: TierDefaults = {
  share: 0.15,
  down: { median: 50, sigma: 0.7 },
  up: { median: 15, sigma: 0.8 },
  memoryFraction: 0.25,
  availability: { windowStartHour: 9, windowHours: 10, sessionMinutes: 60, gapMinutes: 30, dropoutPerHour: 0.05 },
};
const DESKTOP: TierDefaults = {
  share: 0.05,
  down: { median: 100, sigma: 0.6 },
  up: { median: 40, sigma: 0.7 },
  memoryFraction: 0.5,
  availability: { windowStartHour: 0, windowHours: 24, sessionMinutes: 480, gapMinutes: 30, dropoutPerHour: 0.02 },
};

function common(kind: string, d: TierDefaults) {
  return {
    /** A label for reports; defaults to the kind. */
    name: z.string().min(1).max(40).default(kind),
    /** Relative share of the population (shares are normalised over the tiers). */
    share: z.number().min(0).default(d.share),
    downMbps: LogNormal.default(d.down),
    upMbps: LogNormal.default(d.up),
    memoryFraction: z.number().gt(0).max(1).default(d.memoryFraction),
    availability: availability(d.availability).prefault({}),
  };
}

const PhoneTier = z.object({
  kind: z.literal('phone'),
  ...common('phone', PHONE),
  /** How many times slower than the reference machine the median phone of the list trains. */
  medianSlowdown: z.number().positive().default(8),
  /** Sigma of the per-device lognormal speed factor around the benchmark-derived throughput. */
  speedSigma: z.number().min(0).max(3).default(0.15),
}).strict();

function computerTier(kind: 'laptop' | 'desktop', d: TierDefaults, speed: LogNormal, ramGiB: number[], maxMemoryMiB: number) {
  return z.object({
    kind: z.literal(kind),
    ...common(kind, d),
    /** Throughput relative to the reference machine. */
    speed: LogNormal.default(speed),
    /** RAM sizes to draw from, uniformly (repeat a size to make it likelier). */
    ramGiB: z.array(z.number().positive()).min(1).default(ramGiB),
    /** Cap on the memory budget (a browser tab's heap, or what the owner allows). */
    maxMemoryMiB: z.number().positive().default(maxMemoryMiB),
  }).strict();
}

export const TierConfig = z.discriminatedUnion('kind', [
  PhoneTier,
  computerTier('laptop', LAPTOP, { median: 1, sigma: 0.4 }, [8, 16, 16, 32], 4096),
  computerTier('desktop', DESKTOP, { median: 2, sigma: 0.4 }, [16, 32, 32, 64], 16384),
]);
export type TierConfig = z.infer<typeof TierConfig>;

export const PopulationConfig = z.object({
  devices: z.number().int().min(1).max(10_000_000),
  /**
   * Training throughput of the reference machine on the run's model, examples/s: every tier's speed is relative to
   * it. 'measure' times the model on this machine (full mode only; the measured number is written to the results,
   * and putting it here makes a run reproducible on other machines).
   */
  referenceExamplesPerSecond: z.union([z.number().positive(), z.literal('measure')]).default('measure'),
  /** Devices' timezone offsets are uniform over this many hours (0: one timezone; 24: the whole globe). */
  timezoneSpreadHours: z.number().min(0).max(24).default(6),
  tiers: z.array(TierConfig).min(1).prefault([{ kind: 'phone' }, { kind: 'laptop' }, { kind: 'desktop' }]),
}).strict().refine((p) => p.tiers.some((t) => t.share > 0), { message: 'at least one tier needs a share above 0', path: ['tiers'] });
export type PopulationConfig = z.infer<typeof PopulationConfig>;

/** Per-tier constants the engine reads while walking availability; indexed by a device's tier. */
export interface TierParams {
  readonly name: string;
  readonly kind: TierConfig['kind'];
  readonly meanSessionSec: number;
  readonly meanGapSec: number;
  readonly dropoutPerSec: number;
}

export interface Population {
  readonly size: number;
  readonly tiers: readonly TierParams[];
  /** The reference throughput the speeds were derived from, examples/s. */
  readonly referenceExamplesPerSecond: number;
  /** Index into `tiers`. */
  readonly tier: Uint8Array;
  /** Index into the phone list, -1 for non-phones. */
  readonly phone: Int16Array;
  readonly examplesPerSecond: Float32Array;
  readonly memoryMiB: Float32Array;
  readonly upMbps: Float32Array;
  readonly downMbps: Float32Array;
  /** Seconds into each UTC day at which the device's availability window opens. */
  readonly windowStartSec: Float32Array;
  /** Length of the device's daily window in seconds (a full day: always in the window). */
  readonly windowSec: Float32Array;
  /** The device's data shard. */
  readonly shard: Int32Array;
}

/** Median of a non-empty list of numbers. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The documented phone mapping: a phone's throughput from its CPU float score (before the per-device jitter). */
export function phoneExamplesPerSecond(score: number, medianScore: number, reference: number, medianSlowdown: number): number {
  return (reference / medianSlowdown) * (score / medianScore);
}

function drawLogNormal(rng: Rng, d: LogNormal): number {
  return d.median * Math.exp(d.sigma * rng.normal());
}

/**
 * Draws `config.devices` devices. Tiers are assigned by share, phones uniformly from the list (the list is a
 * catalogue of models, not a market share, so each model counts once), shards round-robin over `shards` so each
 * shard gets a near-equal number of devices of mixed tiers.
 */
export function drawPopulation(
  config: PopulationConfig, phones: readonly PhoneRecord[], options: { shards: number; referenceExamplesPerSecond: number; rng: Rng },
): Population {
  const { shards, referenceExamplesPerSecond: reference, rng } = options;
  if (!(Number.isInteger(shards) && shards >= 1)) throw new RangeError(`shards must be a positive integer, got ${shards}`);
  if (!(reference > 0)) throw new RangeError(`reference throughput must be positive, got ${reference}`);
  if (config.tiers.some((t) => t.kind === 'phone' && t.share > 0) && phones.length === 0) {
    throw new RangeError('a phone tier needs a non-empty phone list');
  }
  if (config.tiers.length > 255) throw new RangeError('at most 255 tiers');
  const n = config.devices;
  const medianScore = phones.length > 0 ? median(phones.map((p) => p.cpuFloatScore)) : 1;
  const totalShare = config.tiers.reduce((s, t) => s + t.share, 0);
  const cumulative: number[] = [];
  let acc = 0;
  for (const t of config.tiers) cumulative.push((acc += t.share / totalShare));

  const pop = {
    size: n,
    referenceExamplesPerSecond: reference,
    tiers: config.tiers.map((t): TierParams => ({
      name: t.name,
      kind: t.kind,
      meanSessionSec: t.availability.sessionMinutes * 60,
      meanGapSec: t.availability.gapMinutes * 60,
      dropoutPerSec: t.availability.dropoutPerHour / HOUR,
    })),
    tier: new Uint8Array(n),
    phone: new Int16Array(n).fill(-1),
    examplesPerSecond: new Float32Array(n),
    memoryMiB: new Float32Array(n),
    upMbps: new Float32Array(n),
    downMbps: new Float32Array(n),
    windowStartSec: new Float32Array(n),
    windowSec: new Float32Array(n),
    shard: new Int32Array(n),
  };
  for (let d = 0; d < n; d++) {
    const u = rng.next();
    let ti = cumulative.findIndex((c) => u < c);
    if (ti < 0) ti = config.tiers.length - 1; // u just under 1 with rounding in the cumulative sum
    const t = config.tiers[ti]!;
    pop.tier[d] = ti;
    if (t.kind === 'phone') {
      const p = rng.int(phones.length);
      const phone = phones[p]!;
      pop.phone[d] = p;
      const base = phoneExamplesPerSecond(phone.cpuFloatScore, medianScore, reference, t.medianSlowdown);
      pop.examplesPerSecond[d] = base * Math.exp(t.speedSigma * rng.normal());
      pop.memoryMiB[d] = phone.ramMiB * t.memoryFraction;
    } else {
      pop.examplesPerSecond[d] = reference * drawLogNormal(rng, t.speed);
      const ram = t.ramGiB[rng.int(t.ramGiB.length)]! * 1024;
      pop.memoryMiB[d] = Math.min(t.maxMemoryMiB, ram * t.memoryFraction);
    }
    pop.downMbps[d] = drawLogNormal(rng, t.downMbps);
    pop.upMbps[d] = drawLogNormal(rng, t.upMbps);
    const a = t.availability;
    const tz = (rng.next() - 0.5) * config.timezoneSpreadHours;
    const localStart = a.windowStartHour + a.windowStartJitterHours * rng.normal();
    // UTC start = local start - offset; kept within one day.
    pop.windowStartSec[d] = (((localStart - tz) * HOUR) % (24 * HOUR) + 24 * HOUR) % (24 * HOUR);
    const len = a.windowHours >= 24 ? 24 : Math.min(24, Math.max(0.5, a.windowHours + a.windowJitterHours * rng.normal()));
    pop.windowSec[d] = len * HOUR;
    pop.shard[d] = d % shards;
  }
  return pop;
}

/** Counts and medians per tier, for reports. */
export function summarizePopulation(pop: Population): Array<{
  name: string; kind: string; devices: number; medianExamplesPerSecond: number; medianMemoryMiB: number;
  medianUpMbps: number; medianDownMbps: number; meanWindowHours: number;
}> {
  return pop.tiers.map((t, ti) => {
    const eps: number[] = [];
    const mem: number[] = [];
    const up: number[] = [];
    const down: number[] = [];
    let window = 0;
    for (let d = 0; d < pop.size; d++) {
      if (pop.tier[d] !== ti) continue;
      eps.push(pop.examplesPerSecond[d]!);
      mem.push(pop.memoryMiB[d]!);
      up.push(pop.upMbps[d]!);
      down.push(pop.downMbps[d]!);
      window += pop.windowSec[d]!;
    }
    const m = (v: number[]) => (v.length === 0 ? 0 : Number(median(v).toPrecision(4)));
    return {
      name: t.name, kind: t.kind, devices: eps.length, medianExamplesPerSecond: m(eps), medianMemoryMiB: m(mem),
      medianUpMbps: m(up), medianDownMbps: m(down), meanWindowHours: eps.length === 0 ? 0 : Number((window / eps.length / HOUR).toFixed(2)),
    };
  });
}
