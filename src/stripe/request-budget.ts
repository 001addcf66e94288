import { performance } from 'node:perf_hooks';
import Stripe from 'stripe';

/**
 * Stripe's rate limit counts HTTP requests, and one activity may make several (a session's line
 * items paged, refunds and disputes read together). The workers' task-queue limit counts
 * activities for the whole cluster; this holds one process's requests to `perSecond`, so a burst
 * of multi-request activities from that process never goes over it. It is per process: K worker
 * processes may together send K times as many (a budget shared by every process is future work).
 * Writes (captures, refunds) and the landing page's existence check share it with reads.
 *
 * The generic cell rate algorithm: one request every 1/perSecond s, with a burst of a quarter
 * second's worth (Stripe's own bucket holds a second's, so a burst from here never empties it). A
 * request that would wait longer than `maxWaitMs` is refused at once (retryable, as Temporal
 * retries the activity), so no attempt outlives its timeout waiting here.
 */
export function requestBudget(perSecond: number, { maxWaitMs = 5_000, now = () => performance.now() } = {}): { take(): Promise<void> } {
  const interval = 1000 / perSecond;
  const burst = Math.max(1, perSecond / 4) * interval;
  let due = now(); // when the next request would go out with no burst left
  return {
    async take() {
      const at = now();
      const sendAt = Math.max(at, due - burst + interval);
      const wait = sendAt - at;
      if (wait > maxWaitMs) throw new Error(`Stripe request budget of ${perSecond}/s exhausted for the next ${Math.round(wait)} ms; retry later`);
      due = Math.max(due, at) + interval;
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, Math.ceil(wait)));
    },
  };
}

/** stripe-node's own HTTP client, each request waiting for the budget first. */
export function budgetedHttpClient(perSecond: number): Stripe.HttpClient {
  const inner = Stripe.createNodeHttpClient();
  const budget = requestBudget(perSecond);
  const client = Object.create(inner) as Stripe.HttpClient;
  client.makeRequest = async (...args: Parameters<Stripe.HttpClient['makeRequest']>) => {
    await budget.take();
    return inner.makeRequest(...args);
  };
  return client;
}
