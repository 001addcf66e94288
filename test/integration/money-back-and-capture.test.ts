import { stockFulfiller, type Fulfiller } from '../../src/fulfillment/fulfiller';
import type { EmulatedPaymentIntent } from '../../src/stripe/emulator';
import { stripeEventPayload } from '../../src/stripe/signed-events';
import type { FulfillmentStatus } from '../../workflows/definitions';
import { eventually } from '../helpers/eventually';
import { keepHistory } from '../helpers/histories';
import { placePaymentIntentOrder } from '../helpers/orders';
import { postWebhook, startProduct, type TestStack } from '../helpers/stack';

// Refunds and manual capture of orders paid by PaymentIntent, through the real ingress, worker, dev
// server, PGlite, SMTP and the emulator: arrival orders and failures the time-skipping tests cannot play.
let product: Awaited<ReturnType<typeof startProduct>>;
let stack: TestStack;
let url: string;

// A warehouse call that hangs past the capture deadline and then fails (retryably).
const slowWarehouse: Fulfiller = {
  async fulfillLineItem(order, tx) {
    if (order.lineItem.productId?.startsWith('prod_slow')) {
      await new Promise((resolve) => setTimeout(resolve, 6000));
      throw new Error('the warehouse timed out');
    }
    await stockFulfiller.fulfillLineItem(order, tx);
  },
  reverseLineItem: stockFulfiller.reverseLineItem,
};

beforeAll(async () => {
  product = await startProduct({}, { fulfiller: slowWarehouse });
  ({ stack } = product);
  url = stack.ingress!.url;
}, 120_000);

afterAll(async () => {
  await product?.stop();
});

const placeOrder = (intent: Partial<EmulatedPaymentIntent> = {}, productIds?: string[], orderTotal?: number) =>
  placePaymentIntentOrder(product, { intent, productIds, orderTotal });

const sendIntent = (type: string, intent: EmulatedPaymentIntent) =>
  postWebhook(url, stripeEventPayload(type, { id: intent.id, object: 'payment_intent', status: intent.status, metadata: intent.metadata ?? {} }));
const sendRefund = (paymentIntentId: string) => postWebhook(url, stripeEventPayload('charge.refunded', { id: `ch_${paymentIntentId.slice(3)}`, object: 'charge', payment_intent: paymentIntentId }));
const statusOf = async (id: string) => (await stack.services.store.getRecord(id))?.view.status;
const waitForStatus = (id: string, status: FulfillmentStatus) => eventually(() => statusOf(id), (s) => s === status, { timeoutMs: 60_000, intervalMs: 200 });
const mails = (id: string, kind: string) => product.smtp.messages.filter((m) => m.parsed.messageId?.startsWith(`<${kind}`) && m.parsed.messageId.includes(id));

test('when an order paid by PaymentIntent is refunded in full before its payment event is handled, then it is never fulfilled and the refund is recorded', async () => {
  const { paymentIntent, items } = await placeOrder();
  product.emulator.putRefund({ id: `re_${paymentIntent.id.slice(3)}`, paymentIntentId: paymentIntent.id, amount: 3000, currency: 'eur', status: 'succeeded' });

  const refund = await sendRefund(paymentIntent.id); // redelivered out of order after an outage
  expect(refund.status).toBe(200);
  await waitForStatus(paymentIntent.id, 'refunded'); // today's main: routed nowhere, dropped after the 200
  // The run records `refunded`, then closes: the late event finds it closed (while it still runs, it is signalled and ignored).
  await eventually(async () => (await product.env.client.workflow.getHandle(paymentIntent.id).describe()).status.name, (name) => name !== 'RUNNING', { timeoutMs: 30_000 });
  const late = await sendIntent('payment_intent.succeeded', paymentIntent);

  expect(late.body.delivery).toBe('already_settled');
  for (const item of items) expect(await stack.services.store.getStock(item.productId!)).toBe(5); // nothing left the shelf
  expect(await stack.services.store.getFulfillments(paymentIntent.id)).toHaveLength(0);
  expect(mails(paymentIntent.id, 'receipt')).toHaveLength(0);
});

test('when an order whose total did not match its payment is refunded by the merchant, then the refund is recorded and the customer emailed', async () => {
  const { paymentIntent } = await placeOrder({}, ['prod_mug', 'prod_tea'], 2000); // the order says 20.00, the payment 30.00
  await sendIntent('payment_intent.succeeded', paymentIntent);
  await waitForStatus(paymentIntent.id, 'failed');
  expect((await stack.services.store.getRecord(paymentIntent.id))?.view.reason).toMatch(/^AmountMismatch/);

  product.emulator.putRefund({ id: `re_${paymentIntent.id.slice(3)}`, paymentIntentId: paymentIntent.id, amount: 3000, currency: 'eur', status: 'succeeded' });
  const refund = await sendRefund(paymentIntent.id);

  expect(refund.body.sessionId).toBe(paymentIntent.id); // found under its own ID (its record names no payment)
  await waitForStatus(paymentIntent.id, 'refunded'); // today's main: neither recorded nor emailed
  await eventually(async () => mails(paymentIntent.id, 'refund').length, (n) => n === 1);
});

test('when a fulfillment attempt still running at the capture deadline then fails, then the hold is released and the order canceled, not the execution failed', async () => {
  const captureBefore = Math.floor(Date.now() / 1000) + 3600 + 3; // captureBy (an hour earlier) is 3 s away
  const { paymentIntent } = await placeOrder({ status: 'requires_capture', captureMethod: 'manual', captureBefore }, ['prod_slow']);

  await sendIntent('payment_intent.amount_capturable_updated', paymentIntent);

  await waitForStatus(paymentIntent.id, 'canceled'); // today's main: the execution failed, the hold left to lapse
  await eventually(async () => (await product.env.client.workflow.getHandle(paymentIntent.id).describe()).status.name, (status) => status === 'COMPLETED');
  await keepHistory('payment-intent-deadline-cut-mid-attempt', product.env.client, paymentIntent.id);
  const intent = product.emulator.paymentIntents.get(paymentIntent.id)!;
  expect(intent.cancels).toBe(1);
  expect(intent.captures ?? 0).toBe(0);
  expect(await stack.services.store.getFulfillments(paymentIntent.id)).toHaveLength(0);
}, 90_000);

test('when two PaymentIntents pay the same order (two tabs), then the order ships once and the second payment is refunded', async () => {
  const { paymentIntent, order, items } = await placeOrder();
  const second: EmulatedPaymentIntent = { ...paymentIntent, id: `${paymentIntent.id}tab2` };
  product.emulator.putPaymentIntent(second);

  await sendIntent('payment_intent.succeeded', paymentIntent);
  await waitForStatus(paymentIntent.id, 'fulfilled');
  await sendIntent('payment_intent.succeeded', second);
  await waitForStatus(second.id, 'refunded');

  for (const item of items) expect(await stack.services.store.getStock(item.productId!)).toBe(4); // shipped once
  expect([...product.emulator.refunds.values()].filter((refund) => refund.paymentIntentId === second.id)).toHaveLength(1);
  expect((await stack.services.store.getRecord(second.id))?.view.reason).toContain(`order ${order.orderId} is already paid by ${paymentIntent.id}`);
});
