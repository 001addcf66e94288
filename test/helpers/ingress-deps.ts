import Stripe from 'stripe';
import type { IngressDeps } from '../../src/ingress/app';
import type { SessionCheck } from '../../src/ingress/session-check';
import { createMemoryLogger } from '../../src/logger';
import { createMetrics } from '../../src/metrics';
import type { FulfillmentStore } from '../../src/store/fulfillment-store';
import type { FulfillmentStarter } from '../../src/temporal/fulfillment-starter';

/**
 * What the real ingress app needs, with no Temporal and no database: `store`, `starter` and
 * `sessionCheck` are the test's own (by default Stripe knows no session), every readiness check
 * passes, and the logger keeps its lines in memory.
 */
export function ingressDeps(
  parts: { store: FulfillmentStore; starter?: FulfillmentStarter; sessionCheck?: SessionCheck; webhookSecret?: string },
  overrides: Partial<IngressDeps> = {},
): IngressDeps {
  return {
    starter: parts.starter ?? ({} as FulfillmentStarter),
    sessionCheck: parts.sessionCheck ?? { exists: async () => false },
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
