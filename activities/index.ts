import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import Stripe from 'stripe';
import {
  isFinalStatus,
  SESSION_NOT_FOUND_ERROR,
  STRIPE_CONFIGURATION_ERROR,
  TRANSIENT_STATUSES,
  type FulfilledItem,
  type FulfillmentView,
  type CheckoutEvent,
  type LineItemSummary,
  type MoneyBack,
  type OrderSummary,
  type PaymentIntentSummary,
  type PaymentStatus,
  type RefundSummary,
  type ReconcileReport,
  type SessionSummary,
} from '../workflows/definitions';
import type { FulfillmentStarter } from '../src/temporal/fulfillment-starter';
import type { Mailer } from '../src/email/mailer';
import { singleRecipient } from '../src/email/recipient';
import { renderOrderCanceled, renderPaymentFailed, renderReceipt, renderRefund, type RenderedEmail } from '../src/email/render';
import type { Fulfiller } from '../src/fulfillment/fulfiller';
import type { OrderSource } from '../src/fulfillment/order-source';
import {
  cancelPaymentIntent,
  capturePaymentIntent,
  listPaymentIntentOrders,
  refundPaymentIntent,
  retrievePaymentIntentSummary,
  type ListedPaymentIntentOrder,
} from '../src/stripe/payment-intents';
import { confirmEvent } from '../src/stripe/events';
import { CHECKOUT_SESSION, PAYMENT_INTENT_ID_PATTERN, secondChance, SESSION_ID_PATTERN } from '../src/orders/kinds';
import { stripeErrorLabel, type ActivityMetrics, type ReconcilerFinding, type StripeReadActivity } from '../src/metrics';
import { untilItWorks } from '../src/retry';
import {
  listRecentMoneyBack,
  readMoneyBack,
  retrieveDisputeStatus,
  sessionOfPaymentIntent,
  type ListedMoneyBack,
} from '../src/stripe/money-back';
import { retrieveSessionSummary, type CustomerContact } from '../src/stripe/sessions';
import type { EmailKind, FulfillmentStore } from '../src/store/fulfillment-store';

export interface ActivityDeps {
  stripe: Stripe;
  store: FulfillmentStore;
  fulfiller: Fulfiller;
  /** Where orders paid by PaymentIntent (without Checkout) are read. */
  orderSource: OrderSource;
  mailer: Mailer;
  metrics: ActivityMetrics;
  /** How the reconciler starts and wakes sessions: the same starts, IDs and policies as the webhook path. */
  starter: Pick<FulfillmentStarter, 'ensureStarted' | 'deliver' | 'deliverMoneyBack' | 'routeMoneyBack' | 'isRunning'>;
  /** Shown in emails, and the domain of their Message-IDs. */
  merchantName: string;
  emailDomain: string;
}

/**
 * The activities of `fulfillCheckout`, built from their dependencies: the worker passes real
 * clients, tests pass their own. Workflows use `ReturnType<typeof createActivities>` as the type.
 */
