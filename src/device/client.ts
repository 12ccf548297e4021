// A typed client for the device-side endpoints of the coordinator's HTTP API v1 (docs/api.md), over `fetch` only, so
// the same code runs in Node and in a browser tab. Every failure is one of two typed errors: CoordinatorError (the
// coordinator answered, with a status and a protocol code) or NetworkError (it did not: refused, reset, timed out).
// Tokens travel in the Authorization header and appear in no error message.
import { z } from 'zod';
import { CodecError } from '../core/codecs/errors.ts';
import { applyWeightsDelta, WEIGHTS_DELTA_MEDIA_TYPE } from '../core/codecs/weights-delta.ts';
import { ModelSpec } from '../core/model-spec.ts';
import { ERROR_STATUS, type ErrorCode } from '../core/protocol/errors.ts';
import {
  DeviceProfile, LeaseResponse, RegisterResponse, RunId, UpdateAccepted, VersionInfo,
} from '../core/protocol/schemas.ts';

/**
 * The part of GET /v1/runs/:run that a device acts on. Other fields (head, devices, aggregation) are for dashboards
 * and are stripped, so the coordinator can grow them without breaking devices.
 */
export const DeviceRunView = z.object({
  runId: RunId,
  name: z.string(),
  status: z.enum(['active', 'paused']),
  task: z.string(),
  model: ModelSpec,
});
export type DeviceRunView = z.infer<typeof DeviceRunView>;

/** GET /v1/runs/:run/data: the run's public text, for devices with no text of their own (browser tabs). */
export const PublicTextInfo = z.object({
  kind: z.literal('char-text'),
  vocab: z.object({ type: z.literal('char'), chars: z.array(z.string()) }),
  shards: z.array(z.object({ shard: z.number().int().min(0), label: z.string(), chars: z.number().int().min(0) })),
});
export type PublicTextInfo = z.infer<typeof PublicTextInfo>;

/** GET /v1/runs/:run/secagg/:session, the part a device acts on. */
export const SecAggStatus = z.object({
  phase: z.enum(['keys', 'shares', 'masked', 'unmask', 'done', 'failed']),
  /** Counts the session's visible changes; absent from coordinators that do not long-poll. */
  revision: z.number().int().optional(),
  error: z.string().optional(),
  driven: z.object({ version: z.number().int().optional() }).optional(),
  result: z.object({ contributors: z.array(z.number().int()) }).optional(),
});
export type SecAggStatus = z.infer<typeof SecAggStatus>;

/** A long poll: answer once the session's revision is above `since`, or after `ms` (the coordinator caps it at 25 s). */
export interface SecAggWait {
  since: number;
  ms: number;
}

function waitQuery(wait: SecAggWait | undefined): string {
  return wait === undefined ? '' : `?since=${Math.max(-1, Math.floor(wait.since))}&wait=${Math.max(0, Math.min(25_000, Math.floor(wait.ms)))}`;
}

/** A code the coordinator sent, or bad_response when what came back does not follow the protocol. */
export type ClientErrorCode = ErrorCode | 'bad_response';

export class CoordinatorError extends Error {
  override readonly name = 'CoordinatorError';
  constructor(
    readonly status: number,
    readonly code: ClientErrorCode,
    message: string,
    /** From a Retry-After header, when the coordinator sent one. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export class NetworkError extends Error {
  override readonly name = 'NetworkError';
}

export interface DeviceCredentials {
  readonly deviceId: string;
  readonly deviceToken: string;
}

export type WeightsResponse =
  | { readonly notModified: true; readonly hash: string }
  | { readonly notModified: false; readonly hash: string; readonly bytes: Uint8Array };

export interface ClientOptions {
  /** Abandon a request that has not answered in this long (default 60 s; uploads and weights get 10x). */
  timeoutMs?: number;
  /** For tests and odd platforms; the global fetch otherwise. */
  fetch?: typeof fetch;
  /**
   * Ask for weights as a delta from the last version this client downloaded, when it has one (docs/api.md, "Weights
   * deltas"); the coordinator answers with the full file when that is smaller. Costs one copy of the last weights.
   */
  weightDeltas?: boolean;
  /**
   * Told when a weights delta could not be used (corrupt, from weights this device does not hold, or rebuilding
   * weights whose hash is not the version's): the client then downloads the full file instead.
   */
  onDeltaFailure?: (error: CoordinatorError) => void;
}

/** Weights a device holds, to ask for another version as a delta from. */
export interface HeldWeights {
  readonly version: number;
  readonly hash: string;
  readonly bytes: Uint8Array;
}

const ErrorBody = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
const KNOWN_CODES = new Set<string>(Object.keys(ERROR_STATUS));

export class CoordinatorClient {
  readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly fetchFn: typeof fetch;
  private readonly weightDeltas: boolean;
  /** The last weights downloaded per run, verified against their hash (weightDeltas only). */
  private readonly held = new Map<string, HeldWeights>();
  private readonly onDeltaFailure: ((error: CoordinatorError) => void) | undefined;
  /** Weights deltas that failed and were replaced by the full file. */
  deltaFailures = 0;

