import { WorkflowFailedError, type WorkflowExecutionDescription, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Activities } from '../../activities';
import { registerSearchAttributes } from '../../src/temporal/search-attributes';
import {
  checkoutEventSignal,
  fulfillmentQuery,
  LANDING_WAKE_INTERVAL_MS,
  receivedView,
  type CheckoutEvent,
  type DisputeSummary,
  type FulfillCheckoutInput,
  type FulfillmentView,
  type MoneyBack,
  type OrderSummary,
  type PaymentIntentSummary,
  type RefundSummary,
  type SessionSummary,
} from '../../workflows/definitions';
import { fulfillCheckout, fulfillPaymentIntent } from '../../workflows';
import { FulfillmentStarter } from '../../src/temporal/fulfillment-starter';
import { eventually } from '../helpers/eventually';
import { fakeActivities } from '../helpers/fake-activities';
import { keepHistory } from '../helpers/histories';
import { stopTestWorkers, uniqueTaskQueue, withFulfillmentWorkers } from '../helpers/test-workers';
import { bundleWorkflows, createTimeSkippingEnv } from '../helpers/temporal-env';
import { session } from '../fixtures/sessions';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  [env, bundle] = await Promise.all([createTimeSkippingEnv(), bundleWorkflows(require.resolve('../../workflows'))]);
  await registerSearchAttributes(env.connection, 'default');
});

afterAll(async () => {
  await env?.teardown();
});

// Each test's own queue, so a test that overran cannot take the next one's tasks (test-workers.ts).
let taskQueue: string;
beforeEach(() => {
  taskQueue = uniqueTaskQueue('fulfillment-test');
});

/** The product's own pair of workers on this test's queue, around `fn`. */
function withWorker<T>(activities: Activities, fn: () => Promise<T>): Promise<T> {
  return withFulfillmentWorkers({ env, bundle, activities, taskQueue }, fn);
}

// The branches whose histories `npm run histories:record` keeps for the replay tests, by test name.
const RECORDED_BRANCHES: Record<string, string> = {
  'when the session is paid, then every line item is fulfilled once and one receipt is sent': 'paid',
  'when a delayed payment succeeds three days later, then it waits awaiting_payment and fulfills on the signal': 'delayed-then-succeeded',
  'when the delayed payment fails, then nothing is fulfilled and the customer is told': 'delayed-then-failed',
  'when the session is still open, then it waits awaiting_checkout and fulfills once Checkout completes': 'open-then-completed',
  'when an open session expires, then it records expired and fulfills nothing': 'expired',
  'when no payment arrives before the deadline, then it stops waiting without a verdict: still awaiting_payment': 'deadline-reached',
  'when Stripe refuses the API key, then the session is paused visibly and resumes by itself once the key is fixed': 'paused-then-resumed',
  'when the fulfiller gives up (non-retryable), then failed is recorded with its reason and the execution fails': 'fulfiller-gave-up',
  'when the record already says fulfilled (a late duplicate after retention), then nothing is done again': 'already-settled',
  'when a session waits so long its history grows large, then it continues as new with what it knew, loses no event and fulfills once': 'continued-as-new-last-run',
  'when the whole payment is refunded after fulfillment, then everything is reversed once, the customer is emailed once, and it records refunded': 'refunded-after-fulfillment',
  'when a refund arrives while the order is being fulfilled, then it waits for the fulfillment and reverses what was fulfilled': 'refund-while-fulfilling',
  'when a partial refund does not say what it covers, then nothing is guessed: it is recorded for an operator, and the customer still hears of it': 'partial-refund-for-an-operator',
  'when the payment was refunded in full before the order was fulfilled, then nothing is fulfilled, nothing reversed, and it records refunded': 'refunded-before-fulfillment',
  'when a dispute opens, then it records disputed and reverses nothing; won, it is fulfilled again; lost, everything is reversed once': 'dispute-lost',
  'when the payment succeeds, then the order is fulfilled once with one receipt, and nothing is captured by hand': 'payment-intent-succeeded',
  'when the payment is processing, then it waits awaiting_payment and fulfills once it succeeds': 'payment-intent-processing-then-succeeded',
  'when an attempt fails, then the customer is told once and the order waits: a retry that succeeds is fulfilled': 'payment-intent-failed-then-retried',
  'when an authorization is ready to capture, then the order is fulfilled first and captured once after, then receipted': 'payment-intent-manual-capture',
  'when an authorized order cannot be fulfilled (out of stock), then what was fulfilled is reversed, the hold released, and nothing captured': 'payment-intent-out-of-stock',
  'when an operator cancels a waiting execution, then failed is recorded with the reason': 'operator-canceled',
  'when an order that failed before anything was fulfilled is refunded, then nothing is un-fulfilled and it records refunded': 'failed-then-refunded',
  'when an order fulfilled before PaymentIntents were recorded is refunded, then the session is read once to find its payment, and the refund settles': 'refund-of-a-record-without-its-payment',
  'when an open dispute is won, then the order is fulfilled again and nothing is reversed': 'dispute-won',
  'when Stripe refuses the capture (the authorization expired meanwhile), then what was fulfilled is reversed and the order is canceled': 'payment-intent-release-on-refused-capture',
  'when the authorization would expire before the order can be fulfilled, then the hold is released instead of captured late': 'payment-intent-release-before-fulfillment',
  'when the PaymentIntent is canceled unpaid, then nothing is fulfilled and it records payment_failed': 'payment-intent-canceled-unpaid',
  'when a Checkout Session created the PaymentIntent, then this path does nothing: the session’s workflow owns it': 'payment-intent-owned-by-checkout',
  'when the PaymentIntent’s metadata names no order, then nothing is done and nothing recorded': 'payment-intent-no-order',
  'when the order’s total differs from the payment, then nothing is fulfilled and it fails with why': 'payment-intent-amount-mismatch',
  'when a fulfilled order paid by PaymentIntent is refunded in full, then everything is reversed once and it records refunded': 'payment-intent-refund-of-a-settled-order',
  'when an event is redelivered to a run waiting for the payment (the success event lost), then Stripe is read again at once and the order fulfilled': 'redelivered-while-waiting',
  'when the customer reloads the landing page of a waiting order, then Stripe is read at most once per interval, and a visit after it at once': 'landed-while-waiting',
};
let lastStarted: string | undefined;

