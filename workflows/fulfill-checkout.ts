import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  makeContinueAsNewFunc,
  patched,
  proxyActivities,
  proxyLocalActivities,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { createActivities } from '../activities';
import { durationMs } from '../src/shared/duration';
import { decide } from './decide';
import {
  adoptRecord,
  CANCELED_BY_OPERATOR,
  bestEffortEmail as bestEffortEmailFor,
  createInbox,
  createRecorder,
  EMAIL_ACTIVITIES,
  failureOf,
  refundedBeforeFulfilling,
  settlePendingMoneyBack,
  UNTIL_IT_WORKS,
  finishCutOffVerdict,
} from './order-steps';
import {
  isSettledStatus,
  receivedView,
  searchAttributes,
  STRIPE_CONFIGURATION_ERROR,
  stripeTaskQueue,
  type CarriedState,
  type FulfillCheckoutInput,
  type FulfillmentStatus,
  type FulfillmentView,
  type SessionSummary,
} from './definitions';

type Activities = ReturnType<typeof createActivities>;

// Reading and writing the session's record are short database calls. As local activities they run
// inside the workflow task that asks for them: no server round trip of their own, which on this
// hardware decides throughput (docs/benchmarks.md). Retries that back off longer than a minute wait
// on a durable timer, so an outage of the database does not hold a workflow task open.
const localRecords = proxyLocalActivities<Activities>({ startToCloseTimeout: '30 seconds', retry: UNTIL_IT_WORKS });
// Executions started before local records replay with the activities they recorded.
const remoteRecords = proxyActivities<Activities>({ startToCloseTimeout: '30 seconds', retry: UNTIL_IT_WORKS });
const LOCAL_RECORDS_PATCH = 'records-as-local-activities';

const { fulfillLineItems } = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '30 seconds',
  retry: UNTIL_IT_WORKS,
});

const { reverseLineItems } = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '30 seconds',
  retry: UNTIL_IT_WORKS,
});

const { emailReceipt, emailPaymentFailed, emailRefund } = proxyActivities<Activities>(EMAIL_ACTIVITIES);

const DEFAULT_PAYMENT_DEADLINE: Duration = '7 days';
const DEFAULT_PAYMENT_RECHECK: Duration = '1 day';
const DEFAULT_CHECKOUT_RECHECK: Duration = '1 hour';
// A success event whose session still reads unpaid: look again soon rather than at the next daily
// re-check, and keep looking for a while even past the payment deadline, since Stripe said it succeeded.
const SUCCESS_CONFIRMATION_RECHECK: Duration = '1 minute';
const SUCCESS_CONFIRMATION_WINDOW_MS = 60 * 60 * 1000;
// Stripe expires an open session at `expires_at`; allow its expiry job some slack before we stop waiting.
const CHECKOUT_EXPIRY_GRACE_MS = 60 * 60 * 1000;
// A run that keeps waiting (a year's daily re-checks, a storm of events) hands over to a fresh run
// well before Temporal's history limits (warnings at 10 000 events).
const DEFAULT_HISTORY_LIMIT = 2000;
const CONTINUE_AS_NEW_PATCH = 'continue-as-new-when-long';
// An event that arrives while the session is being read is answered by the next read, not by this one.
export const EVENTS_BEFORE_READING_PATCH = 'clear-events-before-reading';
// A `failed` order (canceled by an operator, or given up) runs again only when an operator redrives it.
export const FAILED_IS_FINAL_PATCH = 'failed-is-final';
// A payment failure is decided on only once Stripe confirms the event: a forged signal decides nothing.
const CONFIRM_FAILURE_PATCH = 'confirm-payment-failed';
// Refunds are settled when an order fails, and read again when a failed order is redriven.
export const MONEY_BACK_WITH_FAILURES_PATCH = 'money-back-with-failures';
// An operator's cancel after the verdict was recorded records nothing over it.
const VERDICT_STANDS_PATCH = 'a-verdict-stands';
// A delayed payment's failure is told only by its event, which a redrive does not carry: the redriven
// run recalls the failure events the failed run was told, as Stripe confirms them (found by the explorer).
const REDRIVE_RECALLS_FAILURE_PATCH = 'redrive-recalls-payment-failure';
/** Stripe's own event IDs (a reconciler's delivery is named `reconcile:...`): only these can be confirmed. */
const isStripeEventId = (id: string) => id.startsWith('evt_');

/**
 * One execution per Checkout Session (workflow ID = session ID): retrieves the session, waits for
 * Checkout to complete or a delayed payment to settle when it must, fulfills the line items once,
 * emails the receipt and records every transition.
 *
 * Every way a run ends leaves a true recorded status: a verdict Stripe gave (`fulfilled`,
 * `payment_failed`, `expired`), `failed` with the reason (the execution then fails, so it can be
 * re-driven), or, when it stops waiting, the status it was waiting in, which any later event runs again.
 */
