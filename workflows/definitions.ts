/**
 * The vocabulary shared by the workflow, its activities, the ingress and operators:
 * statuses, the session summary, the signal, the query and the search attributes.
 * Side-effect free, so the deterministic workflow bundle can import it.
 */
import { defineSearchAttributeKey, SearchAttributeType, type Duration } from '@temporalio/common';
import { defineQuery, defineSignal } from '@temporalio/workflow';

export const WORKFLOW_TYPE = 'fulfillCheckout';
export const DEFAULT_TASK_QUEUE = 'fulfillment';

/**
 * Stripe reads run on their own task queue, whose workers cap its rate for the whole cluster
 * (Stripe allows about 100 reads a second in live mode and 25 in test mode, per account).
 */
export function stripeTaskQueue(taskQueue: string): string {
  return `${taskQueue}-stripe`;
}

/**
 * Where a Checkout Session stands, in one vocabulary for the database, the query, the search
 * attribute, the status API and the landing page.
 */
export const FULFILLMENT_STATUSES = [
  'received', // workflow started; the session is being retrieved from Stripe
  'awaiting_checkout', // the session is still open: the customer has not completed Checkout yet
  'awaiting_payment', // Checkout completed with a delayed payment method; waiting for the funds
  'fulfilling', // paid; line items are being fulfilled and the receipt sent
  'paused', // a configuration problem on our side (e.g. Stripe refuses the API key); resumes by itself once fixed
  'fulfilled', // every line item fulfilled and the receipt sent (final)
  'payment_failed', // Stripe reported the delayed payment failed (final)
  'expired', // Stripe expired the session without payment; nothing fulfilled (final)
  'failed', // could not be processed (Stripe does not know it, the fulfiller gave up) or an operator canceled it; the execution fails; only `npm run redrive` runs it again (final)
  // After the payment: money coming back. Each is final until Stripe reports more.
  'partially_refunded', // part of the payment refunded; what the refunds said they cover is reversed
  'refunded', // the whole payment refunded; everything fulfilled is reversed
  'disputed', // the customer's bank opened a dispute; nothing reversed unless it is lost
  'dispute_lost', // a dispute closed in the customer's favour; everything fulfilled is reversed
  'canceled', // a PaymentIntent order that could not be fulfilled: what was fulfilled is reversed, the authorization released (final)
] as const;
export type FulfillmentStatus = (typeof FULFILLMENT_STATUSES)[number];

/**
 * Statuses that end an execution with a verdict. An execution may also end while still
 * `awaiting_payment` or `awaiting_checkout`, when it stops waiting (see the payment deadline):
 * that is no verdict, and a later event or landing-page visit runs the session again.
 */
export const FINAL_STATUSES: readonly FulfillmentStatus[] = [
  'fulfilled',
  'payment_failed',
  'expired',
  'failed',
  'partially_refunded',
  'refunded',
  'disputed',
  'dispute_lost',
  'canceled',
];

/** Statuses in which a run waits for Stripe (a landing-page visit wakes it to read Stripe again). */
export const WAITING_STATUSES: readonly FulfillmentStatus[] = ['awaiting_checkout', 'awaiting_payment'];

export function isFinalStatus(status: FulfillmentStatus): boolean {
  return FINAL_STATUSES.includes(status);
}

/**
 * Outcomes that are never revisited: a later execution for the session does nothing, and the
 * record cannot move out of them. `failed` is not one: once an operator fixed its cause,
 * `npm run redrive` runs the order again (nothing else does: see `secondChance` in src/orders/kinds.ts).
 */
export const SETTLED_STATUSES: readonly FulfillmentStatus[] = [
  'fulfilled',
  'payment_failed',
  'expired',
  'partially_refunded',
  'refunded',
  'disputed',
  'dispute_lost',
  'canceled',
];

/**
 * The statuses of a payment that was taken: a settled record moves among these only (a refund, a
 * dispute opened, won or lost), never back to before the payment.
 */
export const AFTER_PAYMENT_STATUSES: readonly FulfillmentStatus[] = ['fulfilled', 'partially_refunded', 'refunded', 'disputed', 'dispute_lost'];

export function isSettledStatus(status: FulfillmentStatus): boolean {
  return SETTLED_STATUSES.includes(status);
}

/** Stripe's Checkout Session `status`, `payment_status` and `mode`, as they are. */
export type SessionStatus = 'open' | 'complete' | 'expired';
export type PaymentStatus = 'paid' | 'unpaid' | 'no_payment_required';
export type SessionMode = 'payment' | 'setup' | 'subscription';

