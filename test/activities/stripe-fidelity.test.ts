import { MockActivityEnvironment } from '@temporalio/testing';
import Stripe from 'stripe';
import { createActivities } from '../../activities';
import type { Mailer } from '../../src/email/mailer';
import { databaseOrderSource } from '../../src/fulfillment/order-source';
import { stockFulfiller } from '../../src/fulfillment/fulfiller';
import { createMetrics } from '../../src/metrics';
import { confirmEvent } from '../../src/stripe/events';
import { listRecentMoneyBack, readMoneyBack, retrieveDisputeStatus, sessionOfPaymentIntent } from '../../src/stripe/money-back';
import { cancelPaymentIntent, capturePaymentIntent, listPaymentIntentOrders, refundPaymentIntent, retrievePaymentIntentSummary } from '../../src/stripe/payment-intents';
import { createStripeClient, parseStripeApiBase, retrieveSessionSummary } from '../../src/stripe/sessions';
import { FulfillmentStore, openDatabase, type Database } from '../../src/store';
import { newSessionId } from '../fixtures/sessions';
import { startRecordingProxy, type RecordedRequest, type RecordingProxy } from '../helpers/recording-proxy';
import { startStripeMock } from '../helpers/stripe-mock';
import { loadStripeSpec, stripeMockFixtures, type StripeSpec } from '../helpers/stripe-openapi';

// Every request the product makes to Stripe, made by the product's own port functions and sent to
// stripe-mock, Stripe's mock, which refuses any request its OpenAPI spec does not allow. A proxy in
// between records each request as it went on the wire and the answer it got. stripe-mock does not
// check expansions, so the expansions asked for are checked against the spec's x-expandableFields here.

const TEST_KEY = 'sk_test_fidelity';
const CREATED_SINCE = 1_700_000_000;

let mock: Awaited<ReturnType<typeof startStripeMock>>;
let proxy: RecordingProxy;
let stripe: Stripe;
let spec: StripeSpec;
let db: Database;
/** Changes stripe-mock's next answer before the product reads it; cleared after each test. */
let rewrite: ((request: RecordedRequest) => unknown) | undefined;

beforeAll(async () => {
  spec = loadStripeSpec();
  mock = await startStripeMock();
  proxy = await startRecordingProxy(mock.url, (request) => (rewrite ? rewrite(request) : request.body));
  stripe = createStripeClient(TEST_KEY, parseStripeApiBase(proxy.url));
  db = await openDatabase({});
});
afterAll(async () => {
  await db?.close();
  await proxy?.close();
  await mock?.stop();
});
afterEach(() => {
  rewrite = undefined;
});

/** `expand[0]=...` of a request, from its query (GET) or its form body (POST). */
function expansionsOf(request: RecordedRequest): string[] {
  const expansions = [...request.query.entries(), ...request.form.entries()];
  return expansions.filter(([key]) => /^expand\[\d*\]$/.test(key)).map(([, value]) => value);
}

/**
 * Runs `call` and returns its result with the requests it sent, each of them answered 200 by
 * stripe-mock (a refusal shows its message) and asking only for expansions the spec allows.
 */
async function sent<T>(call: () => Promise<T>): Promise<{ result: T; requests: RecordedRequest[] }> {
  const mark = proxy.requests.length;
  const result = await call();
  const requests = proxy.requests.slice(mark);
  expect(requests.length).toBeGreaterThan(0);
  for (const request of requests) {
    const refusal = request.status === 200 ? '' : JSON.stringify(request.body);
    expect(`${request.method} ${request.url} -> ${request.status} ${refusal}`).toBe(`${request.method} ${request.url} -> 200 `);
    for (const expansion of expansionsOf(request)) {
      expect(`expand ${expansion} allowed: ${spec.allowsExpansion(request.method, request.url, expansion)}`).toBe(`expand ${expansion} allowed: true`);
    }
  }
  return { result, requests };
}

/** The product's activities with a real Stripe client pointed at stripe-mock (through the proxy). */
function activities() {
  const store = new FulfillmentStore(db);
  const unused = async (): Promise<never> => {
    throw new Error('not used against stripe-mock');
  };
  const mailer: Mailer = { description: 'none', send: unused, close: () => undefined };
  return createActivities({
    stripe,
    store,
    orderSource: databaseOrderSource(db),
    fulfiller: stockFulfiller,
    mailer,
    metrics: createMetrics(store),
    starter: { ensureStarted: unused, isRunning: unused, deliver: unused, deliverMoneyBack: unused, routeMoneyBack: unused },
    merchantName: 'Test Shop',
    emailDomain: 'shop.test',
  });
}

