/**
 * The bad-input catalogue: every input here is refused (or made harmless) with a clear answer,
 * and leaves nothing behind: no workflow started, no record written, no email sent, no Stripe read
 * (unless the row says the answer needs one). docs/reliability.md lists the same rows; a test
 * below checks that the table and this suite agree (`UPDATE_DOCS=1` rewrites the table).
 */
import fs from 'node:fs';
import path from 'node:path';
import Stripe from 'stripe';
import { WorkflowNotFoundError } from '@temporalio/common';
import type { EmulatedSession } from '../../src/stripe/emulator';
import { checkoutEventPayload, stripeEventPayload } from '../../src/stripe/signed-events';
import { eventually } from '../helpers/eventually';
import {
  emulatedSession,
  postWebhook,
  startProduct,
  WEBHOOK_SECRET,
  type TestStack,
} from '../helpers/stack';

let surroundings: Awaited<ReturnType<typeof startProduct>>;
let stack: TestStack;
let url: string;

beforeAll(async () => {
  surroundings = await startProduct();
  stack = surroundings.stack;
  url = stack.ingress!.url;
}, 120_000);

afterAll(async () => {
  await surroundings?.stop();
});

interface Answer {
  status: number;
  text: string;
  headers: Headers;
}

async function request(pathAndQuery: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(`${url}${pathAndQuery}`, init);
  return { status: response.status, text: await response.text(), headers: response.headers };
}

async function webhook(payload: string, options: Parameters<typeof postWebhook>[2] = {}): Promise<Answer> {
  const { status, body } = await postWebhook(url, payload, options);
  return { status, text: JSON.stringify(body), headers: new Headers() };
}

const completed = (session: EmulatedSession, overrides: Record<string, unknown> = {}) => {
  const event = JSON.parse(checkoutEventPayload('checkout.session.completed', session.id)) as Record<string, unknown>;
  return JSON.stringify({ ...event, ...overrides });
};

interface BadInput {
  where: 'webhook' | 'landing page' | 'status API' | 'pages and emails';
  input: string;
  /** The answer, as the table states it. */
  answer: string;
  send: (session: EmulatedSession) => Promise<Answer>;
  check: (answer: Answer) => void;
  /** Answering needs a Stripe read (the landing page's existence check, within the visitors' share). */
  readsStripe?: boolean;
  /** The input is a valid order carrying hostile text: it is fulfilled, and the check is about escaping. */
  fulfills?: boolean;
}

const status = (code: number, pattern?: RegExp) => (answer: Answer) => {
  expect(answer.status).toBe(code);
  if (pattern) expect(answer.text).toMatch(pattern);
};

const HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>';

