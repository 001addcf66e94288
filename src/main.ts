/**
 * The product's entry point.
 *   npm start          everything: embedded Temporal dev server (unless TEMPORAL_ADDRESS), worker, ingress
 *   npm run worker     the fulfillment worker only (scale out: run several)
 *   npm run ingress    the HTTP ingress only (scale out: several behind a load balancer)
 */
import { ConfigError, loadConfigToStart, StartupError, type Role } from './config';
import { loadFulfiller } from './fulfillment/load-fulfiller';
import { freePort } from './net/free-port';
import { stopOnSignals } from './shutdown';
import { startStack } from './stack';
import { installRuntimeWithMetrics } from './temporal/runtime';

async function main(): Promise<void> {
  const mode = (process.argv[2] ?? 'all') as Role;
  if (!['all', 'worker', 'ingress'].includes(mode)) throw new Error(`unknown mode ${mode}: use all, worker or ingress`);
  const config = await loadConfigToStart(process.env, mode);
  // The SDK's worker metrics, appended to this process's /metrics; before anything native starts.
  if (mode !== 'ingress') installRuntimeWithMetrics(await freePort());

  const stack = await startStack(config, {
    ingress: mode !== 'worker',
    worker: mode !== 'ingress',
    host: config.host,
    fulfiller: mode === 'ingress' ? undefined : loadFulfiller(),
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
  lines.push(`  Database:        ${stack.services.db.description}`);
  lines.push(`  Email:           ${stack.services.mailer.description}`);
  lines.push('  Ctrl-C stops everything.');
  console.log(lines.join('\n'));

  stopOnSignals('everything', () => stack.stop());
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
