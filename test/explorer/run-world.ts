import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { InterceptingCall, Metadata, status as grpcStatus, type Interceptor } from '@grpc/grpc-js';
import { WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Fulfiller } from '../../src/fulfillment/fulfiller';
import type { Database } from '../../src/store';
import { databaseOrderSource } from '../../src/fulfillment/order-source';
import { startStripeEmulator, type StripeEmulator } from '../../src/stripe/emulator';
import { registerSearchAttributes } from '../../src/temporal/search-attributes';
import { FulfillmentStarter } from '../../src/temporal/fulfillment-starter';
import { isFinalStatus, type FulfillmentStatus, type ReconcileReport } from '../../workflows/definitions';
import { reconcile } from '../../workflows';
import { lineItem } from '../fixtures/sessions';
import { startSmtpServer, type TestSmtpServer } from '../helpers/smtp-server';
import { emulatedSession, postWebhook, startTestStack, type TestStack } from '../helpers/stack';
import { bundleWorkflows, createTimeSkippingEnv } from '../helpers/temporal-env';
import { StripeWorld, type StripeFacts, type WorldOrder } from './stripe-world';
import { DAY, isPaymentIntentKind, type Outage, type OrderKind, type World } from './world';

const TASK_QUEUE = 'fulfillment';
/** The product's Stripe read budget (STRIPE_MAX_READS_PER_SECOND); the emulator refuses what goes over it, as Stripe would. */
const READS_PER_SECOND = 20;
/** Waits while an outage lasts are cut to this (Temporal's time). */
const MAX_WAIT_DURING_OUTAGE_MS = 10 * 60_000;
/** Event types the endpoint is not subscribed to (the README lists those it is): Stripe sends it none of them. */
const NOT_SUBSCRIBED = ['charge.dispute.updated'];
/**
 * A slow mail server answers a message this long after it came (Temporal's time): past the email
 * activity's 30 s start-to-close. The test server's clock runs at wall speed while an activity is
 * in flight, so a world whose email is held costs about 30 real seconds.
 */
const SLOW_SMTP_MS = 45_000;
/**
 * How long a slow database stalls a write, in real time: a local activity's timeout (recordStatus:
 * 30 s start-to-close) runs on the worker's clock, not the test server's, so only a stall past it
 * (and past the retry 1 s later) lets the retry and the transitions after it overtake the write.
 */
const SLOW_DATABASE_MS = 40_000;
/**
 * A slow Stripe answers reads this long after they came (real time), with the state on arrival:
 * the steps that follow (a change at Stripe, its event delivered) land while the read is on its
 * way, the window where an event can be taken as answered by a read that predates it.
 */
const STALE_READ_MS = 2_000;
/** The reconciler's look-back, as its schedule passes it. */
export const RECONCILE_LOOKBACK_MS = 3 * DAY;

/** The real product, started once and shared by every world (each world's order IDs are its own). */
export interface Explorer {
  env: TestWorkflowEnvironment;
  replayer: Replayer;
  emulator: StripeEmulator;
  smtp: TestSmtpServer;
  stack: TestStack;
  faults: Record<Outage, boolean>;
  database: SlowDatabase;
  /** Temporal's time minus the wall clock: the emulator's clock follows the test server's. */
  clockOffsetMs: number;
  worlds: number;
  /** What the world in play awaits now, since when (real time): a world that hangs says where. */
  doing: { label: string; since: number };
  stop(): Promise<void>;
}

/** Awaits `promise` as `label`: where a hung world was, if it hangs there. */
function track<T>(explorer: Explorer, label: string, promise: Promise<T>): Promise<T> {
  explorer.doing = { label, since: Date.now() };
  return promise;
}

export async function startExplorer(): Promise<Explorer> {
  const faults: Record<Outage, boolean> = {
    stripe: false,
    smtp: false,
    temporal: false,
    fulfiller: false,
    smtp_slow: false,
    stripe_answers_lost: false,
    stripe_slow: false,
    database_slow: false,
  };
  const clock = { offsetMs: 0 };
  const [env, bundle, emulator, smtp] = await Promise.all([
    createTimeSkippingEnv(),
    bundleWorkflows(require.resolve('../../workflows')),
    startStripeEmulator(0, { readLimitPerSecond: READS_PER_SECOND, clock: () => Date.now() + clock.offsetMs }),
    startSmtpServer(),
  ]);
  try {
    await registerSearchAttributes(env.connection, 'default');
    // A short landing-page wait: the page answers with what is recorded, and worlds stay fast.
    const stack = await startTestStack(
      env,
      { emulatorUrl: emulator.url, smtpUrl: smtp.url, workflowBundle: bundle, env: { STRIPE_MAX_READS_PER_SECOND: String(READS_PER_SECOND) } },
      {
        landingWaitMs: 300,
        fulfiller: ledgerFulfiller(faults),
        temporal: { namespace: 'default', connectionOptions: { address: env.address, interceptors: [noSchedules, unreachableWhile(faults)] } as never },
      },
    );
    // The merchant's side of every fulfillment, written in the product's own transaction: the truth the oracle counts.
    await stack.services.db.query('CREATE TABLE IF NOT EXISTS explorer_ledger (order_id text NOT NULL, line_item_id text NOT NULL, units int NOT NULL, reason text NOT NULL)');
    const database = slowDatabase(stack.services.db);
    const replayer = new Replayer(bundle);
    const explorer: Explorer = {
      env,
      replayer,
      emulator,
      smtp,
      stack,
      faults,
      database,
      get clockOffsetMs() {
        return clock.offsetMs;
      },
      set clockOffsetMs(value: number) {
        clock.offsetMs = value;
      },
      worlds: 0,
      doing: { label: 'nothing yet', since: Date.now() },
      async stop() {
        await Promise.all([stack.stop(), replayer.close()]);
        await Promise.all([env.teardown(), emulator.close(), smtp.stop()]);
      },
    };
    return explorer;
  } catch (err) {
    await Promise.all([env.teardown(), emulator.close(), smtp.stop()]);
    throw err;
  }
}

