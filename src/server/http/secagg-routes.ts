// HTTP routes of secure-aggregation sessions (src/server/coordinator/secagg-sessions.ts), mounted by createApp.
// Messages travel in the wire form of src/core/secagg/messages.ts as application/octet-stream, both ways.
//
//   POST /v1/runs/:run/secagg                        admin   {dimension, threshold, maxClients, clip, graph?} -> 201 {sessionId}
//   GET  /v1/runs/:run/secagg/:session               none    status: phase, bound clients, and the result once done
//   POST /v1/runs/:run/secagg/:session/advance       admin   closes the current phase -> status (ad hoc sessions only)
//
// A run in aggregation mode 'secure' opens its own sessions (one per round, src/server/coordinator/secure-rounds.ts)
// in the same registry; its devices use the same message routes, and the status of such a session names the version
// its sum became instead of carrying the sum.
//   POST /v1/runs/:run/secagg/:session/messages      device  one client message -> 202
//   GET  /v1/runs/:run/secagg/:session/messages      device  the server's message for this device -> 200, or 204 (none yet)
//
// Both GETs long-poll with `?since=<revision>&wait=<ms>` (wait at most MAX_WAIT_MS): the answer waits until the
// session's revision (a phase closed, the round's version or failure) is above `since`, or the wait is over. The
// revision travels in the status body and in the X-Tessera-SecAgg-Revision header of the messages route.
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { ProtocolError } from '../../core/protocol/errors.ts';
import { toBase64Url } from '../../core/secagg/bytes.ts';
import { SecAggConfigSchema } from '../../core/secagg/config.ts';
import { decodeMessage, encodeMessage } from '../../core/secagg/messages.ts';
import type { Coordinator } from '../coordinator/coordinator.ts';
import { SecAggSessions, secAggToProtocol, type Session, type SessionStatus } from '../coordinator/secagg-sessions.ts';
import type { DeviceRecord } from '../store/store.ts';
import { readBodyLimited, readJsonLimited } from './read-body.ts';

export interface SecAggAuth {
  requireAdmin: (c: Context) => void;
  device: (c: Context) => Promise<DeviceRecord>;
}

const CreateSession = SecAggConfigSchema.omit({ session: true });

/** The longest a long poll is held: well under the server's request timeout and any proxy's idle timeout. */
export const MAX_WAIT_MS = 25_000;
const LongPoll = z.object({
  since: z.coerce.number().int().min(-1).optional(),
  wait: z.coerce.number().int().min(0).max(MAX_WAIT_MS).default(0),
}).strict();

/** Holds the request until the session moved past `?since` (or `?wait` ms passed, or the client left). */
async function longPoll(c: Context, session: Session): Promise<void> {
  const { since, wait } = parseQuery(c, LongPoll);
  if (since !== undefined) await session.waitForChange(since, wait, c.req.raw.signal);
}

function parseQuery<S extends z.ZodType>(c: Context, schema: S): z.output<S> {
  const parsed = schema.safeParse(c.req.query());
  if (!parsed.success) throw new ProtocolError('bad_request', parsed.error.issues.map((i) => `?${i.path.join('.') || 'query'}: ${i.message}`).join('; '));
  return parsed.data;
}

export function mountSecAgg(app: Hono, coordinator: Coordinator, auth: SecAggAuth): SecAggSessions {
  const sessions = coordinator.secagg;
  const translated = async <T>(f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      throw secAggToProtocol(e);
    }
  };
  const ids = (c: Context) => ({ runId: coordinator.run(c.req.param('run')!).id, sessionId: c.req.param('session')! });

  app.post('/v1/runs/:run/secagg', (c) => translated(async () => {
    auth.requireAdmin(c);
    const runId = coordinator.run(c.req.param('run')).id;
    const parsed = CreateSession.safeParse(await readJsonLimited(c.req.raw));
    if (!parsed.success) {
      throw new ProtocolError('bad_request', parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; '));
    }
    return c.json({ sessionId: sessions.create(runId, parsed.data) }, 201);
  }));
  app.get('/v1/runs/:run/secagg/:session', (c) => translated(async () => {
    const { runId, sessionId } = ids(c);
    await longPoll(c, sessions.get(runId, sessionId));
    return c.json(statusBody(sessions.status(runId, sessionId)));
  }));
  app.post('/v1/runs/:run/secagg/:session/advance', (c) => translated(async () => {
    auth.requireAdmin(c);
    const { runId, sessionId } = ids(c);
    const session = sessions.get(runId, sessionId);
    if (session.driver !== undefined) throw new ProtocolError('conflict', `session ${sessionId} is a round of run ${runId}'s secure aggregation: the run closes its phases`);
    await session.advance();
    return c.json(statusBody(sessions.status(runId, sessionId)));
  }));
  app.post('/v1/runs/:run/secagg/:session/messages', (c) => translated(async () => {
    const d = await auth.device(c);
    const { runId, sessionId } = ids(c);
    const session = sessions.get(runId, sessionId);
    if (c.req.header('content-type') !== 'application/octet-stream') {
      throw new ProtocolError('unsupported_media_type', 'secure-aggregation messages are sent as application/octet-stream');
    }
    const { dimension, maxClients } = session.config;
    // The largest message: a masked vector (4 bytes a value) or a client's shares (about 300 bytes a peer).
    const bytes = await readBodyLimited(c.req.raw, 4 * dimension + 1024 + 512 * maxClients);
    await session.receive(d.id, decodeMessage(bytes), bytes.length);
    return c.json({ accepted: true }, 202);
  }));
  app.get('/v1/runs/:run/secagg/:session/messages', (c) => translated(async () => {
    const d = await auth.device(c);
    const { runId, sessionId } = ids(c);
    const session = sessions.get(runId, sessionId);
    await longPoll(c, session);
    const m = session.next(d.id);
    const revision = { 'X-Tessera-SecAgg-Revision': String(session.revision) };
    if (m === undefined) return c.body(null, 204, revision);
    return c.body(encodeMessage(m) as Uint8Array<ArrayBuffer>, 200, { 'Content-Type': 'application/octet-stream', ...revision });
  }));
  return sessions;
}

function statusBody(s: SessionStatus) {
  const { result, ...rest } = s;
  if (result === undefined) return rest;
  // A run's round: its sum is the aggregated update, served as the version it became, not as a JSON array.
  if (s.driven !== undefined) return { ...rest, result: { contributors: result.contributors, dropped: result.dropped } };
  const sum = result.sum;
  return {
    ...rest,
    result: {
      contributors: result.contributors, dropped: result.dropped,
      /** The modular sum of the quantized inputs, little-endian 32-bit words, base64url. */
      sum: toBase64Url(new Uint8Array(sum.buffer, sum.byteOffset, sum.byteLength)),
      /** The dequantized float sum. */
      values: Array.from(result.values),
    },
  };
}
