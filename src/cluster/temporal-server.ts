import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Connection, type ConnectionOptions, type TLSConfig } from '@temporalio/client';
import { status as grpcStatus } from '@grpc/grpc-js';
import Long from 'long';
import { writePrivateFile } from '../shared/private-dir';
import type { ClusterTools } from '../temporal/tools';
import { clientTlsConfig, type TemporalTlsFiles } from './temporal-tls';
import { startProcess, waitForPort, type ManagedProcess } from './processes';

/**
 * The Temporal server (frontend, history, matching and worker services in one process) on
 * PostgreSQL: persistence in the `temporal` database, SQL visibility in `temporal_visibility`.
 * Its gRPC frontend listens on `port`; its other services take the next few ports.
 */
export interface TemporalServerOptions {
  tools: ClusterTools;
  /** Where its configuration is written. */
  dir: string;
  /** The frontend's gRPC port; history, matching, worker and membership use port+1 to port+13. */
  port: number;
  postgres: { port: number; user: string; password?: string };
  /**
   * Mutual TLS (`keptTemporalTls`): the frontend and the services among themselves present these
   * certificates and require one of the same CA from every client.
   */
  tls: TemporalTlsFiles;
  onLine?: (line: string) => void;
}

/** Temporal records its services' ports in a `smallint` column (cluster membership): they must stay below 32768. */
export const TEMPORAL_MAX_PORT = 32_767;

export const TEMPORAL_DATABASES = { persistence: 'temporal', visibility: 'temporal_visibility' } as const;

/** Creates Temporal's two databases when missing and sets up or upgrades their schemas (idempotent). */
export async function setupTemporalSchemas(options: Pick<TemporalServerOptions, 'tools' | 'postgres'>): Promise<void> {
  const { tools, postgres } = options;
  const schemas = [
    [TEMPORAL_DATABASES.persistence, path.join(tools.postgresSchemaDir, 'temporal', 'versioned')],
    [TEMPORAL_DATABASES.visibility, path.join(tools.postgresSchemaDir, 'visibility', 'versioned')],
  ] as const;
  for (const [database, versioned] of schemas) {
    const sql = (...args: string[]) =>
      promisify(execFile)(
        tools.temporalSqlTool,
        ['--plugin', 'postgres12', '--ep', '127.0.0.1', '-p', String(postgres.port), '-u', postgres.user, '--db', database, ...args],
        // The password through the environment, never on a command line others can read.
        { timeout: 120_000, env: { ...process.env, SQL_PASSWORD: postgres.password ?? '' } },
      );
    await sql('create-database');
    await sql('setup-schema', '-v', '0.0'); // the version bookkeeping only; a no-op when present
    await sql('update-schema', '-d', versioned); // applies what is missing, up to this server's version
  }
}

