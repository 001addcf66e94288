import { randomBytes } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Activities } from '../../activities';
import { checkoutEventSignal, fulfillmentQuery, receivedView, type CheckoutEvent, type FulfillmentView, type MoneyBack, type OrderSummary, type PaymentIntentSummary } from '../../workflows/definitions';
import { fulfillPaymentIntent } from '../../workflows';
import { fakeActivities } from '../helpers/fake-activities';
import { keepHistory } from '../helpers/histories';
import { timeSkippingWorkflowTests } from '../helpers/test-workers';
import { lineItem, session } from '../fixtures/sessions';

// Orders paid by PaymentIntent, on the time-skipping server: no goods given away unpaid, no money
// kept while the customer is told nothing was taken, no order shipped twice.
const suite = timeSkippingWorkflowTests('capture');
const { withWorker } = suite;
const randomId = () => randomBytes(8).toString('hex');

const serverNowSeconds = async (plus = 0) => Math.floor((await suite.env.currentTimeMs()) / 1000) + plus;

/** An order and its PaymentIntent, which the test moves through Stripe's statuses. */
function orderPaidBy(status: string, overrides: Partial<PaymentIntentSummary> = {}) {
  const paid = session();
  const paymentIntentId = `pi_${randomId()}`;
  const order: OrderSummary = { orderId: `order_${randomId()}`, currency: 'usd', amountTotal: 4500, lineItems: paid.lineItems };
  const stripe = {
    current: () => paid,
    checkoutSessionId: null as string | null,
    order: order as OrderSummary | null,
    intent: { id: paymentIntentId, status, amount: 4500, amountCapturable: status === 'requires_capture' ? 4500 : 0, amountReceived: status === 'succeeded' ? 4500 : 0, currency: 'usd', captureMethod: 'manual', livemode: false, orderId: order.orderId, captureBefore: null, lastPaymentError: null, ...overrides } as PaymentIntentSummary,
    paymentIntent: () => stripe.intent,
    money: { refunds: [], disputes: [] } as MoneyBack,
    moneyBack: () => stripe.money,
    claims: [] as [string, string][],
  };
  return { paymentIntentId, order, stripe };
}

function startOrder(paymentIntentId: string, type: CheckoutEvent['type'] = 'payment_intent.amount_capturable_updated') {
  return suite.env.client.workflow.signalWithStart(fulfillPaymentIntent, {
    taskQueue: suite.taskQueue,
    workflowId: paymentIntentId,
    args: [{ paymentIntentId }],
    signal: checkoutEventSignal,
    signalArgs: [{ id: `evt_${randomId()}`, type }],
  });
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A fulfillment attempt that keeps going (heartbeating) until it is canceled, and then stops. */
function slowAttempt() {
  return async () => {
    const context = Context.current();
    for (;;) {
      context.heartbeat();
      if (context.cancellationSignal.aborted) await context.cancelled; // rejects with the cancellation
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
}

describe('manual capture', () => {
  test('when an operator cancels an authorized order mid-fulfillment, then what was fulfilled is reversed, the hold released, and it records canceled', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('requires_capture', { captureBefore: await serverNowSeconds(7 * 86_400) });
    const { activities, calls } = fakeActivities(stripe);
    activities.fulfillLineItems = slowAttempt() as unknown as Activities['fulfillLineItems'];

    await withWorker(activities, async () => {
      const handle = await startOrder(paymentIntentId);
      await waitFor(() => calls.statuses.includes('fulfilling'));
      await handle.cancel();
      await expect(handle.result()).rejects.toThrow();
    });

    // Today's main: `failed`, nothing reversed, captured or released.
    expect(calls.views.at(-1)).toMatchObject({ status: 'canceled', reason: 'canceled by an operator' });
    expect(calls.reverseLineItems).toEqual([expect.objectContaining({ items: 'all' })]);
    expect(calls.cancels).toBe(1);
    expect(calls.captures).toBe(0);
    expect(calls.emailOrderCanceled).toBe(1);
  });

  test('when Stripe refuses the capture but the PaymentIntent was captured already (in the Dashboard), then the order is fulfilled, not released', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('requires_capture', { captureBefore: await serverNowSeconds(7 * 86_400) });
    const { activities, calls } = fakeActivities(stripe);
    activities.capturePaymentIntent = async () => {
      stripe.intent = { ...stripe.intent, status: 'succeeded', amountReceived: 4500, amountCapturable: 0 };
      throw ApplicationFailure.nonRetryable('This PaymentIntent could not be captured because it has a status of succeeded.', 'CaptureRefused');
    };

    const result = await withWorker(activities, async () => (await startOrder(paymentIntentId)).result());

    expect(result.status).toBe('fulfilled'); // today's main: reversed everything, `canceled`, "nothing was taken"
    expect(calls.cancels).toBe(0);
    expect(calls.emailOrderCanceled).toBe(0);
    expect(calls.reverseLineItems).toHaveLength(0);
    expect(calls.emailReceipt).toHaveLength(1);
  });

  test('when only part of the total is authorized, then nothing is fulfilled and the hold is released', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('requires_capture', { amountCapturable: 3000, captureBefore: await serverNowSeconds(7 * 86_400) });
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => (await startOrder(paymentIntentId)).result());

    expect(result.status).toBe('canceled');
    expect(result.reason).toMatch(/AmountMismatch: .* authorized \$30\.00/);
    expect(calls.fulfillLineItems).toHaveLength(0);
    expect(calls.captures).toBe(0);
    expect(calls.cancels).toBe(1);
  });

  test('when every capture attempt fails until shortly before the authorization lapses, then the retries stop and the hold is released in time', async () => {
    // Retries stop 10 minutes before the authorization lapses: here, at once (the floor is a few seconds of tries).
    const { paymentIntentId, stripe } = orderPaidBy('requires_capture', { captureBefore: await serverNowSeconds(3600 + 10) }); // 10 s of margin: a loaded machine may take 2 s to start the order
    const { activities, calls } = fakeActivities(stripe);
    activities.fulfillLineItems = async (input) => input.lineItems.map((item) => ({ lineItemId: item.id, description: item.description, quantity: item.quantity }));
    let attempts = 0;
    activities.capturePaymentIntent = async () => {
      attempts++;
      throw new Error('Stripe answered 500 (replayed under the idempotency key)');
    };

    const result = await withWorker(activities, async () => (await startOrder(paymentIntentId)).result());

    expect(result.status).toBe('canceled'); // today's main: the capture retried for ever, past the lapse
    expect(result.reason).toMatch(/capture did not go through before the authorization lapses/);
    expect(attempts).toBeGreaterThanOrEqual(1);
    expect(calls.cancels).toBe(1);
  }, 120_000);
});

