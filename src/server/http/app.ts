// The coordinator's HTTP API (docs/api.md) as small web-standard handlers: parse and authenticate, call the
// coordinator, serialise. Every failure leaves as a ProtocolError body; nothing here holds state of its own beyond
// rate-limit buckets.
import { Hono, type Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { z } from 'zod';
import { WEIGHTS_DELTA_MEDIA_TYPE } from '../../core/codecs/weights-delta.ts';
import { ProtocolError } from '../../core/protocol/errors.ts';
import { HeartbeatRequest, RegisterRequest } from '../../core/protocol/schemas.ts';
import { publicTextData } from '../../device/tasks/public-text.node.ts';
import { bearer } from '../coordinator/auth.ts';
import type { Coordinator } from '../coordinator/coordinator.ts';
import { RateLimiter, type RateLimit } from './rate-limit.ts';
import { readBodyLimited, readJsonLimited } from './read-body.ts';
import { mountSecAgg } from './secagg-routes.ts';

export interface AppOptions {
  /** Per client address, over all device endpoints. */
  perAddress?: RateLimit;
  /** Per device, over lease requests, uploads and heartbeats. */
  perDevice?: RateLimit;
  /** The client's address for rate limiting (the Node adapter supplies the socket's). */
  clientAddress?: (c: Context) => string;
  log?: (message: string) => void;
}

export const API_VERSION = 'v1';

export function createApp(coordinator: Coordinator, options: AppOptions = {}): Hono {
  const log = options.log ?? ((m: string) => console.error(m));
  const byAddress = new RateLimiter(options.perAddress ?? { perSecond: 500, burst: 1000 });
  const byDevice = new RateLimiter(options.perDevice ?? { perSecond: 5, burst: 20 });
  const address = options.clientAddress ?? (() => 'unknown');
  const app = new Hono();

  const limit = (limiter: RateLimiter, key: string) => {
    const wait = limiter.take(key);
    if (wait > 0) throw Object.assign(new ProtocolError('rate_limited', `too many requests; retry in ${wait} ms`), { retryAfterMs: wait });
  };
  const parse = async <S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> => {
    const result = schema.safeParse(await readJsonLimited(c.req.raw));
    if (!result.success) {
      throw new ProtocolError('bad_request', result.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; '));
    }
    return result.data;
  };
  const requireAdmin = (c: Context) => {
    if (!coordinator.isAdmin(bearer(c.req.header('authorization')))) throw new ProtocolError('unauthorized', 'the admin token is required');
  };
  const device = async (c: Context) => {
    limit(byAddress, address(c));
    const d = await coordinator.authenticateDevice(c.req.param('run')!, bearer(c.req.header('authorization')));
    limit(byDevice, d.id);
    return d;
  };
  const versionParam = (c: Context) => {
    const raw = c.req.param('v')!;
    const run = coordinator.run(c.req.param('run')!);
    if (raw === 'head') return run.headVersion;
    const v = Number(raw);
    if (!Number.isInteger(v) || v < 0) throw new ProtocolError('bad_request', `version must be a whole number or "head", got ${raw}`);
    return v;
  };

  app.onError((err, c) => {
    if (err instanceof ProtocolError) {
      const retry = (err as ProtocolError & { retryAfterMs?: number }).retryAfterMs;
      if (retry !== undefined) c.header('Retry-After', String(Math.ceil(retry / 1000)));
      return c.json(err.toBody(), err.status as 400);
    }
    log(`internal error on ${c.req.method} ${c.req.path}: ${err instanceof Error ? err.stack : String(err)}`);
    return c.json(new ProtocolError('internal', 'internal error').toBody(), 500);
  });
  app.notFound((c) => c.json(new ProtocolError('not_found', `no route ${c.req.method} ${c.req.path}`).toBody(), 404));

  app.get('/v1/health', (c) => c.json({ ok: true, version: API_VERSION }));

  app.post('/v1/runs', async (c) => {
    requireAdmin(c);
    return c.json(await coordinator.createRun(await readJsonLimited(c.req.raw)), 201);
  });
  app.get('/v1/runs', async (c) => c.json({ runs: await Promise.all(coordinator.listRuns().map((r) => r.summary())) }));
  app.get('/v1/runs/:run', async (c) => c.json(await coordinator.run(c.req.param('run')).summary()));
  for (const [action, status] of [['pause', 'paused'], ['resume', 'active']] as const) {
    app.post(`/v1/runs/:run/${action}`, async (c) => {
      requireAdmin(c);
      const run = coordinator.run(c.req.param('run'));
      await run.setStatus(status);
      return c.json(await run.summary());
    });
  }

  // Model growth mid-run (src/core/growth): body is a GrowthSpec; answers the grown version and its lineage.
  app.post('/v1/runs/:run/grow', async (c) => {
    requireAdmin(c);
    return c.json(await coordinator.growRun(c.req.param('run'), await readJsonLimited(c.req.raw)), 201);
  });
  app.post('/v1/runs/:run/devices', async (c) => {
    limit(byAddress, address(c));
    const { profile } = await parse(c, RegisterRequest);
    return c.json(await coordinator.registerDevice(c.req.param('run'), bearer(c.req.header('authorization')), profile), 201);
  });
  app.post('/v1/runs/:run/devices/:device/heartbeat', async (c) => {
    const d = await device(c);
    if (d.id !== c.req.param('device')) throw new ProtocolError('forbidden', 'a device may only beat its own heart');
    const { profile } = await parse(c, HeartbeatRequest);
    await coordinator.heartbeat(d, profile);
    return c.body(null, 204);
  });
  app.post('/v1/runs/:run/leases', async (c) => {
    const d = await device(c);
    return c.json(await coordinator.run(c.req.param('run')).issueLease(d));
  });
  app.put('/v1/runs/:run/leases/:lease/update', async (c) => {
    const d = await device(c);
    const run = coordinator.run(c.req.param('run'));
    if (c.req.header('content-type') !== 'application/octet-stream') {
      throw new ProtocolError('unsupported_media_type', 'updates are uploaded as application/octet-stream (safetensors)');
    }
    const bytes = await readBodyLimited(c.req.raw, run.maxUpdateBytes);
    return c.json(await run.submitUpdate(d, c.req.param('lease'), bytes), 202);
  });

  app.get('/v1/runs/:run/versions', async (c) => {
    const limitParam = Number(c.req.query('limit') ?? 100);
    if (!Number.isInteger(limitParam) || limitParam < 1 || limitParam > 10_000) {
      throw new ProtocolError('bad_request', 'limit must be a whole number in [1, 10000]');
    }
    return c.json({ versions: await coordinator.run(c.req.param('run')).versions(limitParam) });
  });
  app.get('/v1/runs/:run/versions/:v', async (c) => c.json(await coordinator.run(c.req.param('run')).versionWithTraffic(versionParam(c))));
  app.get('/v1/runs/:run/versions/:v/weights', async (c) => {
    const run = coordinator.run(c.req.param('run'));
    const v = versionParam(c);
    const info = await run.version(v);
    const etag = `"${info.hash}"`;
    if (c.req.header('if-none-match') === etag) return c.body(null, 304, { ETag: etag });
    // ?from=<a version the device holds>: the answer may be a delta from it (docs/api.md, "Weights deltas").
    const fromRaw = c.req.query('from');
    const from = fromRaw === undefined ? undefined : Number(fromRaw);
    if (from !== undefined && (!Number.isInteger(from) || from < 0)) throw new ProtocolError('bad_request', `from must be a version number, got ${fromRaw}`);
    const { bytes, deltaFrom }: { bytes: Uint8Array; deltaFrom?: string } = from === undefined ? await run.weights(v) : await run.weightsFrom(v, from);
    // Byte accounting: a device that sends its token is credited with the download (and its open lease on v); a
    // token that does not authenticate is ignored, as the weights are public. HEAD moves no body.
    if (c.req.method !== 'HEAD') {
      const token = bearer(c.req.header('authorization'));
      const who = token === undefined ? undefined : await coordinator.authenticateDevice(run.id, token).catch(() => undefined);
      await run.recordDownload(v, bytes.length, who);
    }
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
      'Content-Type': deltaFrom === undefined ? 'application/octet-stream' : WEIGHTS_DELTA_MEDIA_TYPE,
      ...(deltaFrom === undefined ? {} : { 'X-Tessera-Delta-Base': deltaFrom }),
      ETag: etag,
      // A version number names immutable content; "head" moves.
      'Cache-Control': c.req.param('v') === 'head' ? 'no-cache' : 'public, max-age=31536000, immutable',
    });
  });

  // What the run serves as a version (docs/api.md, "Continual runs"): the EMA of versions for a run with
  // continual.ema, otherwise the version's weights. For people and exports; devices train from .../weights.
  app.get('/v1/runs/:run/versions/:v/served', async (c) => {
    const run = coordinator.run(c.req.param('run'));
    const { hash, bytes } = await run.served((await run.version(versionParam(c))).version);
    const etag = `"${hash}"`;
    if (c.req.header('if-none-match') === etag) return c.body(null, 304, { ETag: etag });
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
      'Content-Type': 'application/octet-stream', ETag: etag,
      'Cache-Control': c.req.param('v') === 'head' ? 'no-cache' : 'public, max-age=31536000, immutable',
    });
  });

  // The run's public training text, for browser devices with no text of their own (docs/api.md, "Public data").
  const publicText = async (c: Context) => {
    const run = coordinator.run(c.req.param('run')!);
    const data = await publicTextData(run.config.task);
    if (data === undefined) throw new ProtocolError('not_found', `run ${run.id} trains ${run.config.task}, which has no public text for browser devices`);
    return data;
  };
  app.get('/v1/runs/:run/data', async (c) => {
    const data = await publicText(c);
    return c.json({ kind: 'char-text', vocab: data.vocab.toJSON(), shards: data.shards });
  });
  app.get('/v1/runs/:run/data/shards/:shard', async (c) => {
    const data = await publicText(c);
    const raw = c.req.param('shard');
    const text = /^\d+$/.test(raw) ? data.text(Number(raw)) : undefined;
    if (text === undefined) throw new ProtocolError('not_found', `no shard ${raw} (the run has ${data.shards.length})`);
    return c.body(text, 200, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'public, max-age=86400' });
  });

  // The dashboard's read model (src/server/coordinator/stats.ts) and the run's byte accounting.
  const intParam = (c: Context, name: string, fallback: number, max: number) => {
    const raw = c.req.query(name);
    const n = raw === undefined ? fallback : Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new ProtocolError('bad_request', `${name} must be a whole number in [1, ${max}]`);
    return n;
  };
  app.get('/v1/runs/:run/stats', async (c) => {
    const run = coordinator.run(c.req.param('run'));
    return c.json(await run.stats({ versions: intParam(c, 'versions', 1000, 100_000), deviceRows: intParam(c, 'devices', 200, 10_000) }));
  });
  app.get('/v1/runs/:run/traffic', async (c) => {
    const run = coordinator.run(c.req.param('run'));
    return c.json(await run.trafficReport(intParam(c, 'limit', 1000, 10_000)));
  });

  app.get('/v1/runs/:run/events', (c) => {
    const runId = coordinator.run(c.req.param('run')).id;
    return streamSSE(c, async (stream) => {
      const unsubscribe = coordinator.events.subscribe((e) => {
        if (e.runId === runId) void stream.writeSSE({ event: e.type, data: JSON.stringify(e) });
      });
      stream.onAbort(unsubscribe);
      while (!stream.aborted) {
        await stream.writeSSE({ event: 'ping', data: String(Date.now()) });
        await stream.sleep(15_000);
      }
      unsubscribe();
    });
  });

  // Secure-aggregation sessions among a run's devices (src/server/http/secagg-routes.ts).
  mountSecAgg(app, coordinator, { requireAdmin, device });

  app.get('/metrics', async (c) => {
    const registry = coordinator.metrics.registry;
    return c.body(await registry.metrics(), 200, { 'Content-Type': registry.contentType });
  });

  return app;
}
