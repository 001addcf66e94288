/**
 * The merchant fulfiller the fault suite runs with (FULFILLER_MODULE): the stock fulfiller, slowed
 * down inside its transaction (FAULTS_FULFILL_DELAY_MS, default 300 ms a line item) so that a
 * worker killed at a random moment is often caught in the middle of fulfill-line-items, and able
 * to reverse (a refund puts the stock back). Every fulfillment and reversal also writes a row to
 * `faults_ledger`, in the same transaction as the product's own record of it: the checker counts
 * how many times each line item was really fulfilled and reversed, which the stock level alone
 * cannot tell once a refund has put it back.
 */
import { stockFulfiller, type Fulfiller } from '../../src/fulfillment/fulfiller';
import type { Queryable } from '../../src/store';

const delayMs = Number(process.env.FAULTS_FULFILL_DELAY_MS ?? 300);

/** Created by the harness before any order is played (not part of the product's schema). */
export const LEDGER_TABLE = `CREATE TABLE IF NOT EXISTS faults_ledger (
  session_id text NOT NULL,
  line_item_id text NOT NULL,
  move text NOT NULL,
  reversal_id text,
  quantity integer,
  at timestamptz NOT NULL DEFAULT now()
)`;

const record = (tx: Queryable, sessionId: string, lineItemId: string, move: string, reversalId: string | null, quantity: number | null) =>
  tx.query('INSERT INTO faults_ledger (session_id, line_item_id, move, reversal_id, quantity) VALUES ($1, $2, $3, $4, $5)', [
    sessionId,
    lineItemId,
    move,
    reversalId,
    quantity,
  ]);

export const fulfiller: Fulfiller = {
  async fulfillLineItem(order, tx) {
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    await stockFulfiller.fulfillLineItem(order, tx);
    await record(tx, order.sessionId, order.lineItem.id, 'fulfill', null, order.lineItem.quantity);
  },
  async reverseLineItem(reversal, tx) {
    await stockFulfiller.reverseLineItem!(reversal, tx);
    await record(tx, reversal.sessionId, reversal.lineItem.id, `reverse:${reversal.reason}`, reversal.reversalId, reversal.quantity);
  },
};
