import { randomBytes } from 'node:crypto';
import type { EmulatedPaymentIntent, EmulatedRefund, EmulatedSession } from '../../src/stripe/emulator';
import { databaseOrderSource, type Order as ShopOrder } from '../../src/fulfillment/order-source';
import { checkoutEventPayload, deliverLikeStripe, stripeEventPayload, type StripeLikeDelivery } from '../../src/stripe/signed-events';
import { untilItWorks } from '../../src/retry';
import { RECONCILER_SCHEDULE_ID } from '../../workflows/definitions';
import { WEBHOOK_SECRET, type Harness } from './harness';

/**
 * How a customer pays, and so what must happen.
 * Checkout Sessions: `card` (fulfilled once), `delayed_success` (fulfilled once, after a wait),
 * `delayed_failure` (nothing at all).
 * Orders paid by PaymentIntent (the `orders` table, named by `metadata.order_id`):
 * `pi_automatic` (fulfilled once); `pi_manual` (an authorization: fulfilled, then captured exactly
 * once and never released); `pi_refund_before` (refunded in full and `charge.refunded` delivered
 * before `payment_intent.succeeded`: refunded, nothing fulfilled, stock unchanged);
 * `pi_refund_during` (refunded in full while it is being fulfilled: refunded, every line item
 * fulfilled reversed exactly once, stock back where it started).
 */
export type OrderKind = 'card' | 'delayed_success' | 'delayed_failure' | 'pi_automatic' | 'pi_manual' | 'pi_refund_before' | 'pi_refund_during';

/** Which orders a fault kind plays (see `makeOrders`). */
export type OrderMix = 'checkout' | 'capture' | 'refunds';

/** Each mix, per 20 orders. */
const MIXES: Record<OrderMix, [OrderKind, number][]> = {
  // A shop's Checkout traffic: 60 % cards, 25 % delayed payments that succeed, 15 % that fail.
  checkout: [
    ['card', 12],
    ['delayed_success', 5],
    ['delayed_failure', 3],
  ],
  // Captures running: 50 % authorizations to capture, 20 % PaymentIntents captured at once, 30 % Checkout cards.
  capture: [
    ['pi_manual', 10],
    ['pi_automatic', 4],
    ['card', 6],
  ],
  // Money back: 30 % refunded before the payment event, 30 % during fulfillment, 20 % and 20 % paid and kept.
  refunds: [
    ['pi_refund_before', 6],
    ['pi_refund_during', 6],
    ['pi_automatic', 4],
    ['pi_manual', 4],
  ],
};

/** The order's outcome when nothing is lost, doubled or wrong. */
export const expectedStatus = (kind: OrderKind) =>
  kind === 'delayed_failure' ? 'payment_failed' : kind === 'pi_refund_before' || kind === 'pi_refund_during' ? 'refunded' : 'fulfilled';

export interface Order {
  kind: OrderKind;
  /** The order's ID, and its workflow's: the Checkout Session's (`cs_...`) or the PaymentIntent's (`pi_...`). */
  id: string;
  /** Its place in the burst; even and odd orders of a kind arrive in its two ways (see `playOrders`). */
  index: number;
  contact: { email: string; name: string };
  lineItems: { id: string; productId: string; quantity: number }[];
  /** Stock each line item's product starts with: fulfilling it once takes exactly its quantity off. */
  initialStock: number;
  session?: EmulatedSession;
  /** The merchant's order and its PaymentIntent, put at the emulator when the customer pays. */
  shopOrder?: ShopOrder;
  paymentIntent?: EmulatedPaymentIntent;
  /** The full refund of a refunded kind. */
  refund?: EmulatedRefund;
}

const STOCK = 1000;
const CURRENCY = 'eur';

