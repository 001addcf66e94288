import Stripe from 'stripe';

/**
 * Stripe's rate limit counts HTTP requests, and one activity may make several (a session's line
 * items paged, refunds and disputes read together). The workers' task-queue limit counts
 * activities for the whole cluster; this holds each process's requests to the same budget, so
 * no burst of multi-request activities goes over it.
 *
 * A token bucket of `perSecond` tokens a second, holding a quarter second's worth at most:
 * Stripe's own bucket holds a second's, so a burst from here never empties it.
 */
export function requestBudget(perSecond: number): { take(): Promise<void> } {
  const capacity = Math.max(1, perSecond / 4);
  let tokens = capacity;
  let at = Date.now();
  let queue = Promise.resolve();
  const refill = () => {
    const now = Date.now();
    tokens = Math.min(capacity, tokens + ((now - at) / 1000) * perSecond);
    at = now;
  };
  return {
    take() {
      // One waiter at a time, in arrival order.
      const turn = queue.then(async () => {
        refill();
        if (tokens < 1) {
          await new Promise((resolve) => setTimeout(resolve, Math.ceil(((1 - tokens) / perSecond) * 1000)));
          refill();
        }
        tokens -= 1;
      });
      queue = turn.catch(() => undefined);
      return turn;
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
