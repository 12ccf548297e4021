// Secure-aggregation sessions on the live coordinator: the server role of src/core/secagg behind a run's device
// authentication. A session is one round among the run's devices. Each device binds itself to one client id with its
// first message (advertise_keys) and may only speak as that id afterwards; it polls for what the server has for it
// (roster, its share delivery, the unmask request). Two kinds of session share this code:
//   - ad hoc sessions an admin creates and advances phase by phase (POST /v1/runs/:run/secagg), summing any vectors;
//   - rounds of a run in aggregation mode 'secure' (secure-rounds.ts): the run assigns each leased device its client
//     id, closes phases itself, and folds the unmasked sum into a version. Admins cannot advance those.
// Sessions live in memory: a restart ends them (the clients start a new one), which loses nothing acknowledged: a
// run acknowledges a round's updates only when their sum is recovered and stored.
import { ProtocolError } from '../../core/protocol/errors.ts';
import { checkConfig, type SecAggConfig } from '../../core/secagg/config.ts';
import { SecAggError } from '../../core/secagg/errors.ts';
import type { Roster, SecAggMessage, SharesDelivery, UnmaskRequest } from '../../core/secagg/messages.ts';
import { SecAggServer, type SecAggResult } from '../../core/secagg/server.ts';
import { newId } from './auth.ts';

export type SessionPhase = 'keys' | 'shares' | 'masked' | 'unmask' | 'done' | 'failed';

export interface SessionStatus {
  sessionId: string;
  runId: string;
  phase: SessionPhase;
  /** Session.revision: what a device long-polls past. */
  revision: number;
  config: SecAggConfig;
  /** Clients bound so far (advertised keys). */
  clients: number;
  /** Why the session failed, when it did. */
  error?: string;
  result?: SecAggResult;
  /** Set on a run's secure round: the run drives the phases and commits the sum as this version. */
  driven?: { version?: number };
}

/** A SecAggError as the protocol error a device sees. */
export function secAggToProtocol(e: unknown): unknown {
  if (!(e instanceof SecAggError)) return e;
  const code = e.code === 'wrong_phase' || e.code === 'too_many_dropouts' ? 'conflict' : 'bad_request';
  return new ProtocolError(code, `secure aggregation: ${e.message} (${e.code})`);
}

/** What a run that drives a session needs from it: who may speak as whom, and word of every accepted message. */
export interface SessionDriver {
  /** The client id the run gave this device with its lease, if any. */
  clientIdOf(deviceId: string): number | undefined;
  /** Called after each accepted client message (the run closes a phase once everyone expected has spoken). */
  onMessage(): void;
}

export class Session {
  readonly server: SecAggServer;
  phase: SessionPhase = 'keys';
  error: string | undefined;
  result: SecAggResult | undefined;
  /** The version a driven session's sum became. */
  version: number | undefined;
  /** Bytes of accepted client messages, by client id (the run charges them to the devices as upload traffic). */
  readonly bytesFrom = new Map<number, number>();
  private readonly idOf = new Map<string, number>();
  private readonly deviceOf = new Map<number, string>();
  private roster: Roster | undefined;
  private deliveries = new Map<number, SharesDelivery>();
  private request: UnmaskRequest | undefined;
  /**
   * Counts the changes a waiting device can see (a phase closed, the round's version or its failure): devices long-poll
   * for a revision above the one they hold instead of polling on a timer (waitForChange).
   */
  revision = 0;
  private waiters = new Set<() => void>();

  constructor(readonly sessionId: string, readonly runId: string, readonly config: SecAggConfig, readonly driver?: SessionDriver) {
    this.server = new SecAggServer(config);
  }

  get clients(): number {
    return this.idOf.size;
  }

  /** One client message, `bytes` long on the wire; a refused message changes nothing. */
  async receive(deviceId: string, m: SecAggMessage, bytes = 0): Promise<void> {
    await this.accept(deviceId, m);
    const id = this.idOf.get(deviceId)!;
    this.bytesFrom.set(id, (this.bytesFrom.get(id) ?? 0) + bytes);
    this.driver?.onMessage();
  }

