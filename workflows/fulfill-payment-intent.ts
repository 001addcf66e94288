import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { RetryState, TimeoutFailure, type Duration } from '@temporalio/common';
import type { createActivities } from '../activities';
import { durationMs } from '../src/shared/duration';
import { formatAmount } from '../src/shared/money';
import {
  isSettledStatus,
  receivedView,
  searchAttributes,
  stripeTaskQueue,
  type FulfillPaymentIntentInput,
  type FulfillmentView,
  type OrderSummary,
  type PaymentIntentSummary,
  type SessionSummary,
} from './definitions';
import {
  adoptRecord,
  bestEffortEmail,
  createInbox,
  createRecorder,
  EMAIL_ACTIVITIES,
  failureOf,
  refundedBeforeFulfilling,
  settlePendingMoneyBack,
  UNTIL_IT_WORKS,
  finishCutOffVerdict,
  CANCELED_BY_OPERATOR,
  moneyKeptAgain,
  stoppedByMoneyBack,
  WON_BACK_RUNS_AGAIN_PATCH,
} from './order-steps';
import { EVENTS_BEFORE_READING_PATCH, FAILED_IS_FINAL_PATCH, MONEY_BACK_WITH_FAILURES_PATCH } from './fulfill-checkout';

type Activities = ReturnType<typeof createActivities>;

const { recordStatus, loadRecord } = proxyLocalActivities<Activities>({ startToCloseTimeout: '30 seconds', retry: UNTIL_IT_WORKS });
const {
  loadOrder,
  reverseLineItems,
  capturePaymentIntent: capturePaymentIntentUnbounded,
  cancelPaymentIntent,
  claimOrder,
  releaseOrderClaim,
  refundPaymentIntent,
} = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: UNTIL_IT_WORKS,
});
// Cut short when an authorization would expire first; waits until the attempt has stopped, so
// what it fulfilled is known before anything is reversed.
const { fulfillLineItems } = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '30 seconds',
  retry: UNTIL_IT_WORKS,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});
const { emailReceipt, emailPaymentFailed, emailRefund, emailOrderCanceled } = proxyActivities<Activities>(EMAIL_ACTIVITIES);

const DEFAULT_PAYMENT_DEADLINE: Duration = '7 days';
const DEFAULT_PAYMENT_RECHECK: Duration = '1 day';
// Stripe's card authorizations last 7 days unless it says otherwise; capture (or release) with an hour to spare.
const DEFAULT_AUTHORIZATION_MS = 7 * 86_400_000;
const CAPTURE_MARGIN_MS = 3_600_000;
const CANCEL_WHILE_READING_PATCH = 'record-cancel-while-reading';
const DECLINED_REASON = 'the last payment attempt failed';
// The paid order re-read, checked against what was taken and claimed; captures bounded by the
// authorization's life; a release that reads Stripe first; an operator's cancel releases the hold.
const CAPTURE_CHECKS_PATCH = 'capture-checks';
// Capture retries stop this long before the authorization lapses, leaving the release time to run.
const RELEASE_MARGIN_MS = 10 * 60_000;
const CANCELED_EMAIL_PATCH = 'canceled-email-after-an-attempt';

/**
 * One execution per PaymentIntent made without Checkout (workflow ID = the PaymentIntent ID): the
 * merchant's order named by its `metadata.order_id`, read from the order source, fulfilled once
 * the payment succeeds. With manual capture, the authorized amount is captured only once the
 * order is fulfilled, and released (the PaymentIntent canceled, anything fulfilled reversed) when
 * it cannot be, or not before the authorization expires. Refunds and disputes settle as for Checkout.
 */
