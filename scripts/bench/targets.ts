/**
 * The product under measurement, on either topology, as separate processes (so the load generator
 * shares no event loop with it and each process's memory is its own):
 *   embedded  `npm start`'s all-in-one process: the Temporal dev server, PGlite, worker and ingress.
 *   cluster   `npm run cluster`: Temporal on PostgreSQL, 2 workers, 2 ingress processes behind HAProxy.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TLSConfig } from '@temporalio/client';
import { APP_NODE_ARGS, freeClusterPorts, startCluster } from '../../src/cluster/topology';
import { startProcess, waitForPort } from '../../src/cluster/processes';
import { freePort } from '../../src/net/free-port';
import { openDatabase, type Database } from '../../src/store';
import type { StripeEmulator } from '../../src/stripe/emulator';
import { DEFAULT_REQUESTS_PER_SECOND, STRIPE_LIMITS } from '../../src/stripe/request-budget';
import type { TestSmtpServer } from '../../test/helpers/smtp-server';
import { BENCH_DELIVERIES_TABLE } from './counting-fulfiller';
import { rssMb, waitUntil } from './load';

export type Topology = 'embedded' | 'cluster';

const ROOT = path.resolve(__dirname, '..', '..');
export const WEBHOOK_SECRET = 'whsec_bench';
/**
 * Stripe's test-mode limit (every request counts), enforced by the emulator. The product runs with
 * a test key and no budget set: its default for that mode.
 */
export const STRIPE_REQUEST_LIMIT = STRIPE_LIMITS.test;
export const DEFAULT_BUDGET = DEFAULT_REQUESTS_PER_SECOND.test;

export interface Target {
  topology: Topology;
  /** Where Stripe and customers reach it: the embedded ingress, or the proxy. */
  baseUrl: string;
  temporalAddress: string;
  /** How the bench's own clients reach Temporal: the cluster's frontend takes mutual TLS only (the operator's certificate). */
  temporalConnection: { address: string; tls?: TLSConfig };
  /** The processes that run workers (embedded: the all-in-one process). */
  workerPids(): number[];
  /** The embedded Temporal dev server's process, whose memory is not the product's. */
  serverPid?: number;
  /** Stops the product and returns how often each session's line items were delivered. */
  finish(): Promise<Map<string, number[]>>;
}

function appEnv(emulator: StripeEmulator, smtp: TestSmtpServer): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    STRIPE_SECRET_KEY: 'sk_test_bench',
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    STRIPE_API_BASE: emulator.url,
    SMTP_URL: smtp.url,
    EMAIL_FROM: 'Bench Shop <orders@bench.test>',
    RECONCILE_EVERY: 'off', // measured alone: the webhook path
    LOG_LEVEL: 'warn',
    FULFILLER_MODULE: path.join(__dirname, 'counting-fulfiller.ts'),
    // To measure a setting of the product's processes (BENCH_APP_ENV='{"WORKER_CACHED_WORKFLOWS":"20"}').
    ...(JSON.parse(process.env.BENCH_APP_ENV ?? '{}') as NodeJS.ProcessEnv),
  };
}

export async function startTarget(topology: Topology, emulator: StripeEmulator, smtp: TestSmtpServer): Promise<Target> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `bench-${topology}-`));
  return topology === 'embedded' ? startEmbedded(dir, emulator, smtp) : startClustered(dir, emulator, smtp);
}

async function startEmbedded(dir: string, emulator: StripeEmulator, smtp: TestSmtpServer): Promise<Target> {
  const port = await freePort();
  const temporalPort = await freePort();
  const app = startProcess(process.execPath, APP_NODE_ARGS, {
    cwd: ROOT,
    env: {
      ...appEnv(emulator, smtp),
      DATA_DIR: dir,
      PORT: String(port),
      TEMPORAL_DEV_SERVER_PORT: String(temporalPort),
      TEMPORAL_UI_PORT: String(await freePort()),
    },
  });
  await waitForPort(port, app.child, 180_000);
  const appPid = app.child.pid!;
  return {
    topology: 'embedded',
    baseUrl: `http://127.0.0.1:${port}`,
    temporalAddress: `127.0.0.1:${temporalPort}`,
    temporalConnection: { address: `127.0.0.1:${temporalPort}` },
    workerPids: () => [appPid],
    serverPid: childrenOf(appPid)[0],
    async finish() {
      await app.stop('SIGTERM');
      // PGlite serves one process: read it once the product has let go of it.
      const db = await openDatabase({ pgliteDir: path.join(dir, 'pglite') });
      try {
        return await deliveries(db);
      } finally {
        await db.close();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

async function startClustered(dir: string, emulator: StripeEmulator, smtp: TestSmtpServer): Promise<Target> {
  const cluster = await startCluster({ dataDir: dir, ports: await freeClusterPorts(), appEnv: appEnv(emulator, smtp) });
  const db = await openDatabase({ databaseUrl: cluster.databaseUrl });
  await db.query(BENCH_DELIVERIES_TABLE); // before two workers race to create it
  return {
    topology: 'cluster',
    baseUrl: cluster.proxyUrl,
    temporalAddress: cluster.temporalAddress,
    temporalConnection: cluster.temporalConnection,
    workerPids: () => cluster.apps.filter((app) => app.role === 'worker').map((app) => app.process.child.pid!),
    async finish() {
      try {
        return await deliveries(db);
      } finally {
        await db.close();
        await cluster.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

async function deliveries(db: Database): Promise<Map<string, number[]>> {
  const rows = await db.query<{ session_id: string; deliveries: number }>('SELECT session_id, deliveries FROM bench_deliveries');
  const bySession = new Map<string, number[]>();
  for (const row of rows) bySession.set(row.session_id, [...(bySession.get(row.session_id) ?? []), row.deliveries]);
  return bySession;
}

/** A process's children (Linux), e.g. the dev server the all-in-one process spawned. */
function childrenOf(pid: number): number[] {
  try {
    return fs
      .readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** Total resident memory of the processes, in MB, once it has stopped moving (a few samples apart). */
export async function settledRssMb(pids: number[]): Promise<number> {
  const total = () => pids.reduce((sum, pid) => sum + rssMb(pid), 0);
  let previous = total();
  let current = previous;
  await waitUntil(
    async () => {
      current = total();
      const steady = Math.abs(current - previous) < 2;
      previous = current;
      return steady;
    },
    30_000,
    2000,
  );
  return current;
}
