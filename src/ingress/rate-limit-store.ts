import type { ClientRateLimitInfo, Options, Store } from 'express-rate-limit';
import type { Queryable } from '../store/database';

/**
 * express-rate-limit's counts kept in the app's database (`rate_limits`), so a client's limit holds
 * across every ingress process: behind a round-robin proxy, two processes with counts in memory
 * would each allow the whole limit. A fixed window per client, as the memory store has: the first
 * hit opens it for `windowMs`, and the count starts again once it has passed. Each statement is one
 * round trip, in the database's clock.
 */
export class DatabaseRateLimitStore implements Store {
  /** Counts are shared: express-rate-limit's double-count check knows a shared store by this. */
  readonly localKeys = false;
  private windowMs = 60_000;

  /** `prefix` keeps the counts of different limiters apart in one table. */
  constructor(
    private readonly db: Queryable,
    readonly prefix = 'landing:',
  ) {}

  init(options: Options): void {
    this.windowMs = options.windowMs;
  }

  async get(key: string): Promise<ClientRateLimitInfo | undefined> {
    const [row] = await this.db.query<{ hits: number; reset_at: Date }>('SELECT hits, reset_at FROM rate_limits WHERE key = $1 AND reset_at > now()', [
      this.prefix + key,
    ]);
    return row ? { totalHits: row.hits, resetTime: new Date(row.reset_at) } : undefined;
  }

  /**
   * Counts a hit, opening a new window when the last one has passed, and removes up to ten other
   * clients' expired windows, so the table holds about the clients of one window. `reset_at <=
   * now()` is repeated on the deleted row itself, so a window another process just opened is kept.
   */
  async increment(key: string): Promise<ClientRateLimitInfo> {
    const [row] = await this.db.query<{ hits: number; reset_at: Date }>(
      `WITH expired AS (
         DELETE FROM rate_limits
          WHERE key IN (SELECT key FROM rate_limits WHERE reset_at <= now() AND key <> $1 LIMIT 10)
            AND reset_at <= now()
       )
       INSERT INTO rate_limits AS r (key, hits, reset_at) VALUES ($1, 1, now() + $2::double precision * interval '1 millisecond')
       ON CONFLICT (key) DO UPDATE SET
         hits = CASE WHEN r.reset_at <= now() THEN 1 ELSE r.hits + 1 END,
         reset_at = CASE WHEN r.reset_at <= now() THEN EXCLUDED.reset_at ELSE r.reset_at END
       RETURNING hits, reset_at`,
      [this.prefix + key, this.windowMs],
    );
    return { totalHits: row!.hits, resetTime: new Date(row!.reset_at) };
  }

  async decrement(key: string): Promise<void> {
    await this.db.query('UPDATE rate_limits SET hits = GREATEST(hits - 1, 0) WHERE key = $1 AND reset_at > now()', [this.prefix + key]);
  }

  async resetKey(key: string): Promise<void> {
    await this.db.query('DELETE FROM rate_limits WHERE key = $1', [this.prefix + key]);
  }
}