export function createActivities(deps: ActivityDeps) {
  const { stripe, store, fulfiller, mailer, starter, metrics, orderSource } = deps;

  /** One Stripe read, counted, and its failure counted by kind. */
  async function readStripe<T>(activity: StripeReadActivity, read: () => Promise<T>): Promise<T> {
    metrics.stripeReads.inc({ activity });
    try {
      return await read();
    } catch (err) {
      metrics.stripeReadErrors.inc({ activity, error: stripeErrorLabel(err) });
      throw err;
    }
  }

  /**
   * `sent`: the customer has this email, from this attempt or an earlier one. The send is claimed in
   * the database first, and the claim's lease is renewed while the send runs, so an attempt that
   * overlaps a slow earlier one waits for it (retryable `EmailInFlight`) instead of sending a second
   * copy, while a claim whose worker died lapses within a lease and is taken over.
   */
  async function sendOnce(kind: EmailKind, session: Pick<SessionSummary, 'id'>, render: (contact: CustomerContact) => RenderedEmail): Promise<{ sent: boolean }> {
    const contact = await contactOf(session);
    // A list or anything but one plain address is treated as no email: never a second recipient.
    const to = singleRecipient(contact.email);
    if (!to) {
      // The address itself is customer data: never logged.
      const message = contact.email ? 'Invalid recipient: the customer email is not one valid address; nothing sent' : 'No customer email on the session; nothing sent';
      Context.current().log.warn(message, { sessionId: session.id, kind });
      return { sent: false };
    }
    const claim = await store.claimEmail(session.id, kind, EMAIL_LEASE_SECONDS);
    if (claim === 'sent') return { sent: true }; // by an earlier attempt
    if (claim === 'in_flight') {
      throw ApplicationFailure.retryable(`An earlier attempt is still sending the ${kind} email`, 'EmailInFlight');
    }
    // A crash between sending and recording resends once the lease lapses, with the same
    // Message-ID so mail systems can recognise the duplicate.
    const messageId = `<${kind.replace(':', '.')}.${session.id}@${deps.emailDomain}>`;
    const context = Context.current();
    // Renewed until the send settles, even past this attempt's timeout: while it may still be
    // sending, no retry may start another. (Heartbeats stop mattering once the attempt is over.)
    const renewal = setInterval(() => {
      try {
        context.heartbeat();
      } catch {
        // the attempt already ended; the send and its claim go on
      }
      store.renewEmailClaim(claim, EMAIL_LEASE_SECONDS).catch(() => undefined);
    }, EMAIL_LEASE_RENEW_MS);
    try {
      try {
        await mailer.send({ to, messageId, ...render(contact) });
      } catch (err) {
        await store.releaseEmail(claim).catch(() => undefined); // else it lapses with its lease
        throw withoutContact(err, contact);
      }
      // Sent: recording it must not fail for a database that is briefly away, or the lease would
      // lapse and a retry send a copy. The claim keeps being renewed meanwhile.
      await untilItWorks(() => store.markEmailSent(claim, messageId, to), { patienceMs: EMAIL_RECORD_PATIENCE_MS });
    } finally {
      clearInterval(renewal);
    }
    return { sent: true };
  }

  /**
   * The customer's contact, from our database. Executions started before contacts were kept there
   * carry it in the session they recorded, and use that.
   */
  async function contactOf(session: Pick<SessionSummary, 'id'> & Partial<{ customerEmail: string | null; customerName: string | null }>): Promise<CustomerContact> {
    if (session.customerEmail !== undefined) return { email: session.customerEmail, name: session.customerName ?? null };
    return (await store.getContact(session.id)) ?? { email: null, name: null };
  }

  return {
    /** retrieve-session: the session with all its line items, as a small summary. */
    async retrieveSession(sessionId: string): Promise<SessionSummary> {
      if (!SESSION_ID_PATTERN.test(sessionId)) {
        throw ApplicationFailure.nonRetryable(`Not a Checkout Session ID: ${JSON.stringify(sessionId)}`, 'InvalidSessionId');
      }
      try {
        const { summary, contact } = await readStripe('retrieveSession', () => retrieveSessionSummary(stripe, sessionId));
        // Who the customer is stays in our database; the workflow (and Temporal's history) gets the rest.
        await store.saveContact(sessionId, contact);
        return summary;
      } catch (err) {
        const failure = classifyStripeError(err, sessionId);
        if (failure instanceof ApplicationFailure && failure.type === STRIPE_CONFIGURATION_ERROR) {
          Context.current().log.error('Stripe refused our request; fulfillment is paused until the configuration is fixed', {
            sessionId,
            error: failure.message,
          });
        }
        throw failure;
      }
    },

    /** Whether Stripe knows the session (the landing page's check), without its line items. */
    async sessionExists(sessionId: string): Promise<boolean> {
      if (!SESSION_ID_PATTERN.test(sessionId)) return false;
      try {
        await readStripe('sessionExists', () => stripe.checkout.sessions.retrieve(sessionId));
        return true;
      } catch (err) {
        const failure = classifyStripeError(err, sessionId);
        if (failure instanceof ApplicationFailure && failure.type === SESSION_NOT_FOUND_ERROR) return false;
        throw failure;
      }
    },

    /** fulfill-line-items: each line item exactly once, through the merchant's fulfiller. */
    async fulfillLineItems(input: { sessionId: string; lineItems: LineItemSummary[] }): Promise<FulfilledItem[]> {
      const fulfilled: FulfilledItem[] = [];
      for (const [index, lineItem] of input.lineItems.entries()) {
        const idempotencyKey = `${input.sessionId}:${lineItem.id}`;
        const isNew = await store.fulfillLineItemOnce(input.sessionId, lineItem, (tx) =>
          fulfiller.fulfillLineItem({ sessionId: input.sessionId, lineItem, idempotencyKey }, tx),
        );
        if (!isNew) Context.current().log.info('Line item already fulfilled', { idempotencyKey });
        fulfilled.push({ lineItemId: lineItem.id, description: lineItem.description, quantity: lineItem.quantity });
        Context.current().heartbeat(index);
        // Cut short (an authorization about to lapse, an operator's cancel): stop between items, each done or not.
        if (Context.current().cancellationSignal.aborted && index < input.lineItems.length - 1) {
          throw new CancelledFailure('fulfillment canceled between line items');
        }
      }
      return fulfilled;
    },

    /** email-receipt: the receipt, at most once per session. */
    async emailReceipt(input: { session: SessionSummary; fulfilled: FulfilledItem[] }): Promise<{ sent: boolean }> {
      return sendOnce('receipt', input.session, (contact) => renderReceipt(input.session, contact, input.fulfilled, deps.merchantName));
    },

    /** Tells the customer a delayed payment failed, at most once per session. */
    async emailPaymentFailed(session: SessionSummary): Promise<{ sent: boolean }> {
      return sendOnce('payment_failed', session, (contact) => renderPaymentFailed(session, contact, deps.merchantName));
    },

    /** Every refund and dispute of the payment, as Stripe reports them now (on the Stripe queue). */
    async readMoneyBack(paymentIntentId: string): Promise<MoneyBack> {
      requirePaymentIntentId(paymentIntentId);
      try {
        return await readStripe('readMoneyBack', () => readMoneyBack(stripe, paymentIntentId));
      } catch (err) {
        throw classifyStripeError(err, paymentIntentId);
      }
    },

    /** Which Checkout Session took this payment, if any (refund and dispute events name only the PaymentIntent; an order paid by PaymentIntent has none). */
    async sessionOfPaymentIntent(paymentIntentId: string): Promise<string | null> {
      // Only a Checkout Session's record counts: an order paid by PaymentIntent keeps a record under its own ID.
      const known = await store.orderOfPayment(paymentIntentId);
      if (known && CHECKOUT_SESSION.idPattern.test(known)) return known;
      try {
        return await readStripe('sessionOfPaymentIntent', () => sessionOfPaymentIntent(stripe, paymentIntentId));
      } catch (err) {
        throw classifyStripeError(err, paymentIntentId);
      }
    },

    /**
     * Reverses what a refund or a lost dispute covers, each line item at most once per reversal,
     * through the merchant's fulfiller: `all` (what is fulfilled and not yet reversed), or the
     * listed items, capped at what is left of each. Only what was fulfilled can be reversed.
     * Returns what this reversal reversed, by this attempt or an earlier one.
     */
    async reverseLineItems(input: {
      sessionId: string;
      reversalId: string;
      reason: 'refund' | 'dispute_lost';
      items: 'all' | { lineItemId: string; quantity: number | null }[];
    }): Promise<FulfilledItem[]> {
      const reversible = await store.reversibleLineItems(input.sessionId);
      const wanted =
        input.items === 'all'
          ? reversible.map((item) => ({ item, quantity: item.quantity }))
          : input.items.flatMap(({ lineItemId, quantity }) => {
              const item = reversible.find((candidate) => candidate.lineItemId === lineItemId);
              if (!item) return [];
              return [{ item, quantity: quantity === null || item.quantity === null ? item.quantity : Math.min(quantity, item.quantity) }];
            });
      for (const { item, quantity } of wanted) {
        const idempotencyKey = `${input.reversalId}:${item.lineItemId}`;
        await store.reverseLineItemOnce(input.reversalId, input.sessionId, { lineItemId: item.lineItemId, description: item.description, quantity }, input.reason, (tx) =>
          fulfiller.reverseLineItem
            ? fulfiller.reverseLineItem(
                {
                  sessionId: input.sessionId,
                  lineItem: { id: item.lineItemId, description: item.description, productId: item.productId, priceId: item.priceId },
                  quantity,
                  reason: input.reason,
                  reversalId: input.reversalId,
                  idempotencyKey,
                },
                tx,
              )
            : Promise.resolve(),
        );
        Context.current().heartbeat(idempotencyKey);
      }
      return store.getReversals(input.reversalId);
    },

    /** A PaymentIntent made without Checkout, as Stripe reports it now (on the Stripe queue). */
    async retrievePaymentIntent(paymentIntentId: string): Promise<PaymentIntentSummary> {
      requirePaymentIntentId(paymentIntentId);
      try {
        return await readStripe('retrievePaymentIntent', () => retrievePaymentIntentSummary(stripe, paymentIntentId));
      } catch (err) {
        throw classifyStripeError(err, paymentIntentId);
      }
    },

    /**
     * The order a PaymentIntent made without Checkout pays for: the PaymentIntent's own ID when its
     * metadata names an order, else null (a payment that is no order of ours).
     */
    async paymentIntentOrderOf(paymentIntentId: string): Promise<string | null> {
      requirePaymentIntentId(paymentIntentId);
      try {
        const intent = await readStripe('retrievePaymentIntent', () => retrievePaymentIntentSummary(stripe, paymentIntentId));
        return intent.orderId ? intent.id : null;
      } catch (err) {
        const failure = classifyStripeError(err, paymentIntentId);
        if (failure instanceof ApplicationFailure && failure.type === 'PaymentIntentNotFound') return null;
        throw failure;
      }
    },

    /** Whether Stripe sent this event about this object (read back by its ID, on the Stripe queue). */
    async confirmEvent(input: { eventId: string; type: string; objectId: string }): Promise<boolean> {
      try {
        return await readStripe('confirmEvent', () => confirmEvent(stripe, input));
      } catch (err) {
        throw classifyStripeError(err, input.eventId);
      }
    },

    /** The reconciler's Stripe read of orders paid by PaymentIntent: one page of PaymentIntents created since `createdSince`. */
    async listPaymentIntentOrders(input: { createdSince: number; startingAfter?: string; limit: number }) {
      try {
        return await readStripe('listPaymentIntentOrders', () => listPaymentIntentOrders(stripe, input));
      } catch (err) {
        throw classifyStripeError(err, 'listing');
      }
    },

    /**
     * The reconciler's re-read of one dispute our records hold open, as `reconcileMoneyBack` takes it
     * (one read per activity, so the Stripe queue's rate limit counts each). Null when Stripe no
     * longer knows it (test data deleted, another account's key): nothing to act on.
     */
    async retrieveDispute(input: { disputeId: string; paymentIntentId: string | null }): Promise<ListedMoneyBack | null> {
      try {
        return { id: input.disputeId, paymentIntentId: input.paymentIntentId, status: await readStripe('retrieveDispute', () => retrieveDisputeStatus(stripe, input.disputeId)) };
      } catch (err) {
        const failure = classifyStripeError(err, input.disputeId);
        if (failure instanceof ApplicationFailure && failure.nonRetryable) {
          Context.current().log.warn('Stripe no longer knows a dispute our records hold open; left as it is', { disputeId: input.disputeId });
          return null;
        }
        throw failure;
      }
    },

    /** Disputes our records hold open, a page at a time by dispute ID (the database: no Stripe read). */
    async listOpenDisputes(input: { startingAfter?: string; limit: number }) {
      return store.listOpenDisputes(input.limit, input.startingAfter);
    },

    /**
     * The merchant's order a PaymentIntent pays for, from the order source. Who the customer is
     * goes to the app's database (keyed by the PaymentIntent, for the receipt), not to Temporal.
     */
    async loadOrder(input: { orderId: string; paymentIntentId: string }): Promise<OrderSummary | null> {
      const order = await orderSource.loadOrder(input.orderId);
      if (!order) return null;
      await store.saveContact(input.paymentIntentId, order.contact);
      const { contact: _contact, ...summary } = order;
      return summary;
    },

    /**
     * Captures an authorized PaymentIntent. A key per attempt: Stripe replays a key's first answer for
     * 24 hours, a 500 included, so one key would make every retry fail alike. Capturing twice cannot
     * happen: Stripe refuses a second capture (`payment_intent_unexpected_state`), and the workflow
     * then reads the PaymentIntent to see it captured.
     */
    async capturePaymentIntent(paymentIntentId: string): Promise<PaymentIntentSummary> {
      try {
        return await capturePaymentIntent(stripe, paymentIntentId, `capture-${paymentIntentId}-${Context.current().info.attempt}`);
      } catch (err) {
        throw refusedByStripe(err, 'CaptureRefused') ?? classifyStripeError(err, paymentIntentId);
      }
    },

    /** Claims the merchant's order for this payment; returns the PaymentIntent that holds it (this one, or the one that paid first). */
    async claimOrder(input: { orderId: string; paymentIntentId: string }): Promise<string> {
      return store.claimOrder(input.orderId, input.paymentIntentId);
    },

    /** Gives the order back when this payment will not fulfill it (only if this payment holds it). */
    async releaseOrderClaim(input: { orderId: string; paymentIntentId: string }): Promise<void> {
      await store.releaseOrderClaim(input.orderId, input.paymentIntentId);
    },

    /**
     * Refunds a second payment of an order already paid (the refund's own events then settle it). A key
     * per attempt, as for captures; a refund made already is refused by Stripe (`charge_already_refunded`),
     * which counts as done.
     */
    async refundPaymentIntent(paymentIntentId: string): Promise<{ refundId: string | null; status: string }> {
      try {
        return await refundPaymentIntent(stripe, paymentIntentId, `refund-duplicate-${paymentIntentId}-${Context.current().info.attempt}`);
      } catch (err) {
        if (err instanceof Stripe.errors.StripeInvalidRequestError && err.code === 'charge_already_refunded') return { refundId: null, status: 'succeeded' };
        // Refused for the payment's state (disputed, more than is left): an operator gives it back.
        if (err instanceof Stripe.errors.StripeInvalidRequestError && err.code && err.statusCode === 400) throw ApplicationFailure.nonRetryable(err.message, 'RefundRefused');
        throw classifyStripeError(err, paymentIntentId);
      }
    },

    /** Releases an authorization (cancels the PaymentIntent), once. */
    async cancelPaymentIntent(paymentIntentId: string): Promise<PaymentIntentSummary> {
      try {
        return await cancelPaymentIntent(stripe, paymentIntentId, `cancel-${paymentIntentId}`);
      } catch (err) {
        throw refusedByStripe(err, 'CancelRefused') ?? classifyStripeError(err, paymentIntentId);
      }
    },

    /** Hands a refund or dispute event to the session's workflow (for `routeMoneyBack`). */
    async deliverMoneyBack(input: { sessionId: string; event: CheckoutEvent }): Promise<void> {
      await starter.deliverMoneyBack(input.sessionId, input.event);
    },

    /** Tells the customer an order paid by PaymentIntent was canceled and nothing taken, at most once. */
    async emailOrderCanceled(order: SessionSummary): Promise<{ sent: boolean }> {
      return sendOnce('canceled', order, (contact) => renderOrderCanceled(order, contact, deps.merchantName));
    },

    /** Tells the customer about one refund, at most once per refund. */
    async emailRefund(input: { sessionId: string; refund: RefundSummary; reversed: FulfilledItem[] | null }): Promise<{ sent: boolean }> {
      return sendOnce(`refund:${input.refund.id}`, { id: input.sessionId }, (contact) => renderRefund(input, contact, deps.merchantName));
    },

    /**
     * record-status: the transition, in the session's history and current record. (run, seq) names
     * it, so a retry of the same write is a no-op, and the run's start time orders runs.
     */
    async recordStatus(input: { view: FulfillmentView; runStartedAt: number; seq: number }): Promise<void> {
      const runId = Context.current().info.workflowExecution?.runId ?? 'unknown-run';
      const { statusChanged } = await store.recordStatus(input.view, { runId, runStartedAt: input.runStartedAt, seq: input.seq });
      // Counted only by the write that moved the record to it, so a retried, late or repeated write counts nothing.
      if (statusChanged && isFinalStatus(input.view.status)) metrics.fulfillments.inc({ status: input.view.status });
    },

    /** The reconciler's Stripe read: one page of the Checkout Sessions completed since `createdSince` (unix seconds), newest first. */
    async listCompletedSessions(input: {
      createdSince: number;
      startingAfter?: string;
      limit: number;
    }): Promise<{ sessions: ListedSession[]; hasMore: boolean }> {
      try {
        const page = await readStripe('listCompletedSessions', () =>
          stripe.checkout.sessions.list({
            created: { gte: input.createdSince },
            status: 'complete',
            limit: input.limit,
            ...(input.startingAfter ? { starting_after: input.startingAfter } : {}),
          }),
        );
        return {
          sessions: page.data.map((session) => ({ id: session.id, paymentStatus: session.payment_status as PaymentStatus })),
          hasMore: page.has_more,
        };
      } catch (err) {
        throw classifyStripeError(err, 'listing');
      }
    },

    /**
     * The reconciler's decisions for one page of orders (Checkout Sessions or PaymentIntent orders:
     * the ID says which): an order with a verdict or `failed` is left alone (`secondChance`); one
     * with no record (no webhook ever reached us) is started; one with a record and no verdict has
     * its workflow ensured, and is woken when it waits for a payment Stripe now reports taken.
     */
    async reconcileSessions(input: { sessions: ListedOrder[]; reconcileId: string }): Promise<Omit<ReconcileReport, 'listed' | 'stuckRedriven' | 'moneyBack' | 'pages'>> {
      const found = { settled: 0, started: 0, resumed: 0, woken: 0 };
      const log = Context.current().log;
      for (const order of input.sessions) {
        const record = await store.getRecord(order.id);
        // A PaymentIntent a Checkout Session took is that session's: its record, not one of its own, settles it.
        const owner = record ? null : await store.orderOfPayment(order.id);
        if ((record && secondChance(record.view) !== 'reopen') || (owner && owner !== order.id)) {
          found.settled++;
          continue;
        }
        const paid = order.paymentStatus !== 'unpaid';
        if (record?.view.status === 'awaiting_payment' && paid) {
          await starter.deliver(order.id, { id: `reconcile:${input.reconcileId}`, type: 'reconciler.recheck' });
          found.woken++;
          log.info('Reconciler woke an order Stripe reports paid', { orderId: order.id });
        } else if (!record) {
          await starter.ensureStarted(order.id);
          found.started++;
          log.warn('Reconciler started an order no webhook ever delivered', { orderId: order.id, paymentStatus: order.paymentStatus });
        } else {
          await starter.ensureStarted(order.id);
          found.resumed++;
          log.info('Reconciler ensured an order without a verdict', { orderId: order.id, status: record.view.status });
        }
        Context.current().heartbeat();
      }
      // Counted once the page is done: a failed attempt's partial work is counted by its retry.
      for (const [finding, orders] of Object.entries(found)) metrics.reconcilerFindings.inc({ finding: finding as ReconcilerFinding }, orders);
      return found;
    },

    /** The reconciler's read of refunds or disputes created within its look-back window, one page. */
    async listRecentMoneyBack(input: { kind: 'refunds' | 'disputes'; createdSince: number; startingAfter?: string; limit: number }) {
      try {
        return await readStripe('listRecentMoneyBack', () => listRecentMoneyBack(stripe, input));
      } catch (err) {
        throw classifyStripeError(err, 'listing');
      }
    },

    /**
     * Refunds and disputes whose events never reached us: one whose session's record has not acted
     * on it (a succeeded refund it does not list, a refund it lists as succeeded that Stripe now says
     * failed, a dispute it lists in another status) is delivered
     * to the session's workflow, which reads Stripe and settles it like any event. A payment our
     * records do not know yet is routed through Stripe to its order, as a webhook's would be
     * (`route-reconcile:<id>`, once per refund or dispute).
     */
    async reconcileMoneyBack(input: { kind: 'refunds' | 'disputes'; items: ListedMoneyBack[]; reconcileId: string }): Promise<number> {
      let delivered = 0;
      for (const item of input.items) {
        // A pending refund waits until it settles; a failed or canceled one matters only if we acted on it as succeeded.
        if (!item.paymentIntentId || (input.kind === 'refunds' && item.status === 'pending')) continue;
        const sessionId = await store.orderOfPayment(item.paymentIntentId);
        const view = sessionId ? (await store.getRecord(sessionId))?.view : undefined;
        const known = input.kind === 'refunds' ? view?.refunds?.find((refund) => refund.id === item.id) : view?.disputes?.find((dispute) => dispute.id === item.id);
        const actedOn = item.status === 'succeeded' || input.kind === 'disputes' ? known?.status === item.status : !known || known.status !== 'succeeded';
        if (actedOn) continue;
        const type = input.kind === 'refunds' ? 'refund.updated' : 'charge.dispute.created';
        if (!sessionId) {
          // Not in our records yet: its order may have been started a moment ago by this very run, and
          // fulfill unaware of it. Found at Stripe as a webhook's would be, once per refund or dispute;
          // counted once: a payment no order of ours took stays unknown, and later runs find it routed before.
          if ((await starter.routeMoneyBack(item.paymentIntentId, { id: `reconcile:${item.id}`, type })) === 'routing') delivered++;
          continue;
        }
        await starter.deliverMoneyBack(sessionId, { id: `reconcile:${input.reconcileId}:${item.id}`, type });
        Context.current().log.warn('Reconciler delivered a refund or dispute whose event never reached us', { sessionId, id: item.id });
        delivered++;
        Context.current().heartbeat();
      }
      metrics.reconcilerFindings.inc({ finding: 'moneyBack' }, delivered);
      return delivered;
    },

    /**
     * Re-drives records stuck in a transient status whose execution is gone (terminated, lost), each
     * through its kind's workflow; a running one is left alone. The sweep takes turns (`takeStaleSessions`),
     * a batch at a time for up to a minute a run, so records still running (a mass pause) cannot hide
     * one that is really stuck: the next run goes on where this one stopped.
     */
    async redriveStuckSessions(input: { stuckAfterMs: number }): Promise<number> {
      const until = Date.now() + STUCK_SWEEP_MS;
      const looked = new Set<string>();
      let redriven = 0;
      // One lap at most: a batch that comes back to a record this run looked at has gone round them all.
      while (Date.now() < until && looked.size < STUCK_LOOKS_PER_RUN) {
        const batch = await store.takeStaleSessions(TRANSIENT_STATUSES, input.stuckAfterMs, STUCK_BATCH);
        const fresh = batch.filter((id) => !looked.has(id));
        for (const id of fresh) {
          looked.add(id);
          if (!(await starter.isRunning(id))) {
            await starter.ensureStarted(id);
            Context.current().log.warn('Reconciler re-drove a stuck order', { orderId: id });
            redriven++;
          }
          Context.current().heartbeat();
        }
        if (batch.length < STUCK_BATCH || fresh.length < batch.length) break;
      }
      metrics.reconcilerFindings.inc({ finding: 'stuckRedriven' }, redriven);
      return redriven;
    },

    /** The recorded state, checked before doing anything so a late duplicate never fulfills twice. */
    async loadRecord(sessionId: string): Promise<FulfillmentView | null> {
      return (await store.getRecord(sessionId))?.view ?? null;
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;

/** The activities that read Stripe: they run on the rate-limited Stripe task queue, and only there. */
const STRIPE_READS = [
  'retrieveSession',
  'sessionExists',
  'listCompletedSessions',
  'readMoneyBack',
  'sessionOfPaymentIntent',
  'listRecentMoneyBack',
  'retrievePaymentIntent',
  'paymentIntentOrderOf',
  'confirmEvent',
  'listPaymentIntentOrders',
  'retrieveDispute',
] as const satisfies readonly (keyof Activities)[];

export function stripeActivities(activities: Activities): Pick<Activities, (typeof STRIPE_READS)[number]> {
  return Object.fromEntries(STRIPE_READS.map((name) => [name, activities[name]])) as Pick<Activities, (typeof STRIPE_READS)[number]>;
}

/** A session as Stripe's list shows it: enough for the reconciler to decide. */
export interface ListedSession {
  id: string;
  paymentStatus: PaymentStatus;
}

/** An order of either kind as the reconciler lists it. */
export type ListedOrder = ListedSession | ListedPaymentIntentOrder;

// The stuck sweep looks at records a batch at a time, for at most a minute and this many a run;
// the next run takes its turn from where this one stopped.
const STUCK_BATCH = 500;
const STUCK_LOOKS_PER_RUN = 20_000;
const STUCK_SWEEP_MS = 60_000;

// An email claim lapses this long after its last renewal: a worker that died mid-send holds up the
// customer's email by about this much, never forever.
export const EMAIL_LEASE_SECONDS = 30;
const EMAIL_LEASE_RENEW_MS = 5000;
const EMAIL_RECORD_PATIENCE_MS = 2 * 60_000;


// What a 404 means, by the ID's prefix: each kind of object Stripe may not know, with its failure type.
const MISSING_OBJECTS: [prefix: string, what: string, type: string][] = [
  ['cs_', 'Checkout Session', SESSION_NOT_FOUND_ERROR],
  ['pi_', 'PaymentIntent', 'PaymentIntentNotFound'],
  ['dp_', 'dispute', 'DisputeNotFound'],
  ['du_', 'dispute', 'DisputeNotFound'],
  ['evt_', 'event', 'EventNotFound'],
];

/**
 * Stripe errors become typed failures. Only facts about the object itself are final (Stripe does
 * not know the Checkout Session, or the PaymentIntent, `id` names). A refused key, a missing
 * permission or a request Stripe rejects are ours to fix: `StripeConfiguration`, which the workflow
 * shows as paused and retries until fixed. Rate limits, connection errors and Stripe 5xx stay plain
 * errors, retried with backoff.
 */
export function classifyStripeError(err: unknown, id: string): unknown {
  if (err instanceof Stripe.errors.StripeInvalidRequestError && (err.code === 'resource_missing' || err.statusCode === 404)) {
    const [what, type] = MISSING_OBJECTS.find(([prefix]) => id.startsWith(prefix))?.slice(1) ?? ['object', 'StripeObjectNotFound'];
    return ApplicationFailure.nonRetryable(`Stripe does not know ${what} ${id}`, type);
  }
  if (
    err instanceof Stripe.errors.StripeAuthenticationError ||
    err instanceof Stripe.errors.StripePermissionError ||
    err instanceof Stripe.errors.StripeInvalidRequestError
  ) {
    // The message names the problem, never the key.
    const problem = err instanceof Stripe.errors.StripeInvalidRequestError ? `rejected the request (${err.message})` : `refused the API key (${err.type})`;
    return ApplicationFailure.retryable(`Stripe ${problem}`, STRIPE_CONFIGURATION_ERROR);
  }
  return err;
}

/** Fails, never retried, before anything reaches Stripe with what is not a PaymentIntent ID. */
function requirePaymentIntentId(paymentIntentId: string): void {
  if (!PAYMENT_INTENT_ID_PATTERN.test(paymentIntentId)) {
    throw ApplicationFailure.nonRetryable(`Not a PaymentIntent ID: ${JSON.stringify(paymentIntentId)}`, 'InvalidPaymentIntentId');
  }
}

/** Stripe refusing a capture or cancel for the PaymentIntent's state (expired, already canceled): final, never retried. */
function refusedByStripe(err: unknown, type: string): ApplicationFailure | undefined {
  const finalCodes = ['payment_intent_unexpected_state', 'charge_expired_for_capture'];
  if (err instanceof Stripe.errors.StripeInvalidRequestError && finalCodes.includes(err.code ?? '')) {
    return ApplicationFailure.nonRetryable(err.message, type);
  }
  return undefined;
}

/**
 * The error with the customer's address and name taken out: a failure's message is kept in
 * Temporal's history and shown in its UI (mail servers' refusals usually quote the address).
 */
function withoutContact(err: unknown, contact: CustomerContact): Error {
  const original = err instanceof Error ? err : new Error(String(err));
  let message = original.message;
  for (const value of [contact.email, contact.name]) if (value) message = message.split(value).join('[customer]');
  const redacted = new Error(message);
  redacted.name = original.name;
  return redacted;
}
