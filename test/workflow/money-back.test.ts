import { randomBytes } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { coveredLineItems } from '../../src/stripe/money-back';
import { disputeOutcome } from '../../workflows/money-back';
import {
  checkoutEventSignal,
  fulfillmentQuery,
  receivedView,
  type CheckoutEvent,
  type FulfillCheckoutInput,
  type FulfillmentView,
  type MoneyBack,
  type RefundSummary,
  type SessionSummary,
} from '../../workflows/definitions';
import { fulfillCheckout } from '../../workflows';
import { fakeActivities } from '../helpers/fake-activities';
import { timeSkippingWorkflowTests } from '../helpers/test-workers';
import { session } from '../fixtures/sessions';

// Money coming back, on the time-skipping server: an event counts as handled only once what it
// announced is settled, a refund that later fails is never left `refunded`, and every dispute
// status Stripe documents is mapped.
const suite = timeSkippingWorkflowTests('money-back');
const { withWorker } = suite;
const randomId = () => randomBytes(8).toString('hex');

function start(input: FulfillCheckoutInput, signal?: CheckoutEvent) {
  const options = { taskQueue: suite.taskQueue, workflowId: input.sessionId, args: [input] as [FulfillCheckoutInput] };
  return signal
    ? suite.env.client.workflow.signalWithStart(fulfillCheckout, { ...options, signal: checkoutEventSignal, signalArgs: [signal] })
    : suite.env.client.workflow.start(fulfillCheckout, options);
}

function paidWithMoneyBack() {
  const paid = session({ paymentIntentId: `pi_${randomId()}` });
  const stripe = { session: paid, money: { refunds: [], disputes: [] } as MoneyBack, current: () => stripe.session, moneyBack: () => stripe.money };
  return { paid, stripe };
}

function recordOf(paid: SessionSummary, overrides: Partial<FulfillmentView>): FulfillmentView {
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
    ...overrides,
  };
}

const refundOf = (paid: SessionSummary, overrides: Partial<RefundSummary> = {}): RefundSummary => ({
  id: `re_${randomId()}`,
  amount: paid.amountTotal!,
  currency: 'usd',
  status: 'succeeded',
  lineItems: null,
  ...overrides,
});

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('an event counts as handled once it is settled', () => {
  test('when a refund arrives while fulfilling and the fulfiller then gives up, then the refund is settled and recorded with its event, not dropped', async () => {
    const { paid, stripe } = paidWithMoneyBack();
    const { activities, calls } = fakeActivities(stripe);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    activities.fulfillLineItems = async () => {
      await held;
      throw ApplicationFailure.nonRetryable('the warehouse refused the order', 'OutOfStock');
    };

    const result = await withWorker(activities, async () => {
      const handle = await start({ sessionId: paid.id });
      await waitFor(async () => (await handle.query(fulfillmentQuery)).status === 'fulfilling');
      stripe.money = { refunds: [refundOf(paid)], disputes: [] };
      await handle.signal(checkoutEventSignal, { id: 'evt_refund_while_fulfilling', type: 'charge.refunded' });
      release();
      return handle.result();
    });

    // Today's main: `failed`, the refund's event ID recorded as acted on, `refunds: null`, no email.
    expect(result.status).toBe('refunded');
    expect(result.refunds).toEqual([expect.objectContaining({ status: 'succeeded' })]);
    expect(result.eventIds).toContain('evt_refund_while_fulfilling');
    expect(calls.emailRefund).toHaveLength(1);
    expect(calls.views.at(-1)?.status).toBe('refunded');
  });

  test('when a failed order is redriven after the merchant refunded it in full, then Stripe’s refunds are read first and nothing is fulfilled', async () => {
    const { paid, stripe } = paidWithMoneyBack();
    stripe.money = { refunds: [refundOf(paid)], disputes: [] };
    const failed = recordOf(paid, { status: 'failed', fulfilled: [], receiptSent: false, reason: 'OutOfStock: gone' });
    const { activities, calls } = fakeActivities(stripe, failed);

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id, redrive: true })).result());

    expect(result.status).toBe('refunded'); // today's main fulfilled it, refunds never looked at
    expect(calls.fulfillLineItems).toHaveLength(0);
    expect(calls.emailReceipt).toHaveLength(0);
  });
});

describe('a failed order stays failed', () => {
  test('when a failed order is partly refunded, then it stays failed (a redrive can still finish it), with the refund recorded', async () => {
    const { paid, stripe } = paidWithMoneyBack();
    stripe.money = { refunds: [refundOf(paid, { amount: 500 })], disputes: [] };
    const failed = recordOf(paid, { status: 'failed', fulfilled: [], receiptSent: false, reason: 'OutOfStock: gone' });
    const { activities } = fakeActivities(stripe, failed);

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id }, { id: 'evt_partial_of_failed', type: 'charge.refunded' })).result());

    expect(result.status).toBe('failed'); // not `partially_refunded`, a verdict nothing reopens
    expect(result.refunds).toEqual([expect.objectContaining({ amount: 500, status: 'succeeded' })]);
  });

  test('when a refund of an order never fulfilled later fails, then the order is not called fulfilled', async () => {
    const { paid, stripe } = paidWithMoneyBack();
    const refund = refundOf(paid);
    const refundedFirst = recordOf(paid, { status: 'refunded', fulfilled: [], receiptSent: false, refunds: [{ ...refund, reversed: [], note: null, emailed: true }] });
    stripe.money = { refunds: [{ ...refund, status: 'failed' }], disputes: [] };
    const { activities } = fakeActivities(stripe, refundedFirst);

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id }, { id: 'evt_failed_refund', type: 'refund.updated' })).result());

    expect(result.status).toBe('failed'); // money kept, nothing shipped: for an operator
    expect(result.reason).toMatch(/the money did not go back/);
  });
});

