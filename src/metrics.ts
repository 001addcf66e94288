import type { RequestHandler } from 'express';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import Stripe from 'stripe';
import { FINAL_STATUSES, FULFILLMENT_STATUSES, isFinalStatus, type ReconcileReport } from '../workflows/definitions';
import type { FulfillmentStore } from './store/fulfillment-store';
import { sdkMetricsUrl } from './temporal/runtime';

/**
 * What operators scrape from `/metrics`, one registry per process (never prom-client's global
 * one: tests run several stacks in one process). Labels hold only bounded vocabularies (outcomes,
 * statuses, event types, error kinds): never a session ID, an email or a name.
 */
export interface Metrics {
  registry: Registry;
  webhookAcks: Counter<'outcome' | 'code'>;
  webhookAckSeconds: Histogram<'outcome'>;
  webhookEvents: Counter<'type'>;
  fulfillments: Counter<'status'>;
  stripeReads: Counter<'activity'>;
  stripeReadErrors: Counter<'activity' | 'error'>;
  reconcilerFindings: Counter<'finding'>;
}

/** The activities' share of the metrics. */
export type ActivityMetrics = Pick<Metrics, 'fulfillments' | 'stripeReads' | 'stripeReadErrors' | 'reconcilerFindings'>;

/** The activities that read Stripe, as they are named in `checkout_stripe_reads_total`. */
export type StripeReadActivity =
  | 'retrieveSession'
  | 'sessionExists'
  | 'listCompletedSessions'
  | 'readMoneyBack'
  | 'sessionOfPaymentIntent'
  | 'listRecentMoneyBack'
  | 'retrievePaymentIntent'
  | 'confirmEvent'
  | 'listPaymentIntentOrders'
  | 'retrieveDispute';
const STRIPE_READ_ACTIVITIES: StripeReadActivity[] = [
  'retrieveSession',
  'sessionExists',
  'listCompletedSessions',
  'readMoneyBack',
  'sessionOfPaymentIntent',
  'listRecentMoneyBack',
  'retrievePaymentIntent',
  'confirmEvent',
  'listPaymentIntentOrders',
  'retrieveDispute',
];

export type ReconcilerFinding = keyof Omit<ReconcileReport, 'listed' | 'pages' | 'failedPhases'>;
const RECONCILER_FINDINGS: ReconcilerFinding[] = ['settled', 'started', 'resumed', 'woken', 'stuckRedriven', 'moneyBack'];

/** Sessions not at a final status: waiting for Checkout or a payment, in progress, or paused. */
export const WAITING_STATUSES = FULFILLMENT_STATUSES.filter((status) => !isFinalStatus(status));

