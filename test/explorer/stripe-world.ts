import type { EmulatedDispute, EmulatedPaymentIntent, EmulatedRefund, EmulatedSession, StripeEmulator } from '../../src/stripe/emulator';
import { paymentIntentOf } from '../../src/stripe/emulator';
import { stripeEventPayload } from '../../src/stripe/signed-events';
import type { Change, OrderKind } from './world';
import { isPaymentIntentKind, PAYABLE_AGAIN } from './world';

/**
 * Stripe's side of a world: each order's objects at the emulator, the changes the world makes to
 * them, and the events Stripe would send for each (an event is one object: every redelivery
 * carries the same ID and body). `facts()` is what Stripe says of the order now, in plain terms:
 * what the oracle judges the product's records by.
 */

/** What Stripe says of an order at one moment. */
export interface StripeFacts {
  /** A Checkout Session's `status` and `payment_status` (null for a PaymentIntent order). */
  session: { status: EmulatedSession['status']; paymentStatus: EmulatedSession['paymentStatus']; mode: 'payment' | 'setup' | 'subscription' } | null;
  /** The PaymentIntent's status (a PaymentIntent order's), and whether its last attempt was declined. */
  intent: { status: EmulatedPaymentIntent['status']; declined: boolean; captureMethod: 'automatic' | 'manual' } | null;
  /** A delayed Checkout payment Stripe reported failed (`async_payment_failed`: the session itself keeps no trace). */
  asyncPaymentFailed: boolean;
  amount: number;
  refunds: Refund[];
  dispute: EmulatedDispute['status'] | null;
  /** The dispute was lost and then appealed (its status alone no longer says so once the appeal is won). */
  disputeAppealed: boolean;
  /** A second PaymentIntent naming the same order (`paid_again`), and its refunds (the product's). */
  secondPayment: { id: string; status: EmulatedPaymentIntent['status']; refunds: Refund[] } | null;
}

/** `everSucceeded`: at some moment, even between two of the world's changes (a refund the product made, then returned). */
type Refund = { id: string; amount: number; status: EmulatedRefund['status']; lineItemId: string | null; everSucceeded: boolean };

export interface WorldOrder {
  index: number;
  kind: OrderKind;
  /** The workflow ID: the Checkout Session's, or the PaymentIntent's. */
  id: string;
  paymentIntentId: string | null;
  /** The second PaymentIntent of the same order, once `paid_again` applied. */
  secondPaymentIntentId: string | null;
  lineItems: { id: string; quantity: number; amount: number }[];
  /** Event payloads by index: 0 the order's creation (null when it has none, an open session), then one per applied change. */
  events: (string | null)[];
}

const REFUND_PARTIAL = 500;

export class StripeWorld {
  private readonly asyncFailed = new Set<string>();
  private readonly appealed = new Set<string>();
  /**
   * Refunds the world made (the merchant's, Stripe's prevention): only these are ever returned. A
   * returned refund of the product's own (a duplicate payment given back) leaves the money with the
   * merchant and an operator to act; the oracle has no state of its story to judge that from.
   */
  private readonly worldRefunds = new Set<string>();
  private serial = 0;

  constructor(private readonly emulator: StripeEmulator) {}

  /** Places a Checkout Session at Stripe (a PaymentIntent order goes through `placePaymentIntent`). */
  placeSession(index: number, kind: OrderKind, session: EmulatedSession): WorldOrder {
    const open = session.status === 'open';
    this.emulator.put(session);
    const order: WorldOrder = {
      index,
      kind,
      id: session.id,
      paymentIntentId: paymentIntentOf(session),
      secondPaymentIntentId: null,
      lineItems: session.lineItems.map((item) => ({ id: item.id, quantity: item.quantity ?? 1, amount: item.unitAmount * (item.quantity ?? 1) })),
      events: [open ? null : this.event('checkout.session.completed', { id: session.id, object: 'checkout.session' })],
    };
    return order;
  }