describe('a refund that fails after it succeeded', () => {
  test('when Stripe moves a succeeded refund to failed, then the order is no longer recorded refunded, an operator is told, and nothing is emailed again', async () => {
    const { paid, stripe } = paidWithMoneyBack();
    const refund = refundOf(paid);
    const reversed = paid.lineItems.map((item) => ({ lineItemId: item.id, description: item.description, quantity: item.quantity }));
    const refundedRecord = recordOf(paid, { status: 'refunded', refunds: [{ ...refund, reversed, note: null, emailed: true }], eventIds: ['evt_refunded'] });
    stripe.money = { refunds: [{ ...refund, status: 'failed' }], disputes: [] };
    const { activities, calls } = fakeActivities(stripe, refundedRecord);

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id }, { id: 'evt_refund_failed', type: 'refund.updated' })).result());

    expect(result.status).toBe('fulfilled'); // today's main: still `refunded`
    expect(result.refunds).toEqual([expect.objectContaining({ id: refund.id, status: 'failed' })]);
    expect(result.reason).toMatch(new RegExp(`refund ${refund.id} .* failed after it had succeeded: the money did not go back`));
    expect(calls.emailRefund).toHaveLength(0);
    expect(calls.reverseLineItems).toHaveLength(0);
  });
});

describe('every dispute status Stripe documents', () => {
  test('when a dispute ends prevented (Stripe refunded instead), then the order is no longer disputed: the refund settles it', async () => {
    const { paid, stripe } = paidWithMoneyBack();
    const dispute = { id: `dp_${randomId()}`, amount: 4500, currency: 'usd', status: 'warning_needs_response', reason: 'fraudulent' };
    const disputed = recordOf(paid, { status: 'disputed', disputes: [{ ...dispute, outcome: 'open', reversed: null }] });
    stripe.money = { refunds: [refundOf(paid)], disputes: [{ ...dispute, status: 'prevented' }] };
    const { activities } = fakeActivities(stripe, disputed);

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id }, { id: 'evt_prevented', type: 'charge.dispute.closed' })).result());

    expect(result.status).toBe('refunded'); // today's main: `disputed` for ever
    expect(result.disputes).toEqual([expect.objectContaining({ outcome: 'prevented' })]);
  });

  test('when a lost dispute is appealed, then the order stays dispute_lost while its items stay reversed', async () => {
    const { paid, stripe } = paidWithMoneyBack();
    const dispute = { id: `dp_${randomId()}`, amount: 4500, currency: 'usd', status: 'lost', reason: 'fraudulent' };
    const reversed = paid.lineItems.map((item) => ({ lineItemId: item.id, description: item.description, quantity: item.quantity }));
    const lost = recordOf(paid, { status: 'dispute_lost', disputes: [{ ...dispute, outcome: 'lost', reversed }] });
    stripe.money = { refunds: [], disputes: [{ ...dispute, status: 'appeal_under_review' }] };
    const { activities } = fakeActivities(stripe, lost);

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id }, { id: 'evt_appeal', type: 'charge.dispute.created' })).result());

    expect(result.status).toBe('dispute_lost'); // today's main: back to `disputed`
  });

  test.each([
    ['warning_needs_response', 'open'],
    ['warning_under_review', 'open'],
    ['warning_closed', 'won'],
    ['needs_response', 'open'],
    ['under_review', 'open'],
    ['won', 'won'],
    ['lost', 'lost'],
    ['prevented', 'prevented'],
    ['appeal_needs_response', 'lost'],
    ['appeal_under_review', 'lost'],
  ] as const)('when Stripe says %s, then the outcome is %s', (status, outcome) => {
    expect(disputeOutcome({ id: 'dp_1', amount: 1, currency: 'usd', status, reason: 'general' })).toBe(outcome);
  });

  test.each([
    ['open', 'lost'], // the loss's own event never came: an appeal says it was lost
    ['lost', 'lost'],
    ['won', 'won'], // final at Stripe: a read that says appeal is stale
    ['prevented', 'prevented'],
  ] as const)('when our record says %s and Stripe says the dispute is under appeal, then the outcome is %s', (before, outcome) => {
    expect(disputeOutcome({ id: 'dp_1', amount: 1, currency: 'usd', status: 'appeal_under_review', reason: 'general' }, { outcome: before })).toBe(outcome);
  });
});

describe('what a partial refund says it covers', () => {
  test('when it names the merchant’s own line item IDs (an order paid by PaymentIntent), then they are read, not ignored', () => {
    expect(coveredLineItems('sku-42:1, mug.blue')).toEqual([
      { lineItemId: 'sku-42', quantity: 1 },
      { lineItemId: 'mug.blue', quantity: null },
    ]);
    expect(coveredLineItems('li_1:2,li_2')).toEqual([
      { lineItemId: 'li_1', quantity: 2 },
      { lineItemId: 'li_2', quantity: null },
    ]);
    expect(coveredLineItems('two mugs please')).toBeNull();
  });

  test('when a refund names line items none of which was fulfilled, then nothing is reversed and an operator is told', async () => {
    const { paid, stripe } = paidWithMoneyBack();
    stripe.money = { refunds: [refundOf(paid, { amount: 500, lineItems: [{ lineItemId: 'sku-unknown', quantity: 1 }] })], disputes: [] };
    const { activities } = fakeActivities(stripe, recordOf(paid, {}));

    const result = await withWorker(activities, async () => (await start({ sessionId: paid.id }, { id: 'evt_partial', type: 'charge.refunded' })).result());

    expect(result.status).toBe('partially_refunded');
    expect(result.reason).toMatch(/names line items none of which is fulfilled .*sku-unknown.*an operator decides/);
  });
});
