/**
 * Steps both order workflows take (a Checkout Session's and a PaymentIntent's): recording a
 * transition, an email that must not undo an outcome, and settling refunds and disputes.
 * Deterministic code: activities are passed in.
 */
import { ActivityFailure, ApplicationFailure, CancellationScope, log, patched, setCurrentDetails, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import type { createActivities } from '../activities';
import { formatAmount } from '../src/shared/money';
import {
  checkoutEventSignal,
  fulfillmentQuery,
  isMoneyBackEvent,
  LANDING_WAKE_INTERVAL_MS,
  searchAttributes,
  type CheckoutEvent,
  type CheckoutEventType,
  type FulfillmentStatus,
  type FulfillmentView,
  type RefundRecord,
} from './definitions';
import { disputeOutcome, refundCoverage, refundedInFull, statusAfterMoneyBack } from './money-back';

type Activities = ReturnType<typeof createActivities>;

// Stripe and the database may be down for a while: keep retrying, backing off to once a minute.
export const UNTIL_IT_WORKS = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' } as const;
// About three hours of attempts; after that the goods are delivered and the missing email is recorded.
// Each send is claimed in the database first, and the claim is renewed until the send settles, even
// past this attempt's timeout: a retry that overlaps a slow send waits for it (EmailInFlight) instead
// of sending a second copy. Sends heartbeat, so a worker that dies mid-send is noticed in seconds.
export const EMAIL_ACTIVITIES = {
  startToCloseTimeout: '30 seconds',
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes', maximumAttempts: 25 },
} as const;

/**
 * What an order's workflow has been told: the event types seen, whether one still waits for a
 * decision, and refund or dispute events not yet settled. Registers the signal and query handlers;
 * call it before the first await, so an event sent with signal-with-start is never lost.
 */
export function createInbox(view: FulfillmentView, carriedTypes: readonly CheckoutEventType[] = [], onEvent?: (event: CheckoutEvent) => void) {
  const inbox = {
    eventTypes: new Set<CheckoutEventType>(carriedTypes),
    /** Set by every new event, cleared when a decision has taken it into account. */
    unhandled: false,
    /** When this run last asked Stripe for the order (workflow time): a landing-page visit soon after needs no read of its own. */
    lastReadAt: Number.NEGATIVE_INFINITY,
    /** A refund or dispute event not yet acted on: settled once fulfillment is done, never before. */
    moneyBackPending: false,
    /** Refund and dispute events received: each counts as acted on (in `view.eventIds`) only once a pass settled it. */
    moneyBackEventIds: [] as string[],
    /** Once the record is read: refund or dispute events an earlier run already acted on change nothing. */
    forgetActedOn(recordedEventIds: readonly string[]): void {
      inbox.moneyBackPending = inbox.moneyBackEventIds.some((id) => !recordedEventIds.includes(id));
    },
  };
  setHandler(checkoutEventSignal, (event) => {
    // A new type (no recorded history has it): a wake only, recorded nowhere. However often the page
    // is loaded, at most one read per LANDING_WAKE_INTERVAL_MS: a read that recent answers the visit.
    if (event.type === 'customer.landed') {
      if (Date.now() - inbox.lastReadAt >= LANDING_WAKE_INTERVAL_MS) inbox.unhandled = true;
      return;
    }
    if (view.eventIds.includes(event.id)) {
      // A redelivery: acted on already, yet Stripe asks that every delivery read the order again, as
      // the landing page does (a payment may have been taken since, its own event lost).
      if (patched(A_REDELIVERY_WAKES_PATCH)) inbox.unhandled = true;
      return;
    }
    if (inbox.moneyBackEventIds.includes(event.id)) return; // a redelivered refund or dispute event: already pending
    if (isMoneyBackEvent(event.type)) {
      // Recorded as acted on only once settled: a run that ends first leaves it for Stripe's redelivery.
      inbox.moneyBackPending = true;
      inbox.moneyBackEventIds.push(event.id);
      // A refund or dispute exists only for a taken payment: a run waiting for the payment reads Stripe again now.
      if (patched(MONEY_BACK_WAKES_PATCH)) inbox.unhandled = true;
      return;
    }
    view.eventIds.push(event.id);
    inbox.eventTypes.add(event.type);
    onEvent?.(event);
    inbox.unhandled = true;
  });
  setHandler(fulfillmentQuery, () => view);
  return inbox;
}

export type Inbox = ReturnType<typeof createInbox>;

/** Takes over what the record holds, keeping every event ID either knows, so redeliveries stay recognised. */
export function adoptRecord(view: FulfillmentView, recorded: FulfillmentView): void {
  Object.assign(view, recorded, { eventIds: [...new Set([...recorded.eventIds, ...view.eventIds])] });
}

// Stripe's refunds are read before every fulfillment, not only once a refund event came first: its
// event may still be on its way (routed through Stripe) when the payment's own event starts the order.
export const READ_REFUNDS_BEFORE_FULFILLING_PATCH = 'read-refunds-before-fulfilling';
export const LOST_DISPUTE_BEFORE_FULFILLING_PATCH = 'lost-dispute-before-fulfilling';
export const AN_APPEAL_IS_A_LOSS_PATCH = 'an-appeal-is-a-loss';
/** A refund or dispute event wakes a run waiting for its payment (found by the explorer's long run). */
export const MONEY_BACK_WAKES_PATCH = 'money-back-wakes-a-waiting-run';
/** A redelivered payment or Checkout event wakes a run waiting for Stripe (found by the explorer's long run). */
export const A_REDELIVERY_WAKES_PATCH = 'a-redelivery-wakes-a-waiting-run';
/** A verdict whose write an operator's cancel cut off is written, not left unwritten (both order kinds). */
export const CUT_OFF_VERDICT_PATCH = 'a-cut-off-verdict-is-written';

/** The reasons `refundedBeforeFulfilling` records: money back alone stopped the order (`stoppedByMoneyBack` reads them). */
const LOST_BEFORE_FULFILLING = 'a dispute was lost before it was fulfilled; nothing was fulfilled';
const REFUNDED_BEFORE_FULFILLING = 'refunded in full before it was fulfilled; nothing was fulfilled';

/**
 * Whether Stripe says the payment is refunded in full, so nothing is to be fulfilled (the refund is
 * then settled like any other: its pass records `refunded`). Read when a refund event came first,
 * and, under the patch, before every fulfillment: one read of the payment's refunds and disputes.
 */
export async function refundedBeforeFulfilling(
  inbox: Inbox,
  view: FulfillmentView,
  paymentIntentId: string | null | undefined,
  readMoneyBack: Activities['readMoneyBack'],
): Promise<boolean> {
  if (!paymentIntentId) return false;
  if (!inbox.moneyBackPending && !patched(READ_REFUNDS_BEFORE_FULFILLING_PATCH)) return false;
  const { refunds, disputes } = await readMoneyBack(paymentIntentId);
  // A dispute already lost took the money as surely as a refund (the schedule explorer found one fulfilled).
  const lost = disputes.some((dispute) => disputeOutcome(dispute) === 'lost') && patched(LOST_DISPUTE_BEFORE_FULFILLING_PATCH);
  if (!lost && !refundedInFull(refunds, view.amountTotal)) return false;
  view.reason = lost ? LOST_BEFORE_FULFILLING : REFUNDED_BEFORE_FULFILLING;
  inbox.moneyBackPending = true; // settled once the run ends, whether or not its event has arrived yet
  return true;
}

/**
 * Money that came back before anything was fulfilled and then stopped being back (a dispute won on
 * appeal, a refund that failed after it had succeeded) runs the order again (found by the explorer's long run).
 */
export const WON_BACK_RUNS_AGAIN_PATCH = 'a-dispute-won-back-runs-the-order-again';
export const CANCELED_BY_OPERATOR = 'canceled by an operator';

/**
 * Whether a record ended only because its money came back before anything was fulfilled (a dispute
 * lost, or a refund in full), and no operator canceled it. Read before settling: if the money is then
 * the merchant's again, nothing shipped for it (see `moneyKeptAgain`).
 */
export function stoppedByMoneyBack(recorded: FulfillmentView): boolean {
  const reason = recorded.reason ?? '';
  const ended = recorded.status === 'dispute_lost' || recorded.status === 'refunded' || recorded.status === 'failed';
  return ended && recorded.fulfilled.length === 0 && [LOST_BEFORE_FULFILLING, REFUNDED_BEFORE_FULFILLING].some((words) => reason.includes(words)) && !reason.includes(CANCELED_BY_OPERATOR);
}

/**
 * After settling: the payment is the merchant's again (every dispute won, none lost or open; no refund
 * succeeded) and the order was left `failed`. A refund that still stands is left to an operator:
 * running the order again would ship what it refunded.
 */
export function moneyKeptAgain(view: FulfillmentView): boolean {
  const disputesWon = (view.disputes ?? []).every((dispute) => dispute.outcome === 'won' || dispute.outcome === 'prevented');
  return view.status === 'failed' && disputesWon && (view.refunds ?? []).every((refund) => refund.status !== 'succeeded');
}

/** The application failure an activity ended with, after Temporal's retries. */
export function failureOf(err: unknown): ApplicationFailure | undefined {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause : undefined;
}

/**
 * `transition(status)`: the view's new status in the search attributes, the UI's details line
 * and the record. (run start, sequence) orders the writes: a late write from an older attempt or
 * run never wins.
 */
export function createRecorder(view: FulfillmentView, recordStatus: Activities['recordStatus']) {
  let transitions = 0;
  /** The last status the record took: a write canceled with its run never landed, whatever the view says. */
  const written: { status: FulfillmentStatus | null } = { status: null };
  return Object.assign(transition, { written });
  async function transition(status: FulfillmentStatus): Promise<void> {
    view.status = status;
    const updates: SearchAttributeUpdatePair[] = [{ key: searchAttributes.fulfillmentStatus, value: status }];
    if (view.paymentStatus) updates.push({ key: searchAttributes.paymentStatus, value: view.paymentStatus });
    if (view.amountTotal !== null) updates.push({ key: searchAttributes.amountTotal, value: view.amountTotal });
    if (view.currency) updates.push({ key: searchAttributes.currency, value: view.currency });
    upsertSearchAttributes(updates);
    setCurrentDetails(describe(view));
    await recordStatus({ view, runStartedAt: workflowInfo().runStartTime.getTime(), seq: ++transitions });
    written.status = status;
  }
}

/**
 * An operator's cancel after a verdict (fulfilled, refunded, payment_failed...) changes nothing:
 * the view only takes a verdict once its effects are done (goods, emails, reversals). But the
 * cancel may cut off the verdict's own write, or hide that it landed: it is written again, outside
 * the cancel, so the record never stays at the status before (or says `failed`). Writing it twice
 * is harmless: the later write wins by its sequence.
 */
export async function finishCutOffVerdict(view: FulfillmentView, transition: ReturnType<typeof createRecorder>): Promise<void> {
  if (transition.written.status === view.status || !patched(CUT_OFF_VERDICT_PATCH)) return;
  await CancellationScope.nonCancellable(() => transition(view.status));
}

/**
 * Whether the customer has the email. One that still fails after all its retries is recorded in
 * `reason`, never allowed to undo a fulfillment or an outcome.
 */
export async function bestEffortEmail(view: FulfillmentView, send: () => Promise<{ sent: boolean }>, reasonIfFailed: string): Promise<boolean> {
  try {
    return (await send()).sent;
  } catch (err) {
    if (!(err instanceof ActivityFailure)) throw err;
    log.error('Email failed after all retries', { id: view.sessionId, error: String(err.cause ?? err) });
    view.reason = view.reason ? `${view.reason}; ${reasonIfFailed}` : reasonIfFailed;
    return false;
  }
}

export interface MoneyBackSteps {
  view: FulfillmentView;
  paymentIntentId: string;
  /** The refund and dispute events this pass answers, recorded as acted on with its outcome. */
  settledEventIds?: readonly string[];
  /** This run found the payment taken, whatever the status says yet. */
  paymentTaken: boolean;
  readMoneyBack: Activities['readMoneyBack'];
  reverseLineItems: Activities['reverseLineItems'];
  emailRefund: Activities['emailRefund'];
  transition: (status: FulfillmentStatus) => Promise<void>;
}

/**
 * Refunds and disputes, once fulfillment is over (a refund that arrives first waits for it), until
 * no event is left pending. `paymentIntentId` says which payment they concern (null: none known,
 * nothing to settle).
 */
export async function settlePendingMoneyBack(
  inbox: Inbox,
  steps: Omit<MoneyBackSteps, 'paymentIntentId'> & { paymentIntentId: () => Promise<string | null> },
): Promise<void> {
  while (inbox.moneyBackPending) {
    inbox.moneyBackPending = false;
    // The events this pass answers: any that arrive meanwhile wait for the next pass.
    const settling = inbox.moneyBackEventIds.filter((id) => !steps.view.eventIds.includes(id));
    const paymentIntentId = await steps.paymentIntentId();
    if (!paymentIntentId) {
      log.warn('A refund or dispute event for an order without a known payment; nothing to settle', { id: steps.view.sessionId });
      continue;
    }
    await settleMoneyBack({ ...steps, paymentIntentId, settledEventIds: settling });
  }
}

/**
 * One pass over the payment's refunds and disputes, as Stripe lists them now: each refund not yet
 * acted on reverses what it covers and is emailed, once; a dispute is recorded, and reverses
 * everything left only when it is lost. Only what was fulfilled is ever reversed.
 */
export async function settleMoneyBack(steps: MoneyBackSteps): Promise<void> {
  const { view } = steps;
  const id = view.sessionId;
  const { refunds, disputes } = await steps.readMoneyBack(steps.paymentIntentId);
  const refundRecords = (view.refunds ??= []);
  const disputeRecords = (view.disputes ??= []);
  for (const refund of refunds) {
    const known = refundRecords.find((record) => record.id === refund.id);
    if (known) {
      // Stripe can move a succeeded refund to failed (a closed card, a bank transfer returned): the money
      // did not go back. It stops counting as refunded; what it reversed stays so, for an operator.
      if (known.status === 'succeeded' && refund.status !== 'succeeded') {
        known.status = refund.status;
        known.note = `refund ${refund.id} of ${formatAmount(refund.amount, refund.currency)} ${refund.status} after it had succeeded: the money did not go back to the customer; what it reversed stays reversed: an operator decides`;
        log.error('A refund failed after it had succeeded: the money did not go back', { id, refundId: refund.id, status: refund.status });
      }
      continue;
    }
    // A pending refund may still fail: `refund.updated` wakes us when it settles.
    if (refund.status !== 'succeeded') continue;
    const coverage = refundCoverage(refund, refundRecords.filter(succeeded), view.amountTotal);
    const reversed = 'items' in coverage ? await steps.reverseLineItems({ sessionId: id, reversalId: refund.id, reason: 'refund', items: coverage.items }) : null;
    const namedNothingFulfilled = 'items' in coverage && coverage.items !== 'all' && reversed?.length === 0;
    const note = 'note' in coverage ? coverage.note : namedNothingFulfilled ? `refund ${refund.id} names line items none of which is fulfilled and not yet reversed (${refund.lineItems!.map((item) => item.lineItemId).join(', ')}); nothing was reversed for it: an operator decides` : null;
    const record = { ...refund, reversed, note, emailed: false };
    refundRecords.push(record);
    record.emailed = await bestEffortEmail(view, () => steps.emailRefund({ sessionId: id, refund, reversed }), `the email for refund ${refund.id} could not be sent`);
  }
  for (const dispute of disputes) {
    let record = disputeRecords.find((known) => known.id === dispute.id);
    // Runs recorded before the patch kept an open record's outcome under an appeal.
    const keptOpen = record?.outcome === 'open' && dispute.status.startsWith('appeal_') && !patched(AN_APPEAL_IS_A_LOSS_PATCH);
    const outcome = keptOpen ? 'open' : disputeOutcome(dispute, record);
    if (!record) disputeRecords.push((record = { ...dispute, outcome, reversed: null }));
    Object.assign(record, dispute, { outcome });
    if (outcome === 'lost' && record.reversed === null) {
      record.reversed = await steps.reverseLineItems({ sessionId: id, reversalId: dispute.id, reason: 'dispute_lost', items: 'all' });
    }
  }
  view.eventIds.push(...(steps.settledEventIds ?? []).filter((eventId) => !view.eventIds.includes(eventId)));
  const notes = refundRecords.flatMap((refund) => (refund.note ? [refund.note] : []));
  const fulfilledAnything = view.fulfilled.length > 0 || [...refundRecords, ...disputeRecords].some((record) => (record.reversed?.length ?? 0) > 0);
  const next = statusAfterMoneyBack(view.status, refundRecords.filter(succeeded), disputeRecords, view.amountTotal, steps.paymentTaken, fulfilledAnything);
  const reasons = new Set([...(view.reason ? view.reason.split('; ') : []), ...notes]);
  if (reasons.size > 0) view.reason = [...reasons].join('; ');
  log.info('Refunds and disputes settled', { id, status: next, refunds: refundRecords.length, disputes: disputeRecords.length });
  await steps.transition(next);
}

const succeeded = (refund: RefundRecord) => refund.status === 'succeeded';

/** The line an operator reads in the Temporal UI next to the execution. */
export function describe(view: FulfillmentView): string {
  const amount = view.amountTotal !== null && view.currency ? formatAmount(view.amountTotal, view.currency) : 'amount unknown';
  const items = view.lineItems.length;
  return `**${view.status}** · ${view.sessionId} · ${amount} · ${items} line item${items === 1 ? '' : 's'}`;
}
