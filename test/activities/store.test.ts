import { migrate, openDatabase, FulfillmentStore, type Database } from '../../src/store';
import type { EmailClaim } from '../../src/store/fulfillment-store';
import { openPostgres } from '../../src/store/postgres';
import { stockFulfiller } from '../../src/fulfillment/fulfiller';
import { databaseOrderSource } from '../../src/fulfillment/order-source';
import { receivedView, type FulfillmentView } from '../../workflows/definitions';
import { lineItem, newSessionId } from '../fixtures/sessions';
import { startPostgresServer } from '../helpers/postgres-server';
import { DatabaseRateLimitStore } from '../../src/ingress/rate-limit-store';
import { createSessionCheck } from '../../src/ingress/session-check';
import { createMetrics } from '../../src/metrics';
import { startStripeEmulator } from '../../src/stripe/emulator';
import { RequestBudgetExhausted, sharedRequestBudget } from '../../src/stripe/request-budget';
import { createStripeClient, parseStripeApiBase } from '../../src/stripe/sessions';

function view(sessionId: string, overrides: Partial<FulfillmentView> = {}): FulfillmentView {
  return { ...receivedView(sessionId), paymentStatus: 'paid', currency: 'usd', amountTotal: 4500, ...overrides };
}

// Runs are ordered by start time; writes within a run by sequence.
const RUN_1 = { runId: 'run-1', runStartedAt: 1_000 };
const RUN_2 = { runId: 'run-2', runStartedAt: 2_000 };

