import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Client, Connection } from '@temporalio/client';
import { startCluster, type Cluster } from '../../src/cluster/topology';
import { TEMPORAL_MAX_PORT } from '../../src/cluster/temporal-server';
import { freePort, freePortRange } from '../../src/net/free-port';
import { FulfillmentStore, openDatabase, type Database } from '../../src/store';
import { startStripeEmulator, type StripeEmulator } from '../../src/stripe/emulator';
import { startSmtpServer, type TestSmtpServer } from '../../test/helpers/smtp-server';

export const WEBHOOK_SECRET = 'whsec_faults';
const SECRET_KEY = 'sk_test_faults';
const SMTP_PASSWORD = 'smtp-pass-7f3a9c';
// Stripe's test-mode read limit; the product is configured below it and must stay there.
export const STRIPE_READ_LIMIT = 25;
const CONFIGURED_READS_PER_SECOND = 20;

/** Everything a fault run needs: the production topology, a Stripe that can misbehave, a mailbox that can go down. */
export interface Harness {
  cluster: Cluster;
  emulator: StripeEmulator;
  smtp: TestSmtpServer;
  store: FulfillmentStore;
  db: Database;
  /** A Temporal client on the cluster (it reconnects by itself after a server restart). */
  client: Client;
  /** Every line every process printed, for the secrets-and-PII check. */
  logLines: string[];
  /** The app database's admin connection (to refuse connections to it). */
  admin(): Promise<pg.Client>;
  secrets: string[];
  close(): Promise<void>;
}

export async function startHarness(): Promise<Harness> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faults-'));
  fs.chmodSync(dir, 0o755); // PostgreSQL runs as its own user
  const [emulator, smtp] = await Promise.all([startStripeEmulator(0, { readLimitPerSecond: STRIPE_READ_LIMIT }), startSmtpServer()]);
  const logLines: string[] = [];
  const cluster = await startCluster({
    dataDir: dir,
    ports: {
      proxy: await freePort(),
      ingress: [await freePort(), await freePort()],
      temporal: await freePortRange(14, TEMPORAL_MAX_PORT),
      ui: await freePort(),
      postgres: await freePort(),
    },
    appEnv: {
      ...process.env,
      STRIPE_SECRET_KEY: SECRET_KEY,
      STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      STRIPE_API_BASE: emulator.url,
      STRIPE_MAX_READS_PER_SECOND: String(CONFIGURED_READS_PER_SECOND),
      SMTP_URL: smtp.url.replace('smtp://', `smtp://faults:${SMTP_PASSWORD}@`),
      EMAIL_FROM: 'Fault Shop <orders@faults.test>',
      RECONCILE_EVERY: '1 hour', // runs are triggered mid-burst instead
      // Slow enough that a killed worker is often caught inside fulfill-line-items.
      FULFILLER_MODULE: path.join(__dirname, '..', '..', 'test', 'fixtures', 'slow-fulfiller.ts'),
    },
    log: (source, line) => void logLines.push(`[${source}] ${line}`),
  });
  const db = await openDatabase({ databaseUrl: cluster.databaseUrl });
  const connection = await Connection.connect({ address: cluster.temporalAddress });
  return {
    cluster,
    client: new Client({ connection, namespace: 'default' }),
    emulator,
    smtp,
    db,
    store: new FulfillmentStore(db),
    logLines,
    // The database password is the cluster's own (in the connection string the app processes get).
    secrets: [SECRET_KEY, WEBHOOK_SECRET, SMTP_PASSWORD, decodeURIComponent(new URL(cluster.databaseUrl).password)],
    async admin() {
      const client = new pg.Client({ connectionString: cluster.databaseUrl.replace(/\/checkout$/, '/postgres') });
      await client.connect();
      return client;
    },
    async close() {
      await connection.close().catch(() => undefined);
      await db.close().catch(() => undefined);
      await cluster.stop();
      await Promise.all([emulator.close(), smtp.stop()]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
