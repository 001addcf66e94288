/**
 * The kinds of order, side by side. An order's ID names its kind (`cs_...` a Checkout Session,
 * `pi_...` an order paid by PaymentIntent without Checkout), and the kind names everything else:
 * the workflow that runs it and with what input, how the reconciler finds it at Stripe, how a
 * stuck one is re-driven, how `npm run redrive` drives it and how a refund or dispute (which names
 * only a PaymentIntent) finds it. Every path asks this module; none decides by itself what an ID
 * means, so none can start the wrong workflow for an ID.
 *
 * Side-effect free (no Stripe, no database): the workflows may import it too.
 */
import type { Duration } from '@temporalio/common';
import {
  isSettledStatus,
  PAYMENT_INTENT_WORKFLOW_TYPE,
  WORKFLOW_TYPE,
  type FulfillCheckoutInput,
  type FulfillmentView,
  type FulfillPaymentIntentInput,
} from '../../workflows/definitions';

/** Checkout Session IDs are `cs_test_...` or `cs_live_...`. */
export const SESSION_ID_PATTERN = /^cs_(test|live)_[A-Za-z0-9]{1,250}$/;
/** PaymentIntent IDs: `pi_` and Stripe's alphabet. */
export const PAYMENT_INTENT_ID_PATTERN = /^pi_[A-Za-z0-9_]{1,250}$/;

/** What a start carries besides the ID: the same for every path (webhook, landing page, reconciler, redrive). */
export interface StartSettings {
  paymentDeadline: Duration;
  /** `npm run redrive`: an operator asks for a `failed` order (canceled or given up) to run again. */
  redrive?: boolean;
}

export interface OrderKind {
  name: 'checkout_session' | 'payment_intent';
  /** How logs, errors and the Temporal UI name it. */
  label: string;
  idPattern: RegExp;
  /** The workflow that runs an order of this kind, under the order's ID as workflow ID. */
  workflowType: string;
  workflowInput(id: string, settings: StartSettings): [FulfillCheckoutInput] | [FulfillPaymentIntentInput];
  /** The reconciler's Stripe listing that finds orders of this kind whose events never reached us (an activity). */
  reconcileListing: 'listCompletedSessions' | 'listPaymentIntentOrders';
}

// How a refund or dispute, which names only a PaymentIntent, finds its order: first the records
// (`orderOfPayment`: a Checkout Session whose record holds that PaymentIntent, else a PaymentIntent
// order recorded under its own ID), then Stripe (`routeMoneyBack`: the Checkout Session that took
// it, else the PaymentIntent itself when its metadata names an order). A stuck order is re-driven,
// and `npm run redrive` drives one, through the starter, which starts its kind's workflow.

export const CHECKOUT_SESSION: OrderKind = {
  name: 'checkout_session',
  label: 'Checkout Session',
  idPattern: SESSION_ID_PATTERN,
  workflowType: WORKFLOW_TYPE,
  workflowInput: (sessionId, { paymentDeadline, redrive }) => [{ sessionId, paymentDeadline, ...(redrive ? { redrive } : {}) }],
  reconcileListing: 'listCompletedSessions',
};

export const PAYMENT_INTENT_ORDER: OrderKind = {
  name: 'payment_intent',
  label: 'PaymentIntent order',
  idPattern: PAYMENT_INTENT_ID_PATTERN,
  workflowType: PAYMENT_INTENT_WORKFLOW_TYPE,
  workflowInput: (paymentIntentId, { paymentDeadline, redrive }) => [{ paymentIntentId, paymentDeadline, ...(redrive ? { redrive } : {}) }],
  reconcileListing: 'listPaymentIntentOrders',
};

export const ORDER_KINDS: readonly OrderKind[] = [CHECKOUT_SESSION, PAYMENT_INTENT_ORDER];

/** The kind an ID names, or null for anything that is no order's ID. */
export function orderKindOf(id: string): OrderKind | null {
  return ORDER_KINDS.find((kind) => kind.idPattern.test(id)) ?? null;
}

export class NotAnOrderId extends Error {
  constructor(id: string) {
    super(`not an order ID: ${JSON.stringify(id)} (expected ${ORDER_KINDS.map((kind) => `a ${kind.label} ID`).join(' or ')}: cs_test_..., cs_live_... or pi_...)`);
    this.name = 'NotAnOrderId';
  }
}

/** The kind an ID names; throws for anything else, so nothing unknown reaches Temporal or Stripe. */
export function requireOrderKind(id: string): OrderKind {
  const kind = orderKindOf(id);
  if (!kind) throw new NotAnOrderId(id);
  return kind;
}

/**
 * What a new start may do once an order's last execution has closed, from its record: the one
 * rule for second chances, whichever path asks (a webhook, the landing page, the reconciler, the
 * stuck sweep).
 * - `already_settled`: Stripe's verdict is recorded (fulfilled, refunded, expired, ...); nothing runs again.
 * - `stopped`: `failed`, because an operator canceled it or for what no retry can fix (the fulfiller
 *   gave up, Stripe does not know the order, the order does not match the payment). Every failure a
 *   retry can fix is retried inside the execution (Stripe, the database, SMTP, a refused key), so a
 *   `failed` order is never re-run by itself: only an operator's `npm run redrive` runs it again.
 * - `reopen`: no verdict yet. The run stopped waiting (`awaiting_payment`, `awaiting_checkout`), or
 *   its execution is gone mid-way (terminated, lost: a transient status), or nothing was recorded.
 */
export type SecondChance = 'already_settled' | 'stopped' | 'reopen';

export function secondChance(view: Pick<FulfillmentView, 'status'> | null | undefined): SecondChance {
  if (!view) return 'reopen';
  if (isSettledStatus(view.status)) return 'already_settled';
  if (view.status === 'failed') return 'stopped';
  return 'reopen';
}
