import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { paymentIntentOf, type EmulatedSession } from '../../src/stripe/emulator';
import { stripeEventPayload } from '../../src/stripe/signed-events';
import { eventually } from '../helpers/eventually';
import { fetchStatus } from '../helpers/status-api';
import { emulatedSession, eventPayload, postWebhook, startProduct, type TestStack } from '../helpers/stack';

// Refunds and disputes through the real ingress, worker, dev server, PGlite, SMTP and the Stripe
// emulator: each tied back to its Checkout Session through the PaymentIntent, reversed once,
// emailed once, and shown by the status API and the landing page.
let product: Awaited<ReturnType<typeof startProduct>>;
let env: TestWorkflowEnvironment;
let stack: TestStack;
let url: string;

beforeAll(async () => {
  product = await startProduct();
  ({ env, stack } = product);
  url = stack.ingress!.url;
}, 120_000);

afterAll(async () => {
  await product?.stop();
});

const status = (sessionId: string) => fetchStatus(url, sessionId);
const waitForStatus = (sessionId: string, wanted: string) =>
  eventually(() => status(sessionId), (r) => r.body.status === wanted, { timeoutMs: 30_000, intervalMs: 250 });
const refundMails = (sessionId: string) => product.smtp.messages.filter((m) => m.parsed.messageId?.startsWith('<refund.') && m.parsed.messageId.endsWith(`.${sessionId}@shop.test>`));

async function fulfilledSession(overrides: Partial<EmulatedSession> = {}): Promise<{ session: EmulatedSession; paymentIntentId: string }> {
  const session = emulatedSession(overrides);
  product.emulator.put(session);
  for (const item of session.lineItems) await stack.services.store.setStock(item.productId, 10);
  await postWebhook(url, eventPayload('checkout.session.completed', session.id));
  await waitForStatus(session.id, 'fulfilled');
  return { session, paymentIntentId: paymentIntentOf(session)! };
}

const chargeEvent = (type: string, paymentIntentId: string) => stripeEventPayload(type, { id: `ch_${paymentIntentId.slice(3)}`, object: 'charge', payment_intent: paymentIntentId });

test('when the whole payment is refunded, then everything is restocked once, one refund email goes out, and the status API and page say refunded', async () => {
  const { session, paymentIntentId } = await fulfilledSession({ currency: 'jpy', customerName: 'Kenji <b>Sato</b>' });
  const total = session.lineItems.reduce((sum, item) => sum + item.unitAmount * (item.quantity ?? 0), 0);
  expect(await stack.services.store.getStock(session.lineItems[0]!.productId)).toBe(8);
  product.emulator.putRefund({ id: `re_${session.id.slice(8)}`, paymentIntentId, amount: total, currency: 'jpy', status: 'succeeded' });

  const event = chargeEvent('charge.refunded', paymentIntentId);
  const response = await postWebhook(url, event);
  expect(response.body).toEqual(expect.objectContaining({ sessionId: session.id, paymentIntentId, delivery: 'accepted' }));
  const refunded = await waitForStatus(session.id, 'refunded');
  expect(refunded.body.refunds).toEqual([expect.objectContaining({ amount: total, reversed: expect.arrayContaining([expect.objectContaining({ description: 'T-shirt', quantity: 2 })]) })]);
  expect(await stack.services.store.getStock(session.lineItems[0]!.productId)).toBe(10);
  expect(await stack.services.store.getStock(session.lineItems[1]!.productId)).toBe(10);

  // Redelivered: acknowledged, nothing done again.
  expect((await postWebhook(url, event)).body.delivery).toBe('already_settled');
  await eventually(() => Promise.resolve(refundMails(session.id)), (mails) => mails.length === 1);
  const [mail] = refundMails(session.id);
  expect(mail!.parsed.subject).toBe('Your Test Shop refund of ¥4,500');
  expect(mail!.parsed.html).toContain('Kenji &lt;b&gt;Sato&lt;/b&gt;');
  expect(await stack.services.store.getStock(session.lineItems[0]!.productId)).toBe(10);

  const page = await fetch(`${url}/after-checkout?session_id=${session.id}`);
  expect(await page.text()).toContain('Your order was refunded');
});