export function makeOrders(count: number, mix: OrderMix = 'checkout'): Order[] {
  const weights = MIXES[mix];
  const kindAt = (i: number): OrderKind => {
    let place = i % 20;
    for (const [kind, weight] of weights) {
      if (place < weight) return kind;
      place -= weight;
    }
    return weights[0]![0];
  };
  return Array.from({ length: count }, (_, i) => {
    const kind = kindAt(i);
    const contact = { email: `customer-${i}-${randomBytes(3).toString('hex')}@example.com`, name: `Customer ${randomBytes(3).toString('hex')}` };
    if (kind === 'card' || kind === 'delayed_success' || kind === 'delayed_failure') {
      const id = `cs_test_faults${randomBytes(10).toString('hex')}`;
      const session: EmulatedSession = {
        id,
        status: 'complete',
        paymentStatus: kind === 'card' ? 'paid' : 'unpaid',
        currency: CURRENCY,
        customerEmail: contact.email,
        customerName: contact.name,
        lineItems: [
          { id: `li_${id}_a`, description: 'Mug', quantity: 2, priceId: 'price_mug', productId: `prod_mug_${id}`, unitAmount: 1200 },
          { id: `li_${id}_b`, description: 'Poster', quantity: 1, priceId: 'price_poster', productId: `prod_poster_${id}`, unitAmount: 900 },
        ],
      };
      const lineItems = session.lineItems.map((item) => ({ id: item.id, productId: item.productId, quantity: item.quantity! }));
      return { kind, id, index: i, contact, lineItems, initialStock: STOCK, session };
    }
    const suffix = `faults${randomBytes(10).toString('hex')}`;
    const id = `pi_${suffix}`;
    const item = (key: string, description: string, quantity: number, unitAmount: number) => ({
      id: `li_${suffix}_${key}`,
      description,
      quantity,
      priceId: `price_${key}`,
      productId: `prod_${key}_${suffix}`,
      amountSubtotal: quantity * unitAmount,
      amountTotal: quantity * unitAmount,
      currency: CURRENCY,
    });
    const items = [item('mug', 'Mug', 2, 1200), item('poster', 'Poster', 1, 900)];
    const amount = items.reduce((sum, line) => sum + line.amountTotal, 0);
    const shopOrder: ShopOrder = { orderId: `order_${suffix}`, currency: CURRENCY, amountTotal: amount, lineItems: items, contact };
    const manual = kind === 'pi_manual';
    const paymentIntent: EmulatedPaymentIntent = {
      id,
      amount,
      currency: CURRENCY,
      status: manual ? 'requires_capture' : 'succeeded',
      metadata: { order_id: shopOrder.orderId },
      ...(manual ? { captureMethod: 'manual' as const, captureBefore: Math.floor(Date.now() / 1000) + 5 * 86_400 } : {}),
    };
    const refunded = kind === 'pi_refund_before' || kind === 'pi_refund_during';
    const refund: EmulatedRefund | undefined = refunded ? { id: `re_${suffix}`, paymentIntentId: id, amount, currency: CURRENCY, status: 'succeeded' } : undefined;
    const lineItems = items.map((line) => ({ id: line.id, productId: line.productId, quantity: line.quantity }));
    return { kind, id, index: i, contact, lineItems, initialStock: STOCK, shopOrder, paymentIntent, refund };
  });
}

