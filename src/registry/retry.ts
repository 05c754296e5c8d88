// Retry policy: only idempotent requests (GET, HEAD) are retried, only on
// transient failures (network errors, timeouts, 429, 5xx), with exponential
// backoff and jitter so that many lazily-mounted layers hitting one flaky
// registry do not retry in lock-step.
import { isTransientError } from './errors.js';

export interface RetryPolicy {
  /** Total attempts including the first; 1 disables retries. */
  maxAttempts: number;
  /** Delay before the second attempt; doubled for each further one. */
  baseDelayMs: number;
  maxDelayMs: number;
  /**
   * Fraction of each delay that is randomised, 0..1. 1 is "full jitter"
   * (uniform in [0, delay]), 0 is deterministic.
   */
  jitter: number;
}

export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 4,
  baseDelayMs: 100,
  maxDelayMs: 5_000,
  jitter: 0.5,
});

export function resolveRetryPolicy(partial: Partial<RetryPolicy> | undefined): RetryPolicy {
  const p = { ...DEFAULT_RETRY_POLICY, ...partial };
  if (!Number.isInteger(p.maxAttempts) || p.maxAttempts < 1) throw new RangeError(`retry maxAttempts must be an integer >= 1, got ${p.maxAttempts}`);
  if (!(p.baseDelayMs >= 0) || !(p.maxDelayMs >= 0)) throw new RangeError('retry delays must be >= 0');
  if (!(p.jitter >= 0 && p.jitter <= 1)) throw new RangeError(`retry jitter must be in [0, 1], got ${p.jitter}`);
  return p;
}

/**
 * Delay before retry number `retry` (1 for the first retry). The result lies
 * in [d * (1 - jitter), d] with d = min(maxDelayMs, baseDelayMs * 2^(retry-1)).
 */
export function backoffDelay(policy: RetryPolicy, retry: number, random: () => number = Math.random): number {
  const exponent = Math.max(0, retry - 1);
  // Cap the exponent so large retry counts do not overflow to Infinity first.
  const d = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(exponent, 52));
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(d * (1 - policy.jitter + policy.jitter * r));
}

export function isIdempotentMethod(method: string): boolean {
  const m = method.toUpperCase();
  return m === 'GET' || m === 'HEAD';
}

/** Whether attempt number `attempt` (1-based) that failed with `err` deserves another. */
export function shouldRetry(method: string, attempt: number, err: unknown, policy: RetryPolicy): boolean {
  return isIdempotentMethod(method) && attempt < policy.maxAttempts && isTransientError(err);
}

/** Retry-After as milliseconds from now: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | string[] | undefined, now: number = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/** setTimeout as a promise that an AbortSignal can cut short. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
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