// The same behaviour on both databases: the embedded default and a real PostgreSQL server.
describe.each([
  ['PGlite (embedded)', async () => ({ db: await openDatabase({}), stop: async () => undefined })],
  [
    'PostgreSQL server',
    async () => {
      const server = await startPostgresServer();
      return { db: await openDatabase({ databaseUrl: server.url }), stop: server.stop };
    },
  ],
])('fulfillment store on %s', (_name, open) => {
  let db: Database;
  let store: FulfillmentStore;
  let stop: () => Promise<void>;

  beforeAll(async () => {
    ({ db, stop } = await open());
    store = new FulfillmentStore(db);
  });
  afterAll(async () => {
    await db?.close();
    await stop?.();
  });

  test('when migrations run again, then nothing is applied twice', async () => {
    expect(await migrate(db)).toEqual([]);
    const rows = await db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    expect(rows.map((row) => row.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  test('when processes share limits in the database, then the Stripe budget, the rate-limit counts and the unknown sessions work on it', async () => {
    const budget = sharedRequestBudget(db, `store-test-${Date.now()}`, 2, { maxWaitMs: 100 }); // a burst of 1, one every 500 ms
    await budget.take();
    await expect(budget.take()).rejects.toThrow(RequestBudgetExhausted);

    const limits = new DatabaseRateLimitStore(db, `store-test-${Date.now()}:`);
    expect((await limits.increment('198.51.100.1')).totalHits).toBe(1);
    expect((await limits.increment('198.51.100.1')).totalHits).toBe(2);

    const emulator = await startStripeEmulator();
    try {
      const check = createSessionCheck({ stripe: createStripeClient('sk_test_store', parseStripeApiBase(emulator.url)), db, metrics: createMetrics(store) });
      const sessionId = newSessionId();
      expect(await check.exists(sessionId)).toBe(false);
      expect(await check.exists(sessionId)).toBe(false);
      expect(emulator.requests).toHaveLength(1); // the second answer came from unknown_sessions
    } finally {
      await emulator.close();
    }
  });

  test('when statuses are recorded, then the history keeps each transition once and the record the latest', async () => {
    const sessionId = newSessionId();
    await store.recordStatus(view(sessionId, { status: 'received' }), { ...RUN_1, seq: 1 });
    await store.recordStatus(view(sessionId, { status: 'awaiting_payment' }), { ...RUN_1, seq: 2 });
    await store.recordStatus(view(sessionId, { status: 'awaiting_payment' }), { ...RUN_1, seq: 2 }); // a retried write
    await store.recordStatus(view(sessionId, { status: 'fulfilled', receiptSent: true }), { ...RUN_1, seq: 3 });

    expect((await store.getHistory(sessionId)).map((entry) => entry.status)).toEqual(['received', 'awaiting_payment', 'fulfilled']);
    const record = await store.getRecord(sessionId);
    expect(record?.view.status).toBe('fulfilled');
    expect(record?.view.receiptSent).toBe(true);
    expect(record?.view.amountTotal).toBe(4500);
  });

  test('when a late execution records an earlier status after fulfilled, then the record stays fulfilled', async () => {
    const sessionId = newSessionId();
    await store.recordStatus(view(sessionId, { status: 'fulfilled' }), { ...RUN_1, seq: 1 });
    await store.recordStatus(view(sessionId, { status: 'received' }), { ...RUN_2, seq: 1 });
    expect((await store.getRecord(sessionId))?.view.status).toBe('fulfilled');
  });

  test('when a timed-out attempt writes an earlier transition late, then the record does not move backwards', async () => {
    const sessionId = newSessionId();
    await store.recordStatus(view(sessionId, { status: 'awaiting_payment' }), { ...RUN_1, seq: 2 });
    await store.recordStatus(view(sessionId, { status: 'received' }), { ...RUN_1, seq: 1 }); // the late write
    expect((await store.getRecord(sessionId))?.view.status).toBe('awaiting_payment');
  });

  test('when an older run writes failed after a newer run made progress, then the newer progress stands', async () => {
    const sessionId = newSessionId();
    await store.recordStatus(view(sessionId, { status: 'fulfilling' }), { ...RUN_2, seq: 3 });
    await store.recordStatus(view(sessionId, { status: 'failed', reason: 'late' }), { ...RUN_1, seq: 9 });
    expect((await store.getRecord(sessionId))?.view.status).toBe('fulfilling');
  });

  test('when a newer run starts over after an older one stopped waiting, then its first status is recorded', async () => {
    const sessionId = newSessionId();
    await store.recordStatus(view(sessionId, { status: 'awaiting_payment' }), { ...RUN_1, seq: 5 });
    await store.recordStatus(view(sessionId, { status: 'received' }), { ...RUN_2, seq: 1 });
    expect((await store.getRecord(sessionId))?.view.status).toBe('received');
  });

  test('when a session failed and a later run fulfills it, then the record moves on to fulfilled', async () => {
    const sessionId = newSessionId();
    await store.recordStatus(view(sessionId, { status: 'failed', reason: 'StripeAuthentication' }), { ...RUN_1, seq: 1 });
    await store.recordStatus(view(sessionId, { status: 'fulfilled' }), { ...RUN_2, seq: 1 });
    expect((await store.getRecord(sessionId))?.view.status).toBe('fulfilled');
  });

  test('when money comes back after fulfillment, then a settled record moves among after-payment statuses only, and finds its session by PaymentIntent', async () => {
    const sessionId = newSessionId();
    const paymentIntentId = `pi_${sessionId.slice(8)}`;
    await store.recordStatus(view(sessionId, { status: 'fulfilled', paymentIntentId }), { ...RUN_1, seq: 1 });
    expect(await store.orderOfPayment(paymentIntentId)).toBe(sessionId);

    expect(await store.recordStatus(view(sessionId, { status: 'partially_refunded' }), { ...RUN_2, seq: 1 })).toEqual({ changed: true, statusChanged: true });
    // A second refund rewrites the record without changing its status.
    expect(await store.recordStatus(view(sessionId, { status: 'partially_refunded', reason: 'second' }), { ...RUN_2, seq: 2 })).toEqual({ changed: true, statusChanged: false });
    // Never back to before the payment, even from a later write.
    expect((await store.recordStatus(view(sessionId, { status: 'fulfilling' }), { ...RUN_2, seq: 3 })).changed).toBe(false);
    expect((await store.recordStatus(view(sessionId, { status: 'refunded' }), { ...RUN_2, seq: 4 })).changed).toBe(true);
    expect((await store.getRecord(sessionId))?.view.status).toBe('refunded');
    expect(await store.orderOfPayment(paymentIntentId)).toBe(sessionId); // kept when a view does not repeat it
    expect(await store.orderOfPayment('pi_unknown')).toBeNull();
  });

  test('when the stuck sweep takes turns, then records still running cannot fill every batch: successive turns go round all stale records', async () => {
    const ids = Array.from({ length: 5 }, () => newSessionId());
    for (const id of ids) await store.recordStatus(view(id, { status: 'paused' }), { ...RUN_1, seq: 1 });
    await db.query(`UPDATE checkout_sessions SET updated_at = now() - interval '2 hours' WHERE session_id = ANY($1::text[])`, [ids]);

    // Other tests' stale records may share the turns: count only these, over enough turns for all of them.
    const others = (await store.takeStaleSessions(['paused'], 3_600_000, 1000)).filter((id) => !ids.includes(id)).length;
    await db.query(`UPDATE checkout_sessions SET swept_at = NULL WHERE session_id = ANY($1::text[])`, [ids]);
    const seen = new Set<string>();
    const turns = Math.ceil(ids.length / 2) + Math.ceil(others / 2);
    for (let turn = 0; turn < turns; turn++) {
      for (const id of await store.takeStaleSessions(['paused'], 3_600_000, 2)) if (ids.includes(id)) seen.add(id);
    }

    // Every one was reached within ceil(n / batch) turns; today's main took the same oldest two every time.
    expect(seen).toEqual(new Set(ids));
    expect(await store.takeStaleSessions(['paused'], 3 * 3_600_000, 10)).not.toEqual(expect.arrayContaining([ids[0]])); // not stale for 3 hours
  });

  test('when a dispute is open in a record, then it is listed for the reconciler to re-read, and not once it is closed', async () => {
    const sessionId = newSessionId();
    const dispute = { id: `dp_${sessionId.slice(8)}`, amount: 4500, currency: 'usd', status: 'needs_response', reason: 'fraudulent', outcome: 'open' as const, reversed: null };
    await store.recordStatus(view(sessionId, { status: 'disputed', paymentIntentId: `pi_${sessionId.slice(8)}`, disputes: [dispute] }), { ...RUN_1, seq: 1 });
    const open = async () => (await store.listOpenDisputes(1000)).filter((row) => row.orderId === sessionId);

    expect(await open()).toEqual([{ orderId: sessionId, disputeId: dispute.id, paymentIntentId: `pi_${sessionId.slice(8)}` }]);
    await store.recordStatus(view(sessionId, { status: 'dispute_lost', disputes: [{ ...dispute, status: 'lost', outcome: 'lost' }] }), { ...RUN_1, seq: 2 });
    expect(await open()).toEqual([]);
  });

  test('when a refund reverses line items, then each is reversed once per refund, capped at what was fulfilled, and stock comes back once', async () => {
    const sessionId = newSessionId();
    const productId = `prod_${sessionId}`;
    await store.setStock(productId, 10);
    const item = lineItem({ productId, quantity: 3 });
    await store.fulfillLineItemOnce(sessionId, item, (tx) => stockFulfiller.fulfillLineItem({ sessionId, lineItem: item, idempotencyKey: 'k' }, tx));
    expect(await store.getStock(productId)).toBe(7);

    const reverse = (reversalId: string, quantity: number) =>
      store.reverseLineItemOnce(reversalId, sessionId, { lineItemId: item.id, description: item.description, quantity }, 'refund', (tx) =>
        stockFulfiller.reverseLineItem!(
          { sessionId, lineItem: { id: item.id, description: item.description, productId, priceId: null }, quantity, reason: 'refund', reversalId, idempotencyKey: `${reversalId}:${item.id}` },
          tx,
        ),
      );
    expect(await reverse('re_1', 2)).toBe(true);
    expect(await reverse('re_1', 2)).toBe(false); // the same refund again
    expect(await store.getStock(productId)).toBe(9);
    expect(await store.reversibleLineItems(sessionId)).toEqual([expect.objectContaining({ lineItemId: item.id, quantity: 1 })]);
    expect(await store.getReversals('re_1')).toEqual([{ lineItemId: item.id, description: item.description, quantity: 2 }]);

    expect(await reverse('re_2', 1)).toBe(true);
    expect(await store.reversibleLineItems(sessionId)).toEqual([]); // nothing left to reverse
  });

  test('when the merchant records an order for a PaymentIntent, then the default order source reads it back whole, and an unknown one as null', async () => {
    const orders = databaseOrderSource(db);
    const orderId = `order_${newSessionId().slice(8)}`;
    const order = { orderId, currency: 'eur', amountTotal: 2500, lineItems: [lineItem({ amountTotal: 2500, currency: 'eur' })], contact: { email: 'ada@example.org', name: 'Ada' } };
    await orders.saveOrder(order);
    expect(await orders.loadOrder(orderId)).toEqual(order);
    expect(await orders.loadOrder('order_unknown')).toBeNull();
  });

  test('when a line item is fulfilled twice, then it is recorded once and stock moves once', async () => {
    const sessionId = newSessionId();
    const productId = `prod_${sessionId}`;
    await store.setStock(productId, 10);
    const item = lineItem({ productId, quantity: 3 });
    const fulfil = () =>
      store.fulfillLineItemOnce(sessionId, item, (tx) =>
        stockFulfiller.fulfillLineItem({ sessionId, lineItem: item, idempotencyKey: `${sessionId}:${item.id}` }, tx),
      );

    expect(await fulfil()).toBe(true);
    expect(await fulfil()).toBe(false);

    expect(await store.getStock(productId)).toBe(7);
    expect(await store.getFulfillments(sessionId)).toEqual([{ lineItemId: item.id, description: item.description, quantity: 3 }]);
  });

  test('when the same line item is fulfilled concurrently, then exactly one attempt wins', async () => {
    const sessionId = newSessionId();
    const productId = `prod_${sessionId}`;
    await store.setStock(productId, 100);
    const item = lineItem({ productId, quantity: 1 });
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        store.fulfillLineItemOnce(sessionId, item, (tx) =>
          stockFulfiller.fulfillLineItem({ sessionId, lineItem: item, idempotencyKey: 'k' }, tx),
        ),
      ),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await store.getStock(productId)).toBe(99);
  });

  test('when the fulfiller fails, then the line item is not recorded and a retry fulfills it', async () => {
    const sessionId = newSessionId();
    const item = lineItem();
    await expect(
      store.fulfillLineItemOnce(sessionId, item, async () => {
        throw new Error('warehouse API down');
      }),
    ).rejects.toThrow('warehouse API down');
    expect(await store.getFulfillments(sessionId)).toEqual([]);

    expect(await store.fulfillLineItemOnce(sessionId, item, async () => undefined)).toBe(true);
    expect(await store.getFulfillments(sessionId)).toHaveLength(1);
  });

  test('when an email is claimed, then a second claim waits while the lease runs, and sees it sent after', async () => {
    const sessionId = newSessionId();
    const claim = await store.claimEmail(sessionId, 'receipt', 300);
    expect(claim).toEqual(expect.objectContaining({ sessionId, kind: 'receipt' }));
    expect(await store.claimEmail(sessionId, 'receipt', 300)).toBe('in_flight');
    expect(await store.emailSent(sessionId, 'receipt')).toBe(false);

    await store.markEmailSent(claim as EmailClaim, `<receipt.${sessionId}@shop.test>`, 'a@example.com');
    expect(await store.claimEmail(sessionId, 'receipt', 300)).toBe('sent');
    expect(await store.countEmails(sessionId)).toBe(1);
  });

  test('when a claim is renewed while its send runs, then it outlives its first lease', async () => {
    const sessionId = newSessionId();
    const claim = (await store.claimEmail(sessionId, 'receipt', 1)) as EmailClaim;
    await new Promise((resolve) => setTimeout(resolve, 600));
    await store.renewEmailClaim(claim, 2);
    await new Promise((resolve) => setTimeout(resolve, 600)); // past the first lease, inside the renewed one
    expect(await store.claimEmail(sessionId, 'receipt', 300)).toBe('in_flight');
  });

  test('when a claim is released (the send failed), then the next attempt claims it at once', async () => {
    const sessionId = newSessionId();
    const claim = (await store.claimEmail(sessionId, 'payment_failed', 300)) as EmailClaim;
    await store.releaseEmail(claim);
    expect(await store.claimEmail(sessionId, 'payment_failed', 300)).toEqual(expect.objectContaining({ sessionId }));
  });

  test('when a claim holder died and its lease ran out, then another attempt takes it over and the dead one cannot mark it', async () => {
    const sessionId = newSessionId();
    const dead = (await store.claimEmail(sessionId, 'receipt', 1)) as EmailClaim;
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const taker = await store.claimEmail(sessionId, 'receipt', 300);
    expect(taker).toEqual(expect.objectContaining({ sessionId }));

    await store.markEmailSent(dead, 'stale', 'a@example.com'); // the old token no longer matches
    expect(await store.emailSent(sessionId, 'receipt')).toBe(false);
    await store.markEmailSent(taker as EmailClaim, `<receipt.${sessionId}@shop.test>`, 'a@example.com');
    expect(await store.emailSent(sessionId, 'receipt')).toBe(true);
  });

  test('when a metered line item (no quantity) is fulfilled, then it is recorded without a count and stock is untouched', async () => {
    const sessionId = newSessionId();
    const productId = `prod_${sessionId}`;
    await store.setStock(productId, 10);
    const item = lineItem({ productId, quantity: null });
    await store.fulfillLineItemOnce(sessionId, item, (tx) =>
      stockFulfiller.fulfillLineItem({ sessionId, lineItem: item, idempotencyKey: `${sessionId}:${item.id}` }, tx),
    );
    expect(await store.getFulfillments(sessionId)).toEqual([{ lineItemId: item.id, description: item.description, quantity: null }]);
    expect(await store.getStock(productId)).toBe(10);
  });
});

describe('PostgreSQL timeouts', () => {
  test('when the server accepts connections but never answers, then opening fails within the connection timeout instead of hanging', async () => {
    const net = await import('node:net');
    const silent = net.createServer(() => undefined); // accepts, says nothing
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as import('node:net').AddressInfo).port;
    try {
      await expect(openPostgres(`postgres://postgres@127.0.0.1:${port}/postgres`, { connectionMs: 300, statementMs: 1000 })).rejects.toThrow(
        /timeout/i,
      );
    } finally {
      silent.close();
    }
  });

  test('when a statement runs past the statement timeout, then the server cancels it', async () => {
    const server = await startPostgresServer();
    const db = await openPostgres(server.url, { connectionMs: 5000, statementMs: 200 });
    try {
      await expect(db.query('SELECT pg_sleep(3)')).rejects.toThrow(/statement timeout/);
      expect(await db.query<{ ok: number }>('SELECT 1 AS ok')).toEqual([{ ok: 1 }]); // the pool is still usable
    } finally {
      await db.close();
      await server.stop();
    }
  });
});

describe('PostgreSQL connections dropped by the server', () => {
  test('when the server terminates a connection mid-transaction, then the transaction fails, the process survives and the next one works', async () => {
    const server = await startPostgresServer();
    const db = await openPostgres(server.url);
    const admin = await openPostgres(server.url);
    try {
      const inFlight = db.transaction(async (tx) => {
        await tx.query('SELECT pg_sleep(3)');
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND pid <> pg_backend_pid()");

      await expect(inFlight).rejects.toThrow(/terminat/);
      expect(await db.transaction(async (tx) => tx.query<{ ok: number }>('SELECT 1 AS ok'))).toEqual([{ ok: 1 }]);
    } finally {
      await db.close();
      await admin.close();
      await server.stop();
    }
  });
});

describe('migrations on a fresh PostgreSQL server', () => {
  let server: Awaited<ReturnType<typeof startPostgresServer>>;
  beforeAll(async () => {
    server = await startPostgresServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  test('when 30 processes start at once on an empty database, then every one of them migrates without error', async () => {
    const url = server.url.replace(/\/postgres$/, '/concurrent_start');
    const admin = await openDatabase({ databaseUrl: server.url });
    await admin.query('CREATE DATABASE concurrent_start');
    await admin.close();

    const starts = await Promise.allSettled(Array.from({ length: 30 }, () => openDatabase({ databaseUrl: url })));
    const failures = starts.filter((start) => start.status === 'rejected').map((start) => String(start.reason));
    for (const start of starts) if (start.status === 'fulfilled') await start.value.close();

    expect(failures).toEqual([]);
    const db = await openDatabase({ databaseUrl: url });
    const rows = await db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    await db.close();
    expect(rows.map((row) => row.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});

test('when PGlite is reopened from its data directory, then the records are still there', async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pglite-test-'));
  const sessionId = newSessionId();
  try {
    const first = await openDatabase({ pgliteDir: dir });
    await new FulfillmentStore(first).recordStatus(view(sessionId, { status: 'fulfilled' }), { ...RUN_1, seq: 1 });
    await first.close();

    const second = await openDatabase({ pgliteDir: dir });
    expect((await new FulfillmentStore(second).getRecord(sessionId))?.view.status).toBe('fulfilled');
    await second.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
