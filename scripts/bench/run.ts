/**
 * `npm run bench`: the product measured against baselines taken side by side in the same run, on
 * the same server, under the same offered load, and written to docs/benchmarks.md.
 *
 *   A  a verify-only webhook handler (the floor of any webhook endpoint)
 *   B  the naive synchronous handler Stripe's guide describes, with realistic and with zero latency
 *   C  the engine floor: bare signal-with-start, and a one-activity workflow's throughput
 *
 * Settings (all bounded): BENCH_TOPOLOGIES (embedded,cluster), BENCH_RATES (offered events/s,
 * 5,20,40), BENCH_WINDOW_S (seconds per rate, 10), BENCH_BURST (sessions in the throughput burst,
 * 400), BENCH_WAITING (sessions waiting for a delayed payment, 10000), BENCH_LANDING (landing-page
 * visits, 20), BENCH_DOC (where to write; "-" prints only). Exits non-zero unless every session
 * was fulfilled exactly once and every delivery acknowledged.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { startProcess } from '../../src/cluster/processes';
import { freePort } from '../../src/net/free-port';
import { paymentIntentOf, startStripeEmulator, type EmulatedSession, type StripeEmulator } from '../../src/stripe/emulator';
import { checkoutEventPayload, postSignedWebhook, stripeEventPayload } from '../../src/stripe/signed-events';
import { startSmtpServer, type TestSmtpServer } from '../../test/helpers/smtp-server';
import { completedCount, minimalWorkflowThroughput, roundTrips, signalWithStartFloor, type Throughput } from './floor';
import { inParallel, openLoop, peakPerSecond, percentile, waitUntil, type Latencies } from './load';
import { measureMemoryBreakdown, type MemoryStep } from './memory';
import { renderReport, writeReport } from './report';
import { DEFAULT_BUDGET, settledRssMb, startTarget, STRIPE_REQUEST_LIMIT, WEBHOOK_SECRET, type Target, type Topology } from './targets';

const numberSetting = (name: string, fallback: number, max: number) => Math.min(Number(process.env[name] ?? fallback), max);
export const settings = {
  topologies: (process.env.BENCH_TOPOLOGIES ?? 'embedded,cluster').split(',').map((t) => t.trim()) as Topology[],
  rates: (process.env.BENCH_RATES ?? '5,20,40').split(',').map(Number),
  windowS: numberSetting('BENCH_WINDOW_S', 10, 60),
  burst: numberSetting('BENCH_BURST', 400, 5000),
  waiting: numberSetting('BENCH_WAITING', 10_000, 20_000),
  landing: numberSetting('BENCH_LANDING', 20, 100),
  inFlight: 20,
};
// Realistic latencies for baseline B: a Stripe API read and an SMTP submission.
const STRIPE_LATENCY_MS = 300;
const SMTP_LATENCY_MS = 100;
const SETTLE_BUDGET_MS = 30 * 60_000;
const PROBE_PER_SECOND = 2;

export interface Ack {
  rate: number;
  latencies: Latencies;
}

export interface TopologyResult {
  topology: Topology;
  floor: Ack[];
  /** Bare signal-with-start at a light rate while the product took each offered rate. */
  loadedFloor: Ack[];
  product: Ack[];
  productThroughput: Throughput;
  minimal: Throughput;
  duplicatesAcked: { total: number; ok: number; alreadySettled: number };
  /** Stripe HTTP requests (reads and writes) during the burst and its refunds, as the emulator counted them. */
  stripeRequests: { total: number; peakPerSecond: number; answered429: number; sessionsWithManyItems: number; refunds: number; refundsSettled: boolean };
  landingMs: number[];
  idleRssMb: number;
  serverRssMb?: number;
  waiting: {
    sessions: number;
    /** After the earlier phases, before any session waits: the high-water marks of real traffic included. */
    warmIdleRssMb: number;
    /** With a tenth of the sessions waiting, then with all of them. */
    tenthRssMb: number;
    rssMb: number;
    settleSeconds: number;
    settled: boolean;
  };
  memory?: MemoryStep[];
  exactlyOnce: { sessions: number; fulfilledOnce: number; receiptsOnce: number; problems: string[] };
}

export interface BaselineResult {
  verify: Ack[];
  naiveRealistic: Ack[];
  naiveZero: Ack[];
}

