import fc from 'fast-check';

/**
 * A world: a few orders and, in time order, what Stripe, the customer, operators and faults do to
 * them. It is a plain JSON object, so a counterexample prints, and `runWorld` replays it as it reads.
 */

/** How an order is placed and paid, as Stripe will tell it. */
export type OrderKind =
  // Checkout Sessions
  | 'card' // complete and paid from the start
  | 'delayed_success' // complete and unpaid; the payment succeeds when it settles
  | 'delayed_failure' // complete and unpaid; the payment fails when it settles
  | 'free' // complete, nothing to pay (a 100 % discount)
  | 'setup' // setup mode: complete, nothing to pay, nothing to receipt
  | 'subscription' // subscription mode, paid through its first invoice (no PaymentIntent)
  | 'open_then_paid' // open (the customer is still in Checkout); completes paid when it settles
  | 'open_free' // open and already `no_payment_required`; completes when it settles
  | 'expires' // open; Stripe expires it when it settles
  // Open and already `no_payment_required` (Stripe says so before completion); when it settles the
  // customer completes Checkout, or (its settle not `succeeds`) leaves and Stripe expires it.
  | 'open_setup' // setup mode
  | 'open_trial' // subscription mode with a free trial
  // PaymentIntent orders (the Payment Element, no Checkout)
  | 'pi_automatic' // processing; succeeds when it settles
  | 'pi_manual' // authorized (requires_capture): the product captures once it fulfilled
  | 'pi_declined'; // processing; declined when it settles (the customer may try again)

export const ORDER_KINDS: readonly OrderKind[] = [
  'card',
  'delayed_success',
  'delayed_failure',
  'free',
  'setup',
  'subscription',
  'open_then_paid',
  'open_free',
  'expires',
  'open_setup',
  'open_trial',
  'pi_automatic',
  'pi_manual',
  'pi_declined',
];

export const isPaymentIntentKind = (kind: OrderKind) => kind.startsWith('pi_');
/** Kinds whose story has a `settle` change (a payment that settles later, a session completed or expired). */
export const SETTLES: readonly OrderKind[] = ['delayed_success', 'delayed_failure', 'open_then_paid', 'open_free', 'expires', 'open_setup', 'open_trial', 'pi_automatic', 'pi_declined'];
/** Open sessions whose settle completes them or, not `succeeds`, expires them. */
export const COMPLETES_OR_EXPIRES: readonly OrderKind[] = ['open_setup', 'open_trial'];
/** Kinds paid through a PaymentIntent still processing, which the customer may pay a second time (`paid_again`). */
export const PAYABLE_AGAIN: readonly OrderKind[] = ['pi_automatic', 'pi_declined'];
/** Kinds that take money through a PaymentIntent, so refunds and disputes can follow. */
export const REFUNDABLE: readonly OrderKind[] = ['card', 'delayed_success', 'open_then_paid', 'pi_automatic', 'pi_manual'];

/**
 * One change at Stripe, in the order's own story; each one Stripe acts on creates one event. A
 * change that does not apply when its turn comes (a refund of a payment not taken yet, a Dashboard
 * capture of an authorization already captured) does nothing and sends nothing, as at Stripe.
 */
export type Change =
  | 'settle' // the kind's outcome (see OrderKind)
  | 'refund_full' // the merchant refunds what is left
  | 'refund_partial' // 5.00, naming no line items
  | 'refund_line_item' // the first line item, named in metadata.line_items
  | 'refund_pending' // what is left, pending: it succeeds or fails at `refund_settles`
  | 'refund_settles' // the pending refund succeeds, or a succeeded one fails (returned), by `outcome`
  | 'dispute_opened'
  | 'dispute_won' // an open dispute, or an appeal, is won (charge.dispute.closed)
  | 'dispute_lost' // an open dispute, or an appeal, is lost (charge.dispute.closed)
  | 'dispute_appealed' // a lost dispute appealed (appeal_needs_response), then its evidence submitted (appeal_under_review): charge.dispute.updated
  | 'dispute_prevented' // Stripe's dispute prevention refunds what is left instead of a chargeback: the dispute `prevented`, charge.refunded
  | 'paid_again' // a second PaymentIntent naming the same order succeeds (a second tab, a retried checkout)
  | 'dashboard_capture' // an operator captures the authorization in Stripe's Dashboard
  | 'dashboard_cancel'; // an operator cancels the authorization in Stripe's Dashboard

export type Outage =
  | 'stripe' // Stripe answers 429/5xx to half the calls
  | 'smtp' // the mail server refuses every recipient
  | 'temporal' // Temporal is unreachable from the ingress (and the starter in activities)
  | 'fulfiller' // the merchant's warehouse is down (retryable)
  | 'smtp_slow' // the mail server answers each message only after the email activity's timeout
  | 'stripe_answers_lost' // Stripe applies half the writes but their answer is lost (the connection drops)
  | 'stripe_slow' // Stripe answers every read two seconds late, as things stood when it arrived
  | 'database_slow'; // the next write reaches the app database only after a stall past its activity's timeout (real seconds)

