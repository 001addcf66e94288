import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { stockFulfiller, type Fulfiller } from '../../src/fulfillment/fulfiller';
import { createIngressApp, listen } from '../../src/ingress/app';
import { createMemoryLogger } from '../../src/logger';
import { paymentIntentOf, type EmulatedPaymentIntent, type StripeEmulator } from '../../src/stripe/emulator';
import { stripeEventPayload } from '../../src/stripe/signed-events';
import { ensureReconcilerSchedule, TURNED_OFF_NOTE } from '../../src/temporal/reconciler-schedule';
import type { FulfillmentStarter } from '../../src/temporal/fulfillment-starter';
import { RECONCILER_SCHEDULE_ID, receivedView, type FulfillmentStatus, type ReconcileReport } from '../../workflows/definitions';
import { reconcile } from '../../workflows';
import { eventually } from '../helpers/eventually';
import { placePaymentIntentOrder as placeOrder } from '../helpers/orders';
import { emulatedSession, eventPayload, postWebhook, startProduct, WEBHOOK_SECRET, type TestStack } from '../helpers/stack';

// Second chances on the real servers (dev server, worker, ingress, PGlite, SMTP, the emulator):
// the reconciler, the stuck sweep, the webhook path and redrive never reopen an order an operator
// stopped or one that failed, always drive an order through its own kind's workflow, and find
// what Stripe changed whatever its age.
let product: Awaited<ReturnType<typeof startProduct>>;
let env: TestWorkflowEnvironment;
let emulator: StripeEmulator;
let stack: TestStack;
let url: string;

// The merchant's fulfiller gives up on a discontinued product.
const merchantFulfiller: Fulfiller = {
  async fulfillLineItem(order, tx) {
    if (order.lineItem.productId?.startsWith('prod_discontinued')) throw ApplicationFailure.nonRetryable(`${order.lineItem.productId} is discontinued`, 'OutOfStock');
    await stockFulfiller.fulfillLineItem(order, tx);
  },
  reverseLineItem: stockFulfiller.reverseLineItem,
};

beforeAll(async () => {
  product = await startProduct({ RECONCILE_EVERY: '1 hour' }, { fulfiller: merchantFulfiller });
  ({ env, emulator, stack } = product);
  url = stack.ingress!.url;
}, 120_000);

afterAll(async () => {
  await product?.stop();
});

async function reconcileNow(): Promise<ReconcileReport> {
  return env.client.workflow.execute(reconcile, {
    taskQueue: 'fulfillment',
    workflowId: `reconcile-test-${Date.now()}-${Math.random().toString(36).slice(2)}`,
    args: [{ lookback: '3 days', stuckAfter: '1 hour' }],
  });
}

const statusOf = async (id: string) => (await stack.services.store.getRecord(id))?.view.status;
const historyOf = async (id: string) => (await stack.services.store.getHistory(id)).map((entry) => entry.status);
const waitForStatus = (id: string, status: FulfillmentStatus) => eventually(() => statusOf(id), (s) => s === status, { timeoutMs: 60_000, intervalMs: 200 });

const placePaymentIntentOrder = (intent: Partial<EmulatedPaymentIntent> = {}) => placeOrder(product, { intent });

