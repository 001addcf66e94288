import { LANDING_WAKE_INTERVAL_MS, type FulfillmentStatus } from '../../workflows/definitions';
import type { AppliedChange, Contact, OrderOutcome, WorldOutcome } from './run-world';
import { RECONCILE_LOOKBACK_MS } from './run-world';
import type { StripeFacts } from './stripe-world';
import { isTaken } from './stripe-world';
import { HOUR } from './world';

/**
 * What must hold at the end of every world, written from the world's story and Stripe's facts
 * only. It shares no code with the product's decisions (workflows/decide.ts, money-back.ts): an
 * oracle that shares the product's logic shares its bugs.
 */
export const INVARIANTS = [
  'paid_fulfilled_once', // 1. a line item of a paid order the product was told of is fulfilled exactly once, less what money back reversed
  'unpaid_nothing_fulfilled', // 2. nothing fulfilled without payment (or refunded before it began); nothing stays fulfilled uncaptured
  'acknowledged_has_effect', // 3. every 2xx answer has its effect in the final record, whenever it came
  'acted_on_promptly', // 3'. ... and already once the product came to rest, before a timer of its own (a re-check) fired
  'emails_once', // 4. one receipt, one email per refund; a payment-failed email only where Stripe says so
  'status_matches_stripe', // 5. the final status is one Stripe's story allows
  'operator_cancel_respected', // 6. nothing more fulfilled after an operator's cancel, until a redrive
  'replays_cleanly', // 7. no workflow task failed, and every history replays with the current code
  'stripe_budget', // 8. Stripe never asked more often than the configured read budget
  'at_rest', // the world ended: no order still worked on after the bounded wait
] as const;

export type Invariant = (typeof INVARIANTS)[number];

export interface Violation {
  invariant: Invariant;
  order: number;
  id: string;
  detail: string;
}

/** The customer is owed the goods: Stripe holds the money, or a completed Checkout had nothing to pay. */
function owed(facts: StripeFacts): boolean {
  if (facts.intent) return facts.intent.status === 'succeeded';
  return facts.session?.status === 'complete' && facts.session.paymentStatus !== 'unpaid';
}

const succeededRefunds = (facts: Pick<StripeFacts, 'refunds'>) => facts.refunds.filter((refund) => refund.status === 'succeeded');
const refundedInFull = (facts: Pick<StripeFacts, 'refunds' | 'amount'>) => succeededRefunds(facts).reduce((sum, refund) => sum + refund.amount, 0) >= facts.amount;
/** Lost, or lost and under appeal: Stripe leaves the money with the customer until an appeal is won. */
const disputeLost = (facts: StripeFacts) => facts.dispute === 'lost' || facts.dispute === 'appeal_needs_response' || facts.dispute === 'appeal_under_review';
/** Everything goes back: refunded in full, or a dispute lost. */
const reversedInFull = (facts: StripeFacts) => refundedInFull(facts) || disputeLost(facts);
const reverses = (facts: StripeFacts, lineItemId: string) => reversedInFull(facts) || succeededRefunds(facts).some((refund) => refund.lineItemId === lineItemId);

/**
 * The one mapping from what Stripe says to the records an order at rest may have, once the product
 * knows it. Written from Stripe's documented states, not from the product's code.
 */
export function statusesFor(facts: StripeFacts): FulfillmentStatus[] {
  if (facts.intent) {
    switch (facts.intent.status) {
      case 'succeeded':
        return afterPayment(facts);
      case 'canceled':
        // Canceled before it was paid; or released by the product after it had started fulfilling.
        return ['payment_failed', 'canceled'];
      case 'requires_capture':
        return []; // known and at rest, an authorization is captured (or released) by now
      default:
        return ['awaiting_payment']; // processing, or declined: the customer may try again
    }
  }
  const session = facts.session!;
  if (session.status === 'expired') return ['expired'];
  if (session.status === 'open') return ['awaiting_checkout'];
  if (session.paymentStatus !== 'unpaid') return session.mode === 'setup' || session.paymentStatus === 'no_payment_required' ? ['fulfilled'] : afterPayment(facts);
  return facts.asyncPaymentFailed ? ['payment_failed'] : ['awaiting_payment'];
}

