// A device's part in a secure-aggregation round of a run in aggregation mode 'secure' (the coordinator's side is
// src/server/coordinator/secure-rounds.ts). The lease names the round's session and this device's client id; the
// protocol itself is src/core/secagg/client.ts (Bonawitz et al. 2017), here only carried over HTTP:
//
//   join():   advertise keys -> wait for the roster -> share keys          (before training: the cohort forms first)
//   submit(): wait for the shares -> send the masked delta -> wait for the unmask request -> reveal shares
//             -> wait until the round's sum became a version (or the round failed)
//
// The delta never leaves the device unmasked. Waiting is long polling: the device names the session's revision it has
// seen and the coordinator answers when the session moved past it (a phase closed, the round's version or failure),
// so a device learns of a closed phase as soon as it happens. Against a coordinator that does not long-poll (no
// revision in its answers) it polls on a timer. Waits are bounded by the lease's deadline for the masked input and by
// a grace period after it for the rest.
import { SecAggClient } from '../core/secagg/client.ts';
import { decodeMessage, encodeMessage, type SecAggMessage } from '../core/secagg/messages.ts';
import type { Lease } from '../core/protocol/schemas.ts';
import { DEFAULT_BACKOFF, sleep, withRetry, type BackoffPolicy } from './backoff.ts';
import type { CoordinatorClient, DeviceCredentials, SecAggWait } from './client.ts';

/** The round ended without this device's delta in a version: failed, too late, or out of time. */
export class SecureRoundError extends Error {
  override readonly name = 'SecureRoundError';
}

export interface SecureUploadOptions {
  client: CoordinatorClient;
  runId: string;
  creds: DeviceCredentials;
  seat: NonNullable<Lease['secure']>;
  /** The lease's deadline (this device's clock): the masked delta must be sent before it. */
  deadline: number;
  signal?: AbortSignal | undefined;
  now?: () => number;
  /** Between polls of a coordinator that does not long-poll (default 500 ms: it allows a device 5 requests a second). */
  pollMs?: number;
  /** The longest one long poll is held (default 20 s; the coordinator caps it at 25 s); 0 polls on a timer instead. */
  longPollMs?: number;
  /** How long after the deadline to keep waiting for unmasking and the version (default 120 s). */
  graceMs?: number;
  /** Retries of passing failures (network, 5xx, 429: a cohort polling from one address meets rate limits). */
  backoff?: BackoffPolicy;
}

export class SecureUpload {
  private readonly protocol: SecAggClient;
  private readonly now: () => number;
  /** The session revision this device has seen (-1: none yet, so the first poll answers at once). */
  private revision = -1;

  private constructor(private readonly o: SecureUploadOptions) {
    this.protocol = new SecAggClient(o.seat.clientId, o.seat.config);
    this.now = o.now ?? Date.now;
  }

  /** Takes the seat: keys advertised and shared once the round's roster is out. */
  static async join(o: SecureUploadOptions): Promise<SecureUpload> {
    const u = new SecureUpload(o);
    await u.send(await u.protocol.advertiseKeys());
    const roster = await u.awaitMessage('roster', o.deadline);
    await u.send(await u.protocol.shareKeys(roster));
    return u;
  }

  /** Sends the delta masked and sees the round through; resolves with the version its sum became. */
  async submit(delta: Float32Array): Promise<{ version: number; bytesSent: number }> {
    const late = this.o.deadline + (this.o.graceMs ?? 120_000);
    const delivery = await this.awaitMessage('shares_delivery', this.o.deadline);
    if (this.now() > this.o.deadline) throw new SecureRoundError('the lease ran out before the masked delta could be sent');
    await this.send(await this.protocol.maskInput(delivery, delta));
    const request = await this.awaitMessage('unmask_request', late);
    await this.send(this.protocol.unmask(request));
    for (;;) {
      const s = await this.status(this.waitUntil(late));
      if (s.phase === 'failed') throw new SecureRoundError(`the secure round failed: ${s.error ?? 'no reason given'}`);
      if (s.phase === 'done' && s.result !== undefined && !s.result.contributors.includes(this.o.seat.clientId)) {
        throw new SecureRoundError('the round finished without this device\'s delta (it arrived too late)');
      }
      if (s.phase === 'done' && s.driven?.version !== undefined) return { version: s.driven.version, bytesSent: this.bytesSent };
      if (this.now() > late) throw new SecureRoundError('the secure round did not finish in time');
      if (s.revision !== undefined) this.revision = s.revision;
      if (!this.longPolling(s.revision)) await sleep(this.o.pollMs ?? 500, this.o.signal);
    }
  }

  /** A long poll past the revision seen, held no later than `until`; undefined when this device polls on a timer. */
  private waitUntil(until: number): SecAggWait | undefined {
    const most = this.o.longPollMs ?? 20_000;
    return most <= 0 ? undefined : { since: this.revision, ms: Math.max(0, Math.min(most, until - this.now())) };
  }

  /** Whether answers hold until something changed: the coordinator long-polls (it sends revisions) and we asked it to. */
  private longPolling(revision: number | undefined): boolean {
    return revision !== undefined && (this.o.longPollMs ?? 20_000) > 0;
  }

  bytesSent = 0;

  private async send(m: SecAggMessage): Promise<void> {
    const bytes = encodeMessage(m);
    this.bytesSent += bytes.length;
    await this.retrying(() => this.o.client.sendSecAgg(this.o.runId, this.o.seat.sessionId, this.o.creds, bytes, this.o.signal));
  }

  private status(wait?: SecAggWait) {
    return this.retrying(() => this.o.client.secAggStatus(this.o.runId, this.o.seat.sessionId, this.o.signal, wait));
  }

  private retrying<T>(fn: () => Promise<T>): Promise<T> {
    return withRetry(fn, { policy: this.o.backoff ?? DEFAULT_BACKOFF, signal: this.o.signal, now: this.now, until: this.o.deadline + (this.o.graceMs ?? 120_000) });
  }

  /**
   * Waits until the session has a message of `kind` for this device. The coordinator keeps answering with its latest
   * message for the device, so an earlier kind means "not yet"; when the session moved on without one for this device,
   * its status tells a failed or finished round apart.
   */
  private async awaitMessage<K extends SecAggMessage['kind']>(kind: K, until: number): Promise<Extract<SecAggMessage, { kind: K }>> {
    for (let polls = 0; ; polls++) {
      const { message, revision } = await this.retrying(() => this.o.client.pollSecAgg(this.o.runId, this.o.seat.sessionId, this.o.creds, this.o.signal, this.waitUntil(until)));
      if (message !== undefined) {
        const m = decodeMessage(message);
        if (m.kind === kind) return m as Extract<SecAggMessage, { kind: K }>;
      }
      const moved = revision !== undefined && revision > this.revision;
      if (revision !== undefined) this.revision = revision;
      // Polling on a timer, the status is asked every 8 polls instead.
      if ((moved && this.longPolling(revision)) || (!this.longPolling(revision) && polls % 8 === 7)) {
        const s = await this.status();
        if (s.phase === 'failed') throw new SecureRoundError(`the secure round failed: ${s.error ?? 'no reason given'}`);
        if (s.phase === 'done') throw new SecureRoundError('the secure round finished without this device');
      }
      if (this.now() > until) throw new SecureRoundError(`no ${kind.replace('_', ' ')} from the coordinator before the deadline`);
      if (!this.longPolling(revision)) await sleep(this.o.pollMs ?? 500, this.o.signal);
    }
  }
}
