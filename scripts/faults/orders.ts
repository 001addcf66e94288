import { randomBytes } from 'node:crypto';
import type { EmulatedSession } from '../../src/stripe/emulator';
import { checkoutEventPayload, deliverLikeStripe, type StripeLikeDelivery } from '../../src/stripe/signed-events';
import { untilItWorks } from '../../src/retry';
import { RECONCILER_SCHEDULE_ID } from '../../workflows/definitions';
import { WEBHOOK_SECRET, type Harness } from './harness';

/** How a customer pays, and so what must happen: fulfilled once, or (a failed delayed payment) nothing at all. */
export type OrderKind = 'card' | 'delayed_success' | 'delayed_failure';

export interface Order {
  kind: OrderKind;
  session: EmulatedSession;
  /** Stock each line item's product starts with: fulfilling it once takes exactly its quantity off. */
  initialStock: number;
}

const STOCK = 1000;

/** A mix like a real shop's: 60 % cards, 25 % delayed payments that succeed, 15 % that fail. */
export function makeOrders(count: number): Order[] {
  return Array.from({ length: count }, (_, i) => {
    const kind: OrderKind = i % 20 < 12 ? 'card' : i % 20 < 17 ? 'delayed_success' : 'delayed_failure';
    const id = `cs_test_faults${randomBytes(10).toString('hex')}`;
    const session: EmulatedSession = {
      id,
      status: 'complete',
      paymentStatus: kind === 'card' ? 'paid' : 'unpaid',
      currency: 'eur',
      customerEmail: `customer-${i}-${randomBytes(3).toString('hex')}@example.com`,
      customerName: `Customer ${randomBytes(3).toString('hex')}`,
      lineItems: [
        { id: `li_${id}_a`, description: 'Mug', quantity: 2, priceId: 'price_mug', productId: `prod_mug_${id}`, unitAmount: 1200 },
        { id: `li_${id}_b`, description: 'Poster', quantity: 1, priceId: 'price_poster', productId: `prod_poster_${id}`, unitAmount: 900 },
      ],
    };
    return { kind, session, initialStock: STOCK };
  });
}

export interface Played {
  deliveries: StripeLikeDelivery[];
  landingPages: number[];
}

/**
 * Plays the orders as Stripe and customers would, open loop at `perSecond` orders a second:
 * every event sent twice, a third of the successful delayed payments reported before Checkout's
 * own completion, an `expired` event racing `completed` for some cards, a fifth of the customers
 * landing on the success page as the webhook arrives, and a reconciler run triggered in the
 * middle. Resolves once every event has been delivered.
 */
export async function playOrders(harness: Harness, orders: Order[], perSecond: number): Promise<Played> {
  const { baseUrl, emulator, store } = harness;
  for (const order of orders) {
    emulator.put(order.session);
    for (const item of order.session.lineItems) await retrying(() => store.setStock(item.productId, order.initialStock));
  }
  const send = (type: string, sessionId: string) => {
    const payload = checkoutEventPayload(type, sessionId);
    emulator.putEvent(JSON.parse(payload) as Record<string, unknown>); // Stripe keeps what it sent: the product reads failures back
    return deliverLikeStripe(baseUrl, payload, { secret: WEBHOOK_SECRET, maxAttempts: 60, maxBackoffMs: 4000 });
  };
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const deliveries: StripeLikeDelivery[] = [];
  const landingPages: number[] = [];
  const twice = async (type: string, sessionId: string) => {
    deliveries.push(...(await Promise.all([send(type, sessionId), sleep(Math.random() * 1500).then(() => send(type, sessionId))])));
  };

  const plays = orders.map(async (order, i) => {
    await sleep((i * 1000) / perSecond);
    const { session } = order;
    if (i % 5 === 0) {
      void fetch(`${baseUrl}/after-checkout?session_id=${session.id}`)
        .then((page) => landingPages.push(page.status))
        .catch(() => landingPages.push(0));
    }
    if (order.kind === 'card') {
      // Now and then an `expired` event races `completed` (Stripe decides; the session reads complete).
      const racing = i % 7 === 0 ? send('checkout.session.expired', session.id).then((d) => void deliveries.push(d)) : undefined;
      await twice('checkout.session.completed', session.id);
      return racing;
    }
    const outcome = order.kind === 'delayed_success' ? 'checkout.session.async_payment_succeeded' : 'checkout.session.async_payment_failed';
    if (order.kind === 'delayed_success' && i % 3 === 0) {
      // The payment settles before Checkout's completion event reaches us.
      emulator.put({ ...session, paymentStatus: 'paid' });
      await twice(outcome, session.id);
      return twice('checkout.session.completed', session.id);
    }
    await twice('checkout.session.completed', session.id);
    await sleep(500 + Math.random() * 2000);
    if (order.kind === 'delayed_success') emulator.put({ ...session, paymentStatus: 'paid' });
    return twice(outcome, session.id);
  });
  // The reconciler racing the webhooks, half-way through.
  const reconciler = sleep((orders.length * 500) / perSecond).then(() =>
    retrying(() => harness.client.schedule.getHandle(RECONCILER_SCHEDULE_ID).trigger()),
  );
  await Promise.all([...plays, reconciler]);
  return { deliveries, landingPages };
}

