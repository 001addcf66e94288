import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { stripeTaskQueue } from './definitions';

type Activities = ReturnType<typeof createActivities>;

/**
 * Whether Stripe knows a Checkout Session. Nothing starts it any more: the landing page asks Stripe
 * itself, through the visitors' share of the request budget (src/ingress/session-check.ts), so a
 * made-up ID leaves no execution behind. Kept exported and registered so executions started by an
 * older ingress finish and recorded histories replay.
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
