// Backoff: the delay schedule (exponential, capped, jittered within [cap/2, cap]), Retry-After as a floor, which
// failures are retried, and giving up at a deadline or on abort.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelay, isTransient, retryDelay, sleep, withRetry, type BackoffPolicy } from '../../src/device/backoff.ts';
import { CoordinatorError, NetworkError } from '../../src/device/client.ts';

const policy: BackoffPolicy = { baseMs: 100, maxMs: 1000, factor: 2, maxRetries: Infinity };
const fast: BackoffPolicy = { baseMs: 1, maxMs: 4, factor: 2, maxRetries: Infinity };

describe('backoff', () => {
  it('doubles up to the cap, with jitter in the upper half', () => {
    const lo = [0, 1, 2, 3, 4, 5, 10].map((a) => backoffDelay(a, policy, () => 0));
    const hi = [0, 1, 2, 3, 4, 5, 10].map((a) => backoffDelay(a, policy, () => 1));
    assert.deepEqual(lo, [50, 100, 200, 400, 500, 500, 500], 'lower bounds: cap/2');
    assert.deepEqual(hi, [100, 200, 400, 800, 1000, 1000, 1000], 'upper bounds: min(max, base * 2^attempt)');
    assert.equal(backoffDelay(2, policy, () => 0.5), 300, 'jitter interpolates');
  });

  it('takes Retry-After as a floor', () => {
    const limited = new CoordinatorError(429, 'rate_limited', 'slow', 5000);
    assert.equal(retryDelay(limited, 0, policy, () => 0), 5000, 'the server asked for more than backoff');
    assert.equal(retryDelay(new CoordinatorError(429, 'rate_limited', 'slow', 10), 3, policy, () => 1), 800, 'backoff asked for more');
  });

  it('retries network failures, 5xx and 429 only', () => {
    assert.ok(isTransient(new NetworkError('reset')), 'network');
    assert.ok(isTransient(new CoordinatorError(503, 'unavailable', '')), '503');
    assert.ok(isTransient(new CoordinatorError(500, 'internal', '')), '500');
    assert.ok(isTransient(new CoordinatorError(429, 'rate_limited', '')), '429');
    assert.ok(!isTransient(new CoordinatorError(401, 'unauthorized', '')), '401 needs re-registration, not a retry');
    assert.ok(!isTransient(new CoordinatorError(409, 'lease_expired', '')), '409');
    assert.ok(!isTransient(new TypeError('bug')), 'programming errors');
  });

  it('retries until success, reporting each wait', async () => {
    let calls = 0;
    const waits: number[] = [];
    const got = await withRetry(async () => {
      if (++calls < 4) throw new NetworkError('down');
      return 'ok';
    }, { policy: fast, random: () => 1, onRetry: (_e, _a, ms) => waits.push(ms) });
    assert.equal(got, 'ok', 'the eventual result');
    assert.deepEqual(waits, [1, 2, 4], 'one wait per failure, growing');
  });

  it('does not retry a permanent error, and stops at maxRetries', async () => {
    let calls = 0;
    await assert.rejects(withRetry(async () => { calls++; throw new CoordinatorError(404, 'not_found', 'gone'); }, { policy: fast }),
      (e) => e instanceof CoordinatorError, 'permanent error thrown');
    assert.equal(calls, 1, 'tried once');
    calls = 0;
    await assert.rejects(withRetry(async () => { calls++; throw new NetworkError('down'); }, { policy: { ...fast, maxRetries: 2 } }),
      (e) => e instanceof NetworkError, 'last transient error thrown');
    assert.equal(calls, 3, 'first try and two retries');
  });

  it('gives up rather than wait past `until`', async () => {
    let calls = 0;
    let clock = 0;
    await assert.rejects(withRetry(async () => { calls++; clock += 10; throw new NetworkError('down'); },
      { policy: { ...policy, baseMs: 100 }, random: () => 0, now: () => clock, until: 40 }),
    (e) => e instanceof NetworkError, 'the failure, not a timeout of its own');
    assert.equal(calls, 1, 'a 50 ms wait at t=10 would end past t=40');
  });

  it('sleep and withRetry end promptly on abort', async () => {
    const ctl = new AbortController();
    const started = performance.now();
    setTimeout(() => ctl.abort(), 20);
    await assert.rejects(withRetry(async () => { throw new NetworkError('down'); }, { policy: { ...policy, baseMs: 60_000, maxMs: 60_000 }, signal: ctl.signal }),
      (e) => e instanceof Error && e.name === 'AbortError', 'rejects with the abort reason');
    assert.ok(performance.now() - started < 1000, 'did not wait out the backoff');
    await assert.rejects(sleep(10, AbortSignal.abort()), (e) => e instanceof Error && e.name === 'AbortError', 'already aborted');
  });
});
