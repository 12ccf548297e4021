// A version as a "seed step": the (seed, scalar) uploads folded into it, with what the fold needs, so that a device
// holding the parent version rebuilds the new one from a few hundred bytes instead of downloading the weights. This
// is FedKSeed's downlink (Qin et al., "Federated Full-Parameter Tuning of Billion-Sized Language Models with
// Communication Cost under 18 Kilobytes", ICML 2024, Sec. 3.2-3.3 and Alg. 1: clients keep the global model in step
// by replaying the accumulated (seed, scalar) history instead of receiving parameters). FedKSeed's server applies
// plain averaged zeroth-order steps; here the replay runs the run's own strategy, so the step a device recomputes is
// the one the coordinator committed, bit for bit:
//
//   for each folded upload k:  delta_k = replayDelta(n, pairs_k, lr_k, pool_k)          (mezo.ts, as the coordinator)
//   acc = strategy.begin(w_{v-1});  strategy.fold(acc, {delta_k, n_k, steps_k, base_k}, w_{v-1})   in fold order
//   w_v = strategy.apply(w_{v-1}, acc).params
//
// Exactness holds only for strategies whose step is a pure function of the folded updates and the parent params:
// no server optimizer state (momentum, Adam moments, DiLoCo's outer momentum would have to travel too), no secret
// noise (DP), and no downlink codec on top (its residual is server state). seedStepRefusal says which. Both sides
// call replaySeedStep (the coordinator checks each step it stores by replaying it), so there is one float path.
//
// Wire form of one step, little-endian, no padding ("TZS1"):
//
//   "TZS1"        magic
//   u32           version v this step makes (folded against v - 1, which staleness is measured from)
//   u32           n, parameters of the model
//   u32 s, s bytes the run's strategy config as JSON (StrategyConfig; one of seedStepRefusal's accepted kinds)
//   u32           count u of folded uploads (>= 1), then u times, in fold order:
//     u32 numExamples (>= 1), u32 localSteps (>= 1), u32 baseVersion (< v), f64 lr (the lease's, > 0, finite),
//     u32 poolSize K (>= 1), u32 poolSeed, u32 pair count p (1..localSteps),
//     p x index (u16 when K <= 65536, else u32; each < K), p x f32 projected gradient (finite)
//
// Three uploads of 20 steps each under FedBuff take about 16 + 110 + 3 * (32 + 120) = 582 bytes, whatever the model.
// Decoding is hostile-input safe: every inconsistency is a CodecError and nothing partial is returned.
import { CodecError } from '../codecs/errors.ts';
import { createStrategy, StrategyConfig } from '../strategies/config.ts';
import type { ClientUpdate, ServerState } from '../strategies/types.ts';
import { mergeBySeed, replayDelta, type ZoPair } from './mezo.ts';
import { indexBytes } from './wire.ts';

export const SEED_STEP_MAGIC = 0x31535a54; // "TZS1" little-endian

/**
 * Replaying costs one pass over the parameters per distinct seed of each upload. A chain whose replay would touch
 * more than this many parameter entries (about 10-20 s of a loaded laptop core at 60-120 ns an entry) is not served
 * as seeds, and a device refuses one: the file is cheaper than that much compute.
 */
export const MAX_SEED_CHAIN_ENTRIES = 2 ** 27;

/** One zeroth-order upload as it was folded: the inputs of its replay (decodeZoLeaseUpdate) and of its weight. */
export interface SeedStepUpdate {
  readonly numExamples: number;
  readonly localSteps: number;
  /** The lease's base version: staleness = (version - 1) - baseVersion. */
  readonly baseVersion: number;
  /** The lease's learning rate, which the coordinator replays with. */
  readonly lr: number;
  readonly poolSize: number;
  readonly poolSeed: number;
  readonly pairs: readonly ZoPair[];
}

export interface SeedStep {
  /** The version this step makes; its parent is version - 1. */
  readonly version: number;
  /** Parameters of the model (the flat layout's size). */
  readonly size: number;
  readonly strategy: StrategyConfig;
  /** In fold order (the coordinator's acceptance order). */
  readonly updates: readonly SeedStepUpdate[];
}

/**
 * Why a strategy's versions cannot be seed steps, or undefined when they can: its step must be a pure function of
 * the folded updates and the parent's params. FedAvg, FedNova and FedBuff with server SGD are; FedAvgM, FedAdam,
 * FedYogi, FedAdagrad, DiLoCo and FedBuff with another server optimizer keep state slots; DP adds secret noise;
 * robust rules are stateless too but are left out (not checked for exact replay here).
 */
