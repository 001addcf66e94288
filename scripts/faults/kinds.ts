import { adminConnection, type Harness, type Topology } from './harness';
import type { OrderMix } from './orders';

export interface FaultKind {
  id: string;
  /** The row's name in docs/reliability.md. */
  fault: string;
  /** Where the fault applies: the embedded default has no separate worker, ingress or database server to kill. */
  topologies: Topology[];
  /** The orders it plays (default `checkout`: cards and delayed payments; see `makeOrders`). */
  mix?: OrderMix;
  /** Applies the fault a little after the burst starts, lifts it, and says when it held. */
  inject(harness: Harness): Promise<{ start: number; end: number }>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `during` between `from` ms after now and its own end; the window it reports is the fault's. */
async function window(fromMs: number, apply: () => Promise<void>, lift: () => Promise<void>, holdMs: number) {
  await sleep(fromMs);
  const start = Date.now();
  await apply();
  await sleep(holdMs);
  await lift();
  return { start, end: Date.now() };
}

export const FAULT_KINDS: FaultKind[] = [
  {
    id: 'temporal-kill',
    fault: 'Temporal server SIGKILLed mid-burst, restarted 10 s later',
    topologies: ['cluster'],
    inject: (h) => window(2000, () => h.cluster!.stopTemporal('SIGKILL'), () => h.cluster!.startTemporal(), 10_000),
  },
  {
    id: 'worker-kill',
    fault: 'a worker SIGKILLed at 3 random moments (fulfiller slowed to 300 ms a line item), restarted each time',
    topologies: ['cluster'],
    async inject(h) {
      const cluster = h.cluster!;
      const start = Date.now();
      for (let kill = 0; kill < 3; kill++) {
        await sleep(1500 + Math.random() * 2500);
        const workers = cluster.apps.filter((app) => app.role === 'worker');
        const victim = workers[Math.floor(Math.random() * workers.length)]!;
        await victim.process.stop('SIGKILL');
        await cluster.restartApp(victim.name);
      }
      return { start, end: Date.now() };
    },
  },
  {
    id: 'app-db-down',
    fault: "the app's database refusing every connection for 30 s",
    topologies: ['cluster'],
    async inject(h) {
      const admin = await adminConnection(h.cluster!);
      try {
        return await window(
          2000,
          async () => {
            await admin.query('ALTER DATABASE checkout WITH ALLOW_CONNECTIONS false');
            await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'checkout'");
          },
          async () => void (await admin.query('ALTER DATABASE checkout WITH ALLOW_CONNECTIONS true')),
          30_000,
        );
      } finally {
        await admin.end();
      }
    },
  },
  {
    id: 'smtp-down',
    fault: 'the SMTP server down for 20 s',
    topologies: ['cluster', 'embedded'],
    inject: (h) => window(2000, () => h.smtp.stop(), () => h.smtp.start(), 20_000),
  },
  {
    id: 'smtp-slow',
    fault: "the SMTP server accepting each message only after 40 s (past the email activity's 30 s timeout), for 20 s",
    topologies: ['cluster', 'embedded'],
    inject: (h) =>
      window(
        2000,
        async () => h.smtp.setDelay(40_000),
        async () => h.smtp.setDelay(0),
        20_000,
      ),
  },
  {
    id: 'stripe-trouble',
    fault: 'Stripe answering 429, 500 or 503 to a third of the calls, every call 3 s late and a tenth hanging past the client timeout, for 20 s',
    topologies: ['cluster', 'embedded'],
    inject: (h) =>
      window(
        2000,
        async () => h.emulator.trouble({ latencyMs: 3000, failureRate: 0.33, statuses: [429, 500, 503], hangRate: 0.1, hangMs: 25_000 }),
        async () => h.emulator.trouble({}),
        20_000,
      ),
  },
  {
    id: 'ingress-kill',
    fault: 'an ingress process SIGKILLed mid-burst behind the proxy, restarted 5 s later',
    topologies: ['cluster'],
    async inject(h) {
      const cluster = h.cluster!;
      await sleep(2000);
      const start = Date.now();
      const victim = cluster.apps.find((app) => app.role === 'ingress')!;
      await victim.process.stop('SIGKILL');
      await sleep(5000);
      await cluster.restartApp(victim.name);
      return { start, end: Date.now() };
    },
  },
  {
    id: 'races',
    fault: 'no fault: duplicates, reordering, landing pages and the reconciler racing the webhooks',
    topologies: ['cluster', 'embedded'],
    inject: async () => ({ start: Date.now(), end: Date.now() }),
  },
  {
    id: 'worker-kill-capture',
    fault: 'a worker SIGKILLed 3 times, each the moment Stripe receives a capture, restarted each time (half the orders authorizations to capture)',
    topologies: ['cluster'],
    mix: 'capture',
    async inject(h) {
      const cluster = h.cluster!;
      const start = Date.now();
      let seen = h.emulator.requests.length;
      for (let kill = 0; kill < 3; kill++) {
        await sleep(1000);
        // The next capture Stripe receives (bounded: 15 s without one kills anyway).
        const deadline = Date.now() + 15_000;
        for (;;) {
          const requests = h.emulator.requests;
          const capture = requests.slice(seen).findIndex((request) => /^POST \/v1\/payment_intents\/[^/]+\/capture/.test(request));
          if (capture >= 0) {
            seen += capture + 1;
            break;
          }
          seen = requests.length;
          if (Date.now() > deadline) break;
          await sleep(5);
        }
        const workers = cluster.apps.filter((app) => app.role === 'worker');
        const victim = workers[Math.floor(Math.random() * workers.length)]!;
        await victim.process.stop('SIGKILL');
        await cluster.restartApp(victim.name);
      }
      return { start, end: Date.now() };
    },
  },
  {
    id: 'stripe-capture-failing',
    fault: 'Stripe answering 500 to half the calls, and a tenth of the calls (captures among them) going through only after the client gave up, for 20 s, while captures run',
    topologies: ['cluster', 'embedded'],
    mix: 'capture',
    inject: (h) =>
      window(
        2000,
        async () => h.emulator.trouble({ failureRate: 0.5, statuses: [500], hangRate: 0.1, hangMs: 25_000 }),
        async () => h.emulator.trouble({}),
        20_000,
      ),
  },
  {
    id: 'refunds-racing',
    fault: 'no fault: full refunds arriving before the payment event and during fulfillment, with duplicates and the reconciler racing the webhooks',
    topologies: ['cluster', 'embedded'],
    mix: 'refunds',
    inject: async () => ({ start: Date.now(), end: Date.now() }),
  },
];
