import { WorkflowIdReusePolicy } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createIngressApp, listen, type IngressDeps } from '../../src/ingress/app';
import { FulfillmentStarter } from '../../src/temporal/fulfillment-starter';
import { stripeEventPayload } from '../../src/stripe/signed-events';
import { createStripeClient, parseStripeApiBase } from '../../src/stripe/sessions';
import type { StripeEmulator } from '../../src/stripe/emulator';
import type { FulfillmentStatus } from '../../workflows/definitions';
import { newSessionId } from '../fixtures/sessions';
import { eventually } from '../helpers/eventually';
import { startSmtpServer } from '../helpers/smtp-server';
import { fetchStatus } from '../helpers/status-api';
import {
  emulatedSession,
  eventPayload,
  postWebhook,
  ROTATED_SECRET,
  startProduct,
  WEBHOOK_SECRET,
  type TestStack,
} from '../helpers/stack';

let product: Awaited<ReturnType<typeof startProduct>>;
let env: TestWorkflowEnvironment;
let emulator: StripeEmulator;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let stack: TestStack;
let url: string;

beforeAll(async () => {
  product = await startProduct();
  ({ env, emulator, smtp, stack } = product);
  url = stack.ingress!.url;
}, 120_000);

afterAll(async () => {
  await product?.stop();
});

/** The ingress's dependencies as the stack wires them, for tests that run an ingress of their own. */
function ingressDeps(overrides: Partial<IngressDeps> = {}): IngressDeps {
  return {
    starter: new FulfillmentStarter(stack.client, stack.services.store, { taskQueue: 'fulfillment', paymentDeadline: '7 days', timeoutMs: 5000 }),
    store: stack.services.store,
    stripe: createStripeClient('sk_test_integration', parseStripeApiBase(emulator.url)),
    sessionCheck: stack.services.sessionCheck,
    webhookSecrets: [WEBHOOK_SECRET],
    livemode: false,
    trustProxy: ['loopback'],
    logger: stack.logger,
    metrics: stack.services.metrics,
    readiness: { temporal: async () => undefined, database: async () => undefined },
    ...overrides,
  };
}

const statusOf = (sessionId: string) => fetchStatus(url, sessionId);

async function waitForStatus(sessionId: string, status: FulfillmentStatus) {
  const seen = await eventually(
    () => statusOf(sessionId),
    (r) => r.body.status === status,
    { timeoutMs: 20_000, intervalMs: 250 },
  );
  expect(seen.body.status).toBe(status);
  return seen.body;
}

const mailsFor = (sessionId: string, kind = 'receipt') =>
  smtp.messages.filter((m) => m.parsed.messageId === `<${kind}.${sessionId}@shop.test>`);

async function executionsOf(sessionId: string): Promise<number> {
  return env.client.workflow.count(`WorkflowId = "${sessionId}"`).then((r) => r.count);
}