afterEach(async () => {
  const name = expect.getState().currentTestName ?? '';
  const branch = RECORDED_BRANCHES[name.replace(/^(fulfillCheckout (after the payment: refunds and disputes )?|fulfillPaymentIntent: orders paid by PaymentIntent, without Checkout )/, '')];
  if (branch && lastStarted) await keepHistory(branch, env.client, lastStarted);
  lastStarted = undefined;
});
// After the history is kept: stopping closes what the test left running.
afterEach(stopTestWorkers);

function start(input: FulfillCheckoutInput, signal?: CheckoutEvent) {
  lastStarted = input.sessionId;
  const options = { taskQueue, workflowId: input.sessionId, args: [input] as [FulfillCheckoutInput] };
  return signal
    ? env.client.workflow.signalWithStart(fulfillCheckout, { ...options, signal: checkoutEventSignal, signalArgs: [signal] })
    : env.client.workflow.start(fulfillCheckout, options);
}

const succeeded = (id = 'evt_succeeded'): CheckoutEvent => ({ id, type: 'checkout.session.async_payment_succeeded' });
const failed = (id = 'evt_failed'): CheckoutEvent => ({ id, type: 'checkout.session.async_payment_failed' });
const completed = (id = 'evt_completed'): CheckoutEvent => ({ id, type: 'checkout.session.completed' });

/** The test server's clock runs ahead of the wall clock once tests skip time: session times must follow it. */
async function serverNowSeconds(plusSeconds = 0): Promise<number> {
  return Math.floor((await env.currentTimeMs()) / 1000) + plusSeconds;
}

