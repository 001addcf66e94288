import fc from 'fast-check';

/**
 * A world: a few Checkout orders and, in time order, what Stripe and the customer do to them. It is
 * a plain JSON object, so a counterexample prints, and `runWorld` replays it as it reads.
 */

/** How an order is paid, as Stripe will tell it. */
export type OrderKind =
  | 'card' // complete and paid from the start
  | 'delayed_success' // complete and unpaid; the payment succeeds at its `settle` step
  | 'delayed_failure'; // complete and unpaid; the payment fails at its `settle` step

export const ORDER_KINDS: readonly OrderKind[] = ['card', 'delayed_success', 'delayed_failure'];

/** The Stripe events of an order: `completed` from the start, `async` (succeeded or failed) once it settled. */
export type EventName = 'completed' | 'async';

export type Step =
  /** Stripe delivers one of the order's events (again, if it did before: same event ID, signed afresh). */
  | { do: 'deliver'; order: number; event: EventName }
  /** Stripe: the order's delayed payment succeeds or fails (its kind says which); its `async` event exists from now on. */
  | { do: 'settle'; order: number }
  /** The customer opens the landing page. */
  | { do: 'visit'; order: number }
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

const orderPlanArb = fc.record({
  kind: fc.constantFrom(...ORDER_KINDS),
  completedDeliveries: fc.integer({ min: 0, max: 3 }),
  asyncDeliveries: fc.integer({ min: 0, max: 3 }),
  visits: fc.integer({ min: 0, max: 2 }),
});

type OrderPlan = typeof orderPlanArb extends fc.Arbitrary<infer T> ? T : never;

const MAX_ORDERS = 3;
// Per order at most 3 + 1 + 3 + 2 steps: one (priority, wait before) slot for each.
const SLOTS = MAX_ORDERS * 9;
const slotArb = fc.record({ priority: fc.nat({ max: 20 }), waitMs: waitArb });

/**
 * Each order's steps in their causal order (`completed` deliveries and the settle in any order,
 * `async` deliveries only after the settle: Stripe cannot send an event about a payment not made),
 * interleaved across orders by random priorities, with a random wait before each step.
 */
export function worldOf(plans: OrderPlan[], slots: { priority: number; waitMs: number }[]): World {
  const tokens: { step: Step; priority: number; waitMs: number; index: number }[] = [];
  plans.forEach((plan, order) => {
    const steps: Step[] = [];
    for (let i = 0; i < plan.completedDeliveries; i++) steps.push({ do: 'deliver', order, event: 'completed' });
    if (plan.kind !== 'card') {
      steps.push({ do: 'settle', order });
      for (let i = 0; i < plan.asyncDeliveries; i++) steps.push({ do: 'deliver', order, event: 'async' });
    }
    for (let i = 0; i < plan.visits; i++) steps.push({ do: 'visit', order });
    for (const step of steps) {
      const slot = slots[tokens.length % slots.length]!;
      tokens.push({ step, ...slot, index: tokens.length });
    }
  });
  const ordered = [...tokens].sort((a, b) => a.priority - b.priority || a.index - b.index);
  // The sort may put an `async` delivery before its settle: the settle then happens just before it.
  const settled = new Set<number>();
  const steps: Step[] = [];
  for (const token of ordered) {
    const { step } = token;
    if (step.do === 'settle' && settled.has(step.order)) continue;
    if (token.waitMs > 0) steps.push({ do: 'wait', ms: token.waitMs });
    if (step.do === 'deliver' && step.event === 'async' && !settled.has(step.order)) {
      settled.add(step.order);
      steps.push({ do: 'settle', order: step.order });
    }
    if (step.do === 'settle') settled.add(step.order);
    steps.push(step);
  }
  return { orders: plans.map((plan) => plan.kind), steps };
}

export const worldArb: fc.Arbitrary<World> = fc
  .tuple(fc.array(orderPlanArb, { minLength: 1, maxLength: MAX_ORDERS }), fc.array(slotArb, { minLength: SLOTS, maxLength: SLOTS }))
  .map(([plans, slots]) => worldOf(plans, slots));

/** How much happens in a world: what the explorer's table counts and a shrunk world is measured by. */
export function sizeOf(world: World): { orders: number; steps: number; deliveries: number } {
  return {
    orders: world.orders.length,
    steps: world.steps.length,
    deliveries: world.steps.filter((step) => step.do === 'deliver').length,
  };
}