export function seedStepRefusal(cfg: StrategyConfig): string | undefined {
  switch (cfg.kind) {
    case 'fedavg':
    case 'fednova':
      return undefined;
    case 'fedbuff':
      return cfg.serverOptimizer.kind === 'sgd' ? undefined : `FedBuff with a ${cfg.serverOptimizer.kind} server optimizer keeps server state that devices do not have`;
    case 'dp':
      return 'differentially private aggregation adds secret noise that devices cannot recompute';
    case 'robust':
      return 'robust aggregation rules are not replayed from seeds';
    default:
      return `${cfg.kind} keeps server optimizer state that devices do not have`;
  }
}

/** The dense ClientUpdate a zeroth-order upload stands for: replayDelta with the lease's learning rate and pool. */
export function zoClientUpdate(size: number, u: SeedStepUpdate): ClientUpdate {
  return { delta: replayDelta(size, u.pairs, u.lr, u), numExamples: u.numExamples, localSteps: u.localSteps, baseVersion: u.baseVersion };
}

/** Parameter entries a device touches replaying `steps` (one pass per distinct seed with a nonzero sum). */
export function seedStepEntries(steps: readonly SeedStep[]): number {
  let passes = 0;
  for (const s of steps) {
    for (const u of s.updates) for (const g of mergeBySeed(u.pairs).values()) if (g !== 0) passes++;
  }
  return passes * (steps[0]?.size ?? 0);
}

/**
 * The parent's params (version step.version - 1) moved by the step: the strategy run over the replayed uploads, as
 * the coordinator's commit did. `params` is not modified. Anything that cannot be replayed (a refused strategy, a
 * parameter count other than the step's, an upload the strategy rejects, a step that overflows) is a CodecError.
 */
export function replaySeedStep(params: Float32Array, step: SeedStep): Float32Array {
  if (params.length !== step.size) throw new CodecError('mismatch', `seed step ${step.version} is for ${step.size} parameters, the base has ${params.length}`);
  const refused = seedStepRefusal(step.strategy);
  if (refused !== undefined) throw new CodecError('bad_header', `seed step ${step.version}: ${refused}`);
  try {
    const strategy = createStrategy(step.strategy);
    const state: ServerState = { version: step.version - 1, params, slots: {} };
    const acc = strategy.begin(state);
    for (const u of step.updates) strategy.fold(acc, zoClientUpdate(step.size, u), state);
    return strategy.apply(state, acc).params;
  } catch (e) {
    if (e instanceof CodecError || !(e instanceof Error)) throw e;
    throw new CodecError('bad_value', `seed step ${step.version} cannot be replayed: ${e.message}`);
  }
}

const u32ok = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

export function encodeSeedStep(step: SeedStep): Uint8Array {
  const bad = (m: string) => new CodecError('bad_spec', `seed step ${step.version}: ${m}`);
  if (!u32ok(step.version) || step.version < 1) throw bad('version must be a u32 >= 1');
  if (!u32ok(step.size)) throw bad('size must be a u32');
  if (step.updates.length < 1) throw bad('a seed step folds at least one upload');
  const json = new TextEncoder().encode(JSON.stringify(step.strategy));
  let size = 20 + json.length;
  for (const u of step.updates) size += 32 + u.pairs.length * (indexBytes(u.poolSize) + 4);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, SEED_STEP_MAGIC, true);
  view.setUint32(4, step.version, true);
  view.setUint32(8, step.size, true);
  view.setUint32(12, json.length, true);
  out.set(json, 16);
  let at = 16 + json.length;
  view.setUint32(at, step.updates.length, true);
  at += 4;
  for (const u of step.updates) {
    for (const [k, v] of [['numExamples', u.numExamples], ['localSteps', u.localSteps], ['baseVersion', u.baseVersion], ['poolSize', u.poolSize], ['poolSeed', u.poolSeed]] as const) {
      if (!u32ok(v)) throw bad(`${k} must be a u32, got ${v}`);
    }
    if (!(Number.isFinite(u.lr) && u.lr > 0)) throw bad(`lr must be positive and finite, got ${u.lr}`);
    view.setUint32(at, u.numExamples, true);
    view.setUint32(at + 4, u.localSteps, true);
    view.setUint32(at + 8, u.baseVersion, true);
    view.setFloat64(at + 12, u.lr, true);
    view.setUint32(at + 20, u.poolSize, true);
    view.setUint32(at + 24, u.poolSeed, true);
    view.setUint32(at + 28, u.pairs.length, true);
    at += 32;
    const width = indexBytes(u.poolSize);
    for (const { index } of u.pairs) {
      if (!Number.isInteger(index) || index < 0 || index >= u.poolSize) throw bad(`seed index ${index} is outside the pool of ${u.poolSize}`);
      if (width === 2) view.setUint16(at, index, true);
      else view.setUint32(at, index, true);
      at += width;
    }
    for (const { grad } of u.pairs) {
      // The coordinator replays grads decoded from float32 (wire.ts), so they round-trip exactly.
      if (!Number.isFinite(Math.fround(grad)) || Math.fround(grad) !== grad) throw bad(`projected gradient ${grad} is not a finite float32`);
      view.setFloat32(at, grad, true);
      at += 4;
    }
  }
  if (at !== size) throw new Error(`encodeSeedStep wrote ${at} of ${size} bytes`); // a bug here, not bad input
  return out;
}

