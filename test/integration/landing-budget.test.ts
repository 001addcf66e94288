/**
 * The landing page and the Stripe budget, with no Temporal: two ingress apps ("two processes") on
 * one PGlite database, the real starter over a Temporal client that only records what it is asked,
 * and the Stripe emulator enforcing Stripe's test-mode limit (25 requests/s for the account).
 */
import type { Client } from '@temporalio/client';
import type Stripe from 'stripe';
import { loadConfig, type Config } from '../../src/config';
import { createIngressApp, listen, type IngressDeps, type RunningIngress } from '../../src/ingress/app';
import { DatabaseRateLimitStore } from '../../src/ingress/rate-limit-store';
import { createSessionCheck, type SessionCheck } from '../../src/ingress/session-check';
import { createMetrics, type Metrics } from '../../src/metrics';
import { budgetedStripeClients } from '../../src/services';
import { FulfillmentStore, openDatabase, type Database } from '../../src/store';
import { startStripeEmulator, type EmulatedSession, type StripeEmulator } from '../../src/stripe/emulator';
import { budgetExhaustion, STRIPE_LIMITS } from '../../src/stripe/request-budget';
import { retrieveSessionSummary } from '../../src/stripe/sessions';
import { FulfillmentStarter } from '../../src/temporal/fulfillment-starter';
import { newSessionId } from '../fixtures/sessions';
import { ingressDeps } from '../helpers/ingress-deps';

let emulator: StripeEmulator;
let db: Database;
let config: Config;
let store: FulfillmentStore;
let metrics: Metrics;

beforeAll(async () => {
  [emulator, db] = await Promise.all([startStripeEmulator(0, { requestLimitPerSecond: STRIPE_LIMITS.test }), openDatabase({})]);
  // The default budget of a test key: 20/s, visitors 4/s of it.
  config = loadConfig({ STRIPE_SECRET_KEY: 'sk_test_landing', STRIPE_WEBHOOK_SECRET: 'whsec_landing', STRIPE_API_BASE: emulator.url });
  store = new FulfillmentStore(db);
  metrics = createMetrics(store);
});
afterAll(async () => {
  await Promise.all([emulator?.close(), db?.close()]);
});

/** Every call the starter makes to Temporal, by method: a landing page that starts a workflow shows here. */
function recordingTemporal() {
  const calls: string[] = [];
  const handle = new Proxy({}, { get: (_t, method) => async () => void calls.push(`handle.${String(method)}`) });
  const client = {
    workflow: new Proxy(
      {},
      {
        get: (_t, method) =>
          method === 'getHandle'
            ? () => handle
            : async () => {
                calls.push(`workflow.${String(method)}`);
              },
      },
    ),
    withDeadline: <T>(_deadline: number, call: () => Promise<T>) => call(),
  } as unknown as Client;
  return { client, calls };
}

interface Process {
  ingress: RunningIngress;
  stripe: Stripe;
  temporalCalls: string[];
}

const processes: Process[] = [];

/** One ingress process as the stack wires it, on the shared database: its budgeted Stripe clients, its session check, the shared rate-limit store. */
async function startProcess(overrides: Partial<IngressDeps> & { unknownForMs?: number } = {}): Promise<Process> {
  const { stripe, visitorStripe } = budgetedStripeClients(config.stripe, db);
  const { client, calls } = recordingTemporal();
  const starter = new FulfillmentStarter(client, store, { taskQueue: 'fulfillment', paymentDeadline: '7 days', timeoutMs: 5000 });
  const sessionCheck: SessionCheck = createSessionCheck({ stripe: visitorStripe, db, metrics, unknownForMs: overrides.unknownForMs });
  const ingress = await listen(
    createIngressApp(ingressDeps({ store, starter, sessionCheck }, { rateLimitStore: new DatabaseRateLimitStore(db), landingWaitMs: 50, metrics, ...overrides })),
    0,
  );
  const process = { ingress, stripe, temporalCalls: calls };
  processes.push(process);
  return process;
}
afterEach(async () => {
  await Promise.all(processes.splice(0).map((p) => p.ingress.close()));
});

