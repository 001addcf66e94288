import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Request, type Response } from 'express';

/**
 * A small local stand-in for the parts of Stripe's API this product reads, for tests and the
 * offline demo: Checkout Sessions with any number of line items, scenario control (a session
 * becomes paid, expires) and Stripe's error shapes. stripe-mock checks request shapes but is
 * stateless; this plays scenarios. Listens on 127.0.0.1 only.
 *
 * Stripe API:   GET /v1/checkout/sessions?created[gte]=&status=&payment_intent=&limit=&starting_after=   (newest first)
 *               GET /v1/checkout/sessions/:id[?expand[]=line_items]
 *               GET /v1/checkout/sessions/:id/line_items?limit=&starting_after=
 *               GET /v1/refunds?payment_intent=&created[gte]=&limit=&starting_after=, GET /v1/disputes?(the same)
 *               GET /v1/disputes/:id
 *               GET /v1/payment_intents?created[gte]=&limit=&starting_after=   (newest first)
 *               GET /v1/payment_intents/:id, POST /v1/payment_intents/:id/capture and /cancel
 *               GET /v1/events/:id   (the events a test told it of with putEvent: Stripe keeps 30 days of them)
 *               (an Idempotency-Key replays the first answer, as Stripe does)
 * Control:      PUT /emulator/sessions/:id   (JSON: EmulatedSession fields; creates or replaces)
 *               POST /emulator/fail-next     (JSON: { status, count }: the next Stripe API calls fail so:
 *                                             400 invalid request, 401 bad key, 403 permission, 429 rate limit, 5xx)
 *               GET /emulator/requests       (the Stripe API requests seen, for tests)
 *
 * Its answers have the shapes of Stripe's OpenAPI spec, every required field included
 * (test/unit/emulator-openapi.test.ts checks them against the spec stripe-mock carries). Its
 * behaviour is narrower than Stripe's; where it differs, a comment beside the code says so. In short:
 * objects exist only when a test puts them (nothing creates events, charges or balance
 * transactions), only the expansions the product asks for are honoured (others are ignored, where
 * Stripe expands or refuses them), unknown parameters are not refused (stripe-mock checks requests),
 * and lists filter on `created[gte]` only.
 */

export interface EmulatedLineItem {
  id: string;
  description: string;
  /** Null for a metered price. */
  quantity: number | null;
  priceId: string;
  productId: string;
  unitAmount: number;
}

export interface EmulatedSession {
  id: string;
  status: 'open' | 'complete' | 'expired';
  paymentStatus: 'paid' | 'unpaid' | 'no_payment_required';
  /** Default `payment`. */
  mode?: 'payment' | 'setup' | 'subscription';
  /** Unix seconds; default when it was put. */
  created?: number;
  currency: string;
  customerEmail: string | null;
  customerName: string | null;
  livemode?: boolean;
  /** Unix seconds; default 24 hours after creation. */
  expiresAt?: number;
  /** Default: `pi_` + the session ID's suffix once the session is complete in payment mode. */
  paymentIntentId?: string | null;
  lineItems: EmulatedLineItem[];
}

/** A refund of a payment (Stripe's Refund), listed by its PaymentIntent. */
export interface EmulatedRefund {
  id: string;
  paymentIntentId: string;
  amount: number;
  currency: string;
  status: 'pending' | 'succeeded' | 'failed' | 'canceled' | 'requires_action';
  metadata?: Record<string, string>;
  created?: number;
}

/** A dispute (chargeback) of a payment, listed by its PaymentIntent. */
export interface EmulatedDispute {
  id: string;
  paymentIntentId: string;
  amount: number;
  currency: string;
  /** `appeal_*`: a lost dispute appealed (it stays lost until the appeal is won). */
  status: 'warning_needs_response' | 'warning_under_review' | 'warning_closed' | 'needs_response' | 'under_review' | 'won' | 'lost' | 'prevented' | 'appeal_needs_response' | 'appeal_under_review';
  reason?: string;
  created?: number;
}

