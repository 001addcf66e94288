import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createActivities } from '../activities';
import type { Config } from './config';
import { createIngressApp, listen, type IngressLogger, type RunningIngress } from './ingress/app';
import { FulfillmentStarter } from './temporal/fulfillment-starter';
import { createLogger } from './logger';
import { serveMetrics } from './metrics-server';
import { openServices, type Services } from './services';
import { resolveTemporal, type TemporalTarget } from './temporal/connection';
import { keptSecret } from './secret-file';
import { keepPrivate } from './shared/private-dir';
import { startCodecServer } from './temporal/codec-server';
import { dataConverterFor } from './temporal/encryption';
import { ensureReconcilerSchedule } from './temporal/reconciler-schedule';
import { assertSearchAttributesRegistered } from './temporal/search-attributes';
import { RECONCILER_SCHEDULE_ID } from '../workflows/definitions';
import { createFulfillmentWorkers } from './temporal/worker';
import type { Fulfiller } from './fulfillment/fulfiller';
import type { OrderSource } from './fulfillment/order-source';

export interface StackOptions {
  ingress: boolean;
  worker: boolean;
  /** Use this Temporal instead of resolving one from the configuration (tests). */
  temporal?: TemporalTarget;
  workflowBundle?: WorkflowBundleWithSourceMap;
  logger?: IngressLogger;
  landingWaitMs?: number;
  rateLimitPerMinute?: number;
  /** Listen on this host (default 127.0.0.1; 0.0.0.0 in a container). */
  host?: string;
  /** The merchant's fulfillment; default: the stock fulfiller. */
  fulfiller?: Fulfiller;
  /** The merchant's orders paid by PaymentIntent; default: the app's `orders` table. */
  orderSource?: OrderSource;
  /** Serve the codec server (CODEC_PORT) when payloads are encrypted, and point the embedded UI at it (`npm start`). */
  codecServer?: boolean;
}

export interface Stack {
  config: Config;
  temporal: TemporalTarget;
  services: Services;
  client: Client;
  ingress?: RunningIngress;
  /** A worker-only process's /metrics server (METRICS_PORT); with an ingress, /metrics is the ingress's. */
  metricsServer?: RunningIngress;
  /** The codec server, with where its token is kept when it was made here. */
  codecServer?: RunningIngress & { tokenFile?: string };
  workers: Worker[];
  stop(): Promise<void>;
}

/**
 * The product's processes in one: the worker, the ingress, or both (`npm start`), on the
 * configured Temporal (or the embedded dev server), database and mailer.
 */
export async function startStack(config: Config, options: StackOptions): Promise<Stack> {
  const logger = options.logger ?? createLogger();
  // Before anything writes there: PGlite, the outbox, the embedded Temporal's SQLite, the codec token.
  keepPrivate(config.dataDir);
  // First, so the embedded UI can be pointed at it.
  const codecServer = options.codecServer ? await startOwnCodecServer(config, logger) : undefined;
  const temporal = options.temporal ?? (await resolveTemporal(config, codecServer?.url));
  let workerConnection: NativeConnection | undefined;
  if (options.worker) {
    // Checked before anything else opens, so a refusal leaves nothing behind.
    workerConnection = await NativeConnection.connect(temporal.connectionOptions);
    try {
      await assertSearchAttributesRegistered(workerConnection, temporal.namespace);
    } catch (err) {
      await workerConnection.close();
      await temporal.embedded?.stop();
      await codecServer?.close();
      throw err;
    }
  }
  const services = await openServices(config, options.fulfiller, options.orderSource);
  const clientConnection = await Connection.connect(temporal.connectionOptions);
  const dataConverter = dataConverterFor(config.encryption);
  const client = new Client({ connection: clientConnection, namespace: temporal.namespace, dataConverter });
  // The only way into Temporal for webhooks, the landing page and the reconciler alike.
  const starter = new FulfillmentStarter(client, services.store, {
    taskQueue: config.temporal.taskQueue,
    paymentDeadline: config.paymentDeadline,
    timeoutMs: 5000,
  });

  let workers: Worker[] = [];
  let workersRun: Promise<unknown> | undefined;
  if (workerConnection) {
    workers = await createFulfillmentWorkers({
      connection: workerConnection,
      namespace: temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      activities: createActivities({ ...services.activityDeps, starter }),
      stripeActivitiesPerSecond: config.stripe.budget.fulfillmentPerSecond,
      cachedWorkflows: config.temporal.cachedWorkflows,
      workflowBundle: options.workflowBundle,
      dataConverter,
    });
    const schedule = await ensureReconcilerSchedule(client, { ...config.reconciler, taskQueue: config.temporal.taskQueue });
    logger.info('Reconciler schedule', { scheduleId: RECONCILER_SCHEDULE_ID, state: schedule, every: config.reconciler.every ?? 'off' });
    // A worker that dies (e.g. its task queue's namespace vanished) is logged; the process keeps serving.
    workersRun = Promise.all(
      workers.map((worker) =>
        worker.run().catch((err: unknown) => logger.error('Worker stopped with an error', { error: String(err) })),
      ),
    );
  }

  let ingress: RunningIngress | undefined;
  if (options.ingress) {
    const app = createIngressApp({
      starter,
      store: services.store,
      stripe: services.stripe,
      sessionCheck: services.sessionCheck,
      rateLimitStore: services.rateLimitStore,
      webhookSecrets: config.stripe.webhookSecrets,
      livemode: config.stripe.livemode,
      trustProxy: config.trustProxy,
      logger,
      metrics: services.metrics,
      landingWaitMs: options.landingWaitMs,
      rateLimitPerMinute: options.rateLimitPerMinute,
      readiness: {
        temporal: async () => {
          await client.withDeadline(Date.now() + 2000, () => clientConnection.healthService.check({}));
        },
        database: () => services.db.ping(),
      },
    });
    ingress = await listen(app, config.port, options.host);
  }

  let metricsServer: RunningIngress | undefined;
  if (!ingress && workerConnection && config.metricsPort !== null) {
    metricsServer = await serveMetrics(services.metrics, config.metricsPort, options.host);
  }

  let stopped: Promise<void> | undefined;
  return {
    config,
    temporal,
    services,
    client,
    ingress,
    metricsServer,
    codecServer,
    workers,
    stop() {
      // Ingress first (no new work), then the worker finishes what it holds, then the servers.
      stopped ??= (async () => {
        await ingress?.close();
        for (const worker of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
        await workersRun;
        await workerConnection?.close();
        await clientConnection.close();
        await metricsServer?.close();
        await services.close();
        await temporal.embedded?.stop();
        await codecServer?.close();
      })();
      return stopped;
    },
  };
}

/**
 * `npm start`'s codec server, when payloads are encrypted: CODEC_AUTH_TOKEN, or a token made once
 * and kept in the data directory.
 */
async function startOwnCodecServer(config: Config, logger: IngressLogger): Promise<Stack['codecServer']> {
  if (config.codec.port === null || config.encryption.keys.length === 0) return undefined;
  const tokenFile = config.codec.token ? undefined : path.join(config.dataDir, 'codec-token');
  const token = config.codec.token ?? keptSecret(tokenFile!, () => randomBytes(32).toString('hex'));
  const server = await startCodecServer({ ...config.codec, token }, logger);
  return { ...server, tokenFile };
}
