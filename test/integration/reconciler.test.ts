import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { stockFulfiller, type Fulfiller } from '../../src/fulfillment/fulfiller';
import { paymentIntentOf, type StripeEmulator } from '../../src/stripe/emulator';
import { RECONCILER_SCHEDULE_ID, type ReconcileReport } from '../../workflows/definitions';
import { reconcile } from '../../workflows';
import { keepHistory } from '../helpers/histories';
import { eventually } from '../helpers/eventually';
import { startSmtpServer } from '../helpers/smtp-server';
import { emulatedSession, eventPayload, postWebhook, startProduct, type TestStack } from '../helpers/stack';

let product: Awaited<ReturnType<typeof startProduct>>;
let env: TestWorkflowEnvironment;
let emulator: StripeEmulator;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let stack: TestStack;

// The merchant's fulfiller gives up on a discontinued product until the merchant restocks it.
let discontinuedRestocked = false;
const merchantFulfiller: Fulfiller = {
  async fulfillLineItem(order, tx) {
    if (order.lineItem.productId?.startsWith('prod_discontinued') && !discontinuedRestocked) {
      throw ApplicationFailure.nonRetryable(`${order.lineItem.productId} is discontinued`, 'OutOfStock');
    }
    await stockFulfiller.fulfillLineItem(order, tx);
  },
};

beforeAll(async () => {
  // Hourly, so in the test only triggered runs happen.
  product = await startProduct({ RECONCILE_EVERY: '1 hour' }, { fulfiller: merchantFulfiller });
  ({ env, emulator, smtp, stack } = product);
}, 120_000);

afterAll(async () => {
  await product?.stop();
});

const receiptsFor = (sessionId: string) => smtp.messages.filter((m) => m.parsed.messageId === `<receipt.${sessionId}@shop.test>`);

/** Runs the reconciler now, the way the schedule does, and returns its report. */
async function reconcileNow(pageSize?: number): Promise<ReconcileReport> {
  const workflowId = `reconcile-test-${Date.now()}`;
  const report = await env.client.workflow.execute(reconcile, {
    taskQueue: 'fulfillment',
    workflowId,
    args: [{ lookback: '3 days', stuckAfter: '1 hour', pageSize }],
  });
  if (pageSize) await keepHistory('reconciler-run-of-several-pages', env.client, workflowId);
  return report;
}