/** A PaymentIntent made without Checkout (the Payment Element), with what a test needs to play. */
export interface EmulatedPaymentIntent {
  id: string;
  amount: number;
  currency: string;
  status: 'requires_payment_method' | 'requires_confirmation' | 'requires_action' | 'processing' | 'requires_capture' | 'canceled' | 'succeeded';
  /** Default `automatic`. */
  captureMethod?: 'automatic' | 'manual';
  metadata?: Record<string, string>;
  /** Unix seconds by which an authorization must be captured (manual capture); default 7 days after creation. */
  captureBefore?: number;
  /** The last failure's code, as `last_payment_error.code`. */
  lastPaymentError?: string;
  created?: number;
  /** A partial authorization: less than `amount` can be captured (and is received once captured). */
  amountCapturable?: number;
  /** Captures and cancels Stripe performed (not replays of an idempotency key): what a test counts. */
  captures?: number;
  cancels?: number;
}

/**
 * The PaymentIntent a session paid through, as the emulator reports it. Behaviour that differs from
 * Stripe: it is only an ID; `GET /v1/payment_intents/:id` knows it only if a test put it too.
 */
export function paymentIntentOf(session: EmulatedSession): string | null {
  if (session.paymentIntentId !== undefined) return session.paymentIntentId;
  return session.status === 'complete' && (session.mode ?? 'payment') === 'payment' ? `pi_${session.id.replace(/^cs_/, '')}` : null;
}

/**
 * Stripe's error `type` is one of four (its OpenAPI spec's enum): a bad key (401), a missing
 * permission (403) and a rate limit (429, `code: rate_limit`) are invalid requests too. stripe-node
 * picks its error class by the HTTP status, so the status is what tells them apart.
 */
function errorTypeOf(status: number): string {
  if (status === 402) return 'card_error';
  return status >= 500 ? 'api_error' : 'invalid_request_error';
}

// Stripe's expanded `line_items` holds only the first page; the rest must be listed.
const EXPANDED_PAGE_SIZE = 10;
const MAX_PAGE_SIZE = 100;

/** Trouble the emulator plays until told otherwise (the fault suite's Stripe outages). */
export interface EmulatedTrouble {
  /** Every API answer waits this long. */
  latencyMs?: number;
  /** This share (0..1) of API calls fails with one of `statuses`, at random. */
  failureRate?: number;
  statuses?: number[];
  /** This share (0..1) of API calls answers only after `hangMs` (past the client's timeout). */
  hangRate?: number;
  hangMs?: number;
  /**
   * This share (0..1) of writes (POSTs) is applied, but its answer is lost: the connection drops
   * before it (the client sees a connection error). A retry with the same Idempotency-Key gets the
   * answer it missed, as at Stripe.
   */
  lostAnswerRate?: number;
  /**
   * Every read (GET) is answered this long after its handler read the objects (after any
   * `latencyMs`), with them as they were then: a change made meanwhile is not in it (a slow
   * network between Stripe and us).
   */
  staleReadMs?: number;
  /** Which calls the trouble hits, as numbers in [0, 1); default Math.random. A seeded one makes a run repeatable. */
  random?: () => number;
}

export interface StripeEmulator {
  url: string;
  sessions: Map<string, EmulatedSession>;
  refunds: Map<string, EmulatedRefund>;
  /** Every status each refund has had, in order (a refund that succeeded and was then returned shows both). */
  refundStatuses: Map<string, EmulatedRefund['status'][]>;
  disputes: Map<string, EmulatedDispute>;
  paymentIntents: Map<string, EmulatedPaymentIntent>;
  /** Events Stripe sent, by ID, as `GET /v1/events/:id` returns them. */
  events: Map<string, Record<string, unknown>>;
  requests: string[];
  /** When each Stripe API request arrived (ms since the epoch), in the order of `requests`. */
  requestTimes: number[];
  put(session: EmulatedSession): void;
  /** Creates or replaces a refund or a dispute (by ID). */
  putRefund(refund: EmulatedRefund): void;
  putDispute(dispute: EmulatedDispute): void;
  putPaymentIntent(paymentIntent: EmulatedPaymentIntent): void;
  /**
   * An event Stripe sent (the parsed webhook payload), so the product can read it back by its ID.
   * Behaviour that differs from Stripe: Stripe creates an event for every change of an object; the
   * emulator knows only the events a test or the demo tells it of.
   */
  putEvent(event: Record<string, unknown>): void;
  /** The next `count` Stripe API calls answer `status` (429 rate limit, 500, ...) the way Stripe does. */
  failNext(status: number, count: number): void;
  trouble(trouble: EmulatedTrouble): void;
  /** Requests refused because they went over `requestLimitPerSecond` (Stripe's own rate limit). */
  rateLimited(): number;
  close(): Promise<void>;
}