const CATALOGUE: BadInput[] = [
  // --- The webhook: signature and body ---
  { where: 'webhook', input: 'no `Stripe-Signature` header', answer: '400 missing Stripe-Signature header', send: (s) => webhook(completed(s), { header: null }), check: status(400, /missing Stripe-Signature/) },
  { where: 'webhook', input: 'a malformed `Stripe-Signature` header', answer: '400 malformed Stripe-Signature header', send: (s) => webhook(completed(s), { header: 'garbage' }), check: status(400, /malformed/) },
  { where: 'webhook', input: 'a signature made with another secret', answer: '400 signature does not match', send: (s) => webhook(completed(s), { secret: 'whsec_someone_else' }), check: status(400, /does not match/) },
  { where: 'webhook', input: 'a signature made with a rotated-out secret', answer: '400 signature does not match', send: (s) => webhook(completed(s), { secret: 'whsec_test_retired' }), check: status(400, /does not match/) },
  {
    where: 'webhook',
    input: 'the body altered after signing',
    answer: '400 signature does not match',
    send: (s) => {
      const signed = completed(s);
      const header = Stripe.webhooks.generateTestHeaderString({ payload: signed, secret: WEBHOOK_SECRET });
      return webhook(signed.replace('checkout.session.completed', 'checkout.session.async_payment_succeeded'), { header });
    },
    check: status(400, /does not match/),
  },
  { where: 'webhook', input: 'a stale timestamp (a replay an hour later)', answer: '400 stale signature', send: (s) => webhook(completed(s), { timestamp: Math.floor(Date.now() / 1000) - 3600 }), check: status(400, /stale/) },
  { where: 'webhook', input: 'a timestamp ten years ahead (a signature that would never go stale)', answer: '400 signature timestamp in the future', send: (s) => webhook(completed(s), { timestamp: Math.floor(Date.now() / 1000) + 10 * 365 * 24 * 3600 }), check: status(400, /signature timestamp in the future/) },
  { where: 'webhook', input: 'a signed body that is not JSON', answer: '400 body is not valid JSON', send: () => webhook('{"id": "evt_1", '), check: status(400, /not valid JSON/) },
  { where: 'webhook', input: 'a signed body of `null`', answer: '400 malformed event', send: () => webhook('null'), check: status(400, /malformed event/) },
  { where: 'webhook', input: 'a signed JSON array', answer: '400 malformed event', send: () => webhook('[{"id":"evt_1"}]'), check: status(400, /malformed event/) },
  { where: 'webhook', input: 'a signed event without `data.object`', answer: '400 malformed event', send: (s) => webhook(completed(s, { data: {} })), check: status(400, /malformed event/) },
  { where: 'webhook', input: 'a signed event whose `data.object` is null', answer: '400 malformed event', send: (s) => webhook(completed(s, { data: { object: null } })), check: status(400, /malformed event/) },
  { where: 'webhook', input: 'a signed event without `livemode`', answer: '400 malformed event', send: (s) => webhook(completed(s, { livemode: undefined })), check: status(400, /malformed event/) },
  {
    where: 'webhook',
    input: 'a Checkout event whose object is not a Checkout Session (`pi_...`)',
    answer: '400 event does not carry a Checkout Session ID',
    send: (s) => webhook(completed(s, { data: { object: { id: `pi_${s.id.slice(8)}`, object: 'payment_intent' } } })),
    check: status(400, /does not carry a Checkout Session ID/),
  },
  { where: 'webhook', input: 'a Checkout event whose object has no ID', answer: '400 event does not carry a Checkout Session ID', send: (s) => webhook(completed(s, { data: { object: { object: 'checkout.session' } } })), check: status(400, /does not carry a Checkout Session ID/) },
  { where: 'webhook', input: 'a live-mode event for a test-mode key', answer: '400 livemode does not match the key; logged at error level', send: (s) => webhook(completed(s, { livemode: true })), check: status(400, /livemode=true does not match/) },
  { where: 'webhook', input: 'an event from a connected account (Connect not configured)', answer: '400 events from connected accounts are not handled; logged at error level', send: (s) => webhook(completed(s, { account: 'acct_1Connected' })), check: status(400, /connected accounts/) },
  { where: 'webhook', input: 'an empty body', answer: '400 empty body', send: () => webhook(''), check: status(400, /empty body/) },
  { where: 'webhook', input: 'a body over 1 MB', answer: '413 body larger than 1mb', send: (s) => webhook(completed(s, { padding: 'x'.repeat(1_100_000) })), check: status(413, /larger than/) },
  { where: 'webhook', input: 'a Content-Type other than JSON', answer: '415 Content-Type must be application/json', send: (s) => webhook(completed(s), { contentType: 'text/plain' }), check: status(415, /application\/json/) },
  {
    where: 'webhook',
    input: 'an oversized header (20 kB)',
    answer: '431 from the HTTP server',
    send: (s) => request('/webhook', { method: 'POST', body: completed(s), headers: { 'content-type': 'application/json', 'x-padding': 'x'.repeat(20_000) } }),
    check: status(431),
  },
  { where: 'webhook', input: '`GET /webhook`', answer: '404 not found', send: () => request('/webhook'), check: status(404, /not found/) },
  { where: 'webhook', input: 'an event type we do not handle, signed', answer: '200 ignored (acknowledged so Stripe stops sending it)', send: (s) => webhook(completed(s, { type: 'customer.created' })), check: status(200, /"ignored":true/) },
  {
    where: 'webhook',
    input: 'a refund event whose `payment_intent` is malformed (`pi_<script>`)',
    answer: '200 ignored: not a payment of ours; nothing routed',
    send: (s) => webhook(stripeEventPayload('charge.refunded', { id: `ch_${s.id.slice(8)}`, object: 'charge', payment_intent: 'pi_<script>' })),
    check: status(200, /"ignored":true/),
  },
  {
    where: 'webhook',
    input: 'a `payment_intent.succeeded` whose `metadata.order_id` is not a string',
    answer: '200 ignored: no order named; no workflow started',
    send: async (s) => {
      const paymentIntentId = `pi_${s.id.slice(8)}`;
      const answer = await webhook(stripeEventPayload('payment_intent.succeeded', { id: paymentIntentId, object: 'payment_intent', metadata: { order_id: { $ne: null } } }));
      if (await hasWorkflow(paymentIntentId)) throw new Error(`a workflow was started for ${paymentIntentId}`);
      return answer;
    },
    check: status(200, /"ignored":true/),
  },
  // --- The landing page ---
  { where: 'landing page', input: 'no `session_id`', answer: '400 page: missing order reference', send: () => request('/after-checkout'), check: status(400, /Missing order reference/) },
  { where: 'landing page', input: 'a malformed `session_id` (`cs_test_<script>`)', answer: '400 page, nothing echoed unescaped', send: () => request('/after-checkout?session_id=cs_test_%3Cscript%3E'), check: (a) => { status(400, /Missing order reference/)(a); expect(a.text).not.toContain('<script>'); } },
  { where: 'landing page', input: 'a repeated `session_id` (`?session_id=a&session_id=b`)', answer: '400 page', send: (s) => request(`/after-checkout?session_id=${s.id}&session_id=${s.id}`), check: status(400, /Missing order reference/) },
  { where: 'landing page', input: 'a `session_id` with unicode (`cs_test_ünï`)', answer: '400 page', send: () => request('/after-checkout?session_id=cs_test_%C3%BCn%C3%AF'), check: status(400, /Missing order reference/) },
  { where: 'landing page', input: 'a `session_id` of another kind (`pi_...`)', answer: '400 page', send: () => request('/after-checkout?session_id=pi_3MtwBwLkdIwHu7ix28a3tqPa'), check: status(400, /Missing order reference/) },
  {
    where: 'landing page',
    input: 'a well-formed `session_id` Stripe does not know',
    answer: '404 page: order not found; no fulfillment started',
    send: (s) => request(`/after-checkout?session_id=${s.id}x`),
    check: status(404, /Order not found/),
    readsStripe: true,
  },
  { where: 'landing page', input: '`HEAD` (link scanners)', answer: '200, empty; nothing started or read', send: (s) => request(`/after-checkout?session_id=${s.id}`, { method: 'HEAD' }), check: status(200) },
  {
    where: 'landing page',
    input: '`OPTIONS`',
    answer: '204 with `Allow: GET, HEAD`; nothing started or read',
    send: (s) => request(`/after-checkout?session_id=${s.id}`, { method: 'OPTIONS' }),
    check: (a) => {
      expect(a.status).toBe(204);
      expect(a.headers.get('allow')).toBe('GET, HEAD');
    },
  },
  // --- The status API ---
  { where: 'status API', input: 'a malformed ID', answer: '400 not a Checkout Session ID', send: () => request('/api/fulfillments/not-a-session'), check: status(400, /not a Checkout Session ID/) },
  { where: 'status API', input: 'a path trick (`..%2F..%2Fetc%2Fpasswd`)', answer: '400 not a Checkout Session ID', send: () => request('/api/fulfillments/..%2F..%2Fetc%2Fpasswd'), check: status(400, /not a Checkout Session ID/) },
  { where: 'status API', input: 'an ID with a NUL byte (`cs_test_x%00`)', answer: '400 not a Checkout Session ID', send: (s) => request(`/api/fulfillments/${s.id}%00`), check: status(400, /not a Checkout Session ID/) },
  { where: 'status API', input: 'a well-formed ID we have no record of', answer: '404 no fulfillment for this session', send: (s) => request(`/api/fulfillments/${s.id}`), check: status(404, /no fulfillment/) },
  { where: 'status API', input: 'a well-formed PaymentIntent ID we have no order for (`pi_...`)', answer: '404 no fulfillment for this session', send: (s) => request(`/api/fulfillments/pi_${s.id.slice(8)}`), check: status(404, /no fulfillment/) },
  { where: 'status API', input: 'no ID (`/api/fulfillments/`)', answer: '404 not found', send: () => request('/api/fulfillments/'), check: status(404, /not found/) },
  // --- Hostile text in what reaches a page or an email ---
  {
    where: 'pages and emails',
    input: 'HTML and script in a line item description',
    answer: 'fulfilled; escaped on the landing page and in the receipt',
    fulfills: true,
    send: async (s) => {
      surroundings.emulator.put({ ...s, lineItems: [{ ...s.lineItems[0]!, description: HOSTILE }] });
      await webhook(completed(s));
      await eventually(() => stack.services.store.getRecord(s.id), (r) => r?.view.status === 'fulfilled');
      return request(`/after-checkout?session_id=${s.id}`);
    },
    check: (a) => {
      expect(a.status).toBe(200);
      expect(a.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
      expect(a.text).not.toContain('<img src=x');
    },
  },
  {
    where: 'pages and emails',
    input: 'HTML and script in the customer name',
    answer: 'fulfilled; escaped in the receipt, never shown on pages or the status API',
    fulfills: true,
    send: async (s) => {
      surroundings.emulator.put({ ...s, customerName: HOSTILE });
      await webhook(completed(s));
      await eventually(() => stack.services.store.getRecord(s.id), (r) => r?.view.status === 'fulfilled');
      const mail = await eventually(
        async () => surroundings.smtp.messages.find((m) => m.parsed.messageId === `<receipt.${s.id}@shop.test>`),
        (m) => m !== undefined,
      );
      return { status: 200, text: String(mail?.parsed.html), headers: new Headers() };
    },
    check: (a) => {
      expect(a.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
      expect(a.text).not.toContain('<script>');
    },
  },
  {
    where: 'pages and emails',
    input: 'a customer email that is a list (`victim@example.com, attacker@evil.example`)',
    answer: 'fulfilled; no receipt sent, as for a session without an email',
    fulfills: true,
    send: async (s) => {
      surroundings.emulator.put({ ...s, customerEmail: 'victim@example.com, attacker@evil.example' });
      await webhook(completed(s));
      const record = await eventually(() => stack.services.store.getRecord(s.id), (r) => r?.view.status === 'fulfilled');
      const mails = surroundings.smtp.messages.filter((m) => m.parsed.messageId === `<receipt.${s.id}@shop.test>`);
      return { status: 200, text: JSON.stringify({ receiptSent: record?.view.receiptSent, mails: mails.length }), headers: new Headers() };
    },
    check: (a) => {
      expect(JSON.parse(a.text)).toEqual({ receiptSent: false, mails: 0 });
    },
  },
  // --- Last, since it leaves this client's rate-limit bucket empty for a minute ---
  {
    where: 'status API',
    input: 'a flood: 130 requests in a minute from one client',
    answer: '429 with `Retry-After` past the limit (120 a minute)',
    send: async (s) => {
      let last: Answer | undefined;
      for (let i = 0; i < 130 && last?.status !== 429; i++) last = await request(`/api/fulfillments/${s.id}`);
      return last!;
    },
    check: (a) => {
      expect(a.status).toBe(429);
      expect(Number(a.headers.get('retry-after'))).toBeGreaterThan(0);
    },
  },
];

async function hasWorkflow(workflowId: string): Promise<boolean> {
  try {
    await surroundings.env.client.workflow.getHandle(workflowId).describe();
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

describe('the bad-input catalogue', () => {
  test('when counted, then it holds at least 30 distinct inputs', () => {
    expect(new Set(CATALOGUE.map((row) => `${row.where}: ${row.input}`)).size).toBeGreaterThanOrEqual(30);
  });

  test.each(CATALOGUE.map((row) => [`${row.where}: ${row.input}`, row] as const))('when %s, then it is answered as the table says', async (_name, row) => {
    const session = emulatedSession();
    surroundings.emulator.put(session);
    const readsBefore = surroundings.emulator.requests.filter((r) => r.includes(session.id)).length;
    const mailsBefore = surroundings.smtp.messages.length;

    row.check(await row.send(session));

    if (row.fulfills) return; // a valid order: started on purpose; the check was about escaping
    // Nothing started, recorded, sent or (unless needed) read.
    expect(await hasWorkflow(session.id)).toBe(false);
    expect(await stack.services.store.getRecord(session.id)).toBeNull();
    expect(surroundings.smtp.messages.length).toBe(mailsBefore);
    if (!row.readsStripe) {
      expect(surroundings.emulator.requests.filter((r) => r.includes(session.id)).length).toBe(readsBefore);
      expect(await hasWorkflow(`check-${session.id}`)).toBe(false);
    }
  });

  test('when docs/reliability.md lists the catalogue, then it lists exactly these inputs and answers', () => {
    const doc = path.join(__dirname, '..', '..', 'docs', 'reliability.md');
    const table = [
      '| where | input | answer |',
      '|---|---|---|',
      ...CATALOGUE.map((row) => `| ${row.where} | ${row.input} | ${row.answer} |`),
    ].join('\n');
    const text = fs.readFileSync(doc, 'utf8');
    const [before, rest] = text.split('<!-- bad-input-table:start -->');
    const after = rest?.split('<!-- bad-input-table:end -->')[1];
    if (process.env.UPDATE_DOCS) {
      fs.writeFileSync(doc, `${before}<!-- bad-input-table:start -->\n${table}\n<!-- bad-input-table:end -->${after}`);
    }
    const current = fs.readFileSync(doc, 'utf8').split('<!-- bad-input-table:start -->\n')[1]?.split('\n<!-- bad-input-table:end -->')[0];
    expect(current).toBe(table);
  });
});

