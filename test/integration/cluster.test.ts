/**
 * The production topology, run for real: PostgreSQL, the Temporal server on it (SQL visibility),
 * its UI, two worker and two ingress processes, HAProxy in front, as `npm run cluster` starts it.
 * Every event goes through the proxy, signed, from a sender that redelivers like Stripe. Temporal's
 * frontend takes mutual-TLS clients only; this test's own client shows the operator's certificate.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection, type TLSConfig } from '@temporalio/client';
import { clientTlsConfig, keptTemporalTls } from '../../src/cluster/temporal-tls';
import { resolveTools } from '../../src/temporal/tools';
import { clusterSecretValues, freeClusterPorts, startCluster, type Cluster, type ClusterOptions } from '../../src/cluster/topology';
import { FulfillmentStore, openDatabase, type Database } from '../../src/store';
import { startStripeEmulator, type EmulatedSession, type StripeEmulator } from '../../src/stripe/emulator';
import { checkoutEventPayload, deliverLikeStripe, type StripeLikeDelivery } from '../../src/stripe/signed-events';
import type { Payload } from '@temporalio/common';
import { toJsonPayload } from '../../src/temporal/codec-server';
import { ENCRYPTED_ENCODING } from '../../src/temporal/encryption';
import { RECONCILER_SCHEDULE_ID } from '../../workflows/definitions';
import { eventually } from '../helpers/eventually';
import { startSmtpServer } from '../helpers/smtp-server';
import { emulatedSession, WEBHOOK_SECRET } from '../helpers/stack';

jest.setTimeout(240_000);

let dir: string;
let options: ClusterOptions;
let cluster: Cluster;
let emulator: StripeEmulator;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let db: Database;
let store: FulfillmentStore;
let connection: Connection;
let client: Client;
const logLines: string[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cluster-'));
  [emulator, smtp] = await Promise.all([startStripeEmulator(), startSmtpServer()]);
  options = {
    dataDir: dir,
    ports: await freeClusterPorts(),
    appEnv: {
      ...process.env,
      STRIPE_SECRET_KEY: 'sk_test_cluster',
      STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      STRIPE_API_BASE: emulator.url,
      STRIPE_MAX_READS_PER_SECOND: '200',
      SMTP_URL: smtp.url,
      EMAIL_FROM: 'Test Shop <orders@shop.test>',
      RECONCILE_EVERY: '1 hour', // only triggered runs during the test
    },
    // Every line every process prints, searched for secrets and customer data at the end.
    // CLUSTER_TEST_LOG=file also keeps them, for when something here fails.
    log: (source, line) => {
      logLines.push(`[${source}] ${line}`);
      if (process.env.CLUSTER_TEST_LOG) fs.appendFileSync(process.env.CLUSTER_TEST_LOG, `[${source}] ${line}\n`);
    },
  };
  cluster = await startCluster(options);
  db = await openDatabase({ databaseUrl: cluster.databaseUrl });
  store = new FulfillmentStore(db);
  connection = await Connection.connect(cluster.temporalConnection);
  client = new Client({ connection, namespace: 'default' });
}, 240_000);

afterAll(async () => {
  await connection?.close();
  await db?.close();
  await cluster?.stop();
  await Promise.all([emulator?.close(), smtp?.stop()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

const send = (type: string, sessionId: string) =>
  deliverLikeStripe(cluster.proxyUrl, checkoutEventPayload(type, sessionId), { secret: WEBHOOK_SECRET, maxAttempts: 40, maxBackoffMs: 3000 });

const receiptsFor = (sessionId: string) => smtp.messages.filter((m) => m.parsed.messageId === `<receipt.${sessionId}@shop.test>`);

async function statusOf(sessionId: string): Promise<string | undefined> {
  return (await store.getRecord(sessionId))?.view.status;
}

/**
 * Every session ends fulfilled, each line item once, one receipt each. With `crashedAt` (a worker
 * was killed then), a receipt may have been sent a second time with the same Message-ID: only when
 * the SMTP server had accepted the first copy before the crash, which then lost the record of it.
 */
