import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import type Stripe from 'stripe';
import { DefaultLogger, type LogEntry } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../../activities';
import { createOutboxMailer, createSmtpMailer, type Mailer } from '../../src/email/mailer';
import { databaseOrderSource } from '../../src/fulfillment/order-source';
import { stockFulfiller } from '../../src/fulfillment/fulfiller';
import { createMetrics } from '../../src/metrics';
import { startStripeEmulator, type EmulatedSession, type StripeEmulator } from '../../src/stripe/emulator';
import { createStripeClient, parseStripeApiBase } from '../../src/stripe/sessions';
import { FulfillmentStore, openDatabase, type Database } from '../../src/store';
import { receivedView } from '../../workflows/definitions';
import { session as sessionSummary, newSessionId } from '../fixtures/sessions';
import { startSmtpServer } from '../helpers/smtp-server';

const TEST_KEY = 'sk_test_123';
const run = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> =>
  new MockActivityEnvironment().run(fn, ...args);

let db: Database;
let store: FulfillmentStore;

beforeAll(async () => {
  db = await openDatabase({});
  store = new FulfillmentStore(db);
});
afterAll(async () => {
  await db?.close();
});

/** A session whose customer retrieve-session has recorded, as it does before any email is sent. */
async function customerSession(overrides: Parameters<typeof sessionSummary>[0] = {}, contact = { email: 'jenny@example.com', name: 'Jenny Rosen' }) {
  const summary = sessionSummary(overrides);
  await store.saveContact(summary.id, contact);
  return summary;
}

function activitiesWith(overrides: Partial<ActivityDeps>) {
  const unusedMailer: Mailer = {
    description: 'none',
    send: async () => {
      throw new Error('no mailer in this test');
    },
    close: () => undefined,
  };
  return createActivities({
    stripe: createStripeClient(TEST_KEY, parseStripeApiBase('http://127.0.0.1:9')),
    orderSource: databaseOrderSource(store.db),
    store,
    fulfiller: stockFulfiller,
    mailer: unusedMailer,
    metrics: createMetrics(store),
    starter: {
      ensureStarted: async () => {
        throw new Error('no Temporal in this test');
      },
      isRunning: async () => {
        throw new Error('no Temporal in this test');
      },
      deliver: async () => {
        throw new Error('no Temporal in this test');
      },
      deliverMoneyBack: async () => {
        throw new Error('no Temporal in this test');
      },
      routeMoneyBack: async () => {
        throw new Error('no Temporal in this test');
      },
    },
    merchantName: 'Test Shop',
    emailDomain: 'shop.test',
    ...overrides,
  });
}

