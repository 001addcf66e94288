import { startStripeEmulator, type EmulatedDispute, type EmulatedPaymentIntent, type EmulatedSession, type StripeEmulator } from '../../src/stripe/emulator';
import { checkoutEventPayload, stripeEventPayload } from '../../src/stripe/signed-events';
import { loadStripeSpec, type StripeSpec } from '../helpers/stripe-openapi';

// The Stripe emulator is what most tests and the demo trust as "Stripe": each kind of answer it
// gives is checked here against Stripe's OpenAPI spec (the one stripe-mock carries), the response
// schema of the very operation called, as stripe-node would call it. Nullable fields, enums and
// types are checked, every required field must be there (the emulator omits none), and no field
// may appear that the spec does not define.

const TEST_KEY = 'sk_test_openapi';
const CREATED = 1_750_000_000;

let emulator: StripeEmulator;
let spec: StripeSpec;

beforeAll(async () => {
  spec = loadStripeSpec();
  emulator = await startStripeEmulator();
});
afterAll(async () => {
  await emulator?.close();
});

/** One Stripe API call as stripe-node sends it: bearer key, bracketed query, form-encoded body. */
async function call(method: 'GET' | 'POST', url: string, { key = TEST_KEY, form = '' } = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${emulator.url}${url}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(method === 'POST' ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
    body: method === 'POST' ? form : undefined,
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Calls `url` and expects an answer of `status` that the spec's schema for this operation accepts whole. */
async function conforming(method: 'GET' | 'POST', url: string, status = 200, options?: Parameters<typeof call>[2]) {
  const answer = await call(method, url, options);
  expect(answer.status).toBe(status);
  expect(spec.checkAnswer(method, url, answer.status, answer.body)).toEqual([]);
  return answer.body;
}

const lineItem = (n: number, quantity: number | null = 1) => ({ id: `li_openapi${n}`, description: `Item ${n}`, quantity, priceId: `price_openapi${n}`, productId: `prod_openapi${n}`, unitAmount: 1200 });

function putSession(overrides: Partial<EmulatedSession> & { id: string }): EmulatedSession {
  const session: EmulatedSession = {
    status: 'complete',
    paymentStatus: 'paid',
    created: CREATED,
    currency: 'eur',
    customerEmail: 'jenny@example.com',
    customerName: 'Jenny Rosen',
    lineItems: [lineItem(1, 2), lineItem(2)],
    ...overrides,
  };
  emulator.put(session);
  return session;
}

describe('Checkout Sessions and their line items', () => {
  const sessions: [string, Partial<EmulatedSession> & { id: string }][] = [
    ['a paid session with its customer', { id: 'cs_test_openapi1' }],
    ['an open session without a customer', { id: 'cs_test_openapi2', status: 'open', paymentStatus: 'unpaid', customerEmail: null, customerName: null }],
    ['a subscription session (no PaymentIntent, a metered item)', { id: 'cs_test_openapi3', mode: 'subscription', lineItems: [lineItem(3, null)] }],
  ];
  test.each(sessions)('when %s is retrieved, then it is a checkout.session as the spec describes it', async (_, overrides) => {
    const session = putSession(overrides);
    const body = await conforming('GET', `/v1/checkout/sessions/${session.id}`);
    expect(body).toEqual(expect.objectContaining({ object: 'checkout.session', id: session.id }));
    expect(body.line_items).toBeUndefined();
  });

  test('when a session is retrieved with line_items expanded, then the session and its first page of items conform', async () => {
    const session = putSession({ id: 'cs_test_openapi4', lineItems: Array.from({ length: 12 }, (_, i) => lineItem(i + 10, i === 11 ? null : i + 1)) });
    const body = await conforming('GET', `/v1/checkout/sessions/${session.id}?expand[0]=line_items`);
    const page = body.line_items as { object: string; data: unknown[]; has_more: boolean };
    expect(page).toEqual(expect.objectContaining({ object: 'list', has_more: true }));
    expect(page.data.length).toBeGreaterThan(0);
    for (const item of page.data) expect(spec.check('item', item)).toEqual([]);
  });

  test('when a session’s line items are listed page by page, then each page is a list of items', async () => {
    const session = putSession({ id: 'cs_test_openapi5', lineItems: [lineItem(20), lineItem(21), lineItem(22, null)] });
    const first = await conforming('GET', `/v1/checkout/sessions/${session.id}/line_items?limit=2`);
    expect(first).toEqual(expect.objectContaining({ object: 'list', has_more: true, data: [expect.anything(), expect.anything()] }));
    const rest = await conforming('GET', `/v1/checkout/sessions/${session.id}/line_items?limit=2&starting_after=li_openapi21`);
    expect(rest).toEqual(expect.objectContaining({ has_more: false, data: [expect.objectContaining({ object: 'item', quantity: null })] }));
  });

  test('when sessions are listed as the reconciler and the money-back router list them, then the lists conform', async () => {
    putSession({ id: 'cs_test_openapi6' });
    const completed = await conforming('GET', `/v1/checkout/sessions?created[gte]=${CREATED}&status=complete&limit=100`);
    expect((completed.data as unknown[]).length).toBeGreaterThan(0);
    const byPaymentIntent = await conforming('GET', '/v1/checkout/sessions?payment_intent=pi_test_openapi6&limit=1');
    expect(byPaymentIntent.data).toEqual([expect.objectContaining({ id: 'cs_test_openapi6' })]);
  });
});

describe('refunds and disputes', () => {
  const DISPUTE_STATUSES: EmulatedDispute['status'][] = ['warning_needs_response', 'warning_under_review', 'warning_closed', 'needs_response', 'under_review', 'won', 'lost', 'prevented'];

  beforeAll(() => {
    emulator.putRefund({ id: 're_openapi1', paymentIntentId: 'pi_openapi_money', amount: 1200, currency: 'eur', status: 'succeeded', metadata: { line_items: 'li_openapi1:1' } });
    emulator.putRefund({ id: 're_openapi2', paymentIntentId: 'pi_openapi_money', amount: 600, currency: 'eur', status: 'failed' });
    DISPUTE_STATUSES.forEach((status, i) => emulator.putDispute({ id: `dp_openapi${i}`, paymentIntentId: 'pi_openapi_money', amount: 1200, currency: 'eur', status, created: CREATED + i }));
  });

  test('when the emulator’s dispute statuses are compared with the spec’s, then they are the same', () => {
    expect([...DISPUTE_STATUSES].sort()).toEqual([...spec.enumOf('dispute', 'status')].sort());
  });

  test.each([
    ['refunds', 'refund'],
    ['disputes', 'dispute'],
  ])('when %s are listed by PaymentIntent and by creation time, then the lists conform', async (kind, object) => {
    const byPaymentIntent = await conforming('GET', `/v1/${kind}?payment_intent=pi_openapi_money&limit=100`);
    expect((byPaymentIntent.data as { object: string }[]).map((item) => item.object)).toEqual(expect.arrayContaining([object]));
    const recent = await conforming('GET', `/v1/${kind}?created[gte]=${CREATED}&limit=1`);
    expect(recent.has_more).toBe(true);
    const next = await conforming('GET', `/v1/${kind}?created[gte]=${CREATED}&limit=1&starting_after=${(recent.data as { id: string }[])[0]!.id}`);
    expect((next.data as unknown[]).length).toBe(1);
  });

  test.each(DISPUTE_STATUSES.map((status, i) => [status, i]))('when a dispute that is %s is retrieved, then it is a dispute as the spec describes it', async (_, i) => {
    const body = await conforming('GET', `/v1/disputes/dp_openapi${i}`);
    expect(body.object).toBe('dispute');
  });
});

describe('PaymentIntents', () => {
  const intents: EmulatedPaymentIntent[] = [
    { id: 'pi_openapi_new', amount: 2000, currency: 'usd', status: 'requires_payment_method' },
    { id: 'pi_openapi_declined', amount: 2000, currency: 'usd', status: 'requires_payment_method', lastPaymentError: 'card_declined' },
    { id: 'pi_openapi_action', amount: 2000, currency: 'usd', status: 'requires_action' },
    { id: 'pi_openapi_processing', amount: 2000, currency: 'usd', status: 'processing' },
    { id: 'pi_openapi_authorized', amount: 2000, currency: 'usd', status: 'requires_capture', captureMethod: 'manual', metadata: { order_id: 'order_openapi' } },
    { id: 'pi_openapi_succeeded', amount: 2000, currency: 'usd', status: 'succeeded', metadata: { order_id: 'order_openapi2' } },
    { id: 'pi_openapi_released', amount: 2000, currency: 'usd', status: 'canceled', captureMethod: 'manual' },
  ];
  beforeAll(() => {
    for (const intent of intents) emulator.putPaymentIntent({ created: CREATED, ...intent });
  });

  // Which of them have charged (or tried to): the others have no latest charge yet.
  const CHARGED = new Set(['pi_openapi_declined', 'pi_openapi_processing', 'pi_openapi_authorized', 'pi_openapi_succeeded', 'pi_openapi_released']);

  test.each(intents.map((intent) => [intent.status, intent.id]))('when a PaymentIntent that is %s (%s) is retrieved, then it conforms with its latest charge as an ID and expanded', async (_, id) => {
    const plain = await conforming('GET', `/v1/payment_intents/${id}`);
    expect(plain.object).toBe('payment_intent');
    const expanded = await conforming('GET', `/v1/payment_intents/${id}?expand[0]=latest_charge`);
    if (CHARGED.has(id)) {
      expect(plain.latest_charge).toMatch(/^ch_/);
      expect(expanded.latest_charge).toEqual(expect.objectContaining({ object: 'charge', id: plain.latest_charge }));
    } else {
      expect([plain.latest_charge, expanded.latest_charge]).toEqual([null, null]);
    }
  });

  test('when PaymentIntents are listed by creation time, then the list conforms', async () => {
    const body = await conforming('GET', `/v1/payment_intents?created[gte]=${CREATED}&limit=100`);
    expect((body.data as unknown[]).length).toBe(intents.length);
    const expanded = await conforming('GET', `/v1/payment_intents?created[gte]=${CREATED}&limit=100&expand[0]=data.latest_charge`);
    expect((expanded.data as { latest_charge: unknown }[]).some((intent) => typeof intent.latest_charge === 'object' && intent.latest_charge !== null)).toBe(true);
  });

  test('when an authorization is captured, and another released, then both answers are PaymentIntents as the spec describes them', async () => {
    emulator.putPaymentIntent({ id: 'pi_openapi_capture', amount: 2000, currency: 'usd', status: 'requires_capture', captureMethod: 'manual' });
    emulator.putPaymentIntent({ id: 'pi_openapi_cancel', amount: 2000, currency: 'usd', status: 'requires_capture', captureMethod: 'manual' });
    expect((await conforming('POST', '/v1/payment_intents/pi_openapi_capture/capture')).status).toBe('succeeded');
    const canceled = await conforming('POST', '/v1/payment_intents/pi_openapi_cancel/cancel', 200, { form: 'expand[0]=latest_charge' });
    expect(canceled).toEqual(expect.objectContaining({ status: 'canceled', latest_charge: expect.objectContaining({ refunded: true }) }));
  });
});

describe('events', () => {
  test.each([
    ['a Checkout event as the demo and the tests sign them', JSON.parse(checkoutEventPayload('checkout.session.completed', 'cs_test_openapi1', 'evt_openapi1')) as Record<string, unknown>],
    ['a PaymentIntent event', JSON.parse(stripeEventPayload('payment_intent.succeeded', { id: 'pi_openapi_succeeded', object: 'payment_intent' }, 'evt_openapi2')) as Record<string, unknown>],
  ])('when %s is put and read back by its ID, then it is an event as the spec describes it', async (_, event) => {
    emulator.putEvent(event);
    const body = await conforming('GET', `/v1/events/${String(event.id)}`);
    expect(body).toEqual(expect.objectContaining({ object: 'event', id: event.id, type: event.type }));
  });
});

describe('errors', () => {
  test.each([
    ['an unknown session', 'GET', '/v1/checkout/sessions/cs_test_openapi_missing'],
    ['an unknown dispute', 'GET', '/v1/disputes/dp_openapi_missing'],
    ['an unknown PaymentIntent', 'GET', '/v1/payment_intents/pi_openapi_missing'],
    ['the capture of an unknown PaymentIntent', 'POST', '/v1/payment_intents/pi_openapi_missing/capture'],
    ['an unknown event', 'GET', '/v1/events/evt_openapi_missing'],
  ] as const)('when %s is asked for, then the 404 is an error as the spec describes it', async (_, method, url) => {
    const body = await conforming(method, url, 404);
    expect(body.error).toEqual(expect.objectContaining({ type: 'invalid_request_error', code: 'resource_missing' }));
  });

  test('when the key is not a Stripe key, then the 401 is an error as the spec describes it', async () => {
    await conforming('GET', '/v1/checkout/sessions/cs_test_openapi1', 401, { key: 'not-a-key' });
  });

  test.each([400, 401, 403, 429, 500, 503])('when the emulator plays a %i, then the answer is an error as the spec describes it', async (status) => {
    emulator.failNext(status, 1);
    const body = await conforming('GET', '/v1/checkout/sessions/cs_test_openapi1', status);
    if (status === 429) expect(body.error).toEqual(expect.objectContaining({ code: 'rate_limit' }));
  });

  test('when a capture is refused for the PaymentIntent’s state, then the 400 is an error as the spec describes it', async () => {
    emulator.putPaymentIntent({ id: 'pi_openapi_done', amount: 2000, currency: 'usd', status: 'succeeded' });
    const body = await conforming('POST', '/v1/payment_intents/pi_openapi_done/capture', 400);
    expect(body.error).toEqual(expect.objectContaining({ code: 'payment_intent_unexpected_state' }));
  });

  test('when a URL is not one of Stripe’s, then the 404 is still Stripe’s error object', async () => {
    const { status, body } = await call('GET', '/v1/no_such_resource');
    expect(status).toBe(404);
    expect(spec.check('error', body)).toEqual([]);
  });
});

describe('the check itself (it bites)', () => {
  test('when an answer strays from the spec, then the check names each problem', async () => {
    const { body } = await call('GET', '/v1/checkout/sessions/cs_test_openapi1');
    const { created: _created, ...withoutCreated } = body;
    const strays = {
      wrongEnum: { ...body, payment_status: 'complete' },
      inventedField: { ...body, paid: true },
      missingRequired: withoutCreated,
      wrongType: { ...body, amount_total: '2400' },
      nullWhereNotNullable: { ...body, livemode: null },
    };
    const problems = Object.fromEntries(Object.entries(strays).map(([name, stray]) => [name, spec.check('checkout.session', stray).join('\n')]));
    expect(problems.wrongEnum).toMatch(/\/payment_status must be equal to one of the allowed values/);
    expect(problems.inventedField).toMatch(/must NOT have additional properties.*"paid"/);
    expect(problems.missingRequired).toMatch(/must have required property 'created'/);
    expect(problems.wrongType).toMatch(/\/amount_total must be integer/);
    expect(problems.nullWhereNotNullable).toMatch(/\/livemode must be boolean/);
  });

  test('when an error body uses a type the spec does not know, then the check refuses it', () => {
    expect(spec.check('error', { error: { type: 'rate_limit_error', message: 'Too many requests' } })).toEqual([expect.stringMatching(/\/error\/type must be equal to one of the allowed values/)]);
  });
});
