import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { toJsonPayload } from '../../src/temporal/codec-server';
import { startEmbeddedDevServer } from '../../src/temporal/dev-server';
import { ENCRYPTED_ENCODING, newKeyEntry } from '../../src/temporal/encryption';
import { resolveTools } from '../../src/temporal/tools';
import { eventually } from '../helpers/eventually';
import { emulatedSession, eventPayload, postWebhook, refusedReceiptFailure, startProduct, type TestStack } from '../helpers/stack';
import { freePort } from '../../src/net/free-port';
import { fulfillmentQuery } from '../../workflows/definitions';

// With PAYLOAD_ENCRYPTION_KEYS, Temporal stores only ciphertext: every payload of every event, and
// failures' messages. The product itself reads them back; operators read them through the codec
// server, with its token, and from the Temporal UI's origin only.
const UI_ORIGIN = 'http://127.0.0.1:8233';
const TOKEN = 'codec-token-for-the-integration-test-0123456789';
const CUSTOMER = { customerEmail: 'grace.hopper@example.org', customerName: 'Grace Hopper' };

let surroundings: Awaited<ReturnType<typeof startProduct>>;
let env: TestWorkflowEnvironment;
let stack: TestStack;
let codecUrl: string;

beforeAll(async () => {
  surroundings = await startProduct(
    { PAYLOAD_ENCRYPTION_KEYS: newKeyEntry('k-test'), CODEC_PORT: '0', CODEC_AUTH_TOKEN: TOKEN, CODEC_CORS_ORIGINS: UI_ORIGIN },
    { codecServer: true },
  );
  ({ env, stack } = surroundings);
  codecUrl = stack.codecServer!.url;
}, 120_000);

afterAll(async () => {
  await surroundings?.stop();
});

interface RawPayload {
  metadata?: Record<string, Uint8Array>;
  data?: Uint8Array;
}

/** Every payload in a raw history (no codec), with where it sits; search attributes are plaintext by design. */
function payloadsIn(value: unknown, where = ''): { where: string; payload: RawPayload }[] {
  if (!value || typeof value !== 'object' || value instanceof Uint8Array) return [];
  if (where.endsWith('searchAttributes') || where.endsWith('indexedFields')) return [];
  const object = value as Record<string, unknown>;
  if (object.metadata && typeof object.metadata === 'object' && 'encoding' in (object.metadata as object)) {
    return [{ where, payload: object as RawPayload }];
  }
  return Object.entries(object).flatMap(([key, child]) => payloadsIn(child, `${where}.${key}`));
}

const encodingOf = (payload: RawPayload) => Buffer.from(payload.metadata!.encoding!).toString('utf8');

function decodeViaCodecServer(payloads: RawPayload[], headers: Record<string, string> = { Authorization: `Bearer ${TOKEN}` }) {
  return fetch(`${codecUrl}/decode`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify({ payloads: payloads.map(toJsonPayload) }),
  });
}

async function statusOf(sessionId: string) {
  return (await stack.services.store.getRecord(sessionId))?.view.status;
}

async function fulfilledSession() {
  const session = emulatedSession(CUSTOMER);
  surroundings.emulator.put(session);
  await postWebhook(stack.ingress!.url, eventPayload('checkout.session.completed', session.id));
  await eventually(() => statusOf(session.id), (status) => status === 'fulfilled', { timeoutMs: 30_000 });
  return session;
}

test('when a session is fulfilled, then every payload Temporal stores is ciphertext, and the product still reads it', async () => {
  const session = await fulfilledSession();
  const raw = await env.client.workflow.getHandle(session.id).fetchHistory();
  const payloads = payloadsIn(raw);
  // Only the SDK's own bookkeeping in markers stays clear: a patch's ID, a local activity's sequence
  // number, type and timing. Its input and result are encrypted like any other.
  const clear = payloads.filter(({ payload }) => encodingOf(payload) !== ENCRYPTED_ENCODING);
  expect(clear.map(({ where }) => where.replace(/\.events\.\d+/, '')).sort()).toEqual(
    expect.arrayContaining(['.markerRecordedEventAttributes.details.data.payloads.0', '.markerRecordedEventAttributes.details.patch-data.payloads.0']),
  );
  expect(clear.filter(({ where }) => !/\.markerRecordedEventAttributes\.details\.(data|patch-data)\.payloads\.0$/.test(where))).toEqual([]);
  expect(payloads.filter(({ where }) => /workflowExecutionStartedEventAttributes\.input|activityTaskCompletedEventAttributes\.result/.test(where)).length).toBeGreaterThan(1);
  const rawText = JSON.stringify(raw, (_key, value: unknown) => (value instanceof Uint8Array ? Buffer.from(value).toString('utf8') : value));
  expect(rawText).not.toContain('Sticker pack');
  expect(rawText).not.toContain(CUSTOMER.customerEmail);

  // The product's own client decrypts: the query answers in clear.
  const view = await stack.client.workflow.getHandle(session.id).query(fulfillmentQuery);
  expect(view.status).toBe('fulfilled');
  expect(view.lineItems.map((item) => item.description)).toContain('Sticker pack');
});

test('when an activity keeps failing, then Temporal keeps "Encoded failure" and the message opens only through the codec server', async () => {
  const lastFailure = await refusedReceiptFailure(surroundings, emulatedSession(CUSTOMER), (failure) => Boolean(failure.encodedAttributes));
  expect(lastFailure.message).toBe('Encoded failure');
  expect(lastFailure.stackTrace ?? '').toBe('');
  const encoded = lastFailure.encodedAttributes as RawPayload;
  expect(encodingOf(encoded)).toBe(ENCRYPTED_ENCODING);

  const response = await decodeViaCodecServer([encoded]);
  expect(response.status).toBe(200);
  const [decoded] = ((await response.json()) as { payloads: { data: string }[] }).payloads;
  const attributes = JSON.parse(Buffer.from(decoded!.data, 'base64').toString('utf8')) as { message: string; stack_trace: string };
  expect(attributes.message).toMatch(/\[customer\]/); // the refusal, with the address already taken out
  expect(attributes.stack_trace).toMatch(/at /);
});