/**
 * What the product's workers are doing now, in one line: each worker's state and its tasks in
 * flight, and the errors and warnings the product logged since the last look. A world that does
 * not come to rest says this beside its violation: a task held by a worker that is stuck, or a
 * worker that stopped, is the product's or the SDK's, not the world's.
 */
export function workerHealth(explorer: Explorer): string {
  const workers = explorer.stack.workers.map((worker) => {
    const s = worker.getStatus();
    return `${s.runState} activations=${s.numInFlightWorkflowActivations} activities=${s.numInFlightNonLocalActivities} local=${s.numInFlightLocalActivities} cached=${s.numCachedWorkflows}`;
  });
  const entries = explorer.stack.logger.entries;
  const fresh = entries.slice(healthSeen.get(explorer) ?? 0).filter((entry) => entry.level === 'error' || entry.level === 'warn');
  healthSeen.set(explorer, entries.length);
  const last = fresh.at(-1);
  const logged = fresh.length === 0 ? 'none' : `${fresh.length}, last: ${last!.level} ${last!.message} ${JSON.stringify(last!.meta ?? {}).slice(0, 300)}`;
  return `workers [${workers.join(' | ')}], errors and warnings logged since the last look: ${logged}, held: mail ${explorer.smtp.held()} writes ${explorer.database.held()}`;
}
const healthSeen = new WeakMap<Explorer, number>();

/** A merchant's fulfiller that writes what it delivers and takes back to a ledger; while `faults.fulfiller`, its warehouse is unreachable (retryable). */
function ledgerFulfiller(faults: Record<Outage, boolean>): Fulfiller {
  return {
    async fulfillLineItem({ sessionId, lineItem }, tx) {
      if (faults.fulfiller) throw ApplicationFailure.retryable('the warehouse does not answer', 'WarehouseDown');
      await tx.query("INSERT INTO explorer_ledger VALUES ($1, $2, $3, 'fulfill')", [sessionId, lineItem.id, lineItem.quantity ?? 1]);
    },
    async reverseLineItem({ sessionId, lineItem, quantity, reason }, tx) {
      await tx.query('INSERT INTO explorer_ledger VALUES ($1, $2, $3, $4)', [sessionId, lineItem.id, -(quantity ?? 1), reason]);
    },
  };
}

interface SlowDatabase {
  /** From now until `calm()`, the next transaction (one) waits SLOW_DATABASE_MS before it reaches the database. */
  stallNext(): void;
  calm(): void;
  /** Transactions held back now: writes on their way. */
  held(): number;
}

/**
 * The app database, slow for one write at a time, as on a slow network: the stall comes before the
 * statement reaches the database, so it holds no connection (PGlite has one) and a retry of the
 * same write can overtake it.
 */
function slowDatabase(db: Database): SlowDatabase {
  const transaction = db.transaction.bind(db);
  let stall = false;
  let held = 0;
  db.transaction = async (work) => {
    if (stall) {
      stall = false;
      held++;
      await new Promise((resolve) => setTimeout(resolve, SLOW_DATABASE_MS)).finally(() => held--);
    }
    return transaction(work);
  };
  return { stallNext: () => void (stall = true), calm: () => void (stall = false), held: () => held };
}

/**
 * The Java time-skipping server has no Schedules (DescribeSchedule is unimplemented), and the
 * worker's start asks for the reconciler's (turned off here): answer NOT_FOUND, as a server
 * without one would.
 */
const noSchedules: Interceptor = (options, nextCall) => {
  if (!options.method_definition.path.endsWith('/DescribeSchedule')) return new InterceptingCall(nextCall(options));
  return refuse(nextCall(options), grpcStatus.NOT_FOUND, 'no schedules here');
};

/** While `faults.temporal`, the product's client (the ingress, the starter in activities) cannot reach Temporal. */
const unreachableWhile =
  (faults: Record<Outage, boolean>): Interceptor =>
  (options, nextCall) =>
    faults.temporal ? refuse(nextCall(options), grpcStatus.UNAVAILABLE, 'Temporal is unreachable (the explorer’s outage)') : new InterceptingCall(nextCall(options));

function refuse(call: ReturnType<Parameters<Interceptor>[1]>, code: grpcStatus, details: string): InterceptingCall {
  return new InterceptingCall(call, {
    start: (_metadata, listener) => listener.onReceiveStatus({ code, details, metadata: new Metadata() }),
    sendMessage: () => undefined,
    halfClose: () => undefined,
  });
}

