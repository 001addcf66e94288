/**
 * The narrow PaymentIntent port for orders paid without Checkout (the Payment Element): read one,
 * capture an authorization, release one. Captures and cancels carry an idempotency key, so a
 * retried call after a timeout never captures or cancels twice.
 */
import type Stripe from 'stripe';
import type { PaymentIntentSummary } from '../../workflows/definitions';
import { requireAnswerFor } from './sessions';

export type { PaymentIntentSummary };

/** The metadata key that names the merchant's order on a PaymentIntent. */
export const ORDER_METADATA_KEY = 'order_id';

export async function retrievePaymentIntentSummary(stripe: Stripe, paymentIntentId: string): Promise<PaymentIntentSummary> {
  const intent = await stripe.paymentIntents.retrieve(paymentIntentId, { expand: ['latest_charge'] });
  requireAnswerFor(paymentIntentId, intent.id);
  return toSummary(intent);
}

export async function capturePaymentIntent(stripe: Stripe, paymentIntentId: string, idempotencyKey: string): Promise<PaymentIntentSummary> {
  return toSummary(await stripe.paymentIntents.capture(paymentIntentId, {}, { idempotencyKey }));
}

export async function cancelPaymentIntent(stripe: Stripe, paymentIntentId: string, idempotencyKey: string): Promise<PaymentIntentSummary> {
  return toSummary(await stripe.paymentIntents.cancel(paymentIntentId, {}, { idempotencyKey }));
}

/** Refunds a PaymentIntent's whole payment, once per key (a second payment of an order already paid). */
export async function refundPaymentIntent(stripe: Stripe, paymentIntentId: string, idempotencyKey: string): Promise<{ refundId: string; status: string }> {
  const refund = await stripe.refunds.create({ payment_intent: paymentIntentId, metadata: { reason: 'duplicate_payment_of_an_order' } }, { idempotencyKey });
  return { refundId: refund.id, status: refund.status ?? 'pending' };
}

function toSummary(intent: Stripe.PaymentIntent): PaymentIntentSummary {
  const charge = typeof intent.latest_charge === 'object' ? intent.latest_charge : null;
  return {
    id: intent.id,
    status: intent.status,
    amount: intent.amount,
    amountCapturable: intent.amount_capturable,
    amountReceived: intent.amount_received,
    currency: intent.currency,
    captureMethod: intent.capture_method,
    livemode: intent.livemode,
    orderId: intent.metadata?.[ORDER_METADATA_KEY] ?? null,
    captureBefore: charge?.payment_method_details?.card?.capture_before ?? null,
    lastPaymentError: intent.last_payment_error?.code ?? null,
  };
}

const LOST_IF_UNSEEN: string[] = ['succeeded', 'requires_capture', 'processing'];

/** A PaymentIntent order as the reconciler lists it: enough to decide whether its workflow must run. */
export interface ListedPaymentIntentOrder {
  id: string;
  /** `paid`: succeeded, or authorized and waiting for capture; `unpaid` otherwise. */
  paymentStatus: 'paid' | 'unpaid';
}

/**
 * One page of the PaymentIntents created since `createdSince` (unix seconds), newest first, keeping
 * those whose metadata names an order and whose payment a webhook would have told us of: taken
 * (succeeded, or authorized for capture) or on its way (processing). One the customer never paid
 * (still waiting for a payment method, or canceled) is no lost order. Stripe's list cannot filter
 * by metadata or status, so the page is read whole: `lastId` is where the next page starts.
 */
export async function listPaymentIntentOrders(
  stripe: Stripe,
  input: { createdSince: number; startingAfter?: string; limit: number },
): Promise<{ orders: ListedPaymentIntentOrder[]; hasMore: boolean; lastId: string | null }> {
  const page = await stripe.paymentIntents.list({
    created: { gte: input.createdSince },
    limit: input.limit,
    ...(input.startingAfter ? { starting_after: input.startingAfter } : {}),
  });
  const orders = page.data
    .filter((intent) => Boolean(intent.metadata?.[ORDER_METADATA_KEY]) && LOST_IF_UNSEEN.includes(intent.status))
    .map((intent) => ({ id: intent.id, paymentStatus: intent.status === 'succeeded' || intent.status === 'requires_capture' ? ('paid' as const) : ('unpaid' as const) }));
  return { orders, hasMore: page.has_more, lastId: page.data[page.data.length - 1]?.id ?? null };
}
