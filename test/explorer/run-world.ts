import { InterceptingCall, Metadata, status as grpcStatus, type Interceptor } from '@grpc/grpc-js';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startStripeEmulator, type EmulatedSession, type StripeEmulator } from '../../src/stripe/emulator';
import { registerSearchAttributes } from '../../src/temporal/search-attributes';
import { isFinalStatus, type FulfillmentStatus } from '../../workflows/definitions';
import { startSmtpServer, type TestSmtpServer } from '../helpers/smtp-server';
import { emulatedSession, eventPayload, postWebhook, startTestStack, type TestStack } from '../helpers/stack';
import { bundleWorkflows, createTimeSkippingEnv } from '../helpers/temporal-env';
import { DAY, type EventName, type OrderKind, type World } from './world';

/** The real product, started once and shared by every world (each world's session IDs are its own). */
export interface Explorer {
  env: TestWorkflowEnvironment;
  emulator: StripeEmulator;
  smtp: TestSmtpServer;
  stack: TestStack;
  stop(): Promise<void>;
}

export async function startExplorer(): Promise<Explorer> {
  const [env, bundle, emulator, smtp] = await Promise.all([
    createTimeSkippingEnv(),
    bundleWorkflows(require.resolve('../../workflows')),
    startStripeEmulator(),
    startSmtpServer(),
  ]);
  try {
    await registerSearchAttributes(env.connection, 'default');
    // A short landing-page wait: the page answers with what is recorded, and worlds stay fast.
    const stack = await startTestStack(
      env,
      { emulatorUrl: emulator.url, smtpUrl: smtp.url, workflowBundle: bundle },
      {
        landingWaitMs: 300,
        temporal: { namespace: 'default', connectionOptions: { address: env.address, interceptors: [noSchedules] } as never },
      },
    );
    return {
      env,
      emulator,
      smtp,
      stack,
      async stop() {
        await stack.stop();
        await Promise.all([env.teardown(), emulator.close(), smtp.stop()]);
      },
    };
  } catch (err) {
    await Promise.all([env.teardown(), emulator.close(), smtp.stop()]);
    throw err;
  }
}

/**
 * The Java time-skipping server has no Schedules (DescribeSchedule is unimplemented), and the
 * worker's start asks for the reconciler's (turned off here): answer NOT_FOUND, as a server
 * without one would.
 */
const noSchedules: Interceptor = (options, nextCall) => {
  if (!options.method_definition.path.endsWith('/DescribeSchedule')) return new InterceptingCall(nextCall(options));
  return new InterceptingCall(nextCall(options), {
    start: (_metadata, listener) => listener.onReceiveStatus({ code: grpcStatus.NOT_FOUND, details: 'no schedules here', metadata: new Metadata() }),
    sendMessage: () => undefined,
    halfClose: () => undefined,
  });
};

/** One delivery or visit and what the product answered (0: no answer), with what Stripe said at that moment. */
export interface Contact {
  step: number;
  what: EventName | 'visit';
  status: number;
  /** Stripe had taken the payment when it was sent. */
  paidThen: boolean;
}

/** What happened to one order: the story as Stripe and the customer played it, and what the product left. */
export interface OrderOutcome {
  order: number;
  kind: OrderKind;
  sessionId: string;
  lineItems: number;
  /** Stripe's final state. */
  paid: boolean;
  paymentFailed: boolean;
  contacts: Contact[];
  /** The product's final record (null: none). */
  status: FulfillmentStatus | null;
  fulfillments: number;
  receipts: number;
  paymentFailedEmails: number;
  /** A workflow of it still ran when the world's bounded wait gave up. */
  stillRunning: boolean;
}

export interface WorldOutcome {
  orders: OrderOutcome[];
  deliveries: number;
  /** Visits the rate limit refused (429): they did not happen. */
  visitsSkipped: number;
}

const ASYNC_EVENT: Record<OrderKind, string | null> = {
  card: null,
  delayed_success: 'checkout.session.async_payment_succeeded',
  delayed_failure: 'checkout.session.async_payment_failed',
};

