import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Duration, SearchAttributeUpdatePair } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import type { createActivities } from '../activities';
import { formatAmount } from '../src/shared/money';
import { decide } from './decide';
import {
  checkoutEventSignal,
  fulfillmentQuery,
  isSettledStatus,
  receivedView,
  searchAttributes,
  stripeTaskQueue,
  type CheckoutEventType,
  type FulfillCheckoutInput,
  type FulfillmentStatus,
  type FulfillmentView,
  type SessionSummary,
} from './definitions';

type Activities = ReturnType<typeof createActivities>;

// Stripe and the database may be down for a while: keep retrying, backing off to once a minute.
const UNTIL_IT_WORKS = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' } as const;

const { recordStatus, loadRecord } = proxyActivities<Activities>({ startToCloseTimeout: '30 seconds', retry: UNTIL_IT_WORKS });

const { fulfillLineItems } = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '30 seconds',
  retry: UNTIL_IT_WORKS,
});

// About three hours of attempts; after that the goods are delivered and the missing email is recorded.
const { emailReceipt, emailPaymentFailed } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes', maximumAttempts: 25 },
});

const DEFAULT_PAYMENT_DEADLINE: Duration = '7 days';
const DEFAULT_PAYMENT_RECHECK: Duration = '1 day';
const DEFAULT_CHECKOUT_RECHECK: Duration = '1 hour';
// Stripe expires an open session at `expires_at`; allow its expiry job some slack before we call it.
const CHECKOUT_EXPIRY_GRACE_MS = 60 * 60 * 1000;

/**
 * One execution per Checkout Session (workflow ID = session ID): retrieves the session, waits for
 * Checkout to complete or a delayed payment to settle when it must, fulfills the line items once,
 * emails the receipt and records every transition.
 */