/** One contact between the world and the product, and what the product answered (0: no answer). */
export interface Contact {
  step: number;
  what: 'deliver' | 'visit' | 'reconcile' | 'redrive';
  /** The event delivered (its index in the order's story). */
  event?: number;
  status: number;
  /** How many of the order's changes Stripe had made by then. */
  changesBefore: number;
  /** A reconciler run: how many by the time it closed (it read Stripe at some moment in between). */
  changesUntil?: number;
  /** Temporal's time then. */
  atMs: number;
}

/** A change Stripe made (it applied), with what Stripe said right after it. */
export interface AppliedChange {
  step: number;
  /** Its event's index in the order's story (0: the order's creation). */
  event: number;
  what: string;
  atMs: number;
  facts: StripeFacts;
}

/** What happened to one order: the story as Stripe, customer and operators played it, and what the product left. */
export interface OrderOutcome {
  order: number;
  kind: OrderKind;
  id: string;
  lineItems: WorldOrder['lineItems'];
  /** Stripe's story: the order's creation, then every change that applied, with the facts after each. */
  changes: AppliedChange[];
  /** Stripe's final word. */
  facts: StripeFacts;
  contacts: Contact[];
  /** An operator's cancel that reached a running workflow: when, and what the ledger held once that run closed (null: it had not closed yet). */
  canceled: { step: number; fulfilledUnits: number | null } | null;
  /** A redrive that started a run, after a cancel or not. */
  redriven: number[];
  /** The product's final record (null: none). */
  status: FulfillmentStatus | null;
  /** The record once the product had acted on everything it was told, before any timer of its own fired. */
  statusBeforeTimers: FulfillmentStatus | null;
  /** Per line item: units fulfilled ever, and net of reversals (the merchant's ledger). */
  ledger: Record<string, { fulfilled: number; net: number }>;
  emails: { receipts: number; paymentFailed: number; refunds: Record<string, number>; other: number };
  /** A workflow of it still ran when the world's bounded wait gave up. */
  stillRunning: boolean;
  /** The second PaymentIntent of the same order (`paid_again`): its own workflow's record, ledger and emails. */
  second: { id: string; status: FulfillmentStatus | null; ledger: OrderOutcome['ledger']; emails: OrderOutcome['emails']; stillRunning: boolean } | null;
}

export interface WorldOutcome {
  orders: OrderOutcome[];
  deliveries: number;
  /** Visits the rate limit refused (429): they did not happen. */
  visitsSkipped: number;
  faults: number;
  operatorActions: number;
  reconciles: number;
  /** Workflow tasks that failed in the world's histories, and histories that did not replay with this code. */
  workflowTaskFailures: string[];
  replayFailures: string[];
  /** Stripe calls the emulator refused for going over the read budget. */
  overBudget: number;
  /** The mail server was down for a while. */
  smtpOutage: boolean;
  /** Workflows of no one order (routing a refund or dispute) still running at the end. */
  stillRunning: string[];
}

/** A world took longer than its real-time bound: the product (or a server under it) hung on some step. */
export class WorldTimedOut extends Error {}

/** Real time one world may take, steps and settling together; past it the world is reported, not waited for. */
export const WORLD_DEADLINE_MS = 180_000;

