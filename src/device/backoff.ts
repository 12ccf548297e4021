// Retrying what failed for a passing reason (the network, an overloaded or restarting coordinator, rate limits) with
// exponential backoff and jitter, so a thousand devices that lost the coordinator at once do not come back in lockstep
// ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015). A Retry-After from the coordinator is a floor.
import { CoordinatorError, NetworkError } from './client.ts';

export interface BackoffPolicy {
  /** Ceiling of the first delay. */
  baseMs: number;
  /** Ceiling of any computed delay (Retry-After may ask for more). */
  maxMs: number;
  factor: number;
  /** Give up after this many retries (Infinity: only the signal or `until` stops it). */
  maxRetries: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 500, maxMs: 30_000, factor: 2, maxRetries: Infinity };

/**
 * The delay before retry number `attempt` (0 for the first): "equal jitter", uniform in [cap/2, cap] with
 * cap = min(maxMs, baseMs * factor^attempt). Half is fixed so a retry never comes back instantly; half is random so
 * retries spread out.
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const cap = Math.min(policy.maxMs, policy.baseMs * policy.factor ** attempt);
  return cap / 2 + (random() * cap) / 2;
}

/** Failures worth trying again unchanged: no answer, 5xx, 429. Everything else needs a different request. */
export function isTransient(e: unknown): boolean {
  if (e instanceof NetworkError) return true;
  return e instanceof CoordinatorError && (e.status >= 500 || e.status === 429);
}

/** The backoff delay, raised to the coordinator's Retry-After when it sent one. */
export function retryDelay(e: unknown, attempt: number, policy: BackoffPolicy, random?: () => number): number {
  const backoff = backoffDelay(attempt, policy, random);
  const asked = e instanceof CoordinatorError ? e.retryAfterMs ?? 0 : 0;
  return Math.max(backoff, asked);
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RetryOptions {
  policy?: BackoffPolicy;
  signal?: AbortSignal;
  random?: () => number;
  /** Epoch ms after which retrying is pointless (a lease deadline): the last error is thrown instead of waiting. */
  until?: number;
  now?: () => number;
  /** Called before each wait, e.g. to report it. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

/** Calls `fn` until it succeeds or fails with a non-transient error, waiting retryDelay between tries. */
export async function withRetry<T>(fn: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const { policy = DEFAULT_BACKOFF, signal, random, until, now = Date.now, onRetry } = options;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!isTransient(e) || attempt >= policy.maxRetries || signal?.aborted) throw e;
      const delay = retryDelay(e, attempt, policy, random);
      if (until !== undefined && now() + delay >= until) throw e;
      onRetry?.(e, attempt, delay);
      await sleep(delay, signal);
    }
  }
}