export interface StripeEmulatorOptions {
  /**
   * Stripe's rate limit: every API request counts, reads and writes alike, as Stripe counts them
   * for the account (25/s in test mode, 100/s in live mode); the rest is answered 429 as Stripe
   * does. Default: no limit.
   */
  requestLimitPerSecond?: number;
  /** The old name of `requestLimitPerSecond`; it always counted every request. */
  readLimitPerSecond?: number;
  /**
   * Stripe's time (ms since the epoch), for the objects' `created` and the capture deadline; a test
   * on Temporal's time-skipping server passes that server's time, so both agree.
   */
  clock?: () => number;
}

export async function startStripeEmulator(port = 0, { requestLimitPerSecond, readLimitPerSecond, clock = Date.now }: StripeEmulatorOptions = {}): Promise<StripeEmulator> {
  const limitPerSecond = requestLimitPerSecond ?? readLimitPerSecond ?? Infinity;
  const stripeNow = () => Math.floor(clock() / 1000);
  const sessions = new Map<string, EmulatedSession>();
  const refunds = new Map<string, EmulatedRefund>();
  const refundStatuses = new Map<string, EmulatedRefund['status'][]>();
  const keepRefund = (refund: EmulatedRefund) => {
    refunds.set(refund.id, refund);
    refundStatuses.set(refund.id, [...(refundStatuses.get(refund.id) ?? []), refund.status]);
  };
  const disputes = new Map<string, EmulatedDispute>();
  const paymentIntents = new Map<string, EmulatedPaymentIntent>();
  const events = new Map<string, Record<string, unknown>>();
  // Idempotency-Key → the first answer, replayed for a retry with the same key. Behaviour that
  // differs from Stripe: keys never expire (Stripe keeps them about 24 hours), and a key reused with
  // other parameters replays instead of failing with idempotency_error.
  const idempotent = new Map<string, { status: number; body: unknown }>();
  const requests: string[] = [];
  const requestTimes: number[] = [];
  const failures = { status: 0, remaining: 0 };
  let trouble: EmulatedTrouble = {};
  let overLimit = 0;
  // Stripe's limiter is a token bucket: `limitPerSecond` tokens a second, as many at most in store.
  const bucket = { tokens: limitPerSecond, at: Date.now() };
  const app = express();
  // stripe-node sends `expand[0]=line_items`: parse brackets into arrays as Stripe does.
  app.set('query parser', 'extended');

  const put = (session: EmulatedSession) => void sessions.set(session.id, { created: stripeNow(), ...session });
  app.put('/emulator/sessions/:id', express.json({ limit: '5mb' }), (req, res) => {
    put({ ...(req.body as EmulatedSession), id: String(req.params.id) });
    res.json(toStripeSession(sessions.get(String(req.params.id))!, false));
  });
  app.get('/emulator/requests', (_req, res) => {
    res.json(requests);
  });
  app.post('/emulator/fail-next', express.json(), (req, res) => {
    const { status, count } = req.body as { status: number; count: number };
    Object.assign(failures, { status, remaining: count });
    res.json({ ok: true });
  });

  app.use('/v1', (req, res, next) => {
    requests.push(`${req.method} ${req.originalUrl}`);
    requestTimes.push(Date.now());
    const auth = req.header('authorization') ?? '';
    if (!/^Bearer sk_(test|live)_\w+$/.test(auth)) {
      stripeError(res, 401, 'invalid_request_error', undefined, 'Invalid API Key provided');
      return;
    }
    const now = Date.now();
    bucket.tokens = Math.min(limitPerSecond, bucket.tokens + ((now - bucket.at) / 1000) * limitPerSecond);
    bucket.at = now;
    if (bucket.tokens < 1) {
      overLimit++;
      stripeError(res, 429, errorTypeOf(429), 'rate_limit', 'Request rate limit exceeded');
      return;
    }
    bucket.tokens -= 1;
    const random = trouble.random ?? Math.random;
    const answer = () => {
      if (failures.remaining > 0) {
        failures.remaining--;
        stripeError(res, failures.status, errorTypeOf(failures.status), failures.status === 429 ? 'rate_limit' : undefined, 'Emulated failure');
        return;
      }
      const statuses = trouble.statuses ?? [];
      if (statuses.length > 0 && trouble.failureRate && random() < trouble.failureRate) {
        const status = statuses[Math.floor(random() * statuses.length)]!;
        stripeError(res, status, errorTypeOf(status), status === 429 ? 'rate_limit' : undefined, 'Emulated failure');
        return;
      }
      if (req.method === 'POST' && trouble.lostAnswerRate && random() < trouble.lostAnswerRate) {
        // The handler applies the write (and keeps its answer for the key); the answer never leaves.
        res.json = () => (req.socket.destroy(), res);
      }
      if (req.method === 'GET' && trouble.staleReadMs) {
        const send = res.json.bind(res);
        const staleMs = trouble.staleReadMs;
        res.json = (body: unknown) => {
          const asOnArrival: unknown = JSON.parse(JSON.stringify(body));
          setTimeout(() => send(asOnArrival), staleMs);
          return res;
        };
      }
      next();
    };
    // Each kind of trouble draws only for the calls it may hit, so one kind's choices do not depend on the others' calls.
    const hang = trouble.hangRate && random() < trouble.hangRate ? (trouble.hangMs ?? 0) : 0;
    const delay = (trouble.latencyMs ?? 0) + hang;
    if (delay > 0) setTimeout(answer, delay);
    else answer();
  });

  // Stripe lists newest first and pages with `starting_after` (the last ID of the previous page).
  app.get('/v1/checkout/sessions', (req, res) => {
    const created = (req.query.created ?? {}) as { gte?: string };
    const gte = created.gte === undefined ? 0 : Number(created.gte);
    const status = typeof req.query.status === 'string' ? req.query.status : undefined;
    const paymentIntent = typeof req.query.payment_intent === 'string' ? req.query.payment_intent : undefined;
    const limit = Math.min(Number(req.query.limit ?? 10) || 10, MAX_PAGE_SIZE);
    const matching = [...sessions.values()]
      .filter((session) => (session.created ?? 0) >= gte && (!status || session.status === status))
      .filter((session) => !paymentIntent || paymentIntentOf(session) === paymentIntent)
      .sort((a, b) => (b.created ?? 0) - (a.created ?? 0) || (a.id < b.id ? -1 : 1));
    const after = typeof req.query.starting_after === 'string' ? matching.findIndex((s) => s.id === req.query.starting_after) + 1 : 0;
    const page = matching.slice(after, after + limit);
    res.json({
      object: 'list',
      data: page.map((session) => toStripeSession(session, false)),
      has_more: after + limit < matching.length,
      url: '/v1/checkout/sessions',
    });
  });

  app.get('/v1/checkout/sessions/:id', (req, res) => {
    const session = sessions.get(String(req.params.id));
    if (!session) return missing(res, 'checkout.session', 'session', String(req.params.id));
    const expand = ([] as unknown[]).concat(req.query.expand ?? []);
    res.json(toStripeSession(session, expand.includes('line_items')));
  });

  app.get('/v1/checkout/sessions/:id/line_items', (req, res) => {
    const session = sessions.get(String(req.params.id));
    if (!session) return missing(res, 'checkout.session', 'session', String(req.params.id));
    const limit = Math.min(Number(req.query.limit ?? 10) || 10, MAX_PAGE_SIZE);
    const after = typeof req.query.starting_after === 'string' ? req.query.starting_after : undefined;
    res.json(lineItemPage(session, limit, after));
  });

  // Refunds and disputes, listed by PaymentIntent, newest first, one page (the product pages with auto-pagination).
  const listBy = <T extends { id: string; paymentIntentId: string; created?: number }>(
    path: string,
    items: Map<string, T>,
    toStripe: (item: T) => Record<string, unknown>,
  ) =>
    app.get(path, (req, res) => {
      const paymentIntent = typeof req.query.payment_intent === 'string' ? req.query.payment_intent : undefined;
      const created = (req.query.created ?? {}) as { gte?: string };
      const gte = created.gte === undefined ? 0 : Number(created.gte);
      const limit = Math.min(Number(req.query.limit ?? 10) || 10, MAX_PAGE_SIZE);
      const matching = [...items.values()]
        .filter((item) => !paymentIntent || item.paymentIntentId === paymentIntent)
        .filter((item) => (item.created ?? 0) >= gte)
        .sort((a, b) => (b.created ?? 0) - (a.created ?? 0) || (a.id < b.id ? 1 : -1));
      const after = typeof req.query.starting_after === 'string' ? matching.findIndex((item) => item.id === req.query.starting_after) + 1 : 0;
      res.json({ object: 'list', data: matching.slice(after, after + limit).map(toStripe), has_more: after + limit < matching.length, url: path });
    });
  listBy('/v1/refunds', refunds, toStripeRefund);
  // A refund of a PaymentIntent's whole payment (or `amount` of it), succeeded at once; a retry with the
  // same Idempotency-Key gets the first answer. (Stripe may keep a card refund pending a while.)
  app.post('/v1/refunds', express.urlencoded({ extended: true }), (req, res) => {
    const key = req.header('idempotency-key');
    const replay = key ? idempotent.get(`refund:${key}`) : undefined;
    if (replay) return void res.status(replay.status).json(replay.body);
    const body = req.body as { payment_intent?: string; amount?: string; metadata?: Record<string, string> };
    const intent = body.payment_intent ? paymentIntents.get(body.payment_intent) : undefined;
    let answer: { status: number; body: unknown };
    if (!intent) {
      answer = { status: 404, body: { error: { type: 'invalid_request_error', code: 'resource_missing', message: `No such payment_intent: '${body.payment_intent ?? ''}'`, param: 'payment_intent' } } };
    } else {
      const refund: EmulatedRefund = {
        id: `re_${intent.id.replace(/^pi_/, '')}_${refunds.size + 1}`,
        paymentIntentId: intent.id,
        amount: body.amount ? Number(body.amount) : receivedOf(intent),
        currency: intent.currency,
        status: 'succeeded',
        metadata: body.metadata ?? {},
        created: stripeNow(),
      };
      keepRefund(refund);
      answer = { status: 200, body: toStripeRefund(refund) };
    }
    if (key) idempotent.set(`refund:${key}`, answer);
    res.status(answer.status).json(answer.body);
  });
  listBy('/v1/disputes', disputes, toStripeDispute);

  app.get('/v1/disputes/:id', (req, res) => {
    const dispute = disputes.get(String(req.params.id));
    if (!dispute) return missing(res, 'dispute', 'dispute', String(req.params.id));
    res.json(toStripeDispute(dispute));
  });

  // Every PaymentIntent, newest first: those of the emulated Checkout Sessions are not listed (behaviour
  // that differs from Stripe, which lists them too; the product tells them apart by their metadata).
  app.get('/v1/payment_intents', (req, res) => {
    const created = (req.query.created ?? {}) as { gte?: string };
    const gte = created.gte === undefined ? 0 : Number(created.gte);
    const limit = Math.min(Number(req.query.limit ?? 10) || 10, MAX_PAGE_SIZE);
    const matching = [...paymentIntents.values()]
      .filter((intent) => (intent.created ?? 0) >= gte)
      .sort((a, b) => (b.created ?? 0) - (a.created ?? 0) || (a.id < b.id ? -1 : 1));
    const after = typeof req.query.starting_after === 'string' ? matching.findIndex((intent) => intent.id === req.query.starting_after) + 1 : 0;
    const expandCharge = expansionsOf(req).includes('data.latest_charge');
    res.json({
      object: 'list',
      data: matching.slice(after, after + limit).map((intent) => toStripePaymentIntent(intent, expandCharge)),
      has_more: after + limit < matching.length,
      url: '/v1/payment_intents',
    });
  });

  app.get('/v1/events/:id', (req, res) => {
    const event = events.get(String(req.params.id));
    if (!event) return missing(res, 'event', 'id', String(req.params.id));
    res.json(event);
  });

  app.get('/v1/payment_intents/:id', (req, res) => {
    const intent = paymentIntents.get(String(req.params.id));
    if (!intent) return missing(res, 'payment_intent', 'intent', String(req.params.id));
    res.json(toStripePaymentIntent(intent, expansionsOf(req).includes('latest_charge')));
  });
  // Capture and cancel change state once; a retry with the same Idempotency-Key gets the first answer.
  const transition = (action: 'capture' | 'cancel', allowed: EmulatedPaymentIntent['status'][], to: EmulatedPaymentIntent['status']) =>
    app.post(`/v1/payment_intents/:id/${action}`, express.urlencoded({ extended: true }), (req, res) => {
      const key = req.header('idempotency-key');
      const replay = key ? idempotent.get(`${action}:${key}`) : undefined;
      if (replay) return void res.status(replay.status).json(replay.body);
      const intent = paymentIntents.get(String(req.params.id));
      let answer: { status: number; body: unknown };
      if (!intent) {
        answer = {
          status: 404,
          body: { error: { type: 'invalid_request_error', code: 'resource_missing', message: `No such payment_intent: '${String(req.params.id)}'`, param: 'intent' } },
        };
      } else if (action === 'capture' && intent.status === 'requires_capture' && clock() / 1000 > captureBeforeOf(intent)) {
        answer = {
          status: 400,
          body: { error: { type: 'invalid_request_error', code: 'charge_expired_for_capture', message: 'The charge has expired and can no longer be captured.' } },
        };
      } else if (!allowed.includes(intent.status)) {
        answer = {
          status: 400,
          body: {
            error: {
              type: 'invalid_request_error',
              code: 'payment_intent_unexpected_state',
              message: `This PaymentIntent could not be ${action === 'capture' ? 'captured' : 'canceled'} because it has a status of ${intent.status}.`,
            },
          },
        };
      } else {
        intent.status = to;
        if (action === 'capture') intent.captures = (intent.captures ?? 0) + 1;
        else intent.cancels = (intent.cancels ?? 0) + 1;
        answer = { status: 200, body: toStripePaymentIntent(intent, expansionsOf(req).includes('latest_charge')) };
      }
      if (key) idempotent.set(`${action}:${key}`, answer);
      res.status(answer.status).json(answer.body);
    });
  transition('capture', ['requires_capture'], 'succeeded');
  transition('cancel', ['requires_payment_method', 'requires_confirmation', 'requires_action', 'requires_capture', 'processing'], 'canceled');

  app.use('/v1', (req, res) => {
    stripeError(res, 404, 'invalid_request_error', undefined, `Unrecognized request URL (${req.method}: ${req.originalUrl})`);
  });

  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sessions,
    refunds,
    refundStatuses,
    disputes,
    paymentIntents,
    events,
    requests,
    requestTimes,
    put,
    putRefund: (refund) => keepRefund({ created: stripeNow(), ...refund }),
    putDispute: (dispute) => void disputes.set(dispute.id, { created: stripeNow(), ...dispute }),
    putPaymentIntent: (intent) => void paymentIntents.set(intent.id, { created: stripeNow(), ...intent }),
    // Stripe's events always carry these two; a payload made by hand (signed-events.ts) may not.
    putEvent: (event) => void events.set(String(event.id), { pending_webhooks: 0, request: { id: null, idempotency_key: null }, ...event }),
    failNext: (status, count) => void Object.assign(failures, { status, remaining: count }),
    trouble: (next) => void (trouble = next),
    rateLimited: () => overLimit,
    close: () => new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
  };
}

