import pg from 'pg';
import type { Database, Queryable } from './database';

// bigint (int8) columns hold Stripe amounts in minor units, far below 2^53: read them as numbers.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

// A server that does not answer fails the attempt (Temporal retries it) instead of hanging it past
// its timeout; statements that run away are stopped by the server itself.
export const POSTGRES_TIMEOUTS = { connectionMs: 5000, statementMs: 30_000 };

/** A PostgreSQL server through node-postgres, when DATABASE_URL is set. */
export async function openPostgres(connectionString: string, timeouts = POSTGRES_TIMEOUTS): Promise<Database> {
  const pool = new pg.Pool({
    connectionString,
    max: 10,
    connectionTimeoutMillis: timeouts.connectionMs,
    statement_timeout: timeouts.statementMs,
    // The client-side bound, for a server that stops answering mid-query.
    query_timeout: timeouts.statementMs + 5000,
  });
  // An idle connection the server drops (restart, failover) is replaced on next use; without a
  // listener its error would crash the process.
  pool.on('error', (err) => console.warn(`PostgreSQL connection lost: ${err.message}`));
  const wrap = (q: pg.Pool | pg.PoolClient): Queryable => ({
    async query<Row>(sql: string, params: unknown[] = []) {
      return (await q.query(sql, params)).rows as Row[];
    },
  });
  const url = new URL(connectionString);
  const db: Database = {
    ...wrap(pool),
    // Never the password: descriptions end up in logs.
    description: `PostgreSQL at ${url.host}${url.pathname}`,
    async transaction(work) {
      const client = await pool.connect();
      // A connection the server drops mid-transaction (restart, failover, pg_terminate_backend)
      // errors on the checked-out client itself: unheard, that error would crash the process. The
      // failing query rejects all the same; the broken connection is then discarded, not reused.
      let broken: Error | undefined;
      const onError = (err: Error) => void (broken = err);
      client.on('error', onError);
      try {
        await client.query('BEGIN');
        const result = await work(wrap(client));
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.off('error', onError);
        client.release(broken);
      }
    },
    ping: async () => {
      await pool.query('SELECT 1');
    },
    close: () => pool.end(),
  };
  await db.ping();
  return db;
}