export type Step =
  /** Stripe changes one of the order's objects (its `index`-th change: an event exists for it from now on). */
  | { do: 'stripe'; order: number; change: Change; index: number; succeeds: boolean }
  /** Stripe delivers an event of the order: 0 the first (the order's creation), i the i-th change's. Redeliveries carry the same event. */
  | { do: 'deliver'; order: number; event: number }
  /** The customer opens the landing page (Checkout orders). */
  | { do: 'visit'; order: number }
  /** An operator cancels the order's running workflow in the Temporal UI. */
  | { do: 'cancel'; order: number }
  /** An operator runs `npm run redrive` for the order. */
  | { do: 'redrive'; order: number }
  /** The reconciler runs (as its schedule would). */
  | { do: 'reconcile' }
  /** From `on` until `off`: one of the faults an Outage names. */
  | { do: 'outage'; what: Outage; on: boolean; window: number }
  /** Time passes (Temporal's time, skipped). */
  | { do: 'wait'; ms: number };

export interface World {
  orders: OrderKind[];
  steps: Step[];
}

export const SECOND = 1000;
export const HOUR = 3600 * SECOND;
export const DAY = 24 * HOUR;

// Days reach past the product's 7-day payment deadline; zero (no wait) is first so waits shrink away.
const waitArb = fc.oneof(
  { weight: 4, arbitrary: fc.constant(0) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 59 }).map((s) => s * SECOND) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 23 }).map((h) => h * HOUR) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 9 }).map((d) => d * DAY) },
);

/** The creation's event, the settle's, a second payment's, and at most five more (an appeal's story). */
const MAX_EVENTS = 8;

const MONEY_BACK: readonly Change[] = ['refund_full', 'refund_partial', 'refund_line_item', 'refund_pending', 'refund_settles', 'dispute_opened', 'dispute_won', 'dispute_lost', 'dispute_prevented'];

const changeArb = (change: fc.Arbitrary<Change>) => fc.record({ change, succeeds: fc.boolean() });

// A lost dispute appealed (once or twice: its evidence submitted), then the appeal decided or not yet.
const appealArb = fc
  .tuple(fc.integer({ min: 1, max: 2 }), fc.option(changeArb(fc.constantFrom<Change>('dispute_won', 'dispute_lost'))))
  .map(([appeals, decided]) => [
    { change: 'dispute_opened' as Change, succeeds: true },
    { change: 'dispute_lost' as Change, succeeds: true },
    ...Array.from({ length: appeals }, () => ({ change: 'dispute_appealed' as Change, succeeds: true })),
    ...(decided ? [decided] : []),
  ]);

const orderPlanArb = fc.record({
  kind: fc.constantFrom(...ORDER_KINDS),
  // Whether a settle that may go either way (COMPLETES_OR_EXPIRES) goes the customer's way.
  settles: fc.boolean(),
  // A second PaymentIntent of the same order (PAYABLE_AGAIN kinds), right after the kind's own change.
  paidAgain: fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  // After the kind's own change: money coming back, or (manual capture) the Dashboard.
  later: fc.oneof(
    { weight: 5, arbitrary: fc.array(changeArb(fc.constantFrom(...MONEY_BACK, 'dashboard_capture', 'dashboard_cancel')), { maxLength: 2 }) },
    { weight: 1, arbitrary: appealArb },
  ),
  // Deliveries of each event (the creation's, then each change's): zero to three.
  deliveries: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: MAX_EVENTS, maxLength: MAX_EVENTS }),
  visits: fc.integer({ min: 0, max: 2 }),
  operator: fc.constantFrom('none', 'none', 'none', 'cancel', 'cancel_then_redrive', 'redrive'),
});

type OrderPlan = typeof orderPlanArb extends fc.Arbitrary<infer T> ? T : never;

const worldPlanArb = fc.record({
  orders: fc.array(orderPlanArb, { minLength: 1, maxLength: 3 }),
  reconciles: fc.integer({ min: 0, max: 2 }),
  // A slow mail server or database costs about 30 real seconds where it bites (see run-world.ts): an eighth as often as each other fault.
  outages: fc.array(
    fc.oneof(
      { weight: 40, arbitrary: fc.constantFrom<Outage>('stripe', 'smtp', 'temporal', 'fulfiller', 'stripe_answers_lost', 'stripe_slow') },
      { weight: 2, arbitrary: fc.constantFrom<Outage>('smtp_slow', 'database_slow') },
    ),
    { maxLength: 2 },
  ),
});

type WorldPlan = typeof worldPlanArb extends fc.Arbitrary<infer T> ? T : never;

