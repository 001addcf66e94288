/**
 * `npm run cluster`: the production topology on this machine, on loopback, from the provisioned
 * tools. PostgreSQL (Temporal's two databases and the app's), the Temporal server on it, its Web
 * UI, two worker processes, two ingress processes and HAProxy in front of them. State lives in
 * DATA_DIR/cluster, so a second start resumes where the first stopped. Ctrl-C stops everything.
 *
 * It needs the product's own settings (STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, optionally
 * SMTP_URL, STRIPE_API_BASE, ...), passed on to the worker and ingress processes, and takes its
 * ports from CLUSTER_PROXY_PORT, CLUSTER_INGRESS_PORTS, CLUSTER_TEMPORAL_PORT, CLUSTER_UI_PORT,
 * CLUSTER_CODEC_PORT and CLUSTER_POSTGRES_PORT (defaults beside `npm start`'s, so both can run at
 * once). Payloads are encrypted with PAYLOAD_ENCRYPTION_KEYS, or keys made on first start.
 * Temporal's frontend requires a client certificate of the cluster's CA, made on first start too;
 * the operator's is in the CLI configuration file the banner names. The UI only reads unless
 * TEMPORAL_DISABLE_WRITE_ACTIONS=false.
 */
import path from 'node:path';
import { z } from 'zod';
import { ConfigError, loadConfig, loadSetting, portInUse, StartupError } from '../src/config';
import { TEMPORAL_MAX_PORT } from '../src/cluster/temporal-server';
import { startCluster, withoutPassword, type ClusterPorts } from '../src/cluster/topology';
import { stopOnSignals } from '../src/shutdown';
import { newKeyEntry } from '../src/temporal/encryption';

const portList = z
  .string()
  .regex(/^\d+(,\d+)*$/, 'must be comma-separated port numbers')
  .transform((value) => value.split(',').map(Number));
const clusterSchema = z.object({
  CLUSTER_PROXY_PORT: z.coerce.number().int().min(1).max(65535).default(8400),
  CLUSTER_INGRESS_PORTS: portList.default([8401, 8402]),
  CLUSTER_TEMPORAL_PORT: z.coerce
    .number()
    .int()
    .min(1)
    .max(TEMPORAL_MAX_PORT - 13, `must leave room for 14 ports below ${TEMPORAL_MAX_PORT + 1} (Temporal stores them as smallint)`)
    .default(7400),
  CLUSTER_UI_PORT: z.coerce.number().int().min(1).max(65535).default(8480),
  CLUSTER_CODEC_PORT: z.coerce.number().int().min(1).max(65535).default(8481),
  CLUSTER_POSTGRES_PORT: z.coerce.number().int().min(1).max(65535).default(5440),
  CLUSTER_WORKERS: z.coerce.number().int().min(1).max(8).default(2),
  // The Temporal UI's own name for it. Write actions stay off unless an operator says `false`.
  TEMPORAL_DISABLE_WRITE_ACTIONS: z.enum(['true', 'false'], { error: 'must be true (the default: the UI only reads) or false' }).default('true'),
});

