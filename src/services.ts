import type Stripe from 'stripe';
import type { ActivityDeps } from '../activities';
import type { Config } from './config';
import { createOutboxMailer, createSmtpMailer, type Mailer } from './email/mailer';
import { stockFulfiller, type Fulfiller } from './fulfillment/fulfiller';
import { databaseOrderSource, type OrderSource } from './fulfillment/order-source';
import { createMetrics, type Metrics } from './metrics';
import { createSessionCheck, type SessionCheck } from './ingress/session-check';
import { DatabaseRateLimitStore } from './ingress/rate-limit-store';
import { gatedRequestBudget } from './stripe/request-budget';
import { createStripeClient } from './stripe/sessions';
import { FulfillmentStore, openDatabase, type Database, type Queryable } from './store';

/** The long-lived clients the activities (and the ingress) use, opened once per process. */
export interface Services {
  db: Database;
  store: FulfillmentStore;
  mailer: Mailer;
  /** The activities' Stripe client: its requests take from fulfillment's share of the budget every process shares. */
  stripe: Stripe;
  /** The landing page's existence check: its Stripe client takes from the visitors' share only. */
  sessionCheck: SessionCheck;
  /** The landing page's and status API's rate-limit counts, shared by every ingress process. */
  rateLimitStore: DatabaseRateLimitStore;
  /** This process's /metrics: the ingress's and the activities' counters, and gauges read from the database. */
  metrics: Metrics;
  /** Everything the activities need but the starter, which needs a Temporal client (see stack.ts). */
  activityDeps: Omit<ActivityDeps, 'starter'>;
  close(): Promise<void>;
}

const VISITOR_MAX_WAIT_MS = 2_000;
const VISITOR_REQUEST_TIMEOUT_MS = 3_000;

/**
 * The process's two Stripe clients, each taking its turns from its share of the budget every
 * process shares in `db`: the activities' (fulfillment) and the landing page's (visitors).
 */
export function budgetedStripeClients(settings: Config['stripe'], db: Queryable): { stripe: Stripe; visitorStripe: Stripe } {
  const { budget } = settings;
  return {
    stripe: createStripeClient(settings.secretKey, settings.apiBase, {
      budget: gatedRequestBudget(db, 'stripe:fulfillment', budget.fulfillmentPerSecond),
    }),
    // A visitor is waiting for the page: a short wait for a turn and a short request, else "reload".
    visitorStripe: createStripeClient(settings.secretKey, settings.apiBase, {
      budget: gatedRequestBudget(db, 'stripe:visitors', budget.visitorsPerSecond, { maxWaitMs: VISITOR_MAX_WAIT_MS }),
      timeoutMs: VISITOR_REQUEST_TIMEOUT_MS,
    }),
  };
}

export async function openServices(config: Config, fulfiller: Fulfiller = stockFulfiller, orderSource?: OrderSource): Promise<Services> {
  const db = await openDatabase({ databaseUrl: config.databaseUrl, pgliteDir: `${config.dataDir}/pglite` });
  const store = new FulfillmentStore(db);
  const mailer = config.email.smtpUrl
    ? createSmtpMailer(config.email.smtpUrl, config.email.from)
    : createOutboxMailer(config.email.outboxDir, config.email.from);
  const metrics = createMetrics(store);
  const { stripe, visitorStripe } = budgetedStripeClients(config.stripe, db);
  return {
    db,
    store,
    mailer,
    stripe,
    sessionCheck: createSessionCheck({ stripe: visitorStripe, db, metrics }),
    rateLimitStore: new DatabaseRateLimitStore(db),
    metrics,
    activityDeps: {
      stripe,
      store,
      fulfiller,
      orderSource: orderSource ?? databaseOrderSource(db),
      mailer,
      metrics,
      merchantName: config.merchantName,
      emailDomain: config.email.domain,
    },
    async close() {
      mailer.close();
      await db.close();
    },
  };
}