/** A paid session with `items` line items: more than 100 take a retrieve and two pages of line items, three requests. */
function paidSession(id: string, paymentStatus: EmulatedSession['paymentStatus'] = 'paid', items = 1): EmulatedSession {
  return {
    id,
    status: 'complete',
    paymentStatus,
    currency: 'usd',
    customerEmail: 'customer@bench.test',
    customerName: null,
    lineItems: Array.from({ length: items }, (_, i) => ({
      id: items === 1 ? `li_${id}` : `li_${id}_${i}`,
      description: 'Bench item',
      quantity: 1,
      priceId: 'price_bench',
      productId: 'prod_bench',
      unitAmount: 1500,
    })),
  };
}

// In the burst, one session in four has this many line items, and one in ten is refunded once fulfilled.
const MANY_ITEMS = 150;
const MANY_ITEMS_EVERY = 4;
const REFUND_EVERY = 10;

let sessionCounter = 0;
const newSessionId = () => `cs_test_bench${Date.now().toString(36)}${(sessionCounter++).toString().padStart(6, '0')}`;

/** Posts a signed event; true on 2xx. */
async function deliver(baseUrl: string, type: string, sessionId: string, eventId?: string): Promise<{ ok: boolean; delivery?: unknown }> {
  const { status, body } = await postSignedWebhook(baseUrl, checkoutEventPayload(type, sessionId, eventId), { secret: WEBHOOK_SECRET, timeoutMs: 30_000 });
  return { ok: status >= 200 && status < 300, delivery: body.delivery };
}