  placePaymentIntent(index: number, kind: OrderKind, intent: EmulatedPaymentIntent, lineItems: WorldOrder['lineItems']): WorldOrder {
    this.emulator.putPaymentIntent(intent);
    const first = intent.status === 'requires_capture' ? 'payment_intent.amount_capturable_updated' : 'payment_intent.processing';
    return { index, kind, id: intent.id, paymentIntentId: intent.id, secondPaymentIntentId: null, lineItems, events: [this.intentEvent(first, intent)] };
  }

  /**
   * Applies one change of the order's story, if it applies to the order as Stripe has it now, and
   * returns the event it sends (null: it did not apply, nothing happened).
   */
  apply(order: WorldOrder, change: Change, succeeds: boolean): string | null {
    const facts = this.facts(order);
    // Stripe refuses to refund a disputed payment (the dispute decides where the money goes).
    const refundable = isTaken(facts) && facts.dispute === null;
    const taken = isTaken(facts);
    const left = facts.amount - facts.refunds.filter((r) => r.status === 'succeeded' || r.status === 'pending').reduce((sum, r) => sum + r.amount, 0);
    switch (change) {
      case 'settle':
        return this.settle(order, succeeds);
      case 'refund_full':
      case 'refund_pending':
        return refundable && left > 0 ? this.refund(order, left, change === 'refund_full' ? 'succeeded' : 'pending', null) : null;
      case 'refund_partial':
        return refundable && left >= REFUND_PARTIAL ? this.refund(order, REFUND_PARTIAL, 'succeeded', null) : null;
      case 'refund_line_item': {
        const item = order.lineItems[0]!;
        const named = facts.refunds.some((r) => r.lineItemId === item.id && r.status !== 'failed');
        return refundable && !named && left >= item.amount ? this.refund(order, item.amount, 'succeeded', item.id) : null;
      }
      case 'refund_settles': {
        const refunds = [...this.emulator.refunds.values()].filter((r) => r.paymentIntentId === order.paymentIntentId && this.worldRefunds.has(r.id));
        const pending = refunds.find((r) => r.status === 'pending');
        const returned = succeeds ? undefined : refunds.filter((r) => r.status === 'succeeded').at(-1);
        const refund = pending ?? returned;
        if (!refund) return null;
        const settled = { ...refund, status: pending && succeeds ? ('succeeded' as const) : ('failed' as const) };
        this.emulator.putRefund(settled);
        return this.event('refund.updated', { id: settled.id, object: 'refund', payment_intent: settled.paymentIntentId, status: settled.status });
      }
      case 'dispute_opened': {
        if (!taken || facts.dispute || left <= 0) return null; // nothing left to dispute once refunded in full
        const dispute: EmulatedDispute = { id: `dp_${order.id.slice(3)}`, paymentIntentId: order.paymentIntentId!, amount: facts.amount, currency: this.currencyOf(order), status: 'needs_response', reason: 'fraudulent' };
        this.emulator.putDispute(dispute);
        return this.event('charge.dispute.created', { id: dispute.id, object: 'dispute', payment_intent: dispute.paymentIntentId });
      }
      case 'dispute_won':
      case 'dispute_lost': {
        // An open dispute is decided, or an appeal of a lost one.
        const dispute = this.emulator.disputes.get(`dp_${order.id.slice(3)}`);
        if (!dispute || !['needs_response', 'under_review', 'appeal_needs_response', 'appeal_under_review'].includes(dispute.status)) return null;
        this.emulator.putDispute({ ...dispute, status: change === 'dispute_won' ? 'won' : 'lost' });
        return this.event('charge.dispute.closed', { id: dispute.id, object: 'dispute', payment_intent: dispute.paymentIntentId });
      }
      case 'dispute_appealed': {
        // A lost dispute appealed: it needs the appeal's evidence, then is under review with it.
        const dispute = this.emulator.disputes.get(`dp_${order.id.slice(3)}`);
        const next = dispute?.status === 'lost' ? 'appeal_needs_response' : dispute?.status === 'appeal_needs_response' ? 'appeal_under_review' : null;
        if (!dispute || !next) return null;
        this.appealed.add(order.id);
        this.emulator.putDispute({ ...dispute, status: next });
        return this.event('charge.dispute.updated', { id: dispute.id, object: 'dispute', payment_intent: dispute.paymentIntentId, status: next });
      }
      case 'dispute_prevented': {
        // Prevention (an issuer's rapid resolution) refunds the payment instead of a chargeback: from an inquiry just opened, or before one exists.
        const dispute = this.emulator.disputes.get(`dp_${order.id.slice(3)}`);
        if (!taken || left <= 0 || (dispute && !['needs_response', 'under_review'].includes(dispute.status))) return null;
        const id = `dp_${order.id.slice(3)}`;
        this.emulator.putDispute({ id, paymentIntentId: order.paymentIntentId!, amount: left, currency: this.currencyOf(order), reason: 'fraudulent', ...dispute, status: 'prevented' });
        return this.refund(order, left, 'succeeded', null);
      }
      case 'paid_again': {
        if (!PAYABLE_AGAIN.includes(order.kind) || order.secondPaymentIntentId) return null;
        // A PaymentIntent of its own, made now (a second tab): not the first one's creation time, which the reconciler's lookback reads.
        const { created: _firstCreated, ...first } = this.emulator.paymentIntents.get(order.id)!;
        const second: EmulatedPaymentIntent = { ...first, id: `${first.id}b`, status: 'succeeded', lastPaymentError: undefined };
        this.emulator.putPaymentIntent(second);
        order.secondPaymentIntentId = second.id;
        return this.intentEvent('payment_intent.succeeded', second);
      }
      case 'dashboard_capture':
      case 'dashboard_cancel': {
        const intent = this.emulator.paymentIntents.get(order.id);
        if (intent?.status !== 'requires_capture') return null;
        const capture = change === 'dashboard_capture';
        const next = capture ? { ...intent, status: 'succeeded' as const, captures: (intent.captures ?? 0) + 1 } : { ...intent, status: 'canceled' as const, cancels: (intent.cancels ?? 0) + 1 };
        this.emulator.putPaymentIntent(next);
        return this.intentEvent(capture ? 'payment_intent.succeeded' : 'payment_intent.canceled', next);
      }
    }
  }

