import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createFulfillmentWorkers } from '../../src/temporal/worker';
import type { Activities } from '../../activities';
import { registerSearchAttributes } from '../../src/temporal/search-attributes';
import {
  checkoutEventSignal,
  fulfillmentQuery,
  receivedView,
  type CheckoutEvent,
  type FulfillCheckoutInput,
  type SessionSummary,
} from '../../workflows/definitions';
import { fulfillCheckout } from '../../workflows';
import { fakeActivities } from '../helpers/fake-activities';
import { bundleWorkflows, createTimeSkippingEnv } from '../helpers/temporal-env';
import { session } from '../fixtures/sessions';

const taskQueue = 'fulfillment-test';
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  [env, bundle] = await Promise.all([createTimeSkippingEnv(), bundleWorkflows(require.resolve('../../workflows'))]);
  await registerSearchAttributes(env.connection, 'default');
});

afterAll(async () => {
  await env?.teardown();
});

/** The product's own pair of workers (workflows, and the rate-limited Stripe queue) around `fn`. */
async function withWorker<T>(activities: Activities, fn: () => Promise<T>): Promise<T> {
  const [main, stripe] = await createFulfillmentWorkers({
    connection: env.nativeConnection,
    namespace: 'default',
    taskQueue,
    activities,
    stripeReadsPerSecond: 100,
    workflowBundle: bundle,
  });
  return main!.runUntil(stripe!.runUntil(fn));
}

function start(input: FulfillCheckoutInput, signal?: CheckoutEvent) {
  const options = { taskQueue, workflowId: input.sessionId, args: [input] as [FulfillCheckoutInput] };
  return signal
    ? env.client.workflow.signalWithStart(fulfillCheckout, { ...options, signal: checkoutEventSignal, signalArgs: [signal] })
    : env.client.workflow.start(fulfillCheckout, options);
}

const succeeded = (id = 'evt_succeeded'): CheckoutEvent => ({ id, type: 'checkout.session.async_payment_succeeded' });
const failed = (id = 'evt_failed'): CheckoutEvent => ({ id, type: 'checkout.session.async_payment_failed' });

/** The test server's clock runs ahead of the wall clock once tests skip time: session times must follow it. */
async function serverNowSeconds(plusSeconds = 0): Promise<number> {
  return Math.floor((await env.currentTimeMs()) / 1000) + plusSeconds;
}

/** A Stripe whose session the test can change between calls. */
function stripeWith(initial: SessionSummary) {
  const stripe = { session: initial, current: () => stripe.session };
  return stripe;
}

