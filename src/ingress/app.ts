import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type ErrorRequestHandler, type Request, type Response } from 'express';
import { rateLimit, type Store } from 'express-rate-limit';
import helmet from 'helmet';
import Stripe from 'stripe';
import { isFinalStatus, WAITING_STATUSES, isMoneyBackEvent, isPaymentIntentEvent, receivedView, type CheckoutEventType } from '../../workflows/definitions';
import { ORDER_METADATA_KEY } from '../stripe/payment-intents';
import { ackOutcome, metricsHandler, type Metrics } from '../metrics';
import { orderKindOf, PAYMENT_INTENT_ID_PATTERN, SESSION_ID_PATTERN } from '../orders/kinds';
import type { FulfillmentRecord, FulfillmentStore } from '../store/fulfillment-store';
import type { FulfillmentStarter } from '../temporal/fulfillment-starter';
import { noStore } from './no-store';
import { PENDING_STATUSES, renderErrorPage, renderLandingPage } from './pages';
import { CannotCheckNow, type SessionCheck } from './session-check';
import { verifyEvent } from './verify-event';

export interface IngressLogger {
  debug(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

export interface IngressDeps {
  starter: FulfillmentStarter;
  store: FulfillmentStore;
  /** Verifies webhook signatures (no API calls). */
  stripe: Stripe;
  /** The landing page's question for a session with no record: does Stripe know it? (the visitors' share of the budget). */
  sessionCheck: SessionCheck;
  /**
   * Where the landing page's and status API's rate limit counts each client: the database, so the
   * limit holds across every ingress process (`DatabaseRateLimitStore`). Default: this process's
   * memory.
   */
  rateLimitStore?: Store;
  webhookSecrets: string[];
  /** Whether the API key is a live one: events from the other mode start nothing. */
  livemode: boolean;
  /** Express's `trust proxy`: which proxies' X-Forwarded-For to believe, so rate limits see real clients. */
  trustProxy: TrustProxy;
  /** Each throws when its dependency is unreachable. */
  readiness: { temporal: () => Promise<void>; database: () => Promise<void> };
  logger: IngressLogger;
  /** Served on GET /metrics; the webhook route counts and times its answers there. */
  metrics: Metrics;
  /** How long the landing page waits for the fulfillment attempt before rendering. Default 5 s. */
  landingWaitMs?: number;
  /** Requests per minute per client on the landing page and status API. Default 120. */
  rateLimitPerMinute?: number;
  /**
   * Webhook requests per minute per client refused with a 4xx (a bad signature, a malformed event,
   * the wrong mode). Default 600. Stripe's events, answered 2xx or 503, are never counted, so its
   * bursts and its redeliveries after an outage pass.
   */
  webhookRefusalsPerMinute?: number;
  /** How long /readyz answers from its last check, so a flood of calls cannot hammer Temporal and the database. Default 1 s. */
  readinessCacheMs?: number;
  /**
   * How long one webhook's handling may take in all (Temporal calls and database reads) before it
   * is answered 503 so Stripe retries. Default 10 s: Stripe gives up on a request after about 20 s.
   */
  webhookDeadlineMs?: number;
}

/** Express's `trust proxy` values: a boolean, a hop count, or addresses and subnets ('loopback', '10.0.0.0/8', ...). */
export type TrustProxy = boolean | number | string[];

const WEBHOOK_BODY_LIMIT = '1mb';
// Readiness answers within this even when a dependency hangs.
const READINESS_TIMEOUT_MS = 2000;
const CHECKOUT_EVENTS = new Set<string>([
  'checkout.session.completed',
  'checkout.session.async_payment_succeeded',
  'checkout.session.async_payment_failed',
  'checkout.session.expired',
]);

/**
 * The thin HTTP edge: verifies and forwards Stripe's webhooks to Temporal, serves the landing page,
 * the status API and health checks. It holds no state of its own.
 */
export function createIngressApp(deps: IngressDeps): express.Express {
  const { starter, store, stripe, logger, metrics } = deps;
  const landingWaitMs = deps.landingWaitMs ?? 5000;
  const webhookDeadlineMs = deps.webhookDeadlineMs ?? 10_000;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', deps.trustProxy);

  // A fresh nonce per response lets the landing page's one inline script run under a strict CSP.
  app.use((_req, res, next) => {
    res.locals.nonce = randomBytes(16).toString('base64');
    next();
  });
  app.use(
    helmet({
      contentSecurityPolicy: {
        directives: {
          scriptSrc: ["'self'", (_req, res) => `'nonce-${(res as Response).locals.nonce as string}'`],
          connectSrc: ["'self'"],
        },
      },
    }),
  );

  const limiter = rateLimit({
    windowMs: 60_000,
    limit: deps.rateLimitPerMinute ?? 120,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    message: { error: 'too many requests; slow down' },
    ...(deps.rateLimitStore ? { store: deps.rateLimitStore } : {}),
    // A database that does not answer lets the request through: the page and the status API need
    // that database too, and answer 503 themselves, rather than a 500 from the limiter.
    passOnStoreError: true,
  });

  // Counts only what a bot without the webhook secret gets: 4xx refusals. Stripe's signed events, 2xx
  // or 503 while Temporal is away, are not counted, however many. Before the body is read, so a
  // request over the limit costs no parsing. In memory, per process: a shared store would put two
  // database writes in front of every event Stripe sends, and Stripe's must pass while the
  // database is away.
  const webhookLimiter = rateLimit({
    windowMs: 60_000,
    limit: deps.webhookRefusalsPerMinute ?? 600,
    skipSuccessfulRequests: true,
    requestWasSuccessful: (_req, res) => res.statusCode < 400 || res.statusCode >= 500,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    message: { error: 'too many refused webhooks; slow down' },
  });

  // Every answer to Stripe, however it ends (including the body-size refusal of the error handler).
  const observeAck: express.RequestHandler = (_req, res, next) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const outcome = ackOutcome(res.statusCode, res.locals.delivery as string | undefined);
      metrics.webhookAcks.inc({ outcome, code: String(res.statusCode) });
      metrics.webhookAckSeconds.observe({ outcome }, Number(process.hrtime.bigint() - started) / 1e9);
    });
    next();
  };

  // --- Stripe webhook: raw body, verified, acknowledged only once Temporal has accepted. ---
  app.post('/webhook', observeAck, webhookLimiter, express.raw({ type: () => true, limit: WEBHOOK_BODY_LIMIT }), async (req: Request, res: Response) => {
    // Stripe always sends JSON; anything else is not Stripe (415, nothing read further).
    if (!req.is('application/json')) return void res.status(415).json({ error: 'Content-Type must be application/json' });
    const verified = verifyEvent(stripe.webhooks, {
      body: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0),
      header: req.header('stripe-signature'),
      secrets: deps.webhookSecrets,
      now: Date.now(),
    });
    if ('refused' in verified) {
      logger.warn('Webhook rejected', { reason: verified.error });
      return void res.status(400).json({ error: verified.error });
    }
    const event = verified.event;
    // Past the deadline Stripe is answered 503 and retries; whatever was still under way may still
    // land in Temporal, which the workflow ID and the event ID make harmless.
    const deadline = setTimeout(() => {
      if (res.headersSent) return;
      logger.error('Webhook not accepted within its deadline; answering 503 so Stripe retries', { eventId: event.id, type: event.type, deadlineMs: webhookDeadlineMs });
      res.status(503).json({ error: 'fulfillment is temporarily unavailable; retry later' });
    }, webhookDeadlineMs);
    res.on('close', () => clearTimeout(deadline));
    const reply = (status: number, body: Record<string, unknown>, delivery?: string) => {
      if (res.headersSent) return; // answered 503 at the deadline
      if (delivery) res.locals.delivery = delivery;
      res.status(status).json(body);
    };
    if (!isWellFormedEvent(event)) {
      // Signed by Stripe's secret but not an event we can act on: retrying will not change it.
      logger.warn('Webhook rejected: signed but malformed event');
      return void res.status(400).json({ error: 'malformed event: expected an object with id, type, livemode and data.object' });
    }
    metrics.webhookEvents.inc({ type: event.type });
    // Not acknowledged: Stripe retries with backoff for up to three days.
    const notAccepted = (err: unknown) => {
      logger.error('Temporal (or the database) did not accept the webhook; answering 503 so Stripe retries', {
        eventId: event.id,
        type: event.type,
        error: (err as Error).message,
      });
      reply(503, { error: 'fulfillment is temporarily unavailable; retry later' });
    };
    if (event.account) {
      // A connected account's event (a Connect endpoint): its sessions are not ours to read or fulfill.
      logger.error('Webhook refused: an event from a connected account, and Connect is not configured', {
        eventId: event.id,
        type: event.type,
      });
      return void res.status(400).json({ error: 'events from connected accounts are not handled by this endpoint' });
    }
    if (event.livemode !== deps.livemode) {
      // Not acknowledged, so Stripe keeps the event while an operator fixes the keys or the endpoint.
      logger.error('Webhook refused: its mode does not match the Stripe API key', {
        eventId: event.id,
        type: event.type,
        eventLivemode: event.livemode,
        keyLivemode: deps.livemode,
      });
      return void res.status(400).json({ error: `event livemode=${event.livemode} does not match the API key's mode` });
    }
    if (isLegacySourcesEvent(event)) {
      // A merchant migrating from Sources still sends these; acting on them would be a second, deprecated path.
      logger.warn(
        'Webhook ignored: a legacy Sources event. This product fulfills Checkout Sessions; see README, "Migrating from the Sources API"',
        { eventId: event.id, type: event.type },
      );
      res.locals.delivery = 'ignored';
      return void res.status(200).json({ received: true, ignored: true, reason: 'legacy Sources event; see the README, "Migrating from the Sources API"' });
    }
    if (isMoneyBackEvent(event.type)) {
      // Refunds and disputes name the PaymentIntent; the session that took it settles them.
      const paymentIntentId = paymentIntentOf(event.data.object);
      if (!paymentIntentId) {
        logger.debug('Webhook ignored: a refund or dispute without a PaymentIntent is not a Checkout payment', { eventId: event.id, type: event.type });
        res.locals.delivery = 'ignored';
        return void res.status(200).json({ received: true, ignored: true });
      }
      const moneyBackEvent = { id: event.id, type: event.type };
      try {
        // The order this payment is for: a Checkout Session's record, or a PaymentIntent order's own.
        const sessionId = await store.orderOfPayment(paymentIntentId);
        const delivery = sessionId
          ? await starter.deliverMoneyBack(sessionId, moneyBackEvent)
          : await starter.routeMoneyBack(paymentIntentId, moneyBackEvent);
        logger.info('Webhook accepted', { eventId: event.id, type: event.type, sessionId, paymentIntentId, delivery });
        return reply(200, { received: true, sessionId, paymentIntentId, delivery }, delivery === 'routing' || delivery === 'routed_before' ? 'accepted' : delivery);
      } catch (err) {
        return notAccepted(err);
      }
    }
    if (isPaymentIntentEvent(event.type)) {
      // Orders paid without Checkout: the PaymentIntent's metadata names the merchant's order.
      const intent = event.data.object as { id?: unknown; metadata?: Record<string, unknown> | null };
      const orderId = intent.metadata?.[ORDER_METADATA_KEY];
      if (typeof intent.id !== 'string' || !PAYMENT_INTENT_ID_PATTERN.test(intent.id) || typeof orderId !== 'string' || !orderId) {
        // Checkout's own PaymentIntents (and any without an order) are not a second path: their session's workflow owns them.
        logger.debug('Webhook ignored: a PaymentIntent whose metadata names no order', { eventId: event.id, type: event.type });
        res.locals.delivery = 'ignored';
        return void res.status(200).json({ received: true, ignored: true });
      }
      try {
        const delivery = await starter.deliver(intent.id, { id: event.id, type: event.type });
        logger.info('Webhook accepted', { eventId: event.id, type: event.type, paymentIntentId: intent.id, delivery });
        return reply(200, { received: true, paymentIntentId: intent.id, delivery }, delivery);
      } catch (err) {
        return notAccepted(err);
      }
    }
    if (!CHECKOUT_EVENTS.has(event.type)) {
      logger.debug('Webhook ignored', { eventId: event.id, type: event.type });
      res.locals.delivery = 'ignored';
      return void res.status(200).json({ received: true, ignored: true });
    }
    const sessionId = (event.data.object as { id?: unknown }).id;
    if (typeof sessionId !== 'string' || !SESSION_ID_PATTERN.test(sessionId)) {
      return void res.status(400).json({ error: 'event does not carry a Checkout Session ID' });
    }
    const checkoutEvent = { id: event.id, type: event.type as CheckoutEventType };
    try {
      const delivery =
        event.type === 'checkout.session.expired'
          ? await starter.notify(sessionId, checkoutEvent)
          : await starter.deliver(sessionId, checkoutEvent);
      logger.info(res.headersSent ? 'Webhook accepted by Temporal after its deadline (answered 503; Stripe retries)' : 'Webhook accepted', { eventId: event.id, type: event.type, sessionId, delivery });
      return reply(200, { received: true, sessionId, delivery }, delivery);
    } catch (err) {
      return notAccepted(err);
    }
  });

  // Set before the rate limiter, so its 429 is not cached either; every method, every sub-path.
  app.use(['/after-checkout', '/api/fulfillments'], noStore);

  // --- Landing page: the success / return URL, ?session_id={CHECKOUT_SESSION_ID}. ---
  // Link scanners and previews send HEAD: it answers without starting anything (Express would
  // otherwise run the GET handler for it).
  app.head('/after-checkout', limiter, (_req, res) => {
    res.status(200).type('html').end();
  });
  app.options('/after-checkout', (_req, res) => {
    res.status(204).set('Allow', 'GET, HEAD').end();
  });
  app.get('/after-checkout', limiter, async (req: Request, res: Response) => {
    const sessionId = req.query.session_id;
    if (typeof sessionId !== 'string' || !SESSION_ID_PATTERN.test(sessionId)) {
      return void res
        .status(400)
        .type('html')
        .send(renderErrorPage('Missing order reference', 'This page needs a valid session_id (cs_...) in its address.'));
    }
    try {
      let record = await store.getRecord(sessionId);
      if (!record) {
        // Ask Stripe before starting anything (within the visitors' share of the budget): made-up IDs start nothing.
        let known: boolean;
        try {
          known = await deps.sessionCheck.exists(sessionId);
        } catch (err) {
          if (!(err instanceof CannotCheckNow)) throw err;
          logger.debug('Landing page could not ask Stripe: the visitors\' share of the request budget is spent', { sessionId });
          return void res
            .status(503)
            .set('Retry-After', String(err.retryAfterSeconds))
            .type('html')
            .send(renderErrorPage('Please try again', 'We cannot look up this order right now. Reload this page in a few seconds.'));
        }
        if (!known) {
          return void res
            .status(404)
            .type('html')
            .send(renderErrorPage('Order not found', 'We could not find a checkout with this reference.'));
        }
      }
      if (!record || !isFinalStatus(record.view.status)) {
        // Waiting for Stripe: the customer's visit may mean Stripe knows more than we were told (Stripe's guide fulfills from here too).
        if (record && WAITING_STATUSES.includes(record.view.status)) await starter.deliver(sessionId, { id: `landing:${Date.now()}`, type: 'customer.landed' });
        else await starter.ensureStarted(sessionId);
        record = await waitForOutcome(store, sessionId, landingWaitMs);
      }
      const view = record?.view ?? receivedView(sessionId);
      res
        .status(200)
        .type('html')
        .send(renderLandingPage(view, { nonce: res.locals.nonce as string, statusUrl: `/api/fulfillments/${sessionId}` }));
    } catch (err) {
      logger.error('Landing page could not reach its dependencies', { sessionId, error: (err as Error).message });
      res
        .status(503)
        .type('html')
        .send(renderErrorPage('Please try again', 'We received your order but cannot show it right now. Reload this page in a moment.'));
    }
  });

  // --- Status API for the landing page and operators. ---
  app.get('/api/fulfillments/:sessionId', limiter, async (req: Request, res: Response) => {
    const sessionId = String(req.params.sessionId);
    // A Checkout Session's, or an order paid by PaymentIntent without Checkout.
    if (!orderKindOf(sessionId)) {
      return void res.status(400).json({ error: 'not a Checkout Session ID (cs_...) or PaymentIntent ID (pi_...)' });
    }
    try {
      const record = await store.getRecord(sessionId);
      if (!record) return void res.status(404).json({ error: 'no fulfillment for this session' });
      res.json(toStatusResponse(record));
    } catch (err) {
      logger.error('Status API could not read the database', { sessionId, error: (err as Error).message });
      res.status(503).json({ error: 'temporarily unavailable' });
    }
  });

  // --- Operators: Prometheus scrapes it (block it at the public load balancer; never rate-limited). ---
  app.get('/metrics', metricsHandler(metrics));

  // --- Health. ---
  app.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });
  // Anonymous callers learn only which dependency is down; the detail (hosts, ports, errors) goes to the log.
  // Calls within a check, or within readinessCacheMs of it, share its result.
  const checkReadiness = sharedFor(deps.readinessCacheMs ?? 1000, async () => {
    const checks = await Promise.all(
      Object.entries(deps.readiness).map(async ([name, check]) => {
        try {
          await withTimeout(check(), READINESS_TIMEOUT_MS, `no answer within ${READINESS_TIMEOUT_MS} ms`);
          return [name, 'ok'] as const;
        } catch (err) {
          logger.warn('Readiness check failed', { check: name, error: (err as Error).message });
          return [name, 'unavailable'] as const;
        }
      }),
    );
    return { ready: checks.every(([, state]) => state === 'ok'), checks: Object.fromEntries(checks) };
  });
  app.get('/readyz', async (_req, res) => {
    const readiness = await checkReadiness();
    res.status(readiness.ready ? 200 : 503).json(readiness);
  });

  app.use((_req, res) => {
    res.status(404).json({ error: 'not found' });
  });

  const onError: ErrorRequestHandler = (err: { type?: string; status?: number; message?: string }, _req, res, _next) => {
    if (err.type === 'entity.too.large') return void res.status(413).json({ error: `body larger than ${WEBHOOK_BODY_LIMIT}` });
    if (err.status && err.status >= 400 && err.status < 500) return void res.status(err.status).json({ error: err.message });
    logger.error('Unhandled error in the ingress', { error: err.message });
    res.status(500).json({ error: 'internal error' });
  };
  app.use(onError);
  return app;
}

