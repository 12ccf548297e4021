// A run in aggregation mode 'secure': synchronous rounds whose updates reach the coordinator only as a sum. Each round
// is one session of src/core/secagg (Bonawitz et al., CCS 2017; SecAgg+'s sparse graph, Bell et al., CCS 2020, as an
// option). A device that leases during a round's collection gets a seat in it (its client id) and
//   advertises keys and shares them (before training: the cohort forms while nobody has spent compute),
//   trains on the round's base version, and sends its delta masked, before the lease's deadline,
//   answers the unmask request; the coordinator recovers the sum of the survivors' clipped deltas,
// and the run folds sum / survivors as ONE update into a new version (RunCoordinator.acceptSecureSum). The coordinator
// never holds a device's unmasked delta, so rules that need individual updates are refused for such runs (robust
// rules, per-update DP clipping, FedNova's per-client steps, FedBuff's per-update staleness) and so are plans that
// cover part of the model (the sum has no per-coordinate counts) and codecs (the field quantization is the encoding).
// Each device counts once in the mean (uniform weighting): example counts would have to travel inside the mask.
//
// The round closes each phase as soon as every device expected has spoken, or when its time is up:
//   keys   the cohort is full, or collectSeconds passed with at least `threshold` devices (fails after one more
//          phaseSeconds with fewer);
//   shares every device of the roster shared, or phaseSeconds passed;
//   masked every device that shared sent its masked delta, or the leases' deadline passed;
//   unmask every survivor answered, or phaseSeconds passed.
// A round that loses too many devices fails (SecAggError too_many_dropouts): nothing was acknowledged, its devices
// see the failure in the session's status and lease again.
import { SecAggError } from '../../core/secagg/errors.ts';
import { checkConfig, type SecAggConfig } from '../../core/secagg/config.ts';
import type { SecAggResult } from '../../core/secagg/server.ts';
import type { Aggregation, StoredRunConfig } from './run-config.ts';
import type { SecAggSessions, Session, SessionPhase } from './secagg-sessions.ts';

export type SecureAggregation = Extract<Aggregation, { mode: 'secure' }>;