/** Plays `world` on the shared product, then waits (bounded) until every order is at rest. */
export async function runWorld(explorer: Explorer, world: World, { settleTimeoutMs = 40_000, deadlineMs = WORLD_DEADLINE_MS } = {}): Promise<WorldOutcome> {
  const { env, emulator, stack } = explorer;
  const number = ++explorer.worlds;
  const worldId = `${number}-${randomBytes(3).toString('hex')}`;
  const deadline = Date.now() + deadlineMs;
  // A world abandoned at its deadline stops at its next step: it must not play on into the next world.
  const onTime = (doing: string) => {
    if (explorer.worlds !== number) throw new WorldTimedOut(`world ${number} was abandoned`);
    if (Date.now() > deadline) throw new WorldTimedOut(`the world took more than ${deadlineMs / 1000} s of real time (at ${doing})`);
  };
  endOutages(explorer);
  // Each world starts past the reconciler's look-back from the last, so a run lists this world's orders only.
  await track(explorer, 'the sleep between worlds', env.sleep(RECONCILE_LOOKBACK_MS + DAY));
  const now = async () => {
    const ms = await track(explorer, "Temporal's time", env.currentTimeMs());
    explorer.clockOffsetMs = ms - Date.now();
    return ms;
  };
  await now();
  const overBudgetBefore = emulator.rateLimited();
  const stripe = new StripeWorld(emulator);
  const url = stack.ingress!.url;
  const orders = await track(explorer, 'placing the orders', Promise.all(world.orders.map((kind, index) => placeOrder(explorer, stripe, index, kind, worldId))));
  const startedAt = await now();
  const outcomes = orders.map(
    (order): Omit<OrderOutcome, 'facts' | 'status' | 'statusBeforeTimers' | 'ledger' | 'emails' | 'stillRunning' | 'second'> => ({
      order: order.index,
      kind: order.kind,
      id: order.id,
      lineItems: order.lineItems,
      changes: [{ step: -1, event: 0, what: 'created', atMs: startedAt, facts: stripe.facts(order) }],
      contacts: [],
      canceled: null,
      redriven: [],
    }),
  );
  const counts = { deliveries: 0, visitsSkipped: 0, faults: 0, operatorActions: 0, reconciles: 0 };
  const reconciles: { step: number; atMs: number; handle: WorkflowHandle<typeof reconcile> }[] = [];
  const routes = new Set<string>();
  const contact = (o: number, step: number, what: Contact['what'], status: number, atMs: number, event?: number) =>
    outcomes[o]!.contacts.push({ step, what, event, status, changesBefore: outcomes[o]!.changes.length - 1, atMs });

  const profile = process.env.EXPLORE_PROFILE ? (label: string, since: number) => console.log(`${String(Date.now() - since).padStart(6)} ms  ${label}`) : null;
  for (const [index, step] of world.steps.entries()) {
    onTime(`step ${index}: ${JSON.stringify(step)}`);
    const stepStarted = Date.now();
    await track(explorer, `step ${index} (${step.do})`, runStep(index, step));
    profile?.(JSON.stringify(step), stepStarted);
  }
  async function runStep(index: number, step: World['steps'][number]): Promise<void> {
    if (step.do === 'wait') {
      // An outage lasts a while, not days: each retry while it lasts is real work on this machine.
      const during = Object.values(explorer.faults).some(Boolean);
      await track(explorer, `step ${index}: sleeping ${step.ms} ms`, env.sleep(during ? Math.min(step.ms, MAX_WAIT_DURING_OUTAGE_MS) : step.ms));
      return;
    }
    const atMs = await now();
    for (const order of orders) {
      // Stripe's own clock: an authorization nobody captured lapses (its event is not delivered: the world did not plan it).
      if (stripe.lapse(order, atMs)) outcomes[order.index]!.changes.push({ step: index, event: -1, what: 'lapsed', atMs, facts: stripe.facts(order) });
    }
    switch (step.do) {
      case 'stripe': {
        const order = orders[step.order]!;
        const payload = stripe.apply(order, step.change, step.succeeds);
        if (payload) {
          order.events[step.index] = payload;
          outcomes[step.order]!.changes.push({ step: index, event: step.index, what: step.change, atMs, facts: stripe.facts(order) });
        }
        break;
      }
      case 'deliver': {
        const payload = orders[step.order]!.events[step.event];
        // The change did not apply (or an open session has no creation event, or the endpoint does not subscribe to it): Stripe sends nothing.
        if (!payload || NOT_SUBSCRIBED.includes((JSON.parse(payload) as { type: string }).type)) break;
        counts.deliveries++;
        const status = await track(explorer, `step ${index}: delivering`, postWebhook(url, payload, { timeoutMs: 15_000 })).then(
          (answer) => answer.status,
          () => 0,
        );
        contact(step.order, index, 'deliver', status, atMs, step.event);
        // A refund or dispute of a payment our records do not know yet is routed by a workflow of its own.
        const event = JSON.parse(payload) as { id: string; type: string };
        if (/^(charge\.refunded|refund\.|charge\.dispute\.)/.test(event.type)) routes.add(`route-${event.id}`);
        break;
      }
      case 'visit': {
        const id = orders[step.order]!.id;
        const status = await track(
          explorer,
          `step ${index}: visiting`,
          fetch(`${url}/after-checkout?session_id=${id}`, { signal: AbortSignal.timeout(15_000) }).then(
            async (response) => (await response.text(), response.status),
            () => 0,
          ),
        );
        if (status === 429) counts.visitsSkipped++;
        else contact(step.order, index, 'visit', status, atMs);
        break;
      }
      case 'cancel': {
        counts.operatorActions++;
        const id = orders[step.order]!.id;
        if (!(await track(explorer, `step ${index}: is it running`, isRunning(env, id)))) break;
        await track(explorer, `step ${index}: canceling`, env.client.workflow.getHandle(id).cancel());
        // What was fulfilled once that run closed: nothing may be added until an operator redrives.
        const closed = await track(explorer, `step ${index}: until the canceled run closed`, untilClosed(env, id, 5_000));
        outcomes[step.order]!.canceled = { step: index, fulfilledUnits: closed ? sum(await ledgerOf(explorer, id), 'fulfilled') : null };
        break;
      }
      case 'redrive': {
        counts.operatorActions++;
        const id = orders[step.order]!.id;
        // As `npm run redrive` does it: a running execution is left alone.
        const starter = new FulfillmentStarter(env.client, { getRecord: async () => null }, { taskQueue: TASK_QUEUE, paymentDeadline: '7 days', timeoutMs: 10_000, redrive: true });
        if (await track(explorer, `step ${index}: is it running`, starter.isRunning(id))) break;
        await track(explorer, `step ${index}: redriving`, starter.ensureStarted(id));
        outcomes[step.order]!.redriven.push(index);
        contact(step.order, index, 'redrive', 200, atMs);
        break;
      }
      case 'reconcile': {
        counts.reconciles++;
        // Started, not awaited: it may need an outage to end first. It counts for what Stripe said before it started.
        const handle = await track(explorer, `step ${index}: starting a reconciler run`, env.client.workflow.start(reconcile, {
          taskQueue: TASK_QUEUE,
          workflowId: `reconcile-${worldId}-${index}`,
          args: [{ lookback: `${RECONCILE_LOOKBACK_MS / DAY} days`, stuckAfter: '1 hour' }],
        }));
        reconciles.push({ step: index, atMs, handle });
        break;
      }
      case 'outage': {
        if (step.on) counts.faults++;
        setOutage(explorer, step.what, step.on, step.window);
        break;
      }
    }
  }
  endOutages(explorer);

  // A reconciler run that completed with every phase tells the product of every order Stripe listed to it.
  for (const run of reconciles) {
    onTime(`the reconciler run of step ${run.step}`);
    const report = await track(explorer, `the reconciler run of step ${run.step}`, withTimeout(run.handle.result(), settleTimeoutMs)).catch(() => null);
    if (!report || (report as ReconcileReport).failedPhases?.length) continue;
    // It read Stripe at some moment between its start and its close: what Stripe said then is any state in between.
    const closedAtMs = (await track(explorer, `describing the reconciler run of step ${run.step}`, run.handle.describe())).closeTime?.getTime() ?? Infinity;
    for (const o of outcomes) {
      contact(o.order, run.step, 'reconcile', 200, run.atMs);
      Object.assign(o.contacts.at(-1)!, { changesBefore: o.changes.filter((c) => c.step < run.step).length - 1, changesUntil: o.changes.filter((c) => c.step < run.step || c.atMs <= closedAtMs).length - 1 });
    }
  }

  const ids = orders.flatMap((order) => (order.secondPaymentIntentId ? [order.id, order.secondPaymentIntentId] : [order.id]));
  const restStarted = Date.now();
  const restBy = () => Math.min(settleTimeoutMs, Math.max(0, deadline - Date.now()));
  // What the records say once the product has acted on everything it was told, before any timer of its own fired.
  await untilAtRest(explorer, [...ids, ...routes], restBy(), { timers: false });
  const promptly = await track(explorer, 'reading the records', Promise.all(orders.map(async (order) => (await stack.services.store.getRecord(order.id))?.view.status ?? null)));
  if (process.env.EXPLORE_DUMP) await track(explorer, 'dumping the histories', dumpHistories(explorer, path.join(process.env.EXPLORE_DUMP, 'latest'), ids, world));
  const stillRunning = await untilAtRest(explorer, [...ids, ...routes], restBy());
  profile?.('until at rest', restStarted);
  const { store } = stack.services;
  const results: OrderOutcome[] = [];
  const secondOf = async (id: string | null): Promise<OrderOutcome['second']> =>
    id === null
      ? null
      : { id, status: (await store.getRecord(id))?.view.status ?? null, ledger: await ledgerOf(explorer, id), emails: emailsOf(explorer, id), stillRunning: stillRunning.includes(id) };
  for (const [i, order] of orders.entries()) {
    results.push({
      ...outcomes[i]!,
      facts: stripe.facts(order),
      status: (await store.getRecord(order.id))?.view.status ?? null,
      ledger: await ledgerOf(explorer, order.id),
      emails: emailsOf(explorer, order.id),
      stillRunning: stillRunning.includes(order.id),
      statusBeforeTimers: promptly[i]!,
      second: await secondOf(order.secondPaymentIntentId),
    });
  }
  explorer.doing = { label: 'reading the outcome', since: Date.now() };
  const histories = await track(explorer, 'fetching the histories', historiesOf(env, [...ids, ...routes, ...reconciles.map((run) => run.handle.workflowId)]));
  // Housekeeping, once the world is judged: the reconciler re-reads every dispute our records hold
  // open, whatever its age, so a world's open disputes would cost every later world's runs.
  await track(explorer, 'forgetting open disputes', stack.services.db.query(`DELETE FROM checkout_sessions WHERE session_id = ANY($1) AND view->'disputes' @> '[{"outcome":"open"}]'`, [ids]));
  const replayFailures = await track(explorer, 'replaying the histories', explorer.replayer.failures(histories.histories));
  return {
    orders: results,
    ...counts,
    workflowTaskFailures: histories.taskFailures,
    replayFailures,
    overBudget: emulator.rateLimited() - overBudgetBefore,
    stillRunning: stillRunning.filter((id) => !ids.includes(id)),
    smtpOutage: world.steps.some((step) => step.do === 'outage' && step.what === 'smtp'),
  };
}