export async function fulfillCheckout(input: FulfillCheckoutInput): Promise<FulfillmentView> {
  const { sessionId } = input;
  const { recordStatus, loadRecord } = patched(LOCAL_RECORDS_PATCH) ? localRecords : remoteRecords;
  const stripeQueue = stripeTaskQueue(workflowInfo().taskQueue);
  // On the rate-limited Stripe queue; waiting there for a slot is fine (no schedule-to-start timeout).
  // A configuration error comes back at once, so the session can be shown paused...
  const stripeReads = proxyActivities<Activities>({
    taskQueue: stripeQueue,
    startToCloseTimeout: '30 seconds',
    retry: { ...UNTIL_IT_WORKS, nonRetryableErrorTypes: [STRIPE_CONFIGURATION_ERROR] },
  });
  const { retrieveSession } = stripeReads;
  // ...and is then retried inside Temporal until an operator fixes it: no history grows meanwhile.
  // (Refunds and disputes are read the same way.)
  const stripeReadsOncePermitted = proxyActivities<Activities>({
    taskQueue: stripeQueue,
    startToCloseTimeout: '30 seconds',
    retry: { ...UNTIL_IT_WORKS, maximumInterval: '5 minutes' },
  });
  const { readMoneyBack } = stripeReadsOncePermitted;

  const { carried } = input;
  const view: FulfillmentView = carried?.view ?? receivedView(sessionId);
  // When Stripe first told us the delayed payment succeeded (workflow time).
  let paymentSucceededAt = carried?.paymentSucceededAt;
  let paymentWaitStartedAt = carried?.paymentWaitStartedAt;
  // Stripe took the payment (the session was found paid): money coming back moves the status.
  let paymentTaken = false;
  // The IDs of `async_payment_failed` events, each confirmed with Stripe before it decides anything.
  const failureEventIds: string[] = [];
  const inbox = createInbox(view, carried?.eventTypes, (event) => {
    if (event.type === 'checkout.session.async_payment_succeeded') paymentSucceededAt ??= Date.now();
    if (event.type === 'checkout.session.async_payment_failed') failureEventIds.push(event.id);
  });
  const { eventTypes } = inbox;

  const transition = createRecorder(view, recordStatus);

  /** A Stripe read that Stripe refuses for a reason of ours (key, permission) pauses visibly and resumes once it is fixed. */
  async function pausingOnConfiguration<T>(read: (stripe: typeof stripeReads) => Promise<T>): Promise<T> {
    try {
      return await read(stripeReads);
    } catch (err) {
      const failure = failureOf(err);
      if (failure?.type !== STRIPE_CONFIGURATION_ERROR) throw err;
      view.reason = `paused: ${failure.message}; retried until the configuration is fixed`;
      log.error('Session paused on a configuration error', { sessionId, error: failure.message });
      await transition('paused');
      const result = await read(stripeReadsOncePermitted);
      view.reason = null;
      return result;
    }
  }

  async function retrieve(): Promise<SessionSummary> {
    const session = await pausingOnConfiguration((stripe) => stripe.retrieveSession(sessionId));
    view.paymentStatus = session.paymentStatus;
    view.mode = session.mode;
    view.currency = session.currency;
    view.amountTotal = session.amountTotal;
    view.paymentIntentId = session.paymentIntentId ?? view.paymentIntentId ?? null;
    view.lineItems = session.lineItems.map((item) => ({
      description: item.description,
      quantity: item.quantity,
      amountTotal: item.amountTotal,
    }));
    upsertSearchAttributes([{ key: searchAttributes.livemode, value: session.livemode }]);
    return session;
  }

  /**
   * Ends the run without a verdict: Stripe has not decided, so nothing may be refused later. The
   * recorded status stays what it was waiting in, with the reason. Returns false when an event
   * arrived while that was being recorded: the caller must act on it instead of ending.
   */
  async function stopWaiting(status: FulfillmentStatus, reason: string): Promise<boolean> {
    view.reason = reason;
    await transition(status);
    if (!inbox.unhandled) return true;
    view.reason = null;
    return false;
  }

  let clearsBeforeReading = false;
  /** Reads the session; events from here on are answered by this read or a later one. */
  async function read(): Promise<SessionSummary> {
    if (patched(EVENTS_BEFORE_READING_PATCH)) {
      clearsBeforeReading = true;
      inbox.unhandled = false;
    }
    inbox.lastReadAt = Date.now();
    return retrieve();
  }

  /** Whether Stripe sent one of the failure events we were told of (a signal anyone can forge decides nothing). */
  async function failureConfirmed(): Promise<boolean> {
    if (!patched(CONFIRM_FAILURE_PATCH)) return true;
    for (const eventId of failureEventIds) {
      const claimed = { eventId, type: 'checkout.session.async_payment_failed', objectId: sessionId };
      if (await pausingOnConfiguration((stripe) => stripe.confirmEvent(claimed))) return true;
    }
    log.error('A payment failure Stripe does not confirm was ignored: nothing changes', { sessionId, eventIds: [...failureEventIds] });
    failureEventIds.length = 0;
    eventTypes.delete('checkout.session.async_payment_failed');
    return false;
  }

  async function run(): Promise<FulfillmentView> {
    if (!carried) await transition('received');
    let session = await read();

    for (;;) {
      const decision = decide(session, eventTypes);
      if (!clearsBeforeReading) inbox.unhandled = false; // executions started before: cleared after the read
      switch (decision.kind) {
        case 'fulfill':
          await fulfill(session);
          return view;
        case 'payment_failed': {
          if (!(await failureConfirmed())) break;
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
          const deadlineSetting = input.paymentDeadline ?? DEFAULT_PAYMENT_DEADLINE;
          const deadline = Math.max(
            paymentWaitStartedAt + durationMs(deadlineSetting),
            paymentSucceededAt === undefined ? 0 : paymentSucceededAt + SUCCESS_CONFIRMATION_WINDOW_MS,
          );
          if (Date.now() >= deadline) {
            const reason = `stopped waiting after ${String(deadlineSetting)} without a payment confirmation; a later payment event resumes it`;
            if (await stopWaiting('awaiting_payment', reason)) return view;
            break;
          }
          const recheck = paymentSucceededAt !== undefined ? SUCCESS_CONFIRMATION_RECHECK : (input.paymentRecheckInterval ?? DEFAULT_PAYMENT_RECHECK);
          await waitForEventOrRecheck(recheck, deadline);
          break;
        }
        case 'await_checkout': {
          if (view.status !== 'awaiting_checkout') await transition('awaiting_checkout');
          const deadline = session.expiresAt * 1000 + CHECKOUT_EXPIRY_GRACE_MS;
          if (Date.now() >= deadline) {
            const reason = 'stopped waiting: the session was still open after its expiry time; a later Checkout event resumes it';
            if (await stopWaiting('awaiting_checkout', reason)) return view;
            break;
          }
          await waitForEventOrRecheck(input.checkoutRecheckInterval ?? DEFAULT_CHECKOUT_RECHECK, deadline);
          break;
        }
      }
      // Whatever woke us (an event, a recheck, the deadline), read the session again: Stripe is the source of truth.
      session = await read();
    }
  }

  async function waitForEventOrRecheck(recheck: Duration, deadline: number): Promise<void> {
    const untilDeadline = deadline - Date.now();
    if (untilDeadline <= 0) return;
    await continueAsNewWhenLong();
    await condition(() => inbox.unhandled, Math.min(durationMs(recheck), untilDeadline));
  }

  /**
   * Between waits, with no event pending (every event so far is decided on), a long history
   * hands over to a fresh run with what this one knows. An event that arrives meanwhile is not
   * lost: the server refuses the hand-over until this run has seen it.
   */
  async function continueAsNewWhenLong(): Promise<void> {
    const long = workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= (input.historyLimit ?? DEFAULT_HISTORY_LIMIT);
    if (!long || inbox.unhandled || inbox.moneyBackPending || !patched(CONTINUE_AS_NEW_PATCH)) return;
    log.info('Continuing as new: the history is long', { sessionId, events: workflowInfo().historyLength });
    const next: CarriedState = { view, eventTypes: [...eventTypes], paymentSucceededAt, paymentWaitStartedAt };
    // The search attributes go along, so operators' filters keep finding the session.
    await makeContinueAsNewFunc<typeof fulfillCheckout>({ typedSearchAttributes: workflowInfo().typedSearchAttributes })({ ...input, carried: next });
  }

  async function fulfill(paid: SessionSummary): Promise<void> {
    paymentTaken = true;
    // A refund that came first: a payment refunded in full is not fulfilled at all.
    if (await refundedBeforeFulfilling(inbox, view, view.paymentIntentId, readMoneyBack)) return;
    await transition('fulfilling');
    view.fulfilled = await fulfillLineItems({ sessionId, lineItems: paid.lineItems });
    // A setup session saves a payment method: nothing was bought, so there is no receipt to send.
    if (paid.mode !== 'setup') {
      view.receiptSent = await bestEffortEmail(
        () => emailReceipt({ session: paid, fulfilled: view.fulfilled }),
        'the receipt email could not be sent',
      );
    }
    await transition('fulfilled');
  }

  const bestEffortEmail = (send: () => Promise<{ sent: boolean }>, reasonIfFailed: string) => bestEffortEmailFor(view, send, reasonIfFailed);

  /** Refunds and disputes, once fulfillment is over; Stripe's list of them decides, whichever event woke us. */
  async function settleMoneyBack(): Promise<void> {
    await settlePendingMoneyBack(inbox, {
      view,
      // A record written before PaymentIntents were kept: Stripe's session says which it was.
      paymentIntentId: async () => (view.paymentIntentId ??= (await retrieveSession(sessionId)).paymentIntentId ?? null),
      paymentTaken,
      readMoneyBack,
      reverseLineItems,
      emailRefund,
      transition,
    });
  }

  /**
   * A redriven run carries no events, and a delayed payment's failure is told only by its event:
   * the first recorded event Stripe confirms as this session's failure is taken as told, and kept
   * in this run's record so a later redrive recalls it too.
   */
  async function recallPaymentFailure(recordedEventIds: readonly string[]): Promise<void> {
    for (const eventId of recordedEventIds.filter(isStripeEventId)) {
      const claimed = { eventId, type: 'checkout.session.async_payment_failed', objectId: sessionId };
      if (!(await pausingOnConfiguration((stripe) => stripe.confirmEvent(claimed)))) continue;
      failureEventIds.push(eventId);
      eventTypes.add('checkout.session.async_payment_failed');
      if (!view.eventIds.includes(eventId)) view.eventIds.push(eventId);
      return;
    }
  }

  // Stops a late duplicate (after this session's execution aged out of retention) from fulfilling twice.
  const recorded = await loadRecord(sessionId);
  // Redelivered refund or dispute events an earlier run already acted on change nothing.
  if (recorded) inbox.forgetActedOn(recorded.eventIds);
  if (recorded && isSettledStatus(recorded.status)) {
    adoptRecord(view, recorded);
    if (!inbox.moneyBackPending) log.info('Session already settled; nothing to do', { sessionId, status: recorded.status });
    await settleMoneyBack();
    return view;
  }
  // A `failed` order is not run again (an operator redrives it); money that came back for it is settled.
  const failedIsFinal = recorded?.status === 'failed' && !input.redrive && patched(FAILED_IS_FINAL_PATCH);
  if (failedIsFinal || (recorded?.status === 'failed' && inbox.moneyBackPending && eventTypes.size === 0)) {
    if (failedIsFinal && !inbox.moneyBackPending) log.warn('Order failed earlier; only an operator redrive runs it again', { sessionId, reason: recorded.reason });
    adoptRecord(view, recorded);
    await settleMoneyBack();
    return view;
  }

  // A redriven `failed` order: refunds made since are read before anything is fulfilled, and settled after.
  if (recorded?.status === 'failed' && input.redrive && patched(MONEY_BACK_WITH_FAILURES_PATCH)) inbox.moneyBackPending = true;
  try {
    // Inside the try: a cancel or a failure while recalling records `failed` again, as any other step's.
    const recalls = recorded?.status === 'failed' && input.redrive && recorded.eventIds.some(isStripeEventId);
    if (recalls && patched(REDRIVE_RECALLS_FAILURE_PATCH)) await recallPaymentFailure(recorded.eventIds);
    const ended = await run();
    await settleMoneyBack();
    return ended;
  } catch (err) {
    // Every way out records why: the status API and the landing page never show a stale status.
    const failure = failureOf(err);
    if (failure?.nonRetryable) {
      view.reason = `${failure.type ?? 'Error'}: ${failure.message}`;
      await transition('failed');
      // A refund that came in meanwhile is settled now (what was fulfilled is reversed), not left behind.
      if (inbox.moneyBackPending && patched(MONEY_BACK_WITH_FAILURES_PATCH)) {
        await settleMoneyBack();
        if (view.status !== 'failed') return view;
      }
      // The execution fails, visible as Failed in the Temporal UI; only an operator's
      // `npm run redrive` runs the session again, once the cause is fixed.
      throw ApplicationFailure.nonRetryable(view.reason, failure.type ?? 'SessionFailed');
    }
    // A verdict (fulfilled, refunded...) stands: a cancel while money is settled changes nothing,
    // and a verdict whose write the cancel cut off is written (finishCutOffVerdict).
    const decided = isSettledStatus(view.status) && patched(VERDICT_STANDS_PATCH);
    if (isCancellation(err) && decided) await finishCutOffVerdict(view, transition);
    else if (isCancellation(err)) {
      await CancellationScope.nonCancellable(async () => {
        view.reason = CANCELED_BY_OPERATOR;
        await transition('failed');
      });
    }
    throw err;
  }
}