function afterPayment(facts: StripeFacts): FulfillmentStatus[] {
  if (disputeLost(facts)) return ['dispute_lost'];
  if (facts.dispute === 'needs_response' || facts.dispute === 'under_review') return ['disputed'];
  // Won on appeal: the money is back, but what the loss took back may stay taken back, or (lost before
  // anything shipped) nothing shipped waits for an operator; a product that never saw the loss fulfilled.
  if (facts.dispute === 'won' && facts.disputeAppealed) return ['dispute_lost', 'failed', ...afterRefunds(facts)];
  return afterRefunds(facts);
}

function afterRefunds(facts: StripeFacts): FulfillmentStatus[] {
  if (refundedInFull(facts)) return ['refunded'];
  if (succeededRefunds(facts).length > 0) return ['partially_refunded'];
  return ['fulfilled'];
}

/** Statuses of a run at work: seen before timers, they say the explorer looked too early, not that the product waited. */
const IN_PROGRESS: (FulfillmentStatus | null)[] = ['received', 'fulfilling'];

type Family = 'payment' | 'money_back';
const familyOf = (change: AppliedChange): Family => (/^(refund|dispute)_/.test(change.what) ? 'money_back' : 'payment');
const ok = (status: number) => status >= 200 && status < 300;

/**
 * What the product was told of: for each family of changes (the payment's, money coming back),
 * the last change before a contact that must have made the product read that family at Stripe.
 * Returns indexes into `o.changes` (-1: told nothing of it).
 */
function told(o: OrderOutcome): Record<Family, number> {
  const last = { payment: -1, money_back: -1 };
  const createdAt = o.changes[0]!.atMs;
  for (const contact of o.contacts) {
    const families = familiesTold(o, contact, createdAt);
    // A visit reflects Stripe's state as of at most LANDING_WAKE_INTERVAL_MS before it (the README's promise: a reload storm costs one read per interval).
    const upTo = contact.what === 'visit' ? Math.min(contact.changesBefore, o.changes.filter((c) => c.atMs <= contact.atMs - LANDING_WAKE_INTERVAL_MS).length - 1) : contact.changesBefore;
    for (const family of families) {
      // A failed delayed payment leaves no trace on the session: only its own event tells it (Stripe's design).
      const visible = (change: AppliedChange) => !(o.kind === 'delayed_failure' && change.what === 'settle') || change.event === contact.event;
      const index = lastOf(o.changes, family, upTo, visible);
      last[family] = Math.max(last[family], index);
    }
  }
  return last;
}

function familiesTold(o: OrderOutcome, contact: Contact, createdAt: number): Family[] {
  switch (contact.what) {
    case 'reconcile': {
      // A run lists what was created within its look-back (with an hour's margin), and only orders
      // Stripe lists as such: completed sessions, PaymentIntents paid, authorized or processing.
      // It read Stripe at some moment while it ran: the order counts as listed only if it was in every state meanwhile.
      const meanwhile = o.changes.slice(contact.changesBefore, (contact.changesUntil ?? contact.changesBefore) + 1);
      const listed = meanwhile.every(({ facts }) => (facts.intent ? ['succeeded', 'requires_capture', 'processing'].includes(facts.intent.status) : facts.session?.status === 'complete'));
      return listed && contact.atMs - createdAt < RECONCILE_LOOKBACK_MS - HOUR ? ['payment', 'money_back'] : [];
    }
    case 'redrive':
      return ['payment'];
    case 'visit':
      return ok(contact.status) && o.facts.intent === null ? ['payment'] : [];
    case 'deliver': {
      if (!ok(contact.status)) return [];
      const change = o.changes.find((c) => c.event === contact.event);
      // A second PaymentIntent's event goes to that PaymentIntent's own workflow (checked apart).
      if (change?.what === 'paid_again') return [];
      // A refund or dispute event already acted on is answered as such (`already_settled`), nothing read again:
      // what changed since (a refund returned) is told by its own event, or the reconciler.
      const before = o.contacts.some((c) => c.what === 'deliver' && c.event === contact.event && c.step < contact.step && ok(c.status));
      if (change && familyOf(change) === 'money_back' && before) return [];
      // Stripe's `expired` event starts nothing for a session never recorded (documented): it tells only a record.
      if (change?.what === 'settle' && change.facts.session?.status === 'expired' && o.status === null) return [];
      return [change ? familyOf(change) : 'payment'];
    }
  }
}

/** The index of the last change of `family` among the first `upTo + 1` changes (the creation counts as payment). */
function lastOf(changes: AppliedChange[], family: Family, upTo: number, visible: (change: AppliedChange) => boolean = () => true): number {
  for (let i = Math.min(upTo, changes.length - 1); i >= 0; i--) if (familyOf(changes[i]!) === family && visible(changes[i]!)) return i;
  return -1;
}

