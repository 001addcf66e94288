/**
 * Money coming back after a payment (refunds, disputes): the pure decisions, shared by the
 * workflow and its tests. Stripe's refunds and disputes are read whole each time; what was already
 * acted on is in the view, so a redelivered or out-of-order event changes nothing twice.
 */
import { formatAmount } from '../src/shared/money';
import {
  AFTER_PAYMENT_STATUSES,
  type DisputeRecord,
  type DisputeSummary,
  type FulfillmentStatus,
  type RefundRecord,
  type RefundSummary,
} from './definitions';

/** What a refund reverses: the line items it names, everything left once the payment is refunded in full, or nothing (an operator decides). */
export type RefundCoverage = { items: 'all' | { lineItemId: string; quantity: number | null }[] } | { note: string };

/**
 * `succeededBefore`: the refunds acted on earlier. A refund that names its line items reverses
 * those; one that completes a full refund reverses whatever is left; any other partial refund is
 * recorded for an operator, never guessed from its amount.
 */
export function refundCoverage(refund: RefundSummary, succeededBefore: readonly RefundSummary[], amountTotal: number | null): RefundCoverage {
  if (refund.lineItems) return { items: refund.lineItems };
  const refunded = [...succeededBefore, refund].reduce((sum, r) => sum + r.amount, 0);
  if (amountTotal !== null && refunded >= amountTotal) return { items: 'all' };
  return {
    note: `refund ${refund.id} of ${formatAmount(refund.amount, refund.currency)} does not say which line items it covers (its metadata.line_items); nothing was reversed for it: an operator decides`,
  };
}

/**
 * Every status Stripe documents, mapped once: `lost`, and an appeal of a lost dispute
 * (`appeal_needs_response`, `appeal_under_review`), which leaves it lost until the appeal is won;
 * `won`, and an inquiry closed without a chargeback (`warning_closed`); `prevented` (Stripe's
 * dispute prevention refunded the payment instead: that refund settles the order); and open
 * (`warning_needs_response`, `warning_under_review`, `needs_response`, `under_review`). A status
 * Stripe adds later counts as open: nothing is reversed on it, and an operator sees it.
 * Only a lost dispute can be appealed, so an appeal is a loss even where our record says open (the
 * loss's own event may never have reached us); `before`, our record: a dispute already won or
 * prevented is final at Stripe, so a read that says appeal is stale and changes nothing.
 */
export function disputeOutcome(dispute: DisputeSummary, before?: Pick<DisputeRecord, 'outcome'>): DisputeRecord['outcome'] {
  if (dispute.status === 'lost') return 'lost';
  if (dispute.status.startsWith('appeal_')) return before?.outcome === 'won' || before?.outcome === 'prevented' ? before.outcome : 'lost';
  if (dispute.status === 'won' || dispute.status === 'warning_closed') return 'won';
  if (dispute.status === 'prevented') return 'prevented';
  return 'open';
}

/**
 * The order's status once money came back (`refunds`: the succeeded ones). Only a taken payment
 * moves (or a `failed` order, which may have been partly fulfilled): a lost dispute, then an open
 * one, then refunds decide. An order that failed, or never had anything fulfilled, stays `failed`
 * unless its money all went back (`refunded`) or a dispute took it (`dispute_lost`): it is never
 * called `fulfilled`, `disputed` or `partially_refunded`, which are verdicts nothing reopens.
 * `paymentTaken`: this run found the order paid, whatever its status says yet.
 */
export function statusAfterMoneyBack(
  current: FulfillmentStatus,
  refunds: readonly RefundRecord[],
  disputes: readonly DisputeRecord[],
  amountTotal: number | null,
  paymentTaken = false,
  fulfilledAnything = true,
): FulfillmentStatus {
  if (!paymentTaken && !AFTER_PAYMENT_STATUSES.includes(current) && current !== 'failed') return current;
  // A dispute whose loss reversed everything stays lost for the order even when won on appeal later;
  // one lost before anything was fulfilled (nothing reversed) and then won leaves the order unfulfilled: failed, for a redrive.
  if (disputes.some((dispute) => dispute.outcome === 'lost' || (dispute.outcome === 'won' && (dispute.reversed?.length ?? 0) > 0))) return 'dispute_lost';
  const refunded = refunds.reduce((sum, refund) => sum + refund.amount, 0);
  const inFull = refunds.length > 0 && amountTotal !== null && refunded >= amountTotal;
  if (current === 'failed' || !fulfilledAnything) return inFull ? 'refunded' : 'failed';
  if (disputes.some((dispute) => dispute.outcome === 'open')) return 'disputed';
  if (inFull) return 'refunded';
  if (refunds.length > 0) return 'partially_refunded';
  return 'fulfilled';
}

/** Whether Stripe reports the payment refunded in full. */
export function refundedInFull(refunds: readonly RefundSummary[], amountTotal: number | null): boolean {
  const refunded = refunds.filter((refund) => refund.status === 'succeeded').reduce((sum, refund) => sum + refund.amount, 0);
  return amountTotal !== null && refunded > 0 && refunded >= amountTotal;
}
