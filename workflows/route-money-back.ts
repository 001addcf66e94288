import { ApplicationFailure, log, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { stripeTaskQueue, type CheckoutEvent } from './definitions';

type Activities = ReturnType<typeof createActivities>;

const PAYMENT_INTENT_ORDERS_PATCH = 'route-to-payment-intent-orders';
const UNTIL_IT_WORKS = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' } as const;

/**
 * A refund or dispute event names only the PaymentIntent. When our records do not know it yet
 * (the order's own events were late or lost), this finds the order that took the payment, at
 * Stripe, on the rate-limited queue: the Checkout Session that took it, or else the PaymentIntent
 * itself when its metadata names an order; and hands the event to that order's workflow.
 * One execution per event (workflow ID `route-<event ID>`), so a redelivery is a no-op.
 */
export async function routeMoneyBack(input: { paymentIntentId: string; event: CheckoutEvent }): Promise<{ sessionId: string | null }> {
  const { sessionOfPaymentIntent, paymentIntentOrderOf } = proxyActivities<Activities>({
    taskQueue: stripeTaskQueue(workflowInfo().taskQueue),
    startToCloseTimeout: '30 seconds',
    retry: { ...UNTIL_IT_WORKS, maximumInterval: '5 minutes' },
  });
  const { deliverMoneyBack } = proxyActivities<Activities>({ startToCloseTimeout: '30 seconds', retry: UNTIL_IT_WORKS });
  let sessionId = await sessionOfPaymentIntent(input.paymentIntentId);
  // No Checkout Session took it: an order paid by PaymentIntent, when its metadata names one, settles it
  // (refunded in full before its payment event was handled, it is then never fulfilled).
  const toOrders = !sessionId && patched(PAYMENT_INTENT_ORDERS_PATCH);
  if (toOrders) sessionId = await paymentIntentOrderOf(input.paymentIntentId);
  if (!sessionId) {
    const facts = { paymentIntentId: input.paymentIntentId, eventId: input.event.id, type: input.event.type };
    if (!toOrders) {
      log.warn('No Checkout Session took this payment; the refund or dispute is not ours to settle', facts);
      return { sessionId: null };
    }
    // Never a silent 2xx: a payment no order of ours took (a subscription's invoice payment, a charge made
    // elsewhere on the account) ends this execution Failed, visible to operators, with the IDs to look at.
    log.error('No order of ours took this payment: the refund or dispute was acknowledged but settles nothing here', facts);
    throw ApplicationFailure.nonRetryable(
      `no order of ours took payment ${input.paymentIntentId} (${input.event.type} ${input.event.id}): not a Checkout Session's in payment mode nor a PaymentIntent naming an order (subscription payments are not linked); settle it by hand if it is ours`,
      'PaymentNotOurs',
    );
  }
  await deliverMoneyBack({ sessionId, event: input.event });
  return { sessionId };
}
