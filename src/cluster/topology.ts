import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TLSConfig } from '@temporalio/client';
import pg from 'pg';
import { keptSecret } from '../secret-file';
import { keepPrivate, writePrivateFile } from '../shared/private-dir';
import { requireClusterTools } from '../temporal/tools';
import { startHaproxy } from './haproxy';
import { startPostgresServer, type PostgresServer } from './postgres-server';
import { startProcess, waitForPort, type ManagedProcess } from './processes';
import { freePort, freePortRange } from '../net/free-port';
import { newKeyEntry } from '../temporal/encryption';
import {
  registerNamespace,
  setupTemporalSchemas,
  startTemporalServer,
  TEMPORAL_MAX_PORT,
  waitForNamespace,
  type TemporalServer,
} from './temporal-server';
import { clientTlsEnv, keptTemporalTls, operatorProfile, temporalTlsFiles, TLS_CLIENTS } from './temporal-tls';
import { startUiServer } from './ui-server';

const ROOT = path.resolve(__dirname, '..', '..');
export const NAMESPACE = 'default';
/**
 * How the product's processes run, as `npm start`, `npm run worker` and `npm run ingress` do (and
 * the Dockerfile): a heap limit well above the live heap (about 100 MB) makes V8 collect before it
 * grows the heap, so memory stays flat however many sessions wait (docs/benchmarks.md).
 */
export const APP_NODE_ARGS = ['--max-old-space-size=512', '--import', 'tsx', path.join(ROOT, 'src', 'main.ts')];
export const APP_DATABASE = 'checkout';
/**
 * Temporal keeps a closed execution's history this long: two weeks of executions to inspect in the
 * UI, well past Stripe's three days of redeliveries and the reconciler's look-back. The outcome
 * itself is kept for good in the app's database, which also stops a late duplicate after that.
 */
export const RETENTION_DAYS = 14;

export interface ClusterPorts {
  /** HAProxy, in front of the ingress processes: the webhook and landing-page URL. */
  proxy: number;
  /** One per ingress process. */
  ingress: number[];
  /** The Temporal frontend (gRPC); the server's other services take the next 13 ports. */
  temporal: number;
  ui: number;
  /** The codec server the UI decodes payloads through. */
  codec: number;
  postgres: number;
}

/** Ports for a throwaway topology (tests, the fault suite): any free ones, Temporal's below its limit. */
export async function freeClusterPorts(): Promise<ClusterPorts> {
  return {
    proxy: await freePort(),
    ingress: [await freePort(), await freePort()],
    temporal: await freePortRange(14, TEMPORAL_MAX_PORT),
    ui: await freePort(),
    codec: await freePort(),
    postgres: await freePort(),
  };
}

export interface ClusterOptions {
  /** Everything persistent: PostgreSQL's data (Temporal's two databases and the app's), configs, the outbox. */
  dataDir: string;
  /**
   * The private directory `dataDir` is in (`npm run cluster`: DATA_DIR; default `dataDir`): made
   * 0700 at start, with files 0600, and the one PostgreSQL's user is let through (postgres-server.ts).
   */
  privateDir?: string;
  ports: ClusterPorts;
  workers?: number;
  /** The product's own settings for the worker and ingress processes (Stripe keys, SMTP, ...). */
  appEnv: NodeJS.ProcessEnv;
  /** Lets the Temporal UI's users cancel, terminate, signal, reset and start executions (TEMPORAL_DISABLE_WRITE_ACTIONS=false). Off by default. */
  uiWriteActions?: boolean;
  /** Every line any process prints, with its name. */
  log?: (source: string, line: string) => void;
}

export interface AppProcess {
  name: string;
  role: 'worker' | 'ingress';
  /** An ingress's PORT, where it also serves /metrics. */
  port?: number;
  /** A worker's METRICS_PORT: each worker its own. */
  metricsPort?: number;
  process: ManagedProcess;
}