async function placeOrder(explorer: Explorer, stripe: StripeWorld, index: number, kind: OrderKind, worldId: string): Promise<WorldOrder> {
  const { stack } = explorer;
  if (!isPaymentIntentKind(kind)) {
    const open = ['open_then_paid', 'open_free', 'expires', 'open_setup', 'open_trial'].includes(kind);
    const mode = kind === 'setup' || kind === 'open_setup' ? 'setup' : kind === 'subscription' || kind === 'open_trial' ? 'subscription' : 'payment';
    // A trial subscription, like setup mode, has nothing to pay now: Stripe says so while the session is still open.
    const paymentStatus = kind === 'card' || kind === 'subscription' ? 'paid' : ['free', 'setup', 'open_free', 'open_setup', 'open_trial'].includes(kind) ? 'no_payment_required' : 'unpaid';
    const session = emulatedSession({ status: open ? 'open' : 'complete', paymentStatus, mode, ...(kind === 'free' || kind === 'open_free' ? { paymentIntentId: null } : {}) });
    return stripe.placeSession(index, kind, session);
  }
  // An order paid by PaymentIntent, as a merchant places one: the order in the app's `orders` table, its PaymentIntent naming it.
  const id = `${worldId.replace('-', '')}${index}${randomBytes(4).toString('hex')}`;
  const items = ['prod_mug', 'prod_tea'].map((product, n) =>
    lineItem({ id: `li_${id}_${n}`, productId: `${product}_${id}`, description: product.slice(5), quantity: 1, amountSubtotal: 1500, amountTotal: 1500, currency: 'eur' }),
  );
  const orderId = `order_${id}`;
  await databaseOrderSource(stack.services.db).saveOrder({ orderId, currency: 'eur', amountTotal: 3000, lineItems: items, contact: { email: `buyer${id}@example.org`, name: 'Buyer' } });
  const nowSeconds = Math.floor((Date.now() + explorer.clockOffsetMs) / 1000);
  const manual = kind === 'pi_manual';
  return stripe.placePaymentIntent(
    index,
    kind,
    {
      id: `pi_${id}`,
      amount: 3000,
      currency: 'eur',
      status: manual ? 'requires_capture' : 'processing',
      captureMethod: manual ? 'manual' : 'automatic',
      captureBefore: nowSeconds + 7 * 86_400,
      metadata: { order_id: orderId },
    },
    items.map((item) => ({ id: item.id, quantity: 1, amount: 1500 })),
  );
}

