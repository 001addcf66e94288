import type { CheckoutEventType, SessionSummary } from './definitions';

export type Decision =
  | { kind: 'fulfill' }
  | { kind: 'await_payment' }
  | { kind: 'await_checkout' }
  | { kind: 'payment_failed' }
  | { kind: 'expired' };

/**
 * What to do next, from the session as Stripe reports it now and the verified events seen so far.
 *
 * Only a session Stripe reports `complete` and `paid` (or `no_payment_required`) is fulfilled:
 * an open session may already say `no_payment_required` (setup mode, trials, 100 % discounts)
 * before the customer has completed Checkout. Events only wake the workflow to read the session
 * again, with one exception: Stripe's Checkout Session shows no trace of a failed delayed
 * payment (it stays `complete` and `unpaid`), so `async_payment_failed` is the verdict itself.
 */
export function decide(session: SessionSummary, events: ReadonlySet<CheckoutEventType>): Decision {
  if (session.status === 'expired') return { kind: 'expired' };
  if (session.status === 'open') return { kind: 'await_checkout' };
  if (session.paymentStatus === 'paid' || session.paymentStatus === 'no_payment_required') return { kind: 'fulfill' };
  if (events.has('checkout.session.async_payment_failed')) return { kind: 'payment_failed' };
  return { kind: 'await_payment' };
}
