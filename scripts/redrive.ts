/**
 * `npm run redrive -- cs_... [pi_...]`: runs orders again once an operator has fixed what made
 * them end `failed` (a fulfiller that gave up, an order canceled by mistake) or stop waiting. The
 * one way a `failed` order runs again: nothing else (webhooks, the landing page, the reconciler)
 * reopens one. Starts each order's workflow (its kind's: Checkout Session or PaymentIntent order)
 * under its usual ID, or leaves a running one alone. Safe on any order: the workflow checks the
 * record first, and a settled one (fulfilled, payment_failed, expired, refunded...) is never done
 * again; line items already fulfilled are skipped.
 *
 * Talks to Temporal only: TEMPORAL_ADDRESS (default: the embedded dev server of `npm start`,
 * 127.0.0.1:TEMPORAL_DEV_SERVER_PORT), plus TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE and the
 * TEMPORAL_* TLS and API key settings and the payload encryption keys, as the worker reads them.
 */
import { Client, Connection } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { ConfigError, loadPayloadEncryption, loadSetting } from '../src/config';
import { dataConverterFor } from '../src/temporal/encryption';
import { remoteTemporal } from '../src/temporal/connection';
import { FulfillmentStarter } from '../src/temporal/fulfillment-starter';
import { orderKindOf } from '../src/orders/kinds';

async function main(): Promise<void> {
  const orderIds = process.argv.slice(2);
  const malformed = orderIds.filter((id) => !orderKindOf(id));
  if (orderIds.length === 0 || malformed.length > 0) {
    console.error(
      orderIds.length === 0
        ? 'usage: npm run redrive -- cs_... | pi_... [...]'
        : `not order IDs: ${malformed.join(', ')} (expected a Checkout Session ID, cs_test_... or cs_live_..., or a PaymentIntent ID, pi_...)`,
    );
    process.exit(2);
  }
  const env = process.env;
  const address = loadSetting(env, 'TEMPORAL_ADDRESS') ?? `127.0.0.1:${loadSetting(env, 'TEMPORAL_DEV_SERVER_PORT')}`;
  const temporal = remoteTemporal(address, loadSetting(env, 'TEMPORAL_NAMESPACE'));
  const connection = await Connection.connect(temporal.connectionOptions);
  try {
    // Encrypted as the workers expect (PAYLOAD_ENCRYPTION, PAYLOAD_ENCRYPTION_KEYS).
    const client = new Client({ connection, namespace: temporal.namespace, dataConverter: dataConverterFor(loadPayloadEncryption(env)) });
    // An operator's redrive: whatever the last run ended in, start a new one, told it is a redrive
    // (so a `failed` order runs again). The workflow itself refuses to redo a settled order, so this
    // cannot fulfill anything twice; the records are not consulted here.
    const noRecords = { getRecord: async () => null };
    const starter = new FulfillmentStarter(client, noRecords, {
      taskQueue: loadSetting(env, 'TEMPORAL_TASK_QUEUE'),
      paymentDeadline: loadSetting(env, 'PAYMENT_DEADLINE') as Duration,
      timeoutMs: 10_000,
      redrive: true,
    });
    for (const orderId of orderIds) {
      // A run still open (settling a refund, finishing a cancellation) is not a redrive: say so rather than pretend.
      if (await starter.isRunning(orderId)) {
        console.log(`${orderId}: an execution is still running; redrive it again once it has closed (see it in the Temporal UI)`);
        continue;
      }
      await starter.ensureStarted(orderId);
      console.log(`${orderId}: running (see it in the Temporal UI; its status API shows the outcome)`);
    }
  } finally {
    await connection.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : `redrive failed: ${(err as Error).message}`);
  process.exit(1);
});
