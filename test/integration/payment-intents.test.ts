import { ApplicationFailure } from '@temporalio/common';
import { stockFulfiller, type Fulfiller } from '../../src/fulfillment/fulfiller';
import type { EmulatedPaymentIntent } from '../../src/stripe/emulator';
import { stripeEventPayload } from '../../src/stripe/signed-events';
import { eventually } from '../helpers/eventually';
import { fetchStatus } from '../helpers/status-api';
import { placePaymentIntentOrder } from '../helpers/orders';
import { postWebhook, startProduct, type TestStack } from '../helpers/stack';

// Orders paid by PaymentIntent without Checkout, through the real ingress, worker, dev server,
// PGlite and SMTP, with the emulator's PaymentIntents: the order comes from the app's `orders`
// table (the default order source), named by the PaymentIntent's metadata.order_id.
const soldOut: Fulfiller = {
  async fulfillLineItem(order, tx) {
    if (order.lineItem.productId?.startsWith('prod_soldout')) throw ApplicationFailure.nonRetryable(`${order.lineItem.productId} is sold out`, 'OutOfStock');
    await stockFulfiller.fulfillLineItem(order, tx);
  },
  reverseLineItem: stockFulfiller.reverseLineItem,
};

let product: Awaited<ReturnType<typeof startProduct>>;
let stack: TestStack;
let url: string;

beforeAll(async () => {
  product = await startProduct({}, { fulfiller: soldOut });
  ({ stack } = product);
  url = stack.ingress!.url;
}, 120_000);

afterAll(async () => {
  await product?.stop();
});

/** An order in the `orders` table, stock for its products, and its PaymentIntent at the emulator. */
const placeOrder = (intent: Partial<EmulatedPaymentIntent>, productIds?: string[]) => placePaymentIntentOrder(product, { intent, productIds });

const send = (type: string, intent: EmulatedPaymentIntent) =>
  postWebhook(url, stripeEventPayload(type, { id: intent.id, object: 'payment_intent', status: intent.status, metadata: intent.metadata ?? {} }));
const waitForStatus = (id: string, wanted: string) => eventually(() => fetchStatus(url, id), (r) => r.body.status === wanted, { timeoutMs: 30_000, intervalMs: 250 });
const receipts = (id: string) => product.smtp.messages.filter((m) => m.parsed.messageId === `<receipt.${id}@shop.test>`);

test('when a PaymentIntent for an order succeeds, then the order is fulfilled once, stock moves once, and one receipt reaches its customer', async () => {
  const { paymentIntent, items, order } = await placeOrder({});
  const response = await send('payment_intent.succeeded', paymentIntent);
  expect(response.body).toEqual(expect.objectContaining({ paymentIntentId: paymentIntent.id, delivery: 'accepted' }));
  expect((await send('payment_intent.succeeded', paymentIntent)).status).toBe(200); // a second delivery of its kind

  const fulfilled = await waitForStatus(paymentIntent.id, 'fulfilled');
  expect(fulfilled.body).toEqual(expect.objectContaining({ amountTotal: 3000, currency: 'eur' }));
  for (const item of items) expect(await product.stack.services.store.getStock(item.productId!)).toBe(4);
  await eventually(() => Promise.resolve(receipts(paymentIntent.id)), (mails) => mails.length === 1);
  expect(receipts(paymentIntent.id)[0]!.envelopeTo).toContain(order.contact.email);
});

test('when the payment is processing, then the order waits awaiting_payment and is fulfilled when it succeeds', async () => {
  const { paymentIntent } = await placeOrder({ status: 'processing' });
  await send('payment_intent.processing', paymentIntent);
  await waitForStatus(paymentIntent.id, 'awaiting_payment');

  product.emulator.putPaymentIntent({ ...paymentIntent, status: 'succeeded' });
  await send('payment_intent.succeeded', { ...paymentIntent, status: 'succeeded' });
  await waitForStatus(paymentIntent.id, 'fulfilled');
});

