import type { Activities } from '../../activities';
import type { FulfilledItem, FulfillmentView, MoneyBack, OrderSummary, PaymentIntentSummary, SessionSummary } from '../../workflows/definitions';

/**
 * Activities for workflow tests, typed as the real ones so a drift fails to compile. The session
 * Stripe returns is whatever `stripe` says at the moment of the call, so a test can change it.
 */
export function fakeActivities(
  stripe: {
    current: () => SessionSummary;
    moneyBack?: () => MoneyBack;
    /** For orders paid by PaymentIntent: the PaymentIntent now, and the merchant's order. */
    paymentIntent?: () => PaymentIntentSummary;
    order?: OrderSummary | null;
    /** The Checkout Session that took the payment, if any. */
    checkoutSessionId?: string | null;
    /** Events Stripe never sent (forged signals): `confirmEvent` says so. */
    unconfirmedEventIds?: string[];
    /** Orders already claimed by a payment: [orderId, paymentIntentId]. */
    claims?: [string, string][];
    /** The claims table itself, to share between the fakes of two payments. */
    claimStore?: Map<string, string>;
  },
  recorded: FulfillmentView | null = null,
) {
  // What the database would hold: fulfilled line items (with quantities), and what each reversal took back.
  const fulfilled = new Map<string, FulfilledItem>((recorded?.fulfilled ?? []).map((item) => [item.lineItemId, { ...item }]));
  const reversals = new Map<string, FulfilledItem[]>();
  const claims = stripe.claimStore ?? new Map<string, string>(stripe.claims ?? []);
  const calls = {
    retrieveSession: 0,
    fulfillLineItems: [] as Parameters<Activities['fulfillLineItems']>[0][],
    emailReceipt: [] as Parameters<Activities['emailReceipt']>[0][],
    emailPaymentFailed: [] as SessionSummary[],
    statuses: [] as string[],
    /** Every recorded view, in order, as copies: the last is what the database would hold. */
    views: [] as FulfillmentView[],
    readMoneyBack: 0,
    reverseLineItems: [] as Parameters<Activities['reverseLineItems']>[0][],
    emailRefund: [] as Parameters<Activities['emailRefund']>[0][],
    emailOrderCanceled: 0,
    retrievePaymentIntent: 0,
    confirmEvent: [] as string[],
    refunds: [] as string[],
    captures: 0,
    cancels: 0,
  };
  const activities: Activities = {
    async retrieveSession() {
      calls.retrieveSession++;
      return stripe.current();
    },
    async sessionExists() {
      return true;
    },
    async fulfillLineItems(input) {
      calls.fulfillLineItems.push(input);
      const done = input.lineItems.map((item) => ({ lineItemId: item.id, description: item.description, quantity: item.quantity }));
      for (const item of done) if (!fulfilled.has(item.lineItemId)) fulfilled.set(item.lineItemId, { ...item });
      return done;
    },
    async readMoneyBack() {
      calls.readMoneyBack++;
      return stripe.moneyBack?.() ?? { refunds: [], disputes: [] };
    },
    async sessionOfPaymentIntent() {
      return stripe.checkoutSessionId === undefined ? stripe.current().id : stripe.checkoutSessionId;
    },
    async retrievePaymentIntent() {
      calls.retrievePaymentIntent++;
      return stripe.paymentIntent!();
    },
    async paymentIntentOrderOf() {
      return stripe.paymentIntent?.().orderId ? stripe.paymentIntent().id : null;
    },
    // Stripe sent every event a test signals, unless the test says which it did not.
    async confirmEvent(input) {
      calls.confirmEvent.push(input.eventId);
      return !(stripe.unconfirmedEventIds ?? []).includes(input.eventId);
    },
    async listPaymentIntentOrders() {
      return { orders: [], hasMore: false, lastId: null };
    },
    async retrieveDispute() {
      return null;
    },
    async listOpenDisputes() {
      return [];
    },
    // As the database: the first payment to claim an order keeps it.
    async claimOrder(input) {
      if (!claims.has(input.orderId)) claims.set(input.orderId, input.paymentIntentId);
      return claims.get(input.orderId)!;
    },
    async releaseOrderClaim(input) {
      if (claims.get(input.orderId) === input.paymentIntentId) claims.delete(input.orderId);
    },
    async refundPaymentIntent(paymentIntentId) {
      calls.refunds.push(paymentIntentId);
      return { refundId: `re_${paymentIntentId}`, status: 'succeeded' };
    },
    async loadOrder() {
      return stripe.order ?? null;
    },
    async capturePaymentIntent() {
      calls.captures++;
      return { ...stripe.paymentIntent!(), status: 'succeeded' };
    },
    async cancelPaymentIntent() {
      calls.cancels++;
      return { ...stripe.paymentIntent!(), status: 'canceled' };
    },
    // As the real one: only what is fulfilled and not yet reversed, once per reversal.
    async reverseLineItems(input) {
      calls.reverseLineItems.push(input);
      if (reversals.has(input.reversalId)) return reversals.get(input.reversalId)!;
      const left = (item: FulfilledItem) => item.quantity === null || item.quantity > 0;
      const wanted =
        input.items === 'all'
          ? [...fulfilled.values()].filter(left).map((item) => ({ item, quantity: item.quantity }))
          : input.items.flatMap(({ lineItemId, quantity }) => {
              const item = fulfilled.get(lineItemId);
              if (!item || !left(item)) return [];
              return [{ item, quantity: quantity === null || item.quantity === null ? item.quantity : Math.min(quantity, item.quantity) }];
            });
      const done = wanted.map(({ item, quantity }) => {
        if (item.quantity !== null) item.quantity -= quantity ?? 0;
        else item.quantity = 0;
        return { lineItemId: item.lineItemId, description: item.description, quantity };
      });
      reversals.set(input.reversalId, done);
      return done;
    },
    async deliverMoneyBack() {
      throw new Error('workflow tests do not route money-back events');
    },
    async emailOrderCanceled() {
      calls.emailOrderCanceled++;
      return { sent: true };
    },
    async emailRefund(input) {
      calls.emailRefund.push(input);
      return { sent: true };
    },
    async emailReceipt(input) {
      calls.emailReceipt.push(input);
      return { sent: true };
    },
    async emailPaymentFailed(session) {
      calls.emailPaymentFailed.push(session);
      return { sent: true };
    },
    async recordStatus({ view }) {
      calls.statuses.push(view.status);
      calls.views.push(structuredClone(view));
    },
    async listCompletedSessions() {
      return { sessions: [], hasMore: false };
    },
    async reconcileSessions() {
      return { settled: 0, started: 0, resumed: 0, woken: 0 };
    },
    async listRecentMoneyBack() {
      return { items: [], hasMore: false };
    },
    async reconcileMoneyBack() {
      return 0;
    },
    async redriveStuckSessions() {
      return 0;
    },
    // As the database: the last view recorded, or what it held before.
    async loadRecord() {
      return structuredClone(calls.views.at(-1) ?? recorded);
    },
  };
  return { activities, calls };
}
