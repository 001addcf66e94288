import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { SEARCH_ATTRIBUTE_KEYS } from '../../workflows/definitions';
import { eventually } from '../helpers/eventually';
import { emulatedSession, eventPayload, postWebhook, refusedReceiptFailure, startProduct, type TestStack } from '../helpers/stack';

// Who the customer is never reaches Temporal: not in any event of an execution's history (inputs,
// results, signals, failures), not in a pending activity's last failure, not in search attributes.
const CUSTOMER = { customerEmail: 'ada.lovelace@example.org', customerName: 'Ada Lovelace' };

let surroundings: Awaited<ReturnType<typeof startProduct>>;
let env: TestWorkflowEnvironment;
let stack: TestStack;

beforeAll(async () => {
  surroundings = await startProduct();
  ({ env, stack } = surroundings);
}, 120_000);

afterAll(async () => {
  await surroundings?.stop();
});

/** Everything Temporal holds about an execution, as text, payloads decoded from their bytes. */
async function whatTemporalHolds(workflowId: string): Promise<string> {
  const handle = env.client.workflow.getHandle(workflowId);
  const history = await handle.fetchHistory();
  const described = await handle.describe();
  const asText = (value: unknown) => JSON.stringify(decodeBytes(value));
  return [
    asText(history),
    asText(described.raw),
    asText(Object.fromEntries(SEARCH_ATTRIBUTE_KEYS.map((key) => [key.name, described.typedSearchAttributes.get(key)]))),
  ].join('\n');
}

/** Every byte string (payload data, failure details) as UTF-8 text, so the search sees what Temporal stores. */
function decodeBytes(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  if (Array.isArray(value)) return value.map(decodeBytes);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, decodeBytes(v)]));
  return value;
}

async function statusOf(sessionId: string) {
  return (await stack.services.store.getRecord(sessionId))?.view.status;
}

function expectNoCustomerIn(text: string, sessionId: string): void {
  // The search reads the payloads themselves: what the workflow does keep is there in clear.
  expect(text).toContain(sessionId);
  expect(text).toContain('Sticker pack');
  expect(text).not.toContain(CUSTOMER.customerEmail);
  expect(text).not.toContain(CUSTOMER.customerName);
  expect(text).not.toContain('ada.lovelace');
}

test('when a card payment is fulfilled, then its history holds neither the customer’s email nor name, and the receipt still reaches them', async () => {
  const session = emulatedSession(CUSTOMER);
  surroundings.emulator.put(session);
  await postWebhook(stack.ingress!.url, eventPayload('checkout.session.completed', session.id));
  await eventually(() => statusOf(session.id), (status) => status === 'fulfilled', { timeoutMs: 30_000 });

  expectNoCustomerIn(await whatTemporalHolds(session.id), session.id);
  expect(surroundings.smtp.messages.some((m) => m.envelopeTo.includes(CUSTOMER.customerEmail) && m.parsed.text?.includes('Hi Ada Lovelace'))).toBe(true);
});

test('when a delayed payment waits and then succeeds, then neither the wait nor the success leaves the customer in the history', async () => {
  const session = emulatedSession({ ...CUSTOMER, paymentStatus: 'unpaid' });
  surroundings.emulator.put(session);
  await postWebhook(stack.ingress!.url, eventPayload('checkout.session.completed', session.id));
  await eventually(() => statusOf(session.id), (status) => status === 'awaiting_payment');
  expectNoCustomerIn(await whatTemporalHolds(session.id), session.id);

  surroundings.emulator.put({ ...session, paymentStatus: 'paid' });
  await postWebhook(stack.ingress!.url, eventPayload('checkout.session.async_payment_succeeded', session.id));
  await eventually(() => statusOf(session.id), (status) => status === 'fulfilled', { timeoutMs: 30_000 });
  expectNoCustomerIn(await whatTemporalHolds(session.id), session.id);
});

test('when the mail server refuses the customer’s address, then the failure Temporal keeps does not quote it', async () => {
  const session = emulatedSession(CUSTOMER);
  // The receipt's attempts fail and are retried; the last failure is on the pending activity.
  const lastFailure = await refusedReceiptFailure(surroundings, session, (failure) => Boolean(failure.message));
  expect(lastFailure.message).toMatch(/\[customer\]/);
  expectNoCustomerIn(await whatTemporalHolds(session.id), session.id);
});

test('the search attributes carry no personal data: statuses, amount, currency and mode only', () => {
  expect(SEARCH_ATTRIBUTE_KEYS.map((key) => key.name).sort()).toEqual(['AmountTotal', 'Currency', 'FulfillmentStatus', 'Livemode', 'PaymentStatus']);
});
