/**
 * Slow and greedy clients cannot hold the ingress: the real app runs in-process on port 0 with the
 * same server bounds the product uses, shortened to a second or two, and raw sockets play the
 * client that sends one byte at a time. Assertions are "closed before N s", N well above the bound.
 */
import net from 'node:net';
import Stripe from 'stripe';
import { boundedServer, createIngressApp, listen, SERVER_BOUNDS, type IngressDeps, type RunningIngress, type ServerBounds } from '../../src/ingress/app';
import type { FulfillmentStore } from '../../src/store/fulfillment-store';
import type { FulfillmentStarter } from '../../src/temporal/fulfillment-starter';
import { ingressDeps } from '../helpers/ingress-deps';

const WEBHOOK_SECRET = 'whsec_test_slow_clients';
const store = { getRecord: async () => null, waitingSessions: async () => [] } as unknown as FulfillmentStore;

const deps = (overrides: Partial<IngressDeps> = {}): IngressDeps => ingressDeps({ store, webhookSecret: WEBHOOK_SECRET }, overrides);

const SHORT: ServerBounds = { headersTimeoutMs: 1000, requestTimeoutMs: 2000, keepAliveTimeoutMs: 500, maxConnections: 1024 };

const running: RunningIngress[] = [];
const sockets: net.Socket[] = [];
async function start(bounds: ServerBounds, overrides: Partial<IngressDeps> = {}): Promise<RunningIngress> {
  const ingress = await listen(createIngressApp(deps(overrides)), 0, '127.0.0.1', bounds);
  running.push(ingress);
  return ingress;
}
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(running.splice(0).map((ingress) => ingress.close()));
});

/** A raw connection, with what the server sent and when it closed (milliseconds after connecting). */
async function connect(port: number): Promise<{ socket: net.Socket; received: () => string; closedAfterMs: Promise<number> }> {
  const socket = net.connect(port, '127.0.0.1');
  sockets.push(socket);
  let data = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (data += chunk));
  socket.on('error', () => undefined); // a reset is a close too
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  const connectedAt = Date.now();
  const closedAfterMs = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - connectedAt)));
  return { socket, received: () => data, closedAfterMs };
}

/** Writes `text` one byte every `everyMs`, until the socket closes or the text runs out. */
function trickle(socket: net.Socket, text: string, everyMs: number): void {
  let at = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || at >= text.length) return void clearInterval(timer);
    socket.write(text[at++]!);
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
}

/** Resolves with 'open' if `closed` has not settled within `ms`. */
function closedWithin(closedAfterMs: Promise<number>, ms: number): Promise<number | 'open'> {
  return Promise.race([closedAfterMs, new Promise<'open'>((resolve) => setTimeout(() => resolve('open'), ms))]);
}