export function writeTemporalConfig(options: TemporalServerOptions): string {
  const { dir, port, postgres, tls } = options;
  const configDir = path.join(dir, 'config');
  fs.mkdirSync(configDir, { recursive: true, mode: 0o700 });
  const datastore = (database: string, maxConns: number) => `
      sql:
        pluginName: "postgres12"
        databaseName: "${database}"
        connectAddr: "127.0.0.1:${postgres.port}"
        connectProtocol: "tcp"
        user: "${postgres.user}"
        password: "${postgres.password ?? ''}"
        maxConns: ${maxConns}
        maxIdleConns: ${maxConns}
        maxConnLifetime: "1h"`;
  const service = (grpcPort: number, membershipPort: number, extra = '') => `
    rpc:
      grpcPort: ${grpcPort}
      membershipPort: ${membershipPort}
      bindOnLocalHost: true${extra}`;
  // Adapted from the server's own config/development-postgres12.yaml: ports, credentials, no archival or metrics.
  const config = `# Written by npm run cluster; regenerated at every start.
log:
  stdout: true
  level: warn

persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: 4
  datastores:
    postgres-default:${datastore(TEMPORAL_DATABASES.persistence, 20)}
    postgres-visibility:${datastore(TEMPORAL_DATABASES.visibility, 4)}

global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "127.0.0.1"
  # Mutual TLS: no client reaches the frontend, and no service another, without a certificate of
  # the cluster's CA. The server's system worker presents the internode certificate to the frontend.
  tls:
    internode:
      server:
        certFile: "${tls.internode.cert}"
        keyFile: "${tls.internode.key}"
        requireClientAuth: true
        clientCaFiles:
          - "${tls.ca}"
      client:
        serverName: "${tls.serverName}"
        rootCaFiles:
          - "${tls.ca}"
    frontend:
      server:
        certFile: "${tls.frontend.cert}"
        keyFile: "${tls.frontend.key}"
        requireClientAuth: true
        clientCaFiles:
          - "${tls.ca}"
      client:
        serverName: "${tls.serverName}"
        rootCaFiles:
          - "${tls.ca}"

services:
  frontend:${service(port, port + 10, `\n      httpPort: ${port + 4}`)}
  history:${service(port + 1, port + 11)}
  matching:${service(port + 2, port + 12)}
  worker:${service(port + 3, port + 13)}

clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: "active"
  currentClusterName: "active"
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: "frontend"
      rpcAddress: "127.0.0.1:${port}"

dcRedirectionPolicy:
  policy: "noop"

dynamicConfigClient:
  filepath: "${path.join(configDir, 'dynamicconfig.yaml')}"
  pollInterval: "10s"
`;
  // 0600: it holds the database password.
  writePrivateFile(path.join(configDir, 'cluster.yaml'), config);
  writePrivateFile(
    path.join(configDir, 'dynamicconfig.yaml'),
    `# Written by npm run cluster.
limit.maxIDLength:
  - value: 255
    constraints: {}
# Search attributes registered by temporal:setup are usable at once, as on the dev server.
system.forceSearchAttributesCacheRefreshOnRead:
  - value: true
    constraints: {}
# Activities go back to the worker that scheduled them, in the workflow task's completion (docs/benchmarks.md).
system.enableActivityEagerExecution:
  - value: true
    constraints: {}
`,
  );
  return configDir;
}

export interface TemporalServer {
  address: string;
  /** How this process reaches it: the address, and TLS with the operator's certificate. */
  connection: { address: string; tls: TLSConfig };
  process: ManagedProcess;
  /** SIGTERM: a clean shutdown. SIGKILL: a crash. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export async function startTemporalServer(options: TemporalServerOptions): Promise<TemporalServer> {
  writeTemporalConfig(options);
  const proc = startProcess(
    options.tools.temporalServer,
    ['--root', options.dir, '--config', 'config', '--env', 'cluster', '--allow-no-auth', 'start'],
    { onLine: options.onLine },
  );
  try {
    await waitForPort(options.port, proc.child, 60_000);
  } catch (err) {
    await proc.stop();
    throw new Error(`Temporal server did not start: ${(err as Error).message}\n${proc.output().slice(-4000)}`);
  }
  const address = `127.0.0.1:${options.port}`;
  return {
    address,
    connection: { address, tls: clientTlsConfig(options.tls, 'operator') },
    process: proc,
    stop: (signal = 'SIGTERM') => proc.stop(signal),
  };
}

/**
 * Registers the namespace (idempotent), retrying while the server's services are still joining.
 * Retention: how long Temporal keeps a closed execution's history (the app's database keeps
 * the outcome for good).
 */
export async function registerNamespace(target: ConnectionOptions, namespace: string, retentionDays: number): Promise<'registered' | 'exists'> {
  return whileStarting(target, async (connection) => {
    try {
      await connection.workflowService.registerNamespace({
        namespace,
        workflowExecutionRetentionPeriod: { seconds: Long.fromNumber(retentionDays * 86_400) },
        description: 'checkout fulfillment',
      });
      return 'registered';
    } catch (err) {
      if ((err as { code?: number }).code === grpcStatus.ALREADY_EXISTS) return 'exists';
      throw err;
    }
  });
}

/** Waits until the namespace answers (after a restart, its cache and the services take a moment). */
export async function waitForNamespace(target: ConnectionOptions, namespace: string): Promise<void> {
  await whileStarting(target, (connection) => connection.workflowService.describeNamespace({ namespace }));
}

/** Runs `call` against a server that may still be starting: connection refusals and unavailability are retried for a minute. */
async function whileStarting<T>(target: ConnectionOptions, call: (connection: Connection) => Promise<T>): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    let connection: Connection | undefined;
    try {
      connection = await Connection.connect({ ...target, connectTimeout: '5 seconds' });
      return await call(connection);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 500));
    } finally {
      await connection?.close();
    }
  }
}
