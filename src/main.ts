/**
 * The product's entry point.
 *   npm start          everything: embedded Temporal dev server (unless TEMPORAL_ADDRESS), worker, ingress
 *   npm run worker     the fulfillment worker only (scale out: run several)
 *   npm run ingress    the HTTP ingress only (scale out: several behind a load balancer)
 *   npm run codec-server  the codec server only: decrypts payloads for the Temporal UI and CLI
 */
import { ConfigError, loadCodecServerConfig, loadConfigToStart, StartupError, type Role } from './config';
import { createLogger } from './logger';
import { loadFulfiller, loadOrderSource } from './fulfillment/load-fulfiller';
import { freePort } from './net/free-port';
import { stopOnSignals } from './shutdown';
import { startStack } from './stack';
import { startCodecServer } from './temporal/codec-server';
import { installRuntimeWithMetrics } from './temporal/runtime';

async function main(): Promise<void> {
  const mode = (process.argv[2] ?? 'all') as Role | 'codec';
  if (mode === 'codec') return runCodecServer();
  if (!['all', 'worker', 'ingress'].includes(mode)) throw new Error(`unknown mode ${mode}: use all, worker, ingress or codec`);
  const config = await loadConfigToStart(process.env, mode);
  // The SDK's worker metrics, appended to this process's /metrics; before anything native starts.
  if (mode !== 'ingress') installRuntimeWithMetrics(await freePort());

  const stack = await startStack(config, {
    ingress: mode !== 'worker',
    worker: mode !== 'ingress',
    host: config.host,
    fulfiller: mode === 'ingress' ? undefined : loadFulfiller(),
    orderSource: mode === 'ingress' ? undefined : loadOrderSource(),
    codecServer: mode === 'all',
  });

  const lines = [`checkout-fulfillment (${mode})`];
  if (stack.ingress) {
    lines.push(`  Stripe webhook:  POST ${stack.ingress.url}/webhook   (stripe listen --forward-to localhost:${stack.ingress.port}/webhook)`);
    lines.push(`  Landing page:    ${stack.ingress.url}/after-checkout?session_id={CHECKOUT_SESSION_ID}`);
    lines.push(`  Status API:      ${stack.ingress.url}/api/fulfillments/{CHECKOUT_SESSION_ID}`);
    lines.push(`  Metrics:         ${stack.ingress.url}/metrics`);
  }
  if (stack.metricsServer) lines.push(`  Metrics:         ${stack.metricsServer.url}/metrics`);
  lines.push(`  Temporal:        ${stack.temporal.connectionOptions.address} (namespace ${stack.temporal.namespace}, task queue ${config.temporal.taskQueue})`);
  if (stack.temporal.embedded) lines.push(`  Temporal UI:     ${stack.temporal.embedded.uiUrl}`);
  lines.push(`  Payloads:        ${config.encryption.encrypt ? `encrypted (key ${config.encryption.keys[0]!.id})` : 'not encrypted'}`);
  if (stack.codecServer) {
    const token = stack.codecServer.tokenFile ? `the token in ${stack.codecServer.tokenFile}` : 'CODEC_AUTH_TOKEN';
    lines.push(`  Codec server:    ${stack.codecServer.url}   (operators sign in at /login with ${token})`);
  }
  lines.push(`  Database:        ${stack.services.db.description}`);
  lines.push(`  Email:           ${stack.services.mailer.description}`);
  lines.push('  Ctrl-C stops everything.');
  console.log(lines.join('\n'));

  stopOnSignals('everything', () => stack.stop());
}

/** `npm run codec-server`: the codec server alone, for a cluster's Temporal UI. */
async function runCodecServer(): Promise<void> {
  const config = loadCodecServerConfig(process.env);
  const server = await startCodecServer({ ...config, token: config.token! }, createLogger());
  console.log(
    [
      'checkout-fulfillment (codec server)',
      `  Codec server:    ${server.url}   (POST /decode, /encode; operators sign in at /login)`,
      `  UI origins:      ${config.corsOrigins.join(', ')}`,
      `  Keys:            ${config.keys.map((key) => key.id).join(', ')}${config.encrypt ? ` (encrypts with ${config.keys[0]!.id})` : ''}`,
      '  Ctrl-C stops it.',
    ].join('\n'),
  );
  stopOnSignals('the codec server', () => server.close());
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    console.error(err.message);
    if (err.problems.some((problem) => problem.startsWith('STRIPE_'))) {
      console.error('No Stripe account at hand? `npm run demo` runs the whole product offline against a local Stripe emulator.');
    }
  } else if (err instanceof StartupError) {
    console.error(err.message);
  } else {
    console.error(err);
  }
  process.exit(1);
});
