/**
 * The narrow PaymentIntent port for orders paid without Checkout (the Payment Element): read one,
 * capture an authorization, release one. Captures and cancels carry an idempotency key, so a
 * retried call after a timeout never captures or cancels twice.
 */
import type Stripe from 'stripe';
import type { PaymentIntentSummary } from '../../workflows/definitions';

export type { PaymentIntentSummary };

/** The metadata key that names the merchant's order on a PaymentIntent. */
export const ORDER_METADATA_KEY = 'order_id';

export async function retrievePaymentIntentSummary(stripe: Stripe, paymentIntentId: string): Promise<PaymentIntentSummary> {
  const intent = await stripe.paymentIntents.retrieve(paymentIntentId, { expand: ['latest_charge'] });
  return toSummary(intent);
}

export async function capturePaymentIntent(stripe: Stripe, paymentIntentId: string, idempotencyKey: string): Promise<PaymentIntentSummary> {
  return toSummary(await stripe.paymentIntents.capture(paymentIntentId, {}, { idempotencyKey }));
}

export async function cancelPaymentIntent(stripe: Stripe, paymentIntentId: string, idempotencyKey: string): Promise<PaymentIntentSummary> {
  return toSummary(await stripe.paymentIntents.cancel(paymentIntentId, {}, { idempotencyKey }));
}

function toSummary(intent: Stripe.PaymentIntent): PaymentIntentSummary {
  const charge = typeof intent.latest_charge === 'object' ? intent.latest_charge : null;
  return {
    id: intent.id,
    status: intent.status,
    amount: intent.amount,
    currency: intent.currency,
    captureMethod: intent.capture_method,
    livemode: intent.livemode,
    orderId: intent.metadata?.[ORDER_METADATA_KEY] ?? null,
    captureBefore: charge?.payment_method_details?.card?.capture_before ?? null,
    lastPaymentError: intent.last_payment_error?.code ?? null,
  };
}