  /**
   * Stripe's own clock: an authorization not captured by its `capture_before` lapses (the
   * PaymentIntent is canceled). Returns the event Stripe sends, if it lapsed now.
   */
  lapse(order: WorldOrder, nowMs: number): string | null {
    const intent = isPaymentIntentKind(order.kind) ? this.emulator.paymentIntents.get(order.id) : undefined;
    if (intent?.status !== 'requires_capture' || nowMs / 1000 <= intent.captureBefore!) return null;
    const canceled = { ...intent, status: 'canceled' as const };
    this.emulator.putPaymentIntent(canceled);
    return this.intentEvent('payment_intent.canceled', canceled);
  }

  facts(order: WorldOrder): StripeFacts {
    const session = this.emulator.sessions.get(order.id);
    const intent = isPaymentIntentKind(order.kind) ? this.emulator.paymentIntents.get(order.id) : undefined;
    const refundsOf = (paymentIntentId: string | null): Refund[] =>
      [...this.emulator.refunds.values()]
        .filter((r) => paymentIntentId !== null && r.paymentIntentId === paymentIntentId)
        .map((r) => ({ id: r.id, amount: r.amount, status: r.status, lineItemId: r.metadata?.line_items ?? null, everSucceeded: this.emulator.refundStatuses.get(r.id)?.includes('succeeded') ?? false }));
    const dispute = this.emulator.disputes.get(`dp_${order.id.slice(3)}`);
    const second = order.secondPaymentIntentId ? this.emulator.paymentIntents.get(order.secondPaymentIntentId) : undefined;
    return {
      session: session ? { status: session.status, paymentStatus: session.paymentStatus, mode: session.mode ?? 'payment' } : null,
      intent: intent ? { status: intent.status, declined: Boolean(intent.lastPaymentError), captureMethod: intent.captureMethod ?? 'automatic' } : null,
      asyncPaymentFailed: this.asyncFailed.has(order.id),
      amount: order.lineItems.reduce((sum, item) => sum + item.amount, 0),
      refunds: refundsOf(order.paymentIntentId),
      dispute: dispute?.status ?? null,
      disputeAppealed: this.appealed.has(order.id),
      secondPayment: second ? { id: second.id, status: second.status, refunds: refundsOf(second.id) } : null,
    };
  }

