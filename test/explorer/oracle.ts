import type { FulfillmentStatus } from '../../workflows/definitions';
import type { OrderOutcome, WorldOutcome } from './run-world';

/**
 * What must hold at the end of every world, written from the world's story and Stripe's final
 * state only. It shares no code with the product's decisions (workflows/decide.ts): an oracle that
 * shares the product's logic shares its bugs.
 */
export const INVARIANTS = [
  'paid_fulfilled_once', // (a) a paid order told to the product is fulfilled exactly once, with one receipt
  'unpaid_nothing_fulfilled', // (b) nothing fulfilled without payment; a payment-failed email only after a failure
  'acknowledged_has_effect', // (c) every 2xx answer (webhook or landing page) has its effect in the final record
  'status_matches_stripe', // (d) the final status agrees with Stripe's final state
  'at_rest', // the world ended: no order still worked on after the bounded wait
] as const;

export type Invariant = (typeof INVARIANTS)[number];

export interface Violation {
  invariant: Invariant;
  order: number;
  sessionId: string;
  detail: string;
}

/** Stripe's final state, in the oracle's words. */
type StripeState = 'paid' | 'payment_failed' | 'unpaid';

/**
 * The one mapping from Stripe's final state to the final records it allows. `null` (no record) and
 * `awaiting_payment` are allowed because Stripe may still be delivering (a world can end before
 * any event got through, and the reconciler is off); whether the product *was* told is (c)'s concern.
 */
const ALLOWED_STATUSES: Record<StripeState, readonly (FulfillmentStatus | null)[]> = {
  paid: ['fulfilled', 'awaiting_payment', null],
  payment_failed: ['payment_failed', 'awaiting_payment', null],
  unpaid: ['awaiting_payment', null],
};

const stripeStateOf = (o: OrderOutcome): StripeState => (o.paid ? 'paid' : o.paymentFailed ? 'payment_failed' : 'unpaid');
const ok = (status: number) => status >= 200 && status < 300;

export function checkWorld(outcome: WorldOutcome): Violation[] {
  const violations: Violation[] = [];
  for (const o of outcome.orders) {
    const fail = (invariant: Invariant, detail: string) => violations.push({ invariant, order: o.order, sessionId: o.sessionId, detail });
    const acknowledged = o.contacts.filter((contact) => ok(contact.status));
    const toldPaid = acknowledged.some((contact) => contact.paidThen);

    // (a)
    if (o.paid && toldPaid && o.fulfillments !== o.lineItems) fail('paid_fulfilled_once', `paid and acknowledged, ${o.fulfillments} of ${o.lineItems} line items fulfilled`);
    if (o.fulfillments > o.lineItems) fail('paid_fulfilled_once', `${o.fulfillments} fulfillments for ${o.lineItems} line items`);
    if (o.receipts > 1) fail('paid_fulfilled_once', `${o.receipts} receipts`);
    if (o.paid && o.status === 'fulfilled' && o.receipts !== 1) fail('paid_fulfilled_once', `fulfilled with ${o.receipts} receipts`);

    // (b)
    if (!o.paid && (o.fulfillments > 0 || o.receipts > 0)) fail('unpaid_nothing_fulfilled', `never paid, yet ${o.fulfillments} line items fulfilled and ${o.receipts} receipts`);
    if (o.paymentFailedEmails > 0 && !o.paymentFailed) fail('unpaid_nothing_fulfilled', `${o.paymentFailedEmails} payment-failed emails, but the payment did not fail`);
    if (o.paymentFailedEmails > 1) fail('unpaid_nothing_fulfilled', `${o.paymentFailedEmails} payment-failed emails`);

    // (c): an answer that says "received" must be true by the end, whenever it came.
    for (const contact of acknowledged) {
      const what = `${contact.what} at step ${contact.step} answered ${contact.status}`;
      if (o.status === null) fail('acknowledged_has_effect', `${what}, yet no record`);
      else if (contact.paidThen && o.status !== 'fulfilled') fail('acknowledged_has_effect', `${what} while paid, yet ${o.status}`);
      else if (contact.what === 'async' && o.paymentFailed && o.status !== 'payment_failed') fail('acknowledged_has_effect', `${what} (payment failed), yet ${o.status}`);
    }

    // (d)
    const state = stripeStateOf(o);
    if (!ALLOWED_STATUSES[state].includes(o.status)) fail('status_matches_stripe', `Stripe says ${state}, the record says ${o.status}`);

    if (o.stillRunning) fail('at_rest', `still running at the end, status ${o.status}`);
  }
  return violations;
}