function paidSession(id: string, items: number): EmulatedSession {
  return {
    id,
    status: 'complete',
    paymentStatus: 'paid',
    currency: 'usd',
    customerEmail: 'jenny@example.com',
    customerName: 'Jenny Rosen',
    lineItems: Array.from({ length: items }, (_, i) => ({
      id: `li_${id.slice(8)}_${i}`,
      description: `Item ${i}`,
      quantity: 1,
      priceId: 'price_item',
      productId: 'prod_item',
      unitAmount: 100,
    })),
  };
}

const landing = (process: Process, sessionId: string, client = '203.0.113.1') =>
  fetch(`${process.ingress.url}/after-checkout?session_id=${sessionId}`, { headers: { 'x-forwarded-for': client } });

/** The Stripe requests the emulator saw for a session since `from` (an index into its requests). */
const requestsFor = (sessionId: string, from = 0) => emulator.requests.slice(from).filter((request) => request.includes(sessionId)).length;

describe('the existence check', () => {
  test('when a visitor brings a made-up ID, then the ingress asks Stripe itself and starts no workflow', async () => {
    const process = await startProcess();
    const sessionId = newSessionId();
    const before = emulator.requests.length;

    const page = await landing(process, sessionId);
    expect(page.status).toBe(404);
    expect(await page.text()).toContain('Order not found');
    expect(requestsFor(sessionId, before)).toBe(1);
    // Nothing reached Temporal: no checkSession execution, no fulfillment.
    expect(process.temporalCalls).toEqual([]);
  });

  test('when Stripe knows the session, then its workflow is started, and the ID is never cached as unknown', async () => {
    const process = await startProcess();
    const session = paidSession(newSessionId(), 1);
    emulator.put(session);
    const before = emulator.requests.length;

    expect((await landing(process, session.id)).status).toBe(200);
    expect(process.temporalCalls).toEqual(['workflow.start']);
    // No record yet (nothing runs the workflow here): the next visit asks Stripe again rather than believe it unknown.
    expect((await landing(process, session.id)).status).toBe(200);
    expect(requestsFor(session.id, before)).toBe(2);
  });

  test('when an unknown ID comes back, then every ingress process believes it unknown for a while without asking Stripe, then asks again', async () => {
    const [first, second] = [await startProcess({ unknownForMs: 1500 }), await startProcess({ unknownForMs: 1500 })];
    const sessionId = newSessionId();
    const before = emulator.requests.length;

    expect((await landing(first, sessionId)).status).toBe(404);
    expect((await landing(first, sessionId)).status).toBe(404);
    expect((await landing(second, sessionId)).status).toBe(404); // the other process: the cache is the database's
    expect(requestsFor(sessionId, before)).toBe(1);

    await new Promise((resolve) => setTimeout(resolve, 1600));
    expect((await landing(second, sessionId)).status).toBe(404);
    expect(requestsFor(sessionId, before)).toBe(2);
  });

  test('when a botnet floods two ingress processes with made-up IDs during real payments, then the payments are read at fulfillment\'s rate, visitors stay within their share, and Stripe never answers 429', async () => {
    const [first, second] = [await startProcess(), await startProcess()];
    const { visitorsPerSecond, fulfillmentPerSecond } = config.stripe.budget;
    // Real payments with 150 line items each: three requests a session (the session, two pages of items).
    const paid = Array.from({ length: 10 }, () => paidSession(newSessionId(), 150));
    for (const session of paid) emulator.put(session);
    const flood = Array.from({ length: 240 }, () => newSessionId());
    const limitedBefore = emulator.rateLimited();
    const requestsBefore = emulator.requests.length;

    const started = performance.now();
    let floodDone = 0;
    const answers: { status: number; retryAfter: string | null }[] = [];
    const flooding = (async () => {
      // 60 addresses, 16 requests in flight, spread over both processes.
      let next = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < flood.length) {
            const i = next++;
            const page = await landing(i % 2 ? first : second, flood[i]!, `198.51.100.${i % 60}`);
            await page.text();
            answers.push({ status: page.status, retryAfter: page.headers.get('retry-after') });
          }
        }),
      );
      floodDone = performance.now();
    })();
    // Fulfillment's reads, from both processes' activity clients, while the flood lasts.
    let readsDone = 0;
    const reads = Promise.allSettled(paid.map((session, i) => retrieveSessionSummary((i % 2 ? first : second).stripe, session.id))).finally(
      () => (readsDone = performance.now()),
    );
    const [settled] = await Promise.all([reads, flooding]);

    // Every payment read in full, none refused by the budget.
    const failures = settled.filter((result) => result.status === 'rejected').map((result) => budgetExhaustion(result.reason)?.message ?? String(result.reason));
    expect(failures).toEqual([]);
    expect(settled.map((result) => (result.status === 'fulfilled' ? result.value.summary.lineItems.length : 0))).toEqual(paid.map(() => 150));
    expect(emulator.rateLimited() - limitedBefore).toBe(0);
    // 30 requests at fulfillment's 16/s (a burst of 4): about 1.6 s, not held up behind the flood.
    expect((readsDone - started) / 1000).toBeLessThan((30 - 4) / fulfillmentPerSecond + 2);

    // The flood got 404s while its share lasted, then 503 with Retry-After; never a workflow.
    expect(answers).toHaveLength(flood.length);
    expect(answers.filter((a) => a.status !== 404 && a.status !== 503)).toEqual([]);
    expect(answers.filter((a) => a.status === 503 && !a.retryAfter)).toEqual([]);
    expect(answers.some((a) => a.status === 503)).toBe(true);
    expect([...first.temporalCalls, ...second.temporalCalls]).toEqual([]);
    // Visitors' Stripe requests, from both processes together: within their one share (its rate over the flood's time, its burst of one, one for rounding).
    const floodSeconds = (floodDone - started) / 1000;
    const visitorRequests = emulator.requests.slice(requestsBefore).filter((request) => flood.some((id) => request.includes(id))).length;
    expect(visitorRequests).toBeLessThanOrEqual(Math.floor(visitorsPerSecond * floodSeconds) + 2);
    expect(answers.filter((a) => a.status === 404)).toHaveLength(visitorRequests);
  });
});