/**
 * Failure types the workflow branches on. `StripeConfiguration`: Stripe refused our request for a
 * reason of ours (key revoked, wrong account, missing permission), which an operator fixes: the
 * session pauses and resumes by itself. Anything about the session itself is final.
 */
export const STRIPE_CONFIGURATION_ERROR = 'StripeConfiguration';
export const SESSION_NOT_FOUND_ERROR = 'SessionNotFound';
export const FULFILLMENT_FAILED_ERROR = 'FulfillmentFailed';

export interface LineItemSummary {
  id: string;
  description: string;
  /** Null for metered (usage-based) prices: billed by usage later, nothing to count out now. */
  quantity: number | null;
  priceId: string | null;
  productId: string | null;
  /** Minor units of `currency`, as Stripe sends them. */
  amountSubtotal: number;
  amountTotal: number;
  currency: string;
}

/**
 * What the workflow keeps of a Checkout Session: small, serializable, and no personal data. Who the
 * customer is stays out of Temporal: retrieve-session keeps the contact in the app's database, and
 * the email activities read it there.
 */
export interface SessionSummary {
  id: string;
  status: SessionStatus;
  paymentStatus: PaymentStatus;
  /** `setup` sessions save a payment method and have no line items: nothing is fulfilled or receipted. */
  mode: SessionMode;
  livemode: boolean;
  currency: string | null;
  amountSubtotal: number | null;
  amountTotal: number | null;
  /** Unix seconds; an open session expires then. */
  expiresAt: number;
  /** The payment's PaymentIntent (`pi_...`), once there is one: refunds and disputes are found by it. */
  paymentIntentId?: string | null;
  lineItems: LineItemSummary[];
}

/** A refund as Stripe reports it, with what it says it covers. */
export interface RefundSummary {
  id: string;
  amount: number;
  currency: string;
  /** Only `succeeded` refunds are acted on; a pending one is told by `refund.updated` when it settles. */
  status: string;
  /**
   * The line items it covers, from the refund's `metadata.line_items` ("li_1:2,li_2"; no quantity:
   * all of it). Null when the refund does not say: unless it completes a full refund, nothing is
   * reversed and an operator decides.
   */
  lineItems: { lineItemId: string; quantity: number | null }[] | null;
}

/** A dispute (chargeback) as Stripe reports it. */
export interface DisputeSummary {
  id: string;
  amount: number;
  currency: string;
  /** Stripe's: `needs_response`, `under_review`, `won`, `lost`, `prevented`, `warning_*`, `appeal_*` (see `disputeOutcome`). */
  status: string;
  reason: string;
}

/** Every refund and dispute of a payment, read from Stripe: events wake the workflow, Stripe decides. */
export interface MoneyBack {
  refunds: RefundSummary[];
  disputes: DisputeSummary[];
}

export interface RefundRecord extends RefundSummary {
  /** What was reversed for it; null when nothing could be told (see `note`). */
  reversed: FulfilledItem[] | null;
  note: string | null;
  emailed: boolean;
}

export interface DisputeRecord extends DisputeSummary {
  /** `prevented`: Stripe's dispute prevention refunded the payment instead; that refund settles the order. */
  outcome: 'open' | 'won' | 'lost' | 'prevented';
  /** Reversed once the dispute is lost. */
  reversed: FulfilledItem[] | null;
}

export interface FulfilledItem {
  lineItemId: string;
  description: string;
  quantity: number | null;
}

/** What the query returns and the workflow's result: enough for the landing page and operators. */
export interface FulfillmentView {
  sessionId: string;
  status: FulfillmentStatus;
  paymentStatus: PaymentStatus | null;
  mode: SessionMode | null;
  currency: string | null;
  amountTotal: number | null;
  lineItems: { description: string; quantity: number | null; amountTotal: number }[];
  fulfilled: FulfilledItem[];
  receiptSent: boolean;
  /** Why a final status that is not `fulfilled` was reached. */
  reason: string | null;
  /** Stripe event IDs the workflow has acted on, so duplicates change nothing. */
  eventIds: string[];
  /** The payment's PaymentIntent; absent in records written before refunds were handled. */
  paymentIntentId?: string | null;
  refunds?: RefundRecord[];
  disputes?: DisputeRecord[];
}

/** A session's view before anything is known about it beyond its ID. */
export function receivedView(sessionId: string): FulfillmentView {
  return {
    sessionId,
    status: 'received',
    paymentStatus: null,
    mode: null,
    currency: null,
    amountTotal: null,
    lineItems: [],
    fulfilled: [],
    receiptSent: false,
    reason: null,
    eventIds: [],
  };
}