/** Stripe's answer for an ID it does not know: `param` names the path parameter that held it. */
function missing(res: Response, object: string, param: string, id: string): void {
  stripeError(res, 404, 'invalid_request_error', 'resource_missing', `No such ${object}: '${id}'`, param);
}

function stripeError(res: Response, status: number, type: string, code: string | undefined, message: string, param?: string): void {
  res.status(status).json({ error: { type, code, message, param } });
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** When an uncaptured authorization lapses: as told, or about 7 days after it was made, as for most cards. */
const captureBeforeOf = (intent: EmulatedPaymentIntent) => intent.captureBefore ?? (intent.created ?? nowSeconds()) + 7 * 86_400;

/** What a captured or paid PaymentIntent took: all of it, or what a partial authorization allowed. */
const receivedOf = (intent: EmulatedPaymentIntent) => intent.amountCapturable ?? intent.amount;

/** The charge a PaymentIntent made, by the ID the emulator gives it (there is no Charges API here). */
const chargeIdOf = (paymentIntentId: string) => `ch_${paymentIntentId.replace(/^pi_/, '')}`;

function toStripeRefund(refund: EmulatedRefund) {
  return {
    id: refund.id,
    object: 'refund',
    amount: refund.amount,
    charge: chargeIdOf(refund.paymentIntentId),
    created: refund.created ?? nowSeconds(),
    currency: refund.currency,
    metadata: refund.metadata ?? {},
    payment_intent: refund.paymentIntentId,
    reason: null,
    status: refund.status,
  };
}

// Every field Stripe's spec requires of a dispute, the evidence left empty: the product reads only
// its amount, status and reason. An open dispute is due a week after it opened.
function toStripeDispute(dispute: EmulatedDispute) {
  const created = dispute.created ?? nowSeconds();
  return {
    id: dispute.id,
    object: 'dispute',
    amount: dispute.amount,
    balance_transactions: [],
    charge: chargeIdOf(dispute.paymentIntentId),
    created,
    currency: dispute.currency,
    enhanced_eligibility_types: [],
    evidence: { enhanced_evidence: {} },
    evidence_details: {
      due_by: dispute.status.endsWith('needs_response') ? created + 7 * 86_400 : null,
      enhanced_eligibility: {},
      has_evidence: false,
      past_due: false,
      submission_count: 0,
    },
    is_charge_refundable: false,
    livemode: false,
    metadata: {},
    payment_intent: dispute.paymentIntentId,
    reason: dispute.reason ?? 'general',
    status: dispute.status,
  };
}

/**
 * `latest_charge` is the charge's ID, or the charge itself when expanded, as at Stripe; null before
 * any attempt to charge.
 */
function toStripePaymentIntent(intent: EmulatedPaymentIntent, expandCharge: boolean) {
  const created = intent.created ?? nowSeconds();
  const captured = intent.status === 'succeeded';
  const charge = latestCharge(intent, created);
  return {
    id: intent.id,
    object: 'payment_intent',
    amount: intent.amount,
    amount_capturable: intent.status === 'requires_capture' ? (intent.amountCapturable ?? intent.amount) : 0,
    amount_received: captured ? receivedOf(intent) : 0,
    capture_method: intent.captureMethod ?? 'automatic',
    created,
    currency: intent.currency,
    last_payment_error: intent.lastPaymentError ? { code: intent.lastPaymentError, message: 'Your card was declined.', type: 'card_error' } : null,
    latest_charge: charge && !expandCharge ? charge.id : charge,
    livemode: false,
    metadata: intent.metadata ?? {},
    status: intent.status,
  };
}

/**
 * The PaymentIntent's latest charge, a card payment. Behaviour that differs from Stripe: there is
 * no Charges API and no charge of its own; it is derived from the PaymentIntent's status (an
 * authorization while `requires_capture`, a capture once `succeeded`, a decline with a
 * `last_payment_error`, a released authorization for a canceled manual-capture one), and refunds and
 * disputes do not change it.
 */
function latestCharge(intent: EmulatedPaymentIntent, created: number) {
  const status = chargeStatusOf(intent);
  if (!status) return null;
  const captured = intent.status === 'succeeded';
  const released = intent.status === 'canceled';
  const manual = intent.captureMethod === 'manual';
  return {
    id: chargeIdOf(intent.id),
    object: 'charge',
    amount: intent.amount,
    amount_captured: captured ? intent.amount : 0,
    amount_refunded: released ? intent.amount : 0,
    billing_details: { address: null, email: null, name: null, phone: null },
    captured,
    created,
    currency: intent.currency,
    disputed: false,
    failure_code: status === 'failed' ? (intent.lastPaymentError ?? null) : null,
    livemode: false,
    metadata: {},
    paid: status === 'succeeded',
    payment_intent: intent.id,
    payment_method_details: {
      type: 'card',
      card: {
        brand: 'visa',
        exp_month: 12,
        exp_year: 2034,
        funding: 'credit',
        last4: '4242',
        // An uncaptured authorization lapses: Stripe says when (about 7 days for most cards).
        ...(manual ? { capture_before: captureBeforeOf(intent) } : {}),
      },
    },
    refunded: released,
    status,
  };
}

function chargeStatusOf(intent: EmulatedPaymentIntent): 'succeeded' | 'pending' | 'failed' | null {
  switch (intent.status) {
    case 'succeeded':
    case 'requires_capture':
      return 'succeeded';
    case 'processing':
      return 'pending';
    case 'canceled':
      return intent.captureMethod === 'manual' ? 'succeeded' : null;
    default:
      return intent.lastPaymentError ? 'failed' : null;
  }
}

/** The expansions a request asks for: `expand[0]=...` in the query (GET) or the form body (POST). */
function expansionsOf(req: Request): string[] {
  const body = req.body as { expand?: unknown } | undefined;
  return ([] as unknown[]).concat(req.query.expand ?? [], body?.expand ?? []).map(String);
}

function toStripeLineItem(item: EmulatedLineItem, session: EmulatedSession) {
  const amount = item.unitAmount * (item.quantity ?? 0);
  return {
    id: item.id,
    object: 'item',
    amount_discount: 0,
    amount_subtotal: amount,
    amount_tax: 0,
    amount_total: amount,
    currency: session.currency,
    description: item.description,
    price: {
      id: item.priceId,
      object: 'price',
      active: true,
      billing_scheme: 'per_unit',
      created: session.created ?? nowSeconds(),
      currency: session.currency,
      livemode: session.livemode ?? false,
      metadata: {},
      product: item.productId,
      type: 'one_time',
      unit_amount: item.unitAmount,
    },
    quantity: item.quantity,
  };
}

function lineItemPage(session: EmulatedSession, limit: number, startingAfter?: string) {
  const start = startingAfter ? session.lineItems.findIndex((item) => item.id === startingAfter) + 1 : 0;
  const page = session.lineItems.slice(start, start + limit);
  return {
    object: 'list',
    data: page.map((item) => toStripeLineItem(item, session)),
    has_more: start + limit < session.lineItems.length,
    url: `/v1/checkout/sessions/${session.id}/line_items`,
  };
}

function toStripeSession(session: EmulatedSession, expandLineItems: boolean) {
  const total = session.lineItems.reduce((sum, item) => sum + item.unitAmount * (item.quantity ?? 0), 0);
  return {
    id: session.id,
    object: 'checkout.session',
    amount_subtotal: total,
    amount_total: total,
    automatic_tax: { enabled: false, liability: null, provider: null, status: null },
    currency: session.currency,
    customer_details: session.customerEmail ? { email: session.customerEmail, name: session.customerName } : null,
    customer_email: session.customerEmail,
    expires_at: session.expiresAt ?? (session.created ?? nowSeconds()) + 24 * 3600,
    livemode: session.livemode ?? false,
    created: session.created ?? nowSeconds(),
    custom_fields: [],
    custom_text: { after_submit: null, shipping_address: null, submit: null, terms_of_service_acceptance: null },
    metadata: {},
    mode: session.mode ?? 'payment',
    payment_intent: paymentIntentOf(session),
    payment_method_types: ['card'],
    payment_status: session.paymentStatus,
    shipping_options: [],
    status: session.status,
    ...(expandLineItems ? { line_items: lineItemPage(session, EXPANDED_PAGE_SIZE) } : {}),
  };
}

