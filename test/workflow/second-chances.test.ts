import { randomBytes } from 'node:crypto';
import { FulfillmentStarter } from '../../src/temporal/fulfillment-starter';
import {
  checkoutEventSignal,
  fulfillmentQuery,
  receivedView,
  type CheckoutEvent,
  type FulfillCheckoutInput,
  type FulfillmentView,
  type OrderSummary,
  type PaymentIntentSummary,
  type SessionSummary,
} from '../../workflows/definitions';
import { fulfillCheckout, fulfillPaymentIntent } from '../../workflows';
import { fakeActivities } from '../helpers/fake-activities';
import { timeSkippingWorkflowTests } from '../helpers/test-workers';
import { session } from '../fixtures/sessions';

// Second chances on the time-skipping server: an order that failed or that an operator canceled
// stays so until an operator redrives it, whichever path asks, and no event is swallowed or taken
// on its word.
const suite = timeSkippingWorkflowTests('second-chances');
const { withWorker } = suite;
const randomId = () => randomBytes(8).toString('hex');

function startSession(input: FulfillCheckoutInput, signal?: CheckoutEvent) {
  const options = { taskQueue: suite.taskQueue, workflowId: input.sessionId, args: [input] as [FulfillCheckoutInput] };
  return signal
    ? suite.env.client.workflow.signalWithStart(fulfillCheckout, { ...options, signal: checkoutEventSignal, signalArgs: [signal] })
    : suite.env.client.workflow.start(fulfillCheckout, options);
}

/** The starter every path uses, reading what the fake database last recorded. */
function starterOver(views: () => FulfillmentView | undefined) {
  const store = { getRecord: async () => (views() ? { view: views()!, createdAt: new Date(), updatedAt: new Date() } : null) };
  return new FulfillmentStarter(suite.env.client, store, { taskQueue: suite.taskQueue, paymentDeadline: '7 days', timeoutMs: 10_000 });
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function gate() {
  let arrive!: () => void;
  let open!: () => void;
  const reached = new Promise<void>((resolve) => (arrive = resolve));
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { reached, open, pass: async () => (arrive(), await opened) };
}

async function firedTimers(workflowId: string): Promise<number> {
  const events = (await suite.env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  return events.filter((event) => event.timerFiredEventAttributes).length;
}

describe('a Checkout Session', () => {
  test('when Checkout completes while the session is being read, then the event is not swallowed: it is read again at once, no re-check timer waited out', async () => {
    const open = session({ status: 'open', paymentStatus: 'unpaid' });
    const stripe = { session: open, current: () => stripe.session };
    const { activities, calls } = fakeActivities(stripe);
    const held = gate();
    const retrieve = activities.retrieveSession;
    activities.retrieveSession = async (id) => {
      const read = await retrieve(id); // what Stripe says when the read starts...
      if (calls.retrieveSession === 1) await held.pass(); // ...answered only after the event came
      return read;
    };

    const result = await withWorker(activities, async () => {
      const handle = await startSession({ sessionId: open.id });
      await held.reached;
      stripe.session = { ...open, status: 'complete', paymentStatus: 'paid' };
      await handle.signal(checkoutEventSignal, { id: `evt_${randomId()}`, type: 'checkout.session.completed' });
      await waitFor(async () => ((await handle.fetchHistory()).events ?? []).some((event) => event.workflowExecutionSignaledEventAttributes));
      held.open();
      return handle.result();
    });

    expect(result.status).toBe('fulfilled');
    expect(await firedTimers(open.id)).toBe(0); // today's main waited out the 1-hour re-check first
    expect(calls.retrieveSession).toBe(2);
  });

  test('when a payment failure Stripe never sent is signalled (forged with the CLI), then nothing changes: no email, and the real success is fulfilled', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const stripe = { session: unpaid, current: () => stripe.session, unconfirmedEventIds: ['evt_forged'] };
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => {
      const handle = await startSession({ sessionId: unpaid.id }, { id: 'evt_completed', type: 'checkout.session.completed' });
      await waitFor(async () => (await handle.query(fulfillmentQuery)).status === 'awaiting_payment');
      await handle.signal(checkoutEventSignal, { id: 'evt_forged', type: 'checkout.session.async_payment_failed' });
      await waitFor(() => calls.confirmEvent.includes('evt_forged'));
      await waitFor(() => calls.retrieveSession >= 2);
      expect((await handle.query(fulfillmentQuery)).status).toBe('awaiting_payment');

      stripe.session = { ...unpaid, paymentStatus: 'paid' };
      await handle.signal(checkoutEventSignal, { id: 'evt_real_success', type: 'checkout.session.async_payment_succeeded' });
      return handle.result();
    });

    expect(result.status).toBe('fulfilled');
    expect(calls.emailPaymentFailed).toHaveLength(0);
    expect(calls.statuses).not.toContain('payment_failed');
    expect(calls.fulfillLineItems).toHaveLength(1);
  });

  test('when Stripe confirms the payment failure, then it is decided on: payment_failed, one email', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const { activities, calls } = fakeActivities({ current: () => unpaid });

    const result = await withWorker(activities, async () =>
      (await startSession({ sessionId: unpaid.id }, { id: 'evt_real_failure', type: 'checkout.session.async_payment_failed' })).result(),
    );

    expect(result.status).toBe('payment_failed');
    expect(calls.confirmEvent).toEqual(['evt_real_failure']);
    expect(calls.emailPaymentFailed).toHaveLength(1);
  });

  test('when an operator cancels a session, then it records failed, and neither a redelivered webhook nor the landing page reopens it; a redrive does', async () => {
    const unpaid = session({ paymentStatus: 'unpaid' });
    const stripe = { session: unpaid, current: () => stripe.session };
    const { activities, calls } = fakeActivities(stripe);
    const starter = starterOver(() => calls.views.at(-1));
    const redrive = new FulfillmentStarter(suite.env.client, { getRecord: async () => null }, { taskQueue: suite.taskQueue, paymentDeadline: '7 days', timeoutMs: 10_000, redrive: true });

    await withWorker(activities, async () => {
      const handle = await startSession({ sessionId: unpaid.id });
      await waitFor(async () => (await handle.query(fulfillmentQuery)).status === 'awaiting_payment');
      await handle.cancel();
      await expect(handle.result()).rejects.toThrow();
      expect(calls.views.at(-1)).toMatchObject({ status: 'failed', reason: 'canceled by an operator' });

      stripe.session = { ...unpaid, paymentStatus: 'paid' }; // the fraudster's payment went through after all
      expect(await starter.deliver(unpaid.id, { id: 'evt_success', type: 'checkout.session.async_payment_succeeded' })).toBe('stopped');
      expect(await starter.ensureStarted(unpaid.id)).toBe('stopped');
      expect((await handle.describe()).status.name).toBe('CANCELLED'); // no new run
      expect(calls.fulfillLineItems).toHaveLength(0);

      expect(await redrive.ensureStarted(unpaid.id)).toBe('accepted');
      await waitFor(() => calls.views.at(-1)?.status === 'fulfilled');
    });
    expect(calls.fulfillLineItems).toHaveLength(1);
  });
});