describe('an operator’s cancel against a verdict', () => {
  /**
   * Runs the order until the first write of `verdict`, which the operator's cancel then cuts off:
   * it never lands (`lands: false`), or lands and its answer never reaches the workflow.
   */
  async function cancelDuringTheWriteOf(verdict: string, lands: boolean, intent: ReturnType<typeof orderPaidBy>, event: CheckoutEvent['type']) {
    const { activities, calls } = fakeActivities(intent.stripe);
    let cutOff = false;
    const record = activities.recordStatus;
    activities.recordStatus = async (input) => {
      if (input.view.status !== verdict || cutOff) return record(input);
      cutOff = true;
      if (lands) await record(input);
      await Context.current().cancelled;
    };
    await withWorker(activities, async () => {
      const handle = await startOrder(intent.paymentIntentId, event);
      await waitFor(() => cutOff);
      await handle.cancel();
      await handle.result().catch(() => undefined);
    });
    return calls;
  }

  test('when an operator cancels while the payment_failed verdict is being written, then the verdict is written all the same, never left at the status before', async () => {
    const calls = await cancelDuringTheWriteOf('payment_failed', false, orderPaidBy('canceled', { captureMethod: 'automatic', lastPaymentError: 'card_declined' }), 'payment_intent.canceled');
    // Before, the view's payment_failed counted as recorded: nothing was written and the record stayed received.
    expect(calls.views.at(-1)).toMatchObject({ status: 'payment_failed' });
    expect(calls.statuses).not.toContain('failed');
  });

  test('when an operator cancels after the goods and receipt went out, while fulfilled is being written, then the record says fulfilled, not failed', async () => {
    const calls = await cancelDuringTheWriteOf('fulfilled', true, orderPaidBy('succeeded', { captureMethod: 'automatic' }), 'payment_intent.succeeded');
    expect(calls.fulfillLineItems).toHaveLength(1);
    expect(calls.emailReceipt).toHaveLength(1);
    expect(calls.views.at(-1)).toMatchObject({ status: 'fulfilled' });
    expect(calls.statuses).not.toContain('failed');
  });
});