/**
 * What wakes a running fulfillment: the Stripe webhook events that matter to it, and two that
 * are not Stripe's: `reconciler.recheck` (the reconciler saw the session paid while the workflow
 * was still waiting: its webhook never came) and `customer.landed` (the customer is on the landing
 * page of an order still waiting: Stripe may know more than we were told). Both say "read Stripe
 * now"; a landing is kept nowhere (a visit is no event to deduplicate, and many may come), and
 * wakes a run only if it last read Stripe at least LANDING_WAKE_INTERVAL_MS before.
 */
/** A landing-page visit reflects Stripe's state as of at most this long before it (a reload storm costs one read per order per interval). */
export const LANDING_WAKE_INTERVAL_MS = 30_000;

export type CheckoutEventType =
  | 'checkout.session.completed'
  | 'checkout.session.async_payment_succeeded'
  | 'checkout.session.async_payment_failed'
  | 'checkout.session.expired'
  | 'reconciler.recheck'
  | 'customer.landed'
  | MoneyBackEventType
  | PaymentIntentEventType;

/** A PaymentIntent made without Checkout changed: its own workflow (ID = `pi_...`) reads it again. */
export const PAYMENT_INTENT_EVENT_TYPES = [
  'payment_intent.processing',
  'payment_intent.succeeded',
  'payment_intent.payment_failed',
  'payment_intent.amount_capturable_updated',
  'payment_intent.canceled',
] as const;
export type PaymentIntentEventType = (typeof PAYMENT_INTENT_EVENT_TYPES)[number];

export function isPaymentIntentEvent(type: string): type is PaymentIntentEventType {
  return (PAYMENT_INTENT_EVENT_TYPES as readonly string[]).includes(type);
}

/** Money coming back after the payment: tied to the session through its PaymentIntent. */
export const MONEY_BACK_EVENT_TYPES = ['charge.refunded', 'refund.updated', 'charge.dispute.created', 'charge.dispute.closed'] as const;
export type MoneyBackEventType = (typeof MONEY_BACK_EVENT_TYPES)[number];

export function isMoneyBackEvent(type: string): type is MoneyBackEventType {
  return (MONEY_BACK_EVENT_TYPES as readonly string[]).includes(type);
}

export interface CheckoutEvent {
  /** Stripe's event ID (`evt_...`): a redelivered event carries the same one. The reconciler's are `reconcile:...`. */
  id: string;
  type: CheckoutEventType;
}

/** A verified Stripe event about this session. Sent with signal-with-start, so it may arrive before the first step. */
export const checkoutEventSignal = defineSignal<[CheckoutEvent]>('checkoutEvent');

export const fulfillmentQuery = defineQuery<FulfillmentView>('fulfillment');

export interface FulfillCheckoutInput {
  sessionId: string;
  /**
   * How long to keep waiting for a delayed payment, from Checkout's completion. Default 7 days.
   * Past it the execution stops waiting without a verdict: the session stays `awaiting_payment`
   * and any later event, landing-page visit or reconciler pass runs it again.
   */
  paymentDeadline?: Duration;
  /** How often to re-check the session with Stripe while waiting, in case a webhook never comes. Default 1 day. */
  paymentRecheckInterval?: Duration;
  /** How often to re-check an open session. Default 1 hour. */
  checkoutRecheckInterval?: Duration;
  /** A waiting run continues as new once its history holds this many events. Default 2000. */
  historyLimit?: number;
  /** What an earlier run of this session knew when it continued as new. */
  carried?: CarriedState;
  /** Started by an operator's `npm run redrive`: a `failed` session runs again (nothing else runs one). */
  redrive?: boolean;
}

/** A PaymentIntent as the workflow sees it: what it decides on, and no customer data. */
export interface PaymentIntentSummary {
  id: string;
  /** Stripe's: requires_payment_method, requires_confirmation, requires_action, processing, requires_capture, canceled, succeeded. */
  status: string;
  amount: number;
  /** What an authorization allows to capture (less than `amount` for a partial authorization); absent in summaries recorded before. */
  amountCapturable?: number;
  /** What Stripe took; absent in summaries recorded before. */
  amountReceived?: number;
  currency: string;
  captureMethod: string;
  livemode: boolean;
  /** `metadata.order_id`: the merchant's order this payment is for. */
  orderId: string | null;
  /** Unix seconds by which an authorization must be captured (manual capture); null when Stripe does not say. */
  captureBefore: number | null;
  /** The last failed attempt's code (`card_declined`, ...); never its message, which may quote the customer. */
  lastPaymentError: string | null;
}