export interface Cluster {
  proxyUrl: string;
  uiUrl: string;
  /** Where operators sign in (`/login`) so the UI shows decrypted payloads. */
  codecUrl: string;
  /**
   * The files holding the payload keys and the codec server's token, and the directory of the
   * Temporal frontend's CA and certificates (`temporal-tls.ts`), made on first start.
   */
  secrets: { payloadKeys: string; codecToken: string; temporalTls: string };
  /** The certificates this start made (`ca`, `frontend`, ...; empty when every kept one was reused). */
  tlsMade: string[];
  temporalAddress: string;
  /** How to reach the frontend from this process: its address, and TLS with the operator's certificate. */
  temporalConnection: { address: string; tls: TLSConfig };
  /** The operator's Temporal CLI configuration (`temporal --config-file <file> ...`), rewritten at every start. */
  cliConfigFile: string;
  databaseUrl: string;
  apps: AppProcess[];
  /** Starts a worker or ingress process again (after a kill), under the same name and port. */
  restartApp(name: string): Promise<void>;
  /** Stops the Temporal server (SIGTERM; SIGKILL for a crash); `startTemporal` starts it again on the same data. */
  stopTemporal(signal?: NodeJS.Signals): Promise<void>;
  startTemporal(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The production topology on loopback, from the provisioned tools: PostgreSQL; the Temporal
 * server on it (schemas set up or upgraded, namespace registered, search attributes registered
 * through `npm run temporal:setup`); the codec server (`npm run codec-server`) and the Web UI
 * server decoding through it; worker and ingress processes (`npm run worker`, `npm run ingress`)
 * sharing the app's database, their payloads encrypted; HAProxy in front of the ingress processes. Started in dependency order, stopped in reverse.
 * Temporal's frontend takes only mutual-TLS clients: the workers and ingress processes, the UI
 * server and the operator each have a certificate of the cluster's own CA (`temporal-tls.ts`), and
 * the UI's write actions are off unless `uiWriteActions`.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const tools = requireClusterTools();
  const { dataDir, ports } = options;
  const log = options.log ?? (() => undefined);
  const privateDir = options.privateDir ?? dataDir;
  keepPrivate(privateDir);
  fs.mkdirSync(dataDir, { recursive: true });
  const started: { name: string; stop: () => Promise<void> }[] = [];
  const stopAll = async () => {
    for (const part of started.reverse()) await part.stop().catch(() => undefined);
    started.length = 0;
  };

  try {
    // Mutual TLS on Temporal's frontend: the CA and certificates made once and kept beside the data, like the payload key.
    const tlsDir = path.join(dataDir, 'secrets', 'temporal-tls');
    const tls = keptTemporalTls(tlsDir);
    const password = clusterPassword(path.join(dataDir, 'postgres'));
    const postgres: PostgresServer = await startPostgresServer({
      dataDir: path.join(dataDir, 'postgres', 'data'),
      port: ports.postgres,
      password,
      privateDir,
      onLine: (line) => log('postgres', line),
    });
    started.push({ name: 'postgres', stop: postgres.stop });
    await ensureDatabase(postgres.url('postgres'), APP_DATABASE);
    await setupTemporalSchemas({ tools, postgres: { port: ports.postgres, user: 'postgres', password } });

    const temporalOptions = {
      tools,
      dir: path.join(dataDir, 'temporal'),
      port: ports.temporal,
      postgres: { port: ports.postgres, user: 'postgres', password },
      tls,
      onLine: (line: string) => log('temporal', line),
    };
    let temporal: TemporalServer | undefined = await startTemporalServer(temporalOptions);
    started.push({ name: 'temporal', stop: () => temporal?.stop() ?? Promise.resolve() });
    const temporalConnection = temporal.connection;
    await registerNamespace(temporalConnection, NAMESPACE, RETENTION_DAYS);
    // The operator's own path to a cluster's search attributes, with the app's certificate as compose's `setup` has.
    await promisify(execFile)('npm', ['run', '--silent', 'temporal:setup'], {
      cwd: ROOT,
      env: { ...process.env, TEMPORAL_ADDRESS: temporal.address, TEMPORAL_NAMESPACE: NAMESPACE, ...clientTlsEnv(tls, 'app') },
    });
    const cliConfigFile = path.join(dataDir, 'temporal-cli.toml');
    writePrivateFile(cliConfigFile, operatorProfile(tls, temporal.address, NAMESPACE));

    // Payloads are encrypted, as in production: keys made once and kept beside the data, unless given.
    const secrets = {
      payloadKeys: path.join(dataDir, 'secrets', 'payload-keys'),
      codecToken: path.join(dataDir, 'secrets', 'codec-token'),
      temporalTls: tlsDir,
    };
    const payloadKeys = options.appEnv.PAYLOAD_ENCRYPTION_KEYS || keptSecret(secrets.payloadKeys, () => newKeyEntry('cluster-1'));
    const codecToken = keptSecret(secrets.codecToken, () => randomBytes(32).toString('hex'));
    const uiUrl = `http://127.0.0.1:${ports.ui}`;
    const codec = startProcess(process.execPath, [...APP_NODE_ARGS, 'codec'], {
      cwd: ROOT,
      env: {
        ...process.env,
        HOST: '127.0.0.1',
        CODEC_PORT: String(ports.codec),
        CODEC_AUTH_TOKEN: codecToken,
        CODEC_CORS_ORIGINS: uiUrl,
        PAYLOAD_ENCRYPTION_KEYS: payloadKeys,
        ...(options.appEnv.PAYLOAD_ENCRYPTION ? { PAYLOAD_ENCRYPTION: options.appEnv.PAYLOAD_ENCRYPTION } : {}),
      },
      onLine: (line) => log('codec', line),
    });
    started.push({ name: 'codec', stop: () => codec.stop() });
    await waitForPort(ports.codec, codec.child, 120_000);
    const codecUrl = `http://127.0.0.1:${ports.codec}`;

    const ui = await startUiServer({
      tools,
      dir: path.join(dataDir, 'ui'),
      port: ports.ui,
      temporalAddress: temporal.address,
      tls,
      writeActions: options.uiWriteActions ?? false,
      codecEndpoint: codecUrl,
      onLine: (line) => log('ui', line),
    });
    started.push({ name: 'ui', stop: ui.stop });

    const appEnv: NodeJS.ProcessEnv = {
      ...options.appEnv,
      PAYLOAD_ENCRYPTION_KEYS: payloadKeys,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: NAMESPACE,
      // The workers' and ingress processes' certificate, read by the SDK's envconfig (src/temporal/connection.ts).
      ...clientTlsEnv(tls, 'app'),
      DATABASE_URL: postgres.url(APP_DATABASE),
      DATA_DIR: path.join(dataDir, 'app'),
      HOST: '127.0.0.1',
      // HAProxy, on loopback, replaces X-Forwarded-For with the client's address. Not a hop count:
      // a direct connection is from loopback either way, and this trusts no one else's header.
      TRUST_PROXY: 'loopback',
    };
    const apps: AppProcess[] = [];
    const launch = ({ role, name, port, metricsPort }: Omit<AppProcess, 'process'>): AppProcess => {
      const proc = startProcess(process.execPath, [...APP_NODE_ARGS, role], {
        cwd: ROOT,
        env: { ...appEnv, ...(port ? { PORT: String(port) } : {}), ...(metricsPort ? { METRICS_PORT: String(metricsPort) } : {}) },
        onLine: (line) => log(name, line),
      });
      return { name, role, port, metricsPort, process: proc };
    };
    // Workers print their banner once polling; ingress processes are ready once listening.
    const ready = (app: AppProcess) =>
      app.role === 'worker' ? waitForOutput(app.process, /checkout-fulfillment \(worker\)/, 120_000) : waitForPort(app.port!, app.process.child, 120_000);
    for (let i = 0; i < (options.workers ?? 2); i++) apps.push(launch({ role: 'worker', name: `worker-${i + 1}`, metricsPort: await freePort() }));
    ports.ingress.forEach((port, i) => apps.push(launch({ role: 'ingress', name: `ingress-${i + 1}`, port })));
    started.push({ name: 'apps', stop: async () => void (await Promise.all(apps.map((app) => app.process.stop()))) });
    await Promise.all(apps.map(ready));

    const proxy = await startHaproxy({
      dir: path.join(dataDir, 'haproxy'),
      port: ports.proxy,
      backends: ports.ingress,
      onLine: (line) => log('haproxy', line),
    });
    started.push({ name: 'haproxy', stop: proxy.stop });

    return {
      proxyUrl: proxy.url,
      uiUrl: ui.url,
      codecUrl,
      secrets,
      tlsMade: tls.made,
      temporalAddress: temporal.address,
      temporalConnection,
      cliConfigFile,
      databaseUrl: postgres.url(APP_DATABASE),
      apps,
      async restartApp(name) {
        const index = apps.findIndex((app) => app.name === name);
        const previous = apps[index];
        if (!previous) throw new Error(`no process named ${name}`);
        await previous.process.stop();
        apps[index] = launch(previous);
        await ready(apps[index]);
      },
      async stopTemporal(signal = 'SIGTERM') {
        await temporal?.stop(signal);
        temporal = undefined;
      },
      async startTemporal() {
        temporal ??= await startTemporalServer(temporalOptions);
        await waitForNamespace(temporal.connection, NAMESPACE);
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * The cluster's PostgreSQL password: made once, kept beside its data (readable by its owner only),
 * so a restart finds it. Every connection authenticates, even on loopback, as in production.
 */
function clusterPassword(dir: string): string {
  return keptSecret(path.join(dir, 'password'), () => randomBytes(18).toString('hex'));
}

/**
 * Every secret value the cluster made (database password, payload keys, codec token, the TLS keys'
 * first line of base64): for checks that no log line quotes one.
 */
export function clusterSecretValues(cluster: Pick<Cluster, 'secrets' | 'databaseUrl'>): string[] {
  const keys = fs.existsSync(cluster.secrets.payloadKeys) ? fs.readFileSync(cluster.secrets.payloadKeys, 'utf8') : '';
  const tls = temporalTlsFiles(cluster.secrets.temporalTls);
  const tlsKeys = [tls.caKey, tls.frontend.key, tls.internode.key, ...TLS_CLIENTS.map((holder) => tls.clients[holder].key)];
  return [
    decodeURIComponent(new URL(cluster.databaseUrl).password),
    ...keys.split(',').map((entry) => entry.trim().split(':')[1]).filter((secret): secret is string => Boolean(secret)),
    fs.readFileSync(cluster.secrets.codecToken, 'utf8').trim(),
    ...tlsKeys.map((file) => fs.readFileSync(file, 'utf8').split('\n')[1]!.trim()),
  ];
}

/** A connection string fit for printing: the password masked. */
export function withoutPassword(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
}

async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rows } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (rows.length === 0) await client.query(`CREATE DATABASE ${database}`);
  } finally {
    await client.end();
  }
}

async function waitForOutput(proc: ManagedProcess, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(proc.output())) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`exited before it was ready:\n${proc.output().slice(-4000)}`);
    }
    if (Date.now() > deadline) throw new Error(`not ready within ${timeoutMs} ms:\n${proc.output().slice(-4000)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