/** Every fault off: at a world's start (one abandoned at its deadline may have left some on) and once its steps are played. */
function endOutages(explorer: Explorer): void {
  for (const what of Object.keys(explorer.faults) as Outage[]) setOutage(explorer, what, false, 0);
}

/** `window` seeds which Stripe calls fail, so a world replays alike as far as its calls come in the same order. */
function setOutage(explorer: Explorer, what: Outage, on: boolean, window: number): void {
  const { faults, emulator, smtp, env, database } = explorer;
  faults[what] = on;
  if (what === 'database_slow') (on ? database.stallNext : database.calm)();
  if (what === 'stripe' || what === 'stripe_answers_lost' || what === 'stripe_slow') {
    emulator.trouble({
      ...(faults.stripe ? { failureRate: 0.5, statuses: [429, 500, 503] } : {}),
      ...(faults.stripe_answers_lost ? { lostAnswerRate: 0.5 } : {}),
      ...(faults.stripe_slow ? { staleReadMs: STALE_READ_MS } : {}),
      random: seeded(Math.imul(window + 1, 0x9e3779b9)),
    });
  }
  if (what === 'smtp') smtp.refuseRecipients(on);
  if (what === 'smtp_slow') smtp.holdEach(on ? () => untilTemporalTimePasses(env, SLOW_SMTP_MS) : null);
}

/** Numbers in [0, 1) from `seed` (mulberry32): the same seed, the same sequence. Small seeds start alike: spread them first. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Resolves once `ms` of Temporal's time passed (it passes when skipped: see untilAtRest). */
async function untilTemporalTimePasses(env: TestWorkflowEnvironment, ms: number): Promise<void> {
  const until = (await env.currentTimeMs()) + ms;
  while ((await env.currentTimeMs()) < until) await new Promise((resolve) => setTimeout(resolve, 50));
}

async function ledgerOf(explorer: Explorer, orderId: string): Promise<OrderOutcome['ledger']> {
  const rows = await explorer.stack.services.db.query<{ line_item_id: string; fulfilled: number; net: number }>(
    `SELECT line_item_id, sum(greatest(units, 0))::int AS fulfilled, sum(units)::int AS net FROM explorer_ledger WHERE order_id = $1 GROUP BY line_item_id`,
    [orderId],
  );
  return Object.fromEntries(rows.map((row) => [row.line_item_id, { fulfilled: row.fulfilled, net: row.net }]));
}

const sum = (ledger: OrderOutcome['ledger'], field: 'fulfilled' | 'net') => Object.values(ledger).reduce((total, item) => total + item[field], 0);

function emailsOf(explorer: Explorer, orderId: string): OrderOutcome['emails'] {
  const emails: OrderOutcome['emails'] = { receipts: 0, paymentFailed: 0, refunds: {}, other: 0 };
  for (const message of explorer.smtp.messages) {
    const messageId = message.parsed.messageId ?? '';
    if (!messageId.includes(`.${orderId}@`)) continue;
    const kind = messageId.slice(1, messageId.indexOf('.'));
    if (kind === 'receipt') emails.receipts++;
    else if (kind === 'payment_failed') emails.paymentFailed++;
    else if (kind === 'refund') {
      const refundId = messageId.slice('<refund.'.length, messageId.indexOf(`.${orderId}@`));
      emails.refunds[refundId] = (emails.refunds[refundId] ?? 0) + 1;
    } else emails.other++;
  }
  return emails;
}

/**
 * Waits until no workflow of the world runs, or each one left only waits with a final record (a
 * settled order listening for money back); returns those still running after `timeoutMs` of
 * real time. Real time passes while an activity runs or a workflow task is due; Temporal's time is
 * skipped to an activity's next retry, and a day at a time while workflows only wait (for a
 * payment, until a deadline). With `timers: false` it returns as soon as they only wait: before
 * any timer of the product's own (a re-check, a deadline) would fire.
 */