// From a 1 ms acknowledgement to the 5 s deadline the starter gives Temporal, and past it.
const ACK_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function createMetrics(store: Pick<FulfillmentStore, 'waitingSessions'>): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const metrics: Metrics = {
    registry,
    webhookAcks: new Counter({
      name: 'checkout_webhook_acks_total',
      help:
        'Answers to Stripe webhook deliveries, by outcome (accepted, already_settled, stopped, no_workflow, ignored, rejected, unavailable, error) ' +
        'and HTTP status code. A 5xx makes Stripe retry; unavailable means Temporal did not accept in time.',
      labelNames: ['outcome', 'code'],
      registers,
    }),
    webhookAckSeconds: new Histogram({
      name: 'checkout_webhook_ack_duration_seconds',
      help: 'Time from a webhook request to its answer, by outcome. Stripe waits on this before redirecting the customer.',
      labelNames: ['outcome'],
      buckets: ACK_BUCKETS_SECONDS,
      registers,
    }),
    webhookEvents: new Counter({
      name: 'checkout_webhook_events_total',
      help: 'Webhook events whose signature verified, by Stripe event type (including types we ignore).',
      labelNames: ['type'],
      registers,
    }),
    fulfillments: new Counter({
      name: 'checkout_fulfillments_total',
      help:
        'Sessions that reached a final status (fulfilled, payment_failed, expired, failed), counted by the worker when the status ' +
        'write changes the record: a retried or late write, or a second run of a settled session, is not counted again. ' +
        'A session redriven after failed may count failed again.',
      labelNames: ['status'],
      registers,
    }),
    stripeReads: new Counter({
      name: 'checkout_stripe_reads_total',
      help: 'Stripe reads made by the activities, one per attempt (retrieveSession pages through long line-item lists within one).',
      labelNames: ['activity'],
      registers,
    }),
    stripeReadErrors: new Counter({
      name: 'checkout_stripe_read_errors_total',
      help:
        'Stripe reads that failed, by activity and error (not_found, invalid_request, authentication, permission, rate_limit, ' +
        'connection, api, other). authentication, permission and invalid_request pause sessions until an operator fixes the key.',
      labelNames: ['activity', 'error'],
      registers,
    }),
    reconcilerFindings: new Counter({
      name: 'checkout_reconciler_findings_total',
      help:
        'What the reconciler did with the sessions it listed (settled: left alone; started: no webhook ever came; resumed; ' +
        'woken: paid at Stripe while awaiting payment) and the stuck records it redrove (stuckRedriven).',
      labelNames: ['finding'],
      registers,
    }),
  };

  // Known series start at 0, so rate() and alerts see the first increment.
  for (const status of FINAL_STATUSES) metrics.fulfillments.inc({ status }, 0);
  for (const activity of STRIPE_READ_ACTIVITIES) metrics.stripeReads.inc({ activity }, 0);
  for (const finding of RECONCILER_FINDINGS) metrics.reconcilerFindings.inc({ finding }, 0);

  // Read from the database at scrape time: the database is the durable record, whichever process
  // ran the session. A scrape collects both gauges at once, so they share the query in flight.
  let reading: ReturnType<FulfillmentStore['waitingSessions']> | undefined;
  const readWaiting = () =>
    (reading ??= store.waitingSessions(WAITING_STATUSES).finally(() => {
      reading = undefined;
    }));
  const fromDatabase = (pick: (row: { sessions: number; oldestAgeSeconds: number }) => number) =>
    async function (this: Gauge<'status'>) {
      this.reset();
      try {
        const rows = new Map((await readWaiting()).map((row) => [row.status, row]));
        for (const status of WAITING_STATUSES) {
          const row = rows.get(status);
          this.set({ status }, row ? pick(row) : 0);
        }
      } catch {
        // The database is away: /readyz says so; the rest of the scrape still serves, without these.
      }
    };
  new Gauge({
    name: 'checkout_sessions_waiting',
    help:
      'Sessions not at a final status, by status (received, awaiting_checkout, awaiting_payment, fulfilling, paused), read from ' +
      'the database at scrape time. status="paused": orders held by a configuration error of ours (Stripe refuses the key). ' +
      'Every process reports the same figure: aggregate with max.',
    labelNames: ['status'],
    registers,
    collect: fromDatabase((row) => row.sessions),
  });
  new Gauge({
    name: 'checkout_sessions_waiting_oldest_age_seconds',
    help:
      'Age of the oldest session in each non-final status, since it was first recorded (0: none), read from the database at ' +
      'scrape time. Every process reports the same figure: aggregate with max.',
    labelNames: ['status'],
    registers,
    collect: fromDatabase((row) => row.oldestAgeSeconds),
  });
  return metrics;
}

/** How a webhook was answered: the delivery (or `ignored`) for a 2xx, otherwise from the status code. */
export function ackOutcome(statusCode: number, delivery?: string): string {
  if (statusCode >= 500) return statusCode === 503 ? 'unavailable' : 'error';
  if (statusCode >= 400) return 'rejected';
  return delivery ?? 'accepted';
}

/** A Stripe failure as a label: its kind, never its message (which may name a session). */
export function stripeErrorLabel(err: unknown): string {
  if (err instanceof Stripe.errors.StripeInvalidRequestError) {
    return err.code === 'resource_missing' || err.statusCode === 404 ? 'not_found' : 'invalid_request';
  }
  if (err instanceof Stripe.errors.StripeAuthenticationError) return 'authentication';
  if (err instanceof Stripe.errors.StripePermissionError) return 'permission';
  if (err instanceof Stripe.errors.StripeRateLimitError) return 'rate_limit';
  if (err instanceof Stripe.errors.StripeConnectionError) return 'connection';
  if (err instanceof Stripe.errors.StripeAPIError) return 'api';
  return 'other';
}

/** This process's metrics, then the Temporal SDK's when its runtime exports them: one scrape per process. */
export async function renderMetrics(metrics: Metrics): Promise<string> {
  const [own, sdk] = await Promise.all([metrics.registry.metrics(), sdkMetricsText()]);
  return sdk ? `${own.trimEnd()}\n${sdk}` : own;
}

const SDK_SCRAPE_TIMEOUT_MS = 2000;

async function sdkMetricsText(): Promise<string | undefined> {
  const url = sdkMetricsUrl();
  if (!url) return undefined;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(SDK_SCRAPE_TIMEOUT_MS) });
    return response.ok ? await response.text() : undefined;
  } catch {
    return undefined; // the runtime is between workers (it stops when idle); our own metrics still serve
  }
}

/** GET /metrics, in Prometheus's text format. */
export function metricsHandler(metrics: Metrics): RequestHandler {
  return async (_req, res) => {
    res.type(metrics.registry.contentType).send(await renderMetrics(metrics));
  };
}
