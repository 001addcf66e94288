import type Stripe from 'stripe';
import type { ActivityDeps } from '../activities';
import type { Config } from './config';
import { createOutboxMailer, createSmtpMailer, type Mailer } from './email/mailer';
import { stockFulfiller, type Fulfiller } from './fulfillment/fulfiller';
import { databaseOrderSource, type OrderSource } from './fulfillment/order-source';
import { createMetrics, type Metrics } from './metrics';
import { createStripeClient } from './stripe/sessions';
import { FulfillmentStore, openDatabase, type Database } from './store';

/** The long-lived clients the activities (and the ingress) use, opened once per process. */
export interface Services {
  db: Database;
  store: FulfillmentStore;
  mailer: Mailer;
  /** One Stripe client per process, for the activities and the ingress alike. */
  stripe: Stripe;
  /** This process's /metrics: the ingress's and the activities' counters, and gauges read from the database. */
  metrics: Metrics;
  /** Everything the activities need but the starter, which needs a Temporal client (see stack.ts). */
  activityDeps: Omit<ActivityDeps, 'starter'>;
  close(): Promise<void>;
}

export async function openServices(config: Config, fulfiller: Fulfiller = stockFulfiller, orderSource?: OrderSource): Promise<Services> {
  const db = await openDatabase({ databaseUrl: config.databaseUrl, pgliteDir: `${config.dataDir}/pglite` });
  const store = new FulfillmentStore(db);
  const mailer = config.email.smtpUrl
    ? createSmtpMailer(config.email.smtpUrl, config.email.from)
    : createOutboxMailer(config.email.outboxDir, config.email.from);
  const stripe = createStripeClient(config.stripe.secretKey, config.stripe.apiBase, config.stripe.maxReadsPerSecond);
  const metrics = createMetrics(store);
  return {
    db,
    store,
    mailer,
    stripe,
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