async function expectFulfilledExactlyOnce(sessions: EmulatedSession[], { timeoutMs = 150_000, crashedAt }: { timeoutMs?: number; crashedAt?: number } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const session of sessions) {
    await eventually(() => statusOf(session.id), (status) => status === 'fulfilled', { timeoutMs: Math.max(deadline - Date.now(), 1000), intervalMs: 250 });
  }
  await eventually(async () => sessions.filter((s) => receiptsFor(s.id).length === 0).length, (missing) => missing === 0);
  const resentAcrossTheCrash = (sessionId: string) => {
    const copies = receiptsFor(sessionId);
    return crashedAt !== undefined && copies.length === 2 && copies[0]!.receivedAt <= crashedAt && copies[1]!.receivedAt > crashedAt;
  };
  const outcomes = await Promise.all(
    sessions.map(async (session) => ({
      status: await statusOf(session.id),
      lineItems: (await store.getFulfillments(session.id)).length,
      receipts: resentAcrossTheCrash(session.id) ? 1 : receiptsFor(session.id).length,
    })),
  );
  expect(outcomes).toEqual(sessions.map((session) => ({ status: 'fulfilled', lineItems: session.lineItems.length, receipts: 1 })));
  const resent = sessions.filter((session) => resentAcrossTheCrash(session.id)).length;
  if (resent > 0) console.log(`${resent} of ${sessions.length} receipts were resent after the crash (same Message-ID)`);
}

/** Runs `jobs` with at most `limit` in flight, in the order given. */
async function inParallel<T>(jobs: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < jobs.length) {
        const index = next++;
        results[index] = await jobs[index]!();
      }
    }),
  );
  return results;
}

function shuffle<T>(items: T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

test('when a paid session completes, then it is fulfilled once through the proxy, with one receipt', async () => {
  const session = emulatedSession();
  emulator.put(session);
  const delivery = await send('checkout.session.completed', session.id);
  expect(delivery).toEqual({ delivered: true, attempts: [200], sentAt: [expect.any(Number)] });
  await expectFulfilledExactlyOnce([session]);
});

test('when payloads cross the cluster, then Temporal stores ciphertext, and its UI decodes through the codec server for a signed-in operator', async () => {
  const session = emulatedSession();
  emulator.put(session);
  expect((await send('checkout.session.completed', session.id)).delivered).toBe(true);
  await expectFulfilledExactlyOnce([session]);
  const started = (await client.workflow.getHandle(session.id).fetchHistory()).events![0]!.workflowExecutionStartedEventAttributes!;
  const input = started.input!.payloads![0]!;
  expect(Buffer.from(input.metadata!.encoding!).toString()).toBe(ENCRYPTED_ENCODING);
  expect(Buffer.from(input.data!).toString('latin1')).not.toContain(session.id);

  const settings = (await (await fetch(`${cluster.uiUrl}/api/v1/settings`)).json()) as { Codec: { Endpoint: string; IncludeCredentials: boolean } };
  expect(settings.Codec).toEqual(expect.objectContaining({ Endpoint: cluster.codecUrl, IncludeCredentials: true }));

  const token = fs.readFileSync(cluster.secrets.codecToken, 'utf8').trim();
  const signedIn = await fetch(`${cluster.codecUrl}/login`, { method: 'POST', body: new URLSearchParams({ token }) });
  const cookie = signedIn.headers.get('set-cookie')!.split(';')[0]!;
  const decode = (headers: Record<string, string>) =>
    fetch(`${cluster.codecUrl}/decode`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Origin: cluster.uiUrl, ...headers },
      body: JSON.stringify({ payloads: [toJsonPayload(input as Payload)] }),
    });
  expect((await decode({})).status).toBe(401);
  const decoded = await decode({ Cookie: cookie });
  expect(decoded.status).toBe(200);
  expect(decoded.headers.get('access-control-allow-origin')).toBe(cluster.uiUrl);
  const [payload] = ((await decoded.json()) as { payloads: { data: string }[] }).payloads;
  expect(JSON.parse(Buffer.from(payload!.data, 'base64').toString())).toEqual(expect.objectContaining({ sessionId: session.id }));
});