/** Server strategies whose result depends on the mean update only, which is all a secure round yields. */
const STRATEGIES_ON_THE_MEAN = new Set(['fedavg', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad', 'diloco']);

/** The smallest Shamir threshold that is safe for a complete graph of `cohort` clients (see checkConfig). */
export function defaultThreshold(cohort: number): number {
  return Math.floor(cohort / 2) + 1;
}

/** Why a run config cannot aggregate securely (empty when it can, or when it does not ask to). */
export function secureRunProblems(config: StoredRunConfig): string[] {
  const agg = config.aggregation;
  if (agg.mode !== 'secure') return [];
  const problems: string[] = [];
  if (!STRATEGIES_ON_THE_MEAN.has(agg.strategy.kind)) {
    problems.push(`aggregation.strategy: '${agg.strategy.kind}' needs individual updates, which secure aggregation never reveals; use one of ${[...STRATEGIES_ON_THE_MEAN].join(', ')}`);
  }
  if (config.planner !== undefined) problems.push('planner: secure rounds sum whole-model updates; submodel plans are not supported');
  if (config.codec !== undefined) problems.push('codec: secure rounds quantize updates into the masking field themselves; remove the codec');
  if (config.recipe.zo !== undefined) problems.push('recipe.zo: zeroth-order uploads are not masked vectors; secure rounds need first-order training');
  try {
    checkConfig(sessionConfig(agg, 1, 'probe'));
  } catch (e) {
    if (!(e instanceof SecAggError)) throw e;
    problems.push(`aggregation: ${e.message}`);
  }
  return problems;
}

function sessionConfig(agg: SecureAggregation, dimension: number, session: string): SecAggConfig {
  return {
    session, dimension, threshold: agg.threshold ?? defaultThreshold(agg.cohort), maxClients: agg.cohort, clip: agg.clip,
    ...(agg.graph === undefined ? {} : { graph: agg.graph }),
  };
}

/** A device's place in a round, sent with its lease. */
export interface SecureSeat {
  sessionId: string;
  clientId: number;
  config: SecAggConfig;
  /** The leases' common deadline: masked deltas arriving later are not waited for. */
  deadline: number;
}

export interface RoundMember {
  deviceId: string;
  leaseId: string;
  clientId: number;
  /** Examples the lease's recipe trains (the device's count stays inside its mask). */
  examples: number;
  /** Bytes of the device's protocol messages. */
  bytes: number;
}

/** A round whose sum was recovered. */
export interface FinishedRound {
  sessionId: string;
  baseVersion: number;
  result: SecAggResult;
  /** The devices whose deltas are in the sum, by client id. */
  contributors: RoundMember[];
  /** Bytes of every accepted protocol message of the round, dropped devices' included. */
  bytes: number;
}

interface Round {
  session: Session;
  baseVersion: number;
  collectUntil: number;
  deadline: number;
  phaseSince: number;
  members: Map<string, Omit<RoundMember, 'bytes'>>;
}

export interface SecureRoundsOptions {
  runId: string;
  settings: SecureAggregation;
  dimension: number;
  /** Training time a lease gets once its round's cohort has formed (the run's lease.seconds). */
  trainMs: number;
  sessions: SecAggSessions;
  now: () => number;
  /** Stores and folds a recovered sum; resolves with the version it became. */
  onSum: (round: FinishedRound) => Promise<number>;
  /** A round that failed, and why. */
  onFailure: (sessionId: string, why: string) => void;
}

/** Rounds kept in the session registry after they end, for devices still asking how theirs ended. */
const KEPT_ROUNDS = 4;

export class SecureRounds {
  private round: Round | undefined;
  private readonly ended: string[] = [];
  private stepping: Promise<void> = Promise.resolve();

  constructor(private readonly o: SecureRoundsOptions) {}

  /** A seat in the round now forming (opening one when none is), or why there is none now and when to ask again. */
  seat(deviceId: string, leaseId: string, baseVersion: number, examples: number): SecureSeat | { reason: string; retryAfterMs: number } {
    const now = this.o.now();
    const { cohort, collectSeconds, phaseSeconds } = this.o.settings;
    let r = this.round;
    // A round stays current until its sum is stored (or it failed), so the next one starts from the version it made.
    if (r === undefined) {
      const session = this.o.sessions.open(this.o.runId, sessionConfig(this.o.settings, this.o.dimension, ''), {
        clientIdOf: (d) => this.round?.session === session ? this.round.members.get(d)?.clientId : undefined,
        onMessage: () => void this.step(),
      });
      const collectUntil = now + collectSeconds * 1000;
      r = { session, baseVersion, collectUntil, deadline: collectUntil + phaseSeconds * 1000 + this.o.trainMs, phaseSince: now, members: new Map() };
      this.round = r;
    }
    const retryAfterMs = Math.max(1000, r.deadline - now);
    if (r.session.phase !== 'keys' || r.members.size >= cohort) return { reason: 'the secure round in progress has formed its cohort', retryAfterMs };
    if (r.members.has(deviceId)) return { reason: 'this device already holds a seat in the secure round in progress', retryAfterMs };
    const clientId = r.members.size + 1;
    r.members.set(deviceId, { deviceId, leaseId, clientId, examples });
    return { sessionId: r.session.sessionId, clientId, config: r.session.config, deadline: r.deadline };
  }

  /** Closes whatever phase is due. Called after every accepted client message and on the run's tick; never overlaps. */
  step(): Promise<void> {
    const next = this.stepping.then(() => this.closeDuePhase());
    this.stepping = next.catch(() => undefined);
    return next;
  }

  private async closeDuePhase(): Promise<void> {
    const r = this.round;
    if (r === undefined) return;
    const now = this.o.now();
    const { cohort, phaseSeconds } = this.o.settings;
    const phaseMs = phaseSeconds * 1000;
    const threshold = r.session.config.threshold;
    const p = r.session.server.progress();
    let due: boolean;
    switch (r.session.phase) {
      case 'keys':
        due = p.advertised === cohort || (now >= r.collectUntil && p.advertised >= threshold) || now >= r.collectUntil + phaseMs;
        break;
      case 'shares':
        due = p.shared === p.advertised || now >= r.phaseSince + phaseMs;
        break;
      case 'masked':
        due = p.masked === p.shared || now >= r.deadline;
        break;
      case 'unmask':
        due = p.answered === p.masked || now >= r.phaseSince + phaseMs;
        break;
      default:
        return;
    }
    if (!due) return;
    try {
      await r.session.advance();
      r.phaseSince = now;
    } catch (e) {
      if (!(e instanceof SecAggError) || phaseOf(r) !== 'failed') throw e;
      this.end(r);
      this.o.onFailure(r.session.sessionId, r.session.error ?? e.message);
      return;
    }
    if (phaseOf(r) !== 'done') return;
    const result = r.session.result!;
    const byClient = new Map([...r.members.values()].map((m) => [m.clientId, m]));
    const contributors = result.contributors.map((id) => ({ ...byClient.get(id)!, bytes: r.session.bytesFrom.get(id) ?? 0 }));
    const bytes = [...r.session.bytesFrom.values()].reduce((a, b) => a + b, 0);
    try {
      r.session.settle(await this.o.onSum({ sessionId: r.session.sessionId, baseVersion: r.baseVersion, result, contributors, bytes }));
    } catch (e) {
      // Not stored, so not acknowledged: the devices see a failed round and train again.
      r.session.fail(`the round's sum could not be stored: ${e instanceof Error ? e.message : String(e)}`);
      this.o.onFailure(r.session.sessionId, r.session.error!);
    } finally {
      this.end(r);
    }
  }

  private end(r: Round): void {
    if (this.round === r) this.round = undefined;
    this.ended.push(r.session.sessionId);
    while (this.ended.length > KEPT_ROUNDS) this.o.sessions.delete(this.ended.shift()!);
  }
}

/** The session's phase, read afresh (TypeScript would keep a narrowing from before an await that changed it). */
function phaseOf(r: Round): SessionPhase {
  return r.session.phase;
}