export interface Played {
  deliveries: StripeLikeDelivery[];
  /** What each delivery carried, in the order of `deliveries`: the event's type and the order's ID. */
  delivered: { type: string; id: string }[];
  landingPages: number[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Plays the orders as Stripe and customers would, open loop at `perSecond` orders a second. Every
 * event is sent twice. Checkout: a third of the successful delayed payments reported before
 * Checkout's own completion, an `expired` event racing `completed` for some cards, a fifth of the
 * customers landing on the success page as the webhook arrives. PaymentIntents appear at Stripe
 * when the customer pays; an authorization is followed, once captured, by the `succeeded` event
 * Stripe sends then. A refund before the payment event: half the time `payment_intent.succeeded`
 * follows as soon as `charge.refunded` is acknowledged, half the time once the refund has reached
 * the order (its record exists). A refund during fulfillment: half the time as soon as the record
 * says `fulfilling`, half the time up to a second after the payment event is acknowledged. A
 * reconciler run is triggered in the middle. Resolves once every event has been delivered.
 */
export async function playOrders(harness: Harness, orders: Order[], perSecond: number): Promise<Played> {
  const { baseUrl, emulator, store } = harness;
  const shop = databaseOrderSource(store.db);
  for (const order of orders) {
    if (order.session) emulator.put(order.session);
    if (order.shopOrder) await retrying(() => shop.saveOrder(order.shopOrder!));
    for (const item of order.lineItems) await retrying(() => store.setStock(item.productId, order.initialStock));
  }
  const deliveries: StripeLikeDelivery[] = [];
  const delivered: Played['delivered'] = [];
  const landingPages: number[] = [];
  const deliver = async (payload: string) => {
    const event = JSON.parse(payload) as { type: string; data: { object: { id: string; payment_intent?: string } } };
    emulator.putEvent(event as unknown as Record<string, unknown>); // Stripe keeps what it sent: the product reads failures back
    const delivery = await deliverLikeStripe(baseUrl, payload, { secret: WEBHOOK_SECRET, maxAttempts: 60, maxBackoffMs: 4000 });
    deliveries.push(delivery);
    delivered.push({ type: event.type, id: event.data.object.payment_intent ?? event.data.object.id });
    return delivery;
  };
  /** The same event delivered twice, the copy up to 1.5 s later; resolves when the first is acknowledged and with both. */
  const twice = (payload: string) => {
    const first = deliver(payload);
    const both = Promise.all([first, sleep(Math.random() * 1500).then(() => deliver(payload))]);
    return { first, both };
  };
  const checkout = (type: string, sessionId: string) => twice(checkoutEventPayload(type, sessionId)).both;
  const intentEvent = (type: string, intent: EmulatedPaymentIntent) =>
    stripeEventPayload(type, { id: intent.id, object: 'payment_intent', status: intent.status, metadata: intent.metadata ?? {} });
  const refundEvent = (paymentIntentId: string) =>
    stripeEventPayload('charge.refunded', { id: `ch_${paymentIntentId.slice(3)}`, object: 'charge', payment_intent: paymentIntentId });
  const status = (id: string) => store.getRecord(id).then((record) => record?.view.status, () => undefined);
  const until = async (check: () => boolean | Promise<boolean>, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await check()) && Date.now() < deadline) await sleep(100);
  };

