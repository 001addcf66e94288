import { WorkflowNotFoundError } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createIngressApp, listen } from '../../src/ingress/app';
import { FulfillmentStarter } from '../../src/ingress/fulfillment-starter';
import { createStripeClient, parseStripeApiBase } from '../../src/stripe/sessions';
import { startStripeEmulator, type StripeEmulator } from '../../src/stripe/emulator';
import { SEARCH_ATTRIBUTE_KEYS, type FulfillmentStatus } from '../../workflows/definitions';
import { newSessionId } from '../fixtures/sessions';
import { eventually } from '../helpers/eventually';
import { startSmtpServer } from '../helpers/smtp-server';
import { emulatedSession, eventPayload, postWebhook, ROTATED_SECRET, startTestStack, WEBHOOK_SECRET } from '../helpers/stack';
import { bundleWorkflows, createDevServerEnv } from '../helpers/temporal-env';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let emulator: StripeEmulator;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let stack: Awaited<ReturnType<typeof startTestStack>>;
let url: string;

beforeAll(async () => {
  [env, bundle, emulator, smtp] = await Promise.all([
    createDevServerEnv({ searchAttributes: SEARCH_ATTRIBUTE_KEYS }),
    bundleWorkflows(require.resolve('../../workflows')),
    startStripeEmulator(),
    startSmtpServer(),
  ]);
  stack = await startTestStack(env, { emulatorUrl: emulator.url, smtpUrl: smtp.url, workflowBundle: bundle });
  url = stack.ingress!.url;
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await Promise.all([env?.teardown(), emulator?.close(), smtp?.stop()]);
});

async function statusOf(sessionId: string): Promise<{ status: number; body: { status?: FulfillmentStatus } & Record<string, unknown> }> {
  const response = await fetch(`${url}/api/fulfillments/${sessionId}`);
  return { status: response.status, body: (await response.json()) as { status?: FulfillmentStatus } };
}

async function waitForStatus(sessionId: string, status: FulfillmentStatus) {
  const seen = await eventually(
    () => statusOf(sessionId),
    (r) => r.body.status === status,
    { timeoutMs: 20_000 },
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
    expect((await postWebhook(url, eventPayload('checkout.session.async_payment_failed', session.id))).status).toBe(200);

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
    expect(late.body.delivery).toBe('already_closed');
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

  test('when Stripe does not know the session, then a 404 page is shown and no workflow is left', async () => {
    const sessionId = newSessionId();
    const page = await fetch(`${url}/after-checkout?session_id=${sessionId}`);
    expect(page.status).toBe(404);
    expect(await page.text()).toContain('Order not found');
    expect(await hasWorkflow(sessionId)).toBe(false);
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

  test('when a client exceeds the rate limit, then it gets 429', async () => {
    const limited = await listen(
      createIngressApp({
        starter: new FulfillmentStarter(stack.client, { taskQueue: 'fulfillment', paymentDeadline: '7 days', timeoutMs: 5000 }),
        store: stack.services.store,
        stripe: createStripeClient('sk_test_integration', parseStripeApiBase(emulator.url)),
        webhookSecrets: [WEBHOOK_SECRET],
        logger: stack.logger,
        readiness: { temporal: async () => undefined, database: async () => undefined },
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