/** The order's changes at Stripe, in its story's order. */
function changesOf(plan: OrderPlan): { change: Change; succeeds: boolean }[] {
  const changes = SETTLES.includes(plan.kind) ? [{ change: 'settle' as Change, succeeds: !COMPLETES_OR_EXPIRES.includes(plan.kind) || plan.settles }] : [];
  if (plan.paidAgain && PAYABLE_AGAIN.includes(plan.kind)) changes.push({ change: 'paid_again', succeeds: true });
  for (const later of plan.later) {
    const dashboard = later.change === 'dashboard_capture' || later.change === 'dashboard_cancel';
    if (dashboard ? plan.kind === 'pi_manual' : REFUNDABLE.includes(plan.kind)) changes.push(later);
  }
  return changes;
}

/**
 * A token is one step with a random place in time. Steps that must come after others (a delivery
 * after its event exists, a redrive after the cancel, an outage's end after its start) are fixed
 * up as they are laid out: the earlier one is done just before, and not again.
 */
interface Token {
  step: Step;
  priority: number;
  waitMs: number;
}

export function worldOf(plan: WorldPlan, slots: { priority: number; waitMs: number }[]): World {
  const tokens: Token[] = [];
  const add = (step: Step) => tokens.push({ step, ...slots[tokens.length % slots.length]! });
  plan.orders.forEach((order, o) => {
    const changes = changesOf(order);
    changes.forEach(({ change, succeeds }, i) => add({ do: 'stripe', order: o, change, index: i + 1, succeeds }));
    for (let event = 0; event <= changes.length; event++) {
      // An appeal's charge.dispute.updated is no event the endpoint subscribes to: Stripe sends it nothing.
      if (changes[event - 1]?.change === 'dispute_appealed') continue;
      for (let n = 0; n < (order.deliveries[event] ?? 0); n++) add({ do: 'deliver', order: o, event });
    }
    if (!isPaymentIntentKind(order.kind)) for (let n = 0; n < order.visits; n++) add({ do: 'visit', order: o });
    if (order.operator.startsWith('cancel')) add({ do: 'cancel', order: o });
    if (order.operator.endsWith('redrive')) add({ do: 'redrive', order: o });
  });
  for (let n = 0; n < plan.reconciles; n++) add({ do: 'reconcile' });
  plan.outages.forEach((what, window) => {
    add({ do: 'outage', what, on: true, window });
    add({ do: 'outage', what, on: false, window });
  });

  const ordered = tokens.map((token, index) => ({ ...token, index })).sort((a, b) => a.priority - b.priority || a.index - b.index);
  const done = new Set<string>();
  const keyOf = (step: Step) => JSON.stringify(step);
  const steps: Step[] = [];
  const emit = (step: Step) => {
    done.add(keyOf(step));
    steps.push(step);
  };
  const changeSteps = (o: number) => tokens.map((t) => t.step).filter((s): s is Extract<Step, { do: 'stripe' }> => s.do === 'stripe' && s.order === o);
  for (const { step, waitMs } of ordered) {
    if (step.do === 'stripe' || step.do === 'cancel' || (step.do === 'outage' && step.on)) {
      if (done.has(keyOf(step))) continue;
    }
    if (waitMs > 0) steps.push({ do: 'wait', ms: waitMs });
    if (step.do === 'stripe' || step.do === 'deliver') {
      // Stripe's story is in order: a change (or an event) needs the changes before it.
      const upTo = step.do === 'stripe' ? step.index - 1 : step.event;
      for (const earlier of changeSteps(step.order).filter((s) => s.index <= upTo)) if (!done.has(keyOf(earlier))) emit(earlier);
    }
    if (step.do === 'redrive') {
      const cancel: Step = { do: 'cancel', order: step.order };
      if (tokens.some((t) => keyOf(t.step) === keyOf(cancel)) && !done.has(keyOf(cancel))) emit(cancel);
    }
    if (step.do === 'outage' && !step.on) {
      const on: Step = { ...step, on: true };
      if (!done.has(keyOf(on))) emit(on);
    }
    emit(step);
  }
  return { orders: plan.orders.map((order) => order.kind), steps };
}

// One (priority, wait before) slot per token: an order has at most MAX_EVENTS - 1 changes, MAX_EVENTS x 3 deliveries, 2 visits, 2 operator steps.
const SLOTS = 3 * (MAX_EVENTS - 1 + 3 * MAX_EVENTS + 2 + 2) + 2 + 4;
const slotArb = fc.record({ priority: fc.nat({ max: 30 }), waitMs: waitArb });

export const worldArb: fc.Arbitrary<World> = fc
  .tuple(worldPlanArb, fc.array(slotArb, { minLength: SLOTS, maxLength: SLOTS }))
  .map(([plan, slots]) => worldOf(plan, slots));

/** How much happens in a world: what the explorer's table counts and a shrunk world is measured by. */
export function sizeOf(world: World): { orders: number; steps: number; deliveries: number } {
  return {
    orders: world.orders.length,
    steps: world.steps.length,
    deliveries: world.steps.filter((step) => step.do === 'deliver').length,
  };
}