test('when the codec server is called without the token, with a wrong one, or from another origin, then it decodes nothing', async () => {
  const session = await fulfilledSession();
  const [first] = payloadsIn(await env.client.workflow.getHandle(session.id).fetchHistory());

  const missing = await decodeViaCodecServer([first!.payload], {});
  expect(missing.status).toBe(401);
  expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
  expect((await decodeViaCodecServer([first!.payload], { Authorization: 'Bearer not-the-token' })).status).toBe(401);
  const foreign = await decodeViaCodecServer([first!.payload], { Authorization: `Bearer ${TOKEN}`, Origin: 'https://evil.example' });
  expect(foreign.status).toBe(403);
  expect(foreign.headers.get('access-control-allow-origin')).toBeNull();

  const decoded = await decodeViaCodecServer([first!.payload]);
  expect(decoded.status).toBe(200);
  expect(decoded.headers.get('cache-control')).toBe('no-store');
  const [opened] = ((await decoded.json()) as { payloads: { metadata: Record<string, string>; data: string }[] }).payloads;
  expect(Buffer.from(opened!.metadata.encoding!, 'base64').toString()).toBe('json/plain');
  expect(Buffer.from(opened!.data, 'base64').toString()).toContain(session.id);
});

test('when the Temporal UI calls from its origin, then the preflight allows it with credentials, and a signed-in session cookie decodes', async () => {
  const preflight = await fetch(`${codecUrl}/decode`, {
    method: 'OPTIONS',
    headers: { Origin: UI_ORIGIN, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type,x-namespace' },
  });
  expect(preflight.status).toBe(204);
  expect(preflight.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
  expect(preflight.headers.get('access-control-allow-credentials')).toBe('true');
  expect(preflight.headers.get('access-control-allow-headers')).toMatch(/X-Namespace/);

  const refused = await fetch(`${codecUrl}/login`, { method: 'POST', body: new URLSearchParams({ token: 'guess' }), redirect: 'manual' });
  expect(refused.status).toBe(401);
  expect(refused.headers.get('set-cookie')).toBeNull();
  // As a browser submits the login page's form, whose no-referrer policy makes its origin "null".
  const signedIn = await fetch(`${codecUrl}/login`, { method: 'POST', headers: { Origin: 'null' }, body: new URLSearchParams({ token: TOKEN }) });
  expect(signedIn.status).toBe(200);
  const cookie = signedIn.headers.get('set-cookie')!;
  expect(cookie).toMatch(/HttpOnly/i);
  expect(cookie).toMatch(/SameSite=Strict/i);
  expect(cookie).not.toContain(TOKEN);

  const session = await fulfilledSession();
  const [first] = payloadsIn(await env.client.workflow.getHandle(session.id).fetchHistory());
  const withCookie = await decodeViaCodecServer([first!.payload], { Origin: UI_ORIGIN, 'X-Namespace': 'default', Cookie: cookie.split(';')[0]! });
  expect(withCookie.status).toBe(200);
  expect(withCookie.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
  const forged = await decodeViaCodecServer([first!.payload], { Cookie: `codec_session=${Date.now() + 60_000}.forged` });
  expect(forged.status).toBe(401);
});

test('when the body is not the codec protocol, then the codec server answers 400 with what is wrong', async () => {
  const response = await fetch(`${codecUrl}/decode`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ payloads: [{ metadata: { encoding: '***' }, data: '' }] }),
  });
  expect(response.status).toBe(400);
  expect(await response.json()).toEqual({ error: 'payload 0: metadata values must be base64' });
});

test('when an operator uses the Temporal CLI with the codec server and its token, then the history shows decoded payloads', async () => {
  const session = await fulfilledSession();
  const cli = resolveTools().temporalCli;
  if (cli.type !== 'existing-path') throw new Error('the Temporal CLI is provisioned by npm run provision');
  const show = (codecArgs: string[]) =>
    promisify(execFile)(cli.path, ['workflow', 'show', '--address', env.address, '--workflow-id', session.id, '--output', 'json', ...codecArgs], {
      maxBuffer: 16 * 1024 * 1024,
    });
  // The CLI prints payloads as JSON with their bytes in base64; read them as text.
  const readable = (output: string) =>
    JSON.stringify(JSON.parse(output), (key, value: unknown) => (key === 'data' && typeof value === 'string' ? Buffer.from(value, 'base64').toString('utf8') : value));
  const decoded = readable((await show(['--codec-endpoint', codecUrl, '--codec-auth', `Bearer ${TOKEN}`])).stdout);
  expect(decoded).toContain('Sticker pack');
  const raw = readable((await show([])).stdout);
  expect(raw).not.toContain('Sticker pack');
  expect(raw).toContain(Buffer.from(ENCRYPTED_ENCODING).toString('base64'));
});

test('when the embedded dev server starts with a codec server, then its UI sends operators to that codec server', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'embedded-ui-'));
  const uiPort = await freePort();
  const server = await startEmbeddedDevServer({ dataDir, namespace: 'default', port: await freePort(), uiPort, codecEndpoint: codecUrl });
  try {
    const settings = (await (await fetch(`${server.uiUrl}/api/v1/settings`)).json()) as { Codec?: { Endpoint?: string } };
    expect(settings.Codec?.Endpoint).toBe(codecUrl);
  } finally {
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
