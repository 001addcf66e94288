import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { stripeTaskQueue } from './definitions';

type Activities = ReturnType<typeof createActivities>;

/**
 * Whether Stripe knows a Checkout Session, for a landing-page visit that arrives before any webhook.
 * A workflow of its own only so the read runs on the rate-limited Stripe queue, inside the same
 * budget as every other read: visitors can never push us past Stripe's rate limit. It touches no
 * record and starts no fulfillment, so a made-up ID leaves nothing but this short execution.
 */
export async function checkSession(sessionId: string): Promise<boolean> {
  const { sessionExists } = proxyActivities<Activities>({
    taskQueue: stripeTaskQueue(workflowInfo().taskQueue),
    startToCloseTimeout: '20 seconds',
    // The visitor is waiting: a couple of quick tries, then the page asks them to reload.
    retry: { initialInterval: '200 milliseconds', maximumAttempts: 3 },
  });
  return sessionExists(sessionId);
}