describe('releases that must not keep money or block the next payment', () => {
  test('when Stripe refuses the release because the capture landed meanwhile, then the order is fulfilled, never "nothing was taken"', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('requires_capture', { captureBefore: await serverNowSeconds(7 * 86_400) });
    const { activities, calls } = fakeActivities(stripe);
    activities.fulfillLineItems = async () => {
      throw ApplicationFailure.nonRetryable('sold out', 'OutOfStock');
    };
    activities.cancelPaymentIntent = async () => {
      stripe.intent = { ...stripe.intent, status: 'succeeded', amountReceived: 4500 }; // a capture in the Dashboard won the race
      throw ApplicationFailure.nonRetryable('This PaymentIntent could not be canceled because it has a status of succeeded.', 'CancelRefused');
    };

    const outcome = await withWorker(activities, async () => (await startOrder(paymentIntentId)).result().catch((err: unknown) => err));

    expect(calls.emailOrderCanceled).toBe(0); // the customer is never told nothing was taken
    expect(calls.views.at(-1)?.status).not.toBe('canceled');
    expect(outcome).toBeDefined();
  });

  test('when an authorization is released, then the order is given back: the customer’s next PaymentIntent for it is fulfilled', async () => {
    // An authorization short of the total: claimed, then released.
    const { paymentIntentId, stripe, order } = orderPaidBy('requires_capture', { amountCapturable: 3000, captureBefore: await serverNowSeconds(7 * 86_400) });
    const claimStore = new Map<string, string>();
    const first = fakeActivities({ ...stripe, claimStore });

    const released = await withWorker(first.activities, async () => (await startOrder(paymentIntentId)).result());
    expect(released.status).toBe('canceled');

    const next = orderPaidBy('succeeded', { captureMethod: 'automatic', orderId: order.orderId });
    const second = fakeActivities({ ...next.stripe, order, claimStore });
    const paid = await withWorker(second.activities, async () => (await startOrder(next.paymentIntentId, 'payment_intent.succeeded')).result());

    expect(paid.status).toBe('fulfilled'); // kept by the released payment, the order could never be paid (DuplicatePayment)
    expect(second.calls.refunds).toEqual([]);
    expect(second.calls.fulfillLineItems).toHaveLength(1);
  });
});

