/**
 * `npm run bench`: how fast the ingress acknowledges Stripe, and how fast the stack fulfills, on
 * this machine. Everything on loopback: the Stripe emulator, the embedded Temporal dev server,
 * the worker, the ingress, PGlite and the outbox, in a temporary data directory.
 *
 * Bounded: BENCH_SESSIONS (default 100, at most 1000) paid sessions, BENCH_CONCURRENCY (default 10)
 * deliveries in flight, each delivered twice (a duplicate for every event), and at most 3 minutes
 * for the fulfillments. Timings on shared machines are noisy, so acknowledgement latency is
 * reported as a ratio to the same server's /healthz latency measured in the same run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { loadConfig } from '../src/config';
import { freePort } from '../src/net/free-port';
import { startStack } from '../src/stack';
import { startStripeEmulator } from '../src/stripe/emulator';
import { checkoutEventPayload, postSignedWebhook } from '../src/stripe/signed-events';

const SESSIONS = Math.min(Number(process.env.BENCH_SESSIONS ?? 100), 1000);
const CONCURRENCY = Math.min(Number(process.env.BENCH_CONCURRENCY ?? 10), 50);
const FULFILLMENT_BUDGET_MS = 3 * 60_000;
const SECRET = 'whsec_bench';

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function inParallel<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: limit }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
    }),
  );
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-'));
  const emulator = await startStripeEmulator();
  const config = loadConfig({
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATA_DIR: dataDir,
    PORT: '0',
    TEMPORAL_DEV_SERVER_PORT: String(await freePort()),
    TEMPORAL_UI_PORT: String(await freePort()),
    STRIPE_SECRET_KEY: 'sk_test_bench',
    STRIPE_WEBHOOK_SECRET: SECRET,
    STRIPE_API_BASE: emulator.url,
    STRIPE_MAX_READS_PER_SECOND: '1000',
    LOG_LEVEL: 'warn',
    RECONCILE_EVERY: 'off', // measured alone: the webhook path
  });
  const quiet = { debug: () => undefined, info: () => undefined, warn: console.warn, error: console.error };
  const stack = await startStack(config, { ingress: true, worker: true, logger: quiet });
  const url = stack.ingress!.url;
  try {
    const ids = Array.from({ length: SESSIONS }, (_, i) => `cs_test_bench${String(i).padStart(5, '0')}${Date.now()}`);
    for (const id of ids) {
      emulator.put({
        id,
        status: 'complete',
        paymentStatus: 'paid',
        currency: 'usd',
        customerEmail: 'bench@example.com',
        customerName: null,
        lineItems: [{ id: `li_${id}`, description: 'Item', quantity: 1, priceId: 'price_1', productId: 'prod_1', unitAmount: 1000 }],
      });
    }

    const baseline: number[] = [];
    for (let i = 0; i < SESSIONS; i++) baseline.push(await timed(() => fetch(`${url}/healthz`).then((r) => r.text())));

    const acks: number[] = [];
    const statuses = new Map<number, number>();
    const started = Date.now();
    // Each event twice, as Stripe's at-least-once delivery may.
    const deliveries = ids.flatMap((id) => {
      const payload = checkoutEventPayload('checkout.session.completed', id);
      return [payload, payload];
    });
    await inParallel(deliveries, CONCURRENCY, async (payload) => {
      let status = 0;
      acks.push(await timed(async () => (status = (await postSignedWebhook(url, payload, { secret: SECRET })).status)));
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    });

    let fulfilled = 0;
    while (Date.now() - started < FULFILLMENT_BUDGET_MS) {
      const rows = await stack.services.db.query<{ n: number }>("SELECT count(*)::int AS n FROM checkout_sessions WHERE status = 'fulfilled'");
      fulfilled = rows[0]?.n ?? 0;
      if (fulfilled === SESSIONS) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const elapsedS = (Date.now() - started) / 1000;
    const emails = (await stack.services.db.query<{ n: number }>('SELECT count(*)::int AS n FROM emails'))[0]?.n ?? 0;
    const lineItems = (await stack.services.db.query<{ n: number }>('SELECT count(*)::int AS n FROM fulfillments'))[0]?.n ?? 0;

    const base50 = percentile(baseline, 50);
    console.log(`sessions ${SESSIONS}, deliveries ${deliveries.length} (each event twice), concurrency ${CONCURRENCY}`);
    console.log(`responses: ${[...statuses].map(([status, n]) => `${n}× HTTP ${status}`).join(', ')}`);
    console.log(`/healthz baseline: p50 ${base50.toFixed(1)} ms`);
    console.log(
      `webhook ack: p50 ${percentile(acks, 50).toFixed(1)} ms (${(percentile(acks, 50) / base50).toFixed(1)}× baseline), ` +
        `p95 ${percentile(acks, 95).toFixed(1)} ms (${(percentile(acks, 95) / base50).toFixed(1)}× baseline)`,
    );
    console.log(`fulfilled ${fulfilled}/${SESSIONS} in ${elapsedS.toFixed(1)} s (${(fulfilled / elapsedS).toFixed(1)} sessions/s)`);
    console.log(`exactly once: ${lineItems} line items fulfilled, ${emails} receipts for ${SESSIONS} sessions`);
    if (fulfilled !== SESSIONS || emails !== SESSIONS || lineItems !== SESSIONS || statuses.size !== 1 || !statuses.has(200)) {
      process.exitCode = 1;
    }
  } finally {
    await stack.stop();
    await emulator.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).message}`);
  process.exit(1);
});
