/**
 * The codec server's sign-in, in-process on port 0: sessions that can be ended before their 12
 * hours (one, all, or by a restart) without changing the token, a sign-in page no other site can
 * frame, and a cookie that is Secure whenever the operator came over HTTPS; and what it opens and
 * refuses of payloads bound to their workflow.
 */
import { listen, type RunningIngress, type TrustProxy } from '../../src/ingress/app';
import { createMemoryLogger } from '../../src/logger';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { createCodecServerApp, startCodecServer as startOwnConfiguredCodecServer, toJsonPayload, type JsonPayload } from '../../src/temporal/codec-server';
import { AesGcmCodec, BINDING_METADATA } from '../../src/temporal/encryption';

const TOKEN = 'codec-token-for-the-unit-test-0123456789abcdef';

const running: RunningIngress[] = [];
async function startCodecServer(trustProxy?: TrustProxy): Promise<RunningIngress> {
  const app = createCodecServerApp({
    codec: new AesGcmCodec([{ id: 'k1', secret: Buffer.alloc(32, 1) }]),
    token: TOKEN,
    corsOrigins: ['http://127.0.0.1:8233'],
    logger: createMemoryLogger(),
    trustProxy,
  });
  const server = await listen(app, 0);
  running.push(server);
  return server;
}
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

async function signIn(url: string, headers: Record<string, string> = {}): Promise<{ cookie: string; setCookie: string }> {
  const response = await fetch(`${url}/login`, { method: 'POST', headers, body: new URLSearchParams({ token: TOKEN }) });
  expect(response.status).toBe(200);
  const setCookie = response.headers.get('set-cookie')!;
  return { cookie: setCookie.split(';')[0]!, setCookie };
}

function decode(url: string, headers: Record<string, string>): Promise<number> {
  return fetch(`${url}/decode`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify({ payloads: [] }) }).then(
    (response) => response.status,
  );
}

test('when an operator signs out, then that session\'s cookie decodes nothing any more, even sent again', async () => {
  const server = await startCodecServer();
  const mine = await signIn(server.url);
  const other = await signIn(server.url);
  expect(await decode(server.url, { Cookie: mine.cookie })).toBe(200);

  const signedOut = await fetch(`${server.url}/logout`, { method: 'POST', headers: { Cookie: mine.cookie } });
  expect(signedOut.status).toBe(200);
  // A copy of the cookie (stolen before the sign-out) is void, not merely cleared in this browser.
  expect(await decode(server.url, { Cookie: mine.cookie })).toBe(401);
  expect(await decode(server.url, { Cookie: other.cookie })).toBe(200);
});