describe('the rate limit', () => {
  test('when one client spreads its requests over two ingress processes, then the limit holds across both', async () => {
    const [first, second] = [await startProcess({ rateLimitPerMinute: 4 }), await startProcess({ rateLimitPerMinute: 4 })];
    const client = '192.0.2.77';
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const process = i % 2 ? second : first;
      const response = await fetch(`${process.ingress.url}/api/fulfillments/${newSessionId()}`, { headers: { 'x-forwarded-for': client } });
      statuses.push(response.status);
    }
    expect(statuses).toEqual([404, 404, 404, 404, 429, 429]);
    // Another client has its own count.
    expect((await fetch(`${second.ingress.url}/api/fulfillments/${newSessionId()}`, { headers: { 'x-forwarded-for': '192.0.2.78' } })).status).toBe(404);
  });

  test('when a window has passed, then the count starts again, and a reset or a decrement changes only that client', async () => {
    const store = new DatabaseRateLimitStore(db, 'unit:');
    store.init({ windowMs: 300 } as never);
    expect((await store.increment('a')).totalHits).toBe(1);
    expect((await store.increment('a')).totalHits).toBe(2);
    expect((await store.increment('b')).totalHits).toBe(1);
    await store.decrement('a');
    expect((await store.get('a'))?.totalHits).toBe(1);
    await store.resetKey('b');
    expect(await store.get('b')).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(await store.get('a')).toBeUndefined();
    const reopened = await store.increment('a');
    expect(reopened.totalHits).toBe(1);
    expect(reopened.resetTime!.getTime()).toBeGreaterThan(Date.now());
  });
});
