import Stripe from 'stripe';
import type { IngressDeps } from '../../src/ingress/app';
import { createMemoryLogger } from '../../src/logger';
import { createMetrics } from '../../src/metrics';
import type { FulfillmentStore } from '../../src/store/fulfillment-store';
import type { FulfillmentStarter } from '../../src/temporal/fulfillment-starter';

/**
 * What the real ingress app needs, with no Temporal and no database: `store` and `starter` are the
 * test's own, every readiness check passes, and the logger keeps its lines in memory.
 */
export function ingressDeps(parts: { store: FulfillmentStore; starter?: FulfillmentStarter; webhookSecret?: string }, overrides: Partial<IngressDeps> = {}): IngressDeps {
  return {
    starter: parts.starter ?? ({} as FulfillmentStarter),
    store: parts.store,
    stripe: new Stripe('sk_test_unused'),
    webhookSecrets: [parts.webhookSecret ?? 'whsec_test_unused'],
    livemode: false,
    trustProxy: ['loopback'],
    logger: createMemoryLogger(),
    metrics: createMetrics(parts.store),
    readiness: { temporal: async () => undefined, database: async () => undefined },
    ...overrides,
  };
}