describe('server bounds', () => {
  test('when the ingress builds its server, then headers, request, keep-alive and connections are bounded (10 s, 30 s, 5 s, 1024)', () => {
    const server = boundedServer(createIngressApp(deps()));
    expect(SERVER_BOUNDS).toEqual({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000, maxConnections: 1024 });
    expect({
      headersTimeout: server.headersTimeout,
      requestTimeout: server.requestTimeout,
      keepAliveTimeout: server.keepAliveTimeout,
      maxConnections: server.maxConnections,
    }).toEqual({ headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000, maxConnections: 1024 });
  });

  test('when a client sends its headers one byte at a time, then the server answers 408 and closes it soon after the headers bound', async () => {
    const ingress = await start(SHORT);
    const client = await connect(ingress.port);
    trickle(client.socket, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${'a'.repeat(200)}\r\n\r\n`, 250);
    // The headers bound is 1 s, checked every second: 5 s is generous. Node's default would keep it 60 s.
    expect(await closedWithin(client.closedAfterMs, 5000)).not.toBe('open');
    expect(client.received()).toMatch(/^HTTP\/1\.1 408/);
  }, 15_000);

  test('when a client sends a webhook body one byte at a time, then the server closes it soon after the request bound', async () => {
    const ingress = await start(SHORT);
    const client = await connect(ingress.port);
    client.socket.write('POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n');
    trickle(client.socket, '{'.padEnd(1000, ' '), 250);
    // The request bound is 2 s: 6 s is generous. Node's default would keep it 300 s.
    expect(await closedWithin(client.closedAfterMs, 6000)).not.toBe('open');
  }, 15_000);

  test('when a kept-alive connection sits idle after its answer, then the server closes it soon after the keep-alive bound', async () => {
    const ingress = await start(SHORT);
    const client = await connect(ingress.port);
    client.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    // The keep-alive bound is 0.5 s: 3 s is generous. Node's default is 5 s.
    expect(await closedWithin(client.closedAfterMs, 3000)).not.toBe('open');
    expect(client.received()).toMatch(/^HTTP\/1\.1 200/);
  }, 10_000);

  test('when more clients connect than the cap, then the extra connection is closed at once and the others are still served', async () => {
    const ingress = await start({ ...SERVER_BOUNDS, maxConnections: 2 });
    const first = await connect(ingress.port);
    const second = await connect(ingress.port);
    const third = await connect(ingress.port);
    expect(await closedWithin(third.closedAfterMs, 3000)).not.toBe('open');
    expect(third.received()).toBe('');
    first.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await new Promise<void>((resolve) => first.socket.once('data', () => resolve()));
    expect(first.received()).toMatch(/^HTTP\/1\.1 200/);
    expect(second.socket.destroyed).toBe(false);
  }, 10_000);
});

describe('/webhook rate limit', () => {
  const post = (url: string, body: string, signature = Stripe.webhooks.generateTestHeaderString({ payload: body, secret: WEBHOOK_SECRET })) =>
    fetch(`${url}/webhook`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Stripe-Signature': signature }, body });
  const event = (id: string, type: string, object: Record<string, unknown>) => JSON.stringify({ id, object: 'event', type, livemode: false, data: { object } });

  test('when one client sends many signed events, Stripe redelivering while Temporal is away, then unsigned ones, then only the unsigned get 429, past the limit', async () => {
    const temporalAway = { deliver: async () => Promise.reject(new Error('Temporal is unreachable')) } as unknown as FulfillmentStarter;
    const ingress = await start(SERVER_BOUNDS, { webhookRefusalsPerMinute: 5, starter: temporalAway });
    // Stripe, far past the limit: acknowledged events are not counted...
    for (let i = 0; i < 40; i++) expect((await post(ingress.url, event(`evt_stripe_${i}`, 'customer.created', { id: 'cus_1' }))).status).toBe(200);
    // ...nor its redeliveries answered 503 while Temporal is away.
    const completed = event('evt_completed', 'checkout.session.completed', { id: 'cs_test_a1b2c3' });
    for (let i = 0; i < 20; i++) expect((await post(ingress.url, completed)).status).toBe(503);
    // A bot: its unsigned posts are refused, then slowed.
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await post(ingress.url, event(`evt_bot_${i}`, 'customer.created', { id: 'cus_1' }), 't=1,v1=forged')).status);
    expect(statuses).toEqual([400, 400, 400, 400, 400, 429, 429, 429]);
  });
});

describe('/readyz', () => {
  test('when many /readyz calls arrive at once, then Temporal and the database are checked once for all; after the cache window, then once more', async () => {
    const calls = { temporal: 0, database: 0 };
    let databaseUp = true;
    const ingress = await start(SERVER_BOUNDS, {
      readinessCacheMs: 1000,
      readiness: {
        temporal: async () => {
          calls.temporal++;
          await new Promise((resolve) => setTimeout(resolve, 100));
        },
        database: async () => {
          calls.database++;
          if (!databaseUp) throw new Error('connect ECONNREFUSED');
        },
      },
    });
    const answers = await Promise.all(Array.from({ length: 50 }, () => fetch(`${ingress.url}/readyz`)));
    expect(answers.map((answer) => answer.status)).toEqual(Array(50).fill(200));
    expect(await answers[0]!.json()).toEqual({ ready: true, checks: { temporal: 'ok', database: 'ok' } });
    expect(calls).toEqual({ temporal: 1, database: 1 });

    databaseUp = false;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const after = await fetch(`${ingress.url}/readyz`);
    expect(after.status).toBe(503);
    expect(await after.json()).toEqual({ ready: false, checks: { temporal: 'ok', database: 'unavailable' } });
    expect(calls).toEqual({ temporal: 2, database: 2 });
  });
});