test('when a client reaches the frontend without a certificate of the cluster’s CA, then it is refused; with the operator’s, it is served', async () => {
  const attempt = async (tls: TLSConfig | undefined) => {
    const probe = await Connection.connect({ address: cluster.temporalAddress, tls, connectTimeout: '3 seconds' });
    try {
      return await probe.workflowService.describeNamespace({ namespace: 'default' });
    } finally {
      await probe.close();
    }
  };
  const operator = cluster.temporalConnection.tls;
  const otherCa = keptTemporalTls(path.join(dir, 'another-ca'));
  await expect(attempt(undefined)).rejects.toThrow(); // plaintext
  await expect(attempt({ ...operator, clientCertPair: undefined })).rejects.toThrow(); // TLS, no certificate
  await expect(attempt({ ...operator, clientCertPair: clientTlsConfig(otherCa, 'operator').clientCertPair })).rejects.toThrow(); // another CA's
  expect((await attempt(operator)).namespaceInfo?.name).toBe('default');
});

test('when the operator runs the Temporal CLI with the configuration the cluster wrote, then it works; without it, the frontend refuses the CLI', async () => {
  const cli = resolveTools().temporalCli;
  if (cli.type !== 'existing-path') throw new Error('the Temporal CLI is not provisioned');
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-home-')); // no default profile of the machine's
  const run = (args: string[]) =>
    promisify(execFile)(cli.path, args, { env: { PATH: process.env.PATH, HOME: home }, timeout: 30_000 }).then(
      ({ stdout }) => ({ ok: true, stdout }),
      (err: { stderr?: string }) => ({ ok: false, stdout: err.stderr ?? '' }),
    );
  try {
    expect(fs.statSync(cluster.cliConfigFile).mode & 0o777).toBe(0o600);
    const described = await run(['--config-file', cluster.cliConfigFile, 'operator', 'namespace', 'describe', '-n', 'default', '-o', 'json']);
    expect(described).toEqual({ ok: true, stdout: expect.stringMatching(/"name":\s*"default"/) });
    expect((await run(['--config-file', cluster.cliConfigFile, 'workflow', 'count'])).ok).toBe(true);
    const refused = await run(['--address', cluster.temporalAddress, 'operator', 'namespace', 'describe', '-n', 'default']);
    expect(refused.ok).toBe(false);
    expect(refused.stdout).not.toMatch(/unknown (flag|command)/); // refused by the frontend, not by the CLI's own parser
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
});

test('when the Temporal UI is used, then it reads through the frontend with its own certificate, and its write actions are off', async () => {
  const session = emulatedSession({ paymentStatus: 'unpaid' });
  emulator.put(session);
  expect((await send('checkout.session.completed', session.id)).delivered).toBe(true);
  await eventually(() => statusOf(session.id), (status) => status === 'awaiting_payment');

  const settings = (await (await fetch(`${cluster.uiUrl}/api/v1/settings`)).json()) as { DisableWriteActions: boolean };
  expect(settings.DisableWriteActions).toBe(true);
  // Reading works: the UI server reached the frontend over mutual TLS.
  const described = await fetch(`${cluster.uiUrl}/api/v1/namespaces/default/workflows/${session.id}`);
  expect(described.status).toBe(200);
  expect(JSON.stringify(await described.json())).toContain(session.id);
  // Writing does not. (The Authorization header passes the UI's CSRF check, so the refusal is the write guard's.)
  const terminated = await fetch(`${cluster.uiUrl}/api/v1/namespaces/default/workflows/${session.id}/terminate`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer anything' },
    body: JSON.stringify({ reason: 'from the UI' }),
  });
  expect(terminated.status).toBe(405);
  expect((await client.workflow.getHandle(session.id).describe()).status.name).toBe('RUNNING');
});

test('when a delayed payment succeeds later, then it waits awaiting_payment and is fulfilled on the event', async () => {
  const session = emulatedSession({ paymentStatus: 'unpaid' });
  emulator.put(session);
  expect((await send('checkout.session.completed', session.id)).delivered).toBe(true);
  await eventually(() => statusOf(session.id), (status) => status === 'awaiting_payment');
  expect(await statusOf(session.id)).toBe('awaiting_payment');

  emulator.put({ ...session, paymentStatus: 'paid' });
  expect((await send('checkout.session.async_payment_succeeded', session.id)).delivered).toBe(true);
  await expectFulfilledExactlyOnce([session]);
});