export async function fulfillPaymentIntent(input: FulfillPaymentIntentInput): Promise<FulfillmentView> {
  const id = input.paymentIntentId;
  const { retrievePaymentIntent, sessionOfPaymentIntent, readMoneyBack } = proxyActivities<Activities>({
    taskQueue: stripeTaskQueue(workflowInfo().taskQueue),
    startToCloseTimeout: '30 seconds',
    retry: { ...UNTIL_IT_WORKS, maximumInterval: '5 minutes' },
  });

  const view: FulfillmentView = receivedView(id);
  let paymentTaken = false;
  const inbox = createInbox(view);
  const { eventTypes } = inbox;

  const transition = createRecorder(view, recordStatus);
  const email = (send: () => Promise<{ sent: boolean }>, reasonIfFailed: string) => bestEffortEmail(view, send, reasonIfFailed);

  const settle = () =>
    settlePendingMoneyBack(inbox, { view, paymentIntentId: async () => id, paymentTaken, readMoneyBack, reverseLineItems, emailRefund, transition });

  /** Ends the execution failed, recorded with why: it can be run again once the cause is fixed. */
  async function fail(type: string, message: string): Promise<FulfillmentView> {
    view.reason = `${type}: ${message}`;
    await transition('failed');
    // A refund that came in meanwhile is settled now (what was fulfilled is reversed, the customer told).
    if (inbox.moneyBackPending && patched(MONEY_BACK_WITH_FAILURES_PATCH)) {
      await settle();
      if (view.status !== 'failed') return view;
    }
    throw ApplicationFailure.nonRetryable(view.reason, type);
  }

  const recorded = await loadRecord(id);
  if (recorded) inbox.forgetActedOn(recorded.eventIds);
  // Settled, or `failed` (an operator canceled it, or what no retry can fix) and not redriven by an
  // operator: nothing runs again; money that came back for it is settled.
  const failedIsFinal = recorded?.status === 'failed' && !input.redrive && patched(FAILED_IS_FINAL_PATCH);
  if (recorded && (isSettledStatus(recorded.status) || failedIsFinal)) {
    if (failedIsFinal && !inbox.moneyBackPending) log.warn('Order failed earlier; only an operator redrive runs it again', { paymentIntentId: id, reason: recorded.reason });
    const stoppedEarly = stoppedByMoneyBack(recorded);
    adoptRecord(view, recorded);
    try {
      await settle();
    } catch (err) {
      // An operator's cancel of such an order is recorded, so money kept again later does not run it.
      if (isCancellation(err) && stoppedEarly && patched(WON_BACK_RUNS_AGAIN_PATCH)) {
        await CancellationScope.nonCancellable(async () => {
          view.reason = view.reason ? `${view.reason}; ${CANCELED_BY_OPERATOR}` : CANCELED_BY_OPERATOR;
          await transition(view.status);
        });
      }
      throw err;
    }
    // Money back before anything shipped, then the merchant's again (a dispute won on appeal, a refund
    // that failed): the order runs again: fulfilled, or, when another payment has paid it meanwhile, this one refunded.
    if (!(stoppedEarly && moneyKeptAgain(view) && patched(WON_BACK_RUNS_AGAIN_PATCH))) return view;
    log.info('Money that came back before fulfillment is the merchant\'s again; the order runs again', { paymentIntentId: id });
    view.reason = null;
    inbox.moneyBackPending = true; // read again before fulfilling, and settled after
  }

  let intent: PaymentIntentSummary;
  let clearsBeforeReading: boolean;
  try {
    // A PaymentIntent a Checkout Session created is that session's: its own workflow fulfills it.
    const checkoutSession = await sessionOfPaymentIntent(id);
    if (checkoutSession) {
      view.reason = `paid through Checkout Session ${checkoutSession}, whose own workflow fulfills it`;
      log.info('PaymentIntent belongs to a Checkout Session; nothing to do here', { paymentIntentId: id, sessionId: checkoutSession });
      return view;
    }
    // An event that arrives while the PaymentIntent is being read is answered by the next read.
    clearsBeforeReading = patched(EVENTS_BEFORE_READING_PATCH);
    if (clearsBeforeReading) inbox.unhandled = false;
    intent = await retrievePaymentIntent(id);
  } catch (err) {
    // An operator's cancel while Stripe is read (long, in a Stripe outage) is recorded too, so nothing reopens the order.
    if (isCancellation(err) && patched(CANCEL_WHILE_READING_PATCH)) await recordCanceledByOperator();
    throw err;
  }
  if (!intent.orderId) {
    view.reason = 'its metadata names no order (order_id): not an order to fulfill';
    log.info('PaymentIntent without an order; nothing to do', { paymentIntentId: id });
    return view;
  }

  async function run(first: PaymentIntentSummary, orderId: string): Promise<FulfillmentView> {
    // The payment's amount and ID from the start: a record that fails before the order is read still
    // tells a refund of this payment what was paid, and is found by it.
    view.paymentIntentId = id;
    view.currency = first.currency;
    view.amountTotal = first.amount;
    await transition('received');
    const order = await loadOrder({ orderId, paymentIntentId: id });
    if (!order) return fail('OrderNotFound', `the order source has no order ${orderId}`);
    // Before the payment, a total that differs may still be corrected (the cart changed after a declined
    // attempt): the order is checked against what was paid, when it is paid.
    // (An authorization is checked, and released if it does not match, on the capture path.)
    const paidAlready = first.status === 'succeeded';
    if ((order.amountTotal !== first.amount || order.currency !== first.currency) && (paidAlready || !patched(CAPTURE_CHECKS_PATCH))) {
      return fail(
        'AmountMismatch',
        `order ${orderId} totals ${formatAmount(order.amountTotal, order.currency)} but the payment is ${formatAmount(first.amount, first.currency)}; nothing was fulfilled`,
      );
    }
    view.mode = 'payment';
    view.paymentIntentId = id;
    show(order);
    upsertSearchAttributes([{ key: searchAttributes.livemode, value: first.livemode }]);

    const waitStartedAt = Date.now();
    const deadline = waitStartedAt + durationMs(input.paymentDeadline ?? DEFAULT_PAYMENT_DEADLINE);
    let intent = first;
    for (;;) {
      if (!clearsBeforeReading) inbox.unhandled = false;
      view.paymentStatus = intent.status === 'succeeded' ? 'paid' : 'unpaid';
      // A declined attempt the customer has since made good is no reason any more.
      if ((intent.status === 'succeeded' || intent.status === 'requires_capture') && view.reason?.startsWith(DECLINED_REASON)) view.reason = null;
      switch (intent.status) {
        case 'succeeded':
          await fulfill(order, intent);
          return view;
        case 'requires_capture':
          await fulfillThenCapture(order, intent);
          return view;
        case 'canceled':
          view.reason = 'the PaymentIntent was canceled before it was paid';
          // A customer who never tried to pay (a duplicate or abandoned PaymentIntent) is told nothing.
          if (intent.lastPaymentError || !patched(CANCELED_EMAIL_PATCH)) {
            await email(() => emailPaymentFailed(asSession(id, order, intent)), 'the payment-failed email could not be sent');
          }
          await transition('payment_failed');
          return view;
        default: {
          // processing, or waiting for the customer: a failed attempt leaves it requires_payment_method, and they may retry.
          view.reason = intent.lastPaymentError ? `${DECLINED_REASON} (${intent.lastPaymentError}); the customer may try again` : null;
          if (intent.lastPaymentError && eventTypes.has('payment_intent.payment_failed')) {
            await email(() => emailPaymentFailed(asSession(id, order, intent)), 'the payment-failed email could not be sent');
          }
          await transition('awaiting_payment');
          if (Date.now() >= deadline) {
            view.reason = `stopped waiting after ${String(input.paymentDeadline ?? DEFAULT_PAYMENT_DEADLINE)} without a payment; a later payment event resumes it`;
            await transition('awaiting_payment');
            if (!inbox.unhandled) return view;
            break;
          }
          const recheck = durationMs(input.paymentRecheckInterval ?? DEFAULT_PAYMENT_RECHECK);
          await condition(() => inbox.unhandled, Math.min(recheck, deadline - Date.now()));
        }
      }
      if (clearsBeforeReading) inbox.unhandled = false;
      intent = await retrievePaymentIntent(id);
    }
  }

  /**
   * The order as it stands now, checked against the payment actually taken or authorized (the
   * customer may have changed the cart after a declined attempt), and claimed for this payment, so
   * a second PaymentIntent of the same order fulfills nothing. Returns why not to fulfill, if so.
   */
  async function checkPaid(orderId: string, intent: PaymentIntentSummary): Promise<{ order: OrderSummary } | { type: string; message: string }> {
    const order = await loadOrder({ orderId, paymentIntentId: id });
    if (!order) return { type: 'OrderNotFound', message: `the order source has no order ${orderId}` };
    const authorized = intent.status === 'succeeded' ? intent.amountReceived : intent.amountCapturable;
    const covered = intent.amount === order.amountTotal && (authorized === undefined || authorized >= order.amountTotal);
    if (!covered || intent.currency !== order.currency) {
      const what = intent.status === 'succeeded' ? 'received' : 'authorized';
      return {
        type: 'AmountMismatch',
        message: `order ${orderId} totals ${formatAmount(order.amountTotal, order.currency)} but the payment ${what} ${formatAmount(authorized ?? intent.amount, intent.currency)}; nothing was fulfilled`,
      };
    }
    const owner = await claimOrder({ orderId, paymentIntentId: id });
    if (owner !== id) return { type: 'DuplicatePayment', message: `order ${orderId} is already paid by ${owner}; this second payment is given back and nothing is fulfilled` };
    show(order); // the record shows the order as it was paid, and refunds are measured against it
    return { order };
  }

  /** The order in the view (and so in the record, the status API and a refund's measure). */
  function show(order: OrderSummary): void {
    view.currency = order.currency;
    view.amountTotal = order.amountTotal;
    view.lineItems = order.lineItems.map((item) => ({ description: item.description, quantity: item.quantity, amountTotal: item.amountTotal }));
  }

  /** Gives the order back to whoever pays it next: this payment will not fulfill it (released, or refunded first). */
  async function unclaim(order: OrderSummary): Promise<void> {
    if (patched(CAPTURE_CHECKS_PATCH)) await releaseOrderClaim({ orderId: order.orderId, paymentIntentId: id });
  }

  async function fulfill(order: OrderSummary, paid?: PaymentIntentSummary): Promise<FulfillmentView | void> {
    paymentTaken = true;
    if (paid && patched(CAPTURE_CHECKS_PATCH)) {
      const checked = await checkPaid(order.orderId, paid);
      if ('type' in checked) {
        if (checked.type === 'DuplicatePayment') {
          // Its money goes back at once; the refund's events settle the record (refunded), and an operator sees why.
          try {
            await refundPaymentIntent(id);
          } catch (err) {
            const refused = failureOf(err);
            if (!refused?.nonRetryable) throw err;
            checked.message = `${checked.message}; Stripe refused the refund (${refused.message}): an operator gives it back`;
          }
          inbox.moneyBackPending = true;
          log.error('A second payment of an order already paid was refunded', { paymentIntentId: id, orderId: order.orderId });
        }
        return fail(checked.type, checked.message);
      }
      order = checked.order;
    }
    if (await refundedBeforeFulfilling(inbox, view, id, readMoneyBack)) {
      await unclaim(order);
      return;
    }
    await transition('fulfilling');
    view.fulfilled = await fulfillLineItems({ sessionId: id, lineItems: order.lineItems });
    view.receiptSent = await email(() => emailReceipt({ session: asSession(id, order), fulfilled: view.fulfilled }), 'the receipt email could not be sent');
    await transition('fulfilled');
  }

  let authorizedOrder: OrderSummary | undefined;

  /** Manual capture: fulfill first, capture only then; whatever stops that releases the authorization. */
  async function fulfillThenCapture(order: OrderSummary, authorized: PaymentIntentSummary): Promise<FulfillmentView | void> {
    const checks = patched(CAPTURE_CHECKS_PATCH);
    if (checks) {
      authorizedOrder = order; // from here an operator's cancel releases the hold (see the end)
      const checked = await checkPaid(order.orderId, authorized);
      if ('type' in checked) return release(order, `${checked.type}: ${checked.message}`, { fulfillIfCaptured: false });
      order = authorizedOrder = checked.order;
    }
    const expiresAt = authorized.captureBefore !== null ? authorized.captureBefore * 1000 : workflowInfo().startTime.getTime() + DEFAULT_AUTHORIZATION_MS;
    const captureBy = expiresAt - CAPTURE_MARGIN_MS;
    if (Date.now() >= captureBy) return release(order, 'the authorization was about to expire before the order could be fulfilled');
    await transition('fulfilling');
    try {
      view.fulfilled = await CancellationScope.withTimeout(captureBy - Date.now(), () => fulfillLineItems({ sessionId: id, lineItems: order.lineItems }));
    } catch (err) {
      const failure = failureOf(err);
      if (checks && CancellationScope.current().consideredCancelled) throw err; // an operator's cancel: released at the end
      if (failure?.nonRetryable) return release(order, `${failure.type ?? 'Error'}: ${failure.message}`);
      // Cut at the deadline: the attempt may have stopped (canceled) or failed while being canceled.
      const cut = isCancellation(err) || (checks && err instanceof ActivityFailure && err.retryState === RetryState.CANCEL_REQUESTED);
      if (cut) return release(order, 'the order could not be fulfilled before the authorization expires');
      throw err;
    }
    let captured: PaymentIntentSummary;
    try {
      // Retried until shortly before the authorization lapses, never past it: then the release must win.
      // A capture being canceled (an operator's cancel) is waited for, so the release after it reads Stripe as it ended.
      const { capturePaymentIntent } = proxyActivities<Activities>({
        startToCloseTimeout: '1 minute',
        scheduleToCloseTimeout: Math.max(5_000, expiresAt - RELEASE_MARGIN_MS - Date.now()),
        retry: UNTIL_IT_WORKS,
        cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      });
      captured = await (checks ? capturePaymentIntent(id) : capturePaymentIntentUnbounded(id));
    } catch (err) {
      const failure = failureOf(err);
      if (checks && CancellationScope.current().consideredCancelled) throw err; // an operator's cancel: released at the end
      if (failure?.nonRetryable) return release(order, `Stripe refused the capture: ${failure.message}`);
      const outOfTime = err instanceof ActivityFailure && (err.retryState === RetryState.TIMEOUT || err.cause instanceof TimeoutFailure);
      if (checks && outOfTime) return release(order, 'the capture did not go through before the authorization lapses');
      throw err;
    }
    paymentTaken = true;
    view.paymentStatus = 'paid';
    if (checks && captured.amountReceived !== undefined && captured.amountReceived < order.amountTotal) {
      view.reason = `captured ${formatAmount(captured.amountReceived, captured.currency)} of ${formatAmount(order.amountTotal, order.currency)}: an operator decides`;
      log.error('Captured less than the order total', { paymentIntentId: id, received: captured.amountReceived, total: order.amountTotal });
    }
    view.receiptSent = await email(() => emailReceipt({ session: asSession(id, order), fulfilled: view.fulfilled }), 'the receipt email could not be sent');
    await transition('fulfilled');
  }

  /**
   * Nothing fulfilled stays uncaptured: what was fulfilled is reversed, then the hold is released, and
   * the customer told. Stripe is read first: a PaymentIntent already captured (in the Dashboard, or by
   * a capture whose answer was lost) is paid, so the order is fulfilled instead, never released.
   */
  async function release(order: OrderSummary, reason: string, { fulfillIfCaptured = true } = {}): Promise<FulfillmentView | void> {
    const checks = patched(CAPTURE_CHECKS_PATCH);
    /** Captured after all: the customer's money is taken, so the order is not released. */
    const whenCaptured = (why: string) => {
      view.paymentStatus = 'paid';
      paymentTaken = true;
      if (!fulfillIfCaptured) return fail('CapturedAnyway', `${reason}; ${why}, so nothing is fulfilled and the payment must be refunded by an operator`);
      log.warn('Not released: Stripe had captured the payment, so the order is fulfilled', { paymentIntentId: id, reason });
      view.reason = `${reason}; but ${why}, so the order was fulfilled (refund it to undo)`;
      return fulfill(order);
    };
    if (checks && (await retrievePaymentIntent(id)).status === 'succeeded') return whenCaptured('Stripe had captured the payment');
    view.reason = reason;
    await reverseLineItems({ sessionId: id, reversalId: `release-${id}`, reason: 'refund', items: 'all' });
    view.fulfilled = [];
    try {
      await cancelPaymentIntent(id);
    } catch (err) {
      const failure = failureOf(err);
      if (!failure?.nonRetryable) throw err;
      // Refused: read why. A capture that landed meanwhile means the money is taken; never tell the customer otherwise.
      if (checks && (await retrievePaymentIntent(id)).status === 'succeeded') return whenCaptured('Stripe captured the payment as it was being released');
      view.reason = `${reason}; the PaymentIntent could not be canceled: ${failure.message}`;
    }
    await unclaim(order);
    log.warn('Authorization released: the order could not be fulfilled', { paymentIntentId: id, reason });
    await email(() => emailOrderCanceled(asSession(id, order)), 'the cancellation email could not be sent');
    await transition('canceled');
  }

  // A redriven `failed` order: refunds made since are read before anything is fulfilled, and settled after.
  if (recorded?.status === 'failed' && input.redrive && patched(MONEY_BACK_WITH_FAILURES_PATCH)) inbox.moneyBackPending = true;

  try {
    const ended = await run(intent, intent.orderId);
    authorizedOrder = undefined; // decided: an operator's cancel from here changes nothing that was decided
    await settle();
    return ended;
  } catch (err) {
    const failure = failureOf(err);
    if (failure?.nonRetryable) return fail(failure.type ?? 'Error', failure.message);
    if (isCancellation(err)) {
      // An operator's cancel of an authorized order: what was fulfilled is reversed and the hold released
      // (or, captured already, the order fulfilled), never left fulfilled and uncaptured.
      const authorized = authorizedOrder;
      if (authorized) {
        await CancellationScope.nonCancellable(async () => {
          try {
            await release(authorized, CANCELED_BY_OPERATOR);
          } catch (inner) {
            // Captured after all, and the fulfiller then gave up: recorded failed for an operator, never left `fulfilling`.
            const gaveUp = failureOf(inner);
            if (!gaveUp?.nonRetryable) throw inner;
            view.reason = `${CANCELED_BY_OPERATOR}; ${gaveUp.type ?? 'Error'}: ${gaveUp.message}`;
            await transition('failed');
          }
        });
      } else await recordCanceledByOperator();
    }
    throw err;
  }

  async function recordCanceledByOperator(): Promise<void> {
    // A verdict (fulfilled, refunded...) stands: a cancel while money is settled changes nothing,
    // and a verdict whose write the cancel cut off is written (finishCutOffVerdict).
    if (isSettledStatus(view.status) && patched(CAPTURE_CHECKS_PATCH)) return finishCutOffVerdict(view, transition);
    await CancellationScope.nonCancellable(async () => {
      view.reason = CANCELED_BY_OPERATOR;
      await transition('failed');
    });
  }
}

/** The order in the shape the email activities read (the receipt lists line items and the total). */
function asSession(id: string, order: OrderSummary, intent?: PaymentIntentSummary): SessionSummary {
  return {
    id,
    status: 'complete',
    paymentStatus: intent && intent.status !== 'succeeded' ? 'unpaid' : 'paid',
    mode: 'payment',
    livemode: intent?.livemode ?? false,
    currency: order.currency,
    amountSubtotal: order.amountTotal,
    amountTotal: order.amountTotal,
    expiresAt: 0,
    paymentIntentId: id,
    lineItems: order.lineItems,
  };
}
