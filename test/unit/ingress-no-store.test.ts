/**
 * The landing page and the status API show an order to whoever holds its ID, so no answer of
 * theirs may be cached, refusals included. The real ingress app runs in-process on port 0, with a
 * store and a starter of the test's own (no Temporal, no database).
 */
import { ingressDeps } from '../helpers/ingress-deps';
import { createIngressApp, listen, type IngressDeps, type RunningIngress } from '../../src/ingress/app';
import type { FulfillmentRecord, FulfillmentStore } from '../../src/store/fulfillment-store';
import { receivedView } from '../../workflows/definitions';
import { newSessionId } from '../fixtures/sessions';

const known = newSessionId();
const broken = newSessionId(); // the database fails on this one
const unknown = newSessionId();

const fulfilledRecord: FulfillmentRecord = {
  view: {
    ...receivedView(known),
    status: 'fulfilled',
    paymentStatus: 'paid',
    mode: 'payment',
    currency: 'usd',
    amountTotal: 2000,
    lineItems: [{ description: 'T-shirt', quantity: 1, amountTotal: 2000 }],
    fulfilled: [{ lineItemId: 'li_1', description: 'T-shirt', quantity: 1 }],
    receiptSent: true,
  },
  createdAt: new Date(),
  updatedAt: new Date(),
};

const store = {
  getRecord: async (id: string) => {
    if (id === broken) throw new Error('database unavailable');
    return id === known ? fulfilledRecord : null;
  },
  waitingSessions: async () => [],
} as unknown as FulfillmentStore;

// Stripe knows none of the sessions the store has no record of (ingressDeps' default): the landing page answers 404.
const deps = (overrides: Partial<IngressDeps> = {}): IngressDeps => ingressDeps({ store }, overrides);

let ingress: RunningIngress;
let limited: RunningIngress;
beforeAll(async () => {
  ingress = await listen(createIngressApp(deps()), 0);
  limited = await listen(createIngressApp(deps({ rateLimitPerMinute: 1 })), 0);
});
afterAll(async () => {
  await ingress?.close();
  await limited?.close();
});

describe('Cache-Control on the landing page and the status API', () => {
  test.each([
    ['the landing page shows a fulfilled order', 'GET', `/after-checkout?session_id=${known}`, 200],
    ['the landing page has no session_id', 'GET', '/after-checkout', 400],
    ['the landing page is for a session Stripe does not know', 'GET', `/after-checkout?session_id=${unknown}`, 404],
    ['the landing page cannot reach the database', 'GET', `/after-checkout?session_id=${broken}`, 503],
    ['the landing page is asked with HEAD', 'HEAD', `/after-checkout?session_id=${known}`, 200],
    ['the landing page is asked with OPTIONS', 'OPTIONS', `/after-checkout?session_id=${known}`, 204],
    ['the status API shows a fulfilled order', 'GET', `/api/fulfillments/${known}`, 200],
    ['the status API is asked about a malformed ID', 'GET', '/api/fulfillments/not-a-session', 400],
    ['the status API has no record of the order', 'GET', `/api/fulfillments/${unknown}`, 404],
    ['the status API cannot reach the database', 'GET', `/api/fulfillments/${broken}`, 503],
    ['the status API is asked without an ID', 'GET', '/api/fulfillments/', 404],
  ] as const)('when %s, then the answer says no-store', async (_name, method, path, code) => {
    const response = await fetch(`${ingress.url}${path}`, { method });
    expect(response.status).toBe(code);
    expect(response.headers.get('cache-control')).toBe('no-store');
  });

  test.each([
    ['the landing page', `/after-checkout?session_id=${known}`],
    ['the status API', `/api/fulfillments/${known}`],
  ])('when a client is over the rate limit on %s, then its 429 says no-store too', async (_name, path) => {
    await fetch(`${limited.url}${path}`); // uses up the client's one request a minute (or it already was)
    const response = await fetch(`${limited.url}${path}`);
    expect(response.status).toBe(429);
    expect(response.headers.get('cache-control')).toBe('no-store');
  });
});
