import type Stripe from 'stripe';
import type { DisputeSummary, MoneyBack, RefundSummary } from '../../workflows/definitions';


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

/** A refund or dispute as the reconciler lists them: enough to tell whether its session acted on it. */
export interface ListedMoneyBack {
  id: string;
  paymentIntentId: string | null;
  status: string;
}

/** One page of the refunds or disputes created since `createdSince` (unix seconds), newest first. */
export async function listRecentMoneyBack(
  stripe: Stripe,
  input: { kind: 'refunds' | 'disputes'; createdSince: number; startingAfter?: string; limit: number },
): Promise<{ items: ListedMoneyBack[]; hasMore: boolean }> {
  const params = { created: { gte: input.createdSince }, limit: input.limit, ...(input.startingAfter ? { starting_after: input.startingAfter } : {}) };
  const page = input.kind === 'refunds' ? await stripe.refunds.list(params) : await stripe.disputes.list(params);
  const items = page.data.map((item: Stripe.Refund | Stripe.Dispute) => {
    const paymentIntent = item.payment_intent;
    return { id: item.id, paymentIntentId: typeof paymentIntent === 'string' ? paymentIntent : (paymentIntent?.id ?? null), status: item.status ?? 'pending' };
  });
  return { items, hasMore: page.has_more };
}

/** The Checkout Session that took this payment, if one did. */
export async function sessionOfPaymentIntent(stripe: Stripe, paymentIntentId: string): Promise<string | null> {
  const page = await stripe.checkout.sessions.list({ payment_intent: paymentIntentId, limit: 1 });
  return page.data[0]?.id ?? null;
}

/**
 * `metadata.line_items` of a refund, "li_1:2,li_2" (a line item without a quantity: all of it),
 * as the merchant's Dashboard user or code wrote it: Checkout's `li_...` IDs, or the merchant's own
 * line item IDs for an order paid by PaymentIntent ("sku-42:1"). Anything unreadable counts as not saying.
 */
export function coveredLineItems(value: string | undefined): RefundSummary['lineItems'] {
  if (!value?.trim()) return null;
  const covered: { lineItemId: string; quantity: number | null }[] = [];
  for (const entry of value.split(',')) {
    const match = /^\s*([A-Za-z0-9][A-Za-z0-9_.-]*)\s*(?::\s*(\d+))?\s*$/.exec(entry);
    if (!match) return null;
    covered.push({ lineItemId: match[1]!, quantity: match[2] === undefined ? null : Number(match[2]) });
  }
  return covered;
}

/** A dispute's status as Stripe reports it now (disputes close weeks after they open). */
export async function retrieveDisputeStatus(stripe: Stripe, disputeId: string): Promise<string> {
  return (await stripe.disputes.retrieve(disputeId)).status;
}