/** An order of the merchant's, as the workflow carries it: the contact stays in the app's database. */
export interface OrderSummary {
  orderId: string;
  currency: string;
  amountTotal: number;
  lineItems: LineItemSummary[];
}

export const PAYMENT_INTENT_WORKFLOW_TYPE = 'fulfillPaymentIntent';

export interface FulfillPaymentIntentInput {
  paymentIntentId: string;
  /** How long to keep waiting for the payment to succeed (or be authorized). Default 7 days. */
  paymentDeadline?: Duration;
  /** How often to read the PaymentIntent again while waiting, in case an event never comes. Default 1 day. */
  paymentRecheckInterval?: Duration;
  /** Started by an operator's `npm run redrive`: a `failed` order runs again (nothing else runs one). */
  redrive?: boolean;
}

/** The state one run of `fulfillCheckout` hands the next when it continues as new. */
export interface CarriedState {
  view: FulfillmentView;
  eventTypes: CheckoutEventType[];
  /** Workflow time (ms) Stripe first said the delayed payment succeeded. */
  paymentSucceededAt?: number;
  /** Workflow time (ms) the wait for a delayed payment began: the deadline runs from it. */
  paymentWaitStartedAt?: number;
}

/** The reconciler's Temporal Schedule and the workflow it runs (see workflows/reconcile.ts). */
export const RECONCILER_SCHEDULE_ID = 'checkout-reconciler';
export const RECONCILE_WORKFLOW_TYPE = 'reconcile';

/** Statuses a healthy run leaves within minutes: a record still in one long after lost its execution. */
export const TRANSIENT_STATUSES: readonly FulfillmentStatus[] = ['received', 'fulfilling', 'paused'];

export interface ReconcileInput {
  /** Sessions created this long ago or later are listed. */
  lookback: Duration;
  /** A record in a transient status not updated for this long is re-driven. */
  stuckAfter: Duration;
  /** Sessions per Stripe list call (at most 100). */
  pageSize?: number;
  /** Carried across continue-as-new: where the listing stands and what was found so far. */
  createdSince?: number;
  /** The phase the listing stands in (see workflows/reconcile.ts). */
  phase?: string;
  startingAfter?: string;
  report?: ReconcileReport;
}

/** What one reconciler run found and did: the workflow's result, shown in the Temporal UI. */
export interface ReconcileReport {
  /** Orders Stripe lists within the look-back window: complete Checkout Sessions, and PaymentIntents whose metadata names an order. */
  listed: number;
  /** Already settled in our records: nothing to do. */
  settled: number;
  /** No record at all, so no webhook ever reached us: started now. */
  started: number;
  /** A record that is not settled: its workflow was ensured (a no-op when it is running, a new run when not). */
  resumed: number;
  /** Waiting for a payment Stripe now reports paid: woken to read the session at once. */
  woken: number;
  /** Records stuck in a transient status past the threshold, re-driven. */
  stuckRedriven: number;
  /** Refunds and disputes Stripe lists that the session's record had not acted on (their events were lost): delivered. */
  moneyBack: number;
  /** Stripe reads made (list calls and dispute re-reads, from the rate-limited budget). */
  pages: number;
  /** Phases that still failed after their retries (logged; the next run tries again). */
  failedPhases?: string[];
}

export function emptyReconcileReport(): ReconcileReport {
  return { listed: 0, settled: 0, started: 0, resumed: 0, woken: 0, stuckRedriven: 0, moneyBack: 0, pages: 0 };
}

/**
 * Custom search attributes, so operators can filter in the Temporal UI, e.g.
 * `FulfillmentStatus = "awaiting_payment"`. Registered on the embedded dev server at start and
 * by `npm run temporal:setup` on any other cluster.
 */
export const searchAttributes = {
  fulfillmentStatus: defineSearchAttributeKey('FulfillmentStatus', SearchAttributeType.KEYWORD),
  paymentStatus: defineSearchAttributeKey('PaymentStatus', SearchAttributeType.KEYWORD),
  amountTotal: defineSearchAttributeKey('AmountTotal', SearchAttributeType.INT),
  currency: defineSearchAttributeKey('Currency', SearchAttributeType.KEYWORD),
  livemode: defineSearchAttributeKey('Livemode', SearchAttributeType.BOOL),
};
export const SEARCH_ATTRIBUTE_KEYS = Object.values(searchAttributes);