describe('the reconciler and operator actions', () => {
  test('when the fulfiller gave up, then neither a reconciler pass nor a redelivered webhook runs the order again', async () => {
    const session = emulatedSession();
    session.lineItems[1]!.productId = `prod_discontinued_${session.id}`;
    emulator.put(session);
    await postWebhook(url, eventPayload('checkout.session.completed', session.id));
    await waitForStatus(session.id, 'failed');
    const before = await historyOf(session.id);
    expect(before).toEqual(['received', 'fulfilling', 'failed']);

    await reconcileNow();
    const redelivered = await postWebhook(url, eventPayload('checkout.session.completed', session.id));

    expect(redelivered.status).toBe(200);
    expect(redelivered.body.delivery).toBe('stopped');
    expect(await historyOf(session.id)).toEqual(before); // today's main: received, fulfilling, failed again
  });

  test('when an operator cancels an order, then the reconciler and the webhooks never fulfill it; `npm run redrive` does, once', async () => {
    const session = emulatedSession({ paymentStatus: 'unpaid' });
    emulator.put(session);
    await postWebhook(url, eventPayload('checkout.session.completed', session.id));
    await waitForStatus(session.id, 'awaiting_payment');
    await env.client.workflow.getHandle(session.id).cancel(); // stopped for fraud, in the Temporal UI
    await waitForStatus(session.id, 'failed');
    expect((await stack.services.store.getRecord(session.id))?.view.reason).toBe('canceled by an operator');

    emulator.put({ ...session, paymentStatus: 'paid' }); // the payment went through after all
    const report = await reconcileNow();
    const webhook = await postWebhook(url, eventPayload('checkout.session.async_payment_succeeded', session.id));
    const landing = await fetch(`${url}/after-checkout?session_id=${session.id}`);

    expect(report.settled).toBeGreaterThanOrEqual(1);
    expect(webhook.body.delivery).toBe('stopped');
    expect(landing.status).toBe(200);
    expect(await statusOf(session.id)).toBe('failed');
    expect(await stack.services.store.getFulfillments(session.id)).toHaveLength(0);

    const { stdout } = await promisify(execFile)('npx', ['tsx', 'scripts/redrive.ts', session.id], {
      env: { ...process.env, TEMPORAL_ADDRESS: env.address, TEMPORAL_TASK_QUEUE: 'fulfillment', PAYLOAD_ENCRYPTION: 'off' },
    });
    expect(stdout).toContain(`${session.id}: running`);
    await waitForStatus(session.id, 'fulfilled');
    expect(await stack.services.store.getFulfillments(session.id)).toHaveLength(2);
  });

  test('when an order paid by PaymentIntent is stuck mid-fulfillment, then the sweep re-drives it as fulfillPaymentIntent and it is fulfilled', async () => {
    const { paymentIntent } = await placePaymentIntentOrder({ created: 0 }); // outside the look-back: only the sweep finds it
    await stack.services.store.recordStatus(
      { ...receivedView(paymentIntent.id), status: 'fulfilling', paymentStatus: 'paid', mode: 'payment', currency: 'eur', amountTotal: 3000, paymentIntentId: paymentIntent.id },
      { runId: 'terminated-run', runStartedAt: 1, seq: 1 },
    );
    await stack.services.db.query(`UPDATE checkout_sessions SET updated_at = now() - interval '2 hours' WHERE session_id = $1`, [paymentIntent.id]);

    const report = await reconcileNow();

    expect(report.stuckRedriven).toBe(1);
    await waitForStatus(paymentIntent.id, 'fulfilled');
    expect((await env.client.workflow.getHandle(paymentIntent.id).describe()).type).toBe('fulfillPaymentIntent');
    expect(await stack.services.store.getFulfillments(paymentIntent.id)).toHaveLength(2);
  });

  test('when an order paid by PaymentIntent never had its webhook delivered, then the reconciler finds and fulfills it', async () => {
    const { paymentIntent } = await placePaymentIntentOrder();
    const authorized = await placePaymentIntentOrder({ status: 'requires_capture', captureMethod: 'manual' });

    const report = await reconcileNow();

    expect(report.started).toBeGreaterThanOrEqual(2);
    await waitForStatus(paymentIntent.id, 'fulfilled');
    await waitForStatus(authorized.paymentIntent.id, 'fulfilled');
    expect(emulator.paymentIntents.get(authorized.paymentIntent.id)?.captures).toBe(1);
    expect((await reconcileNow()).started).toBe(0); // settled: nothing started again
  });

  test('when PaymentIntents nobody paid, or one a Checkout Session took, name an order, then the reconciler starts nothing for them', async () => {
    const unpaid = await placePaymentIntentOrder({ status: 'requires_payment_method' });
    const session = emulatedSession();
    emulator.put(session);
    await postWebhook(url, eventPayload('checkout.session.completed', session.id));
    await waitForStatus(session.id, 'fulfilled');
    // The merchant put order metadata on Checkout's own PaymentIntent too.
    emulator.putPaymentIntent({ id: paymentIntentOf(session)!, amount: 4500, currency: 'usd', status: 'succeeded', metadata: { order_id: 'order_of_the_session' } });

    await reconcileNow();
    await reconcileNow();

    for (const id of [unpaid.paymentIntent.id, paymentIntentOf(session)!]) {
      await expect(env.client.workflow.getHandle(id).describe()).rejects.toThrow(/not found/i); // today's main started them, every run
    }
  });

  test('when Stripe no longer knows a dispute our records hold open, then the run still completes and still re-drives stuck orders', async () => {
    const session = emulatedSession();
    emulator.put(session);
    const gone = { id: `dp_gone_${session.id.slice(8)}`, amount: 4500, currency: 'usd', status: 'needs_response', reason: 'fraudulent', outcome: 'open' as const, reversed: null };
    await stack.services.store.recordStatus(
      { ...receivedView(session.id), status: 'disputed', paymentStatus: 'paid', mode: 'payment', currency: 'usd', amountTotal: 4500, paymentIntentId: paymentIntentOf(session), disputes: [gone] },
      { runId: 'earlier-run', runStartedAt: 1, seq: 1 },
    );
    const stuck = emulatedSession({ created: 0 });
    emulator.put(stuck);
    await stack.services.store.recordStatus({ ...receivedView(stuck.id), status: 'received' }, { runId: 'terminated-run', runStartedAt: 1, seq: 1 });
    await stack.services.db.query(`UPDATE checkout_sessions SET updated_at = now() - interval '2 hours' WHERE session_id = $1`, [stuck.id]);

    const report = await reconcileNow(); // today's main: the run failed with "Stripe does not know Checkout Session dp_..."

    expect(report.failedPhases ?? []).toEqual([]);
    expect(report.stuckRedriven).toBe(1);
    await waitForStatus(stuck.id, 'fulfilled');
    expect(await statusOf(session.id)).toBe('disputed');
  });

  test('when a dispute opened ten days ago is lost and its webhook never came, then the reconciler acts on it', async () => {
    const session = emulatedSession();
    emulator.put(session);
    await postWebhook(url, eventPayload('checkout.session.completed', session.id));
    await waitForStatus(session.id, 'fulfilled');
    const disputeId = `dp_${session.id.slice(8)}`;
    const tenDaysAgo = Math.floor(Date.now() / 1000) - 10 * 86_400;
    const dispute = { id: disputeId, paymentIntentId: paymentIntentOf(session)!, amount: 4500, currency: 'usd', status: 'needs_response' as const, created: tenDaysAgo };
    emulator.putDispute(dispute);
    await postWebhook(url, stripeEventPayload('charge.dispute.created', { id: disputeId, object: 'dispute', payment_intent: dispute.paymentIntentId }));
    await waitForStatus(session.id, 'disputed');

    emulator.putDispute({ ...dispute, status: 'lost' }); // charge.dispute.closed is lost
    const report = await reconcileNow();

    expect(report.moneyBack).toBeGreaterThanOrEqual(1);
    await waitForStatus(session.id, 'dispute_lost');
  });

  test('when an operator pauses the reconciler schedule, then a worker start keeps it paused; only the pause RECONCILE_EVERY=off made is undone by it', async () => {
    const schedule = env.client.schedule.getHandle(RECONCILER_SCHEDULE_ID);
    const settings = { every: '1 hour', lookback: '3 days', stuckAfter: '1 hour', taskQueue: 'fulfillment' } as const;
    await schedule.pause('investigating a Stripe incident');

    expect(await ensureReconcilerSchedule(env.client, settings)).toBe('updated');
    expect((await schedule.describe()).state).toEqual(expect.objectContaining({ paused: true, note: 'investigating a Stripe incident' }));

    // Turned off and on again by configuration: the operator's pause is still theirs.
    expect(await ensureReconcilerSchedule(env.client, { ...settings, every: null })).toBe('paused');
    await ensureReconcilerSchedule(env.client, settings);
    expect((await schedule.describe()).state).toEqual(expect.objectContaining({ paused: true, note: 'investigating a Stripe incident' }));

    // Only the pause the setting made is undone by the setting.
    await schedule.unpause('incident over');
    expect(await ensureReconcilerSchedule(env.client, { ...settings, every: null })).toBe('paused');
    expect((await schedule.describe()).state).toEqual(expect.objectContaining({ paused: true, note: TURNED_OFF_NOTE }));
    await ensureReconcilerSchedule(env.client, settings);
    expect((await schedule.describe()).state.paused).toBe(false);
  });
});