/** Polls a condition the workers change (real time: nothing awaits a result, so nothing skips). */
async function waitFor(check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const FULFILLMENT_STATUS = { name: 'FulfillmentStatus', type: 'KEYWORD' } as const;

/**
 * The execution as described once its FulfillmentStatus search attribute reads `status` (and
 * `also` holds). The workflow upserts it in the workflow task that records the status as a local
 * activity, so the fake record can show a status before the server has the task's upsert.
 */
function describedWith(handle: WorkflowHandle, status: string, also: (described: WorkflowExecutionDescription) => boolean = () => true) {
  return eventually(
    () => handle.describe(),
    (described) => described.typedSearchAttributes.get(FULFILLMENT_STATUS) === status && also(described),
    { timeoutMs: 20_000, intervalMs: 50 },
  );
}

/** The timers an execution started, in order, with whether each fired (rather than being cut short by an event). */
async function timersOf(workflowId: string): Promise<{ seconds: number; fired: boolean }[]> {
  const events = (await env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const fired = new Set(events.map((event) => event.timerFiredEventAttributes?.timerId).filter(Boolean));
  return events
    .map((event) => event.timerStartedEventAttributes)
    .filter((attributes) => attributes != null)
    .map((attributes) => ({ seconds: Number(attributes.startToFireTimeout?.seconds ?? 0), fired: fired.has(attributes.timerId) }));
}

/** Holds an activity at `pass()` until the test calls `open()`; `reached` resolves once it is held there. */
function gate() {
  let arrive!: () => void;
  let open!: () => void;
  const reached = new Promise<void>((resolve) => (arrive = resolve));
  const opened = new Promise<void>((resolve) => (open = resolve));
  return {
    reached,
    open,
    async pass() {
      arrive();
      await opened;
    },
  };
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

      const described = await describedWith(handle, 'awaiting_payment');
      expect(described.typedSearchAttributes.get(FULFILLMENT_STATUS)).toBe('awaiting_payment');
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

  test('when a session waits so long its history grows large, then it continues as new with what it knew, loses no event and fulfills once', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const stripe = stripeWith(unpaid);
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => {
      // Hourly re-checks and a small limit: a handful of re-checks fill the history.
      const handle = await start({ sessionId: unpaid.id, paymentRecheckInterval: '1 hour', historyLimit: 60 }, completed());
      const firstRunId = (await handle.describe()).runId;
      await env.sleep('1 day');
      const described = await describedWith(handle, 'awaiting_payment', ({ runId }) => runId !== firstRunId);
      expect(described.runId).not.toBe(firstRunId); // it continued as new, at least once
      expect(described.status.name).toBe('RUNNING');
      expect(described.typedSearchAttributes.get(FULFILLMENT_STATUS)).toBe('awaiting_payment');
      expect((await handle.query(fulfillmentQuery)).eventIds).toEqual(['evt_completed']);
      await keepHistory('continued-as-new-first-run', env.client, unpaid.id, firstRunId);

      // The same event again (deduplicated across runs), then the success.
      await handle.signal(checkoutEventSignal, completed());
      stripe.session = { ...unpaid, paymentStatus: 'paid' };
      await handle.signal(checkoutEventSignal, succeeded());
      return handle.result();
    });

    expect(result.status).toBe('fulfilled');
    expect(result.eventIds).toEqual(['evt_completed', 'evt_succeeded']);
    expect(calls.fulfillLineItems).toHaveLength(1);
    expect(calls.emailReceipt).toHaveLength(1);
    // One 'received' for the session, not one per run.
    expect(calls.statuses.filter((status) => status === 'received')).toHaveLength(1);
    expect(calls.statuses.at(-1)).toBe('fulfilled');
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

  test('when no payment arrives before the deadline, then it stops waiting without a verdict: still awaiting_payment', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const { activities, calls } = fakeActivities(stripeWith(unpaid));

    const result = await withWorker(activities, async () => (await start({ sessionId: unpaid.id })).result());

    // Stripe never said the payment failed: nothing may refuse a later success.
    expect(result.status).toBe('awaiting_payment');
    expect(result.reason).toMatch(/^stopped waiting after 7 days without a payment confirmation/);
    expect(calls.views.at(-1)).toEqual(expect.objectContaining({ status: 'awaiting_payment', reason: result.reason }));
    // The first read, then one a day for seven days.
    expect(calls.retrieveSession).toBe(8);
    expect(calls.fulfillLineItems).toHaveLength(0);
    expect(calls.emailPaymentFailed).toHaveLength(0);
  });

  test('when the payment succeeds after the run stopped waiting, then the next delivery runs the session again and fulfills it', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const stripe = stripeWith(unpaid);
    const { activities, calls } = fakeActivities(stripe);
    // The database is whatever the workflow last recorded.
    const store = { getRecord: async () => (calls.views.length ? { view: calls.views.at(-1)!, createdAt: new Date(), updatedAt: new Date() } : null) };
    const starter = new FulfillmentStarter(env.client, store, { taskQueue, paymentDeadline: '2 days', timeoutMs: 10_000 });

    const result = await withWorker(activities, async () => {
      await starter.deliver(unpaid.id, { id: 'evt_completed', type: 'checkout.session.completed' });
      const stopped = await env.client.workflow.getHandle(unpaid.id).result();
      expect(stopped.status).toBe('awaiting_payment');

      // Weeks later (Konbini, Boleto, bank transfers): Stripe reports the payment.
      stripe.session = { ...unpaid, paymentStatus: 'paid' };
      expect(await starter.deliver(unpaid.id, succeeded('evt_late'))).toBe('accepted');
      return env.client.workflow.getHandle(unpaid.id).result();
    });

    expect(result.status).toBe('fulfilled');
    expect(calls.fulfillLineItems).toHaveLength(1);
    expect(calls.emailReceipt).toHaveLength(1);
    // And once settled, a further duplicate changes nothing.
    expect(await starter.deliver(unpaid.id, succeeded('evt_late'))).toBe('already_settled');
  });

  test('when the success event arrives while the run records that it stops waiting, then it is acted on, not dropped', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const stripe = stripeWith(unpaid);
    const { activities, calls } = fakeActivities(stripe);
    const stopRecord = gate();
    const slowStopRecord: Activities = {
      ...activities,
      async recordStatus(input) {
        if (input.view.reason?.startsWith('stopped waiting')) await stopRecord.pass();
        return activities.recordStatus(input);
      },
    };

    const result = await withWorker(slowStopRecord, async () => {
      const handle = await start({ sessionId: unpaid.id, paymentDeadline: '1 hour' });
      const outcome = handle.result(); // lets the test server skip to the deadline
      await stopRecord.reached;
      stripe.session = { ...unpaid, paymentStatus: 'paid' };
      await handle.signal(checkoutEventSignal, succeeded());
      stopRecord.open();
      return outcome;
    });

    expect(result.status).toBe('fulfilled');
    expect(calls.fulfillLineItems).toHaveLength(1);
    expect(calls.statuses.slice(-3)).toEqual(['awaiting_payment', 'fulfilling', 'fulfilled']);
  });

  test('when a success event arrives at the deadline but Stripe still reads unpaid, then it keeps looking instead of stopping', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const stripe = stripeWith(unpaid);
    const { activities, calls } = fakeActivities(stripe);
    const stopRecord = gate();
    let readsAfterEvent = -1;
    const lagging: Activities = {
      ...activities,
      async recordStatus(input) {
        if (input.view.reason?.startsWith('stopped waiting') && readsAfterEvent < 0) await stopRecord.pass();
        return activities.recordStatus(input);
      },
      async retrieveSession(sessionId) {
        if (readsAfterEvent >= 0 && ++readsAfterEvent === 3) stripe.session = { ...unpaid, paymentStatus: 'paid' };
        return activities.retrieveSession(sessionId);
      },
    };

    const result = await withWorker(lagging, async () => {
      const handle = await start({ sessionId: unpaid.id, paymentDeadline: '1 hour' });
      const outcome = handle.result();
      await stopRecord.reached;
      readsAfterEvent = 0; // Stripe's read lags the event by a few minutes
      await handle.signal(checkoutEventSignal, succeeded());
      stopRecord.open();
      return outcome;
    });

    expect(result.status).toBe('fulfilled');
    expect(calls.fulfillLineItems).toHaveLength(1);
  });

  test('when a success event arrives but Stripe still reads unpaid, then it looks again within minutes, not the next day', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const stripe = stripeWith(unpaid);
    const { activities, calls } = fakeActivities(stripe);
    const fakeWithLag: Activities = {
      ...activities,
      async retrieveSession(sessionId) {
        const read = await activities.retrieveSession(sessionId);
        if (calls.retrieveSession === 2) stripe.session = { ...unpaid, paymentStatus: 'paid' }; // visible from the next read
        return read;
      },
    };

    const { result, timers } = await withWorker(fakeWithLag, async () => {
      const handle = await start({ sessionId: unpaid.id }, succeeded());
      const view = await handle.result();
      return { result: view, timers: await timersOf(handle.workflowId) };
    });

    expect(result.status).toBe('fulfilled');
    expect(calls.retrieveSession).toBe(3);
    // Two one-minute re-checks (the read lagged twice), never the daily one.
    expect(timers).toEqual([
      { seconds: 60, fired: true },
      { seconds: 60, fired: true },
    ]);
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

  test('when the expired event arrives for an open session, then it reads the session and ends expired without waiting for the re-check', async () => {
    const open = session({ status: 'open', paymentStatus: 'unpaid', expiresAt: await serverNowSeconds(24 * 3600) });
    const stripe = stripeWith(open);
    const { activities, calls } = fakeActivities(stripe);

    const { result, timers } = await withWorker(activities, async () => {
      const handle = await start({ sessionId: open.id });
      await waitFor(() => calls.statuses.includes('awaiting_checkout'));
      stripe.session = { ...open, status: 'expired' };
      await handle.signal(checkoutEventSignal, { id: 'evt_expired', type: 'checkout.session.expired' });
      const view = await handle.result();
      return { result: view, timers: await timersOf(handle.workflowId) };
    });

    expect(result.status).toBe('expired');
    expect(calls.fulfillLineItems).toHaveLength(0);
    expect(timers).toEqual([{ seconds: 3600, fired: false }]); // the hourly re-check, cut short by the event
  });

  test('when an open session is still open long after its expiry time, then it stops waiting without calling it expired', async () => {
    const open = session({ status: 'open', paymentStatus: 'unpaid', expiresAt: await serverNowSeconds(3600) });
    const { activities, calls } = fakeActivities(stripeWith(open));

    const result = await withWorker(activities, async () => (await start({ sessionId: open.id })).result());

    expect(result.status).toBe('awaiting_checkout');
    expect(result.reason).toMatch(/^stopped waiting: the session was still open after its expiry time/);
    expect(calls.fulfillLineItems).toHaveLength(0);
  });

  test('when an open session already reads no_payment_required (setup, trial, 100 % off), then nothing is fulfilled until Checkout completes', async () => {
    const open = session({ status: 'open', paymentStatus: 'no_payment_required', amountTotal: 0, expiresAt: await serverNowSeconds(24 * 3600) });
    const stripe = stripeWith(open);
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => {
      const handle = await start({ sessionId: open.id });
      await env.sleep('10 minutes');
      expect((await handle.query(fulfillmentQuery)).status).toBe('awaiting_checkout');
      expect(calls.fulfillLineItems).toHaveLength(0);
      stripe.session = { ...open, status: 'complete' };
      await handle.signal(checkoutEventSignal, { id: 'evt_completed', type: 'checkout.session.completed' });
      return handle.result();
    });

    expect(result.status).toBe('fulfilled');
    expect(calls.fulfillLineItems).toHaveLength(1);
  });

  test('when a setup-mode session completes, then it is recorded fulfilled with nothing to deliver and no receipt', async () => {
    const setup = session({ mode: 'setup', paymentStatus: 'no_payment_required', amountTotal: null, amountSubtotal: null, currency: null, lineItems: [] });
    const { activities, calls } = fakeActivities(stripeWith(setup));

    const result = await withWorker(activities, async () => (await start({ sessionId: setup.id })).result());

    expect(result.status).toBe('fulfilled');
    expect(result.mode).toBe('setup');
    expect(result.receiptSent).toBe(false);
    expect(calls.emailReceipt).toHaveLength(0);
  });

  test('when Stripe refuses the API key, then the session is paused visibly and resumes by itself once the key is fixed', async () => {
    const paid = session();
    const { activities, calls } = fakeActivities(stripeWith(paid));
    let keyFixed = false;
    let refusals = 0;
    const badKey: Activities = {
      ...activities,
      async retrieveSession(sessionId) {
        if (!keyFixed) {
          refusals++;
          throw ApplicationFailure.retryable('Stripe refused the API key (authentication_error)', 'StripeConfiguration');
        }
        return activities.retrieveSession(sessionId);
      },
    };

    const result = await withWorker(badKey, async () => {
      const handle = await start({ sessionId: paid.id });
      await waitFor(() => calls.statuses.includes('paused'));
      const described = await describedWith(handle, 'paused');
      expect(described.typedSearchAttributes.get(FULFILLMENT_STATUS)).toBe('paused');
      expect(calls.views.at(-1)?.reason).toMatch(/^paused: Stripe refused the API key/);
      expect(described.status.name).toBe('RUNNING');
      await waitFor(() => refusals >= 2); // still retrying, inside Temporal
      keyFixed = true; // the operator rotates the key
      return handle.result();
    });

    expect(result.status).toBe('fulfilled');
    expect(result.reason).toBeNull();
    expect(calls.statuses).toEqual(['received', 'paused', 'fulfilling', 'fulfilled']);
    expect(calls.fulfillLineItems).toHaveLength(1);
  });

  test('when the fulfiller gives up (non-retryable), then failed is recorded with its reason and the execution fails', async () => {
    const paid = session();
    const { activities, calls } = fakeActivities(stripeWith(paid));
    const givesUp: Activities = {
      ...activities,
      async fulfillLineItems() {
        throw ApplicationFailure.nonRetryable('product prod_tshirt is discontinued', 'OutOfStock');
      },
    };

    const error = await withWorker(givesUp, async () => (await start({ sessionId: paid.id })).result().catch((e: unknown) => e));

    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect(calls.statuses).toEqual(['received', 'fulfilling', 'failed']);
    expect(calls.views.at(-1)?.reason).toBe('OutOfStock: product prod_tshirt is discontinued');
    expect(calls.emailReceipt).toHaveLength(0);
  });

  test('when an operator cancels a waiting execution, then failed is recorded with the reason', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const { activities, calls } = fakeActivities(stripeWith(unpaid));

    const error = await withWorker(activities, async () => {
      const handle = await start({ sessionId: unpaid.id });
      await waitFor(() => calls.statuses.includes('awaiting_payment'));
      await handle.cancel();
      return handle.result().catch((e: unknown) => e);
    });

    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect(calls.statuses.at(-1)).toBe('failed');
    expect(calls.views.at(-1)?.reason).toBe('canceled by an operator');
  });

  test('when the success event arrives before the workflow starts (signal-with-start), then it is not lost', async () => {
    const paid = session({ paymentStatus: 'paid' });
    const { activities, calls } = fakeActivities(stripeWith(paid));

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id }, succeeded())).result());

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
    const paid = session({ paymentStatus: 'paid' });
    const { activities, calls } = fakeActivities(stripeWith(paid));

    const result = await withWorker(activities, async () => {
      const handle = await start({ sessionId: paid.id }, succeeded('evt_1'));
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

  test('when an event is redelivered to a run waiting for the payment (the success event lost), then Stripe is read again at once and the order fulfilled', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const stripe = stripeWith(unpaid);
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => {
      const handle = await start({ sessionId: unpaid.id }, completed('evt_c'));
      await waitFor(() => calls.statuses.includes('awaiting_payment'));
      stripe.session = { ...unpaid, paymentStatus: 'paid' };
      await handle.signal(checkoutEventSignal, completed('evt_c'));
      // Queried, not awaited: awaiting the result would let the server skip to the daily re-check.
      return eventually(() => handle.query(fulfillmentQuery), (view) => view.status === 'fulfilled', { timeoutMs: 20_000, intervalMs: 50 });
    });

    expect(result.eventIds).toEqual(['evt_c']);
    expect(calls.retrieveSession).toBe(2);
    expect(calls.fulfillLineItems).toHaveLength(1);
  });

  test('when the customer reloads the landing page of a waiting order, then Stripe is read at most once per interval, and a visit after it at once', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const stripe = stripeWith(unpaid);
    const { activities, calls } = fakeActivities(stripe);
    const landed = (i: number): CheckoutEvent => ({ id: `landing:${i}`, type: 'customer.landed' });

    const { early, result } = await withWorker(activities, async () => {
      const handle = await start({ sessionId: unpaid.id }, completed('evt_c'));
      await waitFor(() => calls.statuses.includes('awaiting_payment'));
      stripe.session = { ...unpaid, paymentStatus: 'paid' };
      // Within the interval of the run's read: answered by that read, no read of their own.
      for (let i = 0; i < 5; i++) await handle.signal(checkoutEventSignal, landed(i));
      await new Promise((resolve) => setTimeout(resolve, 1_000)); // time enough for a wrongly woken read to show
      const early = { status: (await handle.query(fulfillmentQuery)).status, reads: calls.retrieveSession };
      await env.sleep(LANDING_WAKE_INTERVAL_MS + 1_000);
      await handle.signal(checkoutEventSignal, landed(5));
      const result = await eventually(() => handle.query(fulfillmentQuery), (view) => view.status === 'fulfilled', { timeoutMs: 20_000, intervalMs: 50 });
      return { early, result };
    });

    expect(early).toEqual({ status: 'awaiting_payment', reads: 1 });
    expect(calls.retrieveSession).toBe(2);
    expect(result.eventIds).toEqual(['evt_c']); // a visit is recorded nowhere
    expect(calls.fulfillLineItems).toHaveLength(1);
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
    const paid = session();
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

  test('when the record says failed and an operator redrives it (the cause since fixed), then a new execution processes the session', async () => {
    const paid = session();
    const recorded = { ...receivedView(paid.id), status: 'failed' as const, reason: 'FulfillmentFailed: the warehouse refused the order' };
    const { activities, calls } = fakeActivities(stripeWith(paid), recorded);

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id, redrive: true })).result());

    expect(result.status).toBe('fulfilled');
    expect(calls.fulfillLineItems).toHaveLength(1);
  });

  test('when the record says failed and a new execution starts without a redrive (a late duplicate after retention), then nothing is done', async () => {
    const paid = session();
    const recorded = { ...receivedView(paid.id), status: 'failed' as const, reason: 'canceled by an operator' };
    const { activities, calls } = fakeActivities(stripeWith(paid), recorded);

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id }, completed('evt_late'))).result());

    expect(result.status).toBe('failed');
    expect(result.reason).toBe('canceled by an operator');
    expect(calls.retrieveSession).toBe(0);
    expect(calls.fulfillLineItems).toHaveLength(0);
    expect(calls.statuses).toEqual([]);
  });

  test('when the record already says fulfilled (a late duplicate after retention), then nothing is done again', async () => {
    const paid = session();
    const recorded = {
      sessionId: paid.id,
      status: 'fulfilled' as const,
      paymentStatus: 'paid' as const,
      mode: 'payment' as const,
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

describe('fulfillCheckout after the payment: refunds and disputes', () => {
  const refunded = (id = 'evt_refunded'): CheckoutEvent => ({ id, type: 'charge.refunded' });
  const refundUpdated = (id = 'evt_refund_updated'): CheckoutEvent => ({ id, type: 'refund.updated' });
  const disputeCreated = (id = 'evt_dispute_created'): CheckoutEvent => ({ id, type: 'charge.dispute.created' });
  const disputeClosed = (id = 'evt_dispute_closed'): CheckoutEvent => ({ id, type: 'charge.dispute.closed' });

  /** A paid session with a PaymentIntent, and a Stripe whose refunds and disputes the test sets. */
  function paidWithMoneyBack() {
    const paid = session({ paymentIntentId: `pi_${randomId()}` });
    const stripe = { session: paid, money: { refunds: [], disputes: [] } as MoneyBack, current: () => stripe.session, moneyBack: () => stripe.money };
    return { paid, stripe, tshirt: paid.lineItems[0]!, stickers: paid.lineItems[1]! };
  }

  /** What the record holds once `paid` was fulfilled by an earlier run. */
  function fulfilledRecord(paid: SessionSummary): FulfillmentView {
    return {
      ...receivedView(paid.id),
      status: 'fulfilled',
      paymentStatus: 'paid',
      mode: 'payment',
      currency: paid.currency,
      amountTotal: paid.amountTotal,
      paymentIntentId: paid.paymentIntentId,
      lineItems: paid.lineItems.map((item) => ({ description: item.description, quantity: item.quantity, amountTotal: item.amountTotal })),
      fulfilled: paid.lineItems.map((item) => ({ lineItemId: item.id, description: item.description, quantity: item.quantity })),
      receiptSent: true,
      eventIds: ['evt_completed'],
    };
  }

  const refund = (overrides: Partial<RefundSummary>): RefundSummary => ({ id: `re_${randomId()}`, amount: 4500, currency: 'usd', status: 'succeeded', lineItems: null, ...overrides });

  test('when the whole payment is refunded after fulfillment, then everything is reversed once, the customer is emailed once, and it records refunded', async () => {
    const { paid, stripe } = paidWithMoneyBack();
    const whole = refund({ amount: 4500 });
    stripe.money = { refunds: [whole], disputes: [] };
    const { activities, calls } = fakeActivities(stripe, fulfilledRecord(paid));

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id }, refunded())).result());

    expect(result.status).toBe('refunded');
    expect(calls.reverseLineItems).toEqual([{ sessionId: paid.id, reversalId: whole.id, reason: 'refund', items: 'all' }]);
    expect(result.refunds).toEqual([expect.objectContaining({ id: whole.id, emailed: true, note: null, reversed: [expect.objectContaining({ description: 'T-shirt', quantity: 2 }), expect.objectContaining({ description: 'Sticker pack', quantity: 1 })] })]);
    expect(calls.emailRefund.map((email) => email.refund.id)).toEqual([whole.id]);
    expect(calls.fulfillLineItems).toHaveLength(0);
    expect(calls.statuses).toEqual(['refunded']);
  });

  test('when a partial refund names its line items, then only those are reversed and it records partially_refunded', async () => {
    const { paid, stripe, tshirt } = paidWithMoneyBack();
    const oneShirt = refund({ amount: 2000, lineItems: [{ lineItemId: tshirt.id, quantity: 1 }] });
    stripe.money = { refunds: [oneShirt], disputes: [] };
    const { activities } = fakeActivities(stripe, fulfilledRecord(paid));

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id }, refunded())).result());

    expect(result.status).toBe('partially_refunded');
    expect(result.refunds![0]!.reversed).toEqual([{ lineItemId: tshirt.id, description: 'T-shirt', quantity: 1 }]);
  });

  test('when a partial refund does not say what it covers, then nothing is guessed: it is recorded for an operator, and the customer still hears of it', async () => {
    const { paid, stripe } = paidWithMoneyBack();
    const goodwill = refund({ amount: 500 });
    stripe.money = { refunds: [goodwill], disputes: [] };
    const { activities, calls } = fakeActivities(stripe, fulfilledRecord(paid));

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id }, refunded())).result());

    expect(result.status).toBe('partially_refunded');
    expect(calls.reverseLineItems).toHaveLength(0);
    expect(result.refunds![0]).toEqual(expect.objectContaining({ reversed: null, emailed: true }));
    expect(result.reason).toMatch(new RegExp(`refund ${goodwill.id} of \\$5\\.00 does not say which line items it covers.*an operator decides`));
  });

  test('when a refund arrives while the order is being fulfilled, then it waits for the fulfillment and reverses what was fulfilled', async () => {
    const { paid, stripe } = paidWithMoneyBack();
    const fulfilling = gate();
    const { activities, calls } = fakeActivities(stripe);
    const fulfill = activities.fulfillLineItems;
    activities.fulfillLineItems = async (input) => {
      await fulfilling.pass();
      return fulfill(input);
    };

    const result = await withWorker(activities, async () => {
      const handle = await start({ sessionId: paid.id }, completed());
      await fulfilling.reached;
      stripe.money = { refunds: [refund({ amount: 4500 })], disputes: [] };
      await handle.signal(checkoutEventSignal, refunded());
      fulfilling.open();
      return handle.result();
    });

    expect(calls.statuses).toEqual(['received', 'fulfilling', 'fulfilled', 'refunded']);
    expect(result.fulfilled).toHaveLength(2);
    expect(result.refunds![0]!.reversed).toHaveLength(2);
    expect(calls.emailReceipt).toHaveLength(1);
    expect(calls.emailRefund).toHaveLength(1);
  });

  test('when the payment was refunded in full before the order was fulfilled, then nothing is fulfilled, nothing reversed, and it records refunded', async () => {
    const { paid, stripe } = paidWithMoneyBack();
    stripe.money = { refunds: [refund({ amount: 4500 })], disputes: [] };
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id }, refunded())).result());

    expect(result.status).toBe('refunded');
    expect(calls.fulfillLineItems).toHaveLength(0);
    expect(calls.emailReceipt).toHaveLength(0);
    expect(result.refunds![0]!.reversed).toEqual([]);
    expect(calls.emailRefund).toHaveLength(1);
  });

  test('when refund events are redelivered or several name the same refund, then it is reversed and emailed once; a pending refund waits for refund.updated', async () => {
    const { paid, stripe, stickers } = paidWithMoneyBack();
    const pending = refund({ amount: 500, status: 'pending', lineItems: [{ lineItemId: stickers.id, quantity: null }] });
    stripe.money = { refunds: [pending], disputes: [] };
    const { activities, calls } = fakeActivities(stripe, fulfilledRecord(paid));

    await withWorker(activities, async () => {
      const waiting = await (await start({ sessionId: paid.id }, refunded('evt_r1'))).result();
      expect(waiting.status).toBe('fulfilled'); // nothing settled yet: the refund is pending
      expect(calls.reverseLineItems).toHaveLength(0);

      stripe.money = { refunds: [{ ...pending, status: 'succeeded' }], disputes: [] };
      const settled = await (await start({ sessionId: paid.id }, refundUpdated('evt_r2'))).result();
      expect(settled.status).toBe('partially_refunded');

      const again = await (await start({ sessionId: paid.id }, refundUpdated('evt_r2'))).result();
      expect(again.status).toBe('partially_refunded');
      const another = await (await start({ sessionId: paid.id }, refunded('evt_r3'))).result();
      expect(another.refunds).toHaveLength(1);
    });

    expect(calls.reverseLineItems).toHaveLength(1);
    expect(calls.emailRefund).toHaveLength(1);
    expect(calls.readMoneyBack).toBe(3); // evt_r1, evt_r2, evt_r3; the redelivered evt_r2 read nothing
  });

  test('when a dispute opens, then it records disputed and reverses nothing; won, it is fulfilled again; lost, everything is reversed once', async () => {
    const { paid, stripe } = paidWithMoneyBack();
    const dispute: DisputeSummary = { id: `dp_${randomId()}`, amount: 4500, currency: 'usd', status: 'needs_response', reason: 'fraudulent' };
    stripe.money = { refunds: [], disputes: [dispute] };
    const { activities, calls } = fakeActivities(stripe, fulfilledRecord(paid));

    await withWorker(activities, async () => {
      const opened = await (await start({ sessionId: paid.id }, disputeCreated())).result();
      expect(opened.status).toBe('disputed');
      expect(opened.disputes).toEqual([expect.objectContaining({ id: dispute.id, outcome: 'open', reversed: null })]);
      expect(calls.reverseLineItems).toHaveLength(0);

      stripe.money = { refunds: [], disputes: [{ ...dispute, status: 'won' }] };
      const won = await (await start({ sessionId: paid.id }, disputeClosed('evt_won'))).result();
      expect(won.status).toBe('fulfilled');
      expect(won.disputes![0]!.outcome).toBe('won');

      stripe.money = { refunds: [], disputes: [{ ...dispute, status: 'won' }, { ...dispute, id: `dp_${randomId()}`, status: 'lost' }] };
      const lost = await (await start({ sessionId: paid.id }, disputeClosed('evt_lost'))).result();
      expect(lost.status).toBe('dispute_lost');
    });

    expect(calls.reverseLineItems).toEqual([expect.objectContaining({ reason: 'dispute_lost', items: 'all' })]);
    expect(calls.emailRefund).toHaveLength(0);
  });

  test('when an open dispute is won, then the order is fulfilled again and nothing is reversed', async () => {
    const { paid, stripe } = paidWithMoneyBack();
    const dispute: DisputeSummary = { id: `dp_${randomId()}`, amount: 4500, currency: 'usd', status: 'under_review', reason: 'fraudulent' };
    const disputedRecord = { ...fulfilledRecord(paid), status: 'disputed' as const, disputes: [{ ...dispute, outcome: 'open' as const, reversed: null }] };
    stripe.money = { refunds: [], disputes: [{ ...dispute, status: 'won' }] };
    const { activities, calls } = fakeActivities(stripe, disputedRecord);

    const won = await withWorker(activities, async () => (await start({ sessionId: paid.id }, disputeClosed('evt_won_alone'))).result());

    expect(won.status).toBe('fulfilled');
    expect(won.disputes).toEqual([expect.objectContaining({ id: dispute.id, status: 'won', outcome: 'won', reversed: null })]);
    expect(calls.reverseLineItems).toHaveLength(0);
    expect(calls.fulfillLineItems).toHaveLength(0);
  });

  test('when an order fulfilled before PaymentIntents were recorded is refunded, then the session is read once to find its payment, and the refund settles', async () => {
    const { paid, stripe } = paidWithMoneyBack();
    stripe.money = { refunds: [refund({ amount: 4500 })], disputes: [] };
    const { paymentIntentId: _unknown, ...olderRecord } = fulfilledRecord(paid);
    const { activities, calls } = fakeActivities(stripe, olderRecord);

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id }, refunded())).result());

    expect(result.status).toBe('refunded');
    expect(result.paymentIntentId).toBe(paid.paymentIntentId);
    expect(calls.retrieveSession).toBe(1);
    expect(calls.fulfillLineItems).toHaveLength(0);
    expect(result.refunds![0]!.reversed).toHaveLength(2);
  });

  test('when an order that failed before anything was fulfilled is refunded, then nothing is un-fulfilled and it records refunded', async () => {
    const { paid, stripe } = paidWithMoneyBack();
    stripe.money = { refunds: [refund({ amount: 4500 })], disputes: [] };
    const failedRecord = { ...fulfilledRecord(paid), status: 'failed' as const, fulfilled: [], receiptSent: false, reason: 'OutOfStock: gone' };
    const { activities, calls } = fakeActivities(stripe, failedRecord);

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id }, refunded())).result());

    expect(result.status).toBe('refunded');
    expect(calls.retrieveSession).toBe(0); // not run again
    expect(calls.fulfillLineItems).toHaveLength(0);
    expect(result.refunds![0]!.reversed).toEqual([]);
  });
});