async function main(): Promise<void> {
  const env = process.env;
  const parsed = clusterSchema.safeParse(env);
  const problems = parsed.success ? [] : parsed.error.issues.map((issue) => `${String(issue.path[0])}: ${issue.message}`);
  // The worker and ingress processes' own settings, checked before anything starts (Temporal and the database are ours).
  for (const role of ['worker', 'ingress'] as const) {
    try {
      const ours = { TEMPORAL_ADDRESS: '127.0.0.1:1', DATABASE_URL: 'postgres://cluster/checkout', PAYLOAD_ENCRYPTION_KEYS: env.PAYLOAD_ENCRYPTION_KEYS || newKeyEntry() };
      loadConfig({ ...env, ...ours }, role);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const problem of err.problems) if (!problems.includes(problem)) problems.push(problem);
    }
  }
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const c = parsed.data;
  const ports: ClusterPorts = {
    proxy: c.CLUSTER_PROXY_PORT,
    ingress: c.CLUSTER_INGRESS_PORTS,
    temporal: c.CLUSTER_TEMPORAL_PORT,
    ui: c.CLUSTER_UI_PORT,
    codec: c.CLUSTER_CODEC_PORT,
    postgres: c.CLUSTER_POSTGRES_PORT,
  };
  const wanted = [ports.proxy, ...ports.ingress, ...Array.from({ length: 14 }, (_, i) => ports.temporal + i), ports.ui, ports.codec, ports.postgres];
  const taken = [];
  for (const port of wanted) if (await portInUse(port)) taken.push(port);
  if (taken.length > 0) {
    throw new ConfigError([`ports already in use by another process: ${taken.join(', ')}; choose others with the CLUSTER_*_PORT(S) variables`]);
  }

  const privateDir = path.resolve(loadSetting(env, 'DATA_DIR'));
  const dataDir = path.join(privateDir, 'cluster');
  const started = Date.now();
  console.log(`Starting the production topology in ${dataDir} ...`);
  const cluster = await startCluster({
    dataDir,
    privateDir,
    ports,
    workers: c.CLUSTER_WORKERS,
    appEnv: env,
    uiWriteActions: c.TEMPORAL_DISABLE_WRITE_ACTIONS === 'false',
    log: (source, line) => console.log(`[${source}] ${line}`),
  });
  console.log(
    [
      '',
      `checkout-fulfillment cluster: up in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      `  Stripe webhook:  POST ${cluster.proxyUrl}/webhook   (through HAProxy to ${ports.ingress.length} ingress processes)`,
      `  Landing page:    ${cluster.proxyUrl}/after-checkout?session_id={CHECKOUT_SESSION_ID}`,
      `  Status API:      ${cluster.proxyUrl}/api/fulfillments/{CHECKOUT_SESSION_ID}`,
      `  Temporal UI:     ${cluster.uiUrl}   (${
        c.TEMPORAL_DISABLE_WRITE_ACTIONS === 'false'
          ? 'WRITE ACTIONS ON: whoever reaches it can cancel, terminate, signal and reset executions'
          : 'read only; TEMPORAL_DISABLE_WRITE_ACTIONS=false turns write actions on'
      })`,
      `  Codec server:    ${cluster.codecUrl}   (sign in at /login with the token in ${cluster.secrets.codecToken}; payload keys in ${env.PAYLOAD_ENCRYPTION_KEYS ? 'PAYLOAD_ENCRYPTION_KEYS' : cluster.secrets.payloadKeys})`,
      `  Temporal:        ${cluster.temporalAddress} (server on PostgreSQL, namespace default; mutual TLS: clients need a certificate of the cluster's CA)`,
      `  Temporal CLI:    temporal --config-file ${cluster.cliConfigFile} workflow list   (the operator's certificate; or export TEMPORAL_CONFIG_FILE=${cluster.cliConfigFile})`,
      `  Certificates:    ${cluster.secrets.temporalTls}   (${cluster.tlsMade.length > 0 ? `made now: ${cluster.tlsMade.join(', ')}` : 'kept from the last start'})`,
      `  PostgreSQL:      ${withoutPassword(cluster.databaseUrl)}   (password in ${path.join(dataDir, 'postgres', 'password')})`,
      `  Processes:       ${cluster.apps.map((app) => `${app.name} (pid ${app.process.child.pid})`).join(', ')}`,
      `  Metrics:         ${cluster.apps.map((app) => `${app.name} http://127.0.0.1:${app.metricsPort ?? app.port}/metrics`).join(', ')}`,
      '  Ctrl-C stops everything; the next start resumes from the same state.',
      '',
    ].join('\n'),
  );

  stopOnSignals('the cluster', () => cluster.stop());
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError || err instanceof StartupError ? err.message : err);
  process.exit(1);
});