async function measureBaselines(emulator: StripeEmulator, smtp: TestSmtpServer): Promise<BaselineResult> {
  const run = async (mode: 'verify' | 'naive'): Promise<Ack[]> => {
    const port = await freePort();
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-baseline-'));
    const server = startProcess(process.execPath, ['--import', 'tsx', path.join(__dirname, 'baseline-server.ts')], {
      env: { ...process.env, BASELINE: mode, PORT: String(port), STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, STRIPE_API_BASE: emulator.url, SMTP_URL: smtp.url, DATA_DIR: dataDir },
    });
    try {
      await waitUntil(async () => server.output().includes('listening'), 60_000);
      const url = `http://127.0.0.1:${port}`;
      const acks: Ack[] = [];
      for (const rate of settings.rates) {
        const latencies = await openLoop(rate, rate * settings.windowS, async () => {
          const id = newSessionId();
          emulator.put(paidSession(id));
          return (await deliver(url, 'checkout.session.completed', id)).ok;
        });
        acks.push({ rate, latencies });
      }
      return acks;
    } finally {
      await server.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  };
  const verify = await run('verify');
  emulator.trouble({ latencyMs: STRIPE_LATENCY_MS });
  smtp.setDelay(SMTP_LATENCY_MS);
  const naiveRealistic = await run('naive');
  emulator.trouble({});
  smtp.setDelay(0);
  const naiveZero = await run('naive');
  return { verify, naiveRealistic, naiveZero };
}

async function measureTopology(topology: Topology, emulator: StripeEmulator, smtp: TestSmtpServer): Promise<TopologyResult> {
  const progress = (message: string) => console.log(`[${topology}] ${message}`);
  progress('starting the product');
  const target = await startTarget(topology, emulator, smtp);
  const connection = await Connection.connect(target.temporalConnection);
  const client = new Client({ connection });
  const paid: string[] = [];
  let finished: Map<string, number[]> | undefined;
  try {
    const idleRssMb = await settledRssMb(target.workerPids());
    const serverRssMb = target.serverPid ? await settledRssMb([target.serverPid]) : undefined;
    progress(`idle: ${idleRssMb.toFixed(0)} MB`);
    const memory = topology === 'embedded' ? await measureMemoryBreakdown(target.temporalAddress) : undefined;

    // C: the engine floor, while the product has nothing in flight.
    const floor: Ack[] = [];
    for (const rate of settings.rates) {
      floor.push({ rate, latencies: await signalWithStartFloor(client, rate, rate * settings.windowS, `${topology}-${rate}`) });
    }
    progress(`floor: ${floor.map((a) => `${a.rate}/s p50 ${percentile(a.latencies.ms, 50).toFixed(1)} ms`).join(', ')}`);

    // The product's acknowledgements at the same offered rates, each a paid session the workers fulfill meanwhile.
    // A light probe of bare signal-with-start alongside shows what the engine itself answers under that load.
    const product: Ack[] = [];
    const loadedFloor: Ack[] = [];
    for (const rate of settings.rates) {
      const [latencies, probe] = await Promise.all([
        openLoop(rate, rate * settings.windowS, async () => {
          const id = newSessionId();
          emulator.put(paidSession(id));
          paid.push(id);
          return (await deliver(target.baseUrl, 'checkout.session.completed', id)).ok;
        }),
        signalWithStartFloor(client, PROBE_PER_SECOND, PROBE_PER_SECOND * settings.windowS, `${topology}-probe-${rate}`),
      ]);
      product.push({ rate, latencies });
      loadedFloor.push({ rate, latencies: probe });
      await waitUntil(async () => (await completedCount(client, 'fulfillCheckout')) >= paid.length, 300_000, 500);
    }
    progress(`acks: ${product.map((a) => `${a.rate}/s p50 ${percentile(a.latencies.ms, 50).toFixed(1)} ms`).join(', ')}`);

    // Throughput: a burst of paid sessions (a quarter with many line items), then the same count of minimal workflows.
    const burst = Array.from({ length: settings.burst }, () => newSessionId());
    burst.forEach((id, i) => emulator.put(paidSession(id, 'paid', i % MANY_ITEMS_EVERY === 0 ? MANY_ITEMS : 1)));
    const eventIds = new Map(burst.map((id) => [id, `evt_${id.slice(3)}`]));
    const requestsBefore = emulator.requestTimes.length;
    const limitedBefore = emulator.rateLimited();
    const burstStarted = Date.now();
    const alreadyDone = paid.length;
    paid.push(...burst);
    let burstFailures = 0;
    await inParallel(burst, settings.inFlight, async (id) => {
      if (!(await deliver(target.baseUrl, 'checkout.session.completed', id, eventIds.get(id))).ok) burstFailures++;
    });
    await waitUntil(async () => (await completedCount(client, 'fulfillCheckout')) >= alreadyDone + burst.length, 600_000);
    const productThroughput: Throughput = {
      perSecond: burst.length / ((Date.now() - burstStarted) / 1000),
      roundTrips: await roundTrips(client, burst.slice(0, 20)),
    };
    progress(`burst: ${productThroughput.perSecond.toFixed(1)} sessions/s, ${burstFailures} not acknowledged`);

    // Refunds of a tenth of the burst: each money-back read is at least two requests (refunds and disputes listed).
    const refunded = burst.filter((_, i) => i % REFUND_EVERY === 0);
    const completedBeforeRefunds = await completedCount(client, 'fulfillCheckout');
    await inParallel(refunded, settings.inFlight, async (id) => {
      const paymentIntentId = paymentIntentOf(emulator.sessions.get(id)!)!;
      const amount = emulator.sessions.get(id)!.lineItems.reduce((sum, item) => sum + item.unitAmount * (item.quantity ?? 1), 0);
      emulator.putRefund({ id: `re_${id.slice(3)}`, paymentIntentId, amount, currency: 'usd', status: 'succeeded' });
      const event = stripeEventPayload('charge.refunded', { id: `ch_${paymentIntentId.slice(3)}`, object: 'charge', payment_intent: paymentIntentId });
      await untilAcknowledged(async () => {
        const { status } = await postSignedWebhook(target.baseUrl, event, { secret: WEBHOOK_SECRET, timeoutMs: 30_000 });
        return { ok: status >= 200 && status < 300 };
      });
    });
    // Each refund runs the session's workflow again, which settles the money and completes.
    const refundsSettled = await waitUntil(async () => (await completedCount(client, 'fulfillCheckout')) >= completedBeforeRefunds + refunded.length, 300_000, 500);
    const requestTimes = emulator.requestTimes.slice(requestsBefore);
    const stripeRequests = {
      total: requestTimes.length,
      peakPerSecond: peakPerSecond(requestTimes),
      answered429: emulator.rateLimited() - limitedBefore,
      sessionsWithManyItems: Math.ceil(burst.length / MANY_ITEMS_EVERY),
      refunds: refunded.length,
      refundsSettled,
    };
    progress(
      `Stripe requests: ${stripeRequests.total}, peak ${stripeRequests.peakPerSecond}/s, ${stripeRequests.answered429} answered 429; ${refunded.length} refunds ${refundsSettled ? 'settled' : 'NOT settled'}`,
    );

    // Stripe's at-least-once delivery: every burst event again, after the fact.
    const duplicatesAcked = { total: burst.length, ok: 0, alreadySettled: 0 };
    await inParallel(burst, settings.inFlight, async (id) => {
      const { ok, delivery } = await deliver(target.baseUrl, 'checkout.session.completed', id, eventIds.get(id));
      if (ok) duplicatesAcked.ok++;
      if (delivery === 'already_settled') duplicatesAcked.alreadySettled++;
    });

    const minimal = await minimalWorkflowThroughput(target.temporalConnection, client, settings.burst, settings.inFlight);
    progress(`minimal workflow: ${minimal.perSecond.toFixed(1)}/s`);

    // The customer's view: from the webhook's 2xx to the landing page showing the outcome.
    const landingMs: number[] = [];
    await openLoop(2, settings.landing, async () => {
      const id = newSessionId();
      emulator.put(paidSession(id));
      paid.push(id);
      if (!(await deliver(target.baseUrl, 'checkout.session.completed', id)).ok) return false;
      const acked = performance.now();
      for (let attempt = 0; attempt < 10; attempt++) {
        const page = await fetch(`${target.baseUrl}/after-checkout?session_id=${id}`);
        const html = await page.text();
        if (page.status === 429) {
          await new Promise((resolve) => setTimeout(resolve, Number(page.headers.get('retry-after') ?? 1) * 1000));
          continue;
        }
        if (html.includes('Your order is complete')) {
          landingMs.push(performance.now() - acked);
          return true;
        }
      }
      return false;
    });
    progress(`landing: p95 ${percentile(landingMs, 95).toFixed(0)} ms`);

    const waiting = await measureWaiting(target, client, emulator, progress);
    paid.push(...waiting.ids);

    finished = await target.finish();
    const exactlyOnce = checkExactlyOnce(paid, finished, smtp, (id) => emulator.sessions.get(id)?.lineItems.length ?? 1);
    return {
      topology,
      floor,
      loadedFloor,
      product,
      productThroughput,
      minimal,
      duplicatesAcked,
      stripeRequests,
      landingMs,
      idleRssMb,
      serverRssMb,
      waiting: waiting.result,
      memory,
      exactlyOnce,
    };
  } finally {
    await connection.close();
    if (!finished) await target.finish().catch(() => undefined);
  }
}

/**
 * Sessions that wait days for a delayed payment: the workers' memory with a tenth of them waiting,
 * then all of them (the same figure twice when memory does not depend on how many wait), then
 * their settlement as a burst.
 */
async function measureWaiting(target: Target, client: Client, emulator: StripeEmulator, progress: (m: string) => void) {
  const ids = Array.from({ length: settings.waiting }, () => newSessionId());
  for (const id of ids) emulator.put(paidSession(id, 'unpaid'));
  const completedBefore = await completedCount(client, 'fulfillCheckout');
  const warmIdleRssMb = await settledRssMb(target.workerPids());
  const waitingQuery = `WorkflowType = 'fulfillCheckout' AND ExecutionStatus = 'Running' AND FulfillmentStatus = 'awaiting_payment'`;
  const startWaiting = async (batch: string[], total: number) => {
    await inParallel(batch, settings.inFlight, async (id) => {
      await untilAcknowledged(() => deliver(target.baseUrl, 'checkout.session.completed', id));
    });
    await waitUntil(async () => (await client.workflow.count(waitingQuery)).count >= total, 600_000, 1000);
    return settledRssMb(target.workerPids());
  };
  const tenth = Math.ceil(ids.length / 10);
  progress(`warm idle: ${warmIdleRssMb.toFixed(0)} MB; starting ${ids.length} sessions that wait for a delayed payment`);
  const tenthRssMb = await startWaiting(ids.slice(0, tenth), tenth);
  const rssMb = await startWaiting(ids.slice(tenth), ids.length);
  progress(`${tenth} waiting: ${tenthRssMb.toFixed(0)} MB; ${ids.length} waiting: ${rssMb.toFixed(0)} MB; settling them`);

  for (const id of ids) emulator.put(paidSession(id));
  const started = Date.now();
  await inParallel(ids, settings.inFlight, async (id) => {
    await untilAcknowledged(() => deliver(target.baseUrl, 'checkout.session.async_payment_succeeded', id));
  });
  const settled = await waitUntil(async () => (await completedCount(client, 'fulfillCheckout')) >= completedBefore + ids.length, SETTLE_BUDGET_MS, 1000);
  const settleSeconds = (Date.now() - started) / 1000;
  progress(`settled in ${settleSeconds.toFixed(0)} s`);
  return { ids, result: { sessions: ids.length, warmIdleRssMb, tenthRssMb, rssMb, settleSeconds, settled } };
}

/** As Stripe does: a delivery that is not acknowledged is sent again (bounded). */
async function untilAcknowledged(send: () => Promise<{ ok: boolean }>): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    if ((await send().catch(() => ({ ok: false }))).ok) return;
    await new Promise((resolve) => setTimeout(resolve, 500 * (attempt + 1)));
  }
  throw new Error('a delivery was not acknowledged after 20 attempts');
}

