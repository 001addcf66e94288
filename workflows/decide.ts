import type { CheckoutEventType, SessionSummary } from './definitions';

export type Decision =
  | { kind: 'fulfill' }
  | { kind: 'await_payment' }
  | { kind: 'await_checkout' }
  | { kind: 'payment_failed' }
  | { kind: 'expired' };

/**
 * What to do next, from the session as Stripe last reported it and the verified events seen so far.
 * Stripe's `payment_status` is the source of truth for "paid"; a verified `async_payment_*`
 * event settles a delayed payment even if our last read of the session predates it.
 */
export function decide(session: SessionSummary, events: ReadonlySet<CheckoutEventType>): Decision {
  if (session.paymentStatus === 'paid' || session.paymentStatus === 'no_payment_required') return { kind: 'fulfill' };
  if (events.has('checkout.session.async_payment_failed')) return { kind: 'payment_failed' };
  if (events.has('checkout.session.async_payment_succeeded')) return { kind: 'fulfill' };
  if (session.status === 'expired' || events.has('checkout.session.expired')) return { kind: 'expired' };
  if (session.status === 'complete') return { kind: 'await_payment' };
  return { kind: 'await_checkout' };
}