test('when an operator signs out every session, then every cookie is void, the token still works, and a new sign-in works', async () => {
  const server = await startCodecServer();
  const first = await signIn(server.url);
  const stolen = await signIn(server.url);

  expect((await fetch(`${server.url}/logout-all`, { method: 'POST' })).status).toBe(401); // not for anyone
  const all = await fetch(`${server.url}/logout-all`, { method: 'POST', headers: { Cookie: first.cookie } });
  expect(all.status).toBe(200);
  expect(await decode(server.url, { Cookie: first.cookie })).toBe(401);
  expect(await decode(server.url, { Cookie: stolen.cookie })).toBe(401);
  expect(await decode(server.url, { Authorization: `Bearer ${TOKEN}` })).toBe(200);

  // The CLI's way: the token ends every session too.
  const again = await signIn(server.url);
  expect((await fetch(`${server.url}/logout-all`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
  expect(await decode(server.url, { Cookie: again.cookie })).toBe(401);
});

test('when the codec server restarts with the same token, then the sessions of before are void', async () => {
  const before = await startCodecServer();
  const { cookie } = await signIn(before.url);
  expect(await decode(before.url, { Cookie: cookie })).toBe(200);
  const after = await startCodecServer();
  expect(await decode(after.url, { Cookie: cookie })).toBe(401);
});

test.each([
  ['the sign-in page', 'GET', '/login'],
  ['a refused sign-in', 'POST', '/login'],
  ['a sign-out', 'POST', '/logout'],
])('when %s answers, then no other site may frame it', async (_name, method, path) => {
  const server = await startCodecServer();
  const response = await fetch(`${server.url}${path}`, { method, body: method === 'POST' ? new URLSearchParams({ token: 'guess' }) : undefined });
  expect(response.headers.get('content-security-policy')).toMatch(/frame-ancestors 'none'/);
  expect(response.headers.get('x-frame-options')).toBe('DENY');
});

test('when the operator came over HTTPS through a trusted proxy, then the cookie is Secure; over HTTP, or by an untrusted proxy\'s word, then it is not', async () => {
  const trusting = await startCodecServer(['loopback']);
  expect((await signIn(trusting.url, { 'X-Forwarded-Proto': 'https' })).setCookie).toMatch(/;\s*Secure/i);
  expect((await signIn(trusting.url)).setCookie).not.toMatch(/Secure/i);
  const untrusting = await startCodecServer(false);
  expect((await signIn(untrusting.url, { 'X-Forwarded-Proto': 'https' })).setCookie).not.toMatch(/Secure/i);
});

describe('payloads bound to their workflow (issue 20, item 1)', () => {
  const keys = [{ id: 'k1', secret: Buffer.alloc(32, 7) }];
  const workers = new AesGcmCodec(keys); // strict, as the workers and clients run
  const workflowA = { type: 'workflow', namespace: 'default', workflowId: 'cs_test_a' } as const;

  async function startProductCodecServer(strict: boolean): Promise<RunningIngress> {
    const server = await startOwnConfiguredCodecServer(
      { port: 0, host: '127.0.0.1', token: TOKEN, corsOrigins: [], keys, encrypt: true, strict, trustProxy: ['loopback'] },
      createMemoryLogger(),
    );
    running.push(server);
    return server;
  }

  async function call(url: string, direction: 'decode' | 'encode', payloads: Payload[]) {
    const response = await fetch(`${url}/${direction}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ payloads: payloads.map(toJsonPayload) }),
    });
    return { status: response.status, body: (await response.json()) as { payloads?: JsonPayload[]; error?: string } };
  }
  const valueOf = (payload: JsonPayload) => JSON.parse(Buffer.from(payload.data!, 'base64').toString()) as unknown;

  test('when the UI sends payloads bound to a workflow and to an activity, then the codec server opens them with the binding they name', async () => {
    const server = await startProductCodecServer(true);
    const [input] = await workers.encode([defaultPayloadConverter.toPayload({ sessionId: 'cs_test_a' })], workflowA);
    const [result] = await workers.encode([defaultPayloadConverter.toPayload({ paymentStatus: 'paid' })], {
      type: 'activity',
      namespace: 'default',
      workflowId: 'cs_test_a',
      activityId: '2',
      isLocal: false,
    });
    // sdk-core's patch marker, written in clear: shown as it is.
    const marker = defaultPayloadConverter.toPayload({ patch_id: 'confirm-payment-failed', deprecated: false });
    const { status, body } = await call(server.url, 'decode', [input!, result!, marker]);
    expect(status).toBe(200);
    expect(body.payloads!.map(valueOf)).toEqual([{ sessionId: 'cs_test_a' }, { paymentStatus: 'paid' }, { patch_id: 'confirm-payment-failed', deprecated: false }]);
  });

  test('when a payload\'s binding was rewritten, then the codec server refuses it with 422', async () => {
    const server = await startProductCodecServer(true);
    const [sealed] = await workers.encode([defaultPayloadConverter.toPayload('x')], workflowA);
    const rebound = { ...sealed!, metadata: { ...sealed!.metadata, [BINDING_METADATA]: Buffer.from('{"kind":"workflow","namespace":"default","workflowId":"cs_test_b"}') } };
    const { status, body } = await call(server.url, 'decode', [rebound]);
    expect(status).toBe(422);
    expect(body.error).toMatch(/failed authentication: altered/);
  });

  test('when encryption is strict, then /encode is refused (it cannot bind); when permissive, it encodes', async () => {
    const strict = await startProductCodecServer(true);
    const refused = await call(strict.url, 'encode', [defaultPayloadConverter.toPayload({ id: 'evt_1', type: 'checkout.session.completed' })]);
    expect(refused.status).toBe(422);
    expect(refused.body.error).toMatch(/does not encode: with PAYLOAD_ENCRYPTION=on a payload must be bound to its workflow/);

    const permissive = await startProductCodecServer(false);
    const encoded = await call(permissive.url, 'encode', [defaultPayloadConverter.toPayload('x')]);
    expect(encoded.status).toBe(200);
    expect(Buffer.from(encoded.body.payloads![0]!.metadata!.encoding!, 'base64').toString()).toBe('binary/encrypted');
  });
});
