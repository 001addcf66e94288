/**
 * The benchmark's fulfiller (FULFILLER_MODULE): counts every delivery of a line item, in the
 * transaction that records it as fulfilled, so a count above 1 is a double fulfillment.
 */
import type { Fulfiller } from '../../src/fulfillment/fulfiller';

export const BENCH_DELIVERIES_TABLE = `CREATE TABLE IF NOT EXISTS bench_deliveries (
  session_id text NOT NULL, line_item_id text NOT NULL, deliveries int NOT NULL,
  PRIMARY KEY (session_id, line_item_id))`;

// Created by the first delivery (the benchmark creates it up front where several workers share a database).
let tableReady = false;

export const fulfiller: Fulfiller = {
  async fulfillLineItem({ sessionId, lineItem }, tx) {
    if (!tableReady) await tx.query(BENCH_DELIVERIES_TABLE);
    await tx.query(
      `INSERT INTO bench_deliveries VALUES ($1, $2, 1)
       ON CONFLICT (session_id, line_item_id) DO UPDATE SET deliveries = bench_deliveries.deliveries + 1`,
      [sessionId, lineItem.id],
    );
    tableReady = true;
  },
};