test('when part of the payment is refunded for named line items, then only those are restocked and it is partially_refunded', async () => {
  const { session, paymentIntentId } = await fulfilledSession();
  const [tshirt, stickers] = session.lineItems;
  product.emulator.putRefund({ id: `re_${session.id.slice(8)}`, paymentIntentId, amount: 2000, currency: 'usd', status: 'succeeded', metadata: { line_items: `${tshirt!.id}:1` } });

  await postWebhook(url, chargeEvent('charge.refunded', paymentIntentId));
  const partial = await waitForStatus(session.id, 'partially_refunded');
  expect(partial.body.refunds).toEqual([expect.objectContaining({ reversed: [expect.objectContaining({ lineItemId: tshirt!.id, quantity: 1 })], note: null })]);
  expect(await stack.services.store.getStock(tshirt!.productId)).toBe(9);
  expect(await stack.services.store.getStock(stickers!.productId)).toBe(9);
});

test('when a dispute opens and is lost, then the session shows disputed, then dispute_lost, without restocking goods that left', async () => {
  const { session, paymentIntentId } = await fulfilledSession();
  const dispute = { id: `dp_${session.id.slice(8)}`, paymentIntentId, amount: 4500, currency: 'usd', status: 'needs_response' as const, reason: 'product_not_received' };
  product.emulator.putDispute(dispute);
  await postWebhook(url, stripeEventPayload('charge.dispute.created', { id: dispute.id, object: 'dispute', payment_intent: paymentIntentId }));
  await waitForStatus(session.id, 'disputed');

  product.emulator.putDispute({ ...dispute, status: 'lost' });
  await postWebhook(url, stripeEventPayload('charge.dispute.closed', { id: dispute.id, object: 'dispute', payment_intent: paymentIntentId }));
  const lost = await waitForStatus(session.id, 'dispute_lost');
  expect(lost.body.disputes).toEqual([expect.objectContaining({ id: dispute.id, outcome: 'lost' })]);
  expect(await stack.services.store.getReversals(dispute.id)).toHaveLength(2); // recorded once each
  expect(await stack.services.store.getStock(session.lineItems[0]!.productId)).toBe(8); // the stock fulfiller does not restock a chargeback
});

test('when a refund names a payment whose session no webhook told us of, then the session is found at Stripe and, refunded in full, never fulfilled', async () => {
  const session = emulatedSession();
  product.emulator.put(session);
  const paymentIntentId = paymentIntentOf(session)!;
  product.emulator.putRefund({ id: `re_${session.id.slice(8)}`, paymentIntentId, amount: 4500, currency: 'usd', status: 'succeeded' });

  const event = chargeEvent('charge.refunded', paymentIntentId);
  const response = await postWebhook(url, event);
  expect(response.body).toEqual(expect.objectContaining({ sessionId: null, delivery: 'routing' }));
  expect((await postWebhook(url, event)).status).toBe(200); // a redelivery while routing: the same route
  const refunded = await waitForStatus(session.id, 'refunded');
  expect(refunded.body.fulfilled).toEqual([]);
  expect(await stack.services.store.getFulfillments(session.id)).toEqual([]);
  const route = env.client.workflow.getHandle(`route-${(JSON.parse(event) as { id: string }).id}`);
  expect(await route.result()).toEqual({ sessionId: session.id });
});

test('when a subscription-mode Checkout’s first payment is refunded, then the refund is not silently dropped: its routing ends Failed, naming the payment', async () => {
  const session = emulatedSession({ mode: 'subscription' }); // its payment belongs to the first invoice: no session.payment_intent
  product.emulator.put(session);
  await postWebhook(url, eventPayload('checkout.session.completed', session.id));
  await waitForStatus(session.id, 'fulfilled');
  const invoicePayment = `pi_invoice_${session.id.slice(8)}`;

  const event = chargeEvent('charge.refunded', invoicePayment);
  const response = await postWebhook(url, event);

  expect(response.status).toBe(200);
  const route = env.client.workflow.getHandle(`route-${(JSON.parse(event) as { id: string }).id}`);
  await expect(route.result()).rejects.toThrow(); // today's main: completed quietly, the refund dropped after the 200
  const described = await route.describe();
  expect(described.status.name).toBe('FAILED');
  const history = await route.fetchHistory();
  const failure = history.events?.find((e) => e.workflowExecutionFailedEventAttributes)?.workflowExecutionFailedEventAttributes?.failure;
  expect(failure?.applicationFailureInfo?.type).toBe('PaymentNotOurs');
  expect(failure?.message).toContain(invoicePayment);
});

test('when a refund event carries no PaymentIntent (not a Checkout payment), then it is acknowledged and ignored', async () => {
  const response = await postWebhook(url, stripeEventPayload('charge.refunded', { id: 'ch_legacy', object: 'charge', payment_intent: null }));
  expect(response.status).toBe(200);
  expect(response.body).toEqual({ received: true, ignored: true });
});