  const plays = orders.map(async (order, i) => {
    await sleep((i * 1000) / perSecond);
    const { session, paymentIntent: intent, refund } = order;
    if (session) {
      if (i % 5 === 0) {
        void fetch(`${baseUrl}/after-checkout?session_id=${session.id}`)
          .then((page) => landingPages.push(page.status))
          .catch(() => landingPages.push(0));
      }
      if (order.kind === 'card') {
        // Now and then an `expired` event races `completed` (Stripe decides; the session reads complete).
        const racing = i % 7 === 0 ? deliver(checkoutEventPayload('checkout.session.expired', session.id)) : undefined;
        await checkout('checkout.session.completed', session.id);
        return racing;
      }
      const outcome = order.kind === 'delayed_success' ? 'checkout.session.async_payment_succeeded' : 'checkout.session.async_payment_failed';
      if (order.kind === 'delayed_success' && i % 3 === 0) {
        // The payment settles before Checkout's completion event reaches us.
        emulator.put({ ...session, paymentStatus: 'paid' });
        await checkout(outcome, session.id);
        return checkout('checkout.session.completed', session.id);
      }
      await checkout('checkout.session.completed', session.id);
      await sleep(500 + Math.random() * 2000);
      if (order.kind === 'delayed_success') emulator.put({ ...session, paymentStatus: 'paid' });
      return checkout(outcome, session.id);
    }
    if (!intent) return;
    emulator.putPaymentIntent(intent); // the customer pays now
    switch (order.kind) {
      case 'pi_automatic':
        return twice(intentEvent('payment_intent.succeeded', intent)).both;
      case 'pi_manual': {
        await twice(intentEvent('payment_intent.amount_capturable_updated', intent)).both;
        // Stripe announces the capture with `payment_intent.succeeded` (late: the workflow has usually ended).
        await until(() => (emulator.paymentIntents.get(intent.id)?.captures ?? 0) > 0, 240_000);
        if ((emulator.paymentIntents.get(intent.id)?.captures ?? 0) > 0) await deliver(intentEvent('payment_intent.succeeded', { ...intent, status: 'succeeded' }));
        return;
      }
      case 'pi_refund_before': {
        emulator.putRefund(refund!);
        const refunded = twice(refundEvent(intent.id));
        await refunded.first;
        if (i % 2 === 0) await until(async () => (await status(intent.id)) !== undefined, 120_000);
        return Promise.all([refunded.both, twice(intentEvent('payment_intent.succeeded', intent)).both]);
      }
      case 'pi_refund_during': {
        const paid = twice(intentEvent('payment_intent.succeeded', intent));
        await paid.first;
        if (i % 2 === 0) await until(async () => ['fulfilling', 'fulfilled', 'refunded'].includes((await status(intent.id)) ?? ''), 120_000);
        else await sleep(Math.random() * 1000);
        emulator.putRefund(refund!);
        return Promise.all([paid.both, twice(refundEvent(intent.id)).both]);
      }
    }
  });
  // The reconciler racing the webhooks, half-way through.
  const reconciler = sleep((orders.length * 500) / perSecond).then(() =>
    retrying(() => harness.client.schedule.getHandle(RECONCILER_SCHEDULE_ID).trigger()),
  );
  await Promise.all([...plays, reconciler]);
  return { deliveries, delivered, landingPages };
}

export interface Outcome {
  order: Order;
  status: string | undefined;
  /** Per line item, from the fault fulfiller's ledger: times fulfilled, times reversed by any reversal, times by the order's refund. */
  fulfills: number[];
  reverses: number[];
  reversedByRefund: number[];
  /** Per line item: how far its stock moved, in quantities (1 when fulfilled once and not reversed). */
  stockMoves: number[];
  /** The product's own records: line items fulfilled, and those the refund reversed. */
  recordedFulfillments: string[];
  recordedRefundReversals: string[];
  /** At the emulator: captures and cancels Stripe performed for the PaymentIntent. */
  captures: number;
  cancels: number;
  /** Copies of each email, by Message-ID. */
  emails: { receipt: number; payment_failed: number; canceled: number; refund: number };
  settledAt?: number;
}

const copiesOf = (harness: Harness, order: Order, kind: string) =>
  harness.smtp.messages.filter((m) => m.parsed.messageId === `<${kind}.${order.id}@faults.test>`).length;
const expectedEmail = (order: Order) =>
  ({ fulfilled: 'receipt', payment_failed: 'payment_failed', refunded: `refund.${order.refund?.id ?? ''}` })[expectedStatus(order.kind)];

