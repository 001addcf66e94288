import type { CustomerContact } from '../stripe/sessions';
import { randomUUID } from 'node:crypto';
import {
  AFTER_PAYMENT_STATUSES,
  SETTLED_STATUSES,
  type FulfilledItem,
  type FulfillmentStatus,
  type FulfillmentView,
  type LineItemSummary,
} from '../../workflows/definitions';
import type { Database, Queryable } from './database';

export interface StatusHistoryEntry {
  status: FulfillmentStatus;
  reason: string | null;
  recordedAt: Date;
}

export interface FulfillmentRecord {
  view: FulfillmentView;
  createdAt: Date;
  updatedAt: Date;
}

/** One receipt and one payment-failed email per session, one cancellation per order; one email per refund (`refund:re_...`). */
export type EmailKind = 'receipt' | 'payment_failed' | 'canceled' | `refund:${string}`;

/** A line item as it was fulfilled, with what a reversal needs to undo it. */
export interface FulfilledLineItem {
  lineItemId: string;
  description: string;
  quantity: number | null;
  productId: string | null;
  priceId: string | null;
}

/** Which write of which run: runs are ordered by their start time, writes within a run by `seq`. */
export interface WriteOrder {
  runId: string;
  runStartedAt: number;
  seq: number;
}

/** The right to send one email, held until `lease_until`. */
export interface EmailClaim {
  sessionId: string;
  kind: EmailKind;
  token: string;
}

// Where money coming back may move a taken payment's record: among the after-payment statuses, or to
// `failed` when it turns out nothing stands (a refund that later failed, for an order never fulfilled).
const AFTER_MONEY_BACK_STATUSES: readonly FulfillmentStatus[] = [...AFTER_PAYMENT_STATUSES, 'failed'];

/** Every read and write of fulfillment records, in SQL that runs on PGlite and PostgreSQL alike. */
export class FulfillmentStore {
  constructor(readonly db: Database) {}

