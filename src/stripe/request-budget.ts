import { performance } from 'node:perf_hooks';
import Stripe from 'stripe';
import type { Queryable } from '../store/database';

/**
 * Stripe's rate limit counts HTTP requests per account, and one activity may make several (a
 * session's line items paged, refunds and disputes read together). So every Stripe request of every
 * worker and ingress process takes its turn from one budget kept in the app's database
 * (`request_budgets`), whatever the number of processes. The budget is split in two shares, each a
 * budget of its own: the landing page's existence checks (visitors) and everything else
 * (fulfillment). Visitors can spend only theirs, so a flood of made-up IDs never slows fulfillment.
 *
 * Both use the generic cell rate algorithm: one request every 1/perSecond s, with a burst of a
 * quarter second's worth (Stripe's own bucket holds a second's, so a burst from here never empties
 * it). A request that would wait longer than `maxWaitMs` is refused at once with
 * `RequestBudgetExhausted`: an activity's attempt is retried by Temporal, a visitor is asked to
 * reload. No attempt outlives its timeout waiting here.
 */
export interface RequestBudget {
  readonly name: string;
  readonly perSecond: number;
  /** Resolves when this request may go; rejects with `RequestBudgetExhausted` if that is more than the budget's most wait away. */
  take(): Promise<void>;
}

export class RequestBudgetExhausted extends Error {
  override name = 'RequestBudgetExhausted';
  constructor(
    readonly budget: string,
    readonly perSecond: number,
    readonly maxWaitMs: number,
  ) {
    super(`Stripe request budget "${budget}" of ${perSecond}/s is spent for the next ${maxWaitMs} ms; retry later`);
  }
}

/** The two shares of one budget (`STRIPE_REQUESTS_PER_SECOND`). */
export interface BudgetShares {
  /** The whole budget: what every process together may send Stripe. */
  perSecond: number;
  /** The landing page's existence checks. */
  visitorsPerSecond: number;
  /** Everything else: the workers' reads and writes (the rest of the budget). */
  fulfillmentPerSecond: number;
}

/**
 * Stripe's limits (docs.stripe.com/rate-limits): 100 requests/s in live mode, 25 in test mode
 * (sandboxes), and 25/s on each endpoint unless stated. The defaults keep a fifth of each free for
 * what else uses the same account (the Dashboard, the Stripe CLI, other integrations) and for clocks:
 * 20/s with a test key, 80/s with a live one.
 */
export const STRIPE_LIMITS = { test: 25, live: 100, perEndpoint: 25 } as const;
export const DEFAULT_REQUESTS_PER_SECOND = { test: 20, live: 80 } as const;

/**
 * Visitors get a fifth of the budget, and at most 4/s: every existence check is the same endpoint
 * (`GET /v1/checkout/sessions/{id}`) the workers read sessions with, and 4/s is a fifth of 20/s, the
 * same headroom under that endpoint's own 25/s. Fulfillment gets the rest.
 */
export function shareOut(perSecond: number): BudgetShares {
  const visitorsPerSecond = Math.min(perSecond / 5, (STRIPE_LIMITS.perEndpoint * 0.8) / 5);
  return { perSecond, visitorsPerSecond, fulfillmentPerSecond: perSecond - visitorsPerSecond };
}

interface BudgetOptions {
  maxWaitMs?: number;
}

const DEFAULT_MAX_WAIT_MS = 5_000;

/** A quarter second's worth of requests, at least one. */
function burstMs(perSecond: number): number {
  return Math.max(1, perSecond / 4) * (1000 / perSecond);
}

/** A budget of this process alone, in memory. `reserve` takes a turn and says how far off it is, without waiting for it. */
export function localRequestBudget(
  name: string,
  perSecond: number,
  { maxWaitMs = DEFAULT_MAX_WAIT_MS, now = () => performance.now() }: BudgetOptions & { now?: () => number } = {},
): RequestBudget & { reserve(): number } {
  const interval = 1000 / perSecond;
  const burst = burstMs(perSecond);
  let due = now(); // when the next request would go out with no burst left
  const reserve = () => {
    const at = now();
    const next = Math.max(due, at) + interval;
    const wait = Math.max(0, next - burst - at);
    if (wait > maxWaitMs) throw new RequestBudgetExhausted(name, perSecond, maxWaitMs);
    due = next;
    return wait;
  };
  return {
    name,
    perSecond,
    reserve,
    async take() {
      const wait = reserve();
      if (wait > 0) await sleep(wait);
    },
  };
}