describe('an order paid by PaymentIntent', () => {
  function orderPaidBy(status: string) {
    const paid = session();
    const paymentIntentId = `pi_${randomId()}`;
    const order: OrderSummary = { orderId: `order_${randomId()}`, currency: 'usd', amountTotal: 4500, lineItems: paid.lineItems };
    const intent: PaymentIntentSummary = {
      id: paymentIntentId,
      status,
      amount: 4500,
      currency: 'usd',
      captureMethod: 'automatic',
      livemode: false,
      orderId: order.orderId,
      captureBefore: null,
      lastPaymentError: null,
    };
    const stripe = { current: (): SessionSummary => paid, checkoutSessionId: null, order, paymentIntent: () => intent };
    return { paymentIntentId, stripe };
  }

  test('when the starter is asked for a pi_ ID, then it starts fulfillPaymentIntent, never fulfillCheckout', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('succeeded');
    const { activities, calls } = fakeActivities(stripe);

    await withWorker(activities, async () => {
      expect(await starterOver(() => undefined).ensureStarted(paymentIntentId)).toBe('accepted');
      await waitFor(() => calls.views.at(-1)?.status === 'fulfilled');
    });
    const described = await suite.env.client.workflow.getHandle(paymentIntentId).describe();
    expect(described.type).toBe('fulfillPaymentIntent');
    expect(calls.retrieveSession).toBe(0);
  });

  test('when an operator cancels it while Stripe is still being read (an outage), then failed is recorded, and a later webhook does not reopen it', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('succeeded');
    const { activities, calls } = fakeActivities(stripe);
    const held = gate();
    activities.sessionOfPaymentIntent = async () => (await held.pass(), null);
    const starter = starterOver(() => calls.views.at(-1));

    await withWorker(activities, async () => {
      await starter.deliver(paymentIntentId, { id: `evt_${randomId()}`, type: 'payment_intent.succeeded' });
      await held.reached;
      const handle = suite.env.client.workflow.getHandle(paymentIntentId);
      await handle.cancel();
      held.open();
      await expect(handle.result()).rejects.toThrow();
      expect(calls.views.at(-1)).toMatchObject({ status: 'failed', reason: 'canceled by an operator' }); // today's main recorded nothing
      expect(await starter.deliver(paymentIntentId, { id: `evt_${randomId()}`, type: 'payment_intent.succeeded' })).toBe('stopped');
    });
    expect(calls.fulfillLineItems).toHaveLength(0);
  });

  test('when a PaymentIntent the customer never tried to pay is canceled (a duplicate, an abandoned one), then no payment-failed email is sent', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('canceled');
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () =>
      (await suite.env.client.workflow.signalWithStart(fulfillPaymentIntent, { taskQueue: suite.taskQueue, workflowId: paymentIntentId, args: [{ paymentIntentId }], signal: checkoutEventSignal, signalArgs: [{ id: `evt_${randomId()}`, type: 'payment_intent.canceled' }] })).result(),
    );

    expect(result.status).toBe('payment_failed');
    expect(calls.emailPaymentFailed).toHaveLength(0);
    expect(calls.fulfillLineItems).toHaveLength(0);
  });

  test('when its record says failed and an event starts a new run without a redrive, then nothing is fulfilled; with one, it is', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('succeeded');
    const recorded: FulfillmentView = { ...receivedView(paymentIntentId), status: 'failed', reason: 'canceled by an operator' };
    const { activities, calls } = fakeActivities(stripe, recorded);
    const start = (redrive: boolean) =>
      suite.env.client.workflow.start(fulfillPaymentIntent, { taskQueue: suite.taskQueue, workflowId: `${paymentIntentId}`, args: [{ paymentIntentId, ...(redrive ? { redrive } : {}) }], workflowIdReusePolicy: 'ALLOW_DUPLICATE' });

    const late = await withWorker(activities, async () => (await start(false)).result());
    expect(late.status).toBe('failed');
    expect(calls.fulfillLineItems).toHaveLength(0);
    expect(calls.retrievePaymentIntent).toBe(0);

    const redriven = await withWorker(activities, async () => (await start(true)).result());
    expect(redriven.status).toBe('fulfilled');
    expect(calls.fulfillLineItems).toHaveLength(1);
  });
});