test('when 60 sessions arrive as duplicates in shuffled order, then each is fulfilled exactly once', async () => {
  const card = Array.from({ length: 20 }, () => emulatedSession());
  const delayedInOrder = Array.from({ length: 20 }, () => emulatedSession({ paymentStatus: 'unpaid' }));
  const delayedReversed = Array.from({ length: 20 }, () => emulatedSession()); // paid before its completed event arrives
  for (const session of [...card, ...delayedInOrder, ...delayedReversed]) emulator.put(session);

  const first = shuffle([
    ...card.flatMap((s) => [() => send('checkout.session.completed', s.id), () => send('checkout.session.completed', s.id)]),
    ...delayedInOrder.flatMap((s) => [() => send('checkout.session.completed', s.id), () => send('checkout.session.completed', s.id)]),
    ...delayedReversed.flatMap((s) => [
      () => send('checkout.session.async_payment_succeeded', s.id),
      () => send('checkout.session.async_payment_succeeded', s.id),
    ]),
  ]);
  const firstDeliveries = await inParallel(first, 10);
  for (const session of delayedInOrder) emulator.put({ ...session, paymentStatus: 'paid' });
  const second = shuffle([
    ...delayedInOrder.flatMap((s) => [
      () => send('checkout.session.async_payment_succeeded', s.id),
      () => send('checkout.session.async_payment_succeeded', s.id),
    ]),
    ...delayedReversed.map((s) => () => send('checkout.session.completed', s.id)),
  ]);
  const secondDeliveries = await inParallel(second, 10);

  expect([...firstDeliveries, ...secondDeliveries].filter((d) => !d.delivered)).toEqual([]);
  // Nothing was down: every first attempt was answered 2xx.
  expect([...firstDeliveries, ...secondDeliveries].filter((d) => d.attempts.length > 1)).toEqual([]);
  await expectFulfilledExactlyOnce([...card, ...delayedInOrder, ...delayedReversed]);
});

test('when the customer lands while the webhook arrives, then there is one fulfillment and one receipt', async () => {
  const session = emulatedSession();
  emulator.put(session);
  const [page, delivery] = await Promise.all([
    fetch(`${cluster.proxyUrl}/after-checkout?session_id=${session.id}`),
    send('checkout.session.completed', session.id),
  ]);
  expect(page.status).toBe(200);
  expect(delivery.delivered).toBe(true);
  await expectFulfilledExactlyOnce([session]);
});

test('when a session’s webhooks never arrive, then the reconciler on the cluster fulfills it', async () => {
  const lost = emulatedSession();
  emulator.put(lost);
  await client.schedule.getHandle(RECONCILER_SCHEDULE_ID).trigger();
  await expectFulfilledExactlyOnce([lost]);
});

test('when sessions flow through, then both workers and both ingress processes handled some', async () => {
  const sessions = [...emulator.sessions.values()].filter((s) => s.paymentStatus === 'paid').slice(-40);
  const identities = new Set<string>();
  for (const session of sessions) {
    const history = await client.workflow.getHandle(session.id).fetchHistory();
    for (const event of history.events ?? []) {
      const identity = event.activityTaskStartedEventAttributes?.identity;
      if (identity) identities.add(identity.split('@')[0]!);
    }
  }
  const workerPids = cluster.apps.filter((app) => app.role === 'worker').map((app) => String(app.process.child.pid));
  expect(workerPids.every((pid) => identities.has(pid))).toBe(true);
  for (const ingress of cluster.apps.filter((app) => app.role === 'ingress')) {
    expect(ingress.process.output()).toMatch(/Webhook accepted/);
  }
});

test('when SQL visibility is queried by search attribute, then it finds exactly the waiting sessions', async () => {
  const waiting = Array.from({ length: 3 }, () => emulatedSession({ paymentStatus: 'unpaid' }));
  for (const session of waiting) emulator.put(session);
  await Promise.all(waiting.map((session) => send('checkout.session.completed', session.id)));
  for (const session of waiting) await eventually(() => statusOf(session.id), (status) => status === 'awaiting_payment');

  const ids = waiting.map((session) => `"${session.id}"`).join(', ');
  const found = await eventually(
    async () => {
      const list: string[] = [];
      for await (const execution of client.workflow.list({ query: `FulfillmentStatus = "awaiting_payment" AND WorkflowId IN (${ids})` })) {
        list.push(execution.workflowId);
      }
      return list.sort();
    },
    (list) => list.length === waiting.length,
  );
  expect(found).toEqual(waiting.map((session) => session.id).sort());
  const paidCount = await client.workflow.count(`FulfillmentStatus = "fulfilled" AND WorkflowId IN (${ids})`);
  expect(paidCount.count).toBe(0);
});