describe('the order checked against what was paid', () => {
  test('when the cart changed after a declined attempt (order and amount updated), then the order as paid is fulfilled, not the stale one', async () => {
    const { paymentIntentId, stripe, order } = orderPaidBy('requires_payment_method', { captureMethod: 'automatic', lastPaymentError: 'card_declined' });
    const { activities, calls } = fakeActivities(stripe);

    await withWorker(activities, async () => {
      const handle = await startOrder(paymentIntentId, 'payment_intent.payment_failed');
      await waitFor(() => calls.statuses.includes('awaiting_payment'));
      const mug = lineItem({ description: 'Mug', amountSubtotal: 100, amountTotal: 100 });
      stripe.order = { ...order, amountTotal: 100, lineItems: [mug] };
      stripe.intent = { ...stripe.intent, status: 'succeeded', amount: 100, amountReceived: 100, lastPaymentError: null };
      await handle.signal(checkoutEventSignal, { id: `evt_${randomId()}`, type: 'payment_intent.succeeded' });
      await handle.result();
    });

    expect(calls.fulfillLineItems).toHaveLength(1);
    expect(calls.fulfillLineItems[0]!.lineItems.map((item) => item.description)).toEqual(['Mug']); // today's main: the 4 500 order
  });

  test('when the cart changed and the new total is refunded in full first, then nothing is fulfilled and the record shows the order as paid', async () => {
    const { paymentIntentId, stripe, order } = orderPaidBy('requires_payment_method', { captureMethod: 'automatic', lastPaymentError: 'card_declined' });
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => {
      const handle = await startOrder(paymentIntentId, 'payment_intent.payment_failed');
      await waitFor(() => calls.statuses.includes('awaiting_payment'));
      stripe.order = { ...order, amountTotal: 100, lineItems: [lineItem({ description: 'Mug', amountSubtotal: 100, amountTotal: 100 })] };
      stripe.intent = { ...stripe.intent, status: 'succeeded', amount: 100, amountReceived: 100, lastPaymentError: null };
      stripe.money = { refunds: [{ id: `re_${randomId()}`, amount: 100, currency: 'usd', status: 'succeeded', lineItems: null }], disputes: [] };
      await handle.signal(checkoutEventSignal, { id: `evt_${randomId()}`, type: 'charge.refunded' });
      await handle.signal(checkoutEventSignal, { id: `evt_${randomId()}`, type: 'payment_intent.succeeded' });
      return handle.result();
    });

    expect(calls.fulfillLineItems).toHaveLength(0); // measured against the stale 45.00, it shipped
    expect(result.status).toBe('refunded');
    expect(result.amountTotal).toBe(100);
  });

  test('when the payment was refunded in full but its refund event is still on its way (routed through Stripe), then nothing is fulfilled', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('succeeded', { captureMethod: 'automatic' });
    stripe.money = { refunds: [{ id: `re_${randomId()}`, amount: 4500, currency: 'usd', status: 'succeeded', lineItems: null }], disputes: [] };
    const { activities, calls } = fakeActivities(stripe);

    const result = await withWorker(activities, async () => (await startOrder(paymentIntentId, 'payment_intent.succeeded')).result());

    expect(calls.fulfillLineItems).toHaveLength(0); // found by the fault suite: fulfilled, receipted, then reversed
    expect(calls.emailReceipt).toHaveLength(0);
    expect(result.status).toBe('refunded');
  });

  test('when the payment that succeeded does not cover the order as it stands, then nothing is fulfilled', async () => {
    const { paymentIntentId, stripe, order } = orderPaidBy('processing', { captureMethod: 'automatic' });
    const { activities, calls } = fakeActivities(stripe);

    await withWorker(activities, async () => {
      const handle = await startOrder(paymentIntentId, 'payment_intent.processing');
      await waitFor(() => calls.statuses.includes('awaiting_payment'));
      stripe.intent = { ...stripe.intent, status: 'succeeded', amount: 100, amountReceived: 100 }; // the amount changed; the order did not
      await handle.signal(checkoutEventSignal, { id: `evt_${randomId()}`, type: 'payment_intent.succeeded' });
      await expect(handle.result()).rejects.toThrow();
    });

    expect(calls.views.at(-1)?.reason).toMatch(new RegExp(`AmountMismatch: order ${order.orderId} totals \\$45\\.00 but the payment received \\$1\\.00`));
    expect(calls.fulfillLineItems).toHaveLength(0);
  });

  test('when a refund event arrives while the order waits for its payment (the success event lost), then Stripe is read again at once: refunded, nothing fulfilled', async () => {
    const { paymentIntentId, stripe } = orderPaidBy('processing', { captureMethod: 'automatic' });
    const { activities, calls } = fakeActivities(stripe);

    await withWorker(activities, async () => {
      const handle = await startOrder(paymentIntentId, 'payment_intent.processing');
      await waitFor(() => calls.statuses.includes('awaiting_payment'));
      stripe.intent = { ...stripe.intent, status: 'succeeded', amountReceived: 4500 };
      stripe.money = { refunds: [{ id: `re_${randomId()}`, amount: 4500, currency: 'eur', status: 'succeeded', lineItems: null }], disputes: [] };
      await handle.signal(checkoutEventSignal, { id: `evt_${randomId()}`, type: 'charge.refunded' });
      // Queried, not awaited: awaiting the result would let the server skip to the next re-check.
      // Before, the run slept until its daily re-check: the refund's event woke nothing.
      await waitFor(async () => (await handle.query(fulfillmentQuery)).status === 'refunded');
      await keepHistory('payment-intent-refund-while-waiting', suite.env.client, paymentIntentId);
    });

    expect(calls.fulfillLineItems).toHaveLength(0);
  });

  test('when a second PaymentIntent pays an order another one already paid (two tabs), then it fulfills nothing and its money goes back', async () => {
    const { paymentIntentId, stripe, order } = orderPaidBy('succeeded', { captureMethod: 'automatic' });
    stripe.claims = [[order.orderId, 'pi_the_first_payment']];
    const { activities, calls } = fakeActivities(stripe);
    const refund = activities.refundPaymentIntent;
    activities.refundPaymentIntent = async (id) => {
      stripe.money = { refunds: [{ id: `re_${id}`, amount: 4500, currency: 'usd', status: 'succeeded', lineItems: null }], disputes: [] };
      return refund(id);
    };

    const result = await withWorker(activities, async () => (await startOrder(paymentIntentId, 'payment_intent.succeeded')).result());

    expect(calls.fulfillLineItems).toHaveLength(0); // today's main: shipped twice
    expect(calls.refunds).toEqual([paymentIntentId]);
    expect(result.status).toBe('refunded');
    expect(result.reason).toMatch(/DuplicatePayment: order .* is already paid by pi_the_first_payment/);
    expect(calls.emailRefund).toHaveLength(1);
  });
});

