/**
 * `npm run redrive -- cs_... [cs_...]`: runs sessions again once an operator has fixed what made
 * them end `failed` (a fulfiller that gave up, a session canceled by mistake) or stop waiting.
 * Starts each session's workflow under its usual ID, or leaves a running one alone. Safe on any
 * session: the workflow checks the record first, and a settled one (fulfilled, payment_failed,
 * expired) is never done again; line items already fulfilled are skipped.
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
import { SESSION_ID_PATTERN } from '../src/stripe/sessions';

async function main(): Promise<void> {
  const sessionIds = process.argv.slice(2);
  const malformed = sessionIds.filter((id) => !SESSION_ID_PATTERN.test(id));
  if (sessionIds.length === 0 || malformed.length > 0) {
    console.error(
      sessionIds.length === 0
        ? 'usage: npm run redrive -- cs_... [cs_...]'
        : `not Checkout Session IDs: ${malformed.join(', ')} (expected cs_test_... or cs_live_...)`,
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
    // "No record" for every session: whatever the last run ended in, start a new one. The workflow
    // itself refuses to redo a settled session, so this cannot fulfill anything twice.
    const noRecords = { getRecord: async () => null };
    const starter = new FulfillmentStarter(client, noRecords, {
      taskQueue: loadSetting(env, 'TEMPORAL_TASK_QUEUE'),
      paymentDeadline: loadSetting(env, 'PAYMENT_DEADLINE') as Duration,
      timeoutMs: 10_000,
    });
    for (const sessionId of sessionIds) {
      await starter.ensureStarted(sessionId);
      console.log(`${sessionId}: running (see it in the Temporal UI; its status API shows the outcome)`);
    }
  } finally {
    await connection.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : `redrive failed: ${(err as Error).message}`);
  process.exit(1);
});