  private async accept(deviceId: string, m: SecAggMessage): Promise<void> {
    if (this.driver !== undefined && m.kind === 'advertise_keys') {
      const assigned = this.driver.clientIdOf(deviceId);
      if (assigned === undefined) throw new ProtocolError('forbidden', `this device holds no lease in secure round ${this.sessionId}`);
      if (assigned !== m.id) throw new ProtocolError('forbidden', `this device's lease made it client ${assigned} of the round, not ${m.id}`);
    }
    if (m.kind === 'advertise_keys') {
      const bound = this.idOf.get(deviceId);
      if (bound !== undefined && bound !== m.id) throw new ProtocolError('forbidden', `this device is client ${bound} of the session`);
      const holder = this.deviceOf.get(m.id);
      if (holder !== undefined && holder !== deviceId) throw new ProtocolError('forbidden', `client id ${m.id} belongs to another device`);
      await this.server.receiveKeys(m);
      this.idOf.set(deviceId, m.id);
      this.deviceOf.set(m.id, deviceId);
      return;
    }
    if (m.kind !== 'share_keys' && m.kind !== 'masked_input' && m.kind !== 'unmask_response') {
      throw new ProtocolError('bad_request', `${m.kind} is a message from the server, not to it`);
    }
    const id = this.idOf.get(deviceId);
    if (id === undefined || id !== m.from) throw new ProtocolError('forbidden', `this device may only send as its own client id (${id ?? 'none yet'})`);
    if (m.kind === 'share_keys') this.server.receiveShares(m);
    else if (m.kind === 'masked_input') this.server.receiveMasked(m);
    else this.server.receiveUnmask(m);
  }

  /** What the server has for this device now, or undefined (poll again after the phase closes). */
  next(deviceId: string): SecAggMessage | undefined {
    const id = this.idOf.get(deviceId);
    if (id === undefined) return undefined;
    if (this.request !== undefined) return this.request.survivors.includes(id) ? this.request : undefined;
    if (this.deliveries.size > 0) return this.deliveries.get(id);
    return this.roster;
  }

  /** A driven session's sum became `version`. */
  settle(version: number): void {
    this.version = version;
    this.changed();
  }

  /** The session ends as failed (a driven round whose sum could not be stored). */
  fail(error: string): void {
    this.phase = 'failed';
    this.error = error;
    this.changed();
  }

  /**
   * Resolves once the revision is above `since`, or after `ms`, or when `signal` aborts (a client that hung up),
   * whichever comes first; never rejects.
   */
  async waitForChange(since: number, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.revision > since || ms <= 0 || signal?.aborted === true) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
      this.waiters.add(done);
    });
  }

  private changed(): void {
    this.revision++;
    for (const wake of [...this.waiters]) wake();
  }

  /** Closes the current phase; the last one computes the sum. Too many dropouts end the session as failed. */
  async advance(): Promise<void> {
    const before = this.phase;
    try {
      switch (this.phase) {
        case 'keys':
          this.roster = this.server.closeKeys();
          this.phase = 'shares';
          return;
        case 'shares':
          this.deliveries = new Map(this.server.closeShares().map((d) => [d.to, d]));
          this.phase = 'masked';
          return;
        case 'masked':
          this.request = this.server.closeMasked();
          this.phase = 'unmask';
          return;
        case 'unmask':
          this.result = await this.server.finish();
          this.phase = 'done';
          return;
        default:
          throw new ProtocolError('conflict', `session ${this.sessionId} is ${this.phase}`);
      }
    } catch (e) {
      if (e instanceof SecAggError && e.code === 'too_many_dropouts') {
        this.phase = 'failed';
        this.error = e.message;
      }
      throw e;
    } finally {
      if (this.phase !== before) this.changed();
    }
  }
}

export class SecAggSessions {
  private readonly sessions = new Map<string, Session>();

  /** An ad hoc session, advanced by an admin. */
  create(runId: string, config: Omit<SecAggConfig, 'session'>): string {
    return this.open(runId, config).sessionId;
  }

  /** A session; with a driver, a run's secure round that only the run advances. */
  open(runId: string, config: Omit<SecAggConfig, 'session'>, driver?: SessionDriver): Session {
    const sessionId = newId('secagg');
    // The session id is part of every derived key, so keys and masks never carry over between sessions.
    const session = new Session(sessionId, runId, checkConfig({ ...config, session: sessionId }), driver);
    this.sessions.set(sessionId, session);
    return session;
  }

  /** Forgets a session (a run keeps its last few rounds for devices still asking how they ended). */
  delete(sessionId: string): void {
    this.sessions.delete(sessionId);
  }

  get(runId: string, sessionId: string): Session {
    const s = this.sessions.get(sessionId);
    if (s === undefined || s.runId !== runId) throw new ProtocolError('not_found', `no secure-aggregation session ${sessionId} in run ${runId}`);
    return s;
  }

  status(runId: string, sessionId: string): SessionStatus {
    const s = this.get(runId, sessionId);
    return {
      sessionId, runId, phase: s.phase, revision: s.revision, config: s.config, clients: s.clients,
      ...(s.error === undefined ? {} : { error: s.error }), ...(s.result === undefined ? {} : { result: s.result }),
      ...(s.driver === undefined ? {} : { driven: s.version === undefined ? {} : { version: s.version } }),
    };
  }
}