/** Waits (bounded) until every order reached its expected outcome, noting when each did. */
export async function settle(harness: Harness, orders: Order[], timeoutMs: number): Promise<Outcome[]> {
  const settledAt = new Map<string, number>();
  const deadline = Date.now() + timeoutMs;
  while (settledAt.size < orders.length && Date.now() < deadline) {
    for (const order of orders) {
      if (settledAt.has(order.id)) continue;
      const status = await harness.store.getRecord(order.id).then((record) => record?.view.status, () => undefined);
      const captured = order.kind !== 'pi_manual' || (harness.emulator.paymentIntents.get(order.id)?.captures ?? 0) > 0;
      if (status === expectedStatus(order.kind) && captured && copiesOf(harness, order, expectedEmail(order)) >= 1) settledAt.set(order.id, Date.now());
    }
    await sleep(500);
  }
  return Promise.all(
    orders.map(async (order) => {
      const { store } = harness;
      const ledger = await retrying(() =>
        store.db.query<{ line_item_id: string; move: string; reversal_id: string | null; n: number }>(
          'SELECT line_item_id, move, reversal_id, count(*)::int AS n FROM faults_ledger WHERE session_id = $1 GROUP BY line_item_id, move, reversal_id',
          [order.id],
        ),
      );
      const count = (itemId: string, match: (row: (typeof ledger)[number]) => boolean) =>
        ledger.filter((row) => row.line_item_id === itemId && match(row)).reduce((sum, row) => sum + row.n, 0);
      const stockMoves = await Promise.all(
        order.lineItems.map(async (item) => {
          const onHand = await retrying(() => store.getStock(item.productId));
          return (order.initialStock - (onHand ?? order.initialStock)) / item.quantity;
        }),
      );
      const intent = harness.emulator.paymentIntents.get(order.id);
      return {
        order,
        status: await retrying(() => store.getRecord(order.id)).then((record) => record?.view.status),
        fulfills: order.lineItems.map((item) => count(item.id, (row) => row.move === 'fulfill')),
        reverses: order.lineItems.map((item) => count(item.id, (row) => row.move.startsWith('reverse'))),
        reversedByRefund: order.lineItems.map((item) => count(item.id, (row) => row.move.startsWith('reverse') && row.reversal_id === order.refund?.id)),
        stockMoves,
        recordedFulfillments: (await retrying(() => store.getFulfillments(order.id))).map((item) => item.lineItemId),
        recordedRefundReversals: order.refund ? (await retrying(() => store.getReversals(order.refund!.id))).map((item) => item.lineItemId) : [],
        captures: intent?.captures ?? 0,
        cancels: intent?.cancels ?? 0,
        emails: {
          receipt: copiesOf(harness, order, 'receipt'),
          payment_failed: copiesOf(harness, order, 'payment_failed'),
          canceled: copiesOf(harness, order, 'canceled'),
          refund: order.refund ? copiesOf(harness, order, `refund.${order.refund.id}`) : 0,
        },
        settledAt: settledAt.get(order.id),
      };
    }),
  );
}

/** Which of its kind's two arrival orders an order was played in (see `playOrders`). */
export function arrivalOf(order: Order): string {
  const even = order.index % 2 === 0;
  if (order.kind === 'pi_refund_before') return even ? 'payment event sent once the refund had reached the order' : 'payment event sent as soon as the refund was acknowledged';
  if (order.kind === 'pi_refund_during') return even ? 'refund sent once the record said fulfilling' : 'refund sent up to 1 s after the payment event was acknowledged';
  return '';
}

/** What one order's outcome counts as in its row; `problems` says why, with the order's ID, for the log. */
export interface Verdict {
  fulfilled: boolean;
  refunded: boolean;
  lost: boolean;
  doubled: boolean;
  wrong: boolean;
  resent: number;
  problems: string[];
}

