import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { loadConfig } from '../../src/config';
import { createMemoryLogger } from '../../src/logger';
import { startStack, type Stack, type StackOptions } from '../../src/stack';
import { startStripeEmulator, type StripeEmulator, type EmulatedSession } from '../../src/stripe/emulator';
import { STRICT_FAILURE_CONVERTER_PATH } from '../../src/temporal/encryption';
import { SEARCH_ATTRIBUTE_KEYS } from '../../workflows/definitions';
import { startSmtpServer } from './smtp-server';
import { bundleWorkflows, createDevServerEnv } from './temporal-env';
import { checkoutEventPayload, postSignedWebhook, type PostOptions } from '../../src/stripe/signed-events';
import { newSessionId } from '../fixtures/sessions';
import { eventually } from './eventually';

export interface ProductSurroundings {
  env: TestWorkflowEnvironment;
  bundle: WorkflowBundleWithSourceMap;
  emulator: StripeEmulator;
  smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  stop(): Promise<void>;
}

/**
 * What the product runs against in an integration test, started side by side: a dev server (with
 * our search attributes unless told otherwise), the bundled workflows (for encrypted payloads when
 * told), the Stripe emulator and SMTP.
 */
export async function startSurroundings({
  searchAttributes = true,
  encrypted = false,
  stripeRequestLimitPerSecond = Infinity,
}: { searchAttributes?: boolean; encrypted?: boolean; stripeRequestLimitPerSecond?: number } = {}): Promise<ProductSurroundings> {
  const [env, bundle, emulator, smtp] = await Promise.all([
    createDevServerEnv(searchAttributes ? { searchAttributes: SEARCH_ATTRIBUTE_KEYS } : {}),
    // With payload encryption, the workflow sandbox carries the failure converter too.
    bundleWorkflows(require.resolve('../../workflows'), { failureConverterPath: encrypted ? STRICT_FAILURE_CONVERTER_PATH : undefined }),
    startStripeEmulator(0, { requestLimitPerSecond: stripeRequestLimitPerSecond }),
    startSmtpServer(),
  ]);
  return {
    env,
    bundle,
    emulator,
    smtp,
    stop: async () => {
      await Promise.all([env.teardown(), emulator.close(), smtp.stop()]);
    },
  };
}

export const WEBHOOK_SECRET = 'whsec_test_primary';
export const ROTATED_SECRET = 'whsec_test_rotated';

/** The real product (ingress + worker) on a test Temporal, PGlite in a temp dir, real SMTP, the Stripe emulator. */
export async function startTestStack(
  env: Pick<TestWorkflowEnvironment, 'address'>,
  deps: {
    emulatorUrl: string;
    smtpUrl: string;
    workflowBundle: WorkflowBundleWithSourceMap;
    dataDir?: string;
    /** More settings, as environment variables. */
    env?: Record<string, string>;
  },
  options: Partial<StackOptions> = {},
): Promise<Stack & { dataDir: string; logger: ReturnType<typeof createMemoryLogger> }> {
  // A given data directory is the caller's to keep (restart tests); a fresh one is removed on stop.
  const dataDir = deps.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'stack-'));
  const config = loadConfig({
    PORT: '0',
    DATA_DIR: dataDir,
    STRIPE_SECRET_KEY: 'sk_test_integration',
    STRIPE_WEBHOOK_SECRET: `${WEBHOOK_SECRET},${ROTATED_SECRET}`,
    STRIPE_API_BASE: deps.emulatorUrl,
    SMTP_URL: deps.smtpUrl,
    EMAIL_FROM: 'Test Shop <orders@shop.test>',
    MERCHANT_NAME: 'Test Shop',
    // Off unless a test turns it on: a run between tests would start sessions they expect untouched.
    RECONCILE_EVERY: 'off',
    ...deps.env,
  });
  const logger = createMemoryLogger();
  const stack = await startStack(config, {
    ingress: true,
    worker: true,
    temporal: { namespace: 'default', connectionOptions: { address: env.address } },
    workflowBundle: deps.workflowBundle,
    logger,
    ...options,
  });
  return {
    ...stack,
    dataDir,
    logger,
    async stop() {
      await stack.stop();
      if (!deps.dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export type TestStack = Awaited<ReturnType<typeof startTestStack>>;

/**
 * The usual integration test's setup: fresh surroundings and the product wired to them (`settings`
 * as environment variables, `options` for the stack). `stop()` stops the product, then them.
 */
export async function startProduct(
  settings: Record<string, string> = {},
  options: Partial<StackOptions> = {},
): Promise<ProductSurroundings & { stack: TestStack }> {
  const surroundings = await startSurroundings({ encrypted: Boolean(settings.PAYLOAD_ENCRYPTION_KEYS) });
  const { env, emulator, smtp, bundle } = surroundings;
  const stack = await startTestStack(env, { emulatorUrl: emulator.url, smtpUrl: smtp.url, workflowBundle: bundle, env: settings }, options).catch(
    async (err: unknown) => {
      await surroundings.stop();
      throw err;
    },
  );
  return {
    ...surroundings,
    stack,
    async stop() {
      await stack.stop();
      await surroundings.stop();
    },
  };
}

/** A Checkout Session in the emulator: two line items, USD 45.00. */
export function emulatedSession(overrides: Partial<EmulatedSession> = {}): EmulatedSession {
  const id = overrides.id ?? newSessionId();
  return {
    id,
    status: 'complete',
    paymentStatus: 'paid',
    currency: 'usd',
    customerEmail: 'jenny@example.com',
    customerName: 'Jenny Rosen',
    lineItems: [
      { id: `li_${id}_a`, description: 'T-shirt', quantity: 2, priceId: 'price_tshirt', productId: `prod_tshirt_${id}`, unitAmount: 2000 },
      { id: `li_${id}_b`, description: 'Sticker pack', quantity: 1, priceId: 'price_stickers', productId: `prod_stickers_${id}`, unitAmount: 500 },
    ],
    ...overrides,
  };
}

export const eventPayload = checkoutEventPayload;

/**
 * A paid session whose receipt the mail server refuses (quoting the address, as mail servers do):
 * waits until its pending receipt activity has a last failure that satisfies `ready`, and returns
 * it raw, as Temporal keeps it. The mail server accepts again before this returns.
 */
export async function refusedReceiptFailure(
  product: Pick<ProductSurroundings, 'env' | 'emulator' | 'smtp'> & { stack: TestStack },
  session: EmulatedSession,
  ready: (failure: temporal.api.failure.v1.IFailure) => boolean,
): Promise<temporal.api.failure.v1.IFailure> {
  product.emulator.put(session);
  product.smtp.refuseRecipients(true);
  try {
    await postWebhook(product.stack.ingress!.url, eventPayload('checkout.session.completed', session.id));
    const failure = await eventually(
      async () => (await product.env.client.workflow.getHandle(session.id).describe()).raw.pendingActivities?.[0]?.lastFailure,
      (failure) => Boolean(failure && ready(failure)),
      { timeoutMs: 30_000 },
    );
    return failure!;
  } finally {
    product.smtp.refuseRecipients(false);
  }
}

/** Posts a webhook signed with the stack's primary secret unless told otherwise. */
export function postWebhook(baseUrl: string, payload: string, options: Partial<PostOptions> = {}) {
  return postSignedWebhook(baseUrl, payload, { secret: WEBHOOK_SECRET, ...options });
}

export type { StripeEmulator };
