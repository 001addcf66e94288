import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { startStripeEmulator, type StripeEmulator } from '../../src/stripe/emulator';
import { SEARCH_ATTRIBUTE_KEYS } from '../../workflows/definitions';
import { eventually } from '../helpers/eventually';
import { freePort } from '../../src/net/free-port';
import { fetchStatus } from '../helpers/status-api';
import { startSmtpServer } from '../helpers/smtp-server';
import { emulatedSession, eventPayload, postWebhook, startTestStack } from '../helpers/stack';
import { bundleWorkflows, createDevServerEnv } from '../helpers/temporal-env';

// A dev server with its state on disk, so it can be stopped and started again like a real outage.
let temporalPort: number;
let dir: string;
let bundle: WorkflowBundleWithSourceMap;
let emulator: StripeEmulator;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;

const startTemporal = () =>
  createDevServerEnv({ port: temporalPort, dbFilename: path.join(dir, 'temporal.sqlite'), searchAttributes: SEARCH_ATTRIBUTE_KEYS });

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outage-'));
  temporalPort = await freePort();
  [bundle, emulator, smtp] = await Promise.all([
    bundleWorkflows(require.resolve('../../workflows')),
    startStripeEmulator(),
    startSmtpServer(),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all([emulator?.close(), smtp?.stop()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

async function status(url: string, sessionId: string): Promise<string | undefined> {
  const { status: code, body } = await fetchStatus(url, sessionId);
  return code === 200 ? body.status : undefined;
}

test('when Temporal is down, then webhooks get 5xx; when it is back, then the redelivered event is fulfilled', async () => {
  let env: TestWorkflowEnvironment | undefined = await startTemporal();
  const stack = await startTestStack(env, { emulatorUrl: emulator.url, smtpUrl: smtp.url, workflowBundle: bundle });
  const url = stack.ingress!.url;
  try {
    await env.teardown();
    env = undefined;
    const readyz = await fetch(`${url}/readyz`);
    expect(readyz.status).toBe(503);
    expect(((await readyz.json()) as { checks: { temporal: string } }).checks.temporal).toMatch(/^unavailable/);

    const session = emulatedSession();
    emulator.put(session);
    const payload = eventPayload('checkout.session.completed', session.id);
    const refused = await postWebhook(url, payload);
    expect(refused.status).toBe(503);
    expect(await status(url, session.id)).toBeUndefined();

    env = await startTemporal();
    // Stripe redelivers the same event with backoff until it gets a 2xx.
    const accepted = await eventually(() => postWebhook(url, payload), (r) => r.status === 200, { timeoutMs: 30_000, intervalMs: 500 });
    expect(accepted.status).toBe(200);
    expect(await eventually(() => status(url, session.id), (s) => s === 'fulfilled', { timeoutMs: 30_000 })).toBe('fulfilled');
    expect(smtp.messages.filter((m) => m.parsed.messageId === `<receipt.${session.id}@shop.test>`)).toHaveLength(1);
  } finally {
    await stack.stop();
    await env?.teardown();
  }
});

test('when the whole product restarts, then a workflow waiting for a delayed payment resumes from the persisted state', async () => {
  const dataDir = path.join(dir, 'product');
  const session = emulatedSession({ paymentStatus: 'unpaid' });
  emulator.put(session);

  let env = await startTemporal();
  let stack = await startTestStack(env, { emulatorUrl: emulator.url, smtpUrl: smtp.url, workflowBundle: bundle, dataDir });
  expect((await postWebhook(stack.ingress!.url, eventPayload('checkout.session.completed', session.id))).status).toBe(200);
  expect(await eventually(() => status(stack.ingress!.url, session.id), (s) => s === 'awaiting_payment')).toBe('awaiting_payment');
  await stack.stop();
  await env.teardown();

  env = await startTemporal();
  stack = await startTestStack(env, { emulatorUrl: emulator.url, smtpUrl: smtp.url, workflowBundle: bundle, dataDir });
  try {
    const url = stack.ingress!.url;
    expect(await status(url, session.id)).toBe('awaiting_payment');
    emulator.put({ ...session, paymentStatus: 'paid' });
    expect((await postWebhook(url, eventPayload('checkout.session.async_payment_succeeded', session.id))).status).toBe(200);
    expect(await eventually(() => status(url, session.id), (s) => s === 'fulfilled', { timeoutMs: 30_000 })).toBe('fulfilled');
    expect(await env.client.workflow.count(`WorkflowId = "${session.id}"`).then((r) => r.count)).toBe(1);
  } finally {
    await stack.stop();
    await env.teardown();
  }
});