export function judge(o: Outcome): Verdict {
  const { kind } = o.order;
  const lost: string[] = [];
  const doubled: string[] = [];
  const wrong: string[] = [];
  // Whatever the kind: nothing twice, and the stock moved exactly as often as the fulfiller did.
  if (o.fulfills.some((n) => n > 1)) doubled.push(`line items fulfilled ${o.fulfills.join('/')} times`);
  if (o.reversedByRefund.some((n) => n > 1)) doubled.push(`line items reversed ${o.reversedByRefund.join('/')} times by ${o.order.refund?.id}`);
  if (o.captures > 1) doubled.push(`captured ${o.captures} times`);
  if (o.cancels > 1) doubled.push(`released ${o.cancels} times`);
  if (o.stockMoves.some((moves, i) => moves !== o.fulfills[i]! - o.reverses[i]!)) {
    wrong.push(`stock moved ${o.stockMoves.join('/')}, fulfilled ${o.fulfills.join('/')}, reversed ${o.reverses.join('/')}`);
  }
  const expected = expectedStatus(kind);
  if (expected === 'fulfilled') {
    if (o.status !== 'fulfilled') lost.push(`status ${o.status ?? 'none'}`);
    if (o.fulfills.some((n) => n < 1)) lost.push(`line items fulfilled ${o.fulfills.join('/')} times`);
    if (o.emails.receipt === 0) lost.push('no receipt');
    if (kind === 'pi_manual' && o.captures === 0) lost.push('never captured');
    if (o.cancels > 0) wrong.push(`released (${o.cancels} cancels) with ${o.captures} captures`);
    if (o.reverses.some((n) => n > 0)) wrong.push(`line items reversed ${o.reverses.join('/')} times`);
    if (o.emails.payment_failed + o.emails.canceled + o.emails.refund > 0) wrong.push(`told the payment failed or was canceled (${JSON.stringify(o.emails)})`);
  } else if (expected === 'payment_failed') {
    if (o.status === 'fulfilled' || o.fulfills.some((n) => n > 0) || o.stockMoves.some((m) => m !== 0)) wrong.push(`a failed payment fulfilled (status ${o.status}, ${o.fulfills.join('/')})`);
    if (o.emails.receipt > 0) wrong.push('a failed payment receipted');
  } else {
    if (o.status !== 'refunded') lost.push(`status ${o.status ?? 'none'}`);
    if (o.emails.refund === 0) lost.push('no refund email');
    if (o.emails.payment_failed + o.emails.canceled > 0) wrong.push(`told the payment failed or was canceled (${JSON.stringify(o.emails)})`);
    if (o.cancels > 0 || o.captures > 0) wrong.push(`a paid PaymentIntent captured ${o.captures} and released ${o.cancels} times`);
    if (kind === 'pi_refund_before') {
      if (o.fulfills.some((n) => n > 0) || o.recordedFulfillments.length > 0) {
        wrong.push(`refunded before its payment event, yet fulfilled (${o.fulfills.join('/')}; reversed ${o.reverses.join('/')})`);
      }
      if (o.emails.receipt > 0) wrong.push('refunded before its payment event, yet receipted');
    } else if (o.status === 'refunded') {
      // Whatever was fulfilled goes back, once, by this refund; nothing that was not fulfilled is reversed.
      if (o.fulfills.some((n, i) => n > o.reversedByRefund[i]!)) wrong.push(`refunded, but fulfilled ${o.fulfills.join('/')} and reversed ${o.reversedByRefund.join('/')}: not all given back`);
      if (o.reversedByRefund.some((n, i) => n > o.fulfills[i]!)) wrong.push(`reversed ${o.reversedByRefund.join('/')} but fulfilled ${o.fulfills.join('/')}`);
      if (o.reverses.some((n, i) => n !== o.reversedByRefund[i]!)) wrong.push(`reversed by something other than the refund (${o.reverses.join('/')})`);
      if ([...o.recordedRefundReversals].sort().join() !== [...o.recordedFulfillments].sort().join()) {
        wrong.push(`the product recorded fulfillments [${o.recordedFulfillments.join(', ')}] but refund reversals [${o.recordedRefundReversals.join(', ')}]`);
      }
    }
    if (o.status === 'refunded' && o.stockMoves.some((m) => m !== 0)) wrong.push(`refunded, but stock not back where it started (${o.stockMoves.join('/')})`);
  }
  const ok = lost.length + doubled.length + wrong.length === 0;
  const problems = [...lost.map((p) => `lost: ${p}`), ...doubled.map((p) => `doubled: ${p}`), ...wrong.map((p) => `wrong: ${p}`)];
  return {
    fulfilled: ok && expected === 'fulfilled',
    refunded: ok && expected === 'refunded',
    lost: lost.length > 0,
    doubled: doubled.length > 0,
    wrong: wrong.length > 0,
    resent: Object.values(o.emails).reduce((sum, copies) => sum + Math.max(copies - 1, 0), 0),
    problems: problems.map((p) => `${o.order.kind} ${o.order.id} (order ${o.order.index}${arrivalOf(o.order) ? `, ${arrivalOf(o.order)}` : ''}): ${p}`),
  };
}