async function expectFailure(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

// The requests against stripe-mock (Stripe's mock, which checks them against its OpenAPI spec) are in
// stripe-fidelity.test.ts, with every other request the product makes to Stripe.

describe('retrieve-session against the local Stripe emulator', () => {
  let emulator: StripeEmulator;
  beforeAll(async () => {
    emulator = await startStripeEmulator();
  });
  afterAll(async () => {
    await emulator?.close();
  });

  function emulated(lineItemCount: number): EmulatedSession {
    const id = newSessionId();
    return {
      id,
      status: 'complete',
      paymentStatus: 'paid',
      currency: 'eur',
      customerEmail: 'jenny@example.com',
      customerName: 'Jenny Rosen',
      lineItems: Array.from({ length: lineItemCount }, (_, i) => ({
        id: `li_${id}_${i}`,
        description: `Item ${i}`,
        quantity: 1,
        priceId: `price_${i}`,
        productId: `prod_${i}`,
        unitAmount: 100 + i,
      })),
    };
  }

  const activities = () => activitiesWith({ stripe: createStripeClient(TEST_KEY, parseStripeApiBase(emulator.url)) });

  test('when a session has 250 line items, then every page is fetched and all are returned in order', async () => {
    const big = emulated(250);
    emulator.put(big);
    emulator.requests.length = 0;

    const summary = await run(activities().retrieveSession, big.id);

    expect(summary.lineItems).toHaveLength(250);
    expect(summary.lineItems.map((item) => item.id)).toEqual(big.lineItems.map((item) => item.id));
    expect(summary.amountTotal).toBe(big.lineItems.reduce((sum, item) => sum + item.unitAmount, 0));
    const listCalls = emulator.requests.filter((r) => r.includes('/line_items'));
    expect(emulator.requests[0]).toMatch(/expand(\[0\]|%5B0%5D)=line_items/);
    expect(listCalls).toHaveLength(3); // 100 + 100 + 50
  });

  test('when a session fits in the expanded first page, then no extra list call is made', async () => {
    const small = emulated(3);
    emulator.put(small);
    emulator.requests.length = 0;

    const summary = await run(activities().retrieveSession, small.id);

    expect(summary.lineItems).toHaveLength(3);
    expect(emulator.requests).toHaveLength(1);
  });

  test('when a session is retrieved, then who the customer is goes to the database, not into the result Temporal keeps', async () => {
    const small = emulated(1);
    emulator.put(small);

    const summary = await run(activities().retrieveSession, small.id);

    expect(JSON.stringify(summary)).not.toMatch(/jenny@example\.com|Jenny Rosen/);
    expect(await store.getContact(small.id)).toEqual({ email: 'jenny@example.com', name: 'Jenny Rosen' });
  });

  test('when Stripe does not know the session, then it fails non-retryably as SessionNotFound', async () => {
    const failure = await expectFailure(run(activities().retrieveSession, newSessionId()));
    expect(failure.type).toBe('SessionNotFound');
    expect(failure.nonRetryable).toBe(true);
  });

  test('when Stripe answers with another session or PaymentIntent than the one asked for, then the read fails, retryably, and returns nothing', async () => {
    const [asked, other] = [emulated(1), emulated(1)];
    emulator.put(asked);
    emulator.put(other);
    emulator.putPaymentIntent({ id: 'pi_otherAnswer', amount: 100, currency: 'eur', status: 'succeeded', metadata: { order_id: 'o_1' } });
    const stripe = createStripeClient(TEST_KEY, parseStripeApiBase(emulator.url));
    // A misrouted API base or a proxy answering for another object.
    const retrieveSession = stripe.checkout.sessions.retrieve.bind(stripe.checkout.sessions);
    stripe.checkout.sessions.retrieve = ((_id: string, params: Stripe.Checkout.SessionRetrieveParams) => retrieveSession(other.id, params)) as typeof stripe.checkout.sessions.retrieve;
    const retrieveIntent = stripe.paymentIntents.retrieve.bind(stripe.paymentIntents);
    stripe.paymentIntents.retrieve = ((_id: string, params: Stripe.PaymentIntentRetrieveParams) => retrieveIntent('pi_otherAnswer', params)) as typeof stripe.paymentIntents.retrieve;
    const misrouted = activitiesWith({ stripe });

    const error = (await run(misrouted.retrieveSession, asked.id).catch((e: unknown) => e)) as Error;
    expect(error).not.toBeInstanceOf(ApplicationFailure);
    expect(error.message).toBe(`Stripe answered for "${other.id}" when asked for ${asked.id}; check STRIPE_API_BASE`);
    await expect(run(misrouted.retrievePaymentIntent, 'pi_asked')).rejects.toThrow('Stripe answered for "pi_otherAnswer" when asked for pi_asked');
    expect(await store.getContact(asked.id)).toBeNull();
  });

  test('when Stripe does not know a PaymentIntent, then reading it or its refunds fails non-retryably as PaymentIntentNotFound', async () => {
    const failure = await expectFailure(run(activities().retrievePaymentIntent, 'pi_unknownToTheEmulator'));
    expect(failure.type).toBe('PaymentIntentNotFound');
    expect(failure.message).toBe('Stripe does not know PaymentIntent pi_unknownToTheEmulator');
    expect(failure.nonRetryable).toBe(true);
    const malformed = await expectFailure(run(activities().readMoneyBack, 'pi_<script>'));
    expect(malformed.type).toBe('InvalidPaymentIntentId');
  });

  test('when the API key is rejected, then it fails as a retryable StripeConfiguration error without the key', async () => {
    const badKey = 'sk_bad-key-shape';
    const { retrieveSession } = activitiesWith({ stripe: createStripeClient(badKey, parseStripeApiBase(emulator.url)) });
    const failure = await expectFailure(run(retrieveSession, newSessionId()));
    expect(failure.type).toBe('StripeConfiguration');
    // Our configuration, not the session: the workflow pauses and retries until an operator fixes it.
    expect(failure.nonRetryable).toBe(false);
    expect(failure.message).not.toContain(badKey);
  });

  test.each([
    [401, 'authentication'],
    [403, 'permission (a restricted key without Checkout read access)'],
    [400, 'a request Stripe rejects'],
  ])('when Stripe answers %i (%s), then it is a retryable StripeConfiguration error, never final', async (status) => {
    const session = emulated(1);
    emulator.put(session);
    emulator.failNext(status, 1);
    const failure = await expectFailure(run(activities().retrieveSession, session.id));
    expect(failure.type).toBe('StripeConfiguration');
    expect(failure.nonRetryable).toBe(false);
  });

  test('when a line item has no quantity (a metered price), then its quantity is null, not 1', async () => {
    const metered = emulated(1);
    metered.lineItems[0]!.quantity = null;
    emulator.put({ ...metered, mode: 'subscription' });
    const summary = await run(activities().retrieveSession, metered.id);
    expect(summary.mode).toBe('subscription');
    expect(summary.lineItems[0]!.quantity).toBeNull();
  });

  test('when the ID is not a Checkout Session ID, then it fails non-retryably before calling Stripe', async () => {
    emulator.requests.length = 0;
    const failure = await expectFailure(run(activities().retrieveSession, 'pi_123'));
    expect(failure.type).toBe('InvalidSessionId');
    expect(emulator.requests).toHaveLength(0);
  });

  test.each([429, 500])('when Stripe answers %i, then the error is left retryable for Temporal', async (status) => {
    const session = emulated(1);
    emulator.put(session);
    emulator.failNext(status, 1);
    const err = await run(activities().retrieveSession, session.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(ApplicationFailure);
    // The next attempt (Temporal's retry) succeeds.
    expect((await run(activities().retrieveSession, session.id)).id).toBe(session.id);
  });

  test('when Stripe cannot be reached, then the error is left retryable for Temporal', async () => {
    const { retrieveSession } = activitiesWith({ stripe: createStripeClient(TEST_KEY, parseStripeApiBase('http://127.0.0.1:9')) });
    const err = await run(retrieveSession, newSessionId()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(ApplicationFailure);
  });
});

describe('fulfill-line-items with the default stock fulfiller', () => {
  test('when the activity runs twice (a retry after a crash), then each line item is fulfilled and stock moves once', async () => {
    const summary = sessionSummary();
    const productId = summary.lineItems[0]!.productId!;
    await store.setStock(productId, 50);
    const { fulfillLineItems } = activitiesWith({});

    const first = await run(fulfillLineItems, { sessionId: summary.id, lineItems: summary.lineItems });
    const second = await run(fulfillLineItems, { sessionId: summary.id, lineItems: summary.lineItems });

    expect(first).toEqual(second);
    expect(first.map((item) => item.description)).toEqual(['T-shirt', 'Sticker pack']);
    expect(await store.getFulfillments(summary.id)).toHaveLength(2);
    expect(await store.getStock(productId)).toBe(48); // quantity 2, taken once
  });
});

describe('record-status and the recorded state', () => {
  test('when transitions are recorded, then loadRecord returns the latest view', async () => {
    const { recordStatus, loadRecord } = activitiesWith({});
    const sessionId = newSessionId();
    const base = {
      sessionId,
      paymentStatus: 'unpaid' as const,
      mode: 'payment' as const,
      currency: 'usd',
      amountTotal: 100,
      lineItems: [],
      fulfilled: [],
      receiptSent: false,
      reason: null,
      eventIds: [],
    };
    expect(await run(loadRecord, sessionId)).toBeNull();
    await run(recordStatus, { view: { ...base, status: 'received' }, runStartedAt: 1000, seq: 1 });
    await run(recordStatus, { view: { ...base, status: 'awaiting_payment' }, runStartedAt: 1000, seq: 2 });

    expect((await run(loadRecord, sessionId))?.status).toBe('awaiting_payment');
    expect((await store.getHistory(sessionId)).map((entry) => entry.status)).toEqual(['received', 'awaiting_payment']);
  });

  test('when a final status is written again (a retried attempt, a later run of a settled session), then it is counted once', async () => {
    const metrics = createMetrics(store);
    const { recordStatus } = activitiesWith({ metrics });
    const view = { ...receivedView(newSessionId()), status: 'fulfilled' as const };
    const fulfilledCount = async () => (await metrics.fulfillments.get()).values.find((v) => v.labels.status === 'fulfilled')?.value;

    await run(recordStatus, { view: { ...view, status: 'fulfilling' }, runStartedAt: 1000, seq: 1 });
    expect(await fulfilledCount()).toBe(0);
    await run(recordStatus, { view, runStartedAt: 1000, seq: 2 });
    await run(recordStatus, { view, runStartedAt: 1000, seq: 2 }); // the same write, retried
    await run(recordStatus, { view, runStartedAt: 2000, seq: 1 }); // a later run: settled stays settled
    expect(await fulfilledCount()).toBe(1);
  });
});

describe('email-receipt', () => {
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  beforeAll(async () => {
    smtp = await startSmtpServer();
  });
  afterAll(async () => {
    await smtp?.stop();
  });

  test('when sent through SMTP, then one message with text and HTML parts, escaped names and correct amounts arrives', async () => {
    const paid = await customerSession(
      {
        currency: 'jpy',
        lineItems: [
          { ...sessionSummary().lineItems[0]!, description: 'Tea <b>set</b>', amountTotal: 1500, amountSubtotal: 1500, currency: 'jpy' },
        ],
        amountTotal: 1500,
        amountSubtotal: 1500,
      },
      { email: 'jenny@example.com', name: '<script>alert(1)</script> & Co' },
    );
    const mailer = createSmtpMailer(smtp.url, 'Test Shop <shop@shop.test>');
    const { emailReceipt } = activitiesWith({ mailer });
    const fulfilled = [{ lineItemId: paid.lineItems[0]!.id, description: 'Tea <b>set</b>', quantity: 1 }];

    expect(await run(emailReceipt, { session: paid, fulfilled })).toEqual({ sent: true });
    expect(await run(emailReceipt, { session: paid, fulfilled })).toEqual({ sent: true }); // a retry: already sent, not again

    const messages = smtp.messages.filter((m) => m.parsed.messageId === `<receipt.${paid.id}@shop.test>`);
    expect(messages).toHaveLength(1);
    const [mail] = messages;
    expect(mail!.envelopeTo).toEqual(['jenny@example.com']);
    expect(mail!.parsed.subject).toBe('Your Test Shop receipt');
    expect(mail!.parsed.text).toContain('¥1,500');
    expect(mail!.parsed.text).not.toContain('¥15.00');
    expect(mail!.parsed.html).toContain('Tea &lt;b&gt;set&lt;/b&gt;');
    expect(mail!.parsed.html).toContain('&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co');
    expect(mail!.parsed.html).not.toContain('<script>');
    expect(await store.emailSent(paid.id, 'receipt')).toBe(true);
  });

  test('when the payment failed, then the customer gets one payment-failed message', async () => {
    const unpaid = await customerSession({ paymentStatus: 'unpaid', currency: 'kwd', amountTotal: 12345 });
    const { emailPaymentFailed } = activitiesWith({ mailer: createSmtpMailer(smtp.url, 'shop@shop.test') });

    await run(emailPaymentFailed, unpaid);
    await run(emailPaymentFailed, unpaid);

    const messages = smtp.messages.filter((m) => m.parsed.messageId === `<payment_failed.${unpaid.id}@shop.test>`);
    expect(messages).toHaveLength(1);
    // Intl puts a no-break space between the code and the amount.
    expect(messages[0]!.parsed.text?.replace(/\u00a0/g, ' ')).toContain('KWD 12.345');
  });

  test('when there is no SMTP server, then the receipt is written once to the outbox as an .eml file', async () => {
    const outbox = fs.mkdtempSync(path.join(os.tmpdir(), 'outbox-'));
    try {
      const paid = await customerSession();
      const { emailReceipt } = activitiesWith({ mailer: createOutboxMailer(outbox, 'shop@shop.test') });
      await run(emailReceipt, { session: paid, fulfilled: [] });
      await run(emailReceipt, { session: paid, fulfilled: [] });

      const files = fs.readdirSync(outbox);
      expect(files).toEqual([`receipt.${paid.id}_shop.test.eml`]);
      const eml = fs.readFileSync(path.join(outbox, files[0]!), 'utf8');
      expect(eml).toContain(`Message-ID: <receipt.${paid.id}@shop.test>`);
      expect(eml).toContain('To: jenny@example.com');
      expect(eml).toContain('$45.00');
    } finally {
      fs.rmSync(outbox, { recursive: true, force: true });
    }
  });

  test('when a retry overlaps an attempt still sending to a slow SMTP server, then it waits for it and one receipt arrives', async () => {
    const slow = await startSmtpServer({ dataDelayMs: 1500 });
    try {
      const paid = await customerSession();
      const { emailReceipt } = activitiesWith({ mailer: createSmtpMailer(slow.url, 'shop@shop.test') });
      const first = run(emailReceipt, { session: paid, fulfilled: [] });
      await new Promise((resolve) => setTimeout(resolve, 300)); // the first attempt is mid-send

      const overlapping = await expectFailure(run(emailReceipt, { session: paid, fulfilled: [] }));
      expect(overlapping.type).toBe('EmailInFlight');
      expect(overlapping.nonRetryable).toBe(false); // Temporal retries it with backoff

      expect(await first).toEqual({ sent: true });
      expect(await run(emailReceipt, { session: paid, fulfilled: [] })).toEqual({ sent: true }); // the retry sees it sent
      expect(slow.messages.filter((m) => m.parsed.messageId === `<receipt.${paid.id}@shop.test>`)).toHaveLength(1);
    } finally {
      await slow.stop();
    }
  });

  test('when the SMTP server refuses the connection, then the attempt fails retryably and the next one may send', async () => {
    const paid = await customerSession();
    const down = activitiesWith({ mailer: createSmtpMailer('smtp://127.0.0.1:9', 'shop@shop.test') });
    const err = await run(down.emailReceipt, { session: paid, fulfilled: [] }).catch((e: unknown) => e);
    expect(String(err)).toMatch(/ECONNREFUSED/);
    expect(err).not.toBeInstanceOf(ApplicationFailure);

    const up = activitiesWith({ mailer: createSmtpMailer(smtp.url, 'shop@shop.test') });
    expect(await run(up.emailReceipt, { session: paid, fulfilled: [] })).toEqual({ sent: true });
    expect(smtp.messages.filter((m) => m.parsed.messageId === `<receipt.${paid.id}@shop.test>`)).toHaveLength(1);
  });

  test('when the mail server refuses the recipient, then the failure names neither the address nor the name (failures are kept in Temporal)', async () => {
    const paid = await customerSession({}, { email: 'refused.jenny@example.com', name: 'Jenny Rosen' });
    const refusing: Mailer = {
      description: 'refusing',
      send: async ({ to }) => {
        throw Object.assign(new Error(`Can't send mail - all recipients were rejected: 550 5.1.1 <${to}>: Recipient address rejected (Jenny Rosen)`), { name: 'EENVELOPE' });
      },
      close: () => undefined,
    };
    const err = (await run(activitiesWith({ mailer: refusing }).emailReceipt, { session: paid, fulfilled: [] }).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/550 5\.1\.1 <\[customer\]>: Recipient address rejected \(\[customer\]\)/);
    expect(`${err.message} ${err.stack}`).not.toMatch(/refused\.jenny|Jenny Rosen/);
    expect(err.name).toBe('EENVELOPE');
    expect(await store.emailSent(paid.id, 'receipt')).toBe(false);
  });

  test('when the session has no customer email, then nothing is sent and nothing recorded', async () => {
    const anonymous = sessionSummary(); // Stripe reported no contact: none was kept
    const { emailReceipt } = activitiesWith({ mailer: createSmtpMailer(smtp.url, 'shop@shop.test') });
    expect(await run(emailReceipt, { session: anonymous, fulfilled: [] })).toEqual({ sent: false });
    expect(await store.emailSent(anonymous.id, 'receipt')).toBe(false);
  });

  test('when the customer email is a list of addresses, then it is handled like no email: nothing sent, nothing recorded, and the log names no address', async () => {
    const listed = await customerSession({}, { email: 'victim@example.com, attacker@evil.example', name: 'Jenny Rosen' });
    const { emailReceipt } = activitiesWith({ mailer: createSmtpMailer(smtp.url, 'shop@shop.test') });
    const logged: LogEntry[] = [];
    const environment = new MockActivityEnvironment({}, { logger: new DefaultLogger('DEBUG', (entry) => void logged.push(entry)) });

    expect(await environment.run(emailReceipt, { session: listed, fulfilled: [] })).toEqual({ sent: false });

    expect(await store.emailSent(listed.id, 'receipt')).toBe(false);
    expect(smtp.messages.filter((m) => m.parsed.messageId === `<receipt.${listed.id}@shop.test>`)).toHaveLength(0);
    expect(logged).toContainEqual(expect.objectContaining({ level: 'WARN', message: expect.stringMatching(/^Invalid recipient/), meta: expect.objectContaining({ sessionId: listed.id }) }));
    expect(JSON.stringify(logged.map(({ message, meta }) => ({ message, meta })))).not.toMatch(/victim|attacker/);
  });
});

describe('the stuck sweep', () => {
  test('when more stale records are still running than one batch holds (a mass pause), then one run looks at each once and re-drives the one really stuck', async () => {
    const running = Array.from({ length: 620 }, () => newSessionId());
    const stuck = newSessionId();
    for (const id of [...running, stuck]) await store.recordStatus({ ...receivedView(id), status: 'paused' }, { runId: 'r', runStartedAt: 1, seq: 1 });
    await db.query(`UPDATE checkout_sessions SET updated_at = now() - interval '2 hours' WHERE status = 'paused'`);
    await db.query(`UPDATE checkout_sessions SET updated_at = now() - interval '1 hour 30 minutes' WHERE session_id = $1`, [stuck]); // the newest: last in turn
    const looked: string[] = [];
    const redriven: string[] = [];
    const activities = activitiesWith({
      starter: {
        isRunning: async (id: string) => (looked.push(id), id !== stuck),
        ensureStarted: async (id: string) => (redriven.push(id), 'accepted' as const),
        deliver: async () => 'accepted' as const,
        deliverMoneyBack: async () => 'accepted' as const,
        routeMoneyBack: async () => 'routing' as const,
      },
    });

    const count = await run(activities.redriveStuckSessions, { stuckAfterMs: 3_600_000 });

    expect(redriven).toEqual([stuck]); // today's main took the same oldest 500 every run and never reached it
    expect(count).toBe(1);
    expect(new Set(looked).size).toBe(looked.length); // one lap: nobody looked at twice
    expect(looked).toEqual(expect.arrayContaining([...running, stuck]));
  });
});

describe('the reconciler’s money back', () => {
  test('when a refund’s payment is not in our records yet, then it is routed through Stripe to its order, and counted only the first time', async () => {
    const routed: { paymentIntentId: string; eventId: string }[] = [];
    const activities = activitiesWith({
      starter: {
        isRunning: async () => false,
        ensureStarted: async () => 'accepted' as const,
        deliver: async () => 'accepted' as const,
        deliverMoneyBack: async () => {
          throw new Error('no record: nothing to deliver to');
        },
        routeMoneyBack: async (paymentIntentId, event) => (routed.push({ paymentIntentId, eventId: event.id }), routed.length === 1 ? 'routing' : 'routed_before'),
      },
    });
    const paymentIntentId = `pi_unknown_${newSessionId().slice(8)}`;
    const items = [
      { id: 're_first', paymentIntentId, status: 'succeeded' },
      { id: 're_pending', paymentIntentId, status: 'pending' }, // waits until it settles
      { id: 're_failed', paymentIntentId, status: 'failed' }, // nothing was acted on: nothing to undo
    ];

    const first = await run(activities.reconcileMoneyBack, { kind: 'refunds', items, reconcileId: 'reconcile-1' });
    const second = await run(activities.reconcileMoneyBack, { kind: 'refunds', items, reconcileId: 'reconcile-2' });

    // Before the fix a payment unknown to our records was skipped: an order the same run had just started was fulfilled unaware of its refund.
    expect(routed).toEqual([
      { paymentIntentId, eventId: 'reconcile:re_first' },
      { paymentIntentId, eventId: 'reconcile:re_first' },
    ]);
    expect([first, second]).toEqual([1, 0]);
  });
});
