import { migrate, openDatabase, FulfillmentStore, type Database } from '../../src/store';
import { stockFulfiller } from '../../src/fulfillment/fulfiller';
import { receivedView, type FulfillmentView } from '../../workflows/definitions';
import { lineItem, newSessionId } from '../fixtures/sessions';
import { startPostgresServer } from '../helpers/postgres-server';

function view(sessionId: string, overrides: Partial<FulfillmentView> = {}): FulfillmentView {
  return { ...receivedView(sessionId), paymentStatus: 'paid', currency: 'usd', amountTotal: 4500, ...overrides };
}

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
    expect(rows.map((row) => row.version)).toEqual([1]);
  });

  test('when statuses are recorded, then the history keeps each transition once and the record the latest', async () => {
    const sessionId = newSessionId();
    await store.recordStatus(view(sessionId, { status: 'received' }), 'run-1', 1);
    await store.recordStatus(view(sessionId, { status: 'awaiting_payment' }), 'run-1', 2);
    await store.recordStatus(view(sessionId, { status: 'awaiting_payment' }), 'run-1', 2); // a retried write
    await store.recordStatus(view(sessionId, { status: 'fulfilled', receiptSent: true }), 'run-1', 3);

    expect((await store.getHistory(sessionId)).map((entry) => entry.status)).toEqual(['received', 'awaiting_payment', 'fulfilled']);
    const record = await store.getRecord(sessionId);
    expect(record?.view.status).toBe('fulfilled');
    expect(record?.view.receiptSent).toBe(true);
    expect(record?.view.amountTotal).toBe(4500);
  });

  test('when a late execution records an earlier status after fulfilled, then the record stays fulfilled', async () => {
    const sessionId = newSessionId();
    await store.recordStatus(view(sessionId, { status: 'fulfilled' }), 'run-1', 1);
    await store.recordStatus(view(sessionId, { status: 'received' }), 'run-2', 1);
    expect((await store.getRecord(sessionId))?.view.status).toBe('fulfilled');
  });

  test('when a session failed and a later run fulfills it, then the record moves on to fulfilled', async () => {
    const sessionId = newSessionId();
    await store.recordStatus(view(sessionId, { status: 'failed', reason: 'StripeAuthentication' }), 'run-1', 1);
    await store.recordStatus(view(sessionId, { status: 'fulfilled' }), 'run-2', 1);
    expect((await store.getRecord(sessionId))?.view.status).toBe('fulfilled');
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

  test('when an email is recorded twice, then one record remains', async () => {
    const sessionId = newSessionId();
    expect(await store.emailSent(sessionId, 'receipt')).toBe(false);
    await store.recordEmail(sessionId, 'receipt', `<receipt.${sessionId}@shop.test>`, 'a@example.com');
    await store.recordEmail(sessionId, 'receipt', `<receipt.${sessionId}@shop.test>`, 'a@example.com');
    expect(await store.emailSent(sessionId, 'receipt')).toBe(true);
    expect(await store.countEmails(sessionId)).toBe(1);
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
    await new FulfillmentStore(first).recordStatus(view(sessionId, { status: 'fulfilled' }), 'run-1', 1);
    await first.close();

    const second = await openDatabase({ pgliteDir: dir });
    expect((await new FulfillmentStore(second).getRecord(sessionId))?.view.status).toBe('fulfilled');
    await second.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