/** Every status allowed once the product knew the payment up to change `p` and money back up to `m`: any later combination. */
function allowedStatuses(story: AppliedChange[], p: number, m: number): Set<FulfillmentStatus> {
  const payments = story.map((c, i) => ({ c, i })).filter(({ c, i }) => familyOf(c) === 'payment' && i >= p);
  const moneyBacks = story.map((c, i) => ({ c, i })).filter(({ c, i }) => familyOf(c) === 'money_back' && i >= m);
  const moneyStates: Pick<StripeFacts, 'refunds' | 'dispute' | 'disputeAppealed'>[] = moneyBacks.map(({ c }) => c.facts);
  if (m < 0) moneyStates.unshift({ refunds: [], dispute: null, disputeAppealed: false });
  // Stripe's last word too: money the product itself gave back (a second payment of an order) changed it, not the world.
  moneyStates.push(story.at(-1)!.facts);
  const allowed = new Set<FulfillmentStatus>();
  for (const { c } of payments) for (const money of moneyStates) for (const status of statusesFor({ ...c.facts, refunds: money.refunds, dispute: money.dispute, disputeAppealed: money.disputeAppealed })) allowed.add(status);
  return allowed;
}

export function checkWorld(outcome: WorldOutcome): Violation[] {
  const violations: Violation[] = [];
  const world = (invariant: Invariant, detail: string) => violations.push({ invariant, order: -1, id: '', detail });
  for (const failure of [...outcome.workflowTaskFailures, ...outcome.replayFailures]) world('replays_cleanly', failure);
  if (outcome.overBudget > 0) world('stripe_budget', `${outcome.overBudget} Stripe calls went over the read budget`);
  for (const id of outcome.stillRunning) world('at_rest', `${id} still running at the end`);

  for (const o of outcome.orders) {
    const fail = (invariant: Invariant, detail: string) => violations.push({ invariant, order: o.order, id: o.id, detail });
    const items = o.lineItems.map((item) => ({ ...item, ...(o.ledger[item.id] ?? { fulfilled: 0, net: 0 }) }));
    const canceledForGood = o.canceled !== null && !o.redriven.some((step) => step > o.canceled!.step);
    const knew = told(o);
    // Stripe's last word counts as a state of the story too: the product's own capture changed it, not the world.
    const story: AppliedChange[] = [...o.changes, { step: Infinity, event: -1, what: 'at the end', atMs: Infinity, facts: o.facts }];
    const everOwed = story.some((c) => owed(c.facts));
    const firstContact = Math.min(...o.contacts.map((c) => c.step), Infinity);
    const factsAt = (step: number) => o.changes.filter((c) => c.step < step).at(-1)!.facts;
    const everReversedInFull = o.changes.some((c) => reversedInFull(c.facts));
    // A loss appealed and won gives the money back: an order the product first reads then is owed again.
    const wonOnAppeal = o.facts.dispute === 'won' && o.facts.disputeAppealed;
    const reversedBeforeAnyContact = !wonOnAppeal && (firstContact < Infinity ? reversedInFull(factsAt(firstContact)) : reversedInFull(o.facts));

    // 1.
    const toldOwed = knew.payment >= 0 && o.changes.slice(0, knew.payment + 1).some((c) => owed(c.facts));
    // Two PaymentIntents of one order: judged as the merchant's order, both payments together (1, 2 and the receipt).
    // A first payment whose money came back (a lost dispute, a refund in full) and was then kept again (won
    // on appeal, the refund failed) is a second payment only once the product is told of that change or a later one.
    const keptAgainAt = o.changes.reduce((at, c, i) => (reversedInFull(c.facts) ? i + 1 : at), 0);
    if (o.second) checkPaidTwice(o, o.second, toldOwed && (!everReversedInFull || knew.money_back >= keptAgainAt), outcome.smtpOutage, fail);
    else {
      for (const item of items) if (item.fulfilled > item.quantity) fail('paid_fulfilled_once', `${item.id}: ${item.fulfilled} units fulfilled of ${item.quantity}`);
      if (owed(o.facts) && toldOwed && !canceledForGood) {
        const lastMoneyBack = lastOf(o.changes, 'money_back', o.changes.length - 1);
        for (const item of items) {
          const mustReverse = reverses(o.facts, item.id) && knew.money_back === lastMoneyBack;
          const mayReverse = o.changes.some((c) => reverses(c.facts, item.id));
          const expected = mustReverse ? [0] : mayReverse ? [0, item.quantity] : [item.quantity];
          if (!expected.includes(item.net)) fail('paid_fulfilled_once', `${item.id}: ${item.net} units held of ${item.quantity}, expected ${expected.join(' or ')}`);
          // Money that all went back before fulfillment began may leave nothing fulfilled (the product reads refunds first).
          if (!everReversedInFull && item.fulfilled !== item.quantity) fail('paid_fulfilled_once', `${item.id}: ${item.fulfilled} of ${item.quantity} units ever fulfilled`);
        }
        // A mail server down longer than the receipt's retries lose it (documented); otherwise exactly one.
        if (!everReversedInFull && !outcome.smtpOutage && o.facts.session?.mode !== 'setup' && o.emails.receipts !== 1) fail('paid_fulfilled_once', `paid and told, ${o.emails.receipts} receipts`);
      }

      // 2.
      if (!owed(o.facts)) for (const item of items) if (item.net !== 0) fail('unpaid_nothing_fulfilled', `Stripe says ${describe(o.facts)}, yet ${item.id} holds ${item.net} units`);
      if (!everOwed && o.kind !== 'pi_manual') {
        for (const item of items) if (item.fulfilled > 0) fail('unpaid_nothing_fulfilled', `never paid, yet ${item.id} had ${item.fulfilled} units fulfilled`);
      }
      if (!everOwed && o.emails.receipts > 0) fail('unpaid_nothing_fulfilled', `never paid, yet ${o.emails.receipts} receipts`);
      if (reversedBeforeAnyContact && firstContact < Infinity) {
        for (const item of items) if (item.fulfilled > 0) fail('unpaid_nothing_fulfilled', `refunded (or lost) in full before the product heard of it, yet ${item.id} had ${item.fulfilled} units fulfilled`);
      }
    }

    // 4.
    const receipts = o.emails.receipts + (o.second?.emails.receipts ?? 0);
    if (receipts > 1) fail('emails_once', `${receipts} receipts`);
    const refundEmails = [...Object.entries(o.emails.refunds), ...Object.entries(o.second?.emails.refunds ?? {})];
    const everSucceeded = (refundId: string) =>
      story.some((c) => [...c.facts.refunds, ...(c.facts.secondPayment?.refunds ?? [])].some((r) => r.id === refundId && (r.status === 'succeeded' || r.everSucceeded)));
    for (const [refundId, count] of refundEmails) {
      if (count > 1) fail('emails_once', `${count} emails for refund ${refundId}`);
      if (!everSucceeded(refundId)) fail('emails_once', `an email for refund ${refundId}, which never succeeded`);
    }
    const paymentFailed = o.changes.some((c) => c.facts.asyncPaymentFailed || c.facts.intent?.declined);
    if (o.emails.paymentFailed > 1) fail('emails_once', `${o.emails.paymentFailed} payment-failed emails`);
    if (o.emails.paymentFailed > 0 && !paymentFailed) fail('emails_once', `a payment-failed email, but Stripe never said a payment failed`);

    // 6.
    if (canceledForGood && o.canceled!.fulfilledUnits !== null) {
      const now = items.reduce((sum, item) => sum + item.fulfilled, 0);
      if (now > o.canceled!.fulfilledUnits) fail('operator_cancel_respected', `canceled by an operator at step ${o.canceled!.step} with ${o.canceled!.fulfilledUnits} units fulfilled, ${now} by the end without a redrive`);
    }

    // 3. and 5.
    if (!canceledForGood) {
      const anyState = allowedStatuses(story, -1, -1);
      const sinceTold = allowedStatuses(story, knew.payment, knew.money_back);
      const nothingTold = knew.payment < 0 && knew.money_back < 0;
      if (o.status === null) {
        if (!nothingTold) fail('acknowledged_has_effect', `told (payment up to change ${knew.payment}, money back up to ${knew.money_back}), yet no record`);
      } else if (!anyState.has(o.status)) {
        fail('status_matches_stripe', `the record says ${o.status}; Stripe's story allows ${[...anyState].join(', ') || 'nothing at rest'} (now: ${describe(o.facts)})`);
      } else if (!sinceTold.has(o.status)) {
        fail('acknowledged_has_effect', `the record says ${o.status}, from before what the product was told (payment up to change ${knew.payment}, money back up to ${knew.money_back}): allowed ${[...sinceTold].join(', ') || 'nothing at rest'}`);
      } else if (o.statusBeforeTimers !== o.status && !IN_PROGRESS.includes(o.statusBeforeTimers!) && !sinceTold.has(o.statusBeforeTimers!)) {
        // Right in the end, but only once a re-check timer fired: an event was answered 2xx and then not acted on.
        fail('acted_on_promptly', `the record said ${o.statusBeforeTimers} once the product came to rest, ${o.status} only after its own timers fired (told payment up to change ${knew.payment}, money back up to ${knew.money_back})`);
      }
    }

    if (o.stillRunning) fail('at_rest', `still running at the end, status ${o.status}`);
  }
  return violations;
}