  private settle(order: WorldOrder, succeeds: boolean): string | null {
    if (isPaymentIntentKind(order.kind)) {
      const intent = this.emulator.paymentIntents.get(order.id)!;
      if (intent.status !== 'processing') return null;
      const next: EmulatedPaymentIntent =
        order.kind === 'pi_declined' ? { ...intent, status: 'requires_payment_method', lastPaymentError: 'card_declined' } : { ...intent, status: 'succeeded' };
      this.emulator.putPaymentIntent(next);
      return this.intentEvent(order.kind === 'pi_declined' ? 'payment_intent.payment_failed' : 'payment_intent.succeeded', next);
    }
    const session = this.emulator.sessions.get(order.id)!;
    const object = { id: session.id, object: 'checkout.session' };
    switch (order.kind) {
      case 'delayed_success':
        this.emulator.put({ ...session, paymentStatus: 'paid' });
        return this.event('checkout.session.async_payment_succeeded', object);
      case 'delayed_failure':
        this.asyncFailed.add(order.id);
        return this.event('checkout.session.async_payment_failed', object);
      case 'open_then_paid':
        this.emulator.put({ ...session, status: 'complete', paymentStatus: 'paid', paymentIntentId: undefined });
        order.paymentIntentId = paymentIntentOf(this.emulator.sessions.get(order.id)!);
        return this.event('checkout.session.completed', object);
      case 'open_free':
        this.emulator.put({ ...session, status: 'complete' });
        return this.event('checkout.session.completed', object);
      case 'expires':
        this.emulator.put({ ...session, status: 'expired' });
        return this.event('checkout.session.expired', object);
      case 'open_setup':
      case 'open_trial':
        this.emulator.put({ ...session, status: succeeds ? 'complete' : 'expired' });
        return this.event(succeeds ? 'checkout.session.completed' : 'checkout.session.expired', object);
      default:
        return null;
    }
  }

  private refund(order: WorldOrder, amount: number, status: EmulatedRefund['status'], lineItemId: string | null): string {
    const refund: EmulatedRefund = {
      id: `re_${order.id.slice(3)}_${++this.serial}`,
      paymentIntentId: order.paymentIntentId!,
      amount,
      currency: this.currencyOf(order),
      status,
      metadata: lineItemId ? { line_items: lineItemId } : {},
    };
    this.emulator.putRefund(refund);
    this.worldRefunds.add(refund.id);
    return this.event('charge.refunded', { id: `ch_${order.paymentIntentId!.slice(3)}`, object: 'charge', payment_intent: order.paymentIntentId });
  }

  private currencyOf(order: WorldOrder): string {
    return isPaymentIntentKind(order.kind) ? 'eur' : 'usd';
  }

  private intentEvent(type: string, intent: EmulatedPaymentIntent): string {
    return this.event(type, { id: intent.id, object: 'payment_intent', status: intent.status, metadata: intent.metadata ?? {} });
  }

  private event(type: string, object: Record<string, unknown>): string {
    const payload = stripeEventPayload(type, object);
    this.emulator.putEvent(JSON.parse(payload) as Record<string, unknown>);
    return payload;
  }
}

/** Stripe holds the customer's money for the order (a captured or paid PaymentIntent, a paid session). */
export function isTaken(facts: StripeFacts): boolean {
  if (facts.intent) return facts.intent.status === 'succeeded';
  return facts.session?.status === 'complete' && facts.session.paymentStatus === 'paid';
}