function randomId(): string {
  return Math.random().toString(36).slice(2, 14);
}

describe('fulfillPaymentIntent: orders paid by PaymentIntent, without Checkout', () => {
  const piEvent = (type: CheckoutEvent['type'], id = `evt_${randomId()}`): CheckoutEvent => ({ id, type });

  /** An order and its PaymentIntent, which the test moves through Stripe's statuses. */
  function orderPaidBy(status: string, overrides: Partial<PaymentIntentSummary> = {}) {
    const paid = session();
    const paymentIntentId = `pi_${randomId()}`;
    const order: OrderSummary = { orderId: `order_${randomId()}`, currency: 'usd', amountTotal: 4500, lineItems: paid.lineItems };
    const stripe = {
      session: paid,
      current: () => paid,
      checkoutSessionId: null as string | null,
      order: order as OrderSummary | null,
      intent: { id: paymentIntentId, status, amount: 4500, currency: 'usd', captureMethod: 'automatic', livemode: false, orderId: order.orderId, captureBefore: null, lastPaymentError: null, ...overrides } as PaymentIntentSummary,
      paymentIntent: () => stripe.intent,
    };
    return { paymentIntentId, order, stripe };
  }

  function startOrder(paymentIntentId: string, event: CheckoutEvent) {
    lastStarted = paymentIntentId;
    return env.client.workflow.signalWithStart(fulfillPaymentIntent, {
      taskQueue,
      workflowId: paymentIntentId,
      args: [{ paymentIntentId }],
      signal: checkoutEventSignal,
      signalArgs: [event],
    });
  }

  test('when the payment succeeds, then the order is fulfilled once with one receipt, and nothing is captured by hand', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('succeeded');
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => (await startOrder(paymentIntentId, piEvent('payment_intent.succeeded'))).result());

    expect(result).toEqual(expect.objectContaining({ sessionId: paymentIntentId, status: 'fulfilled', paymentStatus: 'paid', amountTotal: 4500, receiptSent: true }));
    expect(calls.fulfillLineItems).toEqual([expect.objectContaining({ sessionId: paymentIntentId })]);
    expect(calls.emailReceipt).toHaveLength(1);
    expect(calls.captures).toBe(0);
    expect(calls.statuses).toEqual(['received', 'fulfilling', 'fulfilled']);
  });

  test('when the payment is processing, then it waits awaiting_payment and fulfills once it succeeds', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('processing');
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => {
      const handle = await startOrder(paymentIntentId, piEvent('payment_intent.processing'));
      await env.sleep('2 days');
      expect((await handle.query(fulfillmentQuery)).status).toBe('awaiting_payment');
      stripe.intent = { ...stripe.intent, status: 'succeeded' };
      await handle.signal(checkoutEventSignal, piEvent('payment_intent.succeeded'));
      return handle.result();
    });

    expect(result.status).toBe('fulfilled');
    expect(calls.fulfillLineItems).toHaveLength(1);
  });

  test('when an attempt fails, then the customer is told once and the order waits: a retry that succeeds is fulfilled', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('requires_payment_method', { lastPaymentError: 'card_declined' });
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => {
      const handle = await startOrder(paymentIntentId, piEvent('payment_intent.payment_failed'));
      await waitFor(() => calls.statuses.includes('awaiting_payment'));
      expect((await handle.query(fulfillmentQuery)).reason).toMatch(/card_declined.*may try again/);
      stripe.intent = { ...stripe.intent, status: 'succeeded', lastPaymentError: null };
      await handle.signal(checkoutEventSignal, piEvent('payment_intent.succeeded'));
      return handle.result();
    });

    expect(result.status).toBe('fulfilled');
    expect(result.reason).toBeNull(); // the decline made good is no reason on a fulfilled order
    expect(calls.emailPaymentFailed).toHaveLength(1);
  });

  test('when the PaymentIntent is canceled unpaid, then nothing is fulfilled and it records payment_failed', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('canceled');
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => (await startOrder(paymentIntentId, piEvent('payment_intent.payment_failed'))).result());

    expect(result.status).toBe('payment_failed');
    expect(calls.fulfillLineItems).toHaveLength(0);
  });

  test('when the PaymentIntent’s metadata names no order, then nothing is done and nothing recorded', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('succeeded', { orderId: null });
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => (await startOrder(paymentIntentId, piEvent('payment_intent.succeeded'))).result());

    expect(result.reason).toMatch(/names no order/);
    expect(calls.statuses).toEqual([]);
    expect(calls.fulfillLineItems).toHaveLength(0);
  });

  test('when a fulfilled order paid by PaymentIntent is refunded in full, then everything is reversed once and it records refunded', async () => {
    const { paymentIntentId, stripe, order } = orderPaidBy('succeeded');
    const fulfilledRecord: FulfillmentView = {
      ...receivedView(paymentIntentId),
      status: 'fulfilled',
      paymentStatus: 'paid',
      mode: 'payment',
      currency: 'usd',
      amountTotal: 4500,
      paymentIntentId,
      fulfilled: order.lineItems.map((item) => ({ lineItemId: item.id, description: item.description, quantity: item.quantity })),
      receiptSent: true,
    };
    const refund: RefundSummary = { id: `re_${randomId()}`, amount: 4500, currency: 'usd', status: 'succeeded', lineItems: null };
    const { activities, calls } = fakeActivities({ ...stripe, moneyBack: () => ({ refunds: [refund], disputes: [] }) }, fulfilledRecord);

    const result = await withWorker(activities, async () => (await startOrder(paymentIntentId, piEvent('charge.refunded'))).result());

    expect(result.status).toBe('refunded');
    expect(calls.reverseLineItems).toEqual([expect.objectContaining({ reversalId: refund.id, items: 'all' })]);
    expect(calls.emailRefund).toHaveLength(1);
    expect(calls.fulfillLineItems).toHaveLength(0);
  });

  test('when an authorization is ready to capture, then the order is fulfilled first and captured once after, then receipted', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('requires_capture', { captureMethod: 'manual', captureBefore: await serverNowSeconds(7 * 86_400) });
    const { activities, calls } = fakeActivities(stripe);
    const order: string[] = [];
    const fulfill = activities.fulfillLineItems;
    const capture = activities.capturePaymentIntent;
    activities.fulfillLineItems = async (input) => (order.push('fulfill'), fulfill(input));
    activities.capturePaymentIntent = async (id) => (order.push('capture'), capture(id));

    const result = await withWorker(activities, async () => (await startOrder(paymentIntentId, piEvent('payment_intent.amount_capturable_updated'))).result());

    expect(result).toEqual(expect.objectContaining({ status: 'fulfilled', paymentStatus: 'paid', receiptSent: true }));
    expect(order).toEqual(['fulfill', 'capture']);
    expect(calls.captures).toBe(1);
    expect(calls.cancels).toBe(0);
  });

  test('when an authorized order cannot be fulfilled (out of stock), then what was fulfilled is reversed, the hold released, and nothing captured', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('requires_capture', { captureMethod: 'manual', captureBefore: await serverNowSeconds(7 * 86_400) });
    const { activities, calls } = fakeActivities(stripe);
    activities.fulfillLineItems = async () => {
      throw ApplicationFailure.nonRetryable('prod_tshirt is out of stock', 'OutOfStock');
    };

    const result = await withWorker(activities, async () => (await startOrder(paymentIntentId, piEvent('payment_intent.amount_capturable_updated'))).result());

    expect(result.status).toBe('canceled');
    expect(result.reason).toBe('OutOfStock: prod_tshirt is out of stock');
    expect(calls.reverseLineItems).toEqual([{ sessionId: paymentIntentId, reversalId: `release-${paymentIntentId}`, reason: 'refund', items: 'all' }]);
    expect(calls.cancels).toBe(1);
    expect(calls.captures).toBe(0);
    expect(calls.emailReceipt).toHaveLength(0);
    expect(calls.emailOrderCanceled).toBe(1);
  });

  test('when Stripe refuses the capture (the authorization expired meanwhile), then what was fulfilled is reversed and the order is canceled', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('requires_capture', { captureMethod: 'manual', captureBefore: await serverNowSeconds(7 * 86_400) });
    const { activities, calls } = fakeActivities(stripe);
    activities.capturePaymentIntent = async () => {
      throw ApplicationFailure.nonRetryable('The charge has expired and can no longer be captured.', 'CaptureRefused');
    };

    const result = await withWorker(activities, async () => (await startOrder(paymentIntentId, piEvent('payment_intent.amount_capturable_updated'))).result());

    expect(result.status).toBe('canceled');
    expect(result.reason).toMatch(/^Stripe refused the capture: The charge has expired/);
    expect(calls.reverseLineItems).toEqual([expect.objectContaining({ reversalId: `release-${paymentIntentId}`, items: 'all' })]);
    expect(result.fulfilled).toEqual([]);
    expect(calls.emailReceipt).toHaveLength(0);
  });

  test('when the authorization would expire before the order can be fulfilled, then the hold is released instead of captured late', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('requires_capture', { captureMethod: 'manual', captureBefore: await serverNowSeconds(30 * 60) });
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => (await startOrder(paymentIntentId, piEvent('payment_intent.amount_capturable_updated'))).result());

    expect(result.status).toBe('canceled');
    expect(result.reason).toMatch(/authorization was about to expire/);
    expect(calls.fulfillLineItems).toHaveLength(0);
    expect(calls.captures).toBe(0);
    expect(calls.cancels).toBe(1);
  });

  test('when a Checkout Session created the PaymentIntent, then this path does nothing: the session’s workflow owns it', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('succeeded');
    stripe.checkoutSessionId = 'cs_test_owner';
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => (await startOrder(paymentIntentId, piEvent('payment_intent.succeeded'))).result());

    expect(result.reason).toMatch(/Checkout Session cs_test_owner/);
    expect(calls.statuses).toEqual([]);
    expect(calls.fulfillLineItems).toHaveLength(0);
  });

  test('when the order’s total differs from the payment, then nothing is fulfilled and it fails with why', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('succeeded', { amount: 100 });
    const { activities, calls } = fakeActivities(stripe);

    const outcome = await withWorker(activities, async () => (await startOrder(paymentIntentId, piEvent('payment_intent.succeeded'))).result().catch((err: unknown) => err));

    expect(outcome).toBeInstanceOf(WorkflowFailedError);
    expect(calls.statuses).toEqual(['received', 'failed']);
    expect(calls.views.at(-1)!.reason).toMatch(/AmountMismatch: order .* totals \$45\.00 but the payment is \$1\.00/);
    expect(calls.fulfillLineItems).toHaveLength(0);
  });
});