/**
 * Takes a turn in one statement, in the database's clock, so processes on hosts whose clocks differ
 * still agree. The row is locked for that statement only. Refused (no row returned): the turn
 * would be more than `max_wait` away, and nothing is taken. A process waits from when the answer
 * arrives, so it sends later than its turn, never earlier: the rate holds, and what a slow answer
 * bunches (a round trip's worth of turns) stays far inside Stripe's one-second bucket.
 */
const TAKE_TURN = `
  INSERT INTO request_budgets AS b (name, due_ms, asked_ms)
  SELECT $1, clock.now_ms + $2::double precision, clock.now_ms
    FROM (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::double precision AS now_ms) AS clock
  ON CONFLICT (name) DO UPDATE
    SET due_ms = GREATEST(b.due_ms, EXCLUDED.asked_ms) + $2::double precision,
        asked_ms = EXCLUDED.asked_ms
    WHERE GREATEST(b.due_ms, EXCLUDED.asked_ms) + $2::double precision - $3::double precision - EXCLUDED.asked_ms <= $4::double precision
  RETURNING GREATEST(0, b.due_ms - $3::double precision - b.asked_ms) AS wait_ms`;

/** A budget every process with this database shares: one row of `request_budgets`. */
export function sharedRequestBudget(db: Queryable, name: string, perSecond: number, { maxWaitMs = DEFAULT_MAX_WAIT_MS }: BudgetOptions = {}): RequestBudget {
  const interval = 1000 / perSecond;
  const burst = burstMs(perSecond);
  return {
    name,
    perSecond,
    async take() {
      const [turn] = await db.query<{ wait_ms: number }>(TAKE_TURN, [name, interval, burst, maxWaitMs]);
      if (!turn) throw new RequestBudgetExhausted(name, perSecond, maxWaitMs);
      if (turn.wait_ms > 0) await sleep(turn.wait_ms);
    },
  };
}

/**
 * The shared budget behind this process's own gate at the same rate. The gate takes its turn in
 * memory without waiting for it, and refuses what this process alone already asks too much of: a
 * flood one ingress process receives is turned away there, without a write to the database's one
 * hot row per request. What it lets through waits for the shared budget's turn only, so the most a
 * caller waits stays `maxWaitMs`. It grants nothing the shared budget would refuse (a process alone
 * may send the whole rate).
 */
export function gatedRequestBudget(db: Queryable, name: string, perSecond: number, options: BudgetOptions = {}): RequestBudget {
  const gate = localRequestBudget(name, perSecond, options);
  const shared = sharedRequestBudget(db, name, perSecond, options);
  return {
    name,
    perSecond,
    async take() {
      gate.reserve();
      await shared.take();
    },
  };
}

/**
 * stripe-node's own HTTP client, each request (a retry included) taking its turn from `budget`
 * first. A refusal reaches the caller as a `StripeConnectionError` whose `detail` is the
 * `RequestBudgetExhausted` (see `budgetExhaustion`).
 */
export function budgetedHttpClient(budget: RequestBudget): Stripe.HttpClient {
  const inner = Stripe.createNodeHttpClient();
  const client = Object.create(inner) as Stripe.HttpClient;
  client.makeRequest = async (...args: Parameters<Stripe.HttpClient['makeRequest']>) => {
    await budget.take();
    return inner.makeRequest(...args);
  };
  return client;
}

/** The budget's refusal inside a Stripe error, if that is what the error is. */
export function budgetExhaustion(err: unknown): RequestBudgetExhausted | undefined {
  if (err instanceof RequestBudgetExhausted) return err;
  const detail = (err as { detail?: unknown } | null | undefined)?.detail;
  return detail instanceof RequestBudgetExhausted ? detail : undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.ceil(ms)));
}