test('when a payment attempt fails, then the order waits for a retry, says why, and the customer is told once', async () => {
  const { paymentIntent } = await placeOrder({ status: 'requires_payment_method', lastPaymentError: 'card_declined' });
  await send('payment_intent.payment_failed', paymentIntent);
  const waiting = await waitForStatus(paymentIntent.id, 'awaiting_payment');
  expect(waiting.body.reason).toMatch(/card_declined.*may try again/);
  const failedMails = () => product.smtp.messages.filter((m) => m.parsed.messageId === `<payment_failed.${paymentIntent.id}@shop.test>`);
  await eventually(() => Promise.resolve(failedMails()), (mails) => mails.length === 1);
  expect(waiting.body.fulfilled).toEqual([]);
});

test('when an authorization is ready to capture, then the order is fulfilled and the payment captured exactly once', async () => {
  const { paymentIntent } = await placeOrder({ status: 'requires_capture', captureMethod: 'manual' });
  await send('payment_intent.amount_capturable_updated', paymentIntent);
  await waitForStatus(paymentIntent.id, 'fulfilled');
  expect(product.emulator.paymentIntents.get(paymentIntent.id)).toEqual(expect.objectContaining({ status: 'succeeded', captures: 1 }));
});

test('when an authorized order includes something sold out, then what was fulfilled goes back to stock, the hold is released and nothing is captured', async () => {
  const { paymentIntent, items } = await placeOrder({ status: 'requires_capture', captureMethod: 'manual' }, ['prod_mug', 'prod_soldout']);
  await send('payment_intent.amount_capturable_updated', paymentIntent);
  const canceled = await waitForStatus(paymentIntent.id, 'canceled');
  expect(canceled.body.reason).toMatch(/OutOfStock: prod_soldout_\w+ is sold out/);
  expect(product.emulator.paymentIntents.get(paymentIntent.id)).toEqual(expect.objectContaining({ status: 'canceled', cancels: 1 }));
  expect(product.emulator.paymentIntents.get(paymentIntent.id)?.captures).toBeUndefined();
  expect(await product.stack.services.store.getStock(items[0]!.productId!)).toBe(5); // taken, then put back
  const canceledMails = () => product.smtp.messages.filter((m) => m.parsed.messageId === `<canceled.${paymentIntent.id}@shop.test>`);
  await eventually(() => Promise.resolve(canceledMails()), (mails) => mails.length === 1);
  expect(canceledMails()[0]!.parsed.text).toContain('was not taken');
  expect(canceledMails()[0]!.parsed.text).toContain('€30.00');
});

test('when a PaymentIntent names no order (Checkout’s own, or any other), then it is acknowledged and starts nothing', async () => {
  const response = await postWebhook(url, stripeEventPayload('payment_intent.succeeded', { id: 'pi_checkoutowned1', object: 'payment_intent', metadata: {} }));
  expect(response.body).toEqual({ received: true, ignored: true });
  expect((await fetchStatus(url, 'pi_checkoutowned1')).status).toBe(404);
});

test('when an order paid by PaymentIntent is refunded, then its own workflow reverses it, as for Checkout', async () => {
  const { paymentIntent, items } = await placeOrder({});
  await send('payment_intent.succeeded', paymentIntent);
  await waitForStatus(paymentIntent.id, 'fulfilled');
  product.emulator.putRefund({ id: `re_${paymentIntent.id.slice(3)}`, paymentIntentId: paymentIntent.id, amount: 3000, currency: 'eur', status: 'succeeded' });
  const response = await postWebhook(url, stripeEventPayload('charge.refunded', { id: `ch_${paymentIntent.id.slice(3)}`, object: 'charge', payment_intent: paymentIntent.id }));
  expect(response.body).toEqual(expect.objectContaining({ sessionId: paymentIntent.id, delivery: 'accepted' }));
  await waitForStatus(paymentIntent.id, 'refunded');
  for (const item of items) expect(await product.stack.services.store.getStock(item.productId!)).toBe(5);
});
