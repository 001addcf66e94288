import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Client, Connection } from '@temporalio/client';
import { clusterSecretValues, freeClusterPorts, startCluster, type Cluster } from '../../src/cluster/topology';
import { loadConfig } from '../../src/config';
import { loadFulfiller } from '../../src/fulfillment/load-fulfiller';
import { freePort } from '../../src/net/free-port';
import { startStack } from '../../src/stack';
import { FulfillmentStore, openDatabase } from '../../src/store';
import { startStripeEmulator, type StripeEmulator } from '../../src/stripe/emulator';
import { startSmtpServer, type TestSmtpServer } from '../../test/helpers/smtp-server';
import { LEDGER_TABLE } from './fulfiller';

export const WEBHOOK_SECRET = 'whsec_faults';
const SECRET_KEY = 'sk_test_faults';
const SMTP_PASSWORD = 'smtp-pass-7f3a9c';
// Stripe's test-mode read limit; the product is configured below it and must stay there.
export const STRIPE_READ_LIMIT = 25;
const CONFIGURED_READS_PER_SECOND = '20';
// Slow enough that a killed worker is often caught inside fulfill-line-items; reverses refunds; keeps a ledger.
const SLOW_FULFILLER = path.join(__dirname, 'fulfiller.ts');

export type Topology = 'cluster' | 'embedded';

/** Everything a fault run needs: the product, a Stripe that can misbehave, a mailbox that can go down. */
export interface Harness {
  topology: Topology;
  /** Where Stripe and customers reach the product: the proxy, or the embedded ingress. */
  baseUrl: string;
  emulator: StripeEmulator;
  smtp: TestSmtpServer;
  store: FulfillmentStore;
  /** A Temporal client (it reconnects by itself after a server restart). */
  client: Client;
  /** Only on the production topology: its processes, for the kill and database faults. */
  cluster?: Cluster;
  /** Every log line captured, for the secrets-and-PII check. */
  logLines: string[];
  secrets: string[];
  close(): Promise<void>;
}

function appSettings(emulator: StripeEmulator, smtp: TestSmtpServer): NodeJS.ProcessEnv {
  return {
    STRIPE_SECRET_KEY: SECRET_KEY,
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    STRIPE_API_BASE: emulator.url,
    STRIPE_MAX_READS_PER_SECOND: CONFIGURED_READS_PER_SECOND,
    SMTP_URL: smtp.url.replace('smtp://', `smtp://faults:${SMTP_PASSWORD}@`),
    EMAIL_FROM: 'Fault Shop <orders@faults.test>',
    RECONCILE_EVERY: '1 hour', // runs are triggered mid-burst instead
    FULFILLER_MODULE: SLOW_FULFILLER,
  };
}

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faults-'));
  return dir;
}

/** The production topology (`npm run cluster`). */
export async function startClusterHarness(): Promise<Harness> {
  const dir = tempDir();
  const [emulator, smtp] = await Promise.all([startStripeEmulator(0, { readLimitPerSecond: STRIPE_READ_LIMIT }), startSmtpServer()]);
  const logLines: string[] = [];
  let cluster: Cluster | undefined;
  let db: Awaited<ReturnType<typeof openDatabase>> | undefined;
  let connection: Connection;
  try {
    cluster = await startCluster({
      dataDir: dir,
      ports: await freeClusterPorts(),
      appEnv: { ...process.env, ...appSettings(emulator, smtp) },
      log: (source, line) => void logLines.push(`[${source}] ${line}`),
    });
    db = await openDatabase({ databaseUrl: cluster.databaseUrl });
    await db.query(LEDGER_TABLE);
    connection = await Connection.connect(cluster.temporalConnection);
  } catch (err) {
    // Nothing left running (a test runner would wait for it forever).
    await db?.close().catch(() => undefined);
    await cluster?.stop().catch(() => undefined);
    await Promise.all([emulator.close(), smtp.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    topology: 'cluster',
    baseUrl: cluster.proxyUrl,
    cluster,
    emulator,
    smtp,
    client: new Client({ connection, namespace: 'default' }),
    store: new FulfillmentStore(db),
    logLines,
    // Plus the cluster's own: the database password, the payload keys and the codec server's token.
    secrets: [SECRET_KEY, WEBHOOK_SECRET, SMTP_PASSWORD, ...clusterSecretValues(cluster)],
    async close() {
      await connection.close().catch(() => undefined);
      await db.close().catch(() => undefined);
      await cluster.stop();
      await Promise.all([emulator.close(), smtp.stop()]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The embedded default, as `npm start` runs it: one process, the Temporal dev server, PGlite, in this process. */
export async function startEmbeddedHarness(): Promise<Harness> {
  const dir = tempDir();
  const [emulator, smtp] = await Promise.all([startStripeEmulator(0, { readLimitPerSecond: STRIPE_READ_LIMIT }), startSmtpServer()]);
  const logLines: string[] = [];
  const line = (level: string) => (message: string, meta?: Record<string, unknown>) =>
    void logLines.push(`[${level}] ${message}${meta ? ` ${JSON.stringify(meta)}` : ''}`);
  const config = loadConfig({
    ...appSettings(emulator, smtp),
    PORT: '0',
    DATA_DIR: dir,
    TEMPORAL_DEV_SERVER_PORT: String(await freePort()),
    TEMPORAL_UI_PORT: String(await freePort()),
  });
  const stack = await startStack(config, {
    ingress: true,
    worker: true,
    logger: { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') },
    fulfiller: loadFulfiller(SLOW_FULFILLER),
  });
  await stack.services.store.db.query(LEDGER_TABLE);
  return {
    topology: 'embedded',
    baseUrl: stack.ingress!.url,
    emulator,
    smtp,
    client: stack.client,
    store: stack.services.store,
    logLines,
    secrets: [SECRET_KEY, WEBHOOK_SECRET, SMTP_PASSWORD],
    async close() {
      await stack.stop();
      await Promise.all([emulator.close(), smtp.stop()]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An admin connection to the cluster's PostgreSQL (to make the app's database refuse connections). */
export async function adminConnection(cluster: Cluster): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: cluster.databaseUrl.replace(/\/checkout$/, '/postgres') });
  await client.connect();
  return client;
}