  constructor(baseUrl: string, options: ClientOptions = {}) {
    const url = new URL(baseUrl); // throws TypeError on a malformed URL, before any request
    this.baseUrl = url.href.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.fetchFn = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.weightDeltas = options.weightDeltas ?? false;
    this.onDeltaFailure = options.onDeltaFailure;
  }

  getRun(runId: string, signal?: AbortSignal): Promise<DeviceRunView> {
    return this.json('GET', `/v1/runs/${seg(runId)}`, DeviceRunView, { signal });
  }

  getPublicText(runId: string, signal?: AbortSignal): Promise<PublicTextInfo> {
    return this.json('GET', `/v1/runs/${seg(runId)}/data`, PublicTextInfo, { signal });
  }

  /** The training text of one public shard (one Shakespeare role, say). */
  async getPublicShard(runId: string, shard: number, signal?: AbortSignal): Promise<string> {
    const path = `/v1/runs/${seg(runId)}/data/shards/${shard}`;
    const res = await this.request('GET', path, { signal, long: true, headers: { Accept: 'text/plain' } });
    return new TextDecoder().decode(await this.body(res, path));
  }

  register(runId: string, joinToken: string, profile: DeviceProfile, signal?: AbortSignal): Promise<RegisterResponse> {
    return this.json('POST', `/v1/runs/${seg(runId)}/devices`, RegisterResponse, { token: joinToken, body: { profile }, signal });
  }

  async heartbeat(runId: string, creds: DeviceCredentials, profile?: DeviceProfile, signal?: AbortSignal): Promise<void> {
    const body = profile === undefined ? {} : { profile };
    await this.request('POST', `/v1/runs/${seg(runId)}/devices/${seg(creds.deviceId)}/heartbeat`, { token: creds.deviceToken, body, signal });
  }

  /**
   * A lease, with its deadline translated onto this device's clock (now + ttlMs, minus the request's round trip), so
   * a device whose clock is off still stops in time.
   */
  async requestLease(runId: string, creds: DeviceCredentials, signal?: AbortSignal): Promise<LeaseResponse> {
    const sent = Date.now();
    const res = await this.json('POST', `/v1/runs/${seg(runId)}/leases`, LeaseResponse, { token: creds.deviceToken, body: {}, signal });
    if (res.lease === null) return res;
    return { lease: { ...res.lease, deadline: sent + res.lease.ttlMs } };
  }

  getVersion(runId: string, version: number | 'head', signal?: AbortSignal): Promise<VersionInfo> {
    return this.json('GET', `/v1/runs/${seg(runId)}/versions/${version}`, VersionInfo, { signal });
  }