async function untilAtRest(explorer: Explorer, ids: string[], timeoutMs: number, { timers = true } = {}): Promise<string[]> {
  const { env, stack } = explorer;
  const deadline = Date.now() + timeoutMs;
  let lastSkip = Date.now();
  let quiet = 0;
  for (;;) {
    const running: string[] = [];
    let working = false;
    let waiting = false;
    let nextRetryMs = Infinity;
    const now = await track(explorer, "at rest? Temporal's time", env.currentTimeMs());
    for (const id of ids) {
      const described = await track(explorer, `at rest? describing ${id}`, describe(env, id));
      if (described?.workflowExecutionInfo?.status !== RUNNING) continue;
      running.push(id);
      const events = (await track(explorer, `at rest? the history of ${id}`, env.client.workflow.getHandle(id).fetchHistory())).events ?? [];
      const pending = described.pendingActivities ?? [];
      // An activity waiting for a retry not yet due is no work: time is skipped to it. One queued or running is.
      const retries = pending.map((activity) => nextAttemptAt(activity, events)).filter((at): at is number => at !== undefined && at > now);
      // A workflow task due or in flight (local activities run inside one) is work; the test server does not always say so in describe.
      const lastEvent = Number(events.at(-1)?.eventType);
      const taskDue = Boolean(described.pendingWorkflowTask) || lastEvent === WORKFLOW_TASK_SCHEDULED || lastEvent === WORKFLOW_TASK_STARTED;
      // Describe can lag the history (seen: an activity scheduled in the history, none pending in describe): the history counts too.
      const scheduled = openActivities(events);
      if (taskDue || pending.length > retries.length || scheduled > pending.length) working = true;
      for (const at of retries) nextRetryMs = Math.min(nextRetryMs, at - now);
      if (pending.length === 0 && scheduled === 0 && !taskDue) {
        const status = (await stack.services.store.getRecord(id))?.view.status;
        if (!status || !isFinalStatus(status)) waiting = true;
        // Settled, only listening: at rest; unless the workflow task that was open as history was read
        // scheduled an activity meanwhile (`failed`, then money back settled), which a second look shows.
        else if ((await describe(env, id))?.pendingActivities?.length) working = true;
        else running.pop();
      }
    }
    // A message a slow mail server holds, or a write a slow database holds, is an activity still running, whatever Temporal thinks of its attempt.
    const mailHeld = explorer.smtp.held() > 0;
    if (mailHeld || explorer.database.held() > 0) working = true;
    if ((running.length === 0 && !working) || Date.now() > deadline) return running;
    // Twice in a row, a moment apart: an event just delivered may not show in the history yet.
    quiet = !working && nextRetryMs === Infinity ? quiet + 1 : 0;
    if (!timers && quiet >= 2) return running;
    if (!timers && quiet === 1) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    // A slow mail server answers on Temporal's clock: once no activity runs (the test server's clock then skips), skip quickly to its answer.
    if (working && Date.now() - lastSkip > (mailHeld ? 100 : 2_000)) {
      // The test server's clock stands still unless skipped: let an attempt's timeouts (heartbeat, start-to-close) come as they would.
      await track(explorer, 'at rest? skipping 5 s', env.sleep(5_000));
      lastSkip = Date.now();
    } else if (working) await new Promise((resolve) => setTimeout(resolve, 50));
    // Skipped to the next retry, a minute at a time: the test server does not skip time while a retried task waits for the worker, so a due time read too late would be slept in real time.
    else if (nextRetryMs < Infinity) await track(explorer, `at rest? skipping to a retry in ${nextRetryMs} ms`, env.sleep(Math.min(Math.max(1, nextRetryMs + 100), 60_000)));
    else if (waiting) await track(explorer, 'at rest? skipping a day', env.sleep(DAY));
  }
}

/**
 * When an activity between attempts starts its next one (ms, Temporal time), or undefined when it is
 * not between attempts (its first attempt not yet taken, or an attempt running). A real server says
 * so (SCHEDULED, nextAttemptScheduleTime); the Java test server does not: once any attempt started,
 * describe says STARTED for good (it reads "an attempt ever started", StateMachines' startedEvent,
 * which a retry keeps), and it never sets nextAttemptScheduleTime for activities. There an attempt
 * that ended after the last one started (lastAttemptCompleteTime, set when an attempt fails or times
 * out into a retry) means the next one waits for its retry timer: due its backoff after that end,
 * the failure's nextRetryDelay or the activity's retry policy as the test server computes it
 * (TestServiceRetryState.getBackoffIntervalInSeconds: initial x coefficient^(failed attempt - 1),
 * capped at the maximum interval).
 */
function nextAttemptAt(activity: PendingActivity, events: HistoryEvent[]): number | undefined {
  if (activity.nextAttemptScheduleTime) return tsMs(activity.nextAttemptScheduleTime);
  const ended = activity.lastAttemptCompleteTime ? tsMs(activity.lastAttemptCompleteTime) : 0;
  const started = activity.lastStartedTime ? tsMs(activity.lastStartedTime) : 0;
  if (!ended || !started || ended < started || !activity.attempt || activity.attempt < 2) return undefined;
  const delay = activity.lastFailure?.applicationFailureInfo?.nextRetryDelay;
  if (delay) return ended + durationMs(delay);
  const policy = [...events].reverse().find((e) => e.activityTaskScheduledEventAttributes?.activityId === activity.activityId)?.activityTaskScheduledEventAttributes?.retryPolicy;
  if (!policy) return undefined;
  const backoff = durationMs(policy.initialInterval) * (policy.backoffCoefficient || 2) ** (activity.attempt - 2);
  const cap = durationMs(policy.maximumInterval);
  return ended + (cap > 0 ? Math.min(backoff, cap) : backoff);
}

