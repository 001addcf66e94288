import type { Database } from './database';

/**
 * The schema, one entry per version, applied in order at start-up. Same SQL on PGlite and PostgreSQL.
 * Append new versions; never edit one that has shipped.
 */
const MIGRATIONS: { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'fulfillment records',
    sql: `
      -- The current state of each Checkout Session: the durable record that outlives Temporal's retention.
      CREATE TABLE checkout_sessions (
        session_id     text PRIMARY KEY,
        status         text NOT NULL,
        payment_status text,
        currency       text,
        amount_total   bigint,
        view           jsonb NOT NULL,
        created_at     timestamptz NOT NULL DEFAULT now(),
        updated_at     timestamptz NOT NULL DEFAULT now()
      );

      -- Every transition, in order. (session, run, seq) makes a retried write a no-op.
      CREATE TABLE status_history (
        id          bigserial PRIMARY KEY,
        session_id  text NOT NULL,
        run_id      text NOT NULL,
        seq         integer NOT NULL,
        status      text NOT NULL,
        reason      text,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (session_id, run_id, seq)
      );

      -- One row per fulfilled line item: the primary key is what makes fulfillment exactly-once.
      CREATE TABLE fulfillments (
        session_id   text NOT NULL,
        line_item_id text NOT NULL,
        product_id   text,
        price_id     text,
        description  text NOT NULL,
        quantity     integer NOT NULL,
        fulfilled_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (session_id, line_item_id)
      );

      -- Stock the default fulfiller adjusts. Products without a row are not stock-managed.
      CREATE TABLE stock (
        product_id text PRIMARY KEY,
        on_hand    integer NOT NULL
      );

      -- Emails sent, at most one of each kind per session.
      CREATE TABLE emails (
        session_id text NOT NULL,
        kind       text NOT NULL,
        message_id text NOT NULL,
        recipient  text NOT NULL,
        sent_at    timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (session_id, kind)
      );
    `,
  },
];

/** Applies pending migrations. Safe when several workers start at once: an advisory lock serializes them. */
export async function migrate(db: Database): Promise<number[]> {
  await db.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(7233001)');
    const applied = new Set(
      (await tx.query<{ version: number }>('SELECT version FROM schema_migrations')).map((row) => row.version),
    );
    const appliedNow: number[] = [];
    for (const migration of MIGRATIONS) {
      if (applied.has(migration.version)) continue;
      for (const statement of splitStatements(migration.sql)) await tx.query(statement);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
      appliedNow.push(migration.version);
    }
    return appliedNow;
  });
}

// Parameterized queries take one statement at a time; our migrations hold no semicolons inside literals.
function splitStatements(sql: string): string[] {
  return sql
    .replace(/--.*$/gm, '')
    .split(';')
    .map((statement) => statement.trim())
    .filter(Boolean);
}
