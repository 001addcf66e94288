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
};