describe('money back before the order was fulfilled (a dispute lost, a refund in full), then the merchant’s again', () => {
  /** The record such an order leaves: `dispute_lost`, nothing fulfilled, nothing reversed; Stripe now says won. */
  function wonBackOrder() {
    const { paymentIntentId, stripe, order } = orderPaidBy('succeeded', { captureMethod: 'automatic' });
    const dispute = { id: `dp_${randomId()}`, amount: 4500, currency: 'usd', status: 'lost', reason: 'fraudulent' };
    const record: FulfillmentView = {
      ...receivedView(paymentIntentId),
      status: 'dispute_lost',
      paymentStatus: 'paid',
      mode: 'payment',
      currency: 'usd',
      amountTotal: 4500,
      paymentIntentId,
      reason: 'a dispute was lost before it was fulfilled; nothing was fulfilled',
      disputes: [{ ...dispute, outcome: 'lost', reversed: [] }],
      eventIds: [`evt_${randomId()}`],
    };
    stripe.money = { refunds: [], disputes: [{ ...dispute, status: 'won' }] };
    return { paymentIntentId, stripe, order, record };
  }

  test('when another payment has paid the order meanwhile, then this payment is refunded and nothing is fulfilled', async () => {
    const { paymentIntentId, stripe, order, record } = wonBackOrder();
    stripe.claims = [[order.orderId, 'pi_the_second_payment']];
    const { activities, calls } = fakeActivities(stripe, record);
    const refund = activities.refundPaymentIntent;
    activities.refundPaymentIntent = async (id) => {
      stripe.money = { ...stripe.money, refunds: [{ id: `re_${id}`, amount: 4500, currency: 'usd', status: 'succeeded', lineItems: null }] };
      return refund(id);
    };

    const result = await withWorker(activities, async () => {
      const handle = await startOrder(paymentIntentId, 'charge.dispute.closed');
      const ended = await handle.result().catch(() => handle.query(fulfillmentQuery));
      await keepHistory('payment-intent-won-back-paid-again', suite.env.client, paymentIntentId);
      return ended;
    });

    // Before: the record went `failed` and both payments stayed with the merchant (the explorer's long run).
    expect(calls.refunds).toEqual([paymentIntentId]);
    expect(result.status).toBe('refunded');
    expect(result.reason).toMatch(/DuplicatePayment: order .* is already paid by pi_the_second_payment/);
    expect(calls.fulfillLineItems).toHaveLength(0);
  });

  test('when a refund in full before fulfilling fails after it had succeeded and another payment has paid the order, then this payment is refunded again as a duplicate', async () => {
    const { paymentIntentId, stripe, order } = orderPaidBy('succeeded', { captureMethod: 'automatic' });
    const first = { id: `re_${randomId()}`, amount: 4500, currency: 'usd', status: 'succeeded', lineItems: null };
    const record: FulfillmentView = {
      ...receivedView(paymentIntentId),
      status: 'refunded',
      paymentStatus: 'paid',
      mode: 'payment',
      currency: 'usd',
      amountTotal: 4500,
      paymentIntentId,
      reason: 'refunded in full before it was fulfilled; nothing was fulfilled',
      refunds: [{ ...first, reversed: [], note: null, emailed: true }],
      eventIds: [`evt_${randomId()}`],
    };
    stripe.money = { refunds: [{ ...first, status: 'failed' }], disputes: [] };
    stripe.claims = [[order.orderId, 'pi_the_second_payment']];
    const { activities, calls } = fakeActivities(stripe, record);
    const refund = activities.refundPaymentIntent;
    activities.refundPaymentIntent = async (id) => {
      stripe.money = { ...stripe.money, refunds: [...stripe.money.refunds, { id: `re_${id}`, amount: 4500, currency: 'usd', status: 'succeeded', lineItems: null }] };
      return refund(id);
    };

    const result = await withWorker(activities, async () => (await startOrder(paymentIntentId, 'refund.updated')).result());

    // Before: the record went `failed` and both payments stayed with the merchant.
    expect(calls.refunds).toEqual([paymentIntentId]);
    expect(result.status).toBe('refunded');
    expect(calls.fulfillLineItems).toHaveLength(0);
  });

  test('when no other payment has paid the order, then it is fulfilled once, with one receipt', async () => {
    const { paymentIntentId, stripe, record } = wonBackOrder();
    const { activities, calls } = fakeActivities(stripe, record);

    const result = await withWorker(activities, async () => (await startOrder(paymentIntentId, 'charge.dispute.closed')).result());

    expect(result.status).toBe('fulfilled');
    expect(result.reason).toBeNull();
    expect(calls.fulfillLineItems).toHaveLength(1);
    expect(calls.emailReceipt).toHaveLength(1);
    expect(calls.refunds).toEqual([]);
  });
});