async function hasWorkflow(sessionId: string): Promise<boolean> {
  try {
    await env.client.workflow.getHandle(sessionId).describe();
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

describe('webhooks', () => {
  test('when a paid session completes, then it is fulfilled once with one receipt', async () => {
    const session = emulatedSession();
    emulator.put(session);
    await stack.services.store.setStock(session.lineItems[0]!.productId, 10);

    const response = await postWebhook(url, eventPayload('checkout.session.completed', session.id));

    expect(response.status).toBe(200);
    expect(response.body).toEqual({ received: true, sessionId: session.id, delivery: 'accepted' });
    const body = await waitForStatus(session.id, 'fulfilled');
    expect(body.fulfilled).toHaveLength(2);
    await eventually(async () => mailsFor(session.id).length, (n) => n === 1);
    expect(mailsFor(session.id)).toHaveLength(1);
    expect(await stack.services.store.getFulfillments(session.id)).toHaveLength(2);
    expect(await stack.services.store.getStock(session.lineItems[0]!.productId)).toBe(8);
    // Operators find it in the Temporal UI by its custom search attributes.
    const found = await eventually(
      () => env.client.workflow.count(`WorkflowId = "${session.id}" AND FulfillmentStatus = "fulfilled" AND AmountTotal = 4500`),
      (r) => r.count === 1,
    );
    expect(found.count).toBe(1);
  });

  test('when a delayed payment succeeds later, then the session waits awaiting_payment and is then fulfilled', async () => {
    const session = emulatedSession({ paymentStatus: 'unpaid' });
    emulator.put(session);

    expect((await postWebhook(url, eventPayload('checkout.session.completed', session.id))).status).toBe(200);
    await waitForStatus(session.id, 'awaiting_payment');
    expect(mailsFor(session.id)).toHaveLength(0);

    emulator.put({ ...session, paymentStatus: 'paid' });
    expect((await postWebhook(url, eventPayload('checkout.session.async_payment_succeeded', session.id))).status).toBe(200);

    await waitForStatus(session.id, 'fulfilled');
    await eventually(async () => mailsFor(session.id).length, (n) => n === 1);
    expect(mailsFor(session.id)).toHaveLength(1);
  });

  test('when a delayed payment fails, then nothing is fulfilled and the customer gets the failure email', async () => {
    const session = emulatedSession({ paymentStatus: 'unpaid' });
    emulator.put(session);

    await postWebhook(url, eventPayload('checkout.session.completed', session.id));
    await waitForStatus(session.id, 'awaiting_payment');
    const failure = eventPayload('checkout.session.async_payment_failed', session.id);
    emulator.putEvent(JSON.parse(failure) as Record<string, unknown>); // sent by Stripe: the workflow reads it back before deciding
    expect((await postWebhook(url, failure)).status).toBe(200);

    await waitForStatus(session.id, 'payment_failed');
    await eventually(async () => mailsFor(session.id, 'payment_failed').length, (n) => n === 1);
    expect(mailsFor(session.id, 'payment_failed')).toHaveLength(1);
    expect(mailsFor(session.id)).toHaveLength(0);
    expect(await stack.services.store.getFulfillments(session.id)).toHaveLength(0);
  });

  test('when the same event is delivered five times at once, then every delivery is acknowledged and it is fulfilled once', async () => {
    const session = emulatedSession();
    emulator.put(session);
    const payload = eventPayload('checkout.session.completed', session.id, `evt_dup_${session.id}`);

    const responses = await Promise.all(Array.from({ length: 5 }, () => postWebhook(url, payload)));

    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    await waitForStatus(session.id, 'fulfilled');
    await env.client.workflow.getHandle(session.id).result(); // the execution has closed
    // Redelivered after completion: still 2xx, and nothing runs again.
    const late = await postWebhook(url, payload);
    expect(late.status).toBe(200);
    expect(late.body.delivery).toBe('already_settled');
    await eventually(async () => mailsFor(session.id).length, (n) => n >= 1);
    expect(mailsFor(session.id)).toHaveLength(1);
    expect(await stack.services.store.getFulfillments(session.id)).toHaveLength(2);
    expect(await eventually(() => executionsOf(session.id), (n) => n === 1)).toBe(1);
  });

  test('when async_payment_succeeded arrives before completed, then it is fulfilled once', async () => {
    const session = emulatedSession();
    emulator.put(session);

    expect((await postWebhook(url, eventPayload('checkout.session.async_payment_succeeded', session.id))).status).toBe(200);
    await waitForStatus(session.id, 'fulfilled');
    expect((await postWebhook(url, eventPayload('checkout.session.completed', session.id))).status).toBe(200);

    await eventually(async () => mailsFor(session.id).length, (n) => n >= 1);
    expect(mailsFor(session.id)).toHaveLength(1);
    expect(await stack.services.store.getFulfillments(session.id)).toHaveLength(2);
  });

  test('when an event is signed with the rotated secret, then it is accepted too', async () => {
    const session = emulatedSession();
    emulator.put(session);
    const response = await postWebhook(url, eventPayload('checkout.session.completed', session.id), { secret: ROTATED_SECRET });
    expect(response.status).toBe(200);
    await waitForStatus(session.id, 'fulfilled');
  });

  test('when an event type we do not handle arrives, then it is acknowledged and ignored', async () => {
    const response = await postWebhook(url, eventPayload('payment_intent.created', newSessionId()));
    expect(response.status).toBe(200);
    expect(response.body.ignored).toBe(true);
  });

  test.each([
    ['source.chargeable', { id: 'src_1legacy', object: 'source', status: 'chargeable' }],
    ['source.canceled', { id: 'src_2legacy', object: 'source', status: 'canceled' }],
    ['source.failed', { id: 'src_3legacy', object: 'source', status: 'failed' }],
    ['charge.succeeded', { id: 'ch_1legacy', object: 'charge', source: { id: 'src_1legacy', object: 'source' } }],
    ['charge.failed', { id: 'ch_2legacy', object: 'charge', source: { id: 'src_2legacy', object: 'source' } }],
  ])('when a legacy Sources event %s arrives, then it is acknowledged, starts nothing and logs where the migration guide is', async (type, object) => {
    // Only what starts from now on: visibility may still be catching up with earlier tests' starts.
    const startedSince = `WorkflowType = "fulfillCheckout" AND StartTime >= "${new Date().toISOString()}"`;
    const payload = stripeEventPayload(type, object);
    const eventId = (JSON.parse(payload) as { id: string }).id;
    const response = await postWebhook(url, payload);
    expect(response.status).toBe(200);
    expect(response.body).toEqual(expect.objectContaining({ ignored: true, reason: expect.stringMatching(/Migrating from the Sources API/) }));
    const line = stack.logger.entries.find((entry) => entry.meta?.eventId === eventId);
    expect(line).toEqual(expect.objectContaining({ level: 'warn', message: expect.stringMatching(/legacy Sources event.*README, "Migrating from the Sources API"/) }));
    expect(await env.client.workflow.count(startedSince).then((r) => r.count)).toBe(0);
  });

  test('when a Checkout payment’s own charge.succeeded arrives, then it is ignored quietly, not taken for a Sources charge', async () => {
    const payload = stripeEventPayload('charge.succeeded', { id: 'ch_1checkout', object: 'charge', source: null, payment_intent: 'pi_1checkout' });
    const eventId = (JSON.parse(payload) as { id: string }).id;
    const response = await postWebhook(url, payload);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ received: true, ignored: true });
    expect(stack.logger.entries.find((entry) => entry.meta?.eventId === eventId)?.level).toBe('debug');
  });

  test('when an abandoned session expires and no workflow ever started, then nothing is started', async () => {
    const sessionId = newSessionId();
    const response = await postWebhook(url, eventPayload('checkout.session.expired', sessionId));
    expect(response.status).toBe(200);
    expect(response.body.delivery).toBe('no_workflow');
    expect(await hasWorkflow(sessionId)).toBe(false);
  });

  test('when an open session the landing page started expires, then the workflow ends expired', async () => {
    const session = emulatedSession({ status: 'open', paymentStatus: 'unpaid' });
    emulator.put(session);
    const page = await fetch(`${url}/after-checkout?session_id=${session.id}`);
    expect(page.status).toBe(200);
    await waitForStatus(session.id, 'awaiting_checkout');

    emulator.put({ ...session, status: 'expired' });
    expect((await postWebhook(url, eventPayload('checkout.session.expired', session.id))).status).toBe(200);
    await waitForStatus(session.id, 'expired');
  });

  test('when a delayed payment succeeds after the run stopped waiting, then the event is accepted and the order fulfilled', async () => {
    const session = emulatedSession({ paymentStatus: 'unpaid' });
    emulator.put(session);
    // A run whose payment deadline has passed: it ends still awaiting_payment, without a verdict.
    const stopped = await env.client.workflow.start('fulfillCheckout', {
      taskQueue: 'fulfillment',
      workflowId: session.id,
      args: [{ sessionId: session.id, paymentDeadline: '1 second' }],
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    });
    expect(((await stopped.result()) as { status: string }).status).toBe('awaiting_payment');
    expect((await statusOf(session.id)).body).toEqual(expect.objectContaining({ status: 'awaiting_payment', reason: expect.stringMatching(/^stopped waiting/) }));

    emulator.put({ ...session, paymentStatus: 'paid' });
    const late = await postWebhook(url, eventPayload('checkout.session.async_payment_succeeded', session.id));

    expect(late.status).toBe(200);
    expect(late.body.delivery).toBe('accepted');
    await waitForStatus(session.id, 'fulfilled');
    await eventually(async () => mailsFor(session.id).length, (n) => n === 1);
    expect(mailsFor(session.id)).toHaveLength(1);
    expect(await stack.services.store.getFulfillments(session.id)).toHaveLength(2);
  });

  test('when Stripe refuses the API key for a while, then the session shows paused and is fulfilled once the key works again', async () => {
    const session = emulatedSession();
    emulator.put(session);
    emulator.failNext(401, 3); // the first read and two of the paused retries

    expect((await postWebhook(url, eventPayload('checkout.session.completed', session.id))).status).toBe(200);
    // The reason as it was while paused: a second read may already find the session resumed.
    const paused = await waitForStatus(session.id, 'paused');
    expect(paused.reason).toMatch(/^paused: Stripe refused the API key/);

    await waitForStatus(session.id, 'fulfilled');
    expect((await stack.services.store.getHistory(session.id)).map((entry) => entry.status)).toEqual([
      'received',
      'paused',
      'fulfilling',
      'fulfilled',
    ]);
  });

  describe('signed but malformed events are refused with 400, never 5xx, and start nothing', () => {
    const signedBodies: [string, (sessionId: string) => string][] = [
      ['a body of null', () => 'null'],
      ['an array', () => '[]'],
      ['an event without data', (id) => JSON.stringify({ id: `evt_${id}`, object: 'event', type: 'checkout.session.completed', livemode: false })],
      [
        'an event whose data.object is null',
        (id) => JSON.stringify({ id: `evt_${id}`, object: 'event', type: 'checkout.session.completed', livemode: false, data: { object: null } }),
      ],
      [
        'an event without livemode',
        (id) => JSON.stringify({ id: `evt_${id}`, object: 'event', type: 'checkout.session.completed', data: { object: { id } } }),
      ],
    ];
    test.each(signedBodies)('when the signed body is %s, then it answers 400', async (_name, body) => {
      const session = emulatedSession();
      emulator.put(session);
      const response = await postWebhook(url, body(session.id));
      expect(response.status).toBe(400);
      expect(String(response.body.error)).toMatch(/malformed event/);
      expect(await hasWorkflow(session.id)).toBe(false);
    });
  });

  test('when a live-mode event reaches a test-mode key, then it starts nothing, is refused and logged at error level', async () => {
    const session = emulatedSession();
    emulator.put(session);
    const payload = eventPayload('checkout.session.completed', session.id).replace('"livemode":false', '"livemode":true');
    const eventId = (JSON.parse(payload) as { id: string }).id;

    const response = await postWebhook(url, payload);

    expect(response.status).toBe(400);
    expect(String(response.body.error)).toMatch(/livemode=true does not match/);
    expect(await hasWorkflow(session.id)).toBe(false);
    expect((await statusOf(session.id)).status).toBe(404);
    expect(stack.logger.entries).toContainEqual(expect.objectContaining({ level: 'error', meta: expect.objectContaining({ eventId }) }));
  });

  describe('bad input is refused and starts nothing', () => {
    const completed = (id: string) => eventPayload('checkout.session.completed', id);
    const cases: [string, number, RegExp, (sessionId: string) => Promise<{ status: number; body: Record<string, unknown> }>][] = [
      ['no Stripe-Signature', 400, /missing Stripe-Signature/, (id) => postWebhook(url, completed(id), { header: null })],
      ['a signature from another secret', 400, /does not match/, (id) => postWebhook(url, completed(id), { secret: 'whsec_wrong' })],
      ['a stale signature', 400, /stale/, (id) => postWebhook(url, completed(id), { timestamp: Math.floor(Date.now() / 1000) - 3600 })],
      ['a malformed signature header', 400, /malformed/, (id) => postWebhook(url, completed(id), { header: 'garbage' })],
      ['a signed body that is not JSON', 400, /not valid JSON/, () => postWebhook(url, 'not json at all')],
      [
        'a body over 1 MB',
        413,
        /larger than/,
        (id) => postWebhook(url, completed(id).replace('"livemode"', `"padding":"${'x'.repeat(1_100_000)}","livemode"`)),
      ],
    ];

    test.each(cases)('when the webhook has %s, then it answers %i', async (_name, status, message, send) => {
      const session = emulatedSession();
      emulator.put(session);
      const response = await send(session.id);
      expect(response.status).toBe(status);
      expect(String(response.body.error)).toMatch(message);
      expect(await hasWorkflow(session.id)).toBe(false);
      expect((await statusOf(session.id)).status).toBe(404);
    });
  });
});