/** Every line item of every session (`itemsOf`: how many it has) delivered exactly once, and one receipt each. */
function checkExactlyOnce(sessionIds: string[], deliveries: Map<string, number[]>, smtp: TestSmtpServer, itemsOf: (id: string) => number): TopologyResult['exactlyOnce'] {
  const receipts = new Map<string, number>();
  for (const message of smtp.messages) {
    const id = /^<receipt\.(cs_[^@]+)@/.exec(message.parsed.messageId ?? '')?.[1];
    if (id) receipts.set(id, (receipts.get(id) ?? 0) + 1);
  }
  const problems: string[] = [];
  let fulfilledOnce = 0;
  let receiptsOnce = 0;
  for (const id of sessionIds) {
    const counts = deliveries.get(id) ?? [];
    if (counts.length === itemsOf(id) && counts.every((count) => count === 1)) fulfilledOnce++;
    else if (problems.length < 10) problems.push(`${id}: line items delivered ${JSON.stringify(counts)}`);
    if (receipts.get(id) === 1) receiptsOnce++;
    else if (problems.length < 10) problems.push(`${id}: ${receipts.get(id) ?? 0} receipts`);
  }
  return { sessions: sessionIds.length, fulfilledOnce, receiptsOnce, problems };
}

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const emulator = await startStripeEmulator(0, { requestLimitPerSecond: STRIPE_REQUEST_LIMIT });
  const smtp = await startSmtpServer();
  const startedAt = new Date();
  try {
    console.log('baselines A and B');
    const baselines = await measureBaselines(emulator, smtp);
    const results: TopologyResult[] = [];
    for (const topology of settings.topologies) {
      smtp.messages.length = 0; // each topology's receipts are counted on their own
      results.push(await measureTopology(topology, emulator, smtp));
    }
    const report = renderReport({ settings, baselines, results, startedAt, finishedAt: new Date(), stripeLatencyMs: STRIPE_LATENCY_MS, smtpLatencyMs: SMTP_LATENCY_MS, stripeBudget: DEFAULT_BUDGET, stripeLimit: STRIPE_REQUEST_LIMIT });
    console.log(report);
    if (process.env.BENCH_DOC !== '-') writeReport(process.env.BENCH_DOC ?? path.join(__dirname, '..', '..', 'docs', 'benchmarks.md'), report);
    const broken = results.filter(
      (r) =>
        r.exactlyOnce.fulfilledOnce !== r.exactlyOnce.sessions ||
        r.exactlyOnce.receiptsOnce !== r.exactlyOnce.sessions ||
        r.product.some((a) => a.latencies.failed > 0) ||
        r.duplicatesAcked.ok !== r.duplicatesAcked.total ||
        !r.waiting.settled ||
        !r.stripeRequests.refundsSettled,
    );
    for (const r of broken) console.error(`[${r.topology}] NOT exactly once or not all acknowledged: ${r.exactlyOnce.problems.join('; ')}`);
    if (broken.length > 0) process.exitCode = 1;
  } finally {
    await Promise.all([emulator.close(), smtp.stop()]);
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
