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
  {
    version: 2,
    name: 'ordered status writes, metered line items, claimed emails',
    sql: `
      -- The (run start, sequence) of the write that set the current state: older writes never win.
      ALTER TABLE checkout_sessions ADD COLUMN run_started_at bigint NOT NULL DEFAULT 0;
      ALTER TABLE checkout_sessions ADD COLUMN seq integer NOT NULL DEFAULT 0;

      -- Metered (usage-based) prices carry no quantity.
      ALTER TABLE fulfillments ALTER COLUMN quantity DROP NOT NULL;

      -- An email is claimed ('sending', with a lease) before it is sent, then marked 'sent'.
      ALTER TABLE emails ADD COLUMN state text NOT NULL DEFAULT 'sent';
      ALTER TABLE emails ADD COLUMN claim_token text;
      ALTER TABLE emails ADD COLUMN lease_until timestamptz;
      ALTER TABLE emails ALTER COLUMN message_id DROP NOT NULL;
      ALTER TABLE emails ALTER COLUMN recipient DROP NOT NULL;
    `,
  },
  {
    version: 3,
    name: 'customer contacts, kept out of Temporal',
    sql: `
      CREATE TABLE customer_contacts (
        session_id text PRIMARY KEY,
        email      text,
        name       text,
        updated_at timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 4,
    name: 'refunds and disputes: the payment intent of a session, reversals',
    sql: `
      -- Refund and dispute events name the PaymentIntent; this finds its session.
      ALTER TABLE checkout_sessions ADD COLUMN payment_intent_id text;
      CREATE INDEX checkout_sessions_payment_intent ON checkout_sessions (payment_intent_id);

      -- What each refund or lost dispute reversed, at most once per line item.
      CREATE TABLE reversals (
        reversal_id  text NOT NULL,
        session_id   text NOT NULL,
        line_item_id text NOT NULL,
        quantity     integer,
        reason       text NOT NULL,
        reversed_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (reversal_id, line_item_id)
      );
      CREATE INDEX reversals_session ON reversals (session_id);
    `,
  },
  {
    version: 5,
    name: 'orders paid by PaymentIntent: the default order source',
    sql: `
      -- The merchant's orders, for PaymentIntents made without Checkout (metadata.order_id names one).
      CREATE TABLE orders (
        order_id       text PRIMARY KEY,
        currency       text NOT NULL,
        amount_total   integer NOT NULL,
        line_items     jsonb NOT NULL,
        customer_email text,
        customer_name  text,
        created_at     timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 6,
    name: 'the stuck sweep takes turns',
    sql: `
      -- When the reconciler's stuck sweep last looked at a record: it takes the ones it looked at
      -- longest ago first, so records whose execution is still running (a mass pause) cannot fill
      -- every batch and hide one that is really stuck.
      ALTER TABLE checkout_sessions ADD COLUMN swept_at timestamptz;
    `,
  },
  {
    version: 7,
    name: 'one payment per order',
    sql: `
      -- The PaymentIntent that paid (or authorized) each order of the merchant's: a second payment of
      -- the same order (two tabs, a new PaymentIntent per page load) finds it taken and fulfills nothing.
      CREATE TABLE order_claims (
        order_id          text PRIMARY KEY,
        payment_intent_id text NOT NULL,
        claimed_at        timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 8,
    name: 'limits every process shares: the Stripe budget, rate limits, unknown sessions',
    sql: `
      -- One row per Stripe request budget (src/stripe/request-budget.ts): when the next request
      -- would go with no burst left, in the database's clock (ms since the epoch), so every
      -- worker and ingress process takes from the same budget.
      CREATE TABLE request_budgets (
        name     text PRIMARY KEY,
        due_ms   double precision NOT NULL,
        asked_ms double precision NOT NULL
      );

      -- The landing page's and status API's requests per client, per window, for every ingress
      -- process at once (src/ingress/rate-limit-store.ts).
      CREATE TABLE rate_limits (
        key      text PRIMARY KEY,
        hits     integer NOT NULL,
        reset_at timestamptz NOT NULL
      );
      CREATE INDEX rate_limits_reset_at ON rate_limits (reset_at);

      -- Session IDs Stripe said it does not know, until when the landing page believes it
      -- without asking again (src/ingress/session-check.ts).
      CREATE TABLE unknown_sessions (
        session_id text PRIMARY KEY,
        until      timestamptz NOT NULL
      );
      CREATE INDEX unknown_sessions_until ON unknown_sessions (until);
    `,
  },
];

/**
 * Applies pending migrations. Safe when several workers start at once on a fresh database: the
 * advisory lock is taken before anything else, even the bookkeeping table's creation (concurrent
 * `CREATE TABLE IF NOT EXISTS` collide in PostgreSQL's catalog).
 */
export async function migrate(db: Database): Promise<number[]> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(7233001)');
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
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