/** Activities the history scheduled and has not closed (completed, failed, timed out or canceled). */
function openActivities(events: HistoryEvent[]): number {
  const open = new Set<string>();
  for (const event of events) {
    if (event.activityTaskScheduledEventAttributes) open.add(String(event.eventId));
    const closed =
      event.activityTaskCompletedEventAttributes ?? event.activityTaskFailedEventAttributes ?? event.activityTaskTimedOutEventAttributes ?? event.activityTaskCanceledEventAttributes;
    if (closed) open.delete(String(closed.scheduledEventId));
  }
  return open.size;
}

type PendingActivity = NonNullable<NonNullable<Awaited<ReturnType<typeof describe>>>['pendingActivities']>[number];
type HistoryEvent = NonNullable<History['events']>[number];
const durationMs = (d: { seconds?: unknown; nanos?: number | null } | null | undefined) => (d ? tsMs(d) : 0);

// The client hands enums over by name.
const RUNNING = 1; // WORKFLOW_EXECUTION_STATUS_RUNNING
const tsMs = (ts: { seconds?: unknown; nanos?: number | null }) => Number(ts.seconds ?? 0) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6);

const WORKFLOW_TASK_SCHEDULED = 5;
const WORKFLOW_TASK_STARTED = 6;

async function describe(env: TestWorkflowEnvironment, workflowId: string) {
  try {
    return (await env.client.workflow.getHandle(workflowId).describe()).raw;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
}

async function isRunning(env: TestWorkflowEnvironment, workflowId: string): Promise<boolean> {
  return (await describe(env, workflowId))?.workflowExecutionInfo?.status === RUNNING;
}

async function untilClosed(env: TestWorkflowEnvironment, workflowId: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await isRunning(env, workflowId))) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

type History = Awaited<ReturnType<WorkflowHandle['fetchHistory']>>;

/** The latest run's history of each workflow, and the workflow tasks that failed in them. */
async function historiesOf(env: TestWorkflowEnvironment, ids: string[]): Promise<{ histories: { workflowId: string; history: History }[]; taskFailures: string[] }> {
  const histories: { workflowId: string; history: History }[] = [];
  const taskFailures: string[] = [];
  for (const workflowId of ids) {
    const history = await env.client.workflow
      .getHandle(workflowId)
      .fetchHistory()
      .catch((err: unknown) => {
        // Never started (no event got through): the test server answers NOT_FOUND without the SDK's error class.
        if (err instanceof WorkflowNotFoundError || (err as { code?: number }).code === grpcStatus.NOT_FOUND) return null;
        throw err;
      });
    if (!history) continue;
    histories.push({ workflowId, history });
    for (const event of history.events ?? []) {
      // A task the server refused because new events arrived meanwhile (UnhandledCommand) is Temporal at work,
      // not a failure: only a task that failed in our code (an exception, nondeterminism) carries a failure.
      const failed = event.workflowTaskFailedEventAttributes;
      if (failed?.failure?.message) taskFailures.push(`${workflowId}: ${failed.failure.message}`);
    }
  }
  return { histories, taskFailures };
}

/**
 * The SDK's replayer, started once for every world: each history is replayed with the current
 * workflow code as it is handed over, and any nondeterminism is named.
 */
export class Replayer {
  private readonly queue: { workflowId: string; history: History }[] = [];
  private wake: (() => void) | null = null;
  private closed = false;
  private readonly results: AsyncIterableIterator<{ workflowId: string; error?: Error }>;

  constructor(bundle: WorkflowBundleWithSourceMap) {
    this.results = Worker.runReplayHistories({ workflowBundle: bundle, replayName: 'explorer' }, this.histories());
  }

  private async *histories(): AsyncGenerator<{ workflowId: string; history: History }> {
    for (;;) {
      while (this.queue.length > 0) yield this.queue.shift()!;
      if (this.closed) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  async failures(histories: { workflowId: string; history: History }[]): Promise<string[]> {
    const failures: string[] = [];
    this.queue.push(...histories);
    this.wake?.();
    for (let i = 0; i < histories.length; i++) {
      const { value } = await this.results.next();
      if (value?.error) failures.push(`${value.workflowId}: ${value.error.message}`);
    }
    return failures;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    for await (const _ of this.results);
  }
}

export function withTimeout<T>(promise: Promise<T>, ms: number, error = new Error('timed out')): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(error), ms)))]).finally(() => clearTimeout(timer));
}

/** Debugging (EXPLORE_DUMP=dir): every run's history of the world's orders as they stood at rest, before the product's own timers. */
async function dumpHistories(explorer: Explorer, dir: string, ids: string[], world: World): Promise<void> {
  const { History } = temporal.api.history.v1;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'world.json'), JSON.stringify(world));
  for (const id of ids) {
    const described = await describe(explorer.env, id);
    if (!described) continue; // never started
    fs.writeFileSync(path.join(dir, `${id}.describe.json`), JSON.stringify({ at: await explorer.env.currentTimeMs(), pendingActivities: described?.pendingActivities, pendingWorkflowTask: described?.pendingWorkflowTask, status: described?.workflowExecutionInfo?.status }, null, 1));
    const history = await explorer.env.client.workflow.getHandle(id).fetchHistory();
    fs.writeFileSync(path.join(dir, `${id}.json`), JSON.stringify(History.toObject(History.fromObject(history), { longs: String, enums: String, bytes: String }), null, 1));
  }
}
