import type Stripe from 'stripe';
import type { DisputeSummary, MoneyBack, RefundSummary } from '../../workflows/definitions';

/** PaymentIntent IDs: `pi_` and Stripe's alphabet. */
export const PAYMENT_INTENT_ID_PATTERN = /^pi_[A-Za-z0-9_]{1,250}$/;

/**
 * Every refund and dispute of a PaymentIntent, all pages: the workflow acts on what Stripe
 * reports now, whichever event woke it and in whatever order the events came.
 */
export async function readMoneyBack(stripe: Stripe, paymentIntentId: string): Promise<MoneyBack> {
  const refunds: RefundSummary[] = [];
  for await (const refund of stripe.refunds.list({ payment_intent: paymentIntentId, limit: 100 })) {
    refunds.push({
      id: refund.id,
      amount: refund.amount,
      currency: refund.currency,
      status: refund.status ?? 'pending',
      lineItems: coveredLineItems(refund.metadata?.line_items),
    });
  }
  const disputes: DisputeSummary[] = [];
  for await (const dispute of stripe.disputes.list({ payment_intent: paymentIntentId, limit: 100 })) {
    disputes.push({ id: dispute.id, amount: dispute.amount, currency: dispute.currency, status: dispute.status, reason: dispute.reason });
  }
  // Stripe lists newest first; oldest first, refunds are reversed and emailed in the order they were made.
  return { refunds: refunds.reverse(), disputes: disputes.reverse() };
}

/** The Checkout Session that took this payment, if one did. */
export async function sessionOfPaymentIntent(stripe: Stripe, paymentIntentId: string): Promise<string | null> {
  const page = await stripe.checkout.sessions.list({ payment_intent: paymentIntentId, limit: 1 });
  return page.data[0]?.id ?? null;
}

/**
 * `metadata.line_items` of a refund, "li_1:2,li_2" (a line item without a quantity: all of it),
 * as the merchant's Dashboard user or code wrote it. Anything unreadable counts as not saying.
 */
export function coveredLineItems(value: string | undefined): RefundSummary['lineItems'] {
  if (!value?.trim()) return null;
  const covered: { lineItemId: string; quantity: number | null }[] = [];
  for (const entry of value.split(',')) {
    const match = /^\s*(li_[A-Za-z0-9_]+)\s*(?::\s*(\d+))?\s*$/.exec(entry);
    if (!match) return null;
    covered.push({ lineItemId: match[1]!, quantity: match[2] === undefined ? null : Number(match[2]) });
  }
  return covered;
}