/** One row of the fault table. */
export interface FaultRow {
  topology: string;
  fault: string;
  tried: number;
  fulfilled: number;
  refunded: number;
  lost: number;
  doubled: number;
  wrong: number;
  /** Emails sent a second time with the same Message-ID (see docs/reliability.md). */
  resent: number;
  non2xxWhileUp: number;
  recoverySeconds: number;
  /** Why an order counted as lost, doubled or wrong, naming it (not in the table: for the log and the report). */
  problems: string[];
  /** How many orders of each kind took which path (for the log: did the refunds land during fulfillment?). */
  paths: Record<string, number>;
}

/** Which way each order went, by kind: the evidence that a row exercised what it says it does. */
function pathOf(o: Outcome): string {
  const fulfilled = o.fulfills.some((n) => n > 0);
  switch (o.order.kind) {
    case 'pi_manual':
      return `captured ${o.captures}, released ${o.cancels}`;
    case 'pi_refund_before':
    case 'pi_refund_during':
      return fulfilled ? `fulfilled, then reversed (receipts ${o.emails.receipt})` : 'refunded before anything was fulfilled';
    default:
      return o.status ?? 'no record';
  }
}

export function countRow(topology: string, fault: string, outcomes: Outcome[], played: Played, window: { start: number; end: number }): FaultRow {
  const verdicts = outcomes.map(judge);
  // Up: outside the fault window, with a few seconds' grace for answers already in flight when it began or ended.
  const up = (at: number) => at < window.start - 1000 || at > window.end + 10_000;
  const non2xx = played.deliveries
    .flatMap((d, n) => d.attempts.map((answer, i) => ({ answer, at: d.sentAt[i]!, ...played.delivered[n]! })))
    .filter(({ answer, at }) => up(at) && !(typeof answer === 'number' && answer >= 200 && answer < 300));
  const non2xxWhileUp = non2xx.length;
  const lastSettled = Math.max(...outcomes.map((o) => o.settledAt ?? Date.now()));
  return {
    topology,
    fault,
    tried: outcomes.length,
    fulfilled: verdicts.filter((v) => v.fulfilled).length,
    refunded: verdicts.filter((v) => v.refunded).length,
    lost: verdicts.filter((v) => v.lost).length,
    doubled: verdicts.filter((v) => v.doubled).length,
    wrong: verdicts.filter((v) => v.wrong).length,
    resent: verdicts.reduce((sum, v) => sum + v.resent, 0),
    non2xxWhileUp,
    recoverySeconds: Math.max(0, (lastSettled - window.end) / 1000),
    problems: [
      ...verdicts.flatMap((v) => v.problems),
      ...non2xx.map((n) => `non-2xx ${n.id} (${n.type}): answered ${n.answer} at ${new Date(n.at).toISOString()}, ${((n.at - window.end) / 1000).toFixed(1)} s after the fault ended`),
    ],
    paths: outcomes.reduce<Record<string, number>>((paths, o) => {
      const key = `${o.order.kind}: ${pathOf(o)}`;
      paths[key] = (paths[key] ?? 0) + 1;
      return paths;
    }, {}),
  };
}

/** A read or write that may hit a database being faulted: retried for a minute. */
function retrying<T>(attempt: () => Promise<T>): Promise<T> {
  return untilItWorks(attempt, { patienceMs: 60_000, intervalMs: 500 });
}
