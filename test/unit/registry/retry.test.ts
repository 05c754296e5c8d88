import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  DEFAULT_RETRY_POLICY,
  NotFoundError,
  RegistryError,
  RegistryTimeoutError,
  RegistryUnreachableError,
  UnauthorizedError,
  backoffDelay,
  isIdempotentMethod,
  isTransientError,
  parseRetryAfter,
  resolveRetryPolicy,
  shouldRetry,
} from '../../../src/registry/index.js';

describe('backoffDelay', () => {
  const policy = resolveRetryPolicy({ baseDelayMs: 100, maxDelayMs: 1000, jitter: 0, maxAttempts: 10 });

  it('doubles from the base and stops at the cap without jitter', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(policy, n)), [100, 200, 400, 800, 1000, 1000]);
    assert.equal(backoffDelay(policy, 10_000), 1000);
  });

  it('stays within [d*(1-jitter), d] for any jitter and random value', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000 }),
        fc.integer({ min: 0, max: 60_000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 100 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (base, cap, jitter, retry, r) => {
          const p = resolveRetryPolicy({ baseDelayMs: base, maxDelayMs: cap, jitter, maxAttempts: 3 });
          const d = Math.min(cap, base * 2 ** (retry - 1));
          const got = backoffDelay(p, retry, () => r);
          assert.ok(got >= Math.floor(d * (1 - jitter)) - 1 && got <= Math.ceil(d) + 1, `${got} not in [${d * (1 - jitter)}, ${d}]`);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('actually varies with jitter', () => {
    const p = resolveRetryPolicy({ jitter: 1, baseDelayMs: 1000, maxDelayMs: 1000 });
    assert.equal(backoffDelay(p, 1, () => 0), 0);
    assert.equal(backoffDelay(p, 1, () => 1), 1000);
    assert.equal(backoffDelay(p, 1, () => 0.5), 500);
  });

  it('rejects nonsense policies', () => {
    assert.throws(() => resolveRetryPolicy({ maxAttempts: 0 }), RangeError);
    assert.throws(() => resolveRetryPolicy({ jitter: 2 }), RangeError);
    assert.throws(() => resolveRetryPolicy({ baseDelayMs: -1 }), RangeError);
    assert.deepEqual(resolveRetryPolicy(undefined), { ...DEFAULT_RETRY_POLICY });
  });
});

describe('shouldRetry', () => {
  const p = resolveRetryPolicy({ maxAttempts: 3 });
  const s503 = new RegistryError('x', { status: 503 });
  it('retries idempotent methods on transient errors only, up to maxAttempts', () => {
    assert.equal(shouldRetry('GET', 1, s503, p), true);
    assert.equal(shouldRetry('HEAD', 2, new RegistryError('x', { status: 429 }), p), true);
    assert.equal(shouldRetry('GET', 1, new RegistryUnreachableError('x'), p), true);
    assert.equal(shouldRetry('GET', 1, new RegistryTimeoutError('x'), p), true);
    assert.equal(shouldRetry('GET', 3, s503, p), false);
    assert.equal(shouldRetry('PUT', 1, s503, p), false);
    assert.equal(shouldRetry('POST', 1, new RegistryUnreachableError('x'), p), false);
    assert.equal(shouldRetry('PATCH', 1, s503, p), false);
  });

  it('never retries 4xx other than 429, nor 501, nor unknown errors', () => {
    for (const status of [400, 401, 403, 404, 405, 408, 409, 416]) {
      assert.equal(shouldRetry('GET', 1, new RegistryError('x', { status }), p), false, String(status));
    }
    assert.equal(shouldRetry('GET', 1, new NotFoundError('x', { status: 404 }), p), false);
    assert.equal(shouldRetry('GET', 1, new UnauthorizedError('x', { status: 401 }), p), false);
    assert.equal(shouldRetry('GET', 1, new RegistryError('x', { status: 501 }), p), false);
    assert.equal(shouldRetry('GET', 1, new TypeError('bug'), p), false);
    for (const status of [500, 502, 503, 504]) assert.equal(isTransientError(new RegistryError('x', { status })), true);
  });

  it('knows which methods are idempotent', () => {
    assert.deepEqual(['GET', 'head', 'PUT', 'POST', 'PATCH', 'DELETE'].map(isIdempotentMethod), [true, true, false, false, false, false]);
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    assert.equal(parseRetryAfter('3'), 3000);
    assert.equal(parseRetryAfter(['2', '9']), 2000);
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:05 GMT', now), 5000);
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:27:00 GMT', now), 0);
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter(undefined), undefined);
  });
});
