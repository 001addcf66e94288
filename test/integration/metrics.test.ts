import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createIngressApp, listen } from '../../src/ingress/app';
import { FulfillmentStarter } from '../../src/temporal/fulfillment-starter';
import type { StripeEmulator } from '../../src/stripe/emulator';
import type { FulfillmentStatus } from '../../workflows/definitions';
import { newSessionId } from '../fixtures/sessions';
import { eventually } from '../helpers/eventually';
import { startSmtpServer } from '../helpers/smtp-server';
import { fetchStatus } from '../helpers/status-api';
import {
  emulatedSession,
  eventPayload,
  postWebhook,
  startProduct,
  startTestStack,
  WEBHOOK_SECRET,
  type TestStack,
} from '../helpers/stack';

let product: Awaited<ReturnType<typeof startProduct>>;
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let emulator: StripeEmulator;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let stack: TestStack;
let url: string;

beforeAll(async () => {
  product = await startProduct();
  ({ env, bundle, emulator, smtp, stack } = product);
  url = stack.ingress!.url;
}, 120_000);

afterAll(async () => {
  await product?.stop();
});

/** The sum of the samples of `name` whose labels include `labels`; undefined when there is none. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const own = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(([, key, value]) => [key, value]));
    if (Object.entries(labels).every(([key, value]) => own[key] === value)) sum = (sum ?? 0) + Number(match[3]);
  }
  return sum;
}

async function scrape(baseUrl = url): Promise<string> {
  const response = await fetch(`${baseUrl}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  return response.text();
}

async function waitForStatus(sessionId: string, status: FulfillmentStatus): Promise<void> {
  const seen = await eventually(
    () => fetchStatus(url, sessionId),
    (r) => r.body.status === status,
    { timeoutMs: 20_000, intervalMs: 250 },
  );
  expect(seen.body.status).toBe(status);
}

describe('the sample parser', () => {
  test('when labels are asked for, then only matching samples are summed, and a missing metric is undefined', () => {
    const text = ['# HELP a_total x', 'a_total{outcome="x",code="200"} 2', 'a_total{outcome="x",code="503"} 3', 'a_total{outcome="y",code="200"} 5', 'b 7'].join('\n');
    expect(sample(text, 'a_total', { outcome: 'x' })).toBe(5);
    expect(sample(text, 'a_total', { code: '200' })).toBe(7);
    expect(sample(text, 'b')).toBe(7);
    expect(sample(text, 'a')).toBeUndefined();
  });
});

describe('/metrics on the ingress', () => {
  test('when a paid session is delivered, fulfilled and delivered again, then the ack, the event, the fulfillment and the Stripe read are counted once', async () => {
    const before = await scrape();
    const session = emulatedSession();
    emulator.put(session);
    const payload = eventPayload('checkout.session.completed', session.id);

    expect((await postWebhook(url, payload)).status).toBe(200);
    await waitForStatus(session.id, 'fulfilled');
    const afterFirst = await scrape();
    expect(sample(afterFirst, 'checkout_webhook_acks_total', { outcome: 'accepted', code: '200' })).toBe(1);
    expect(sample(afterFirst, 'checkout_webhook_events_total', { type: 'checkout.session.completed' })).toBe(1);
    expect(sample(afterFirst, 'checkout_webhook_ack_duration_seconds_count', { outcome: 'accepted' })).toBe(1);
    expect(sample(afterFirst, 'checkout_webhook_ack_duration_seconds_bucket', { outcome: 'accepted', le: '10' })).toBe(1);
    expect(sample(afterFirst, 'checkout_webhook_ack_duration_seconds_sum', { outcome: 'accepted' })).toBeGreaterThan(0);
    expect(sample(before, 'checkout_fulfillments_total', { status: 'fulfilled' })).toBe(0);
    expect(sample(afterFirst, 'checkout_fulfillments_total', { status: 'fulfilled' })).toBe(1);
    expect(sample(afterFirst, 'checkout_stripe_reads_total', { activity: 'retrieveSession' })).toBeGreaterThan(
      sample(before, 'checkout_stripe_reads_total', { activity: 'retrieveSession' })!,
    );

    // Stripe redelivers: acknowledged as settled, and the fulfillment is not counted twice.
    const again = await postWebhook(url, payload);
    expect(again.body.delivery).toBe('already_settled');
    const afterAgain = await scrape();
    expect(sample(afterAgain, 'checkout_webhook_acks_total', { outcome: 'already_settled', code: '200' })).toBe(1);
    expect(sample(afterAgain, 'checkout_webhook_events_total', { type: 'checkout.session.completed' })).toBe(2);
    expect(sample(afterAgain, 'checkout_fulfillments_total', { status: 'fulfilled' })).toBe(1);
  });

  test('when webhooks are refused or ignored, then each is counted under its outcome and status code', async () => {
    const before = await scrape();
    const badSignature = await postWebhook(url, eventPayload('checkout.session.completed', newSessionId()), { secret: 'whsec_not_ours' });
    expect(badSignature.status).toBe(400);
    expect((await postWebhook(url, eventPayload('payment_intent.created', newSessionId()))).status).toBe(200);

    const after = await scrape();
    const grew = (labels: Record<string, string>) =>
      (sample(after, 'checkout_webhook_acks_total', labels) ?? 0) - (sample(before, 'checkout_webhook_acks_total', labels) ?? 0);
    expect(grew({ outcome: 'rejected', code: '400' })).toBe(1);
    expect(grew({ outcome: 'ignored', code: '200' })).toBe(1);
    // Only verified events are counted by type.
    expect(sample(after, 'checkout_webhook_events_total', { type: 'payment_intent.created' })).toBe(1);
  });

  test('when a session awaits a delayed payment, then the waiting gauge counts it and the oldest age is its age', async () => {
    const session = emulatedSession({ paymentStatus: 'unpaid' });
    emulator.put(session);
    expect((await postWebhook(url, eventPayload('checkout.session.completed', session.id))).status).toBe(200);
    await waitForStatus(session.id, 'awaiting_payment');

    const text = await scrape();
    expect(sample(text, 'checkout_sessions_waiting', { status: 'awaiting_payment' })).toBe(1);
    expect(sample(text, 'checkout_sessions_waiting', { status: 'paused' })).toBe(0);
    const age = sample(text, 'checkout_sessions_waiting_oldest_age_seconds', { status: 'awaiting_payment' })!;
    expect(age).toBeGreaterThan(0);
    expect(age).toBeLessThan(60);
    expect(sample(text, 'checkout_sessions_waiting_oldest_age_seconds', { status: 'paused' })).toBe(0);
  });

  test('when the landing page asks about a session Stripe does not know, then the read and its not_found error are counted', async () => {
    const before = await scrape();
    expect((await fetch(`${url}/after-checkout?session_id=${newSessionId()}`)).status).toBe(404);
    const after = await scrape();
    const labels = { activity: 'sessionExists', error: 'not_found' };
    expect((sample(after, 'checkout_stripe_read_errors_total', labels) ?? 0) - (sample(before, 'checkout_stripe_read_errors_total', labels) ?? 0)).toBe(1);
    expect(sample(after, 'checkout_stripe_reads_total', { activity: 'sessionExists' })).toBe(
      sample(before, 'checkout_stripe_reads_total', { activity: 'sessionExists' })! + 1,
    );
  });

  test('when the process runs a worker, then the SDK worker metrics and the process metrics are in the same scrape', async () => {
    const text = await scrape();
    expect(sample(text, 'temporal_worker_task_slots_available', { task_queue: 'fulfillment' })).toBeGreaterThan(0);
    expect(sample(text, 'temporal_request_total')).toBeGreaterThan(0);
    expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(sample(text, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    // One HELP per metric name: the SDK's exporter and ours do not collide.
    const helps = text.split('\n').filter((line) => line.startsWith('# HELP '));
    expect(new Set(helps.map((line) => line.split(' ')[2])).size).toBe(helps.length);
  });

  test('when /metrics is scraped more often than the landing page limit allows, then it still answers', async () => {
    const limited = await listen(
      createIngressApp({
        starter: new FulfillmentStarter(stack.client, stack.services.store, { taskQueue: 'fulfillment', paymentDeadline: '7 days', timeoutMs: 5000 }),
        store: stack.services.store,
        stripe: stack.services.stripe,
        sessionCheck: stack.services.sessionCheck,
        webhookSecrets: [WEBHOOK_SECRET],
        livemode: false,
        trustProxy: ['loopback'],
        logger: stack.logger,
        metrics: stack.services.metrics,
        readiness: { temporal: async () => undefined, database: async () => undefined },
        rateLimitPerMinute: 1,
      }),
      0,
    );
    try {
      const scrapes = [];
      for (let i = 0; i < 3; i++) scrapes.push((await fetch(`${limited.url}/metrics`)).status);
      expect(scrapes).toEqual([200, 200, 200]);
      const statusApi = [];
      for (let i = 0; i < 2; i++) statusApi.push((await fetch(`${limited.url}/api/fulfillments/${newSessionId()}`)).status);
      expect(statusApi).toEqual([404, 429]);
    } finally {
      await limited.close();
    }
  });

  test('when Stripe refuses the API key, then the paused gauge and the authentication errors show it', async () => {
    const before = await scrape();
    const session = emulatedSession();
    emulator.put(session);
    emulator.failNext(401, 1000); // refused until the test is over
    try {
      expect((await postWebhook(url, eventPayload('checkout.session.completed', session.id))).status).toBe(200);
      await waitForStatus(session.id, 'paused');
      const after = await scrape();
      expect(sample(after, 'checkout_sessions_waiting', { status: 'paused' })).toBe(1);
      const labels = { activity: 'retrieveSession', error: 'authentication' };
      expect(sample(after, 'checkout_stripe_read_errors_total', labels)).toBeGreaterThan(sample(before, 'checkout_stripe_read_errors_total', labels) ?? 0);
    } finally {
      emulator.failNext(401, 0);
    }
  });

  test('when the whole scrape is read, then it holds no session ID, email, name, event ID or secret', async () => {
    const text = await scrape();
    expect(text).not.toMatch(/cs_(test|live)_/);
    expect(text).not.toMatch(/evt_/);
    expect(text).not.toContain('example.com');
    expect(text).not.toContain('Jenny');
    expect(text).not.toMatch(/sk_test_|whsec_/);
  });

  test('when the ingress serves /metrics, then the stack starts no separate metrics server', () => {
    expect(stack.metricsServer).toBeUndefined();
  });
});

describe('/metrics of a worker-only process (METRICS_PORT)', () => {
  test('when a worker runs without an ingress, then its own server answers with its counters and its SDK worker metrics', async () => {
    // Its own task queue, so it takes no work from the stack above (which has its own database).
    const workerOnly = await startTestStack(
      env,
      { emulatorUrl: emulator.url, smtpUrl: smtp.url, workflowBundle: bundle, env: { METRICS_PORT: '0', TEMPORAL_TASK_QUEUE: 'metrics-worker-only' } },
      { ingress: false },
    );
    try {
      expect(workerOnly.ingress).toBeUndefined();
      const text = await scrape(workerOnly.metricsServer!.url);
      expect(sample(text, 'checkout_fulfillments_total', { status: 'fulfilled' })).toBe(0);
      expect(sample(text, 'checkout_sessions_waiting', { status: 'awaiting_payment' })).toBe(0);
      expect(sample(text, 'temporal_worker_task_slots_available', { task_queue: 'metrics-worker-only' })).toBeGreaterThan(0);
      expect(text).not.toMatch(/cs_(test|live)_/);
      expect((await fetch(`${workerOnly.metricsServer!.url}/webhook`, { method: 'POST' })).status).toBe(404);
    } finally {
      await workerOnly.stop();
    }
  });
});