export interface Outcome {
  order: Order;
  status: string | undefined;
  /** How many times each line item's stock moved by its quantity (1 when fulfilled once). */
  stockMoves: number[];
  receiptCopies: number;
  failureEmailCopies: number;
  settledAt?: number;
}

const expected = (order: Order) => (order.kind === 'delayed_failure' ? 'payment_failed' : 'fulfilled');

/** Waits (bounded) until every order reached its expected outcome, noting when each did. */
export async function settle(harness: Harness, orders: Order[], timeoutMs: number): Promise<Outcome[]> {
  const settledAt = new Map<string, number>();
  const deadline = Date.now() + timeoutMs;
  while (settledAt.size < orders.length && Date.now() < deadline) {
    for (const order of orders) {
      if (settledAt.has(order.session.id)) continue;
      const status = await harness.store.getRecord(order.session.id).then((record) => record?.view.status, () => undefined);
      const mails = harness.smtp.messages.filter((m) => m.envelopeTo.includes(order.session.customerEmail!)).length;
      if (status === expected(order) && mails >= 1) settledAt.set(order.session.id, Date.now());
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return Promise.all(
    orders.map(async (order) => {
      const { session } = order;
      const stockMoves = await Promise.all(
        session.lineItems.map(async (item) => {
          const onHand = await retrying(() => harness.store.getStock(item.productId));
          return (order.initialStock - (onHand ?? order.initialStock)) / item.quantity!;
        }),
      );
      const copies = (kind: string) => harness.smtp.messages.filter((m) => m.parsed.messageId === `<${kind}.${session.id}@faults.test>`).length;
      return {
        order,
        status: await retrying(() => harness.store.getRecord(session.id)).then((record) => record?.view.status),
        stockMoves,
        receiptCopies: copies('receipt'),
        failureEmailCopies: copies('payment_failed'),
        settledAt: settledAt.get(session.id),
      };
    }),
  );
}

/** One row of the fault table. */
export interface FaultRow {
  topology: string;
  fault: string;
  tried: number;
  fulfilled: number;
  lost: number;
  doubled: number;
  wrong: number;
  /** Emails sent a second time with the same Message-ID (see docs/reliability.md). */
  resent: number;
  non2xxWhileUp: number;
  recoverySeconds: number;
}

export function countRow(topology: string, fault: string, outcomes: Outcome[], played: Played, window: { start: number; end: number }): FaultRow {
  const shouldFulfill = outcomes.filter((o) => o.order.kind !== 'delayed_failure');
  const shouldNot = outcomes.filter((o) => o.order.kind === 'delayed_failure');
  const fulfilledOnce = (o: Outcome) => o.status === 'fulfilled' && o.stockMoves.every((moves) => moves === 1) && o.receiptCopies >= 1;
  // Up: outside the fault window, with a few seconds' grace for answers already in flight when it began or ended.
  const up = (at: number) => at < window.start - 1000 || at > window.end + 10_000;
  const non2xxWhileUp = played.deliveries
    .flatMap((d) => d.attempts.map((answer, i) => ({ answer, at: d.sentAt[i]! })))
    .filter(({ answer, at }) => up(at) && !(typeof answer === 'number' && answer >= 200 && answer < 300)).length;
  const lastSettled = Math.max(...outcomes.map((o) => o.settledAt ?? Date.now()));
  return {
    topology,
    fault,
    tried: outcomes.length,
    fulfilled: shouldFulfill.filter(fulfilledOnce).length,
    lost: shouldFulfill.filter((o) => o.status !== 'fulfilled' || o.stockMoves.some((moves) => moves < 1) || o.receiptCopies === 0).length,
    doubled: outcomes.filter((o) => o.stockMoves.some((moves) => moves > 1)).length,
    wrong:
      shouldNot.filter((o) => o.status === 'fulfilled' || o.stockMoves.some((moves) => moves !== 0) || o.receiptCopies > 0).length +
      shouldFulfill.filter((o) => o.failureEmailCopies > 0).length,
    resent: outcomes.reduce((sum, o) => sum + Math.max(o.receiptCopies - 1, 0) + Math.max(o.failureEmailCopies - 1, 0), 0),
    non2xxWhileUp,
    recoverySeconds: Math.max(0, (lastSettled - window.end) / 1000),
  };
}

/** A read or write that may hit a database being faulted: retried for a minute. */
function retrying<T>(attempt: () => Promise<T>): Promise<T> {
  return untilItWorks(attempt, { patienceMs: 60_000, intervalMs: 500 });
}
