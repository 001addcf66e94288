import Stripe from 'stripe';
import { stripeErrorLabel, type Metrics } from '../metrics';
import type { Queryable } from '../store/database';
import { budgetExhaustion } from '../stripe/request-budget';

/**
 * The landing page's question for a session we have no record of: does Stripe know it? Asked by the
 * ingress itself, with a Stripe client whose every request takes its turn from the visitors' share
 * of the budget (`shareOut`), so a flood of made-up IDs spends that share and nothing else, and
 * leaves no Temporal execution behind. What Stripe does not know is remembered for a while in the
 * database (`unknown_sessions`), for every ingress process: a bot repeating one ID costs one read a
 * minute. A session Stripe knows is never remembered as unknown.
 */
export interface SessionCheck {
  /** Throws `CannotCheckNow` when the visitors' share is spent; any other error when Stripe or the database fails. */
  exists(sessionId: string): Promise<boolean>;
}

/** The visitors' share is spent for now: the page answers 503 with `Retry-After`. */
export class CannotCheckNow extends Error {
  override name = 'CannotCheckNow';
  constructor(readonly retryAfterSeconds: number) {
    super('the landing page cannot ask Stripe now: its share of the request budget is spent');
  }
}

export interface SessionCheckOptions {
  /** A Stripe client whose requests take from the visitors' share. */
  stripe: Stripe;
  db: Queryable;
  metrics: Pick<Metrics, 'stripeReads' | 'stripeReadErrors'>;
  /** How long an ID Stripe does not know is believed unknown without asking again. Default 60 s. */
  unknownForMs?: number;
}

export const UNKNOWN_FOR_MS = 60_000;

const IS_KNOWN_UNKNOWN = 'SELECT 1 FROM unknown_sessions WHERE session_id = $1 AND until > now()';

/**
 * Remembers an unknown ID, and removes up to ten that have expired, in one statement: rows are
 * added at most at the visitors' rate (each takes a Stripe answer), so the table stays about that
 * rate times `unknownForMs` long. `until <= now()` is repeated on the deleted row itself, so a row
 * another process renewed meanwhile is kept.
 */
const REMEMBER_UNKNOWN = `
  WITH expired AS (
    DELETE FROM unknown_sessions
     WHERE session_id IN (SELECT session_id FROM unknown_sessions WHERE until <= now() AND session_id <> $1 LIMIT 10)
       AND until <= now()
  )
  INSERT INTO unknown_sessions (session_id, until) VALUES ($1, now() + $2::double precision * interval '1 millisecond')
  ON CONFLICT (session_id) DO UPDATE SET until = EXCLUDED.until`;

export function createSessionCheck({ stripe, db, metrics, unknownForMs = UNKNOWN_FOR_MS }: SessionCheckOptions): SessionCheck {
  // Visits of one ID at the same moment (a customer reloading) share one question.
  const inFlight = new Map<string, Promise<boolean>>();

  async function ask(sessionId: string): Promise<boolean> {
    if ((await db.query(IS_KNOWN_UNKNOWN, [sessionId])).length > 0) return false;
    try {
      await stripe.checkout.sessions.retrieve(sessionId);
      metrics.stripeReads.inc({ activity: 'sessionExists' });
      return true;
    } catch (err) {
      const exhausted = budgetExhaustion(err);
      // Refused before anything was sent: not a Stripe read.
      if (exhausted) throw new CannotCheckNow(Math.max(1, Math.ceil(exhausted.maxWaitMs / 1000)));
      metrics.stripeReads.inc({ activity: 'sessionExists' });
      metrics.stripeReadErrors.inc({ activity: 'sessionExists', error: stripeErrorLabel(err) });
      if (!isMissing(err)) throw err;
      await db.query(REMEMBER_UNKNOWN, [sessionId, unknownForMs]);
      return false;
    }
  }

  return {
    exists(sessionId) {
      const pending = inFlight.get(sessionId);
      if (pending) return pending;
      const asked = ask(sessionId).finally(() => inFlight.delete(sessionId));
      inFlight.set(sessionId, asked);
      return asked;
    },
  };
}

function isMissing(err: unknown): boolean {
  return err instanceof Stripe.errors.StripeInvalidRequestError && (err.code === 'resource_missing' || err.statusCode === 404);
}
