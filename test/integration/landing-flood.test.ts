/**
 * Issue 20, items 3 and 4, through the whole product (dev server, worker, ingress, PGlite, SMTP):
 * a botnet floods the landing page with made-up IDs while real payments arrive, and the Stripe
 * emulator enforces Stripe's test-mode limit (25 requests/s). The product runs at its default
 * budget for a test key (20/s: visitors 4/s, fulfillment 16/s).
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { STRIPE_LIMITS } from '../../src/stripe/request-budget';
import type { EmulatedSession, StripeEmulator } from '../../src/stripe/emulator';
import { newSessionId } from '../fixtures/sessions';
import { eventually } from '../helpers/eventually';
import { emulatedSession, eventPayload, postWebhook, startSurroundings, startTestStack, type ProductSurroundings, type TestStack } from '../helpers/stack';

let surroundings: ProductSurroundings;
let env: TestWorkflowEnvironment;
let emulator: StripeEmulator;
let stack: TestStack;
let url: string;

beforeAll(async () => {
  surroundings = await startSurroundings({ stripeRequestLimitPerSecond: STRIPE_LIMITS.test });
  ({ env, emulator } = surroundings);
  const { smtp, bundle } = surroundings;
  stack = await startTestStack(env, { emulatorUrl: emulator.url, smtpUrl: smtp.url, workflowBundle: bundle });
  url = stack.ingress!.url;
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await surroundings?.stop();
});

/** A paid session with `count` line items: more than a page of them takes more than one request to read. */
function sessionWithItems(count: number): EmulatedSession {
  const session = emulatedSession();
  return {
    ...session,
    lineItems: Array.from({ length: count }, (_, i) => ({
      id: `li_${session.id.slice(8)}_${i}`,
      description: `Item ${i}`,
      quantity: 1,
      priceId: 'price_item',
      productId: `prod_item_${session.id}`,
      unitAmount: 100,
    })),
  };
}

test('when hundreds of made-up IDs from many addresses arrive during a burst of real payments, then the payments are fulfilled on time, the reads stay within the visitors\' share, no execution is left per made-up ID, and Stripe never answers 429', async () => {
  const paid = Array.from({ length: 20 }, (_, i) => sessionWithItems(i % 2 ? 150 : 2));
  for (const session of paid) emulator.put(session);
  const flood = Array.from({ length: 400 }, () => newSessionId());
  const requestsBefore = emulator.requests.length;
  const limitedBefore = emulator.rateLimited();
  const started = Date.now();

  const answers: number[] = [];
  let floodEnded = 0;
  const flooding = (async () => {
    let next = 0;
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (next < flood.length) {
          const i = next++;
          const page = await fetch(`${url}/after-checkout?session_id=${flood[i]}`, { headers: { 'x-forwarded-for': `198.51.100.${i % 100}` } });
          await page.text();
          answers.push(page.status);
        }
      }),
    );
    floodEnded = Date.now();
  })();
  const acks = await Promise.all(paid.map((session) => postWebhook(url, eventPayload('checkout.session.completed', session.id))));
  expect(acks.map((ack) => ack.status)).toEqual(paid.map(() => 200));

  // Fulfilled on time: about 40 requests at fulfillment's 16/s, with room for a loaded machine.
  const statuses = await eventually(
    () => Promise.all(paid.map(async (session) => (await stack.services.store.getRecord(session.id))?.view.status)),
    (seen) => seen.every((status) => status === 'fulfilled'),
    { timeoutMs: 30_000, intervalMs: 250 },
  );
  expect(statuses).toEqual(paid.map(() => 'fulfilled'));
  await flooding;

  expect(emulator.rateLimited() - limitedBefore).toBe(0);
  expect(answers.filter((status) => status !== 404 && status !== 503)).toEqual([]);
  const visitorReads = emulator.requests.slice(requestsBefore).filter((request) => flood.some((id) => request.includes(id))).length;
  expect(visitorReads).toBeLessThanOrEqual(Math.floor(stack.config.stripe.budget.visitorsPerSecond * ((floodEnded - started) / 1000)) + 2);
  // No execution of any kind for a made-up ID: neither a checkSession nor a fulfillment.
  const left = await env.client.workflow.count(`WorkflowType = 'checkSession' AND StartTime >= '${new Date(started - 1000).toISOString()}'`);
  expect(left.count).toBe(0);
  for (const id of flood.slice(0, 20)) expect(await stack.services.store.getRecord(id)).toBeNull();
}, 120_000);
