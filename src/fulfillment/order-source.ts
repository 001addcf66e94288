import type { LineItemSummary } from '../../workflows/definitions';
import type { CustomerContact } from '../stripe/sessions';
import type { Database } from '../store';

/** What a customer ordered and paid for with a PaymentIntent made without Checkout. */
export interface Order {
  orderId: string;
  currency: string;
  /** Minor units: must equal the PaymentIntent's amount, or nothing is fulfilled. */
  amountTotal: number;
  lineItems: LineItemSummary[];
  /** Who to send the receipt to: kept in the app's database, never in Temporal. */
  contact: CustomerContact;
}

/**
 * Where the merchant's orders live, read by the order's ID from the PaymentIntent's
 * `metadata.order_id`. The default reads the app's `orders` table; a merchant with an order store
 * of their own implements this.
 */
export interface OrderSource {
  loadOrder(orderId: string): Promise<Order | null>;
}

/** The default: the `orders` table (`INSERT` an order before creating its PaymentIntent). */
export function databaseOrderSource(db: Database): OrderSource & { saveOrder(order: Order): Promise<void> } {
  return {
    async loadOrder(orderId) {
      const rows = await db.query<{
        order_id: string;
        currency: string;
        amount_total: number;
        line_items: LineItemSummary[] | string;
        customer_email: string | null;
        customer_name: string | null;
      }>('SELECT order_id, currency, amount_total, line_items, customer_email, customer_name FROM orders WHERE order_id = $1', [orderId]);
      const row = rows[0];
      if (!row) return null;
      return {
        orderId: row.order_id,
        currency: row.currency,
        amountTotal: row.amount_total,
        lineItems: typeof row.line_items === 'string' ? (JSON.parse(row.line_items) as LineItemSummary[]) : row.line_items,
        contact: { email: row.customer_email, name: row.customer_name },
      };
    },
    async saveOrder(order) {
      await db.query(
        `INSERT INTO orders (order_id, currency, amount_total, line_items, customer_email, customer_name)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (order_id) DO UPDATE SET currency = EXCLUDED.currency, amount_total = EXCLUDED.amount_total,
           line_items = EXCLUDED.line_items, customer_email = EXCLUDED.customer_email, customer_name = EXCLUDED.customer_name`,
        [order.orderId, order.currency, order.amountTotal, JSON.stringify(order.lineItems), order.contact.email, order.contact.name],
      );
    },
  };
}