describe('fulfillCheckout', () => {
  test('when the session is paid, then every line item is fulfilled once and one receipt is sent', async () => {
    const paid = session();
    const { activities, calls } = fakeActivities(stripeWith(paid));

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id })).result());

    expect(result.status).toBe('fulfilled');
    expect(result.fulfilled.map((item) => item.description)).toEqual(['T-shirt', 'Sticker pack']);
    expect(result.receiptSent).toBe(true);
    expect(result.amountTotal).toBe(4500);
    expect(calls.fulfillLineItems).toHaveLength(1);
    expect(calls.fulfillLineItems[0]!.lineItems).toHaveLength(2);
    expect(calls.emailReceipt).toHaveLength(1);
    expect(calls.emailPaymentFailed).toHaveLength(0);
    expect(calls.statuses).toEqual(['received', 'fulfilling', 'fulfilled']);
  });

  test('when the session is retrieved, then it runs on the rate-limited Stripe task queue', async () => {
    const paid = session();
    const { activities } = fakeActivities(stripeWith(paid));

    const history = await withWorker(activities, async () => {
      const handle = await start({ sessionId: paid.id });
      await handle.result();
      return handle.fetchHistory();
    });

    const scheduled = (history.events ?? [])
      .map((event) => event.activityTaskScheduledEventAttributes)
      .filter((attributes) => attributes != null)
      .map((attributes) => [attributes.activityType?.name, attributes.taskQueue?.name]);
    expect(scheduled).toContainEqual(['retrieveSession', `${taskQueue}-stripe`]);
    expect(scheduled).toContainEqual(['fulfillLineItems', taskQueue]);
  });

  test('when no payment is required, then it is fulfilled at once', async () => {
    const free = session({ paymentStatus: 'no_payment_required', amountTotal: 0 });
    const { activities, calls } = fakeActivities(stripeWith(free));

    const result = await withWorker(activities, async () => (await start({ sessionId: free.id })).result());

    expect(result.status).toBe('fulfilled');
    expect(calls.fulfillLineItems).toHaveLength(1);
    expect(calls.emailReceipt).toHaveLength(1);
  });

  test('when a delayed payment succeeds three days later, then it waits awaiting_payment and fulfills on the signal', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const stripe = stripeWith(unpaid);
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => {
      const handle = await start({ sessionId: unpaid.id });
      await env.sleep('3 days');
      const waiting = await handle.query(fulfillmentQuery);
      expect(waiting.status).toBe('awaiting_payment');
      expect(waiting.lineItems).toHaveLength(2);
      expect(calls.fulfillLineItems).toHaveLength(0);

      const described = await handle.describe();
      expect(described.typedSearchAttributes.get({ name: 'FulfillmentStatus', type: 'KEYWORD' })).toBe('awaiting_payment');
      expect(described.typedSearchAttributes.get({ name: 'AmountTotal', type: 'INT' })).toBe(4500);

      stripe.session = { ...unpaid, paymentStatus: 'paid' };
      await handle.signal(checkoutEventSignal, succeeded());
      return handle.result();
    });

    expect(result.status).toBe('fulfilled');
    expect(result.eventIds).toEqual(['evt_succeeded']);
    expect(calls.fulfillLineItems).toHaveLength(1);
    expect(calls.emailReceipt).toHaveLength(1);
    expect(calls.statuses).toEqual(['received', 'awaiting_payment', 'fulfilling', 'fulfilled']);
  });

  test('when the delayed payment fails, then nothing is fulfilled and the customer is told', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const { activities, calls } = fakeActivities(stripeWith(unpaid));

    const result = await withWorker(activities, async () => {
      const handle = await start({ sessionId: unpaid.id });
      await env.sleep('1 day');
      await handle.signal(checkoutEventSignal, failed());
      return handle.result();
    });

    expect(result.status).toBe('payment_failed');
    expect(result.reason).toBe('the delayed payment failed');
    expect(calls.fulfillLineItems).toHaveLength(0);
    expect(calls.emailReceipt).toHaveLength(0);
    expect(calls.emailPaymentFailed).toHaveLength(1);
    expect(calls.statuses).toEqual(['received', 'awaiting_payment', 'payment_failed']);
  });

  test('when no payment arrives before the deadline, then it ends payment_failed after daily re-checks', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const { activities, calls } = fakeActivities(stripeWith(unpaid));

    const result = await withWorker(activities, async () => (await start({ sessionId: unpaid.id })).result());

    expect(result.status).toBe('payment_failed');
    expect(result.reason).toBe('no payment confirmation within 7 days');
    // The first read, then one a day for seven days.
    expect(calls.retrieveSession).toBe(8);
    expect(calls.fulfillLineItems).toHaveLength(0);
    expect(calls.emailPaymentFailed).toHaveLength(0);
  });

  test('when a re-check finds the session paid and no webhook ever came, then it is fulfilled', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const stripe = stripeWith(unpaid);
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => {
      const handle = await start({ sessionId: unpaid.id, paymentRecheckInterval: '1 day' });
      await env.sleep('30 hours'); // one re-check has passed, still unpaid
      expect((await handle.query(fulfillmentQuery)).status).toBe('awaiting_payment');
      stripe.session = { ...unpaid, paymentStatus: 'paid' };
      return handle.result();
    });

    expect(result.status).toBe('fulfilled');
    expect(result.eventIds).toEqual([]);
    expect(calls.retrieveSession).toBe(3);
    expect(calls.fulfillLineItems).toHaveLength(1);
  });

  test('when the session is still open, then it waits awaiting_checkout and fulfills once Checkout completes', async () => {
    const open = session({ status: 'open', paymentStatus: 'unpaid', expiresAt: await serverNowSeconds(24 * 3600) });
    const stripe = stripeWith(open);
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => {
      const handle = await start({ sessionId: open.id });
      await env.sleep('10 minutes');
      expect((await handle.query(fulfillmentQuery)).status).toBe('awaiting_checkout');
      stripe.session = { ...open, status: 'complete', paymentStatus: 'paid' };
      await handle.signal(checkoutEventSignal, { id: 'evt_completed', type: 'checkout.session.completed' });
      return handle.result();
    });

    expect(result.status).toBe('fulfilled');
    expect(calls.statuses).toEqual(['received', 'awaiting_checkout', 'fulfilling', 'fulfilled']);
  });

  test('when an open session expires, then it records expired and fulfills nothing', async () => {
    const open = session({ status: 'open', paymentStatus: 'unpaid', expiresAt: await serverNowSeconds(3600) });
    const stripe = stripeWith(open);
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => {
      const handle = await start({ sessionId: open.id });
      await env.sleep('30 minutes');
      expect((await handle.query(fulfillmentQuery)).status).toBe('awaiting_checkout');
      // Stripe expires it at `expires_at`; the next hourly re-check sees that.
      stripe.session = { ...open, status: 'expired' };
      return handle.result();
    });

    expect(result.status).toBe('expired');
    expect(result.reason).toBe('the Checkout Session expired before payment');
    expect(calls.fulfillLineItems).toHaveLength(0);
    expect(calls.emailReceipt).toHaveLength(0);
  });

  test('when the expired event arrives for an open session, then it ends expired without waiting for the re-check', async () => {
    const open = session({ status: 'open', paymentStatus: 'unpaid', expiresAt: await serverNowSeconds(24 * 3600) });
    const { activities, calls } = fakeActivities(stripeWith(open));

    const result = await withWorker(activities, async () => {
      const handle = await start({ sessionId: open.id });
      await handle.signal(checkoutEventSignal, { id: 'evt_expired', type: 'checkout.session.expired' });
      return handle.result();
    });

    expect(result.status).toBe('expired');
    expect(calls.fulfillLineItems).toHaveLength(0);
  });

  test('when the success event arrives before the workflow starts (signal-with-start), then it is not lost', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const { activities, calls } = fakeActivities(stripeWith(unpaid));

    const result = await withWorker(activities, async () => (await start({ sessionId: unpaid.id }, succeeded())).result());

    expect(result.status).toBe('fulfilled');
    expect(result.eventIds).toEqual(['evt_succeeded']);
    expect(calls.fulfillLineItems).toHaveLength(1);
    expect(calls.statuses).not.toContain('awaiting_payment');
  });

  test('when the failure event arrives first, then the session ends payment_failed', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const { activities, calls } = fakeActivities(stripeWith(unpaid));

    const result = await withWorker(activities, async () => (await start({ sessionId: unpaid.id }, failed())).result());

    expect(result.status).toBe('payment_failed');
    expect(calls.fulfillLineItems).toHaveLength(0);
    expect(calls.emailPaymentFailed).toHaveLength(1);
  });

  test('when the same event is delivered many times, then it is acted on once', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const stripe = stripeWith(unpaid);
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => {
      const handle = await start({ sessionId: unpaid.id }, succeeded('evt_1'));
      for (let i = 0; i < 4; i++) await handle.signal(checkoutEventSignal, succeeded('evt_1'));
      const view = await handle.result();
      // A signal after the end is rejected by Temporal: the execution is closed.
      await expect(handle.signal(checkoutEventSignal, succeeded('evt_1'))).rejects.toThrow();
      return view;
    });

    expect(result.status).toBe('fulfilled');
    expect(result.eventIds).toEqual(['evt_1']);
    expect(calls.fulfillLineItems).toHaveLength(1);
    expect(calls.emailReceipt).toHaveLength(1);
  });

  test('when retrieve-session fails twice with a transient error, then it is retried and the session fulfilled', async () => {
    const paid = session();
    const { activities, calls } = fakeActivities(stripeWith(paid));
    let attempts = 0;
    const flaky: Activities = {
      ...activities,
      async retrieveSession(sessionId) {
        attempts++;
        if (attempts <= 2) throw new Error('Stripe is unreachable (ECONNRESET)');
        return activities.retrieveSession(sessionId);
      },
    };

    const result = await withWorker(flaky, async () => (await start({ sessionId: paid.id })).result());

    expect(attempts).toBe(3);
    expect(result.status).toBe('fulfilled');
    expect(calls.fulfillLineItems).toHaveLength(1);
  });

  test('when the receipt cannot be sent even after all retries, then the session is still fulfilled and the reason recorded', async () => {
    const paid = session();
    const { activities, calls } = fakeActivities(stripeWith(paid));
    let attempts = 0;
    const smtpDown: Activities = {
      ...activities,
      async emailReceipt() {
        attempts++;
        throw new Error('connect ECONNREFUSED 127.0.0.1:25');
      },
    };

    const result = await withWorker(smtpDown, async () => (await start({ sessionId: paid.id })).result());

    expect(attempts).toBe(25);
    expect(result.status).toBe('fulfilled');
    expect(result.receiptSent).toBe(false);
    expect(result.reason).toBe('the receipt email could not be sent');
    expect(calls.fulfillLineItems).toHaveLength(1);
  });

  test('when the session has no customer email, then it is fulfilled and no receipt is claimed', async () => {
    const paid = session({ customerEmail: null });
    const { activities } = fakeActivities(stripeWith(paid));
    const noEmail: Activities = { ...activities, emailReceipt: async () => ({ sent: false }) };

    const result = await withWorker(noEmail, async () => (await start({ sessionId: paid.id })).result());

    expect(result.status).toBe('fulfilled');
    expect(result.receiptSent).toBe(false);
  });

  test('when Stripe does not know the session (non-retryable), then it ends failed with the reason and fulfills nothing', async () => {
    const paid = session();
    const { activities, calls } = fakeActivities(stripeWith(paid));
    let attempts = 0;
    const missing: Activities = {
      ...activities,
      async retrieveSession(sessionId) {
        attempts++;
        throw ApplicationFailure.nonRetryable(`Stripe does not know Checkout Session ${sessionId}`, 'SessionNotFound');
      },
    };

    const error = await withWorker(missing, async () => (await start({ sessionId: paid.id })).result().catch((e: unknown) => e));

    // The execution fails (operators see it as Failed), with the cause's type to filter on.
    expect(error).toBeInstanceOf(WorkflowFailedError);
    const cause = (error as WorkflowFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).toBe('SessionNotFound');
    expect(cause?.message).toBe(`SessionNotFound: Stripe does not know Checkout Session ${paid.id}`);
    expect(attempts).toBe(1);
    expect(calls.fulfillLineItems).toHaveLength(0);
    expect(calls.statuses).toEqual(['received', 'failed']);
  });

  test('when the record says failed (the cause since fixed), then a new execution processes the session', async () => {
    const paid = session();
    const recorded = { ...receivedView(paid.id), status: 'failed' as const, reason: 'StripeAuthentication: Stripe refused the API key' };
    const { activities, calls } = fakeActivities(stripeWith(paid), recorded);

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id })).result());

    expect(result.status).toBe('fulfilled');
    expect(calls.fulfillLineItems).toHaveLength(1);
  });

  test('when the record already says fulfilled (a late duplicate after retention), then nothing is done again', async () => {
    const paid = session();
    const recorded = {
      sessionId: paid.id,
      status: 'fulfilled' as const,
      paymentStatus: 'paid' as const,
      currency: 'usd',
      amountTotal: 4500,
      lineItems: [],
      fulfilled: [{ lineItemId: 'li_1', description: 'T-shirt', quantity: 2 }],
      receiptSent: true,
      reason: null,
      eventIds: ['evt_old'],
    };
    const { activities, calls } = fakeActivities(stripeWith(paid), recorded);

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id })).result());

    expect(result.status).toBe('fulfilled');
    expect(result.fulfilled).toEqual(recorded.fulfilled);
    expect(calls.retrieveSession).toBe(0);
    expect(calls.fulfillLineItems).toHaveLength(0);
    expect(calls.emailReceipt).toHaveLength(0);
    expect(calls.statuses).toEqual([]);
  });
});
