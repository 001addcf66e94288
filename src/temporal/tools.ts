import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Where the Temporal servers and stripe-mock live on this machine.
 *
 * `npm run provision` (run automatically before `npm start` and `npm test`) builds or
 * downloads them into a cache outside the work tree and writes a manifest; everything
 * else reads the manifest through `resolveTools()`. Users who bring their own binaries
 * set TEMPORAL_CLI_PATH, TEMPORAL_TEST_SERVER_PATH or STRIPE_MOCK_PATH.
 */

export const TEMPORAL_CLI_VERSION = '1.5.1';
export const TEMPORAL_TEST_SERVER_VERSION = '1.38.0';
export const STRIPE_MOCK_VERSION = '0.197.0';
/** The production topology (`npm run cluster`): Temporal server on PostgreSQL, its SQL tool and the Web UI server. */
export const TEMPORAL_SERVER_VERSION = '1.29.1';
export const TEMPORAL_UI_SERVER_VERSION = '2.42.1';

/** How the Temporal SDK should obtain a server: its own shape, passed through unchanged. */
export type ServerExecutable = { type: 'existing-path'; path: string } | { type: 'cached-download' };

export interface ToolManifest {
  temporalCli: ServerExecutable;
  testServer: ServerExecutable;
  /** Absent when it could not be provisioned (no Go); only tests and the demo need it. */
  stripeMock?: string;
  /** Absent without Go: only `npm run cluster` and its tests need it. */
  cluster?: ClusterTools;
  /** tools/compose-config, Compose's own loader; absent without Go: only the compose policy test needs it. */
  composeConfig?: string;
}

export interface ClusterTools {
  temporalServer: string;
  temporalSqlTool: string;
  /** The PostgreSQL schemas shipped in the server's module: `<dir>/temporal/versioned`, `<dir>/visibility/versioned`. */
  postgresSchemaDir: string;
  uiServer: string;
}

export function toolsCacheDir(): string {
  if (process.env.CHECKOUT_FULFILLMENT_CACHE) return path.resolve(process.env.CHECKOUT_FULFILLMENT_CACHE);
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'checkout-fulfillment');
}

export function manifestPath(): string {
  return path.join(toolsCacheDir(), 'tools.json');
}

/** A binary the user brings through `name` (e.g. TEMPORAL_CLI_PATH); throws when it names a missing file. */
export function executableFromEnv(name: string): ServerExecutable | undefined {
  const value = process.env[name];
  if (!value) return undefined;
  if (!fs.existsSync(value)) throw new Error(`${name}=${value} does not exist`);
  return { type: 'existing-path', path: path.resolve(value) };
}

/** The tools to use now: environment overrides first, then what provisioning recorded. */
export function resolveTools(): ToolManifest {
  let recorded: Partial<ToolManifest> = {};
  if (fs.existsSync(manifestPath())) {
    recorded = JSON.parse(fs.readFileSync(manifestPath(), 'utf8')) as Partial<ToolManifest>;
  }
  const temporalCli = executableFromEnv('TEMPORAL_CLI_PATH') ?? recorded.temporalCli;
  const testServer = executableFromEnv('TEMPORAL_TEST_SERVER_PATH') ?? recorded.testServer;
  const stripeMock = process.env.STRIPE_MOCK_PATH || recorded.stripeMock;
  if (!temporalCli || !testServer) {
    throw new Error(`Temporal servers are not provisioned (no ${manifestPath()}): run \`npm run provision\``);
  }
  return { temporalCli, testServer, stripeMock, cluster: recorded.cluster, composeConfig: recorded.composeConfig };
}

export function requireClusterTools(): ClusterTools {
  const { cluster } = resolveTools();
  if (!cluster || !fs.existsSync(cluster.temporalServer)) {
    throw new Error('The Temporal server is not provisioned: install Go >= 1.25 and run `npm run provision`');
  }
  return cluster;
}

export function requireComposeConfig(): string {
  const { composeConfig } = resolveTools();
  if (!composeConfig || !fs.existsSync(composeConfig)) {
    throw new Error('compose-config is not provisioned: install Go >= 1.25 and run `npm run provision`');
  }
  return composeConfig;
}

export function requireStripeMock(): string {
  const { stripeMock } = resolveTools();
  if (!stripeMock || !fs.existsSync(stripeMock)) {
    throw new Error('stripe-mock is not provisioned: install Go >= 1.25 and run `npm run provision`, or set STRIPE_MOCK_PATH');
  }
  return stripeMock;
}