async function fulfilledOnce(sessionId: string, lineItems: number): Promise<void> {
  await eventually(
    async () => (await stack.services.store.getRecord(sessionId))?.view.status,
    (status) => status === 'fulfilled',
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  await eventually(async () => receiptsFor(sessionId).length, (n) => n >= 1);
  expect((await stack.services.store.getRecord(sessionId))?.view.status).toBe('fulfilled');
  expect(await stack.services.store.getFulfillments(sessionId)).toHaveLength(lineItems);
  expect(receiptsFor(sessionId)).toHaveLength(1);
}

test('when the worker starts, then the reconciler schedule exists, visible to operators, with the configured interval', async () => {
  const described = await env.client.schedule.getHandle(RECONCILER_SCHEDULE_ID).describe();
  expect(described.spec.intervals).toEqual([expect.objectContaining({ every: 3_600_000 })]);
  expect(described.action).toEqual(expect.objectContaining({ type: 'startWorkflow', workflowType: 'reconcile' }));
  expect(described.state.paused).toBe(false);
});

test('when a paid session’s webhooks never arrive, then the scheduled reconciler fulfills it', async () => {
  const lost = emulatedSession();
  emulator.put(lost);

  await env.client.schedule.getHandle(RECONCILER_SCHEDULE_ID).trigger();

  await fulfilledOnce(lost.id, 2);
  expect((await stack.services.store.getHistory(lost.id)).map((entry) => entry.status)).toEqual(['received', 'fulfilling', 'fulfilled']);
  await keepHistory('started-by-reconciler', env.client, lost.id);
});

test('when a reconciler run races a webhook burst, then nothing is doubled', async () => {
  const sessions = Array.from({ length: 12 }, () => emulatedSession());
  for (const session of sessions) emulator.put(session);

  const deliveries = sessions.flatMap((session) => {
    const payload = eventPayload('checkout.session.completed', session.id);
    return [postWebhook(stack.ingress!.url, payload), postWebhook(stack.ingress!.url, payload)];
  });
  const [report, ...responses] = await Promise.all([reconcileNow(), ...deliveries]);

  expect(responses.map((response) => response.status)).toEqual(responses.map(() => 200));
  expect(report.listed).toBeGreaterThanOrEqual(sessions.length);
  for (const session of sessions) await fulfilledOnce(session.id, 2);
});

test('when more sessions are completed than one page holds, then a run lists them all', async () => {
  const sessions = Array.from({ length: 25 }, () => emulatedSession({ paymentStatus: 'unpaid' }));
  for (const session of sessions) emulator.put(session);
  const listedInEmulator = [...emulator.sessions.values()].filter((session) => session.status === 'complete').length;

  const report = await reconcileNow(10);

  expect(report.listed).toBe(listedInEmulator);
  // Plus one page each of PaymentIntents, refunds and disputes in the window (no open dispute to re-read).
  expect(report.pages).toBe(Math.ceil(listedInEmulator / 10) + 3);
  expect(report.started).toBe(sessions.length); // the new ones; the rest are settled or already known
  for (const session of sessions) {
    await eventually(
      async () => (await stack.services.store.getRecord(session.id))?.view.status,
      (status) => status === 'awaiting_payment',
      { timeoutMs: 30_000, intervalMs: 200 },
    );
  }
});

test('when a waiting session is paid but its success webhook never comes, then the reconciler wakes it and it is fulfilled', async () => {
  const session = emulatedSession({ paymentStatus: 'unpaid' });
  emulator.put(session);
  expect((await postWebhook(stack.ingress!.url, eventPayload('checkout.session.completed', session.id))).status).toBe(200);
  await eventually(
    async () => (await stack.services.store.getRecord(session.id))?.view.status,
    (status) => status === 'awaiting_payment',
  );

  emulator.put({ ...session, paymentStatus: 'paid' }); // paid at Stripe; async_payment_succeeded is lost
  const report = await reconcileNow();

  expect(report.woken).toBeGreaterThanOrEqual(1);
  await fulfilledOnce(session.id, 2);
  await keepHistory('woken-by-reconciler', env.client, session.id);
});

test('when a record is stuck in a transient status and its execution is gone, then the reconciler re-drives it', async () => {
  const session = emulatedSession();
  emulator.put(session);
  // A run that recorded `fulfilling` and was then terminated by an operator, long ago.
  await stack.services.store.recordStatus(
    { sessionId: session.id, status: 'fulfilling', paymentStatus: 'paid', mode: 'payment', currency: 'usd', amountTotal: 4500, lineItems: [], fulfilled: [], receiptSent: false, reason: null, eventIds: [] },
    { runId: 'terminated-run', runStartedAt: 1, seq: 1 },
  );
  await stack.services.db.query(`UPDATE checkout_sessions SET updated_at = now() - interval '2 hours' WHERE session_id = $1`, [session.id]);
  emulator.sessions.delete(session.id); // not in the listing: only the stuck re-drive can find it
  emulator.sessions.set(session.id, { ...session, created: 0 });

  const report = await reconcileNow();

  expect(report.stuckRedriven).toBe(1);
  await fulfilledOnce(session.id, 2);
});

test('when a refund’s and a dispute’s webhooks never arrive, then the reconciler delivers them to their sessions, once', async () => {
  const refunded = emulatedSession();
  const disputed = emulatedSession();
  for (const session of [refunded, disputed]) {
    emulator.put(session);
    await postWebhook(stack.ingress!.url, eventPayload('checkout.session.completed', session.id));
    await fulfilledOnce(session.id, 2);
  }
  emulator.putRefund({ id: `re_${refunded.id.slice(8)}`, paymentIntentId: paymentIntentOf(refunded)!, amount: 4500, currency: 'usd', status: 'succeeded' });
  emulator.putRefund({ id: `re_pending_${disputed.id.slice(8)}`, paymentIntentId: paymentIntentOf(disputed)!, amount: 500, currency: 'usd', status: 'pending' });
  emulator.putDispute({ id: `dp_${disputed.id.slice(8)}`, paymentIntentId: paymentIntentOf(disputed)!, amount: 4500, currency: 'usd', status: 'needs_response' });

  const first = await reconcileNow();
  expect(first.moneyBack).toBe(2); // the pending refund waits until it succeeds
  const statusOf = async (sessionId: string) => (await stack.services.store.getRecord(sessionId))?.view.status;
  await eventually(() => statusOf(refunded.id), (status) => status === 'refunded', { timeoutMs: 30_000 });
  await eventually(() => statusOf(disputed.id), (status) => status === 'disputed', { timeoutMs: 30_000 });

  const second = await reconcileNow();
  expect(second.moneyBack).toBe(0); // acted on: nothing delivered again
  expect(smtp.messages.filter((m) => m.parsed.messageId === `<refund.re_${refunded.id.slice(8)}.${refunded.id}@shop.test>`)).toHaveLength(1);
});

test('when the fulfiller gave up and the merchant fixed the cause, then `npm run redrive` fulfills what is missing, once', async () => {
  const session = emulatedSession();
  session.lineItems[1]!.productId = `prod_discontinued_${session.id}`;
  emulator.put(session);
  expect((await postWebhook(stack.ingress!.url, eventPayload('checkout.session.completed', session.id))).status).toBe(200);
  const failed = await eventually(
    async () => (await stack.services.store.getRecord(session.id))?.view,
    (view) => view?.status === 'failed',
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  expect(failed?.reason).toBe(`OutOfStock: prod_discontinued_${session.id} is discontinued`);
  expect(await stack.services.store.getFulfillments(session.id)).toHaveLength(1); // the T-shirt went out

  discontinuedRestocked = true;
  const { stdout } = await promisify(execFile)('npx', ['tsx', 'scripts/redrive.ts', session.id], {
    // As the stack here runs: payloads in plaintext.
    env: { ...process.env, TEMPORAL_ADDRESS: env.address, TEMPORAL_TASK_QUEUE: 'fulfillment', PAYLOAD_ENCRYPTION: 'off' },
  });

  expect(stdout).toContain(`${session.id}: running`);
  await fulfilledOnce(session.id, 2);
});