test('when a worker is SIGKILLed in the middle of a burst, then every session is still fulfilled exactly once', async () => {
  const sessions = Array.from({ length: 30 }, () => emulatedSession());
  for (const session of sessions) emulator.put(session);
  const victim = cluster.apps.find((app) => app.name === 'worker-1')!;

  const burst = inParallel(
    sessions.map((session) => () => send('checkout.session.completed', session.id)),
    6,
  );
  await eventually(async () => (await Promise.all(sessions.map((s) => statusOf(s.id)))).filter((s) => s === 'fulfilled').length, (n) => n >= 5, {
    timeoutMs: 60_000,
  });
  await victim.process.stop('SIGKILL');
  const crashedAt = Date.now(); // the process has exited: nothing it sends can arrive after this
  const deliveries = await burst;

  expect(deliveries.filter((d) => !d.delivered)).toEqual([]);
  await expectFulfilledExactlyOnce(sessions, { crashedAt });
});

test('when the Temporal server is killed mid-burst, then webhooks get 503 while it is down, and redelivery fulfills every session exactly once', async () => {
  const sessions = Array.from({ length: 40 }, () => emulatedSession());
  for (const session of sessions) emulator.put(session);

  // Open loop, as Stripe sends: one new event every 200 ms, whatever the answers.
  const burst: Promise<StripeLikeDelivery[]> = Promise.all(
    sessions.map(async (session, i) => {
      await new Promise((resolve) => setTimeout(resolve, i * 200));
      return send('checkout.session.completed', session.id);
    }),
  );
  await new Promise((resolve) => setTimeout(resolve, 1500));
  await cluster.stopTemporal('SIGKILL');
  await new Promise((resolve) => setTimeout(resolve, 8000)); // down while about 40 more events arrive
  await cluster.startTemporal();
  const deliveries = await burst;

  expect(deliveries.filter((d) => !d.delivered)).toEqual([]);
  // While it was down, the ingress answered 503 (never 2xx for what it could not hand over).
  expect(deliveries.flatMap((d) => d.attempts)).toContain(503);
  await expectFulfilledExactlyOnce(sessions);
});

test('when the whole cluster is stopped and started again, then a waiting workflow continues and is fulfilled', async () => {
  const session = emulatedSession({ paymentStatus: 'unpaid' });
  emulator.put(session);
  expect((await send('checkout.session.completed', session.id)).delivered).toBe(true);
  await eventually(() => statusOf(session.id), (status) => status === 'awaiting_payment');

  await connection.close();
  await db.close();
  const certificates = fs.readFileSync(path.join(cluster.secrets.temporalTls, 'ca.pem'), 'utf8');
  await cluster.stop();
  cluster = await startCluster(options);
  // The CA and certificates made at the first start are kept, as the payload key is.
  expect(cluster.tlsMade).toEqual([]);
  expect(fs.readFileSync(path.join(cluster.secrets.temporalTls, 'ca.pem'), 'utf8')).toBe(certificates);
  db = await openDatabase({ databaseUrl: cluster.databaseUrl });
  store = new FulfillmentStore(db);
  connection = await Connection.connect(cluster.temporalConnection);
  client = new Client({ connection, namespace: 'default' });

  expect(await statusOf(session.id)).toBe('awaiting_payment');
  expect((await client.workflow.getHandle(session.id).describe()).status.name).toBe('RUNNING');
  emulator.put({ ...session, paymentStatus: 'paid' });
  expect((await send('checkout.session.async_payment_succeeded', session.id)).delivered).toBe(true);
  await expectFulfilledExactlyOnce([session]);
});

test('when every process has logged a whole run, then no secret and no customer data appears in any line', () => {
  expect(logLines.length).toBeGreaterThan(100);
  const customers = [...emulator.sessions.values()].flatMap((session) => [session.customerEmail, session.customerName]).filter(Boolean);
  const secrets = ['sk_test_cluster', WEBHOOK_SECRET, ...clusterSecretValues(cluster), ...new Set(customers as string[])];
  expect(clusterSecretValues(cluster).every((secret) => secret.length >= 16)).toBe(true);
  const leaks = logLines.filter((line) => secrets.some((secret) => line.includes(secret)));
  expect(leaks).toEqual([]);
});