/** Plays `world` on the shared product, then waits (bounded) until every order is at rest. */
export async function runWorld(explorer: Explorer, world: World, { settleTimeoutMs = 30_000 } = {}): Promise<WorldOutcome> {
  const { env, emulator, stack } = explorer;
  const url = stack.ingress!.url;
  const orders = world.orders.map((kind, order) => {
    const session: EmulatedSession = emulatedSession({ status: 'complete', paymentStatus: kind === 'card' ? 'paid' : 'unpaid' });
    emulator.put(session);
    // An event is one object at Stripe: every redelivery carries the same ID and body.
    const completed = eventPayload('checkout.session.completed', session.id);
    emulator.putEvent(JSON.parse(completed) as Record<string, unknown>);
    return {
      order,
      kind,
      session,
      payloads: { completed, async: null as string | null },
      paid: kind === 'card',
      paymentFailed: false,
      contacts: [] as Contact[],
    };
  });
  let deliveries = 0;
  let visitsSkipped = 0;

  for (const [index, step] of world.steps.entries()) {
    if (step.do === 'wait') {
      await env.sleep(step.ms);
      continue;
    }
    const o = orders[step.order]!;
    if (step.do === 'settle') {
      const type = ASYNC_EVENT[o.kind]!;
      if (o.kind === 'delayed_success') {
        o.session = { ...o.session, paymentStatus: 'paid' };
        emulator.put(o.session);
        o.paid = true;
      } else {
        o.paymentFailed = true;
      }
      o.payloads.async = eventPayload(type, o.session.id);
      emulator.putEvent(JSON.parse(o.payloads.async) as Record<string, unknown>);
    } else if (step.do === 'deliver') {
      const payload = o.payloads[step.event];
      if (!payload) throw new Error(`world step ${index}: the order's ${step.event} event does not exist yet`);
      deliveries++;
      const status = await postWebhook(url, payload, { timeoutMs: 15_000 }).then(
        (answer) => answer.status,
        () => 0,
      );
      o.contacts.push({ step: index, what: step.event, status, paidThen: o.paid });
    } else {
      const status = await fetch(`${url}/after-checkout?session_id=${o.session.id}`, { signal: AbortSignal.timeout(15_000) }).then(
        async (response) => (await response.text(), response.status),
        () => 0,
      );
      if (status === 429) visitsSkipped++;
      else o.contacts.push({ step: index, what: 'visit', status, paidThen: o.paid });
    }
  }

  const stillRunning = await untilAtRest(explorer, orders.map((o) => o.session.id), settleTimeoutMs);
  const { store } = stack.services;
  const outcomes: OrderOutcome[] = [];
  for (const o of orders) {
    const id = o.session.id;
    const mails = (kind: string) => explorer.smtp.messages.filter((m) => m.parsed.messageId === `<${kind}.${id}@shop.test>`).length;
    outcomes.push({
      order: o.order,
      kind: o.kind,
      sessionId: id,
      lineItems: o.session.lineItems.length,
      paid: o.paid,
      paymentFailed: o.paymentFailed,
      contacts: o.contacts,
      status: (await store.getRecord(id))?.view.status ?? null,
      fulfillments: (await store.getFulfillments(id)).length,
      receipts: mails('receipt'),
      paymentFailedEmails: mails('payment_failed'),
      stillRunning: stillRunning.includes(id),
    });
  }
  return { orders: outcomes, deliveries, visitsSkipped };
}

// Statuses an execution passes through while it works (activities in flight): real time finishes them.
const WORKING: readonly FulfillmentStatus[] = ['received', 'fulfilling'];

/**
 * Waits until every order's record is final or no workflow of it runs; returns those still running
 * after `timeoutMs`. While one only waits (for a payment, until its deadline), Temporal's time is
 * skipped a day at a time; while one works, real time passes.
 */
async function untilAtRest(explorer: Explorer, sessionIds: string[], timeoutMs: number): Promise<string[]> {
  const { env, stack } = explorer;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const running: string[] = [];
    let working = false;
    for (const id of sessionIds) {
      const status = (await stack.services.store.getRecord(id))?.view.status;
      if (status && isFinalStatus(status)) continue;
      if (!(await isRunning(env, id))) continue;
      running.push(id);
      if (!status || WORKING.includes(status)) working = true;
    }
    if (running.length === 0 || Date.now() > deadline) return running;
    if (working) await new Promise((resolve) => setTimeout(resolve, 50));
    else await env.sleep(DAY);
  }
}

async function isRunning(env: TestWorkflowEnvironment, workflowId: string): Promise<boolean> {
  try {
    return (await env.client.workflow.getHandle(workflowId).describe()).status.name === 'RUNNING';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}
