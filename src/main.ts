/**
 * `npm start`: the product on embedded defaults. The Temporal dev server (state in DATA_DIR, Web UI
 * on loopback) unless TEMPORAL_ADDRESS is set, PGlite unless DATABASE_URL is set, the email outbox
 * unless SMTP_URL is set, and the fulfillment worker.
 */
import { NativeConnection } from '@temporalio/worker';
import { createActivities } from '../activities';
import { ConfigError, loadConfig } from './config';
import { openServices } from './services';
import { resolveTemporal } from './temporal/connection';
import { createFulfillmentWorker } from './temporal/worker';

async function main(): Promise<void> {
  const config = loadConfig();
  const temporal = await resolveTemporal(config);
  const services = await openServices(config);
  const connection = await NativeConnection.connect(temporal.connectionOptions);
  const worker = await createFulfillmentWorker({
    connection,
    namespace: temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    activities: createActivities(services.activityDeps),
  });

  console.log(`Temporal:   ${temporal.connectionOptions.address} (namespace ${temporal.namespace}, task queue ${config.temporal.taskQueue})`);
  if (temporal.embedded) console.log(`Temporal UI: ${temporal.embedded.uiUrl}`);
  console.log(`Database:   ${services.db.description}`);
  console.log(`Email:      ${services.mailer.description}`);
  console.log('Ctrl-C stops everything.');

  // The SDK shuts the worker down on SIGINT/SIGTERM; run() resolves once in-flight tasks are done.
  await worker.run();
  await connection.close();
  await services.close();
  await temporal.embedded?.stop();
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
