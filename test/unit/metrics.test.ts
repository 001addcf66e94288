import Stripe from 'stripe';
import { ackOutcome, createMetrics, stripeErrorLabel, WAITING_STATUSES } from '../../src/metrics';

describe('ackOutcome', () => {
  test.each([
    [200, 'accepted', 'accepted'],
    [200, 'already_settled', 'already_settled'],
    [200, 'ignored', 'ignored'],
    [200, undefined, 'accepted'],
    [400, undefined, 'rejected'],
    [413, undefined, 'rejected'],
    [415, undefined, 'rejected'],
    [503, undefined, 'unavailable'],
    [500, undefined, 'error'],
  ] as const)('when the answer is %d with delivery %s, then the outcome is %s', (code, delivery, outcome) => {
    expect(ackOutcome(code, delivery)).toBe(outcome);
  });
});

describe('stripeErrorLabel', () => {
  const raw = { message: 'No such checkout.session: cs_test_secret123' };
  test.each([
    ['an unknown session (resource_missing)', new Stripe.errors.StripeInvalidRequestError({ ...raw, code: 'resource_missing' }), 'not_found'],
    ['an unknown session (404)', new Stripe.errors.StripeInvalidRequestError({ ...raw, statusCode: 404 }), 'not_found'],
    ['a rejected request', new Stripe.errors.StripeInvalidRequestError({ ...raw, code: 'parameter_invalid_integer' }), 'invalid_request'],
    ['a refused key', new Stripe.errors.StripeAuthenticationError(raw), 'authentication'],
    ['a missing permission', new Stripe.errors.StripePermissionError(raw), 'permission'],
    ['a rate limit', new Stripe.errors.StripeRateLimitError(raw), 'rate_limit'],
    ['a connection error', new Stripe.errors.StripeConnectionError(raw), 'connection'],
    ['a Stripe 5xx', new Stripe.errors.StripeAPIError(raw), 'api'],
    ['another Stripe error', new Stripe.errors.StripeIdempotencyError(raw), 'other'],
    ['a plain error', new Error('socket hang up'), 'other'],
    ['a thrown string', 'not even an error', 'other'],
  ])('when the read fails with %s, then the label is its kind, never its message', (_name, err, label) => {
    expect(stripeErrorLabel(err)).toBe(label);
  });
});

describe('createMetrics', () => {
  test('when the database reports some waiting sessions, then every waiting status has a series, 0 where none waits', async () => {
    const metrics = createMetrics({
      waitingSessions: async () => [{ status: 'paused', sessions: 3, oldestAgeSeconds: 120 }],
    });
    const text = await metrics.registry.metrics();
    expect(text).toContain('checkout_sessions_waiting{status="paused"} 3');
    expect(text).toContain('checkout_sessions_waiting_oldest_age_seconds{status="paused"} 120');
    for (const status of WAITING_STATUSES.filter((s) => s !== 'paused')) {
      expect(text).toContain(`checkout_sessions_waiting{status="${status}"} 0`);
    }
    expect(WAITING_STATUSES).toEqual(['received', 'awaiting_checkout', 'awaiting_payment', 'fulfilling', 'paused']);
  });

  test('when scraped, then both database gauges share one query, and the next scrape reads afresh', async () => {
    let queries = 0;
    const metrics = createMetrics({
      waitingSessions: async () => [{ status: 'awaiting_payment', sessions: ++queries, oldestAgeSeconds: 5 }],
    });
    expect(await metrics.registry.metrics()).toContain('checkout_sessions_waiting{status="awaiting_payment"} 1');
    expect(queries).toBe(1);
    expect(await metrics.registry.metrics()).toContain('checkout_sessions_waiting{status="awaiting_payment"} 2');
    expect(queries).toBe(2);
  });

  test('when the database is away, then the scrape still answers, without the database gauges', async () => {
    const metrics = createMetrics({
      waitingSessions: async () => {
        throw new Error('connect ECONNREFUSED');
      },
    });
    const text = await metrics.registry.metrics();
    expect(text).not.toMatch(/^checkout_sessions_waiting\{/m);
    expect(text).toContain('checkout_fulfillments_total{status="fulfilled"} 0');
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
  });

  test('when two processes-worth of metrics live in one process (tests), then their registries do not collide', async () => {
    const store = { waitingSessions: async () => [] };
    const first = createMetrics(store);
    const second = createMetrics(store);
    first.fulfillments.inc({ status: 'fulfilled' });
    expect(await first.registry.metrics()).toContain('checkout_fulfillments_total{status="fulfilled"} 1');
    expect(await second.registry.metrics()).toContain('checkout_fulfillments_total{status="fulfilled"} 0');
  });
});
