import { databaseOrderSource, type Order } from '../../src/fulfillment/order-source';
import type { EmulatedPaymentIntent, StripeEmulator } from '../../src/stripe/emulator';
import { lineItem } from '../fixtures/sessions';
import type { TestStack } from './stack';

let serial = 0;

/**
 * An order paid by PaymentIntent, as a merchant places one: the order in the app's `orders` table
 * (the default order source), 5 in stock of each of its products (EUR 15.00 a line item), and its
 * PaymentIntent at the emulator naming it in `metadata.order_id` (succeeded, unless told otherwise).
 */
export async function placePaymentIntentOrder(
  product: { stack: TestStack; emulator: StripeEmulator },
  { intent = {}, productIds = ['prod_mug', 'prod_tea'], orderTotal }: { intent?: Partial<EmulatedPaymentIntent>; productIds?: string[]; orderTotal?: number } = {},
) {
  const id = `${Date.now().toString(36)}${++serial}`;
  const items = productIds.map((productId, index) =>
    lineItem({ id: `li_${id}_${index}`, productId: `${productId}_${id}`, description: productId.replace('prod_', ''), quantity: 1, amountSubtotal: 1500, amountTotal: 1500, currency: 'eur' }),
  );
  const amount = 1500 * items.length;
  const order: Order = { orderId: `order_${id}`, currency: 'eur', amountTotal: orderTotal ?? amount, lineItems: items, contact: { email: `buyer${id}@example.org`, name: 'Buyer' } };
  await databaseOrderSource(product.stack.services.db).saveOrder(order);
  for (const item of items) await product.stack.services.store.setStock(item.productId!, 5);
  const paymentIntent: EmulatedPaymentIntent = { id: `pi_${id}`, amount, currency: 'eur', status: 'succeeded', metadata: { order_id: order.orderId }, ...intent };
  product.emulator.putPaymentIntent(paymentIntent);
  return { order, paymentIntent, items };
}