export async function fulfillCheckout(input: FulfillCheckoutInput): Promise<FulfillmentView> {
  const { sessionId } = input;
  // On the rate-limited Stripe queue; waiting there for a slot is fine (no schedule-to-start timeout).
  const { retrieveSession } = proxyActivities<Activities>({
    taskQueue: stripeTaskQueue(workflowInfo().taskQueue),
    startToCloseTimeout: '30 seconds',
    retry: UNTIL_IT_WORKS,
  });
  const view: FulfillmentView = receivedView(sessionId);
  const eventTypes = new Set<CheckoutEventType>();
  let unhandledEvent = false;
  let transitions = 0;

  // Registered before the first await, so an event sent with signal-with-start is never lost.
  setHandler(checkoutEventSignal, (event) => {
    if (view.eventIds.includes(event.id)) return; // a redelivery: already acted on
    view.eventIds.push(event.id);
    eventTypes.add(event.type);
    unhandledEvent = true;
  });
  setHandler(fulfillmentQuery, () => view);

  async function transition(status: FulfillmentStatus): Promise<void> {
    view.status = status;
    const updates: SearchAttributeUpdatePair[] = [{ key: searchAttributes.fulfillmentStatus, value: status }];
    if (view.paymentStatus) updates.push({ key: searchAttributes.paymentStatus, value: view.paymentStatus });
    if (view.amountTotal !== null) updates.push({ key: searchAttributes.amountTotal, value: view.amountTotal });
    if (view.currency) updates.push({ key: searchAttributes.currency, value: view.currency });
    upsertSearchAttributes(updates);
    setCurrentDetails(describe(view));
    await recordStatus({ view, seq: ++transitions });
  }

  async function retrieve(): Promise<SessionSummary> {
    try {
      const session = await retrieveSession(sessionId);
      view.paymentStatus = session.paymentStatus;
      view.currency = session.currency;
      view.amountTotal = session.amountTotal;
      view.lineItems = session.lineItems.map((item) => ({
        description: item.description,
        quantity: item.quantity,
        amountTotal: item.amountTotal,
      }));
      upsertSearchAttributes([{ key: searchAttributes.livemode, value: session.livemode }]);
      return session;
    } catch (err) {
      const failure = nonRetryableCause(err);
      if (!failure) throw err;
      // Recorded for the status API, then the execution fails, visible as Failed in the Temporal UI;
      // the reuse policy lets a redelivered event run the session again once the cause is fixed.
      view.reason = `${failure.type}: ${failure.message}`;
      await transition('failed');
      throw ApplicationFailure.nonRetryable(view.reason, failure.type ?? 'SessionFailed');
    }
  }

  // Stops a late duplicate (after this session's execution aged out of retention) from fulfilling twice.
  const recorded = await loadRecord(sessionId);
  if (recorded && isSettledStatus(recorded.status)) {
    log.info('Session already settled; nothing to do', { sessionId, status: recorded.status });
    Object.assign(view, recorded, { eventIds: view.eventIds });
    return view;
  }

  await transition('received');
  let session = await retrieve();
  let paymentWaitStartedAt: number | undefined;

  for (;;) {
    const decision = decide(session, eventTypes);
    unhandledEvent = false;
    switch (decision.kind) {
      case 'fulfill':
        await fulfill(session);
        return view;
      case 'payment_failed': {
        const failed = session;
        view.reason = 'the delayed payment failed';
        await bestEffortEmail(() => emailPaymentFailed(failed), 'the payment-failed email could not be sent');
        await transition('payment_failed');
        return view;
      }
      case 'expired':
        view.reason = 'the Checkout Session expired before payment';
        await transition('expired');
        return view;
      case 'await_payment': {
        if (view.status !== 'awaiting_payment') await transition('awaiting_payment');
        paymentWaitStartedAt ??= Date.now(); // the deadline runs from Checkout's completion, not from the landing page
        const deadline = paymentWaitStartedAt + msToNumber(input.paymentDeadline ?? DEFAULT_PAYMENT_DEADLINE);
        if (Date.now() >= deadline) {
          view.reason = `no payment confirmation within ${String(input.paymentDeadline ?? DEFAULT_PAYMENT_DEADLINE)}`;
          await transition('payment_failed');
          return view;
        }
        await waitForEventOrRecheck(input.paymentRecheckInterval ?? DEFAULT_PAYMENT_RECHECK, deadline);
        break;
      }
      case 'await_checkout': {
        if (view.status !== 'awaiting_checkout') await transition('awaiting_checkout');
        const deadline = session.expiresAt * 1000 + CHECKOUT_EXPIRY_GRACE_MS;
        if (Date.now() >= deadline) {
          view.reason = 'the Checkout Session was still open after its expiry time';
          await transition('expired');
          return view;
        }
        await waitForEventOrRecheck(input.checkoutRecheckInterval ?? DEFAULT_CHECKOUT_RECHECK, deadline);
        break;
      }
    }
    // Whatever woke us (an event, a recheck, the deadline), read the session again: Stripe is the source of truth.
    session = await retrieve();
  }

  async function waitForEventOrRecheck(recheck: Duration, deadline: number): Promise<void> {
    const untilDeadline = deadline - Date.now();
    if (untilDeadline <= 0) return;
    await condition(() => unhandledEvent, Math.min(msToNumber(recheck), untilDeadline));
  }

  async function fulfill(paid: SessionSummary): Promise<void> {
    await transition('fulfilling');
    view.fulfilled = await fulfillLineItems({ sessionId, lineItems: paid.lineItems });
    view.receiptSent = await bestEffortEmail(
      () => emailReceipt({ session: paid, fulfilled: view.fulfilled }),
      'the receipt email could not be sent',
    );
    await transition('fulfilled');
  }

  /**
   * Whether the customer has the email. One that still fails after all its retries is recorded in
   * `reason`, never allowed to undo a fulfillment or an outcome.
   */
  async function bestEffortEmail(send: () => Promise<{ sent: boolean }>, reasonIfFailed: string): Promise<boolean> {
    try {
      return (await send()).sent;
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      log.error('Email failed after all retries', { sessionId, error: String(err.cause ?? err) });
      view.reason = view.reason ? `${view.reason}; ${reasonIfFailed}` : reasonIfFailed;
      return false;
    }
  }
}

function nonRetryableCause(err: unknown): ApplicationFailure | undefined {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.nonRetryable) {
    return err.cause;
  }
  return undefined;
}

/** The line an operator reads in the Temporal UI next to the execution. */
function describe(view: FulfillmentView): string {
  const amount = view.amountTotal !== null && view.currency ? formatAmount(view.amountTotal, view.currency) : 'amount unknown';
  const items = view.lineItems.reduce((sum, item) => sum + item.quantity, 0);
  return `**${view.status}** · ${view.sessionId} · ${amount} · ${items} item${items === 1 ? '' : 's'}`;
}
