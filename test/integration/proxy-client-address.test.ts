/**
 * A client cannot pick its own rate-limit bucket through the proxy: HAProxy replaces whatever
 * X-Forwarded-For the client sent with the address it saw, and the ingress believes that one hop.
 * The real HAProxy runs with the configuration `npm run cluster` writes (`haproxyConfig`), in front
 * of the real ingress app in-process on port 0, with fakes for Temporal and the store. Every client
 * here is on 127.0.0.1, so the address HAProxy sees, and the bucket, is 127.0.0.1.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Stripe from 'stripe';
import { startHaproxy } from '../../src/cluster/haproxy';
import { parseTrustProxy } from '../../src/config';
import { createIngressApp, listen, type RunningIngress, type TrustProxy } from '../../src/ingress/app';
import { createMemoryLogger } from '../../src/logger';
import { createMetrics } from '../../src/metrics';
import { freePort } from '../../src/net/free-port';
import type { FulfillmentStore } from '../../src/store/fulfillment-store';
import type { FulfillmentStarter } from '../../src/temporal/fulfillment-starter';
import { newSessionId } from '../fixtures/sessions';

const RATE_LIMIT = 5;
const REQUESTS = 2 * RATE_LIMIT;

// No records, and Stripe knows none of the sessions: every landing page within the limit is a 404.
const store = { getRecord: async () => null, waitingSessions: async () => [] } as unknown as FulfillmentStore;
const starter = {} as FulfillmentStarter;
const sessionCheck = { exists: async () => false };

function startIngress(trustProxy: TrustProxy): Promise<RunningIngress> {
  return listen(
    createIngressApp({
      starter,
      sessionCheck,
      store,
      stripe: new Stripe('sk_test_unused'),
      webhookSecrets: ['whsec_test_unused'],
      livemode: false,
      trustProxy,
      logger: createMemoryLogger(),
      metrics: createMetrics(store),
      readiness: { temporal: async () => undefined, database: async () => undefined },
      rateLimitPerMinute: RATE_LIMIT,
    }),
    0,
  );
}

/** The ingress's `TRUST_PROXY` in docker-compose.yml, and whether that service publishes a port. */
function composeIngress(): { trustProxy: string | undefined; publishesPorts: boolean } {
  const lines = fs.readFileSync(path.join(__dirname, '../../docker-compose.yml'), 'utf8').split('\n');
  const start = lines.indexOf('  ingress:');
  if (start === -1) throw new Error('docker-compose.yml has no ingress service');
  const end = lines.findIndex((line, i) => i > start && /^ {0,2}\S/.test(line));
  const service = lines.slice(start + 1, end === -1 ? undefined : end);
  const trust = service.map((line) => /^\s+TRUST_PROXY:\s*"?([^"#]*?)"?\s*(#.*)?$/.exec(line)).find(Boolean);
  return { trustProxy: trust?.[1], publishesPorts: service.some((line) => /^\s+ports:/.test(line)) };
}

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

/** HAProxy with the cluster's configuration, in front of `backend`. */
async function startProxy(backend: number): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proxy-client-address-'));
  const proxy = await startHaproxy({ dir, port: await freePort(), backends: [backend] });
  stops.push(async () => {
    await proxy.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return proxy.url;
}

test('when a client sends its own X-Forwarded-For, then HAProxy forwards only the address it saw', async () => {
  const forwarded: (string[] | undefined)[] = [];
  const backend = http.createServer((req, res) => {
    if (req.url === '/after-checkout') forwarded.push(req.headersDistinct['x-forwarded-for']);
    res.end('ok');
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  stops.push(() => new Promise((resolve) => backend.close(() => resolve())));
  const proxyUrl = await startProxy((backend.address() as AddressInfo).port);

  await fetch(`${proxyUrl}/after-checkout`, { headers: { 'x-forwarded-for': '198.51.100.7, 203.0.113.9' } });
  await fetch(`${proxyUrl}/after-checkout`);

  expect(forwarded).toEqual([['127.0.0.1'], ['127.0.0.1']]);
});

test('when compose runs the ingress, then it believes exactly one hop, the proxy, and publishes no port of its own', () => {
  // Hop count 1 is right only while nothing reaches the ingress except through the proxy.
  expect(composeIngress()).toEqual({ trustProxy: '1', publishesPorts: false });
});

describe.each([
  ['the cluster (TRUST_PROXY=loopback)', ['loopback'] as TrustProxy],
  ['compose (TRUST_PROXY from docker-compose.yml)', parseTrustProxy(composeIngress().trustProxy ?? 'loopback')!],
])('behind HAProxy, as in %s', (_deployment, trustProxy) => {
  test.each([
    ['one spoofed X-Forwarded-For', () => '198.51.100.7'],
    ['a different spoofed X-Forwarded-For each time', (i: number) => `198.51.100.${i + 1}`],
  ])('when a client sends landing-page requests with %s, then past the limit it gets 429, in the bucket of the address HAProxy saw', async (_name, spoofed) => {
    const ingress = await startIngress(trustProxy);
    stops.push(() => ingress.close());
    const proxyUrl = await startProxy(ingress.port);

    const statuses: number[] = [];
    for (let i = 0; i < REQUESTS; i++) {
      const response = await fetch(`${proxyUrl}/after-checkout?session_id=${newSessionId()}`, { headers: { 'x-forwarded-for': spoofed(i) } });
      await response.arrayBuffer();
      statuses.push(response.status);
    }
    expect(statuses).toEqual([...Array<number>(RATE_LIMIT).fill(404), ...Array<number>(REQUESTS - RATE_LIMIT).fill(429)]);

    // The same client straight to the ingress, with no header: its bucket, 127.0.0.1, is already spent.
    const direct = await fetch(`${ingress.url}/after-checkout?session_id=${newSessionId()}`);
    expect(direct.status).toBe(429);
  });
});