describe('the webhook path', () => {
  test('when a signed webhook claims a payment failure Stripe never sent (a leaked secret), then it is acknowledged and decides nothing', async () => {
    const session = emulatedSession({ paymentStatus: 'unpaid' });
    emulator.put(session);
    await postWebhook(url, eventPayload('checkout.session.completed', session.id));
    await waitForStatus(session.id, 'awaiting_payment');

    const payload = eventPayload('checkout.session.async_payment_failed', session.id); // not among Stripe's events
    const forgedId = (JSON.parse(payload) as { id: string }).id;
    const forged = await postWebhook(url, payload);
    expect(forged.status).toBe(200);
    // The workflow asked Stripe for the event, and then read the session again: nothing was decided.
    await eventually(() => Promise.resolve(emulator.requests.findIndex((r) => r.startsWith(`GET /v1/events/${forgedId}`))), (i) => i >= 0, { timeoutMs: 30_000 });
    const asked = emulator.requests.findIndex((r) => r.startsWith(`GET /v1/events/${forgedId}`));
    await eventually(() => Promise.resolve(emulator.requests.slice(asked).some((r) => r.startsWith(`GET /v1/checkout/sessions/${session.id}`))), (read) => read, { timeoutMs: 30_000 });
    expect(await statusOf(session.id)).toBe('awaiting_payment');

    emulator.put({ ...session, paymentStatus: 'paid' });
    await postWebhook(url, eventPayload('checkout.session.async_payment_succeeded', session.id));
    await waitForStatus(session.id, 'fulfilled');
    expect(product.smtp.messages.filter((m) => m.parsed.messageId === `<payment_failed.${session.id}@shop.test>`)).toHaveLength(0);
  });

  test('when a signed thin event arrives, then it is refused with a 400 that names thin events, not a 500', async () => {
    const thin = JSON.stringify({ id: 'evt_thin_1', object: 'v2.core.event', type: 'v1.checkout.session.completed', livemode: false, created: new Date().toISOString(), related_object: { id: 'cs_test_thin', type: 'checkout.session', url: '/v1/checkout/sessions/cs_test_thin' } });
    const response = await postWebhook(url, thin);
    expect(response.status).toBe(400);
    expect(String(response.body.error)).toMatch(/thin event/);
  });

  test('when Temporal does not answer, then the webhook is answered 503 within its overall deadline', async () => {
    const hanging = { deliver: () => new Promise(() => undefined), notify: () => new Promise(() => undefined) } as unknown as FulfillmentStarter;
    const ingress = await listen(
      createIngressApp({
        starter: hanging,
        store: stack.services.store,
        stripe: stack.services.stripe,
        sessionCheck: stack.services.sessionCheck,
        webhookSecrets: [WEBHOOK_SECRET],
        livemode: false,
        trustProxy: false,
        readiness: { temporal: async () => undefined, database: async () => undefined },
        logger: createMemoryLogger(),
        metrics: stack.services.metrics,
        webhookDeadlineMs: 500,
      }),
      0,
    );
    try {
      const started = Date.now();
      const response = await postWebhook(ingress.url, eventPayload('checkout.session.completed', emulatedSession().id));
      expect(response.status).toBe(503);
      expect(Date.now() - started).toBeLessThan(5000); // the deadline, not a client timeout, answered it
    } finally {
      await ingress.close();
    }
  });
});