/**
 * An order two PaymentIntents paid (`paid_again`): the merchant ships it once, whichever payment
 * the product heard of first, and keeps one payment at most; the other is refunded in full.
 */
function checkPaidTwice(o: OrderOutcome, second: NonNullable<OrderOutcome['second']>, toldFirst: boolean, smtpOutage: boolean, fail: (invariant: Invariant, detail: string) => void): void {
  const secondFacts = o.facts.secondPayment!;
  const again = o.changes.find((c) => c.what === 'paid_again')!;
  const toldSecond = o.contacts.some(
    (c) => (c.what === 'deliver' && c.event === again.event && ok(c.status)) || (c.what === 'reconcile' && c.step > again.step && c.atMs - again.atMs < RECONCILE_LOOKBACK_MS - HOUR),
  );
  const keptFirst = owed(o.facts) && !reversedInFull(o.facts);
  const keptSecond = secondFacts.status === 'succeeded' && !refundedInFull({ refunds: secondFacts.refunds, amount: o.facts.amount });
  const units = o.lineItems.map((item) => {
    const [first, other] = [o.ledger[item.id], second.ledger[item.id]].map((ledger) => ledger ?? { fulfilled: 0, net: 0 });
    return { ...item, fulfilled: first!.fulfilled + other!.fulfilled, net: first!.net + other!.net };
  });
  for (const item of units) if (item.fulfilled > item.quantity) fail('paid_fulfilled_once', `${item.id}: ${item.fulfilled} units fulfilled of ${item.quantity}, over both payments`);
  if (toldFirst && toldSecond && keptFirst && keptSecond) fail('paid_fulfilled_once', `both payments of the order kept (${o.id}, ${second.id}): the second was not refunded`);
  // One payment kept and nothing else happened to the money: the order ships once, with one receipt.
  const untouched = !o.changes.some((c) => familyOf(c) === 'money_back') && o.canceled === null;
  if (untouched && ((keptFirst && toldFirst) || (keptSecond && toldSecond))) {
    for (const item of units) if (item.net !== item.quantity) fail('paid_fulfilled_once', `${item.id}: ${item.net} units held of ${item.quantity} for the payment kept`);
    const receipts = o.emails.receipts + second.emails.receipts;
    if (!smtpOutage && receipts !== 1) fail('paid_fulfilled_once', `paid and told, ${receipts} receipts over both payments`);
  }
  if (!keptFirst && !keptSecond && untouched) for (const item of units) if (item.net !== 0) fail('unpaid_nothing_fulfilled', `neither payment kept, yet ${item.id} holds ${item.net} units`);
  // The second payment's own record: fulfilled if it is the one kept, refunded if it was given back.
  const allowed: FulfillmentStatus[] = keptSecond ? ['fulfilled'] : ['refunded'];
  if (second.status === null ? toldSecond : !allowed.includes(second.status)) {
    fail('status_matches_stripe', `the second payment ${second.id} is recorded ${second.status}; Stripe says it is ${secondFacts.status}${keptSecond ? '' : ', refunded in full'}`);
  }
  if (second.stillRunning) fail('at_rest', `the second payment ${second.id} still running at the end, status ${second.status}`);
}

function describe(facts: StripeFacts): string {
  const payment = facts.intent ? `PaymentIntent ${facts.intent.status}` : `session ${facts.session!.status}/${facts.session!.paymentStatus}${facts.asyncPaymentFailed ? ' (payment failed)' : ''}`;
  const refunded = succeededRefunds(facts).reduce((sum, refund) => sum + refund.amount, 0);
  return `${payment}${isTaken(facts) && refunded ? `, ${refunded} of ${facts.amount} refunded` : ''}${facts.dispute ? `, dispute ${facts.dispute}` : ''}`;
}