  /**
   * A version's weights (safetensors). With `ifNoneMatch` (a sha256 the caller holds) the coordinator may answer
   * 304 and send nothing. The hash is the one the ETag names; callers verify the bytes against it (weights-cache.ts).
   */
  async fetchWeights(
    runId: string, version: number | 'head',
    options: {
      ifNoneMatch?: string; signal?: AbortSignal; from?: HeldWeights; /** A device's token credits it with the download's bytes. */ token?: string;
      /** Ask for the full file even when holding other weights (after a delta failed). */ fullFile?: boolean;
    } = {},
  ): Promise<WeightsResponse> {
    const headers: Record<string, string> = {};
    if (options.ifNoneMatch !== undefined) headers['If-None-Match'] = `"${options.ifNoneMatch}"`;
    const from = options.fullFile === true ? undefined : options.from ?? (this.weightDeltas ? this.held.get(runId) : undefined);
    const path = `/v1/runs/${seg(runId)}/versions/${version}/weights${from === undefined || from.version === version ? '' : `?from=${from.version}`}`;
    const res = await this.request('GET', path, { headers, signal: options.signal, token: options.token, long: true });
    const hash = res.headers.get('ETag')?.match(/^(?:W\/)?"?([0-9a-f]{64})"?$/)?.[1];
    if (res.status === 304) {
      const known = hash ?? options.ifNoneMatch;
      if (known === undefined) throw badResponse(res.status, 'a 304 answer to a request without If-None-Match');
      return { notModified: true, hash: known };
    }
    if (hash === undefined) throw badResponse(res.status, 'weights without an ETag naming their sha256');
    let bytes: Uint8Array = new Uint8Array(await this.body(res, path));
    if (res.headers.get('Content-Type') === WEIGHTS_DELTA_MEDIA_TYPE) {
      // A delta from the weights we named: rebuilt here in float32 exactly as the coordinator built the version
      // (weights-delta.ts, downlink.ts; a zeroth-order run's seed chain is replayed with the coordinator's own strategy
      // code, src/core/zo/seed-step.ts), so callers see the whole file, and checked against the version's hash now:
      // a delta that fails is reported and replaced by the full file, whose hash the caller checks as always.
      let why: string | undefined;
      if (from === undefined || res.headers.get('X-Tessera-Delta-Base') !== from.hash) why = 'it is from weights this device does not hold';
      else {
        try {
          bytes = applyWeightsDelta(from.bytes, bytes);
          const got = await sha256(bytes);
          if (got !== hash) why = `the rebuilt weights hash to ${got.slice(0, 12)}…, version ${version} is ${hash.slice(0, 12)}…`;
        } catch (e) {
          if (!(e instanceof CodecError)) throw e;
          why = `${e.reason}: ${e.message}`;
        }
      }
      if (why !== undefined) {
        this.deltaFailures++;
        this.onDeltaFailure?.(badResponse(res.status, `weights delta for version ${version} from version ${from?.version} refused (${why}); downloading the full file`));
        return this.fetchWeights(runId, version, { ...options, fullFile: true });
      }
    }
    if (this.weightDeltas && typeof version === 'number' && (await sha256(bytes)) === hash) this.held.set(runId, { version, hash, bytes });
    return { notModified: false, hash, bytes };
  }

  /** Uploads an encoded update (update-wire.ts) for a lease; resolves once the coordinator has made it durable. */
  uploadUpdate(runId: string, leaseId: string, creds: DeviceCredentials, update: Uint8Array, signal?: AbortSignal): Promise<UpdateAccepted> {
    return this.json('PUT', `/v1/runs/${seg(runId)}/leases/${seg(leaseId)}/update`, UpdateAccepted, {
      token: creds.deviceToken, raw: update, signal, long: true,
    });
  }

  /** Sends one secure-aggregation message (src/core/secagg/messages.ts wire form) to a session. */
  async sendSecAgg(runId: string, sessionId: string, creds: DeviceCredentials, message: Uint8Array, signal?: AbortSignal): Promise<void> {
    await this.request('POST', `/v1/runs/${seg(runId)}/secagg/${seg(sessionId)}/messages`, { token: creds.deviceToken, raw: message, signal, long: true });
  }

  /** The session's current message for this device (wire form), or undefined when it has none yet (204). */
  /**
   * The coordinator's message for this device in a secure-aggregation session (undefined: none yet) and the session's
   * revision. With `wait`, a long poll: the coordinator answers once the session moved past revision `wait.since`, or
   * after `wait.ms`.
   */
  async pollSecAgg(
    runId: string, sessionId: string, creds: DeviceCredentials, signal?: AbortSignal, wait?: SecAggWait,
  ): Promise<{ message: Uint8Array | undefined; revision: number | undefined }> {
    const path = `/v1/runs/${seg(runId)}/secagg/${seg(sessionId)}/messages${waitQuery(wait)}`;
    const res = await this.request('GET', path, { token: creds.deviceToken, signal, long: true });
    const header = res.headers.get('X-Tessera-SecAgg-Revision');
    const revision = header === null || !/^\d+$/.test(header) ? undefined : Number(header);
    if (res.status === 204) {
      await res.body?.cancel();
      return { message: undefined, revision };
    }
    return { message: new Uint8Array(await this.body(res, path)), revision };
  }

  /** Where a secure-aggregation session stands; for a run's round, the version its sum became once done. */
  secAggStatus(runId: string, sessionId: string, signal?: AbortSignal, wait?: SecAggWait): Promise<SecAggStatus> {
    return this.json('GET', `/v1/runs/${seg(runId)}/secagg/${seg(sessionId)}${waitQuery(wait)}`, SecAggStatus, { signal, long: wait !== undefined });
  }