const run = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> => new MockActivityEnvironment().run(fn, ...args);

describe('Checkout Sessions against stripe-mock', () => {
  test('when a session is retrieved with its line items expanded, then stripe-mock accepts the request and the session is summarized', async () => {
    const sessionId = newSessionId();
    const { result, requests } = await sent(() => retrieveSessionSummary(stripe, sessionId));

    expect(requests.map((r) => `${r.method} ${r.url}`)).toEqual([`GET /v1/checkout/sessions/${sessionId}?expand[0]=line_items`]);
    // stripe-mock echoes the ID into its fixture: open, unpaid, one line item on one page.
    expect(result.summary).toEqual(expect.objectContaining({ id: sessionId, status: 'open', paymentStatus: 'unpaid', mode: 'payment', livemode: false }));
    expect(result.summary.paymentIntentId).toMatch(/^pi_/);
    expect(result.summary.lineItems).toEqual([expect.objectContaining({ id: expect.stringMatching(/^li_/), priceId: expect.stringMatching(/^price_/), quantity: expect.any(Number) })]);
  });

  test('when the expanded line items have more pages, then they are all listed with listLineItems, a request stripe-mock accepts', async () => {
    const sessionId = newSessionId();
    // stripe-mock's expanded list never has more; say it has, so the product pages with listLineItems.
    rewrite = (request) => {
      const body = request.body as { line_items?: { has_more: boolean } };
      if (request.url.includes('expand[0]=line_items') && body.line_items) body.line_items.has_more = true;
      return body;
    };
    const { result, requests } = await sent(() => retrieveSessionSummary(stripe, sessionId));

    expect(requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      `GET /v1/checkout/sessions/${sessionId}?expand[0]=line_items`,
      `GET /v1/checkout/sessions/${sessionId}/line_items?limit=100`,
    ]);
    const listed = (requests[1]!.body as { data: { id: string }[] }).data;
    expect(result.summary.lineItems.map((item) => item.id)).toEqual(listed.map((item) => item.id));
    expect(result.summary.lineItems[0]?.id).toMatch(/^li_/);
  });

  test('when the retrieve-session activity reads a session, then Stripe accepts the request and it is summarized', async () => {
    const { retrieveSession } = activities();
    const sessionId = newSessionId();

    const { result: summary } = await sent(() => run(retrieveSession, sessionId));

    expect(summary.id).toBe(sessionId);
    expect(summary.status).toBe('open');
    expect(summary.paymentStatus).toBe('unpaid');
    expect(summary.lineItems).toHaveLength(1);
    expect(summary.lineItems[0]).toEqual(expect.objectContaining({ id: expect.any(String), quantity: expect.any(Number), amountTotal: expect.any(Number) }));
  });

  test('when the landing page asks whether a session exists, then stripe-mock accepts the plain retrieve and it does', async () => {
    const { sessionExists } = activities();
    const sessionId = newSessionId();
    const { result, requests } = await sent(() => run(sessionExists, sessionId));

    expect(requests.map((r) => `${r.method} ${r.url}`)).toEqual([`GET /v1/checkout/sessions/${sessionId}`]);
    expect(result).toBe(true);
  });

  test('when the reconciler lists completed sessions by creation time and page, then Stripe accepts the parameters', async () => {
    const { listCompletedSessions } = activities();
    const { result: page, requests } = await sent(() => run(listCompletedSessions, { createdSince: CREATED_SINCE, startingAfter: 'cs_test_previous', limit: 100 }));

    expect(requests).toHaveLength(1);
    expect(spec.operationOf('GET', requests[0]!.url)).toBe('/v1/checkout/sessions');
    expect(Object.fromEntries(requests[0]!.query)).toEqual({ 'created[gte]': String(CREATED_SINCE), status: 'complete', limit: '100', starting_after: 'cs_test_previous' });
    expect(page.sessions.length).toBeGreaterThan(0);
    expect(page.sessions[0]).toEqual({ id: expect.stringMatching(/^cs_/), paymentStatus: expect.any(String) });
    expect(typeof page.hasMore).toBe('boolean');
  });

  test('when the session of a PaymentIntent is looked up, then stripe-mock accepts the listing and a session ID comes back', async () => {
    const { result, requests } = await sent(() => sessionOfPaymentIntent(stripe, 'pi_fidelity1'));

    expect(Object.fromEntries(requests[0]!.query)).toEqual({ payment_intent: 'pi_fidelity1', limit: '1' });
    expect(result).toMatch(/^cs_/);
  });
});

