import type { LineItemSummary } from '../../workflows/definitions';
import type { Queryable } from '../store';

export interface LineItemOrder {
  sessionId: string;
  lineItem: LineItemSummary;
  /** `${sessionId}:${lineItemId}`: pass it to any external system (shipping API, licence server) you call. */
  idempotencyKey: string;
}

/**
 * What the merchant plugs in to deliver a line item: grant access, ship goods.
 *
 * It runs inside the database transaction that records the line item as fulfilled, so work done
 * through `tx` commits exactly once with that record. Work done elsewhere may be repeated after a
 * crash between that work and the commit: make it idempotent on `order.idempotencyKey`.
 * Throw to fail the attempt (it is retried); throw a non-retryable ApplicationFailure to give up.
 */
export interface Fulfiller {
  fulfillLineItem(order: LineItemOrder, tx: Queryable): Promise<void>;
  /**
   * Undoes (part of) a fulfilled line item: money came back. Runs inside the transaction that
   * records the reversal, once per refund or lost dispute and line item; `reversal.idempotencyKey`
   * names it for systems outside. Optional: without it, reversals are recorded for an operator.
   */
  reverseLineItem?(reversal: LineItemReversal, tx: Queryable): Promise<void>;
}

export interface LineItemReversal {
  sessionId: string;
  lineItem: { id: string; description: string; productId: string | null; priceId: string | null };
  /** How many to reverse; null for a metered item (reversed whole). */
  quantity: number | null;
  /** `refund`: the customer got money back (goods returned or not shipped); `dispute_lost`: a chargeback was lost. */
  reason: 'refund' | 'dispute_lost';
  /** The refund (`re_...`) or dispute (`dp_...`). */
  reversalId: string;
  /** `${reversalId}:${lineItemId}`. */
  idempotencyKey: string;
}

/**
 * The default: takes the quantity off the product's stock count, when the product is stock-managed.
 * A metered line item (no quantity) is billed by usage later: there is nothing to count out now.
 */
export const stockFulfiller: Fulfiller = {
  async fulfillLineItem({ lineItem }, tx) {
    if (!lineItem.productId || lineItem.quantity === null) return;
    await tx.query('UPDATE stock SET on_hand = on_hand - $2 WHERE product_id = $1', [lineItem.productId, lineItem.quantity]);
  },
  /**
   * A refund puts the quantity back on the shelf. A lost dispute does not: the goods went to the
   * customer and are not coming back (a merchant of digital goods revokes access here instead).
   */
  async reverseLineItem({ lineItem, quantity, reason }, tx) {
    if (reason !== 'refund' || !lineItem.productId || quantity === null) return;
    await tx.query('UPDATE stock SET on_hand = on_hand + $2 WHERE product_id = $1', [lineItem.productId, quantity]);
  },
};