describe('landing page', () => {
  test('when the customer lands while the webhook arrives, then there is one workflow, one fulfillment and one email', async () => {
    const session = emulatedSession();
    emulator.put(session);

    const [page, hook] = await Promise.all([
      fetch(`${url}/after-checkout?session_id=${session.id}`),
      postWebhook(url, eventPayload('checkout.session.completed', session.id)),
    ]);

    expect(hook.status).toBe(200);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('Your order is complete');
    expect(html).toContain('2 × T-shirt');
    expect(page.headers.get('content-security-policy')).toMatch(/script-src 'self' 'nonce-/);
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    await eventually(async () => mailsFor(session.id).length, (n) => n >= 1);
    expect(mailsFor(session.id)).toHaveLength(1);
    expect(await stack.services.store.getFulfillments(session.id)).toHaveLength(2);
    expect(await eventually(() => executionsOf(session.id), (n) => n === 1)).toBe(1);
  });

  test('when a delayed payment is pending, then the page says order received, awaiting payment confirmation', async () => {
    const session = emulatedSession({ paymentStatus: 'unpaid' });
    emulator.put(session);
    const html = await (await fetch(`${url}/after-checkout?session_id=${session.id}`)).text();
    expect(html).toContain('Order received, awaiting payment confirmation');
    expect(html).toContain('We will email you');
  });

  test('when the session is still open, then the page shows a pending message and polls a bounded number of times', async () => {
    const session = emulatedSession({ status: 'open', paymentStatus: 'unpaid' });
    emulator.put(session);
    const page = await fetch(`${url}/after-checkout?session_id=${session.id}`);
    const html = await page.text();
    expect(html).toContain('We are processing your order');
    expect(html).toMatch(/if \(polls < 15\)/);
    const nonce = /'nonce-([^']+)'/.exec(page.headers.get('content-security-policy') ?? '')?.[1];
    expect(html).toContain(`<script nonce="${nonce}">`);
  });

  test('when names contain HTML, then every value shown is escaped', async () => {
    const session = emulatedSession();
    session.lineItems[0]!.description = '<img src=x onerror=alert(1)>';
    emulator.put(session);
    const html = await (await fetch(`${url}/after-checkout?session_id=${session.id}`)).text();
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(html).not.toContain('<img src=x');
  });

  test.each([
    ['missing', ''],
    ['malformed', '?session_id=cs_test_<script>'],
    ['not a Checkout Session', '?session_id=pi_123'],
  ])('when session_id is %s, then a 400 page is shown', async (_name, query) => {
    const page = await fetch(`${url}/after-checkout${query}`);
    expect(page.status).toBe(400);
    const html = await page.text();
    expect(html).toContain('Missing order reference');
    expect(html).not.toContain('<script>');
  });

  test('when Stripe does not know the session, then a 404 page is shown and no fulfillment is started', async () => {
    const sessionId = newSessionId();
    const page = await fetch(`${url}/after-checkout?session_id=${sessionId}`);
    expect(page.status).toBe(404);
    expect(await page.text()).toContain('Order not found');
    expect(await hasWorkflow(sessionId)).toBe(false);
    expect((await statusOf(sessionId)).status).toBe(404);
  });

  test('when the landing page asks Stripe whether a session exists, then the ingress reads it once itself and leaves no checkSession execution', async () => {
    const session = emulatedSession({ paymentStatus: 'unpaid' });
    emulator.put(session);
    const before = emulator.requests.length;
    expect((await fetch(`${url}/after-checkout?session_id=${session.id}`)).status).toBe(200);

    // The check is one plain read of the session (the workflow's own read expands its line items).
    expect(emulator.requests.slice(before).filter((request) => request === `GET /v1/checkout/sessions/${session.id}`)).toHaveLength(1);
    expect(await hasWorkflow(`check-${session.id}`)).toBe(false);
  });

  test('when a link scanner sends HEAD, then it gets 200 and nothing is started or read', async () => {
    const session = emulatedSession();
    emulator.put(session);
    const requestsBefore = emulator.requests.length;
    const head = await fetch(`${url}/after-checkout?session_id=${session.id}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await hasWorkflow(session.id)).toBe(false);
    expect(await hasWorkflow(`check-${session.id}`)).toBe(false);
    expect(emulator.requests.length).toBe(requestsBefore);
  });
});

describe('status API and health', () => {
  test('when the session is unknown or malformed, then 404 or 400', async () => {
    expect((await statusOf(newSessionId())).status).toBe(404);
    expect((await fetch(`${url}/api/fulfillments/not-a-session`)).status).toBe(400);
  });

  test('when a session is fulfilled, then the status API shows status and items but no personal data', async () => {
    const session = emulatedSession();
    emulator.put(session);
    await postWebhook(url, eventPayload('checkout.session.completed', session.id));
    const body = await waitForStatus(session.id, 'fulfilled');
    expect(body).toEqual(
      expect.objectContaining({ sessionId: session.id, status: 'fulfilled', paymentStatus: 'paid', amountTotal: 4500, currency: 'usd' }),
    );
    expect(typeof body.updatedAt).toBe('string');
    expect(JSON.stringify(body)).not.toContain('jenny@example.com');
    expect(JSON.stringify(body)).not.toContain('Jenny Rosen');
  });

  test('when everything is up, then /healthz and /readyz answer 200', async () => {
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, checks: { temporal: 'ok', database: 'ok' } });
  });

  test('when a dependency is down or hangs, then /readyz answers 503 naming it, and the detail goes only to the log', async () => {
    const app = await listen(
      createIngressApp(
        ingressDeps({
          readiness: {
            temporal: () => new Promise(() => undefined), // never answers
            database: async () => {
              throw new Error('connect ECONNREFUSED 10.20.30.40:5432');
            },
          },
        }),
      ),
      0,
    );
    try {
      const response = await fetch(`${app.url}/readyz`);
      const text = await response.text();
      expect(response.status).toBe(503);
      expect(JSON.parse(text)).toEqual({ ready: false, checks: { temporal: 'unavailable', database: 'unavailable' } });
      expect(text).not.toContain('10.20.30.40');
      expect(stack.logger.entries).toContainEqual(
        expect.objectContaining({ message: 'Readiness check failed', meta: { check: 'database', error: 'connect ECONNREFUSED 10.20.30.40:5432' } }),
      );
    } finally {
      await app.close();
    }
  });

  test.each([
    ['trusted (TRUST_PROXY=loopback)', ['loopback'], [404, 404, 404, 404]],
    ['not trusted (TRUST_PROXY=false)', false, [404, 404, 429, 429]],
  ] as const)('when the proxy is %s, then clients behind it get their own rate-limit buckets or share one', async (_name, trustProxy, expected) => {
    const behindProxy = await listen(createIngressApp(ingressDeps({ trustProxy: trustProxy as IngressDeps['trustProxy'], rateLimitPerMinute: 2 })), 0);
    try {
      const statuses = [];
      for (const client of ['203.0.113.1', '203.0.113.2']) {
        for (let i = 0; i < 2; i++) {
          const response = await fetch(`${behindProxy.url}/api/fulfillments/${newSessionId()}`, { headers: { 'x-forwarded-for': client } });
          statuses.push(response.status);
        }
      }
      expect(statuses).toEqual(expected);
    } finally {
      await behindProxy.close();
    }
  });

  test('when a client exceeds the rate limit, then it gets 429', async () => {
    const limited = await listen(
      createIngressApp({
        ...ingressDeps(),
        rateLimitPerMinute: 3,
      }),
      0,
    );
    try {
      const statuses = [];
      for (let i = 0; i < 5; i++) statuses.push((await fetch(`${limited.url}/api/fulfillments/${newSessionId()}`)).status);
      expect(statuses).toEqual([404, 404, 404, 429, 429]);
    } finally {
      await limited.close();
    }
  });
});