describe('refunds and disputes against stripe-mock', () => {
  test('when the money back of a PaymentIntent is read, then stripe-mock accepts both listings and refunds and disputes are summarized', async () => {
    const { result, requests } = await sent(() => readMoneyBack(stripe, 'pi_fidelity2'));

    expect(requests.map((r) => `${r.method} ${spec.operationOf(r.method, r.url)} ${r.query.toString()}`)).toEqual([
      'GET /v1/refunds payment_intent=pi_fidelity2&limit=100',
      'GET /v1/disputes payment_intent=pi_fidelity2&limit=100',
    ]);
    expect(result.refunds).toEqual([expect.objectContaining({ id: expect.stringMatching(/^re_/), amount: expect.any(Number), currency: expect.any(String) })]);
    expect(result.refunds[0]!.status).toEqual(expect.any(String)); // a free string in the spec
    expect(result.disputes).toEqual([expect.objectContaining({ id: expect.stringMatching(/^(dp|du)_/), amount: expect.any(Number), reason: expect.any(String) })]);
    expect(spec.enumOf('dispute', 'status')).toContain(result.disputes[0]!.status);
  });

  test.each(['refunds', 'disputes'] as const)('when the reconciler lists recent %s by creation time and page, then stripe-mock accepts the parameters', async (kind) => {
    const startingAfter = kind === 'refunds' ? 're_previous' : 'dp_previous';
    const { result, requests } = await sent(() => listRecentMoneyBack(stripe, { kind, createdSince: CREATED_SINCE, startingAfter, limit: 100 }));

    expect(spec.operationOf('GET', requests[0]!.url)).toBe(`/v1/${kind}`);
    expect(Object.fromEntries(requests[0]!.query)).toEqual({ 'created[gte]': String(CREATED_SINCE), limit: '100', starting_after: startingAfter });
    expect(result.items).toEqual([{ id: expect.stringMatching(kind === 'refunds' ? /^re_/ : /^(dp|du)_/), paymentIntentId: null, status: expect.any(String) }]);
    expect(typeof result.hasMore).toBe('boolean');
  });

  test('when a dispute’s status is read, then stripe-mock accepts the request and a status Stripe defines comes back', async () => {
    const { result, requests } = await sent(() => retrieveDisputeStatus(stripe, 'dp_fidelity1'));

    expect(requests.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /v1/disputes/dp_fidelity1']);
    expect(spec.enumOf('dispute', 'status')).toContain(result);
  });
});

describe('PaymentIntents against stripe-mock', () => {
  test('when a PaymentIntent is read with its latest charge expanded, then stripe-mock accepts the request and it is summarized', async () => {
    const { result, requests } = await sent(() => retrievePaymentIntentSummary(stripe, 'pi_fidelity3'));

    expect(requests.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /v1/payment_intents/pi_fidelity3?expand[0]=latest_charge']);
    expect(result).toEqual(expect.objectContaining({ id: 'pi_fidelity3', amount: expect.any(Number), currency: expect.any(String), livemode: false }));
    expect(spec.enumOf('payment_intent', 'status')).toContain(result.status);
    expect(spec.enumOf('payment_intent', 'capture_method')).toContain(result.captureMethod);
  });

  test.each([
    { action: 'capture', done: 'captured', call: capturePaymentIntent },
    { action: 'cancel', done: 'canceled', call: cancelPaymentIntent },
  ])('when a PaymentIntent is $done with an idempotency key, then stripe-mock accepts the request and the key is on it', async ({ action, call }) => {
    const key = `${action}-pi_fidelity4`;
    const { result, requests } = await sent(() => call(stripe, 'pi_fidelity4', key));

    expect(requests.map((r) => `${r.method} ${r.url}`)).toEqual([`POST /v1/payment_intents/pi_fidelity4/${action}`]);
    expect(requests[0]!.headers['idempotency-key']).toBe(key);
    expect(result.id).toBe('pi_fidelity4');
    expect(spec.enumOf('payment_intent', 'status')).toContain(result.status);
  });

  test('when a second payment of an order is refunded with an idempotency key, then stripe-mock accepts the request and the key is on it', async () => {
    const { result, requests } = await sent(() => refundPaymentIntent(stripe, 'pi_fidelity5', 'refund-duplicate-pi_fidelity5'));

    expect(requests.map((r) => `${r.method} ${r.url}`)).toEqual(['POST /v1/refunds']);
    expect(requests[0]!.headers['idempotency-key']).toBe('refund-duplicate-pi_fidelity5');
    expect(result.refundId).toMatch(/^re_/);
  });

  test('when the reconciler lists PaymentIntent orders by creation time and page, then stripe-mock accepts the parameters', async () => {
    const { result, requests } = await sent(() => listPaymentIntentOrders(stripe, { createdSince: CREATED_SINCE, startingAfter: 'pi_previous', limit: 100 }));

    expect(spec.operationOf('GET', requests[0]!.url)).toBe('/v1/payment_intents');
    expect(Object.fromEntries(requests[0]!.query)).toEqual({ 'created[gte]': String(CREATED_SINCE), limit: '100', starting_after: 'pi_previous' });
    // stripe-mock's PaymentIntent names no order: the page is read whole, and where it ends is kept.
    expect(result.lastId).toMatch(/^pi_/);
    expect(Array.isArray(result.orders)).toBe(true);
    expect(typeof result.hasMore).toBe('boolean');
  });
});

describe('events against stripe-mock', () => {
  // stripe-mock answers every event ID with its one fixture event.
  const fixture = () => stripeMockFixtures().resources.event as { type: string; data: { object: { id: string } } };

  test('when an event is confirmed by its ID, then stripe-mock accepts the request and the event it describes is confirmed', async () => {
    const { type, data } = fixture();
    const { result, requests } = await sent(() => confirmEvent(stripe, { eventId: 'evt_fidelity1', type, objectId: data.object.id }));

    expect(requests.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /v1/events/evt_fidelity1']);
    expect(result).toBe(true);
  });

  test('when an event is claimed with another type than Stripe has, then it is not confirmed', async () => {
    const { data } = fixture();
    const { result } = await sent(() => confirmEvent(stripe, { eventId: 'evt_fidelity2', type: 'checkout.session.completed', objectId: data.object.id }));
    expect(result).toBe(false);
  });
});

describe('stripe-mock refuses what the spec forbids (the check bites)', () => {
  const listParams = { created: { gte: CREATED_SINCE }, status: 'complete', limit: 100 } as const;

  test('when a request carries a parameter the spec does not define, then stripe-mock refuses it', async () => {
    const params = { ...listParams, no_such_parameter: 'x' } as Stripe.Checkout.SessionListParams;
    await expect(stripe.checkout.sessions.list(params)).rejects.toThrow(Stripe.errors.StripeInvalidRequestError);
    expect(proxy.requests.at(-1)).toEqual(expect.objectContaining({ status: 400, body: { error: expect.objectContaining({ message: expect.stringMatching(/additional properties are not allowed/) }) } }));
  });

  test('when a parameter has a value outside the spec’s enum, then stripe-mock refuses it', async () => {
    const params = { ...listParams, status: 'completed' } as unknown as Stripe.Checkout.SessionListParams;
    await expect(stripe.checkout.sessions.list(params)).rejects.toThrow(/status.*not in enumeration/);
  });

  test('when an expansion is not one the spec allows, then stripe-mock still answers, and only the spec check here refuses it', async () => {
    const sessionId = newSessionId();
    // stripe-mock does not check expansions: that is why `sent` checks them against the spec.
    await expect(stripe.checkout.sessions.retrieve(sessionId, { expand: ['payment_status'] })).resolves.toEqual(expect.objectContaining({ id: sessionId }));
    const url = `/v1/checkout/sessions/${sessionId}`;
    expect(spec.allowsExpansion('GET', url, 'payment_status')).toBe(false);
    expect(spec.allowsExpansion('GET', url, 'line_items.data.no_such_field')).toBe(false);
    expect(spec.allowsExpansion('GET', url, 'line_items')).toBe(true);
    expect(spec.allowsExpansion('GET', url, 'line_items.data.price.product')).toBe(true);
    expect(spec.allowsExpansion('GET', '/v1/payment_intents', 'data.latest_charge')).toBe(true);
  });
});