/** What the handler relies on, checked after the signature: a signed `null` or a bare object is refused, not crashed on. */
function isWellFormedEvent(event: unknown): event is Stripe.Event {
  if (typeof event !== 'object' || event === null) return false;
  const { id, type, livemode, data } = event as Record<string, unknown>;
  const object = (data as { object?: unknown } | null | undefined)?.object;
  return typeof id === 'string' && typeof type === 'string' && typeof livemode === 'boolean' && typeof object === 'object' && object !== null;
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * `run`, shared: a call while a run is under way, or within `ms` after it settled, gets that run's
 * result instead of starting another. `run` must not reject.
 */
function sharedFor<T>(ms: number, run: () => Promise<T>): () => Promise<T> {
  let last: { result: Promise<T>; settledAt?: number } | undefined;
  return () => {
    if (last && (last.settledAt === undefined || Date.now() - last.settledAt < ms)) return last.result;
    const current: { result: Promise<T>; settledAt?: number } = { result: run() };
    const settled = () => {
      current.settledAt = Date.now();
    };
    current.result.then(settled, settled);
    last = current;
    return current.result;
  };
}

/** A reference field of a Stripe object: an ID, or the object itself when expanded. */
function referencedId(object: unknown, field: string): string | undefined {
  const value = (object as Record<string, unknown>)[field];
  const id = typeof value === 'string' ? value : (value as { id?: unknown } | null | undefined)?.id;
  return typeof id === 'string' ? id : undefined;
}

/** The PaymentIntent a charge, refund or dispute belongs to. */
function paymentIntentOf(object: unknown): string | null {
  const id = referencedId(object, 'payment_intent');
  return id !== undefined && PAYMENT_INTENT_ID_PATTERN.test(id) ? id : null;
}

const SOURCES_EVENTS = new Set(['source.chargeable', 'source.canceled', 'source.failed']);

/**
 * The deprecated Sources flow's events: `source.*`, and `charge.succeeded` / `charge.failed` for a
 * charge made from a Source (`src_...`). Charges of Checkout and PaymentIntents pay with a
 * PaymentMethod instead, so their charge events are not mistaken for these.
 */
function isLegacySourcesEvent(event: { type: string; data: { object: unknown } }): boolean {
  if (SOURCES_EVENTS.has(event.type)) return true;
  if (event.type !== 'charge.succeeded' && event.type !== 'charge.failed') return false;
  return referencedId(event.data.object, 'source')?.startsWith('src_') ?? false;
}

/** Waits, bounded, for the workflow to leave the pending statuses (fulfilled, awaiting payment, failed...). */
async function waitForOutcome(store: FulfillmentStore, sessionId: string, timeoutMs: number): Promise<FulfillmentRecord | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const record = await store.getRecord(sessionId);
    if ((record && !PENDING_STATUSES.has(record.view.status)) || Date.now() >= deadline) return record;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** What the status API shows: what the landing page shows, and no personal data. */
function toStatusResponse({ view, createdAt, updatedAt }: FulfillmentRecord) {
  return {
    sessionId: view.sessionId,
    status: view.status,
    paymentStatus: view.paymentStatus,
    currency: view.currency,
    amountTotal: view.amountTotal,
    lineItems: view.lineItems,
    fulfilled: view.fulfilled,
    receiptSent: view.receiptSent,
    reason: view.reason,
    refunds: (view.refunds ?? []).map(({ id, amount, currency, status, reversed, note }) => ({ id, amount, currency, status, reversed, note })),
    disputes: (view.disputes ?? []).map(({ id, amount, currency, status, outcome }) => ({ id, amount, currency, status, outcome })),
    createdAt: createdAt.toISOString(),
    updatedAt: updatedAt.toISOString(),
  };
}

export interface RunningIngress {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * How long a client may take and how many may be connected at once, so slow clients cannot hold
 * the server. Node's defaults are 60 s for the headers, 300 s for a request, and no cap.
 */
export interface ServerBounds {
  /** Until the request's headers have arrived, however slowly they trickle in: then 408 and closed. */
  headersTimeoutMs: number;
  /** Until the whole request, body included, has arrived (the handler's own time is not counted). */
  requestTimeoutMs: number;
  /** An idle kept-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** Connections past this many are closed as they arrive. */
  maxConnections: number;
}

/** Generous for real clients: Stripe and browsers send their headers at once, and the largest body (a 1 MB webhook) in seconds. */
export const SERVER_BOUNDS: ServerBounds = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000, maxConnections: 1024 };

/** An HTTP server for `app`, within `bounds`. */
export function boundedServer(app: express.Express, bounds: ServerBounds = SERVER_BOUNDS): http.Server {
  const server = http.createServer(
    {
      headersTimeout: bounds.headersTimeoutMs,
      requestTimeout: bounds.requestTimeoutMs,
      // Node looks for expired requests on this interval (default 30 s, which would stretch a 10 s bound to 40 s).
      connectionsCheckingInterval: Math.min(1000, bounds.headersTimeoutMs),
    },
    app,
  );
  server.keepAliveTimeout = bounds.keepAliveTimeoutMs;
  server.maxConnections = bounds.maxConnections;
  return server;
}

/** Listens on `host:port` (port 0: any free port), within `bounds`. */
export async function listen(app: express.Express, port: number, host = '127.0.0.1', bounds: ServerBounds = SERVER_BOUNDS): Promise<RunningIngress> {
  const server = boundedServer(app, bounds);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${actual}`,
    port: actual,
    close: () =>
      new Promise((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