  private async json<S extends z.ZodType>(method: string, path: string, schema: S, init: RequestInit_): Promise<z.output<S>> {
    const res = await this.request(method, path, init);
    const text = new TextDecoder().decode(await this.body(res, path));
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw badResponse(res.status, `a body that is not JSON from ${method} ${path}`);
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      throw badResponse(res.status, `${method} ${path}: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`);
    }
    return parsed.data;
  }

  /** Sends one request; resolves with a 2xx or 304 response, throws CoordinatorError or NetworkError otherwise. */
  private async request(method: string, path: string, init: RequestInit_): Promise<Response> {
    const headers: Record<string, string> = { Accept: 'application/json', ...init.headers };
    if (init.token !== undefined) headers['Authorization'] = `Bearer ${init.token}`;
    let body: BodyInit | undefined;
    if (init.raw !== undefined) {
      headers['Content-Type'] = 'application/octet-stream';
      // Typed ArrayBufferLike by our encoders, but always a plain ArrayBuffer underneath (never shared memory).
      body = init.raw as Uint8Array<ArrayBuffer>;
    } else if (init.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(init.body);
    }
    const timeout = AbortSignal.timeout(init.long ? 10 * this.timeoutMs : this.timeoutMs);
    const signal = init.signal === undefined ? timeout : AbortSignal.any([init.signal, timeout]);
    let res: Response;
    try {
      res = await this.fetchFn(this.baseUrl + path, { method, headers, body, signal });
    } catch (e) {
      // The caller's own abort is not a network failure: let it through as the AbortError it is.
      if (init.signal?.aborted) throw init.signal.reason;
      throw new NetworkError(`${method} ${path}: ${describeFailure(e, timeout.aborted)}`, { cause: e });
    }
    if (res.ok || res.status === 304) return res;
    throw await errorFrom(res, `${method} ${path}`);
  }

  private async body(res: Response, what: string): Promise<ArrayBuffer> {
    try {
      return await res.arrayBuffer();
    } catch (e) {
      throw new NetworkError(`${what}: the connection broke while reading the answer (${describeFailure(e, false)})`, { cause: e });
    }
  }
}

interface RequestInit_ {
  token?: string;
  body?: unknown;
  raw?: Uint8Array;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
  /** Bulk transfers (weights, updates) get a longer timeout. */
  long?: boolean;
}

async function errorFrom(res: Response, what: string): Promise<CoordinatorError> {
  const retryAfterMs = parseRetryAfter(res.headers.get('Retry-After'), Date.now());
  let text = '';
  try {
    text = await res.text();
  } catch {
    // The status alone still says what happened.
  }
  let parsed: z.infer<typeof ErrorBody> | undefined;
  try {
    const r = ErrorBody.safeParse(JSON.parse(text));
    if (r.success) parsed = r.data;
  } catch {
    // Not JSON: a proxy's HTML page, say. Fall through to the status.
  }
  if (parsed !== undefined && KNOWN_CODES.has(parsed.error.code)) {
    return new CoordinatorError(res.status, parsed.error.code as ErrorCode, parsed.error.message, retryAfterMs);
  }
  return new CoordinatorError(res.status, codeForStatus(res.status), `${what}: HTTP ${res.status} ${res.statusText}`.trim(), retryAfterMs);
}

/** The protocol code closest to a bare status, for answers that did not come from the coordinator itself. */
function codeForStatus(status: number): ErrorCode {
  const exact = Object.entries(ERROR_STATUS).find(([, s]) => s === status);
  if (exact !== undefined) return exact[0] as ErrorCode;
  return status >= 500 ? 'unavailable' : 'bad_request';
}

/** Retry-After in milliseconds: delta-seconds or an HTTP date (RFC 9110 10.2.3); undefined when absent or garbled. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

function badResponse(status: number, what: string): CoordinatorError {
  return new CoordinatorError(status, 'bad_response', `unexpected answer from the coordinator: ${what}`);
}

function describeFailure(e: unknown, timedOut: boolean): string {
  if (timedOut) return 'timed out';
  const cause = e instanceof Error && e.cause instanceof Error ? `: ${e.cause.message}` : '';
  return `${e instanceof Error ? e.message : String(e)}${cause}`;
}

/** One path segment; ids are validated by the server, but a stray '/' must never change which endpoint is hit. */
function seg(s: string): string {
  return encodeURIComponent(s);
}
