import { ApplicationFailure } from '@temporalio/common';
import { checkoutEventSignal, fulfillmentQuery, receivedView, STRIPE_CONFIGURATION_ERROR, type FulfillCheckoutInput, type FulfillmentView } from '../../workflows/definitions';
import { fulfillCheckout } from '../../workflows';
import { fakeActivities } from '../helpers/fake-activities';
import { timeSkippingWorkflowTests } from '../helpers/test-workers';
import { session } from '../fixtures/sessions';

// A delayed payment's failure is told only by its event; a redrive carries none
// (patched('redrive-recalls-payment-failure'), found by the schedule explorer and a hostile review).
const suite = timeSkippingWorkflowTests('redrive-recalls-failure');
const { withWorker } = suite;

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const start = (input: FulfillCheckoutInput) =>
  suite.env.client.workflow.start(fulfillCheckout, { taskQueue: suite.taskQueue, workflowId: input.sessionId, args: [input], workflowIdReusePolicy: 'ALLOW_DUPLICATE' });

const failedAfterItsFailureEvent = (sessionId: string): FulfillmentView => ({
  ...receivedView(sessionId),
  status: 'failed',
  paymentStatus: 'unpaid',
  reason: 'canceled by an operator',
  eventIds: ['evt_completed', 'evt_payment_failed'],
});

test('when an order whose delayed payment failed is redriven, canceled while it reads the session, and redriven again, then the second redrive still knows the payment failed', async () => {
  const unpaid = session({ paymentStatus: 'unpaid' });
  const { activities, calls } = fakeActivities({ current: () => unpaid, unconfirmedEventIds: ['evt_completed'] }, failedAfterItsFailureEvent(unpaid.id));
  let reading = true;
  const retrieve = activities.retrieveSession;
  activities.retrieveSession = async (id) => {
    while (reading) await new Promise((resolve) => setTimeout(resolve, 50));
    return retrieve(id);
  };
  await withWorker(activities, async () => {
    const first = await start({ sessionId: unpaid.id, redrive: true });
    await until(() => calls.confirmEvent.length >= 2 && calls.statuses.length >= 1);
    await first.cancel();
    await first.result().catch(() => undefined);
    reading = false;
    // The canceled redrive's record keeps the failure's event: without it the next redrive had nothing to recall.
    expect(calls.views.at(-1)).toMatchObject({ status: 'failed', eventIds: expect.arrayContaining(['evt_payment_failed']) });

    const second = await start({ sessionId: unpaid.id, redrive: true });
    await until(async () => (await second.query(fulfillmentQuery)).status === 'payment_failed');
    expect(calls.views.at(-1)!.status).toBe('payment_failed');
  });
});

test('when Stripe refuses the key while a redrive recalls the failure and an operator cancels, then the record says failed, not paused', async () => {
  const unpaid = session({ paymentStatus: 'unpaid' });
  const { activities, calls } = fakeActivities({ current: () => unpaid }, failedAfterItsFailureEvent(unpaid.id));
  activities.confirmEvent = async () => {
    throw ApplicationFailure.retryable('Stripe refused the API key', STRIPE_CONFIGURATION_ERROR);
  };
  await withWorker(activities, async () => {
    const redriven = await start({ sessionId: unpaid.id, redrive: true });
    await until(() => calls.statuses.includes('paused'));
    await redriven.cancel();
    await redriven.result().catch(() => undefined);
    // Before, the recall ran outside the run's try: the cancel left `paused`, which the stuck sweep starts again.
    expect(calls.views.at(-1)!.status).toBe('failed');
  });
});

test('when an operator cancels while the payment-failed email is sent, then the verdict is still written: payment_failed, with the failure event', async () => {
  const unpaid = session({ paymentStatus: 'unpaid' });
  const { activities, calls } = fakeActivities({ current: () => unpaid });
  let sending = true;
  let emailStarted = false;
  const email = activities.emailPaymentFailed;
  activities.emailPaymentFailed = async (summary) => {
    emailStarted = true;
    while (sending) await new Promise((resolve) => setTimeout(resolve, 50));
    return email(summary);
  };
  await withWorker(activities, async () => {
    const run = await start({ sessionId: unpaid.id });
    await until(async () => (await run.query(fulfillmentQuery)).status === 'awaiting_payment');
    await run.signal(checkoutEventSignal, { id: 'evt_payment_failed', type: 'checkout.session.async_payment_failed' });
    await until(() => emailStarted);
    await run.cancel();
    await run.result().catch(() => undefined);
    sending = false;
    // The cancel cut off the verdict's write; before, nothing was recorded and the record stayed awaiting_payment.
    // The verdict stands and is written, with the failure's event.
    expect(calls.views.at(-1)).toMatchObject({ status: 'payment_failed', eventIds: expect.arrayContaining(['evt_payment_failed']) });
  });
});