/** Whether bytes begin like a seed step ("TZS1"). */
export function isSeedStep(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && (bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16) | (bytes[3]! << 24)) >>> 0 === SEED_STEP_MAGIC;
}

export function decodeSeedStep(bytes: Uint8Array): SeedStep {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const need = (k: number, what: string) => {
    if (at + k > bytes.length) throw new CodecError('truncated', `seed step ends inside ${what} (needs ${at + k} bytes, has ${bytes.length})`);
  };
  const bad = (m: string) => new CodecError('bad_header', `seed step: ${m}`);
  need(16, 'its header');
  if (!isSeedStep(bytes)) throw bad('magic "TZS1" missing');
  const version = view.getUint32(4, true);
  const size = view.getUint32(8, true);
  const s = view.getUint32(12, true);
  if (version < 1) throw bad('version must be >= 1');
  at = 16;
  need(s, 'its strategy');
  let strategy: StrategyConfig;
  try {
    const parsed = StrategyConfig.safeParse(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(at, at + s))));
    if (!parsed.success) throw new Error(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    strategy = parsed.data;
  } catch (e) {
    throw bad(`its strategy is not a strategy config (${e instanceof Error ? e.message : String(e)})`);
  }
  const refused = seedStepRefusal(strategy);
  if (refused !== undefined) throw bad(refused);
  at += s;
  need(4, 'its upload count');
  const count = view.getUint32(at, true);
  at += 4;
  if (count < 1) throw bad('a seed step folds at least one upload');
  // Each upload takes at least 38 bytes: a count beyond what the bytes can hold is refused before any allocation.
  if (count > (bytes.length - at) / 38) throw new CodecError('truncated', `seed step claims ${count} uploads in ${bytes.length - at} bytes`);
  const updates: SeedStepUpdate[] = [];
  for (let k = 0; k < count; k++) {
    need(32, `upload ${k + 1}'s header`);
    const numExamples = view.getUint32(at, true);
    const localSteps = view.getUint32(at + 4, true);
    const baseVersion = view.getUint32(at + 8, true);
    const lr = view.getFloat64(at + 12, true);
    const poolSize = view.getUint32(at + 20, true);
    const poolSeed = view.getUint32(at + 24, true);
    const p = view.getUint32(at + 28, true);
    at += 32;
    const what = `seed step ${version}, upload ${k + 1}`;
    if (numExamples < 1 || localSteps < 1 || poolSize < 1) throw bad(`${what}: numExamples, localSteps and poolSize must be >= 1`);
    if (baseVersion >= version) throw bad(`${what}: base version ${baseVersion} is not before version ${version}`);
    if (!(Number.isFinite(lr) && lr > 0)) throw new CodecError('bad_value', `${what}: learning rate ${lr} is not positive and finite`);
    if (p < 1 || p > localSteps) throw bad(`${what}: ${p} pairs for ${localSteps} local steps`);
    const width = indexBytes(poolSize);
    need(p * (width + 4), `${what}'s ${p} pairs`);
    const pairs: ZoPair[] = new Array(p);
    const gradAt = at + p * width;
    for (let i = 0; i < p; i++) {
      const index = width === 2 ? view.getUint16(at + 2 * i, true) : view.getUint32(at + 4 * i, true);
      if (index >= poolSize) throw new CodecError('bad_index', `${what}: seed index ${index} is outside the pool of ${poolSize}`);
      const grad = view.getFloat32(gradAt + 4 * i, true);
      if (!Number.isFinite(grad)) throw new CodecError('bad_value', `${what}: projected gradient ${grad} is not finite`);
      pairs[i] = { index, grad };
    }
    at += p * (width + 4);
    updates.push({ numExamples, localSteps, baseVersion, lr, poolSize, poolSeed, pairs });
  }
  if (at !== bytes.length) throw new CodecError('trailing_bytes', `${bytes.length - at} byte(s) after seed step ${version}`);
  return { version, size, strategy, updates };
}