  /**
   * Records a transition: appends it to the history (a retried write with the same run and
   * sequence number is a no-op) and updates the current state, unless a later write already did
   * (a timed-out attempt or an older run writing late never moves the status backwards), and never
   * out of a settled status: a late or concurrent execution cannot undo `fulfilled`. The one way on
   * from a taken payment is to another after-payment status (a refund, a dispute and its outcome).
   * Says whether the current state changed (not for a retried, late or refused write), and whether
   * its status did (a second refund rewrites `partially_refunded` with more in it).
   */
  async recordStatus(view: FulfillmentView, order: WriteOrder): Promise<{ changed: boolean; statusChanged: boolean }> {
    return this.db.transaction(async (tx) => {
      const before = await tx.query<{ status: FulfillmentStatus }>('SELECT status FROM checkout_sessions WHERE session_id = $1 FOR UPDATE', [
        view.sessionId,
      ]);
      await tx.query(
        `INSERT INTO status_history (session_id, run_id, seq, status, reason)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
        [view.sessionId, order.runId, order.seq, view.status, view.reason],
      );
      const changed = await tx.query(
        `INSERT INTO checkout_sessions (session_id, status, payment_status, currency, amount_total, view, run_started_at, seq, payment_intent_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $11)
         ON CONFLICT (session_id) DO UPDATE SET
           status = EXCLUDED.status, payment_status = EXCLUDED.payment_status, currency = EXCLUDED.currency,
           amount_total = EXCLUDED.amount_total, view = EXCLUDED.view, updated_at = now(),
           run_started_at = EXCLUDED.run_started_at, seq = EXCLUDED.seq,
           payment_intent_id = COALESCE(EXCLUDED.payment_intent_id, checkout_sessions.payment_intent_id)
         WHERE (NOT (checkout_sessions.status = ANY($9::text[]))
                OR (checkout_sessions.status = ANY($10::text[]) AND EXCLUDED.status = ANY($12::text[])))
           AND (checkout_sessions.run_started_at, checkout_sessions.seq) < (EXCLUDED.run_started_at, EXCLUDED.seq)
         RETURNING session_id`,
        [
          view.sessionId,
          view.status,
          view.paymentStatus,
          view.currency,
          view.amountTotal,
          JSON.stringify(view),
          order.runStartedAt,
          order.seq,
          SETTLED_STATUSES,
          AFTER_PAYMENT_STATUSES,
          view.paymentIntentId ?? null,
          AFTER_MONEY_BACK_STATUSES,
        ],
      );
      return { changed: changed.length > 0, statusChanged: changed.length > 0 && before[0]?.status !== view.status };
    });
  }

  /** The customer's contact as Stripe last reported it (retrieve-session keeps it current). */
  async saveContact(sessionId: string, contact: CustomerContact): Promise<void> {
    await this.db.query(
      `INSERT INTO customer_contacts (session_id, email, name) VALUES ($1, $2, $3)
       ON CONFLICT (session_id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name, updated_at = now()`,
      [sessionId, contact.email, contact.name],
    );
  }

  async getContact(sessionId: string): Promise<CustomerContact | null> {
    const rows = await this.db.query<CustomerContact>('SELECT email, name FROM customer_contacts WHERE session_id = $1', [sessionId]);
    return rows[0] ?? null;
  }

  async getRecord(sessionId: string): Promise<FulfillmentRecord | null> {
    const rows = await this.db.query<{ view: FulfillmentView | string; created_at: Date; updated_at: Date }>(
      'SELECT view, created_at, updated_at FROM checkout_sessions WHERE session_id = $1',
      [sessionId],
    );
    const row = rows[0];
    if (!row) return null;
    const view = typeof row.view === 'string' ? (JSON.parse(row.view) as FulfillmentView) : row.view;
    return { view, createdAt: new Date(row.created_at), updatedAt: new Date(row.updated_at) };
  }

  /**
   * Takes the next turn of the stuck sweep: up to `limit` records that have sat in one of
   * `statuses` for longer than `olderThanMs`, those the sweep looked at longest ago (or never)
   * first, and marks them looked at. Successive calls go round all of them.
   */
  async takeStaleSessions(statuses: readonly FulfillmentStatus[], olderThanMs: number, limit: number): Promise<string[]> {
    const rows = await this.db.query<{ session_id: string }>(
      `UPDATE checkout_sessions SET swept_at = clock_timestamp()
       WHERE session_id IN (
         SELECT session_id FROM checkout_sessions
         WHERE status = ANY($1::text[]) AND updated_at < now() - make_interval(secs => $2)
         ORDER BY swept_at NULLS FIRST, updated_at, session_id LIMIT $3
         FOR UPDATE SKIP LOCKED)
       RETURNING session_id`,
      [statuses, olderThanMs / 1000, limit],
    );
    return rows.map((row) => row.session_id);
  }

  /** Orders with a dispute our record still holds open (disputes close weeks after they open), after `startingAfter` by dispute ID. */
  async listOpenDisputes(limit: number, startingAfter?: string): Promise<{ orderId: string; disputeId: string; paymentIntentId: string | null }[]> {
    const rows = await this.db.query<{ session_id: string; dispute_id: string; payment_intent_id: string | null }>(
      `SELECT s.session_id, d->>'id' AS dispute_id, COALESCE(s.payment_intent_id, s.view->>'paymentIntentId') AS payment_intent_id
       FROM checkout_sessions s, jsonb_array_elements(COALESCE(s.view->'disputes', '[]'::jsonb)) d
       WHERE d->>'outcome' = 'open' AND d->>'id' > $2
       ORDER BY d->>'id' LIMIT $1`,
      [limit, startingAfter ?? ''],
    );
    return rows.map((row) => ({ orderId: row.session_id, disputeId: row.dispute_id, paymentIntentId: row.payment_intent_id }));
  }

  /** How many sessions sit in each of `statuses`, and how long ago the oldest was first recorded (database time). */
  async waitingSessions(statuses: readonly FulfillmentStatus[]): Promise<{ status: FulfillmentStatus; sessions: number; oldestAgeSeconds: number }[]> {
    const rows = await this.db.query<{ status: FulfillmentStatus; sessions: number; oldest_age_seconds: number }>(
      `SELECT status, count(*)::int AS sessions, extract(epoch FROM now() - min(created_at))::float8 AS oldest_age_seconds
       FROM checkout_sessions WHERE status = ANY($1::text[]) GROUP BY status`,
      [statuses],
    );
    return rows.map((row) => ({ status: row.status, sessions: row.sessions, oldestAgeSeconds: Math.max(0, Number(row.oldest_age_seconds)) }));
  }

  async getHistory(sessionId: string): Promise<StatusHistoryEntry[]> {
    const rows = await this.db.query<{ status: FulfillmentStatus; reason: string | null; recorded_at: Date }>(
      'SELECT status, reason, recorded_at FROM status_history WHERE session_id = $1 ORDER BY id',
      [sessionId],
    );
    return rows.map((row) => ({ status: row.status, reason: row.reason, recordedAt: new Date(row.recorded_at) }));
  }

  /**
   * Fulfills one line item exactly once: the row keyed on (session, line item) and `work` commit
   * together, so a retry after a crash either finds the row (and does nothing) or redoes both.
   * Returns false when the item had already been fulfilled.
   */
  async fulfillLineItemOnce(
    sessionId: string,
    item: LineItemSummary,
    work: (tx: Queryable) => Promise<void>,
  ): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const inserted = await tx.query(
        `INSERT INTO fulfillments (session_id, line_item_id, product_id, price_id, description, quantity)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING line_item_id`,
        [sessionId, item.id, item.productId, item.priceId, item.description, item.quantity],
      );
      if (inserted.length === 0) return false;
      await work(tx);
      return true;
    });
  }

  /**
   * The order this payment is for, as our records know it: the Checkout Session whose workflow
   * read it as its PaymentIntent, or an order paid by PaymentIntent, recorded under the
   * PaymentIntent's own ID (even one that failed before it recorded its payment).
   */
  async orderOfPayment(paymentIntentId: string): Promise<string | null> {
    const rows = await this.db.query<{ session_id: string }>(
      `SELECT session_id FROM checkout_sessions WHERE payment_intent_id = $1 OR session_id = $1
       ORDER BY (session_id = $1) LIMIT 1`,
      [paymentIntentId],
    );
    return rows[0]?.session_id ?? null;
  }

  /**
   * Claims an order for the payment that pays it: the first PaymentIntent to claim it keeps it, and
   * every claim returns that PaymentIntent (the same one again for a retry).
   */
  async claimOrder(orderId: string, paymentIntentId: string): Promise<string> {
    await this.db.query('INSERT INTO order_claims (order_id, payment_intent_id) VALUES ($1, $2) ON CONFLICT DO NOTHING', [orderId, paymentIntentId]);
    const rows = await this.db.query<{ payment_intent_id: string }>('SELECT payment_intent_id FROM order_claims WHERE order_id = $1', [orderId]);
    return rows[0]!.payment_intent_id;
  }

  /** Gives an order back: a payment that will not fulfill it (released, refunded first) no longer holds it. */
  async releaseOrderClaim(orderId: string, paymentIntentId: string): Promise<void> {
    await this.db.query('DELETE FROM order_claims WHERE order_id = $1 AND payment_intent_id = $2', [orderId, paymentIntentId]);
  }

  /** Line items fulfilled for the session, with what was already reversed (by any refund or dispute) taken off. */
  async reversibleLineItems(sessionId: string): Promise<FulfilledLineItem[]> {
    const rows = await this.db.query<{ line_item_id: string; description: string; quantity: number | null; product_id: string | null; price_id: string | null; reversed: number | null; any_reversal: boolean }>(
      `SELECT f.line_item_id, f.description, f.quantity, f.product_id, f.price_id,
              (SELECT sum(r.quantity)::int FROM reversals r WHERE r.session_id = f.session_id AND r.line_item_id = f.line_item_id) AS reversed,
              EXISTS (SELECT 1 FROM reversals r WHERE r.session_id = f.session_id AND r.line_item_id = f.line_item_id) AS any_reversal
       FROM fulfillments f WHERE f.session_id = $1 ORDER BY f.fulfilled_at, f.line_item_id`,
      [sessionId],
    );
    return rows
      .map((row) => ({
        lineItemId: row.line_item_id,
        description: row.description,
        // A metered item (no quantity) is reversed once, whole.
        quantity: row.quantity === null ? null : row.quantity - (row.reversed ?? 0),
        productId: row.product_id,
        priceId: row.price_id,
        gone: row.quantity === null ? row.any_reversal : row.quantity - (row.reversed ?? 0) <= 0,
      }))
      .filter((item) => !item.gone)
      .map(({ gone: _gone, ...item }) => item);
  }

  /**
   * Reverses one line item for one refund or dispute exactly once: the row keyed on (reversal,
   * line item) and `work` commit together, as fulfillments do. Returns false when it was already reversed.
   */
  async reverseLineItemOnce(
    reversalId: string,
    sessionId: string,
    item: FulfilledItem,
    reason: string,
    work: (tx: Queryable) => Promise<void>,
  ): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const inserted = await tx.query(
        `INSERT INTO reversals (reversal_id, session_id, line_item_id, quantity, reason)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING line_item_id`,
        [reversalId, sessionId, item.lineItemId, item.quantity, reason],
      );
      if (inserted.length === 0) return false;
      await work(tx);
      return true;
    });
  }

  /** What a refund or dispute reversed (a retried reversal finds its earlier work here). */
  async getReversals(reversalId: string): Promise<FulfilledItem[]> {
    const rows = await this.db.query<{ line_item_id: string; quantity: number | null; description: string | null }>(
      `SELECT r.line_item_id, r.quantity, f.description FROM reversals r
       LEFT JOIN fulfillments f ON f.session_id = r.session_id AND f.line_item_id = r.line_item_id
       WHERE r.reversal_id = $1 ORDER BY r.reversed_at, r.line_item_id`,
      [reversalId],
    );
    return rows.map((row) => ({ lineItemId: row.line_item_id, description: row.description ?? '', quantity: row.quantity }));
  }

  async getFulfillments(sessionId: string): Promise<{ lineItemId: string; description: string; quantity: number | null }[]> {
    const rows = await this.db.query<{ line_item_id: string; description: string; quantity: number | null }>(
      'SELECT line_item_id, description, quantity FROM fulfillments WHERE session_id = $1 ORDER BY fulfilled_at, line_item_id',
      [sessionId],
    );
    return rows.map((row) => ({ lineItemId: row.line_item_id, description: row.description, quantity: row.quantity }));
  }

  async setStock(productId: string, onHand: number): Promise<void> {
    await this.db.query(
      'INSERT INTO stock (product_id, on_hand) VALUES ($1, $2) ON CONFLICT (product_id) DO UPDATE SET on_hand = EXCLUDED.on_hand',
      [productId, onHand],
    );
  }

  async getStock(productId: string): Promise<number | null> {
    const rows = await this.db.query<{ on_hand: number }>('SELECT on_hand FROM stock WHERE product_id = $1', [productId]);
    return rows[0]?.on_hand ?? null;
  }

  /**
   * Claims the right to send one email: the claim, 'sent' when an earlier attempt sent it, or
   * 'in_flight' while another attempt's lease runs. A lease that ran out (its attempt died) is
   * taken over. Lease times are the database's, so workers' clocks do not matter.
   */
  async claimEmail(sessionId: string, kind: EmailKind, leaseSeconds: number): Promise<EmailClaim | 'sent' | 'in_flight'> {
    const token = randomUUID();
    const claimed = await this.db.query(
      `INSERT INTO emails (session_id, kind, state, claim_token, lease_until)
       VALUES ($1, $2, 'sending', $3, now() + make_interval(secs => $4))
       ON CONFLICT (session_id, kind) DO UPDATE SET claim_token = EXCLUDED.claim_token, lease_until = EXCLUDED.lease_until
       WHERE emails.state = 'sending' AND emails.lease_until < now()
       RETURNING claim_token`,
      [sessionId, kind, token, leaseSeconds],
    );
    if (claimed.length > 0) return { sessionId, kind, token };
    return (await this.emailSent(sessionId, kind)) ? 'sent' : 'in_flight';
  }

  /** The send is still running: extend its lease. */
  async renewEmailClaim(claim: EmailClaim, leaseSeconds: number): Promise<void> {
    await this.db.query(
      `UPDATE emails SET lease_until = now() + make_interval(secs => $4)
       WHERE session_id = $1 AND kind = $2 AND claim_token = $3 AND state = 'sending'`,
      [claim.sessionId, claim.kind, claim.token, leaseSeconds],
    );
  }

  /** The send failed: give the claim back so the next attempt need not wait for the lease. */
  async releaseEmail(claim: EmailClaim): Promise<void> {
    await this.db.query(`DELETE FROM emails WHERE session_id = $1 AND kind = $2 AND claim_token = $3 AND state = 'sending'`, [
      claim.sessionId,
      claim.kind,
      claim.token,
    ]);
  }

  async markEmailSent(claim: EmailClaim, messageId: string, recipient: string): Promise<void> {
    await this.db.query(
      `UPDATE emails SET state = 'sent', message_id = $4, recipient = $5, sent_at = now(), lease_until = NULL
       WHERE session_id = $1 AND kind = $2 AND claim_token = $3`,
      [claim.sessionId, claim.kind, claim.token, messageId, recipient],
    );
  }

  async emailSent(sessionId: string, kind: EmailKind): Promise<boolean> {
    const rows = await this.db.query(`SELECT 1 FROM emails WHERE session_id = $1 AND kind = $2 AND state = 'sent'`, [sessionId, kind]);
    return rows.length > 0;
  }

  async countEmails(sessionId: string): Promise<number> {
    const rows = await this.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM emails WHERE session_id = $1 AND state = 'sent'`, [
      sessionId,
    ]);
    return rows[0]?.n ?? 0;
  }
}
